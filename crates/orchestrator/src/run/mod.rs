//! The executor of one deployment: a small async shell that asks the pure cores (canary
//! controller, trigger engine, traffic plan cursor) what to do, journals the answer, carries it
//! out through the traits, then announces it. It decides nothing itself.

mod canary;
mod completion;
mod observe;
mod prepare;
mod switch;

pub(crate) use canary::build_judges;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serin_canary::controller::{Command as CanaryCommand, Step};
use serin_signals::{Timestamp, Track};
use serin_traffic::TrafficSplit;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::{OnResume, StrategyKind, human};
use crate::error::{Error, Result};
use crate::event::{Event, EventKind, Phase};
use crate::hooks::NotifyContext;
use crate::journal::Record;
use crate::orchestrator::{Inner, ServiceBackends, Status, bounded, unlock};
use crate::platform::{TrackKey, TrackSpec};
use crate::report::Report;
use crate::sample::Sample;
use crate::state::{DeploymentState, Effect, InFlight, Outcome, Stage};

use canary::{controller_of, store};

/// An operator's command to a running deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Skip the remaining analysis or switch steps and give the new version all traffic
    /// (once its track has grown to full size); during the watch after promotion, end the
    /// watch. Once the new version has all traffic and the watch is over (completion), the
    /// old version's warm delay (`keepOldWarmFor`) is not cut short, as Argo Rollouts'
    /// `promote --full` does not cut `scaleDownDelaySeconds` short: that delay is what lets an
    /// abort switch back at once. There a promote only lifts a pause (which would keep the old
    /// version warm past the delay), and is refused, saying until when the old version is
    /// kept warm, when no pause holds. A rollback trigger's hold does not stop it: the
    /// operator decides on the evidence there is. It lifts a pause, as Argo Rollouts'
    /// `promote` does. All traffic goes only to a track whose every instance is ready: when
    /// the canary track must first grow to full size, or an instance of the new track is not
    /// ready, and the track is not ready at once, answered as soon as the promotion is
    /// journalled (and the scale carried out), not when the track takes all traffic (up to
    /// `readinessTimeout` later, or a rollback if an instance died); a promote while that
    /// track grows lets the promotion through a hold, and is journalled too, so a resumed
    /// deployment honours it.
    Promote,
    /// Roll back now. During an upgrade step the step runner carries out, the step is
    /// cancelled first (see [`StepRunner`](crate::StepRunner)): before the deployment it then
    /// ends as failed with nothing deployed; after it (the old version is retired) no rollback
    /// is possible, and the steps left are recorded as due instead of being run.
    Abort,
    /// Hold: no weight changes until resumed (triggers keep watching). A promotion whose track
    /// grows to full size keeps the new version at its canary share until the resume (or the
    /// deadline, which rolls back): giving it all traffic is the rollout progressing. After
    /// promotion, a pause keeps the old version warm past `keepOldWarmFor`. Refused while
    /// rolling back and once the old version is retired (during the post-upgrade steps), where
    /// it would hold nothing.
    Pause,
    /// Carry on after a pause (also ends an indefinite canary pause step the canary has
    /// reached; one it has not reached yet, a first step or the step after a weight not yet in
    /// force, waits for its own resume). It lifts the operator's pause only: while a rollback
    /// trigger holds, or a raised weight waits for the canary track to grow, the weight stays
    /// where it is until that ends.
    Resume,
}

pub(crate) type Reply = oneshot::Sender<Result<()>>;

pub(crate) struct Runner {
    pub(crate) inner: Arc<Inner>,
    pub(crate) backends: ServiceBackends,
    pub(crate) state: DeploymentState,
    pub(crate) seq: u64,
    pub(crate) commands: mpsc::UnboundedReceiver<(Operation, Reply)>,
    /// Keeps the channel open so `recv` never returns `None` when every handle is gone, and
    /// puts back the commands a watch's read held when an abort cut it short (see
    /// `watch_read`).
    pub(crate) requeue: mpsc::UnboundedSender<(Operation, Reply)>,
    pub(crate) status: watch::Sender<Status>,
    /// The last observation window's summary, journalled with the next record.
    pub(crate) sample: Option<Sample>,
    /// Observations the trigger engine could not read, already announced: each is announced
    /// once per run, not at every window.
    pub(crate) unreadable: BTreeSet<String>,
    /// The new version's share of traffic last announced (0 before any): what the router took
    /// last, which [`DeploymentState::weight`] is not while the split that sets it is being
    /// applied, or after applying it failed.
    pub(crate) announced: f64,
    /// Whether the router's split is unknown: set when an apply is dropped on its timeout
    /// (it may still have reached the router), cleared when a later apply is answered. Atomic,
    /// not a `Cell`, since the runner is held across awaits in a task that must be `Send`.
    pub(crate) split_unknown: AtomicBool,
    /// Whether the watch's last check read any data of the new version (or had no rollback
    /// trigger to feed it to). A watch ends only after such a check, and a switch raises a
    /// share the new version already has only after one: one whose every read came back empty
    /// (a metrics outage) has no evidence that the version is fine, however short the outage
    /// was next to the triggers' `staleAfter`. `None` on a fresh runner, which has made no
    /// check yet: a resumed watch or switch checks once more first, and until then says nothing
    /// of data it has not looked for (that the last check read none would be untrue: the one
    /// before the restart may well have).
    pub(crate) watch_saw_data: Option<bool>,
    /// What was last said to wait (the promotion, the watch's end, a switch's step) for want
    /// of any data of the new version, and for which rollback triggers: said again only when
    /// either changes, or after the wait ended.
    pub(crate) unfed_told: (String, Vec<String>),
}

/// What a deployment resumed after a crash starts from.
pub(crate) struct Resumption {
    /// Its last journal record, whose effects are carried out again.
    pub(crate) last: Record,
    /// The split in force when `last` was written.
    pub(crate) before: Before,
    /// The new version's share of traffic the deployment last announced (0 before any).
    pub(crate) announced: f64,
}

