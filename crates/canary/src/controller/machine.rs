//! The canary controller: a pure state machine from observations, commands and `now` to the
//! next action.

use serde::{Deserialize, Serialize};
use serin_signals::{Measurement, Metric, Observation, Timestamp};

use super::error_batches::ErrorBatches;
use super::latency_gate::LatencyEvidence;
use super::pacing::{Level, Pacing, rounded};
use super::policy::{CanaryPolicy, CanaryScale, OnInconclusive, OnWarning, Step, planned_wait};
use crate::judge::{Evidence, Judge, Judgement, Sample, Severity, Verdict};
use crate::sequential::LogMoments;
use crate::{Error, Result};

/// What the caller must do next. The controller assumes the caller carries it out (and journals
/// it first); it never does I/O itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// Route this percentage of traffic to the canary.
    SetWeight(u8),
    /// Scale the canary's track.
    SetCanaryScale(CanaryScale),
    /// Keep the current split; ask again later (on the next observation or tick).
    Hold,
    /// Promote the canary to stable: the rollout succeeded.
    Promote,
    /// Send all traffic back to the baseline and retire the canary.
    Rollback,
}

/// A command from a person or an outer system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Command {
    /// Approve: end the current pause, whether it waits for approval or for its duration (as
    /// Argo Rollouts' `promote` skips one pause step). At any other step it only decides, as a
    /// tick does.
    Resume,
    /// Promote now, skipping the remaining steps, as Argo Rollouts' `promote --full` does
    /// (refused while a judge fails with a warning or critical severity; an informational
    /// failure does not stop it). This is how a person lets a canary through that a judge's
    /// concluded inconclusive run holds: Argo's plain `promote` resumes such a rollout at its
    /// next step, but here the concluded run would hold every step after it too.
    Promote,
    /// Abort: roll back now.
    Abort,
}

/// The controller's answer: the action, why, and the evidence that decided it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Decision {
    /// What to do.
    pub action: Action,
    /// When it was decided.
    pub at: Timestamp,
    /// The index of the policy step in force when deciding (`steps.len()` once past the last):
    /// the step whose action this is, before the controller moves on to the next one.
    pub step: usize,
    /// The canary weight once the action is carried out.
    pub weight: u8,
    /// The severity of the failure behind a rollback, when a judge's failure caused it.
    pub severity: Option<Severity>,
    /// One human sentence.
    pub reason: String,
    /// Every judge's latest evidence (empty for a judge not fed yet; an
    /// [advisory](Judge::advisory) judge's summary begins by saying it is a dry run), the
    /// decisive judge first when a judge decided (see [`Decision::decisive_evidence`]). A
    /// promotion past a [`PromotionGate`](super::PromotionGate) leads with the gate's
    /// [evidence](super::PromotionGate::evidence), which decided it.
    pub evidence: Vec<Evidence>,
}

impl Decision {
    /// The evidence of the judge whose failure decided this rollback, if a judge's did (then
    /// [`severity`](Self::severity) is set). `None` for any other decision, among them
    /// rollbacks for a deadline, for missing data or by command, whose
    /// [`evidence`](Self::evidence) is only the judges' standing at the time.
    pub fn decisive_evidence(&self) -> Option<&Evidence> {
        self.severity.and(self.evidence.first())
    }
}

/// Where the rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    /// Steps remain.
    Progressing,
    /// Promoted (final).
    Promoted,
    /// Rolled back (final).
    RolledBack,
}

/// The controller's serializable state: journal it after every decision, and
/// [`CanaryController::from_parts`] resumes exactly where it stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ControllerState {
    phase: Phase,
    step: usize,
    weight: u8,
    started_at: Option<Timestamp>,
    step_started_at: Option<Timestamp>,
    /// The last time the caller held the rollout in the current step
    /// ([`CanaryController::tick_held`]): the step's progress deadline counts from then at the
    /// earliest. `None` in states saved before it was kept, and once the step moves on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    held_at: Option<Timestamp>,
    resumed: bool,
    /// Per judge: samples with data in the current step (only those of the weight in force, as
    /// an analysis step's `minSamples` reads them; states saved before counted the split before
    /// a raise too), and in the whole rollout.
    step_samples: Vec<u64>,
    total_samples: Vec<u64>,
    /// Per judge: samples with data at the weight in force since it was set, which a raise from
    /// above 0% waits for. Empty in states saved before it was kept: read as none yet, so a
    /// resumed rollout raises the weight only once each judge has seen data again.
    #[serde(default)]
    weight_samples: Vec<u64>,
    /// Per judge: the latest judgement.
    judgements: Vec<Option<Judgement>>,
    /// Errors of the pacing metric (both arms) since pacing's gate last set the weight, of the
    /// windows fed while that weight was in force (a state saved before the gate took only
    /// those may hold some of the split before it, and keeps them).
    step_errors: u64,
    /// Pacing's log likelihood ratio over those errors (0 in states saved before it existed,
    /// which only makes the gate wait longer).
    #[serde(default)]
    step_log_lr: f64,
    /// What pacing's latency gate has gathered.
    #[serde(default)]
    step_latency: LatencyEvidence,
    /// The robust errors' gate's batches, over the rollout.
    #[serde(default)]
    error_batches: ErrorBatches,
    /// The baseline's requests and errors of the pacing metric, over the rollout.
    baseline_requests: u64,
    baseline_errors: u64,
    /// The canary's requests and errors of the promotion gate's metric, over the rollout.
    #[serde(default)]
    canary_requests: u64,
    #[serde(default)]
    canary_errors: u64,
    /// Per metric fed: the end of its latest window, before which the next may not start, and
    /// whether that window had data in both arms, which a raise and the promotion wait for.
    /// Empty in states saved before it was kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    latest: Vec<LatestWindow>,
    /// The last decision's action (repeated once final).
    last_action: Action,
}

/// What the controller keeps of the latest window fed of one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LatestWindow {
    metric: Metric,
    end: Timestamp,
    had_data: bool,
}

impl ControllerState {
    fn new(judges: usize) -> Self {
        ControllerState {
            phase: Phase::Progressing,
            step: 0,
            weight: 0,
            started_at: None,
            step_started_at: None,
            held_at: None,
            resumed: false,
            step_samples: vec![0; judges],
            total_samples: vec![0; judges],
            weight_samples: vec![0; judges],
            judgements: vec![None; judges],
            step_errors: 0,
            step_log_lr: 0.0,
            step_latency: LatencyEvidence::default(),
            error_batches: ErrorBatches::default(),
            baseline_requests: 0,
            baseline_errors: 0,
            canary_requests: 0,
            canary_errors: 0,
            latest: Vec::new(),
            last_action: Action::Hold,
        }
    }

    /// Where the rollout is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The index of the current step.
    pub fn step(&self) -> usize {
        self.step
    }

    /// The canary weight the controller believes is applied.
    pub fn weight(&self) -> u8 {
        self.weight
    }

