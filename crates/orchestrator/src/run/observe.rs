//! Reading both arms' metrics for a window, summarising them for the report, and feeding the
//! trigger engine.

use std::sync::Arc;
use std::time::Duration;

use serin_signals::{
    Arm, HealthSignal, Measurement, Metric, MetricQuery, Observation, Timestamp, Track, Window,
};
use serin_triggers::{Action as TriggerAction, Engine, MissingData, TriggerConfig, TriggerState};

use crate::error::Result;
use crate::event::EventKind;
use crate::sample::{ArmSample, Sample};

use super::{Operation, Runner};

/// What a watch reads for one window: each metric of both arms, and both tracks' health
/// signals.
pub(super) struct Observed {
    /// Each metric, the old track's observation and the new one's.
    pub(super) metrics: Vec<(Metric, Observation, Observation)>,
    canary_signals: Vec<HealthSignal>,
    stable_signals: Vec<HealthSignal>,
}

/// How far ahead of the answer a health result may be dated before it is warned of (it is
/// taken as of the answer either way): clocks synchronised over a network differ by
/// milliseconds.
const SKEW_WARNING: Duration = Duration::from_secs(1);

/// An operator's abort cut a watch's read short (see [`Runner::watch_read`]).
struct Aborted;

impl Runner {
    /// The metrics the judges and triggers read.
    fn metrics(&self) -> Vec<Metric> {
        // Error rate and latency are always read: the report charts them for both arms.
        let mut out = vec![Metric::ErrorRate, Metric::Latency];
        let mut add = |m: Metric| {
            if !out.contains(&m) {
                out.push(m);
            }
        };
        if let Some(run) = &self.state.canary {
            for j in &run.judges {
                serin_canary::judge::Judge::analysed_metrics(j)
                    .into_iter()
                    .for_each(&mut add);
            }
            if let Some(p) = &run.policy.pacing {
                p.metrics().cloned().for_each(&mut add);
            }
            if let Some(g) = &run.policy.promotion {
                add(g.metric.clone());
            }
        }
        for t in &self.state.triggers.config().triggers {
            match t {
                TriggerConfig::MetricThreshold(c) => add(c.metric.clone()),
                TriggerConfig::ResourceUsage(c) => add(c.resource.metric()),
                TriggerConfig::ErrorSpike(_) => add(Metric::ErrorRate),
                TriggerConfig::DependencyFailure(c) => {
                    if let Some(m) = &c.call_metric {
                        add(m.clone());
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Each metric of both arms over the window from `observed_until` to `monitoring.readDelay`
    /// before `now` (the window read now, see [`read_at`](Self::read_at)), and both tracks'
    /// health signals. A source error is no data for that arm: never a pass.
    ///
    /// `None` when an operator's abort cut a read short: the window is not acted on, and the
    /// abort is served first. Acting on a window without the reads the abort cut (a trigger
    /// whose missing data rolls back, say) would start a rollback of its own, and answer the
    /// operator that the deployment is already rolling back.
    pub(super) async fn observe(&mut self, now: Timestamp) -> Option<Observed> {
        let end = now.saturating_sub(self.state.config.monitoring.read_delay);
        let start = self.state.observed_until.min(end);
        let window = match Window::new(start, end) {
            Ok(w) => w,
            Err(_) => Window::ending_at(end, Duration::from_millis(1)),
        };
        self.state.observed_until = end;
        let observed = self.read_window(window).await.ok()?;
        self.sample = Some(self.summarise(window, &observed.metrics));
        Some(observed)
    }

    /// When the window ending at `end` is read: `monitoring.readDelay` after it, so that the
    /// samples a source records a little after the instant they belong to are in it.
    pub(super) fn read_at(&self, end: Timestamp) -> Timestamp {
        end.saturating_add(self.state.config.monitoring.read_delay)
    }

    /// Serves the commands waiting, in the order they came: those a watch's read held when an
    /// operator's abort cut it short (see [`observe`](Self::observe)), the abort among them.
    /// Served as during a readiness wait, which a watch may be part of (a promotion's).
    pub(super) async fn serve_waiting(&mut self) -> Result<()> {
        while let Ok((op, reply)) = self.commands.try_recv() {
            self.serve_while_waiting_ready(op, reply).await?;
        }
        Ok(())
    }

    /// The reads of [`observe`](Self::observe) over `window`, up to the first an abort cuts
    /// short.
    async fn read_window(&mut self, window: Window) -> Result<Observed, Aborted> {
        let new = self.new_track();
        let old = self.old_track();
        let baseline = old.clone().unwrap_or(Track::Stable);
        let mut metrics = Vec::new();
        for metric in self.metrics() {
            let b = self.query(&metric, &baseline, window).await?;
            let c = self.query(&metric, &new, window).await?;
            metrics.push((metric, b, c));
        }
        let canary_signals = self.health_signals(&new).await?;
        let stable_signals = match old {
            Some(old) => self.health_signals(&old).await?,
            None => Vec::new(),
        };
        Ok(Observed {
            metrics,
            canary_signals,
            stable_signals,
        })
    }

    /// One metric of one track over `window`; a source error is no data (and a warning), and
    /// so is a source that has not answered at the deadline (see
    /// [`watch_read`](Self::watch_read)): the stage's next turn ends the deployment as the
    /// deadline does.
    ///
    /// So is an answer to another question (another metric, track or window than asked, which
    /// a [`MetricsSource`](serin_signals::MetricsSource) must not give): a baseline's answer
    /// carrying the canary's data would have the judges compare the canary with itself, and a
    /// window dated past `now` would move the triggers' clock ahead, so that every later window
    /// looked late to them and was dropped.
    async fn query(
        &mut self,
        metric: &Metric,
        track: &Track,
        window: Window,
    ) -> Result<Observation, Aborted> {
        let query = MetricQuery::new(metric.clone(), track.clone(), window);
        let metrics = Arc::clone(&self.backends.metrics);
        Ok(match self.watch_read(metrics.query(&query)).await? {
            Some(Ok(o)) if (&o.metric, &o.track, o.window) == (metric, track, window) => o,
            Some(Ok(o)) => {
                tracing::warn!(
                    deployment = %self.state.id,
                    "metrics of {track} unavailable: `{}` answered {} of {} over {} when asked \
                     for {metric} of {track} over {window}",
                    metrics.name(),
                    o.metric,
                    o.track,
                    o.window
                );
                no_data(metric, track, window)
            }
            Some(Err(e)) => {
                tracing::warn!(deployment = %self.state.id, "metrics of {track} unavailable: {e}");
                no_data(metric, track, window)
            }
            None => {
                tracing::warn!(
                    deployment = %self.state.id,
                    "metrics of {track} unavailable: no answer before maxDeploymentDuration \
                     ran out"
                );
                no_data(metric, track, window)
            }
        })
    }

    /// The health source's signals of `track`; none when it fails or has not answered by the
    /// deadline (see [`watch_read`](Self::watch_read)). Signals of another track, which a
    /// [`HealthSource`](serin_signals::HealthSource) must not answer, are left out (and
    /// warned of), as a metrics answer to another question is: they would stand for `track`'s.
    ///
    /// A result dated after the answer came is taken as of then: a probe cannot have completed
    /// later, and its date would stand for that future, so that one passing result from a
    /// prober whose clock ran an hour ahead would keep a trigger seeing a fresh pass for an
    /// hour, however the track fares meanwhile. A steady skew of a few milliseconds is only
    /// noted, more than [`SKEW_WARNING`] is warned of.
    async fn health_signals(&mut self, track: &Track) -> Result<Vec<HealthSignal>, Aborted> {
        let health = Arc::clone(&self.backends.health);
        let signals = self.watch_read(health.signals(track)).await?;
        let answered = self.now();
        let (mut own, other): (Vec<_>, Vec<_>) = signals
            .and_then(Result::ok)
            .unwrap_or_default()
            .into_iter()
            .partition(|s| &s.track == track);
        if let Some(s) = other.first() {
            tracing::warn!(
                deployment = %self.state.id,
                "health of {track}: `{}` answered {} result(s) of other tracks ({} among them) \
                 when asked for those of {track}; they are left out",
                health.name(),
                other.len(),
                s.track
            );
        }
        let ahead = own
            .iter()
            .map(|s| s.at.saturating_duration_since(answered))
            .max()
            .unwrap_or_default();
        if ahead > SKEW_WARNING {
            tracing::warn!(
                deployment = %self.state.id,
                "health of {track}: `{}` dated result(s) up to {ahead:?} after they were \
                 answered; they are taken as of the answer",
                health.name(),
            );
        }
        for s in &mut own {
            s.at = s.at.min(answered);
        }
        Ok(own)
    }

    /// A watch's read `call`, dropped if it has not answered by the deadline (as
    /// [`by_deadline`](Self::by_deadline) drops it; `None`) or when an operator aborts
    /// ([`Aborted`]): an abort must not wait for a source that never answers.
    ///
    /// Commands are not served here, halfway through a window whose observations the stage
    /// then acts on: those that come while the call runs are held, and once it ends (or the
    /// abort cuts it short) put back in the order they came, for the stage to serve at its
    /// next wait, as it would had they come just after the window. A window an abort cut
    /// short reads no more, and is not acted on (see [`observe`](Self::observe)).
    async fn watch_read<T>(&mut self, call: impl Future<Output = T>) -> Result<Option<T>, Aborted> {
        let left = self.state.deadline.saturating_duration_since(self.now());
        let deadline = tokio::time::sleep(left);
        tokio::pin!(call, deadline);
        let mut held = Vec::new();
        let answer = loop {
            tokio::select! {
                biased;
                done = &mut call => break Ok(Some(done)),
                Some(cmd) = self.commands.recv() => {
                    let abort = cmd.0 == Operation::Abort;
                    held.push(cmd);
                    if abort {
                        break Err(Aborted);
                    }
                }
                () = &mut deadline => break Ok(None),
            }
        };
        if !held.is_empty() {
            while let Ok(cmd) = self.commands.try_recv() {
                held.push(cmd);
            }
            for cmd in held {
                // The receiver is this runner's own: the channel cannot be closed.
                let _ = self.requeue.send(cmd);
            }
        }
        answer
    }

    /// `call`, dropped if it has not answered by the deployment's deadline
    /// (`maxDeploymentDuration`): a source or platform that never answers must not hold the
    /// deployment past it. For reads whose caller cannot serve commands meanwhile; `None` when
    /// the call was dropped.
    pub(super) async fn by_deadline<T>(&self, call: impl Future<Output = T>) -> Option<T> {
        let left = self.state.deadline.saturating_duration_since(self.now());
        tokio::time::timeout(left, call).await.ok()
    }

    /// The compact summary of one observation, journalled with the next record for the report.
    fn summarise(
        &self,
        window: Window,
        observations: &[(Metric, Observation, Observation)],
    ) -> Sample {
        let mut canary = ArmSample::new(
            Arm::Canary,
            self.state.to.version.to_string(),
            self.state.to.track.to_string(),
        );
        let mut baseline = self
            .state
            .from
            .as_ref()
            .map(|p| ArmSample::new(Arm::Baseline, p.version.to_string(), p.track.to_string()));
        for (_, b, c) in observations {
            if let Some(base) = baseline.as_mut() {
                base.absorb(b);
            }
            canary.absorb(c);
        }
        Sample {
            window,
            weight_percent: self.state.weight,
            arms: baseline.into_iter().chain([canary]).collect(),
        }
    }

    /// Feeds the trigger engine (the old track as `stable`, the new one as `canary`) and
    /// answers the events to record, the rollback reason if one fired, and whether one holds.
    ///
    /// An observation the engine cannot read (a source answering counts for a gauge's metric)
    /// or refuses leaves every trigger on that metric and track without it. That is announced
    /// as a warning anomaly the first time, because those triggers are blind until the source
    /// is fixed.
    ///
    /// An arm that serves no traffic (the new version at 0%: paused at the start, at a first
    /// pause before any weight, or between steps at 0%; the old one once the new takes all
    /// traffic) can have no data, and a trigger on it whose missing data asks to roll back
    /// would go stale for that alone: its silence says nothing of either version, as it holds
    /// nothing (see [`triggers_ask`](Self::triggers_ask)). There the stale trigger is announced
    /// as a warning anomaly and does not roll back. Nor right after its arm begins taking
    /// traffic: metrics need a scrape interval or two to appear, so a trigger on that arm
    /// gets its own `staleAfter`, counted from when the arm began taking traffic (journalled,
    /// so a restart changes nothing), before missing data rolls back or holds — as a trigger
    /// gets its `staleAfter` from the start of the deployment. The first window past that
    /// grace that still brings it no usable data rolls back. A trigger that fires on its data
    /// rolls back at any weight, in the grace too.
    pub(super) fn feed_triggers(
        &mut self,
        observed: &Observed,
        now: Timestamp,
    ) -> (Vec<EventKind>, Option<String>, bool) {
        let excuse = self.excuse(now);
        // What was read is dated up to `now` (a health result up to when it was answered),
        // however long ago the engine last ticked (a metrics window longer than a trigger's
        // staleAfter, a restart): the engine refuses inputs further past its clock than that.
        let read_by = now.max(self.now());
        let engine = &mut self.state.triggers;
        engine.advance_clock(read_by);
        let config = engine.config();
        let mut kinds = Vec::new();
        let mut refused = |e: serin_triggers::Error, what: String| {
            let summary = format!("{e}; the triggers on {what} go without it");
            tracing::warn!(deployment = %self.state.id, "{summary}");
            if self.unreadable.insert(summary.clone()) {
                kinds.push(EventKind::Anomaly {
                    source: "rollback triggers".into(),
                    severity: "warning".into(),
                    summary,
                });
            }
        };
        for (_, b, c) in &observed.metrics {
            for obs in [
                relabel(b.clone(), Track::Stable),
                relabel(c.clone(), Track::Canary),
            ] {
                if let Err(e) = engine.observe(&obs) {
                    refused(e, format!("`{}` of `{}`", obs.metric, obs.track));
                }
            }
        }
        for (signals, label) in [
            (&observed.canary_signals, Track::Canary),
            (&observed.stable_signals, Track::Stable),
        ] {
            for s in signals {
                let mut s = s.clone();
                s.track = label.clone();
                if let Err(e) = engine.observe_health(&s) {
                    refused(e, format!("the probes of `{}`", s.track));
                }
            }
        }
        engine.tick(now);
        let mut rollback = None;
        for e in engine.drain_events() {
            let excused = match (e.action, e.to) {
                (Some(TriggerAction::Rollback), TriggerState::Stale { .. }) => config
                    .triggers
                    .iter()
                    .find(|t| t.id() == e.trigger)
                    .and_then(|t| excuse.why(t)),
                _ => None,
            };
            if let Some(why) = excused {
                kinds.push(EventKind::Anomaly {
                    source: format!("trigger `{}`", e.trigger),
                    severity: "warning".into(),
                    summary: format!("{}; {why}", e.evidence),
                });
                continue;
            }
            match e.action {
                Some(TriggerAction::Rollback) => {
                    if rollback.is_none() {
                        rollback = Some(format!(
                            "trigger `{}` fired: {}",
                            e.trigger, e.evidence.reason
                        ));
                    }
                    kinds.push(EventKind::TriggerFired { event: e });
                }
                Some(a) => kinds.push(EventKind::Anomaly {
                    source: format!("trigger `{}`", e.trigger),
                    severity: a.to_string(),
                    summary: e.evidence.to_string(),
                }),
                None => {}
            }
        }
        if rollback.is_none() {
            // The silence is dated from the trigger's last data, as its own evidence does:
            // when it went stale is a `staleAfter` later, or later still if it went stale
            // while excused.
            rollback = stale(engine, &excuse)
                .find(|t| missing_data(t) == MissingData::Fire)
                .map(|t| {
                    let since = engine
                        .last_data(t.id())
                        .map_or_else(|| "since the start".to_owned(), |at| format!("since {at}"));
                    format!(
                        "trigger `{}` has had no usable data {since}, and still has none now \
                         its track serves traffic (for longer than its staleAfter {:?}): \
                         missing data asks to rollback",
                        t.id(),
                        stale_after(&t)
                    )
                });
        }
        let hold = self.triggers_ask(now) == Some(TriggerAction::Hold);
        (kinds, rollback, hold)
    }

    /// What excuses a rollback trigger's missing data at `now` (see
    /// [`feed_triggers`](Self::feed_triggers)).
    fn excuse(&self, now: Timestamp) -> Excuse {
        Excuse {
            silent: self.silent_arm(),
            canary_since: self.state.canary_traffic_since,
            baseline_since: self.state.baseline_traffic_since,
            now,
        }
    }

    /// The engine's label of the arm that serves no traffic now, if one does not: the new
    /// version's (`canary`) at 0%, the old one's (`stable`) at 100%.
    pub(super) fn silent_arm(&self) -> Option<Track> {
        if self.state.weight <= 0.0 {
            Some(Track::Canary)
        } else if self.state.weight >= 100.0 {
            Some(Track::Stable)
        } else {
            None
        }
    }

    /// What the rollback triggers ask for at `now`: the engine's current action, without the
    /// missing-data action of a trigger gone stale on the arm that serves no traffic (see
    /// [`silent_arm`](Self::silent_arm)), or on an arm that began taking traffic less than the
    /// trigger's `staleAfter` ago. Such a trigger can have no data (yet), and would otherwise
    /// hold a canary at 0% for good, a finished switch until its deadline, or a canary at its
    /// first weight before its first scrape: there only what the data asks for counts (a
    /// trigger firing, or breached again inside its cooldown). A stale trigger on an arm that
    /// has served traffic for longer (a real metrics outage) asks as it says.
    pub(super) fn triggers_ask(&self, now: Timestamp) -> Option<TriggerAction> {
        let engine = &self.state.triggers;
        let stale = stale(engine, &self.excuse(now))
            .map(|t| missing_data(&t).action())
            .max();
        engine.data_action().max(stale)
    }

    /// The ids of the rollback triggers that hold at `now`, for the evidence of what they
    /// hold: those firing at the hold level, and those gone stale whose missing data asks to
    /// hold and is not excused (see [`triggers_ask`](Self::triggers_ask)). Empty when none
    /// does so by its state alone (a breach inside its cooldown, say).
    pub(super) fn holding_triggers(&self, now: Timestamp) -> Vec<String> {
        let engine = &self.state.triggers;
        let mut ids: Vec<String> = engine
            .states()
            .filter(|(_, s)| {
                matches!(
                    s,
                    TriggerState::Firing {
                        action: TriggerAction::Hold,
                        ..
                    }
                )
            })
            .map(|(id, _)| id.to_owned())
            .collect();
        for t in stale(engine, &self.excuse(now)) {
            if missing_data(&t) == MissingData::Hold && !ids.iter().any(|id| id == t.id()) {
                ids.push(t.id().to_owned());
            }
        }
        ids
    }

    /// The rollback triggers of the new version that have judged nothing of it since `since`
    /// (its promotion, or when its arm began taking traffic): not one usable input (a metric
    /// its source does not report, a probe never recorded). Their silence is no evidence, yet
    /// with a `staleAfter` as long as the watch or the canary they never go stale within it.
    /// Those whose missing data only warns are left out.
    pub(super) fn triggers_without_data(&self, since: Timestamp) -> Vec<String> {
        let engine = &self.state.triggers;
        engine
            .config()
            .triggers
            .iter()
            .filter(|t| {
                *watched(t) == Track::Canary
                    && missing_data(t) != MissingData::Warn
                    && engine.last_data(t.id()).is_none_or(|at| at < since)
            })
            .map(|t| t.id().to_owned())
            .collect()
    }

    /// The anomaly that says `what` happens (`the promotion waits`) because `unfed` triggers
    /// have judged nothing of the new version, and `until` when; `None` when the same was
    /// last said of the same triggers, so that it is said once for each wait.
    pub(super) fn unfed_said(
        &mut self,
        unfed: Vec<String>,
        what: &str,
        until: &str,
    ) -> Option<EventKind> {
        if self.unfed_told.0 == what && self.unfed_told.1 == unfed {
            return None;
        }
        let said = EventKind::Anomaly {
            source: "rollback triggers".into(),
            severity: "hold".into(),
            summary: format!(
                "{what}: {} judged nothing of {} yet, having had no data of it; {until}",
                triggers_named(&unfed),
                self.state.to.version,
            ),
        };
        self.unfed_told = (what.to_owned(), unfed);
        Some(said)
    }
}

/// `rollback trigger `a``, or `rollback triggers `a`, `b``.
pub(super) fn triggers_named(ids: &[String]) -> String {
    let names: Vec<String> = ids.iter().map(|id| format!("`{id}`")).collect();
    let plural = if ids.len() == 1 { "" } else { "s" };
    format!("rollback trigger{plural} {}", names.join(", "))
}

/// What excuses a stale trigger's missing data: its arm serves no traffic, or began taking
/// traffic less than the trigger's `staleAfter` before `now`.
struct Excuse {
    /// The engine's label of the arm that serves no traffic, if one does not.
    silent: Option<Track>,
    /// When the new version's arm (`canary`) last began taking traffic.
    canary_since: Option<Timestamp>,
    /// When the old version's arm (`stable`) last began taking traffic again.
    baseline_since: Option<Timestamp>,
    now: Timestamp,
}

impl Excuse {
    /// Why `t`'s missing data says nothing of its version now, if it does not.
    fn why(&self, t: &TriggerConfig) -> Option<String> {
        let arm = watched(t);
        if self.silent.as_ref() == Some(arm) {
            return Some(
                "its track serves no traffic, so this rolls back only if the data is still \
                 missing once it does"
                    .into(),
            );
        }
        let since = match arm {
            Track::Canary => self.canary_since,
            Track::Stable => self.baseline_since,
            _ => None,
        }?;
        let grace = stale_after(t);
        (self.now.saturating_duration_since(since) <= grace).then(|| {
            format!(
                "its track began taking traffic at {since}, and its metrics may not have \
                 appeared yet: this rolls back only if the data is still missing {grace:?} \
                 (its staleAfter) after that"
            )
        })
    }
}

/// The triggers gone stale, but those whose missing data `excuse` covers.
fn stale<'a>(engine: &'a Engine, excuse: &'a Excuse) -> impl Iterator<Item = TriggerConfig> + 'a {
    let config = engine.config();
    engine.states().filter_map(move |(id, state)| {
        let TriggerState::Stale { .. } = state else {
            return None;
        };
        let t = config.triggers.iter().find(|t| t.id() == id)?;
        excuse.why(t).is_none().then(|| t.clone())
    })
}

/// A trigger's `staleAfter`: how long it goes without usable data before it is stale.
fn stale_after(t: &TriggerConfig) -> Duration {
    match t {
        TriggerConfig::MetricThreshold(c) => c.stale_after,
        TriggerConfig::HealthCheck(c) => c.effective_stale_after(),
        TriggerConfig::ErrorSpike(c) => c.stale_after,
        TriggerConfig::DependencyFailure(c) => c.stale_after,
        TriggerConfig::ResourceUsage(c) => c.stale_after,
    }
}

/// The track a trigger watches.
fn watched(t: &TriggerConfig) -> &Track {
    match t {
        TriggerConfig::MetricThreshold(c) => &c.track,
        TriggerConfig::HealthCheck(c) => &c.track,
        TriggerConfig::ErrorSpike(c) => &c.track,
        TriggerConfig::DependencyFailure(c) => &c.track,
        TriggerConfig::ResourceUsage(c) => &c.track,
    }
}

/// A trigger's `onMissingData`.
fn missing_data(t: &TriggerConfig) -> MissingData {
    match t {
        TriggerConfig::MetricThreshold(c) => c.on_missing_data,
        TriggerConfig::HealthCheck(c) => c.on_missing_data,
        TriggerConfig::ErrorSpike(c) => c.on_missing_data,
        TriggerConfig::DependencyFailure(c) => c.on_missing_data,
        TriggerConfig::ResourceUsage(c) => c.on_missing_data,
    }
}

fn no_data(metric: &Metric, track: &Track, window: Window) -> Observation {
    Observation::new(metric.clone(), track.clone(), window, Measurement::NoData)
}

fn relabel(mut obs: Observation, track: Track) -> Observation {
    obs.track = track;
    obs
}
