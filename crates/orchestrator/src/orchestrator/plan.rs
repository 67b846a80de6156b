//! The dry run: what would be deployed where, in which order, changing nothing.

use std::fmt;
use std::time::Duration;

use serin_canary::controller::{CanaryPolicy, OnInconclusive, Step};
use serin_signals::Track;
use serin_traffic::Plan;
use serin_triggers::{Action, TriggerConfig};

use crate::config::{DeploymentConfig, StrategyKind, human, whole_windows};
use crate::error::{Error, Result};
use crate::event::verdict_name;
use crate::run::split_all;
use crate::state::{Placement, UpgradeStep};

use super::Orchestrator;

/// What `plan` (the dry run) answers for one service: what runs, what would be deployed
/// where, and the ordered steps — nothing is changed.
#[derive(Debug, Clone)]
pub struct DeploymentPlan {
    /// The service.
    pub service: String,
    /// The strategy.
    pub strategy: StrategyKind,
    /// What runs now.
    pub from: Option<Placement>,
    /// What would run after.
    pub to: Placement,
    /// The ordered steps, one sentence each.
    pub steps: Vec<String>,
    /// The validated upgrade's checklist (empty without a validator); its steps are also in
    /// `steps`, in the phase they are carried out in.
    pub checklist: Vec<serin_compat::Step>,
    /// The traffic plan of a blue-green switch.
    pub traffic: Option<Plan>,
    /// The canary policy of a canary.
    pub canary: Option<CanaryPolicy>,
}