    /// When the rollout began (its first decision), from which
    /// [`CanaryPolicy::max_duration`](super::CanaryPolicy::max_duration) counts; `None` before it.
    pub fn started_at(&self) -> Option<Timestamp> {
        self.started_at
    }

    /// Refuses a state the controller never writes (an edited or damaged record), naming the
    /// field, its value and why, rather than acting on it; the rounding noise a saved scatter
    /// can hold is taken out of it.
    fn check(&mut self) -> Result<()> {
        let refuse = |field: &str, value: String, reason: &str| {
            Err(Error::invalid_input(
                format!("state.{field}"),
                value,
                reason,
            ))
        };
        if self.weight > 100 {
            return refuse(
                "weight",
                self.weight.to_string(),
                "must be a percentage in 0..=100",
            );
        }
        match (self.started_at, self.step_started_at) {
            (None, None) if self.step > 0 || self.weight > 0 => {
                return refuse(
                    "startedAt",
                    "null".into(),
                    "a rollout that has left its first step or set a weight has started",
                );
            }
            (None, None) => {}
            (Some(_), None) => {
                return refuse(
                    "stepStartedAt",
                    "null".into(),
                    "a started rollout's current step has started too",
                );
            }
            (None, Some(t)) => {
                return refuse(
                    "startedAt",
                    "null".into(),
                    &format!("stepStartedAt is {t}, and a step starts only once the rollout has"),
                );
            }
            (Some(start), Some(t)) if t < start => {
                return refuse(
                    "stepStartedAt",
                    t.to_string(),
                    &format!("is before the rollout's start, startedAt {start}"),
                );
            }
            (Some(_), Some(_)) => {}
        }
        // A hold's mark would push the progress deadline past it from the start.
        if let (None, Some(held)) = (self.started_at, self.held_at) {
            return refuse(
                "heldAt",
                held.to_string(),
                "the caller holds only a started rollout, and startedAt is null",
            );
        }
        for (i, (step, total)) in self
            .step_samples
            .iter()
            .zip(&self.total_samples)
            .enumerate()
        {
            for (field, n) in [
                ("stepSamples", step),
                ("weightSamples", &self.weight_samples[i]),
            ] {
                if n > total {
                    return refuse(
                        &format!("{field}[{i}]"),
                        n.to_string(),
                        &format!("exceeds the rollout's samples, totalSamples[{i}] = {total}"),
                    );
                }
            }
            // Samples with data would pass an analysis step's `minSamples` for a judge that
            // never judged them.
            if *total > 0 && self.judgements.get(i).is_some_and(Option::is_none) {
                return refuse(
                    &format!("judgements[{i}]"),
                    "null".into(),
                    &format!(
                        "totalSamples[{i}] is {total}, and a judge's samples are counted only \
                         with its judgement"
                    ),
                );
            }
        }
        for (field, errors, requests) in [
            (
                "baselineErrors",
                self.baseline_errors,
                self.baseline_requests,
            ),
            ("canaryErrors", self.canary_errors, self.canary_requests),
        ] {
            if errors > requests {
                return refuse(
                    field,
                    errors.to_string(),
                    &format!("exceeds the requests counted with them ({requests})"),
                );
            }
        }
        // The errors' gate passes once this is low enough: a ratio no error made would raise
        // the weight on evidence never gathered. Every term of it is one error's.
        if !self.step_log_lr.is_finite() {
            return refuse(
                "stepLogLr",
                self.step_log_lr.to_string(),
                "must be a finite log likelihood ratio",
            );
        }
        if self.step_errors == 0 && self.step_log_lr != 0.0 {
            return refuse(
                "stepLogLr",
                self.step_log_lr.to_string(),
                "must be 0 while no error has been counted at the weight (stepErrors is 0): \
                 each of its terms is an error's",
            );
        }
        self.step_latency.check("state.stepLatency")?;
        self.error_batches.restore("state.errorBatches")?;
        let action = format!("{:?}", self.last_action);
        let (phase, weight) = match (self.phase, self.last_action) {
            (Phase::Progressing, Action::Promote | Action::Rollback) => {
                return refuse(
                    "lastAction",
                    action,
                    "ends a rollout, but phase is progressing",
                );
            }
            (Phase::Progressing, Action::SetWeight(w)) if w != self.weight => {
                return refuse(
                    "lastAction",
                    action,
                    &format!(
                        "sets another weight than the state's, weight {}",
                        self.weight
                    ),
                );
            }
            (Phase::Progressing, _) => return Ok(()),
            (Phase::Promoted, Action::Promote) => ("promoted", 100),
            (Phase::RolledBack, Action::Rollback) => ("rolledBack", 0),
            (Phase::Promoted, _) => {
                return refuse(
                    "lastAction",
                    action,
                    "phase is promoted, whose last action can only be promote",
                );
            }
            (Phase::RolledBack, _) => {
                return refuse(
                    "lastAction",
                    action,
                    "phase is rolledBack, whose last action can only be rollback",
                );
            }
        };
        if self.started_at.is_none() {
            return refuse(
                "startedAt",
                "null".into(),
                &format!("phase is {phase}, so the rollout has started"),
            );
        }
        if self.weight != weight {
            return refuse(
                "weight",
                self.weight.to_string(),
                &format!("phase is {phase}, whose weight can only be {weight}"),
            );
        }
        Ok(())
    }
}