/// The split in force when a deployment's last record was written.
pub(crate) enum Before {
    /// The last split an earlier record of the deployment applied.
    Applied(TrafficSplit),
    /// The deployment applied none yet: the split it started under, which sent all traffic
    /// to the track then live (every deployment ends so). Not the deployment's own, so it is
    /// put back only if the router lost its split, never over one that differs.
    Inherited(TrafficSplit),
    /// Nothing was routed yet (a first install that applied no split).
    Nothing,
}

impl Resumption {
    /// From a deployment's last record and those before it, oldest first.
    pub(crate) fn of(last: Record, earlier: &[Record]) -> Result<Self> {
        let applied = earlier
            .iter()
            .rev()
            .flat_map(|r| r.effects.iter().rev())
            .find_map(|e| match e {
                Effect::Apply { split } => Some(split.clone()),
                _ => None,
            });
        let before = match (applied, &last.state.from) {
            (Some(split), _) => Before::Applied(split),
            (None, Some(from)) => Before::Inherited(split_all(&from.track, None)?),
            (None, None) => Before::Nothing,
        };
        let announced = earlier
            .iter()
            .chain([&last])
            .flat_map(|r| r.events.iter())
            .filter_map(|e| match e.kind {
                EventKind::WeightChanged { percent, .. } => Some(percent),
                _ => None,
            })
            .next_back()
            .unwrap_or(0.0);
        Ok(Resumption {
            last,
            before,
            announced,
        })
    }
}

/// The share the last [`WeightChanged`](EventKind::WeightChanged) among `kinds` gives the new
/// version.
fn last_percent(kinds: &[EventKind]) -> Option<f64> {
    kinds.iter().rev().find_map(|k| match k {
        EventKind::WeightChanged { percent, .. } => Some(*percent),
        _ => None,
    })
}

/// Whether `e` is a journal append's failure (as [`Runner::append`] labels every one): the run
/// stops there, with the journal's last record as the state to resume from, since nothing may
/// be carried out or answered that is not journalled.
fn is_journal_error(e: &Error) -> bool {
    matches!(e, Error::Backend { backend, .. } if backend == "journal")
}

impl Runner {
    fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    fn old_track(&self) -> Option<Track> {
        self.state.from.as_ref().map(|p| p.track.clone())
    }

    fn new_track(&self) -> Track {
        self.state.to.track.clone()
    }

    /// The old version as messages name it (`1.0.0 on stable`), or "the old version" for a
    /// first install.
    fn old_name(&self) -> String {
        self.state
            .from
            .as_ref()
            .map_or_else(|| "the old version".to_owned(), ToString::to_string)
    }

    /// The new version's share changed: named by version and track, since a canary may run
    /// the new version on the track called `stable`.
    fn weight_changed(&self, percent: f64) -> EventKind {
        EventKind::WeightChanged {
            version: self.state.to.version.to_string(),
            track: self.state.to.track.to_string(),
            percent,
        }
    }

    /// Sets the new version's share of traffic to `percent` from `now` on, noting when an arm
    /// that had none begins taking some ([`canary_traffic_since`], [`baseline_traffic_since`]):
    /// a rollback trigger on that arm gets its `staleAfter` from then before its missing data
    /// counts (see `feed_triggers`).
    ///
    /// [`canary_traffic_since`]: DeploymentState::canary_traffic_since
    /// [`baseline_traffic_since`]: DeploymentState::baseline_traffic_since
    fn set_weight(&mut self, percent: f64, now: Timestamp) {
        let before = self.state.weight;
        if before <= 0.0 && percent > 0.0 {
            self.state.canary_traffic_since = Some(now);
        }
        if before >= 100.0 && percent < 100.0 {
            self.state.baseline_traffic_since = Some(now);
        }
        self.state.weight = percent;
    }

    /// Journals the current state with `effects` and `kinds`, carries the effects out, then
    /// announces the events.
    ///
    /// The events are announced even when an effect fails: they are journalled, so they are in
    /// the report's timeline, and they tell of the state change the record made (the stage
    /// entered, the decision taken), which stands; the error then goes back to the caller,
    /// whose error path journals and announces what follows (a rollback, say) after them.
    ///
    /// The new version's share of traffic is the exception: it is announced only once the
    /// router took it, so that nobody is told of a split that is not in force (the report's
    /// timeline included). A [`WeightChanged`](EventKind::WeightChanged) among `kinds` (a
    /// weight a decision sets) is not journalled with the effects that apply it but in a record
    /// of its own right after they were carried out, and only if they were (a split applied
    /// before an effect that then failed was carried out: its share is announced); so is the
    /// share any other split the effects apply gives the new version, when it differs from the
    /// one last announced (a promotion's 100%, a rollback's 0%). See
    /// [`announce_weights`](Self::announce_weights).
    pub(crate) async fn commit(
        &mut self,
        effects: Vec<Effect>,
        mut kinds: Vec<EventKind>,
    ) -> Result<()> {
        let mut weights = Vec::new();
        kinds.retain(|k| {
            let weight = matches!(k, EventKind::WeightChanged { .. });
            if weight {
                weights.push(k.clone());
            }
            !weight
        });
        let weight = last_percent(&weights);
        let record = self.append(effects, kinds, weight).await?;
        let (done, executed) = self.execute_counted(&record.effects).await;
        self.emit(&record.events).await;
        self.publish();
        if let Err(e) = executed {
            // A split applied before the effect that failed (a rollback's switch back before
            // the retire of the new track) is in force: its share is announced, so that neither
            // the timeline nor what a failed end leaves behind tells of the split before it.
            let carried = &record.effects[..done];
            let moved = self.weight_moved(carried).into_iter().collect();
            self.announce_weights(moved, carried).await?;
            return Err(e);
        }
        if weights.is_empty() {
            weights.extend(self.weight_moved(&record.effects));
        }
        self.announce_weights(weights, &record.effects).await
    }