impl fmt::Display for DeploymentPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.from {
            Some(from) => writeln!(
                f,
                "{}: {from} -> {} by {}",
                self.service, self.to, self.strategy
            )?,
            None => writeln!(
                f,
                "{}: install {} by {}",
                self.service, self.to, self.strategy
            )?,
        }
        for (i, s) in self.steps.iter().enumerate() {
            writeln!(f, "  {:>2}. {s}", i + 1)?;
        }
        if let Some(p) = &self.traffic {
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// What a plan's validation line lists: the errors of a blocked change, the warnings of an
/// allowed one (`subject (code): message`, joined by `; `).
fn findings_worth_listing(val: &serin_compat::UpgradeValidation) -> Option<String> {
    use serin_compat::Severity;
    let floor = if val.is_allowed() {
        Severity::Warn
    } else {
        Severity::Error
    };
    let listed: Vec<String> = val
        .findings
        .iter()
        .filter(|f| f.severity >= floor)
        .map(serin_compat::Finding::one_line)
        .collect();
    (!listed.is_empty()).then(|| listed.join("; "))
}

/// What a canary by `config` (its `policy`) does, for the dry run: each weight with how long it
/// holds, how often it is judged, when it promotes and rolls back, and its pacing if set.
fn canary_summary(config: &DeploymentConfig, policy: &CanaryPolicy) -> String {
    let canary = &config.canary_config;
    // "No judge fails" alone is not a promotion: with the gate on, a canary whose judges had
    // too little data to fail it holds until its own error rate is shown below the bound.
    let gate = policy.promotion.as_ref().map_or(String::new(), |g| {
        format!(
            " and the canary's error rate is shown below {}% \
             (canaryConfig.promotionMaxErrorRate), holding until then",
            // As written (`0.07` reads 7%, not 7.000000000000001%).
            (g.max_error_rate * 100.0 * 1e6).round() / 1e6
        )
    });
    let mut out = format!(
        "weights {}, judged every {}; promote when no judge fails{gate}; roll back past \
         maxDuration {}; onInconclusive: {}",
        weights_held(&policy.steps, canary.metrics_window),
        human(canary.metrics_window),
        human(canary.max_duration),
        match canary.on_inconclusive {
            OnInconclusive::Hold =>
                "hold (at its weight until an operator decides or maxDuration runs out)",
            OnInconclusive::Rollback => "rollback",
        }
    );
    if let Some(judges) = canary.parity_judges.as_ref().and_then(|p| p.summary()) {
        out.push_str("; ");
        out.push_str(&judges);
    }
    if let Some(p) = &policy.pacing {
        out.push_str("; pacing: ");
        out.push_str(&match p.detectable_ratio {
            Some(r) => {
                format!("a raise waits until errors rule out {r}× the baseline's error rate")
            }
            None => "a raise waits on latency alone".to_owned(),
        });
        if let Some(budget) = p.exposure_budget {
            out.push_str(&format!(
                ", the first weight sized to an exposure budget of {budget} requests"
            ));
        }
    }
    out
}

/// Whether `trigger` can roll a deployment back: by its action, by a resource trigger's
/// rollback level, or by missing data that fires. A trigger that only warns or holds (the
/// `minThroughput` limit, a metric trigger with `action: warn`) never switches back, and the
/// dry run does not count it as a rollback trigger.
fn rolls_back(trigger: &TriggerConfig) -> bool {
    let (action, missing) = match trigger {
        TriggerConfig::MetricThreshold(c) => (c.action, c.on_missing_data),
        TriggerConfig::HealthCheck(c) => (c.action, c.on_missing_data),
        TriggerConfig::ErrorSpike(c) => (c.action, c.on_missing_data),
        TriggerConfig::DependencyFailure(c) => (c.action, c.on_missing_data),
        TriggerConfig::ResourceUsage(c) => (
            if c.rollback_percent.is_some() {
                Action::Rollback
            } else {
                Action::Warn
            },
            c.on_missing_data,
        ),
    };
    action == Action::Rollback || missing.action() == Action::Rollback
}

/// Each weight `steps` set, with how long it holds: the pauses and analyses until the next
/// weight (`10% held 1m → 40% held 1m`). Those before the first weight hold the canary at 0%
/// (`0% held until resumed → 20% held 1m`): an approval before any traffic is a hold too. A
/// pause ends at the first metrics window read at or after its end, so it is stated as it runs,
/// in whole `window`s, beside the pause as written where they differ (`held 3m (a 2m pause)`).
fn weights_held(steps: &[Step], window: Duration) -> String {
    let mut weights: Vec<(u8, Vec<String>)> = Vec::new();
    for step in steps {
        let hold = match step {
            Step::SetWeight(w) => {
                weights.push((*w, Vec::new()));
                continue;
            }
            Step::Pause(p) => p.duration.map_or("until resumed".to_owned(), |d| {
                let runs = whole_windows(d, window);
                if runs == d {
                    human(d)
                } else {
                    format!("{} (a {} pause)", human(runs), human(d))
                }
            }),
            Step::Analysis(a) => format!("by an analysis of up to {}", human(a.duration)),
            Step::SetCanaryScale(_) => continue,
        };
        match weights.last_mut() {
            Some((_, holds)) => holds.push(hold),
            None => weights.push((0, vec![hold])),
        }
    }
    let listed: Vec<String> = weights
        .into_iter()
        .map(|(w, holds)| {
            if holds.is_empty() {
                format!("{w}%")
            } else {
                format!("{w}% held {}", holds.join(" then "))
            }
        })
        .collect();
    listed.join(" → ")
}

impl Orchestrator {
    /// The dry run: for every target service, in the order [`run`](Self::run) would start
    /// them, what runs, where the new version would go and the ordered steps. Each service is
    /// validated against the fleet as the ones before it would leave it if they succeed, each
    /// target of a set at the version the platform runs it (a set that no order lets through
    /// is marked blocked for every service), and a service whose deployment lock another
    /// deployment holds, or whose new track runs already, is marked refused, as
    /// [`start`](Self::start) refuses it; with several targets, every other one is marked
    /// refused too, naming it, as the run then starts none of them. Reads the router and the
    /// platform (the lock without taking it); changes nothing.
    pub async fn plan(&self, config: &DeploymentConfig) -> Result<Vec<DeploymentPlan>> {
        // As the run does: a set validated as a whole is validated alone, service by service,
        // against the fleet it was validated against.
        let (order, set_blocked, mut fleet) = match self.rollout_groups(config).await {
            Ok((groups, running)) => (groups.concat(), None, running.or_else(|| self.fleet())),
            Err(Error::Blocked { reason, .. }) => {
                (config.target_services.clone(), Some(reason), self.fleet())
            }
            Err(e) => return Err(e),
        };
        // As the run does: one target's refused start refuses them all.
        let run_refused = self.run_refusal(config).await?;
        let mut out = Vec::new();
        for service in &order {
            let (backends, from, to) = self.prepare(config, service).await?;
            // As the run does: the route starts from the version the platform runs.
            if let Some(fleet) = fleet.as_mut() {
                super::set_running(fleet, service, from.as_ref());
            }
            let mut checklist = Vec::new();
            let mut steps = vec![match (&self.inner.validator, &fleet, &set_blocked) {
                (Some(_), _, Some(reason)) => {
                    format!("validation: BLOCKED — the target services together: {reason}")
                }
                (Some(v), Some(fleet), None) => {
                    let proposal =
                        serin_compat::Proposal::new().with(service.clone(), to.version.clone());
                    match v.validate_on(fleet, &proposal) {
                        Ok(val) => {
                            let head = if val.is_allowed() {
                                checklist = val.steps.clone();
                                format!("validation: {}", verdict_name(val.verdict))
                            } else {
                                "validation: BLOCKED".to_owned()
                            };
                            match findings_worth_listing(&val) {
                                Some(listed) => format!("{head} — {listed}"),
                                None => head,
                            }
                        }
                        Err(e) => format!("validation: BLOCKED — {e}"),
                    }
                }
                _ => "validation: no validator configured".to_owned(),
            }];
            if let Some(fleet) = fleet.as_mut() {
                fleet.set(service.clone(), vec![to.version.clone()]);
            }
            let limit = config.max_deployment_duration;
            if let Some(why) = self.start_refusal(service, &to.track, limit).await? {
                steps.insert(0, format!("start: REFUSED — {why}"));
            } else if let Some((other, why)) = &run_refused {
                let why = format!("the run starts nothing, as {other}'s start is refused: {why}");
                steps.insert(0, format!("start: REFUSED — {why}"));
            }
            // The pre-checks are the running version's: a first install has none, and a move
            // back to an older version skips them.
            let checks = match &from {
                None => "no pre-checks (nothing runs yet)",
                Some(f) if f.version > to.version => {
                    "no pre-checks (a move back to an older version)"
                }
                Some(_) => "pre-checks",
            };
            steps.push(match &self.inner.backup {
                Some(b) => format!("preparation: {checks}, backup by {}", b.name()),
                None => format!("preparation: {checks}, no backup provider"),
            });
            let runner = self
                .inner
                .steps
                .as_ref()
                .map_or("due for an operator".to_owned(), |r| {
                    format!("by the {} step runner", r.name())
                });
            let items: Vec<UpgradeStep> = checklist
                .iter()
                .cloned()
                .map(UpgradeStep::pending)
                .collect();
            for item in items.iter().filter(|i| i.is_pre(service)) {
                steps.push(format!(
                    "preparation: upgrade step {} ({runner})",
                    item.step
                ));
            }
            let bg = &config.blue_green_config;
            let instances = config.bring_up_instances(from.is_some());
            steps.push(format!(
                "bring up {} on {} with {instances} instance(s), wait until ready",
                to.version, to.track
            ));
            let mut traffic = None;
            let mut canary = None;
            match (&from, config.strategy) {
                (None, _) => steps.push(format!("route 100% to {} (first install)", to.track)),
                (Some(old), StrategyKind::BlueGreen) => {
                    let start = split_all(&old.track, Some(&to.track))?;
                    let granularity = backends.router.capabilities().weight_granularity();
                    let plan = bg.plan_on(
                        &start,
                        to.track.as_str(),
                        granularity,
                        backends.router.name(),
                    )?;
                    steps.push(format!(
                        "switch traffic {} -> {} ({}, {} step(s)), rollback triggers checked every {}",
                        old.track,
                        to.track,
                        bg.switch_as_written(),
                        plan.len(),
                        human(config.monitoring.check_interval)
                    ));
                    traffic = Some(plan);
                }
                (Some(old), _) => {
                    let policy = config.canary_config.policy()?;
                    steps.push(format!(
                        "canary {to} (canary arm) vs {old} (baseline arm): {}",
                        canary_summary(config, &policy)
                    ));
                    if let Some(full) = config.promotion_scale(&policy.steps) {
                        steps.push(format!(
                            "scale {} to {full} instance(s), rollback triggers checked every {} \
                             until ready",
                            to.track,
                            human(config.monitoring.check_interval)
                        ));
                    }
                    canary = Some(policy);
                }
            }
            if let Some(old) = &from {
                steps.push(format!("route 100% to {}", to.track));
                let m = &config.monitoring;
                let (rollback, other): (Vec<_>, Vec<_>) = config
                    .trigger_config()?
                    .triggers
                    .into_iter()
                    .partition(rolls_back);
                // Durations as a config writes them (`5m`, not `300s`), as the canary's step
                // says them.
                let mut watch = format!(
                    "monitor for {}, checked every {}, with {} rollback trigger(s)",
                    human(m.monitoring_duration),
                    human(m.check_interval),
                    rollback.len()
                );
                if !other.is_empty() {
                    watch.push_str(&format!(
                        " and {} trigger(s) that only warn or hold",
                        other.len()
                    ));
                }
                if !m.read_delay.is_zero() {
                    watch.push_str(&format!(
                        "; each window read {} after its end (monitoring.readDelay)",
                        human(m.read_delay)
                    ));
                }
                if m.error_rate_threshold.is_some() || m.latency_threshold.is_some() {
                    watch.push_str(&format!(
                        "; a monitoring threshold rolls back once breached for {} ({} checks)",
                        human(m.hold_for()),
                        m.consecutive_failures
                    ));
                }
                steps.push(watch);
                // Completion starts when the watch ends (its last window read `readDelay`
                // after its end), and keeps the old version warm until `keepOldWarmFor` after
                // promotion: it goes at whichever comes later.
                let retire_after = m
                    .monitoring_duration
                    .saturating_add(m.read_delay)
                    .max(bg.keep_old_warm_for);
                steps.push(format!(
                    "retire {} ({}) {} after promotion",
                    old.track,
                    old.version,
                    human(retire_after)
                ));
            }
            for item in items.iter().filter(|i| !i.is_pre(service)) {
                if item.is_this_deploy(service) {
                    continue;
                }
                steps.push(format!("completion: upgrade step {} ({runner})", item.step));
            }
            out.push(DeploymentPlan {
                service: service.clone(),
                strategy: config.strategy,
                from,
                to,
                steps,
                checklist,
                traffic,
                canary,
            });
        }
        Ok(out)
    }

    /// Why a [`run`](Self::run) of several target services is refused before anything
    /// moves: the first target, in the config's order, whose [`start`](Self::start) would be
    /// refused (see [`start_refusal`](Self::start_refusal)), with the reason. A deployment of
    /// a target that has not finished (one this orchestrator runs, or one cut short that holds
    /// the platform's lock) may yet roll back: the run reads the version it deploys (a watched
    /// new version has all traffic), so another target deployed meanwhile by the rollout
    /// order could end up over a version of it that no longer runs. A run of one target is
    /// refused by its start alone.
    pub(crate) async fn run_refusal(
        &self,
        config: &DeploymentConfig,
    ) -> Result<Option<(String, String)>> {
        if config.target_services.len() < 2 {
            return Ok(None);
        }
        let limit = config.max_deployment_duration;
        for service in &config.target_services {
            let (_, _, to) = self.prepare(config, service).await?;
            if let Some(why) = self.start_refusal(service, &to.track, limit).await? {
                return Ok(Some((service.clone(), why)));
            }
        }
        Ok(None)
    }

    /// Why [`start`](Self::start) would refuse to deploy `service` as `track` before it
    /// changes anything, in the order it checks: a deployment of the service this orchestrator
    /// runs, the platform's deployment lock held by another deployment (one cut short that
    /// awaits its resume, say), read without taking it, then a new track that runs already.
    /// Each call into the platform is given `limit` to answer; a lock that cannot be read is an
    /// error, as it fails `start` too.
    async fn start_refusal(
        &self,
        service: &str,
        track: &Track,
        limit: Duration,
    ) -> Result<Option<String>> {
        let running_here = crate::lock(&self.inner.locks).contains(service);
        let platform = self.inner.platform.as_ref();
        let doing = format!("reading the deployment lock of {service}");
        let holder =
            super::on_platform(platform, limit, &doing, platform.lock_holder(service)).await?;
        if running_here {
            // It holds the platform's lock too, once its start took it: named, so that the
            // caller knows which deployment to wait for or abort.
            let which = holder.map_or(String::new(), |h| format!(" (deployment {h})"));
            return Ok(Some(format!(
                "a deployment of {service} is running in this orchestrator{which}: wait for it \
                 or abort it"
            )));
        }
        if let Some(holder) = holder {
            return Ok(Some(format!(
                "deployment {holder} holds the lock of {service}: wait for it to end, or, if it \
                 was cut short, resume it to finish it (or roll it back) or abandon it"
            )));
        }
        let running = super::status_within(platform, service, track, limit).await;
        Ok(running.ok().map(|st| {
            format!(
                "track {track} already runs {}: resume or finish the deployment that started \
                 it, or retire it",
                st.version
            )
        }))
    }
}