/// The canary controller: feed it observations ([`CanaryController::observe`]), commands
/// ([`CanaryController::command`]) and the passage of time ([`CanaryController::tick`]); each
/// answers the next [`Decision`].
///
/// Rules, in order of precedence, in which "a judge" is one whose verdict decides: an
/// [advisory](Judge::advisory) judge (an Argo Rollouts dry-run metric) is fed, and its evidence,
/// marked as a dry run, is in every decision, but its samples, its pass, its failure and its run's
/// end decide nothing.
/// 1. A final phase repeats its action.
/// 2. A judge failing with `Critical` severity rolls back at once; with `Warning`, per
///    [`OnWarning`]; with `Info`, the failure is reported (in every decision's evidence) and
///    nothing else: it is a regression below the warning band, which the bands say is not
///    worth acting on, so it neither rolls back nor holds, and the rollout may promote. Below,
///    a judge "fails" with a warning or critical severity.
/// 3. Past `maxDuration` (held by the caller or not), or holding longer than
///    `progressDeadline` in one step, the rollout rolls back. The progress deadline counts
///    from the end of the step's planned wait (a timed pause's or an analysis step's
///    duration), which is not a lack of progress, and afresh after the caller held the
///    rollout ([`tick_held`](Self::tick_held)); a pause waiting for approval has no deadline.
/// 4. A judge whose analysis has [concluded](Judge::concluded) inconclusive (an Argo Rollouts
///    run that ended `Inconclusive` or `Error`) will never pass, so it is not waited out, and
///    never moved past: with [`OnInconclusive::Rollback`] the rollout rolls back at once, while
///    the caller holds it too ([`tick_held`](Self::tick_held)); with [`OnInconclusive::Hold`]
///    it holds wherever it would move past the judge (an analysis step, whether or not its
///    duration has passed; a `setWeight` that raises the weight; the promotion) until the
///    progress deadline, as Argo Rollouts pauses for a person. The person decides with
///    [`Command::Promote`] or [`Command::Abort`]; a pause still ends, and a lower weight or a
///    scale step is still carried out.
/// 5. Otherwise the current step runs: `setWeight` raises the weight only while no judge fails,
///    from a weight above 0% only once every deciding judge has been fed a sample with data at
///    the weight in force since it was set and the latest window of each metric it reads had
///    data (an outage of the metrics is no evidence, and holds as any hold does; from 0% there
///    is no canary traffic to observe), and, with
///    [`Pacing`](super::Pacing), once the errors at the current weight (and the latencies, with
///    its latency gate), fed while it was in force, rule out the stated regression (a raise
///    from 0%, the first weight or one after a step back to 0%, with an exposure budget only as
///    far as the budget allows); `pause` waits, a timed one for its duration from the last
///    window fed of the split before it; `analysis` advances when every judge passes (a judge
///    failing with `Info` runs it to its duration) or when its duration has passed with enough
///    samples and no failure (else [`OnInconclusive`]), counting only the samples fed while
///    the weight set last was in force, and its duration from the last window fed of the split
///    before it; after the last step, the canary is promoted, but only if every judge
///    has seen data, at the last weight too (the promotion is the last raise), and none fails,
///    with [`Pacing`](super::Pacing) once the last weight's evidence rules out the regression
///    too, and with a [`PromotionGate`](super::PromotionGate) once the canary's own error rate
///    is shown below the gate's bound (until then it holds).
///
/// ```
/// use serin_canary::controller::{Action, CanaryController, CanaryPolicy, Step};
/// use serin_canary::judge::Judge;
/// use serin_canary::sequential::SequentialCountJudge;
/// use serin_signals::{Metric, Timestamp};
///
/// let policy = CanaryPolicy::new(vec![Step::SetWeight(10), Step::SetWeight(50)]);
/// let judge = SequentialCountJudge::new(Metric::ErrorRate, 0.05, 0.0)?;
/// let mut ctl = CanaryController::new(policy, vec![Box::new(judge) as Box<dyn Judge>])?;
/// let d = ctl.tick(Timestamp::from_millis(0));
/// assert_eq!(d.action, Action::SetWeight(10));
/// # Ok::<(), serin_canary::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct CanaryController<J = Box<dyn Judge>> {
    policy: CanaryPolicy,
    judges: Vec<J>,
    state: ControllerState,
}

impl<J: Judge> CanaryController<J> {
    /// A controller at the start of `policy`, with its judges: at least one, and at least one
    /// that is not [advisory](Judge::advisory). Argo Rollouts completes an analysis run whose
    /// metrics are all dry run `Successful` and goes on; here nothing would then decide, and
    /// an analysis step or the promotion would pass on no evidence, so such judges are refused.
    /// With an exposure budget, a judge that is not advisory must analyse pacing's metric.
    pub fn new(policy: CanaryPolicy, judges: Vec<J>) -> Result<Self> {
        let state = ControllerState::new(judges.len());
        Self::from_parts(policy, judges, state)
    }

    /// Rebuilds a controller from its policy, its judges (restored by the caller, for example
    /// from their serde form) and a journalled [`ControllerState`].
    pub fn from_parts(
        policy: CanaryPolicy,
        judges: Vec<J>,
        mut state: ControllerState,
    ) -> Result<Self> {
        policy.validate()?;
        if judges.is_empty() {
            return Err(Error::invalid_config(
                "judges",
                "[]",
                "a canary needs at least one judge: missing evidence is never a pass",
            ));
        }
        // See `new` for why Argo Rollouts' way is not followed here.
        if judges.iter().all(Judge::advisory) {
            let names: Vec<String> = judges
                .iter()
                .map(|j| format!("{} of `{}`", j.name(), j.metric()))
                .collect();
            return Err(Error::invalid_config(
                "judges",
                format!("[{}]", names.join(", ")),
                "every judge is a dry run (advisory) and none decides: analysis steps and the \
                 promotion would pass on no evidence, and missing evidence is never a pass",
            ));
        }
        // The budget bounds how soon the judges catch a regression of pacing's metric.
        if let Some(p) = policy.pacing.as_ref()
            && let Some(budget) = p.exposure_budget
            && !judges
                .iter()
                .any(|j| !j.advisory() && j.analyses(&p.metric))
        {
            return Err(Error::invalid_config(
                "canaryPolicy.pacing.exposureBudget",
                budget,
                format!(
                    "needs a judge of `{}` that decides: the budget bounds how long the judges \
                     take to catch a regression of it, and none would catch one",
                    p.metric
                ),
            ));
        }
        let n = judges.len();
        if state.weight_samples.is_empty() {
            state.weight_samples = vec![0; n];
        }
        // Each per-judge list is checked on its own, so an edited or damaged journal is
        // refused naming the list that is off, not another that is right.
        for (field, len) in [
            ("state.judgements", state.judgements.len()),
            ("state.stepSamples", state.step_samples.len()),
            ("state.totalSamples", state.total_samples.len()),
            ("state.weightSamples", state.weight_samples.len()),
        ] {
            if len != n {
                return Err(Error::invalid_input(
                    field,
                    format!("{len} entries"),
                    format!("holds one entry per judge, and the controller has {n}"),
                ));
            }
        }
        if state.step > policy.steps.len() {
            return Err(Error::invalid_input(
                "state.step",
                state.step,
                format!("the policy has only {} steps", policy.steps.len()),
            ));
        }
        state.check()?;
        // Each error moves the errors' gate's ratio by at most `ln r` either way (a canary
        // error by `ln r − ln(1 + ρ(r − 1))`, a baseline one by `−ln(1 + ρ(r − 1))`): a ratio
        // beyond what the errors counted can carry is evidence never gathered, and would
        // raise the weight on it.
        if let Some(r) = policy.pacing.as_ref().and_then(|p| p.detectable_ratio) {
            let most = state.step_errors as f64 * r.ln();
            if state.step_log_lr.abs() > most * (1.0 + 1e-9) {
                return Err(Error::invalid_input(
                    "state.stepLogLr",
                    state.step_log_lr,
                    format!(
                        "is beyond what the errors counted at the weight (stepErrors {}) can \
                         carry: each moves it by at most ln({r}) either way, so at most {most}",
                        state.step_errors
                    ),
                ));
            }
        }
        Ok(CanaryController {
            policy,
            judges,
            state,
        })
    }