    /// Journals the current state with `effects`, `kinds` and the `weight` its decision sets
    /// (see [`Record::weight`]) as the next record.
    async fn append(
        &mut self,
        effects: Vec<Effect>,
        kinds: Vec<EventKind>,
        weight: Option<f64>,
    ) -> Result<Record> {
        let now = self.now();
        let mut events = Vec::with_capacity(kinds.len());
        for kind in kinds {
            events.push(Event {
                deployment: self.state.id.clone(),
                service: self.state.service.clone(),
                seq: self.state.next_event,
                at: now,
                kind,
            });
            self.state.next_event += 1;
        }
        let record = Record {
            deployment: self.state.id.clone(),
            seq: self.seq,
            at: now,
            state: self.state.clone(),
            effects,
            events,
            weight,
            sample: self.sample.take(),
        };
        let doing = format!("appending record {} of {}", record.seq, record.deployment);
        self.on_journal(&doing, self.inner.journal.append(&record))
            .await?;
        self.seq += 1;
        Ok(record)
    }

    /// `call`, into the journal, `doing` something. Whatever the journal answers, its failure
    /// is the journal's: a journal of the user's may report its own backend (`database`, say),
    /// and a failed append must still stop the run (see `is_journal_error`) rather than let it
    /// go on from a state never journalled. So does a call that does not answer within
    /// `maxDeploymentDuration`: the run stops as at a crash, keeping its lock for a resume.
    /// Not the time left until the deadline: the records written at the deadline (the rollback
    /// it starts) must not fail for it.
    async fn on_journal<T>(&self, doing: &str, call: impl Future<Output = Result<T>>) -> Result<T> {
        let journal = self.inner.journal.as_ref();
        let max = self.state.config.max_deployment_duration;
        let why = format!("each call is given maxDeploymentDuration ({})", human(max));
        let who = format!("journal `{}`", journal.name());
        bounded(&who, doing, max, why, call).await.map_err(|e| {
            if is_journal_error(&e) {
                e
            } else {
                Error::backend("journal", journal.name(), e)
            }
        })
    }

    /// The event announcing the new version's share in the last split `effects` apply, if that
    /// differs from the share last announced.
    fn weight_moved(&self, effects: &[Effect]) -> Option<EventKind> {
        let percent = self.new_share(last_split(effects)?);
        (percent != self.announced).then(|| self.weight_changed(percent))
    }

    /// The new version's share of `split`, in percent.
    fn new_share(&self, split: &TrafficSplit) -> f64 {
        split
            .weight_of(self.state.to.track.as_str())
            .map_or(0.0, |w| w.as_percent())
    }

    /// Journals and announces `weights`, the shares the router took when `effects` were carried
    /// out, in a record of their own. That record holds the split the effects applied, as the
    /// effect it stands for: it is in force already, and a deployment resumed from the record
    /// puts it back (idempotent) before going on, as from the record that applied it.
    async fn announce_weights(
        &mut self,
        weights: Vec<EventKind>,
        effects: &[Effect],
    ) -> Result<()> {
        let Some(percent) = last_percent(&weights) else {
            return Ok(());
        };
        self.announced = percent;
        let applied = last_split(effects)
            .map(|split| Effect::Apply {
                split: split.clone(),
            })
            .into_iter()
            .collect();
        let record = self.append(applied, weights, None).await?;
        self.emit(&record.events).await;
        self.publish();
        Ok(())
    }

    /// Picks a deployment up after a crash, before its stages run again: puts back the split
    /// the journal says is in force if the router lost or changed it, carries out the last
    /// record's effects again (they are idempotent) and announces its events again (the crash
    /// may have kept them from subscribers). A failure of those effects takes the error path
    /// of an uninterrupted run ([`on_error`](Self::on_error): a journalled rollback, or the
    /// end as failed; in the rolling-back stage, that stage tries again). Then `onResume:
    /// rollback` starts a journalled rollback, as an abort would. A finished deployment only
    /// announces its final events again.
    pub(crate) async fn resume_from(&mut self, resumption: Resumption) -> Result<()> {
        let Resumption { last, before, .. } = resumption;
        if self.state.stage == Stage::Done {
            // A finished deployment's last record carries no effects (`finish` journals them
            // in a record of their own), and the router may be another deployment's by now.
            self.emit(&last.events).await;
            // The end may have been journalled without `finish` learning it (a crash right
            // after the write): a success is recorded here, or the validator would still
            // check later deployments against the version it replaced.
            self.record_success();
            return Ok(());
        }
        let mut effects = Vec::with_capacity(last.effects.len() + 1);
        if let Some(split) = self.split_to_restore(&last.effects, before).await {
            effects.push(Effect::Apply { split });
        }
        effects.extend(last.effects.iter().cloned());
        let (done, executed) = self.execute_counted(&effects).await;
        self.emit(&last.events).await;
        if executed.is_ok() {
            // The crash may have come before the share they gave the new version was
            // announced (only a journal failure stops this): the one the record's decision
            // set, as `commit` announces it, or else any other its split gives.
            let weights = match last.weight {
                Some(percent) => Some(self.weight_changed(percent)),
                None => self.weight_moved(&effects),
            };
            self.announce_weights(weights.into_iter().collect(), &effects)
                .await?;
        } else {
            // As `commit` does: a split applied before the effect that failed is in force, and
            // its share is announced, so that neither the timeline nor what a failed end
            // leaves behind tells of the split before it.
            let carried = &effects[..done];
            let moved = self.weight_moved(carried).into_iter().collect();
            self.announce_weights(moved, carried).await?;
        }
        if let Err(e) = executed {
            tracing::warn!(deployment = %self.state.id, "repeating the last record after a crash failed: {e}");
            if self.state.stage == Stage::RollingBack {
                // The rollback is journalled already: as when its first switch back fails in
                // an uninterrupted run, the rolling-back stage switches back again and retires
                // the new track, or ends as failed if that fails too.
            } else {
                self.on_error(e).await?;
            }
        }
        if self.state.config.on_resume == OnResume::Rollback
            && self.state.may_roll_back()
            && !matches!(
                self.state.stage,
                Stage::Validation | Stage::Preparation | Stage::RollingBack | Stage::Done
            )
            && let Err(e) = self
                .start_rollback(
                    "resumed after a crash; onResume is rollback".into(),
                    Vec::new(),
                )
                .await
        {
            if is_journal_error(&e) {
                return Err(e);
            }
            if self.state.stage == Stage::RollingBack {
                // Journalled, but its switch back failed: as after an operator's abort, the
                // rolling-back stage switches back again (or ends as failed).
                tracing::warn!(deployment = %self.state.id, "starting the rollback failed: {e}");
            } else {
                self.on_error(e).await?;
            }
        }
        Ok(())
    }