    /// The policy.
    pub fn policy(&self) -> &CanaryPolicy {
        &self.policy
    }

    /// The judges.
    pub fn judges(&self) -> &[J] {
        &self.judges
    }

    /// The serializable state.
    pub fn state(&self) -> &ControllerState {
        &self.state
    }

    /// Splits the controller into its parts (to serialize the judges and the state).
    pub fn into_parts(self) -> (CanaryPolicy, Vec<J>, ControllerState) {
        (self.policy, self.judges, self.state)
    }

    /// Feeds the baseline's and the canary's observation of one metric over the same window to
    /// every judge of that metric (and to pacing), then decides: [`feed`](Self::feed), then
    /// [`tick`](Self::tick).
    ///
    /// Each decision's action is to be carried out, so a caller with several metrics per window
    /// feeds them all and ticks once instead: a weight set on one metric's decision would
    /// otherwise be lost behind the next metric's hold.
    pub fn observe(
        &mut self,
        baseline: &Observation,
        canary: &Observation,
        now: Timestamp,
    ) -> Result<Decision> {
        self.feed(baseline, canary, now)?;
        Ok(self.decide(now))
    }

    /// Feeds one metric's pair of observations, as [`observe`](Self::observe) does, without
    /// deciding.
    ///
    /// Errors, and nothing changes: the observations do not pair up (other metric or window),
    /// the window starts before the end of the last window fed of its metric (each window is
    /// fed once: a repeated or overlapping one would count its requests again as new
    /// evidence), no judge and no pacing uses the metric, or a judge of the metric does not
    /// [accept](Judge::accepts) the sample (a measurement of another kind than it judges; the
    /// error names the judge). Every judge of the metric is asked before any is fed, so one
    /// judge's refusal leaves the others unfed too.
    pub fn feed(
        &mut self,
        baseline: &Observation,
        canary: &Observation,
        now: Timestamp,
    ) -> Result<()> {
        self.feed_in_force(baseline, canary, self.state.weight, now)
    }

    /// Feeds as [`feed`](Self::feed) does, telling the judges the canary's weight in force,
    /// `weight` percent, rather than the weight the controller set last. The two differ while
    /// a raised weight waits for its track to be ready: the router still splits at the old
    /// weight, and a judge that notices a change of split by the stated share (the sequential
    /// count judge starts a new segment) must see the split the observations came from, and
    /// observations of the old split are no evidence for raising the new weight further (rule 5
    /// of [`CanaryController`]): pacing's gates, the judges' samples at the weight and an
    /// analysis step's samples count none of them, and an analysis step's duration counts from
    /// the last of them (its progress deadline after it too). Errors, and nothing changes, for
    /// a weight above 100.
    pub fn feed_in_force(
        &mut self,
        baseline: &Observation,
        canary: &Observation,
        weight: u8,
        now: Timestamp,
    ) -> Result<()> {
        if weight > 100 {
            return Err(Error::invalid_input(
                "weight",
                weight,
                "must be a percentage of traffic, at most 100",
            ));
        }
        let w = weight;
        let share = (w > 0 && w < 100).then(|| f64::from(w) / 100.0);
        let sample = Sample::new(baseline, canary, share, now)?;
        let users: Vec<usize> = (0..self.judges.len())
            .filter(|i| self.judges[*i].analyses(sample.metric()))
            .collect();
        let for_pacing = self
            .policy
            .pacing
            .as_ref()
            .is_some_and(|p| p.metrics().any(|m| m == sample.metric()));
        let for_gate = self
            .policy
            .promotion
            .as_ref()
            .is_some_and(|g| &g.metric == sample.metric());
        if users.is_empty() && !for_pacing && !for_gate {
            return Err(Error::invalid_input(
                "observation.metric",
                sample.metric(),
                "no judge of this controller analyses it",
            ));
        }
        // A window fed twice, or one overlapping a window fed, would count its requests again
        // as new evidence: a judge would pass, and a step fill its samples, on one window.
        let latest = self
            .state
            .latest
            .iter()
            .position(|l| &l.metric == sample.metric());
        if let Some(l) = latest.map(|i| &self.state.latest[i])
            && sample.window().start() < l.end
        {
            return Err(Error::invalid_input(
                "observation.window",
                sample.window(),
                format!(
                    "starts before {}, the end of the window of `{}` fed before: each window \
                     is fed once, after the one before it",
                    l.end,
                    sample.metric()
                ),
            ));
        }
        // An empty window (no requests) is no data, whatever the source called it.
        let has_data = !baseline.measurement.is_empty() && !canary.measurement.is_empty();
        // Observations of the split before a raise are no evidence at the raised weight.
        let at_weight = has_data && w == self.state.weight;
        if self.state.phase == Phase::Progressing {
            for i in &users {
                self.judges[*i].accepts(&sample)?;
            }
            for i in users {
                let j = self.judges[i].observe(&sample)?;
                if has_data {
                    self.state.total_samples[i] = self.state.total_samples[i].saturating_add(1);
                }
                // An analysis step analyses the split its weight set: samples of the split
                // before a raise count toward its `minSamples` no more than toward a raise.
                if at_weight {
                    self.state.step_samples[i] = self.state.step_samples[i].saturating_add(1);
                    self.state.weight_samples[i] = self.state.weight_samples[i].saturating_add(1);
                }
                if let Some(slot) = self.state.judgements.get_mut(i) {
                    *slot = Some(j);
                }
            }
            // The baseline's rate is learned from every window, even while the canary serves
            // nothing (a budget holds it at 0% until then) or the split before a raise is still
            // in force.
            if let Some(p) = &self.policy.pacing
                && &p.metric == sample.metric()
                && let Measurement::Counts(b) = &baseline.measurement
            {
                let s = &mut self.state;
                s.baseline_requests = s.baseline_requests.saturating_add(b.requests());
                s.baseline_errors = s.baseline_errors.saturating_add(b.errors());
                if let Measurement::Counts(c) = &canary.measurement {
                    // The robust gate's batches measure how the errors clump over the rollout,
                    // each window expected at its own share, whatever the split.
                    let (nb, nc) = (b.requests(), c.requests());
                    if let Some(span) = p.robust_batch
                        && nb > 0
                        && nc > 0
                    {
                        let share = crate::sequential::share_of(nc, nb);
                        let window = baseline.window;
                        s.error_batches
                            .add(c.errors(), b.errors(), share, window, span);
                    }
                    // The gate weighs the errors of both arms, at the weight in force only.
                    if at_weight {
                        s.step_log_lr += p.log_likelihood_ratio(b, c);
                        s.step_errors = s
                            .step_errors
                            .saturating_add(b.errors())
                            .saturating_add(c.errors());
                    }
                }
            }
            // Latencies of the split before a raise would share a batch with the raised
            // split's (see `LatencyEvidence::new_split`), and are no evidence at its weight.
            if let Some(l) = self.policy.pacing.as_ref().and_then(|p| p.latency.as_ref())
                && at_weight
                && &l.metric == sample.metric()
                && let (Measurement::Latency(b), Measurement::Latency(c)) =
                    (&baseline.measurement, &canary.measurement)
            {
                self.state.step_latency.add(
                    &LogMoments::from_sketch(b),
                    &LogMoments::from_sketch(c),
                    baseline.window,
                    l.batch,
                );
            }
            if for_gate && let Measurement::Counts(c) = &canary.measurement {
                let s = &mut self.state;
                s.canary_requests = s.canary_requests.saturating_add(c.requests());
                s.canary_errors = s.canary_errors.saturating_add(c.errors());
            }
            // An analysis step analyses its weight for its duration, and a timed pause waits
            // at its weight for its duration, as Argo Rollouts starts either step only once the
            // weight before it is set: while the split before it is still in force, the step's
            // clock has not started.
            if w != self.state.weight
                && let Some(since) = self.state.step_started_at
                && matches!(
                    self.policy.steps.get(self.state.step),
                    Some(Step::Analysis(_) | Step::Pause(_))
                )
            {
                self.state.step_started_at = Some(since.max(now));
            }
        }
        let fed = LatestWindow {
            metric: sample.metric().clone(),
            end: sample.window().end(),
            had_data: has_data,
        };
        match latest {
            Some(i) => self.state.latest[i] = fed,
            None => self.state.latest.push(fed),
        }
        Ok(())
    }

    /// Applies a command, then decides. A promotion is refused (an error, nothing changes) while
    /// any judge fails with a warning or critical severity, and once the rollout's next
    /// decision is a rollback: past `maxDuration`, holding past the step's progress deadline,
    /// or on a run concluded inconclusive under [`OnInconclusive::Rollback`] (rules 3 and 4).
    /// A command that arrives after the deadline ran out but before a tick decided it would
    /// otherwise let the deadline pass unanswered; the next tick rolls the rollout back.
    ///
    /// Once the rollout is over, a command that asks for its outcome again (or a resume)
    /// repeats its final decision, but one that asks for the other outcome is an error and
    /// changes nothing. After a promotion the canary's analysis has ended, and undoing the
    /// promotion is a rollback for the caller to carry out, not a canary decision. After a
    /// rollback there is no canary left to promote. Answering such a command with the final
    /// action, as if it had been carried out, would leave the caller believing it had.
    pub fn command(&mut self, command: Command, now: Timestamp) -> Result<Decision> {
        match (self.state.phase, command) {
            (Phase::Progressing, _) => {}
            (Phase::Promoted, Command::Abort) => {
                return Err(Error::invalid_input(
                    "command",
                    "abort",
                    "the canary's rollout is over and it was promoted: undoing a promotion is a \
                     rollback of the caller's, not a canary decision",
                ));
            }
            (Phase::RolledBack, Command::Promote) => {
                return Err(Error::invalid_input(
                    "command",
                    "promote",
                    "the rollout is over and the canary was rolled back: there is no canary \
                     left to promote",
                ));
            }
            _ => return Ok(self.decide(now)),
        }
        match command {
            Command::Resume => {
                self.state.resumed = true;
                Ok(self.decide(now))
            }
            Command::Abort => {
                self.start(now);
                Ok(self.finish(
                    Phase::RolledBack,
                    now,
                    None,
                    "aborted by an operator (command)".into(),
                    None,
                ))
            }
            Command::Promote => {
                if let Some((i, _)) = self.worst_failure() {
                    return Err(Error::invalid_input(
                        "command",
                        "promote",
                        format!(
                            "refused while judge `{}` of metric `{}` fails",
                            self.judges[i].name(),
                            self.failing_metric(i)
                        ),
                    ));
                }
                // Rule 3 bounds the whole rollout, an operator's wait included: once past
                // `maxDuration` the next decision is a rollback, and a promotion slipped in
                // before it would let the deadline pass unanswered.
                if let (Some(max), Some(start)) = (self.policy.max_duration, self.state.started_at)
                    && now.saturating_duration_since(start) > max
                {
                    return Err(Error::invalid_input(
                        "command",
                        "promote",
                        format!(
                            "refused: the rollout exceeded its maximum duration {max:?}, and its \
                             next decision rolls it back"
                        ),
                    ));
                }
                // So does the progress deadline of a step held past it (rule 3), and a run
                // concluded inconclusive under `OnInconclusive::Rollback` (rule 4): whatever
                // the next decision rolls back on, a promotion must not slip in before it.
                let next = self.next_decision(now);
                if next.action == Action::Rollback {
                    return Err(Error::invalid_input(
                        "command",
                        "promote",
                        format!(
                            "refused: the rollout's next decision rolls it back ({})",
                            next.reason
                        ),
                    ));
                }
                self.start(now);
                Ok(self.finish(
                    Phase::Promoted,
                    now,
                    None,
                    "promoted by an operator (command)".into(),
                    None,
                ))
            }
        }
    }

    /// The decision a [`tick`](Self::tick) at `now` would take, without taking it: deciding
    /// changes only the controller's state, which is put back as it was.
    fn next_decision(&mut self, now: Timestamp) -> Decision {
        let before = self.state.clone();
        let next = self.decide(now);
        self.state = before;
        next
    }

    /// Ends the current pause step as [`Command::Resume`] does, without deciding: the next
    /// [`tick`](Self::tick) moves past it. For a caller that holds the rollout where it is when
    /// an operator resumes (a rollback trigger's hold): the pause is over, and nothing moves
    /// until the hold ends and the caller asks again. At a step that is not a pause it changes
    /// nothing a decision reads: the mark is cleared when the next step begins.
    pub fn end_pause(&mut self) {
        if self.state.phase == Phase::Progressing {
            self.state.resumed = true;
        }
    }

    /// Decides with no new input (pauses and deadlines move with time).
    pub fn tick(&mut self, now: Timestamp) -> Decision {
        self.decide(now)
    }