    /// The split to put in force before the last record's effects are carried out again:
    /// the split in force when that record was written, when the router holds something
    /// else — nothing, after an embedded proxy restarted with the process, or a split that
    /// drifted. Not when the router already holds it or the record's own split (the crash came
    /// after that was applied: going back would move traffic back, to a canary being rolled
    /// back say), nor when the record's first effect is an apply, which puts its split in
    /// force at once. A record whose apply comes after another effect (a scale-up before the
    /// weight rises) gets the earlier split first, so the order it was journalled in holds.
    /// Reading the split back is bounded as an effect's calls are (see
    /// [`within_bound`](Self::within_bound)): a read not answered in time counts as failed.
    async fn split_to_restore(&self, effects: &[Effect], before: Before) -> Option<TrafficSplit> {
        let (before, inherited) = match before {
            Before::Applied(split) => (split, false),
            Before::Inherited(split) => (split, true),
            Before::Nothing => return None,
        };
        if matches!(effects.first(), Some(Effect::Apply { .. })) {
            return None;
        }
        let after = effects.iter().rev().find_map(|e| match e {
            Effect::Apply { split } => Some(split),
            _ => None,
        });
        let router = &self.backends.router;
        match self.read_back().await {
            Ok(Some(current)) if current == before || after == Some(&current) || inherited => None,
            Ok(current) => {
                tracing::warn!(
                    deployment = %self.state.id,
                    router = router.name(),
                    "the router holds {current:?}, not the journalled split {before:?}; applying it again"
                );
                Some(before)
            }
            Err(e) => {
                // An unknown split (the router failed, or did not answer in time) is never left
                // standing: apply it again (idempotent) and let that decide.
                tracing::warn!(
                    deployment = %self.state.id,
                    router = router.name(),
                    "reading back the split failed ({e}); applying the journalled split again"
                );
                Some(before)
            }
        }
    }

    /// The split the router holds, read back within the bound an effect's calls get (see
    /// [`within_bound`](Self::within_bound)).
    async fn read_back(&self) -> Result<Option<TrafficSplit>> {
        let router = &self.backends.router;
        let who = format!("router `{}`", router.name());
        let doing = format!("reading back the traffic split of {}", self.state.service);
        let current = async {
            router
                .current()
                .await
                .map_err(|e| Error::backend("router", router.name(), e))
        };
        self.within_bound(&who, &doing, Duration::ZERO, current)
            .await
    }

    /// Carries out effects; each is idempotent, so a resumed run repeats its last record's.
    /// Each call into the platform or the router is bounded (see
    /// [`within_bound`](Self::within_bound)): one that does not answer in time is dropped and
    /// fails the effect with [`Error::Timeout`], which takes the error path any failed effect
    /// takes (a rollback, or the end as failed when a rollback's call fails). An apply that
    /// answers another error, yet whose split (one that moves the new version's share) the
    /// router holds when read back, was taken (its answer was lost): it counts as applied.
    pub(crate) async fn execute(&self, effects: &[Effect]) -> Result<()> {
        self.execute_counted(effects).await.1
    }

    /// [`execute`](Self::execute), answering also how many of `effects` were carried out
    /// before the first that failed (all of them when none did): the splits applied among
    /// those are in force, whatever failed after them.
    async fn execute_counted(&self, effects: &[Effect]) -> (usize, Result<()>) {
        for (done, effect) in effects.iter().enumerate() {
            if let Err(e) = self.execute_one(effect).await {
                return (done, Err(e));
            }
        }
        (effects.len(), Ok(()))
    }