    /// Decides while the caller holds the rollout where it is (an operator's pause, a rollback
    /// trigger's hold): the judges keep judging what they are fed, and a failure that rolls
    /// back does so at once, as [`tick`](Self::tick) would decide it (rule 2), and so does a
    /// rollout past its `maxDuration` (rule 3) and a judge's run that has concluded
    /// inconclusive under [`OnInconclusive::Rollback`] (rule 4): no hold makes it pass.
    /// Anything else holds, and nothing moves on: no step advances, no weight changes, no
    /// progress deadline is counted. As in Argo Rollouts, analysis goes on while a rollout is
    /// paused.
    ///
    /// Once the hold ends, the step's progress deadline counts afresh from its last held tick
    /// (as Kubernetes and Argo Rollouts restart theirs on a resume), while the rollout's
    /// `maxDuration` counts the time held: it bounds the whole rollout, an operator's wait
    /// included, and no hold extends it.
    pub fn tick_held(&mut self, now: Timestamp) -> Decision {
        if self.state.phase == Phase::Progressing
            && let Some((i, severity)) = self.worst_failure()
            && (severity == Severity::Critical
                || (severity == Severity::Warning && self.policy.on_warning == OnWarning::Rollback))
        {
            self.start(now);
            let what = if severity == Severity::Critical {
                "critical regression"
            } else {
                "regression"
            };
            return self.finish(
                Phase::RolledBack,
                now,
                Some(severity),
                format!("{what} in `{}`", self.failing_metric(i)),
                Some(i),
            );
        }
        if self.state.phase != Phase::Progressing {
            return self.decide(now);
        }
        if let Some(d) = self
            .roll_back_past_max_duration(now)
            .or_else(|| self.roll_back_concluded(now))
        {
            return d;
        }
        // The hold ends the step's wait for progress so far: its deadline counts afresh from
        // the last held tick (see `progress_since`). Before the rollout starts there is none.
        if self.state.started_at.is_some() {
            self.state.held_at = Some(self.state.held_at.map_or(now, |h| h.max(now)));
        }
        self.decision(Action::Hold, now, None, "held by the caller".into(), None)
    }

    /// Rolls back once the rollout has run longer than its `maxDuration` (rule 3), whether or
    /// not the caller holds it; `None` otherwise.
    fn roll_back_past_max_duration(&mut self, now: Timestamp) -> Option<Decision> {
        let max = self.policy.max_duration?;
        let start = self.state.started_at?;
        (now.saturating_duration_since(start) > max).then(|| {
            let reason = format!("the rollout exceeded its maximum duration {max:?}");
            self.finish(Phase::RolledBack, now, None, reason, None)
        })
    }

    fn start(&mut self, now: Timestamp) {
        if self.state.started_at.is_none() {
            self.state.started_at = Some(now);
            self.state.step_started_at = Some(now);
        }
    }

    /// The first judge whose analysis has [concluded](Judge::concluded) inconclusive (an Argo
    /// run that ended `Inconclusive` or `Error`): it will never pass, so waiting for it is
    /// pointless, and moving past it would be a pass on missing evidence.
    fn concluded_inconclusive(&self, now: Timestamp) -> Option<usize> {
        self.deciding().find(|i| {
            let j = &self.judges[*i];
            j.concluded() && j.judgement(now).verdict == Verdict::Inconclusive
        })
    }