    /// Carries out one effect (see [`execute`](Self::execute)).
    async fn execute_one(&self, effect: &Effect) -> Result<()> {
        let platform = self.inner.platform.as_ref();
        let on_platform = format!("platform `{}`", platform.name());
        let service = &self.state.service;
        match effect {
            Effect::BringUp {
                track,
                version,
                instances,
            } => {
                let spec =
                    TrackSpec::new(service, &version.to_string(), track.clone(), *instances)?;
                let spec = match self.backends.command.as_ref() {
                    Some(f) => f(spec)?,
                    None => spec,
                };
                let key = TrackKey::new(service, track);
                let doing = format!("bringing up {key}");
                let up = platform.bring_up(&spec);
                match self
                    .within_bound(&on_platform, &doing, Duration::ZERO, up)
                    .await
                {
                    Ok(_) => {}
                    Err(Error::AlreadyExists { .. }) => {
                        let doing = format!("the status of {key}");
                        let status = platform.status(service, track);
                        let st = self
                            .within_bound(&on_platform, &doing, Duration::ZERO, status)
                            .await?;
                        if &st.version != version {
                            return Err(Error::conflict(
                                "bring up",
                                key.to_string(),
                                format!("the track already runs {}", st.version),
                            ));
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            Effect::Scale { track, instances } => {
                let doing = format!(
                    "scaling {} to {instances} instances",
                    TrackKey::new(service, track)
                );
                let scale = platform.scale(service, track, *instances);
                self.within_bound(&on_platform, &doing, Duration::ZERO, scale)
                    .await?;
            }
            Effect::Apply { split } => {
                let router = &self.backends.router;
                let apply = async {
                    router
                        .apply(split)
                        .await
                        .map_err(|e| Error::backend("router", router.name(), e))
                };
                let who = format!("router `{}`", router.name());
                let doing = format!("applying the split {split}");
                let mut applied = self.within_bound(&who, &doing, Duration::ZERO, apply).await;
                if let Err(e) = &applied
                    && !matches!(e, Error::Timeout { .. })
                    && self.new_share(split) != self.announced
                    && matches!(self.read_back().await, Ok(Some(held)) if held == *split)
                {
                    // The router moved to the split and its answer was lost on the way
                    // back: the split is in force, as the deployment's record says.
                    tracing::warn!(
                        deployment = %self.state.id,
                        "{doing} answered an error ({e}), yet the router holds that split"
                    );
                    applied = Ok(());
                }
                match &applied {
                    Ok(()) => self.split_unknown.store(false, Ordering::Relaxed),
                    Err(Error::Timeout { .. }) => {
                        self.split_unknown.store(true, Ordering::Relaxed);
                    }
                    // Refused: the router kept the split it held, known or not.
                    Err(_) => {}
                }
                applied?;
            }
            Effect::Retire { track, drain_ms } => {
                let drain = Duration::from_millis(*drain_ms);
                let doing = format!("retiring {} after its drain", TrackKey::new(service, track));
                let retire = platform.retire(service, track, drain);
                match self.within_bound(&on_platform, &doing, drain, retire).await {
                    Ok(()) | Err(Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// `call`, into `who`, `doing` something, given what is left until the deadline while the
    /// deployment runs, as the watch's reads are. In a rollback, or once the deadline has
    /// passed (a rollback it started, a completion it allows, a resume), no time is left to
    /// give: each call is given `maxDeploymentDuration` then, so that a rollback still ends
    /// when its calls never answer. `extra` is added to either (a retire's drain, which the
    /// platform waits out before it answers).
    async fn within_bound<T>(
        &self,
        who: &str,
        doing: &str,
        extra: Duration,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let max = self.state.config.max_deployment_duration;
        let left = self.state.deadline.saturating_duration_since(self.now());
        let (limit, mut why) = if self.state.stage == Stage::RollingBack || left.is_zero() {
            (
                max,
                format!(
                    "a call made in a rollback or past the deadline is given \
                     maxDeploymentDuration ({})",
                    human(max)
                ),
            )
        } else {
            (
                left,
                format!("maxDeploymentDuration ({}) ran out", human(max)),
            )
        };
        if !extra.is_zero() {
            why.push_str(&format!(", with the drain ({}) on top", human(extra)));
        }
        bounded(who, doing, limit.saturating_add(extra), why, call).await
    }

    /// Announces `events`: to `tracing`, to subscribers, and to the notification channels
    /// subscribed to each one's category, with the deployment's environment and namespace
    /// ([`NotifyContext`]).
    ///
    /// The notifier is the user's code, awaited inline so that channels get events in order;
    /// each call is given [`notify_timeout`](crate::OrchestratorBuilder::notify_timeout) at
    /// most. A call that has not answered by then is dropped (cancelled), logged as a warning
    /// and counted ([`Orchestrator::notifications_timed_out`]), and the deployment goes on: a
    /// notification never fails a deployment, and a hung receiver delays it by that much per
    /// event and channel at most, never for ever. A rollback's switch back is carried out
    /// before its events are announced, so it waits for none of them.
    ///
    /// [`Orchestrator::notifications_timed_out`]: crate::Orchestrator::notifications_timed_out
    pub(crate) async fn emit(&self, events: &[Event]) {
        let ctx = NotifyContext::of(&self.state.config);
        let limit = self.inner.notify_timeout;
        for e in events {
            tracing::info!(deployment = %e.deployment, seq = e.seq, "{}", e.kind);
            let _ = self.inner.events.send(e.clone());
            if let Some(notifier) = &self.inner.notifier {
                for (i, ch) in self.state.config.notification_channels.iter().enumerate() {
                    if !ch.takes(e.kind.notify_on()) {
                        continue;
                    }
                    match tokio::time::timeout(limit, notifier.notify_in(&ctx, ch, e)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(err)) => {
                            tracing::warn!(deployment = %e.deployment, "notification to notificationChannels[{i}] (`{}`) failed: {err}", ch.redacted_destination());
                        }
                        Err(_) => {
                            let n = self.inner.notify_timeouts.fetch_add(1, Ordering::Relaxed) + 1;
                            tracing::warn!(
                                deployment = %e.deployment,
                                seq = e.seq,
                                "notification to notificationChannels[{i}] (`{}`) got no answer \
                                 within {limit:?} and was given up (notify timeout; {n} given up \
                                 so far); the deployment goes on",
                                ch.redacted_destination()
                            );
                        }
                    }
                }
            }
        }
    }

    fn publish(&self) {
        let _ = self.status.send(Status::of(&self.state));
    }

    /// Runs stages until the deployment is over, then returns its report.
    pub(crate) async fn drive(mut self) -> Result<Report> {
        self.publish();
        while self.state.stage != Stage::Done {
            let r = match self.state.stage {
                Stage::Validation => self.validation().await,
                Stage::Preparation => self.preparation().await,
                Stage::BringUp => self.bring_up().await,
                Stage::WaitReady => self.wait_ready().await,
                Stage::Canary => self.canary_tick().await,
                Stage::Switch => self.switch_tick().await,
                Stage::Monitoring => self.monitoring_tick().await,
                Stage::Completion => self.completion().await,
                Stage::RollingBack => self.rolling_back().await,
                Stage::Done => Ok(()),
            };
            if let Err(e) = r {
                self.on_error(e).await?;
            }
        }
        self.free_lock().await?;
        let id = &self.state.id;
        let doing = format!("reading the records of {id} for its report");
        let records = self
            .on_journal(&doing, self.inner.journal.records(id))
            .await?;
        Report::from_records(&records)
    }

    async fn on_error(&mut self, e: Error) -> Result<()> {
        if is_journal_error(&e) {
            return Err(e);
        }
        tracing::warn!(deployment = %self.state.id, "stage {:?} failed: {e}", self.state.stage);
        let changed_nothing = matches!(self.state.stage, Stage::Validation | Stage::Preparation);
        let mut reason = e.to_string();
        if self.state.stage == Stage::RollingBack {
            let why = self
                .state
                .rollback_reason
                .as_deref()
                .unwrap_or("rolled back");
            let left = self.left_behind();
            reason = format!("rolling back ({why}) failed: {e}; {left}");
        } else if !changed_nothing && !self.state.config.rollback_on_error {
            reason = format!(
                "{e}; not rolled back (rollbackOnError is false): {}",
                self.left_behind()
            );
        } else if !changed_nothing {
            match self.start_rollback(format!("error: {e}"), Vec::new()).await {
                Ok(()) => return Ok(()),
                Err(err) if is_journal_error(&err) => return Err(err),
                // The rollback is journalled but its first switch back failed: the drive loop
                // carries on with the RollingBack stage, which switches back again and retires
                // the new track, or finishes as failed if that fails too. Returning the error
                // instead would leave the deployment unfinished and its lock held.
                Err(err) if self.state.stage == Stage::RollingBack => {
                    tracing::warn!(deployment = %self.state.id, "starting the rollback failed: {err}");
                    return Ok(());
                }
                Err(err) => {
                    let left = self.left_behind();
                    reason = format!("{reason}; the rollback could not start: {err}; {left}");
                }
            }
        }
        self.finish(Outcome::Failed { reason }, Vec::new(), Vec::new())
            .await
    }

    /// Where a deployment that ends failed without switching back leaves traffic and tracks,
    /// for the operator who must finish it by hand: nothing watches the new version any more.
    /// The router's last split is the last one it took (an apply that fails changes nothing),
    /// unless an apply was dropped on its timeout since ([`split_unknown`](Self::split_unknown)):
    /// that apply may still have reached the router, so which split it holds is not known.
    fn left_behind(&self) -> String {
        let new = &self.state.to;
        if self.split_unknown.load(Ordering::Relaxed) {
            let unknown = "applying a split got no answer in time and may still have reached \
                           the router, so which split the router holds is unknown";
            return match &self.state.from {
                Some(old) => format!(
                    "{unknown}: it may give {new} any share of traffic beside {old}, and \
                     nothing watches it: route all traffic to one of them and retire the other \
                     by hand"
                ),
                None => format!("{unknown}: {new} may serve traffic and nothing watches it"),
            };
        }
        match &self.state.from {
            Some(old) if self.announced > 0.0 => format!(
                "the router may still give {new} {}% of traffic (the last split it took) beside \
                 {old}, and nothing watches it: route all traffic to one of them and retire the \
                 other by hand",
                self.announced
            ),
            None if self.announced > 0.0 => format!(
                "{new} serves {}% of traffic and nothing watches it",
                self.announced
            ),
            _ => format!("{new} gets no traffic but may still run: retire it by hand"),
        }
    }

    /// Ends the deployment as failed with `reason`, abandoned where it stood (see
    /// [`Orchestrator::abandon`](crate::Orchestrator::abandon)): no effect, only the final
    /// record and its events.
    ///
    /// Nothing is under way in a deployment that has ended, so the final record says what was
    /// cut short instead: a promotion is over, an upgrade step or a backup started and not
    /// confirmed is left to an operator as a resume leaves it, and a restore started and not
    /// confirmed is named in the reason. The record then reads back as a finished one, for the
    /// resume that frees a platform lock the end could not free.
    pub(crate) async fn abandon(mut self, reason: &str) -> Result<()> {
        let stage = self.state.stage;
        let mut reason = format!("abandoned in the {stage} stage: {reason}");
        let mut kinds = Vec::new();
        self.end_promotion();
        match self.state.in_flight.clone() {
            Some(InFlight::Step { .. }) => self.hand_over_step_in_flight(&mut kinds),
            Some(InFlight::Backup { label, .. }) => {
                let why = "the deployment was abandoned before it was confirmed".to_owned();
                self.backup_unconfirmed(&label, why, &mut kinds);
            }
            Some(InFlight::Restore { id }) => {
                self.state.in_flight = None;
                reason.push_str(&format!(
                    "; restoring backup {id} was started and its end was not journalled: check \
                     the database, and restore backup {id} by hand if it was not"
                ));
            }
            None => {}
        }
        self.finish(Outcome::Failed { reason }, Vec::new(), kinds)
            .await?;
        self.free_lock().await
    }

    /// Ends a deployment refused right after its first record (the service's lock held by
    /// another deployment, its new track already running) as failed with `reason`,
    /// journalled and announced like any end, so that it is not found unfinished. The lock it
    /// took, or may have taken, was freed by then, unless `lock_left` says why not: the end
    /// then carries an anomaly, as [`free_lock`](Self::free_lock) records one, naming the
    /// deployment whose resume frees it.
    pub(crate) async fn refused(&mut self, reason: String, lock_left: Option<Error>) -> Result<()> {
        let (service, id) = (&self.state.service, &self.state.id);
        let kinds = lock_left.map(|e| {
            lock_anomaly(format!(
                "the deployment lock of {service} may still be held by this deployment, which \
                 has ended, so every later deployment of {service} may be refused: freeing it \
                 failed ({e}); resume deployment {id} to free it"
            ))
        });
        self.finish(
            Outcome::Failed { reason },
            Vec::new(),
            kinds.into_iter().collect(),
        )
        .await
    }

    /// Frees the platform's deployment lock of the service, the deployment having ended (see
    /// [`unlock`]). One the platform would not free is journalled as an anomaly, which the
    /// report shows and notifiers announce, naming the deployment whose resume frees it:
    /// until then every later deployment of the service is refused.
    async fn free_lock(&mut self) -> Result<()> {
        let (service, id) = (&self.state.service, &self.state.id);
        let limit = self.state.config.max_deployment_duration;
        let Err(e) = unlock(self.inner.platform.as_ref(), service, id, limit).await else {
            return Ok(());
        };
        tracing::warn!(deployment = %id, "freeing the platform's deployment lock failed: {e}");
        let summary = format!(
            "the deployment lock of {service} is still held by this deployment, which has \
             ended, so every later deployment of {service} is refused: freeing it failed ({e}); \
             resume deployment {id} to free it"
        );
        self.commit(Vec::new(), vec![lock_anomaly(summary)]).await
    }

    async fn finish(
        &mut self,
        outcome: Outcome,
        effects: Vec<Effect>,
        mut kinds: Vec<EventKind>,
    ) -> Result<()> {
        let kind = match &outcome {
            Outcome::Succeeded => EventKind::Completed {
                version: self.state.to.version.to_string(),
            },
            Outcome::RolledBack { reason } => EventKind::RolledBack {
                reason: reason.clone(),
            },
            Outcome::Blocked { reason } => EventKind::Blocked {
                reason: reason.clone(),
            },
            Outcome::Failed { reason } => EventKind::Failed {
                reason: reason.clone(),
            },
        };
        if !effects.is_empty() {
            // The effects get a record of their own, in the current stage: a crash before they
            // are carried out resumes this stage, which carries them out again.
            self.commit(effects, std::mem::take(&mut kinds)).await?;
        }
        kinds.push(kind);
        kinds.push(EventKind::PhaseChanged {
            phase: Phase::Finished,
        });
        self.state.stage = Stage::Done;
        // An operator's pause has nothing left to hold once the deployment is over; a
        // finished status that still said paused would ask for a resume that can do nothing.
        self.state.paused = false;
        self.state.outcome = Some(outcome);
        self.commit(Vec::new(), kinds).await?;
        self.record_success();
        Ok(())
    }

    /// Records the new version in the validator's fleet, as what runs, once the deployment's
    /// success is journalled: later deployments are validated against it.
    fn record_success(&self) {
        let succeeded = self.state.outcome.as_ref().is_some_and(Outcome::is_success);
        if succeeded && let Some(v) = &self.inner.validator {
            v.record(&self.state.service, vec![self.state.to.version.clone()]);
        }
    }

    async fn enter(
        &mut self,
        stage: Stage,
        effects: Vec<Effect>,
        mut kinds: Vec<EventKind>,
    ) -> Result<()> {
        let before = self.state.stage.phase();
        self.state.stage = stage;
        if stage.phase() != before {
            kinds.push(EventKind::PhaseChanged {
                phase: stage.phase(),
            });
        }
        self.commit(effects, kinds).await
    }

    /// Waits until `target`, serving operator commands meanwhile. `false` if a command moved
    /// the deployment to another stage or started a promotion (an operator's promote, which
    /// the stage's next turn finishes).
    async fn wait_until(&mut self, target: Timestamp) -> Result<bool> {
        let stage = self.state.stage;
        let promoting = self.state.promoting;
        loop {
            let now = self.now();
            if now >= target {
                return Ok(true);
            }
            let d = target.saturating_duration_since(now);
            tokio::select! {
                cmd = self.commands.recv() => {
                    if let Some((op, reply)) = cmd {
                        let seq = self.seq;
                        let r = self.handle(op).await;
                        self.answer(r, seq, reply)?;
                        if self.state.stage != stage || self.state.promoting != promoting {
                            return Ok(false);
                        }
                    }
                }
                () = tokio::time::sleep(d) => return Ok(true),
            }
        }
    }

    /// Replies to an operator's command with its result `r` (`seq`: the journal's sequence
    /// number before the command was served), and answers what the deployment makes of it.
    ///
    /// A refusal changed nothing and is the operator's alone. A command that journalled a
    /// change and then failed to carry it out (a promotion whose switch the router refused,
    /// say) is the deployment's error too: it goes back to the stage, so the error path of
    /// any failed stage follows (a rollback, or the end as failed) instead of the state going
    /// on as if the change were made. A rollback already journalled is the exception: the
    /// rolling-back stage that follows switches back again.
    fn answer(&self, r: Result<()>, seq: u64, reply: Reply) -> Result<()> {
        let _ = reply.send(r.as_ref().map(|_| ()).map_err(Clone::clone));
        match r {
            Err(e) if is_journal_error(&e) => Err(e),
            Err(e)
                if self.seq != seq
                    && !matches!(self.state.stage, Stage::RollingBack | Stage::Done) =>
            {
                Err(e)
            }
            _ => Ok(()),
        }
    }

    async fn handle(&mut self, op: Operation) -> Result<()> {
        let id = self.state.id.clone();
        match op {
            Operation::Pause => {
                // A pause holds weights, or the old version warm: a rollback (whose switch back
                // must not wait) and a deployment past the old version's retire (which only
                // finishes forward) have neither, so it is refused there rather than journalled
                // and announced as if it held anything. Commands a watch's read held behind an
                // abort reach the rollback so (see `serve_waiting`).
                let why = match self.state.stage {
                    Stage::RollingBack | Stage::Done => Some(
                        "the deployment is already over or rolling back: nothing is left to hold",
                    ),
                    _ if self.state.old_retired => Some(
                        "the old version is retired: the deployment only finishes forward, and \
                         nothing is left to hold",
                    ),
                    _ => None,
                };
                if let Some(why) = why {
                    return Err(Error::conflict("pause", &id, why));
                }
                if self.state.paused {
                    return Ok(());
                }
                self.state.paused = true;
                self.commit(Vec::new(), vec![EventKind::Paused]).await
            }
            Operation::Resume => {
                let now = self.now();
                let was_paused = std::mem::replace(&mut self.state.paused, false);
                // An indefinite pause step of the policy waits for this resume too; a timed
                // one keeps its own clock. Not a step the canary has not reached: paused
                // before its first decision (while its track started), the canary has begun
                // no step, and the resume lifts the operator's pause only, as Argo Rollouts
                // adds a pause step's condition only once the rollout reaches it.
                if self.state.stage == Stage::Canary
                    && let Some(run) = self.state.canary.clone()
                    && run.controller.started_at().is_some()
                    && matches!(
                        run.policy.steps.get(run.controller.step()),
                        Some(Step::Pause(p)) if p.duration.is_none()
                    )
                {
                    // A pause step whose weight before it is not in force yet has not begun:
                    // the resume lifts the operator's pause only (see `hold_after_resume`),
                    // whatever the controller would answer it, and is announced only if there
                    // was one to lift.
                    if self.pending_weight().is_some()
                        && let Some(why) = self.kept_in_place(now)
                    {
                        let kinds = was_paused.then_some(EventKind::Resumed);
                        return self
                            .hold_after_resume(why, kinds.into_iter().collect())
                            .await;
                    }
                    let mut c = controller_of(run.clone())?;
                    let decision = c
                        .command(CanaryCommand::Resume, now)
                        .map_err(|e| Error::conflict("resume", &id, e.to_string()))?;
                    return self
                        .carry_out(c, decision, &run.last_reason, vec![EventKind::Resumed])
                        .await;
                }
                if !was_paused {
                    // Nothing to resume: as a second pause, it changes and announces nothing.
                    return Ok(());
                }
                self.commit(Vec::new(), vec![EventKind::Resumed]).await
            }
            Operation::Abort => match self.state.stage {
                Stage::Done | Stage::RollingBack => Err(Error::conflict(
                    "abort",
                    &id,
                    "the deployment is already over or rolling back",
                )),
                Stage::Validation | Stage::Preparation => {
                    self.finish(
                        Outcome::Failed {
                            reason: "aborted by an operator before any change".into(),
                        },
                        Vec::new(),
                        Vec::new(),
                    )
                    .await
                }
                _ => {
                    self.start_rollback("aborted by an operator".into(), Vec::new())
                        .await
                }
            },
            Operation::Promote => match self.state.stage {
                Stage::Canary | Stage::Switch if self.state.promoting => {
                    self.promote_under_way().await
                }
                Stage::Canary => {
                    let now = self.now();
                    let Some(run) = self.state.canary.clone() else {
                        return Err(Error::conflict("promote", &id, "no canary analysis runs"));
                    };
                    let mut c = controller_of(run.clone())?;
                    let decision = c
                        .command(CanaryCommand::Promote, now)
                        .map_err(|e| Error::conflict("promote", &id, e.to_string()))?;
                    self.state.canary = Some(store(c, run.last_reason));
                    self.promote(vec![EventKind::AnalysisResult { decision }], true)
                        .await
                }
                Stage::Switch => {
                    let why = "promoted by an operator: the switch skips its remaining steps, \
                               and the new version takes all traffic";
                    let kinds = vec![self.promotion_decided(why.into())];
                    self.promote(kinds, true).await
                }
                Stage::Monitoring => {
                    let why = "promoted by an operator: the watch after promotion ends early, \
                               and completion retires the old version after its warm delay";
                    let mut kinds = vec![self.promotion_decided(why.into())];
                    if std::mem::replace(&mut self.state.paused, false) {
                        kinds.push(EventKind::Resumed);
                    }
                    self.enter(Stage::Completion, Vec::new(), kinds).await
                }
                Stage::Completion => self.promote_in_completion().await,
                _ => Err(Error::conflict(
                    "promote",
                    &id,
                    format!("nothing to promote in stage {:?}", self.state.stage),
                )),
            },
        }
    }

    fn drain(&self) -> Duration {
        match self.state.strategy {
            StrategyKind::Canary => self.state.config.canary_config.drain,
            _ => self.state.config.blue_green_config.drain,
        }
    }

    /// Whether a rollback trigger asks to hold: one firing with the hold action, or one gone
    /// stale whose missing data asks to hold (a metrics outage). No evidence is no pass: a
    /// held canary or switch moves no weight, a held promotion keeps the canary at its share
    /// once its grown track is ready, and a held watch does not end, until the triggers clear
    /// or the deadline comes. An operator's promotion goes through a hold.
    ///
    /// An arm that serves no traffic (the new version at 0%, the old one at 100%) can have no
    /// data: a trigger gone stale on it holds nothing, nor rolls back, and neither does it
    /// during its `staleAfter` after the arm began taking traffic, before its first scrape (see
    /// [`triggers_ask`](Self::triggers_ask) and `feed_triggers`). A real outage goes on
    /// holding at the first weight once that grace is over.
    fn triggers_hold(&self, now: Timestamp) -> bool {
        self.triggers_ask(now) == Some(serin_triggers::Action::Hold)
    }

    fn past_deadline(&self, now: Timestamp) -> bool {
        now >= self.state.deadline
    }

    fn deadline_reason(&self) -> String {
        format!(
            "the deployment did not finish within maxDeploymentDuration {:?}",
            self.state.config.max_deployment_duration
        )
    }

    /// Rolls back for `maxDeploymentDuration`, run out before promotion (the new track
    /// starting, the canary, the switch), announced as a deadline as after promotion, so that
    /// the timeline says why before the rollback starts.
    async fn roll_back_at_deadline(&mut self) -> Result<()> {
        let kinds = vec![self.deadline_reached(&self.max_duration_field())];
        self.roll_back(self.deadline_reason(), kinds).await
    }

    /// `maxDeploymentDuration` and its value, as deadline events name it.
    fn max_duration_field(&self) -> String {
        format!(
            "maxDeploymentDuration ({})",
            human(self.state.config.max_deployment_duration)
        )
    }

    /// `maxDeploymentDuration` ran out in preparation: no track came up and no traffic moved,
    /// so the deployment fails with nothing to roll back.
    fn deadline_in_preparation(&self) -> EventKind {
        EventKind::DeadlineReached {
            phase: self.state.stage.phase(),
            action: format!(
                "{} ran out before anything was deployed: the deployment fails, with \
                 nothing to roll back",
                self.max_duration_field()
            ),
        }
    }

    /// The deadline `field` ran out in the current phase, before promotion: a rollback follows.
    fn deadline_reached(&self, field: &str) -> EventKind {
        EventKind::DeadlineReached {
            phase: self.state.stage.phase(),
            action: format!("{field} ran out before promotion: rolling back"),
        }
    }
}

/// The anomaly of a deployment lock the platform may still hold for a deployment that has
/// ended: every later deployment of the service is refused until it is freed.
fn lock_anomaly(summary: String) -> EventKind {
    EventKind::Anomaly {
        source: "platform".into(),
        severity: "warning".into(),
        summary,
    }
}

/// The last split `effects` apply, if any.
fn last_split(effects: &[Effect]) -> Option<&TrafficSplit> {
    effects.iter().rev().find_map(|e| match e {
        Effect::Apply { split } => Some(split),
        _ => None,
    })
}

/// All traffic to `to`, with `other` kept in the split at 0%.
pub(crate) fn split_all(to: &Track, other: Option<&Track>) -> Result<TrafficSplit> {
    let others: Vec<&str> = other.map(|t| t.as_str()).into_iter().collect();
    TrafficSplit::all_to(to.as_str(), &others)
        .map_err(|e| Error::invalid("split", to, e.to_string()))
}

/// `percent` to `new`, the rest to `old`.
pub(crate) fn split_percent(old: &Track, new: &Track, percent: u8) -> Result<TrafficSplit> {
    let p = percent.min(100);
    TrafficSplit::from_percents([(old.as_str(), 100 - p), (new.as_str(), p)])
        .map_err(|e| Error::invalid("split", p, e.to_string()))
}