    /// The judges whose verdicts decide: all but the [advisory](Judge::advisory) ones, which
    /// are fed and listed in every decision's evidence, and nothing more.
    fn deciding(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.judges.len()).filter(|i| !self.judges[*i].advisory())
    }

    /// The judge a raise (`doing`: "weight not raised"), the promotion included, must wait on,
    /// and why: a deciding judge that has seen no data at the weight in force since it was set (missing evidence is
    /// no pass). At 0% there is no canary traffic to observe, and at 100% no baseline traffic
    /// to compare it with, so nothing to wait for: what decides there is the evidence of the
    /// weights before.
    ///
    /// So must one while the latest window of a metric a deciding judge reads had no data: one
    /// window with data early in a step does not stand for the rest of it, and a metrics outage
    /// in a step's last minutes is no pass.
    fn unseen_at_weight(&self, doing: &str) -> Option<(usize, String)> {
        let current = self.state.weight;
        if current == 0 || current >= 100 {
            return None;
        }
        if let Some(i) = self.deciding().find(|i| self.state.weight_samples[*i] == 0) {
            let reason = format!(
                "{doing}: judge `{}` of `{}` has seen no data at {current}% since it was set: \
                 missing evidence is no pass",
                self.judges[i].name(),
                self.judges[i].metric()
            );
            return Some((i, reason));
        }
        self.deciding().find_map(|i| {
            let blind = self
                .state
                .latest
                .iter()
                .find(|l| !l.had_data && self.judges[i].analyses(&l.metric))?;
            let reason = format!(
                "{doing}: the latest window of `{}` judge `{}` reads, ending {}, had no data: \
                 missing evidence is no pass",
                blind.metric,
                self.judges[i].name(),
                blind.end
            );
            Some((i, reason))
        })
    }

    /// Rolls back for the first judge whose run has concluded inconclusive when the policy says
    /// [`OnInconclusive::Rollback`] (rule 4); `None` otherwise.
    fn roll_back_concluded(&mut self, now: Timestamp) -> Option<Decision> {
        let i = self
            .concluded_inconclusive(now)
            .filter(|_| self.policy.on_inconclusive == OnInconclusive::Rollback)?;
        self.start(now);
        let reason = self.concluded_reason(i);
        Some(self.finish(Phase::RolledBack, now, None, reason, Some(i)))
    }

    fn concluded_reason(&self, i: usize) -> String {
        format!(
            "judge `{}` of `{}` has concluded inconclusive: its analysis ended without a pass \
             and takes no more data (onInconclusive: {})",
            self.judges[i].name(),
            self.judges[i].metric(),
            match self.policy.on_inconclusive {
                OnInconclusive::Hold => "hold",
                OnInconclusive::Rollback => "rollback",
            }
        )
    }

    /// The worst failure the controller acts on: a warning or a critical one. An
    /// informational failure is only reported, in the decisions' evidence.
    fn worst_failure(&self) -> Option<(usize, Severity)> {
        self.deciding()
            .filter_map(|i| {
                self.state.judgements[i]
                    .as_ref()
                    .and_then(|j| j.verdict.severity())
                    .filter(|s| *s > Severity::Info)
                    .map(|s| (i, s))
            })
            .max_by_key(|(_, s)| *s)
    }

    /// The metric judge `i` failed on: its evidence's, which for a judge of several metrics
    /// (Flagger's analysis) is the one that decided, else the judge's own.
    fn failing_metric(&self, i: usize) -> &Metric {
        self.state.judgements[i]
            .as_ref()
            .map_or(self.judges[i].metric(), |j| &j.evidence.metric)
    }

    /// Every judge's latest evidence, `first`'s leading. A judge not fed yet has empty evidence
    /// as of `now`: a decision accounts for every judge, and one that a judge without data
    /// decided names that judge first. An [advisory](Judge::advisory) judge's summary says
    /// that it is a dry run, so that no reader takes its verdict for one that decided.
    fn evidence(&self, first: Option<usize>, now: Timestamp) -> Vec<Evidence> {
        let of = |i: usize| {
            let mut evidence = match &self.state.judgements[i] {
                Some(j) => j.evidence.clone(),
                None => {
                    let (name, metric) = (self.judges[i].name(), self.judges[i].metric());
                    Evidence {
                        summary: format!("`{name}` of `{metric}` has been fed no data yet."),
                        ..Evidence::empty(name, metric.clone(), now)
                    }
                }
            };
            if self.judges[i].advisory() {
                evidence.summary = format!("Dry run, recorded only: {}", evidence.summary);
            }
            evidence
        };
        let rest = (0..self.judges.len()).filter(|i| Some(*i) != first);
        first.into_iter().chain(rest).map(of).collect()
    }

    fn decision(
        &mut self,
        action: Action,
        now: Timestamp,
        severity: Option<Severity>,
        reason: String,
        decisive: Option<usize>,
    ) -> Decision {
        self.state.last_action = action;
        Decision {
            action,
            at: now,
            step: self.state.step,
            weight: self.state.weight,
            severity,
            reason,
            evidence: self.evidence(decisive, now),
        }
    }

    fn finish(
        &mut self,
        phase: Phase,
        now: Timestamp,
        severity: Option<Severity>,
        reason: String,
        decisive: Option<usize>,
    ) -> Decision {
        self.state.phase = phase;
        let action = match phase {
            Phase::Promoted => {
                self.state.weight = 100;
                Action::Promote
            }
            _ => {
                self.state.weight = 0;
                Action::Rollback
            }
        };
        self.decision(action, now, severity, reason, decisive)
    }

    /// Pacing's standing at the current weight.
    fn level(&self) -> Level {
        Level {
            weight: self.state.weight,
            errors: self.state.step_errors,
            log_lr: self.state.step_log_lr,
            latency: self.state.step_latency,
            error_batches: self.state.error_batches,
        }
    }

    /// A pacing hold's `reason`, with when the robust errors' gate's batches will have closed
    /// if it waits for them.
    fn with_outlook(&self, pacing: &Pacing, reason: String, now: Timestamp) -> String {
        match pacing.batches_outlook(&self.level(), now, self.deadline()) {
            Some(outlook) => format!("{reason}; {outlook}"),
            None => reason,
        }
    }

    /// The nearest of the deadlines at which a hold rolls back: what it is, and when.
    fn deadline(&self) -> Option<(String, Timestamp)> {
        let ends = |limit: Option<std::time::Duration>, since: Option<Timestamp>, what: &str| {
            let (d, since) = limit.zip(since)?;
            Some((format!("{what} ({})", rounded(d)), since.saturating_add(d)))
        };
        let s = &self.state;
        let max = ends(
            self.policy.max_duration,
            s.started_at,
            "the rollout's maximum duration",
        );
        let progress = ends(
            self.policy.progress_deadline,
            self.progress_since(),
            "the progress deadline",
        );
        max.into_iter().chain(progress).min_by_key(|(_, at)| *at)
    }

    /// Sets the weight; `new_level` starts pacing's evidence afresh (a passed gate, or a lower
    /// weight). The latency gate's open batch ends with the split either way.
    fn set_weight(&mut self, weight: u8, new_level: bool) {
        self.state.weight = weight;
        self.state.weight_samples.iter_mut().for_each(|s| *s = 0);
        if new_level {
            self.state.step_errors = 0;
            self.state.step_log_lr = 0.0;
            self.state.step_latency.new_level();
        } else {
            self.state.step_latency.new_split();
        }
    }

    fn advance(&mut self, now: Timestamp) {
        self.state.step += 1;
        self.restart_step_clock(now);
        self.state.held_at = None;
        self.state.resumed = false;
        self.state.step_samples.iter_mut().for_each(|s| *s = 0);
    }

    /// Starts the current step's clock at `now`, never before the rollout's start (a caller's
    /// clock may step back; a state with a step started before the rollout is refused).
    fn restart_step_clock(&mut self, now: Timestamp) {
        self.state.step_started_at = Some(self.state.started_at.map_or(now, |s| s.max(now)));
    }

    /// When the current step's progress deadline starts counting: at the end of the step's
    /// planned wait (a timed pause's or an analysis step's duration), which is no lack of
    /// progress, or else when the step started; and never before the caller last held the
    /// rollout ([`tick_held`](Self::tick_held)). A hold is the caller's, not a lack of progress
    /// of the step, so the deadline counts afresh once it ends, as Kubernetes and Argo Rollouts
    /// count theirs afresh from a resume: an operator who pauses a rollout longer than its
    /// progress deadline does not find it rolled back on resuming. `None` for a pause waiting
    /// for approval (it has no deadline) or before the rollout starts.
    fn progress_since(&self) -> Option<Timestamp> {
        let since = self.state.step_started_at?;
        let from = match self.policy.steps.get(self.state.step) {
            Some(Step::Pause(p)) if p.duration.is_none() => return None,
            Some(step) => {
                planned_wait(step).map_or(since, |(_, planned)| since.saturating_add(planned))
            }
            None => since,
        };
        Some(self.state.held_at.map_or(from, |held| from.max(held)))
    }

    /// Holds, or rolls back past the progress deadline (see [`Self::progress_since`]).
    fn hold(&mut self, now: Timestamp, reason: String) -> Decision {
        self.hold_on(now, reason, None)
    }

    /// Holds for `reason`, with the evidence of `judge`, the judge the hold waits on, first.
    fn hold_on(&mut self, now: Timestamp, reason: String, judge: Option<usize>) -> Decision {
        if let (Some(deadline), Some(since)) =
            (self.policy.progress_deadline, self.progress_since())
            && now.saturating_duration_since(since) > deadline
        {
            return self.finish(
                Phase::RolledBack,
                now,
                None,
                format!("no progress within the progress deadline {deadline:?} ({reason})"),
                None,
            );
        }
        self.decision(Action::Hold, now, None, reason, judge)
    }

    fn decide(&mut self, now: Timestamp) -> Decision {
        if self.state.phase != Phase::Progressing {
            let action = self.state.last_action;
            return self.decision(action, now, None, "the rollout is over".into(), None);
        }
        self.start(now);
        let failure = self.worst_failure();
        match failure {
            Some((i, Severity::Critical)) => {
                return self.finish(
                    Phase::RolledBack,
                    now,
                    Some(Severity::Critical),
                    format!("critical regression in `{}`", self.failing_metric(i)),
                    Some(i),
                );
            }
            Some((i, Severity::Warning)) if self.policy.on_warning == OnWarning::Rollback => {
                return self.finish(
                    Phase::RolledBack,
                    now,
                    Some(Severity::Warning),
                    format!("regression in `{}`", self.failing_metric(i)),
                    Some(i),
                );
            }
            _ => {}
        }
        if let Some(d) = self.roll_back_past_max_duration(now) {
            return d;
        }
        // A judge whose run has ended inconclusive never passes: rolled back at once, or held
        // wherever the rollout would move past it.
        if let Some(d) = self.roll_back_concluded(now) {
            return d;
        }
        // What holds the rollout, and the judge it waits on.
        let concluded = self
            .concluded_inconclusive(now)
            .map(|i| (i, self.concluded_reason(i)));
        let failing = failure.map(|(i, s)| {
            let f = format!(
                "judge `{}` of `{}` fails ({s})",
                self.judges[i].name(),
                self.failing_metric(i)
            );
            (i, f)
        });
        loop {
            let Some(step) = self.policy.steps.get(self.state.step).cloned() else {
                if let Some((i, f)) = failing.or(concluded) {
                    return self.hold_on(now, format!("not promoting: {f}"), Some(i));
                }
                let unseen = self.deciding().find(|i| self.state.total_samples[*i] == 0);
                if let Some(i) = unseen {
                    let reason = format!(
                        "not promoting: judge `{}` of `{}` has seen no data",
                        self.judges[i].name(),
                        self.judges[i].metric()
                    );
                    return match self.policy.on_inconclusive {
                        OnInconclusive::Rollback => {
                            self.finish(Phase::RolledBack, now, None, reason, Some(i))
                        }
                        OnInconclusive::Hold => self.hold_on(now, reason, Some(i)),
                    };
                }
                // The promotion is the last raise, to 100%: as a raise, it waits for data at
                // the weight in force (a metrics outage that began as it was set is no pass).
                if let Some((i, reason)) = self.unseen_at_weight("not promoting") {
                    return self.hold_on(now, reason, Some(i));
                }
                if let Some(reason) = self.policy.pacing.as_ref().and_then(|p| {
                    let reason = p.promotion_hold(&self.level())?;
                    Some(self.with_outlook(p, reason, now))
                }) {
                    return self.hold(now, reason);
                }
                let (n, e) = (self.state.canary_requests, self.state.canary_errors);
                if let Some(g) = &self.policy.promotion
                    && !g.shown(n, e)
                {
                    return self.hold(now, format!("not promoting yet: {}", g.showing(n, e)));
                }
                let gate = self
                    .policy
                    .promotion
                    .as_ref()
                    .map(|g| g.evidence(n, e, now));
                let mut promoted = self.finish(
                    Phase::Promoted,
                    now,
                    None,
                    "every step completed without a judge failing at warning or critical severity"
                        .into(),
                    None,
                );
                // A healthy canary's judges are mostly still inconclusive here: what the gate
                // showed is what let it through, so its evidence leads.
                promoted.evidence.splice(0..0, gate);
                return promoted;
            };
            match step {
                Step::SetWeight(target) => {
                    let current = self.state.weight;
                    if target < current {
                        self.set_weight(target, true);
                        let d = self.decision(
                            Action::SetWeight(target),
                            now,
                            None,
                            format!("step: lower the canary weight to {target}%"),
                            None,
                        );
                        self.advance(now);
                        return d;
                    }
                    if target == current {
                        self.advance(now);
                        continue;
                    }
                    if let Some((i, f)) = failing.as_ref().or(concluded.as_ref()) {
                        return self.hold_on(now, format!("weight not raised: {f}"), Some(*i));
                    }
                    if let Some((i, reason)) = self.unseen_at_weight("weight not raised") {
                        return self.hold_on(now, reason, Some(i));
                    }
                    let (next, new_level) = match &self.policy.pacing {
                        None => (target, true),
                        Some(p) => {
                            let level = self.level();
                            // A raise from 0% exposes users afresh, whether or not an
                            // earlier step set a weight: paced as the first weight is.
                            let fresh = self.policy.weight_before(self.state.step) == 0;
                            let top = self.policy.highest_weight();
                            let s = &self.state;
                            let baseline = (s.baseline_requests, s.baseline_errors);
                            match p.next_weight(&level, target, top, baseline, fresh) {
                                // A weight the budget allows before the gate passed keeps the
                                // evidence gathered so far.
                                Ok(w) => (w, current == 0 || p.passed(&level)),
                                Err(reason) => {
                                    let reason = self.with_outlook(p, reason, now);
                                    return self.hold(now, reason);
                                }
                            }
                        }
                    };
                    self.set_weight(next, new_level);
                    // The decision names this step, before it moves on.
                    let d = self.decision(
                        Action::SetWeight(next),
                        now,
                        None,
                        format!("step: raise the canary weight to {next}%"),
                        None,
                    );
                    if next == target {
                        self.advance(now);
                    } else {
                        self.restart_step_clock(now);
                        self.state.step_samples.iter_mut().for_each(|s| *s = 0);
                    }
                    return d;
                }
                Step::Pause(p) => {
                    let since = self.state.step_started_at.unwrap_or(now);
                    let expired = p
                        .duration
                        .is_some_and(|d| now.saturating_duration_since(since) >= d);
                    if self.state.resumed || expired {
                        self.advance(now);
                        continue;
                    }
                    let reason = match p.duration {
                        Some(d) => format!("paused for {d:?}"),
                        None => "paused until resumed".to_string(),
                    };
                    return self.hold(now, reason);
                }
                Step::Analysis(a) => {
                    // Its time running out cannot complete the step either.
                    if let Some((i, c)) = &concluded {
                        return self.hold_on(now, format!("analysis cannot pass: {c}"), Some(*i));
                    }
                    let s = &self.state;
                    let enough = self.deciding().all(|i| s.step_samples[i] >= a.min_samples);
                    let all_pass = self.deciding().all(|i| {
                        s.judgements[i]
                            .as_ref()
                            .is_some_and(|j| j.verdict == Verdict::Pass)
                    });
                    if failing.is_none() && enough && all_pass {
                        self.advance(now);
                        continue;
                    }
                    let since = self.state.step_started_at.unwrap_or(now);
                    if now.saturating_duration_since(since) < a.duration {
                        return self.hold(now, "analysing".into());
                    }
                    if failing.is_none() && enough {
                        // The step ran its course with enough data and no failure.
                        self.advance(now);
                        continue;
                    }
                    // A warning that holds holds here as at any step; `onInconclusive` is for
                    // missing data.
                    if let Some((i, f)) = &failing {
                        return self.hold_on(now, format!("analysis ended while {f}"), Some(*i));
                    }
                    // Not `enough`: some deciding judge is short of samples.
                    let short = self
                        .deciding()
                        .find(|i| self.state.step_samples[*i] < a.min_samples);
                    let i = short.unwrap_or_default();
                    let reason = format!(
                        "analysis ended with {} of {} samples with data at {}% for judge `{}` of \
                         `{}`",
                        self.state.step_samples[i],
                        a.min_samples,
                        self.state.weight,
                        self.judges[i].name(),
                        self.judges[i].metric()
                    );
                    return match self.policy.on_inconclusive {
                        OnInconclusive::Rollback => {
                            self.finish(Phase::RolledBack, now, None, reason, Some(i))
                        }
                        OnInconclusive::Hold => self.hold_on(now, reason, Some(i)),
                    };
                }
                Step::SetCanaryScale(s) => {
                    let d = self.decision(
                        Action::SetCanaryScale(s),
                        now,
                        None,
                        "step: scale the canary".into(),
                        None,
                    );
                    self.advance(now);
                    return d;
                }
            }
        }
    }
}
