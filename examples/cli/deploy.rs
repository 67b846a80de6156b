//! The verbs that change what runs: `deploy`, `deploy-blue-green`, `deploy-canary`,
//! `rollback`, and the dry run `plan`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use indicatif::ProgressBar;
use serde_json::json;
use serin_orchestrator::{
    DeploymentConfig, DeploymentHandle, Event, EventKind, InMemoryJournal, InMemoryPlatform,
    Orchestrator, Platform, Report, ServiceBackends, StrategyKind, TrackSpec, TrafficStrategyKind,
};
use serin_signals::{InMemoryHealth, InMemorySource};
use serin_traffic::{InMemoryRouter, TrafficRouter, TrafficSplit};
use tokio::sync::broadcast;

use crate::cli::args::{CanaryArgs, DeployArgs, PlanArgs, RollbackArgs, StrategyArg};
use crate::cli::backend::Stack;
use crate::cli::context::Ctx;
use crate::cli::exit::{CliError, Exit};
use crate::cli::hooks;
use crate::cli::interrupt::{Interrupts, forced_message, invocation};
use crate::cli::settings::service_of;
use crate::cli::state::{Behaviour, RunState, StateDir, StateLock};
use crate::cli::ui::Ui;
use serin_local::load::Tally;

/// Which verb asked for a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// `deploy`: the strategy of its `--strategy` flag, else the environment's or the
    /// config's.
    Any(Option<StrategyArg>),
    /// `deploy-blue-green`.
    BlueGreen,
    /// `deploy-canary`.
    Canary,
}

fn strategy_of(arg: StrategyArg) -> StrategyKind {
    match arg {
        StrategyArg::BlueGreen => StrategyKind::BlueGreen,
        StrategyArg::Canary => StrategyKind::Canary,
        StrategyArg::BlueGreenWithCanary => StrategyKind::BlueGreenWithCanary,
    }
}

/// The config of a deployment: file, environment, then flags; validated.
fn deploy_config(
    ctx: &Ctx,
    args: &CanaryArgs,
    flavour: Flavour,
) -> Result<DeploymentConfig, CliError> {
    let (mut config, version_given) = ctx.config()?;
    let d = &args.deploy;
    match &d.version {
        Some(v) => config.version = v.clone(),
        None if version_given => {}
        None => {
            return Err(CliError::usage(
                "no version to deploy: give --version, set VERSION, or write `version` in the config file",
            ));
        }
    }
    match flavour {
        Flavour::BlueGreen => config.strategy = StrategyKind::BlueGreen,
        Flavour::Canary => config.strategy = StrategyKind::Canary,
        Flavour::Any(Some(s)) => config.strategy = strategy_of(s),
        Flavour::Any(None) => {}
    }
    canary_flags(ctx, args, config)
}

/// `config` with the canary flags applied as their variables are, so that they are checked
/// alike: a flag (or variable) that nothing would read, as over explicit `canaryConfig.steps`,
/// is refused rather than ignored. The variables are applied again, under the flags, because
/// the verb may have made a canary of a blue-green config, whose loading left them alone. The
/// result is validated; an error names the flag when a flag gave the value.
fn canary_flags(
    ctx: &Ctx,
    args: &CanaryArgs,
    config: DeploymentConfig,
) -> Result<DeploymentConfig, CliError> {
    let flags = [
        (
            "--initial-percentage",
            "INITIAL_PERCENTAGE",
            args.initial_percentage.map(|p| p.to_string()),
        ),
        (
            "--increment",
            "INCREMENT",
            args.increment.map(|p| p.to_string()),
        ),
        (
            "--phase-duration",
            "PHASE_DURATION",
            args.phase_duration
                .map(|d| humantime::format_duration(d).to_string()),
        ),
    ];
    let given = |name: &str| {
        let (_, var, flag) = flags.iter().find(|(_, var, _)| *var == name)?;
        flag.clone().or_else(|| ctx.env.get(var))
    };
    config.with_overrides(given).map_err(|e| {
        let mut message = e.to_string();
        for (flag, var, _) in flags.iter().filter(|(_, _, value)| value.is_some()) {
            message = message
                .replace(&format!("unset {var}"), &format!("drop {flag}"))
                .replace(var, flag);
        }
        CliError::usage(message)
    })
}

/// The behaviour of the version to deploy: the flags, else what was recorded, else healthy.
fn behaviour(d: &DeployArgs, recorded: Behaviour) -> Result<Behaviour, CliError> {
    let mut b = recorded;
    if let Some(rate) = d.error_rate {
        if !(0.0..=1.0).contains(&rate) {
            return Err(CliError::usage(format!(
                "invalid --error-rate `{rate}`: must be a fraction in 0 ..= 1 (0.05 = 5%)"
            )));
        }
        b.error_rate = rate;
    }
    if let Some(ms) = d.latency_ms {
        if ms > 60_000 {
            return Err(CliError::usage(format!(
                "invalid --latency-ms `{ms}`: must be at most 60000"
            )));
        }
        b.latency_ms = ms;
    }
    Ok(b)
}

/// After how long without a line the display says what it is waiting on; each next note waits
/// twice as long.
const FIRST_QUIET_NOTE: Duration = Duration::from_secs(10);

fn is_hold(kind: &EventKind) -> bool {
    matches!(kind, EventKind::AnalysisResult { decision }
        if decision.action == serin_canary::controller::Action::Hold)
}

/// Shows a running deployment: its events as lines, its phase and weight on a bar. Decisions
/// to hold are not printed (they come at every change of their reason), but when nothing has
/// been printed for a while (a canary without traffic, an analysis that stays inconclusive) a
/// line says so, with the last of them.
fn show_events(
    ui: Ui,
    bar: ProgressBar,
    mut events: broadcast::Receiver<Event>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let (mut since, mut quiet) = (tokio::time::Instant::now(), FIRST_QUIET_NOTE);
        let mut last_hold: Option<String> = None;
        loop {
            tokio::select! {
                received = events.recv() => match received {
                    Ok(e) => {
                        if let EventKind::PhaseChanged { phase } = &e.kind {
                            bar.set_prefix(phase.to_string());
                        }
                        if let Some(w) = weight_of(&e.kind) {
                            bar.set_position(w);
                        }
                        match &e.kind {
                            kind if is_hold(kind) => {
                                last_hold = Some(kind.to_string());
                                continue;
                            }
                            // What the canary waits on lasts until it moves on.
                            EventKind::AnalysisResult { .. }
                            | EventKind::PhaseChanged { .. }
                            | EventKind::WeightChanged { .. } => last_hold = None,
                            _ => {}
                        }
                        let line = format!("  {} {}", e.at, e.kind);
                        bar.set_message(e.kind.to_string().chars().take(60).collect::<String>());
                        ui.note(&bar, &line);
                        (since, quiet) = (tokio::time::Instant::now(), FIRST_QUIET_NOTE);
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                () = tokio::time::sleep_until(since + quiet) => {
                    let waited = humantime::format_duration(quiet);
                    let line = match &last_hold {
                        Some(hold) => format!("  ... nothing new for {waited}; still {hold}"),
                        None => format!("  ... nothing new for {waited}"),
                    };
                    ui.note(&bar, &line);
                    quiet = quiet.saturating_mul(2);
                }
            }
        }
    })
}

/// The new version's weight an event announces, if it announces one.
fn weight_of(kind: &EventKind) -> Option<u64> {
    match kind {
        EventKind::WeightChanged { percent, .. } => Some(percent.clamp(0.0, 100.0).round() as u64),
        _ => None,
    }
}

const DEPLOY_BAR: &str = "{spinner} [{elapsed_precise}] {prefix:>11} {bar:30} {pos:>3}% {msg}";

/// Waits for the end of a deployment; the first Ctrl-C (SIGINT) or SIGTERM (a service manager,
/// a CI cancel, `timeout`) aborts it, so it rolls back, and waits for that. Left unfinished, the
/// new version would keep its share of traffic with nothing watching it. The next signal quits
/// at once (see [`Interrupts`]).
async fn until_the_end(
    ui: Ui,
    bar: &ProgressBar,
    handle: DeploymentHandle,
    interrupts: Option<&mut Interrupts>,
) -> serin_orchestrator::Result<Report> {
    let mut status = handle.watch();
    let mut interrupts = interrupts;
    loop {
        if status.borrow_and_update().outcome.is_some() {
            break;
        }
        tokio::select! {
            changed = status.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            what = async { interrupts.as_mut()?.first().await.into() }, if interrupts.is_some() => {
                interrupts = None;
                if let Some(what) = what {
                    ui.note(
                        bar,
                        &format!(
                            "{what}: aborting the deployment (it rolls back) ...; interrupt \
                             again to quit at once"
                        ),
                    );
                    if let Err(e) = handle.abort().await {
                        ui.note(bar, &format!("could not abort: {e}"));
                    }
                }
            }
        }
    }
    handle.wait().await
}

/// The config of a rollback to `version`: an immediate blue-green switch with the config's
/// health gate and monitoring, as `Orchestrator::start_rollback_to` deploys it (built here too,
/// so the backend is set up for that version).
fn rollback_config(config: &DeploymentConfig, version: semver::Version) -> DeploymentConfig {
    let mut c = config.clone();
    c.version = version;
    c.strategy = StrategyKind::BlueGreen;
    c.blue_green_config.traffic_strategy = TrafficStrategyKind::Immediate;
    c
}

/// What a run of [`run_to_end`] is.
#[derive(Debug, Clone, Copy)]
enum Run {
    /// A deployment of a version whose behaviour was recorded for it, replacing `replaced`.
    Deployment { replaced: Option<Behaviour> },
    /// A rollback to a version that ran before.
    Rollback,
}

/// Whether a track of `version` started in the deployment of `report`: until one has, the
/// version has not run (validation blocked it, its start was refused, it failed before).
fn started_a_track(report: &Report, version: &semver::Version) -> bool {
    let version = version.to_string();
    report
        .timeline
        .iter()
        .any(|e| matches!(&e.kind, EventKind::TrackStarted { version: v, .. } if *v == version))
}

/// Runs one deployment to its end on `stack` with progress, then records what runs, and takes
/// back the behaviour a deployment recorded for a version of which no track started, so that
/// `rollback --to-version` does not count it as one that ran. From the start of the
/// deployment on, `interrupts` listens for Ctrl-C and SIGTERM, to the end of the command (see
/// [`finish`]).
async fn run_to_end(
    ctx: &Ctx,
    stack: &mut Stack,
    states: &StateDir,
    state: &mut RunState,
    config: &DeploymentConfig,
    run: Run,
    interrupts: &mut Option<Interrupts>,
) -> Result<Report, CliError> {
    let is_rollback = matches!(run, Run::Rollback);
    let service = state.service.clone();
    if state.current.is_some() {
        stack.start_load().await?;
    }
    if let Some(addr) = stack.address() {
        ctx.ui
            .note(&ProgressBar::hidden(), &format!("proxy on http://{addr}"));
    }
    // From here to the end of the command a first signal aborts, a second quits at once.
    *interrupts = Interrupts::listen(
        ctx.ui,
        forced_message(
            &invocation(&ctx.global),
            &ctx.global.state_dir,
            &config.version,
            state.current.as_ref().map(|r| &r.version),
            is_rollback,
        ),
        ctx.io.as_ref(),
    );
    state.in_progress = Some(format!(
        "{} of {} started at {}",
        if is_rollback {
            "rollback"
        } else {
            "deployment"
        },
        config.version,
        stack.now()
    ));
    states.save(state)?;
    let bar = ctx.ui.bar(100, DEPLOY_BAR);
    let printer = show_events(ctx.ui, bar.clone(), stack.orchestrator.subscribe());
    let started = if is_rollback {
        // The orchestrator's rollback also restores the backup taken before destructive
        // migrations it undoes (and refuses one it cannot undo).
        stack
            .orchestrator
            .start_rollback_to(config, &service, config.version.clone())
            .await
    } else {
        stack.orchestrator.start(config, &service).await
    };
    let mut id = None;
    let report = match started {
        Ok(handle) => {
            id = Some(handle.id().to_owned());
            // The last deployment from its start: if this command is stopped, `status` reads
            // this one's end from the journal (abandoned), not the one before's.
            state.last_deployment = id.clone();
            state.last_outcome = None;
            states.save(state)?;
            until_the_end(ctx.ui, &bar, handle, interrupts.as_mut()).await
        }
        Err(e) => Err(e),
    };
    // Let the printer catch the last events before it stops.
    tokio::time::sleep(Duration::from_millis(20)).await;
    printer.abort();
    bar.finish_and_clear();
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            // Nothing ran to its end: what runs is what the backend says, if it can say.
            if let Ok(running) = stack.running().await {
                state.record_running(running, &config.version, is_rollback);
            }
            if let Run::Deployment { replaced } = run {
                // A start refused ran nothing; else the journal tells (kept if it cannot).
                let started = match &id {
                    None => false,
                    Some(id) => stack
                        .orchestrator
                        .report(id)
                        .await
                        .map_or(true, |r| started_a_track(&r, &config.version)),
                };
                if !started {
                    state.forget_behaviour(&config.version, replaced);
                }
            }
            state.in_progress = None;
            states.save(state)?;
            return Err(e.into());
        }
    };
    let running = stack.running().await?;
    state.record_running(running, &config.version, is_rollback);
    if let Run::Deployment { replaced } = run
        && !started_a_track(&report, &config.version)
    {
        state.forget_behaviour(&config.version, replaced);
    }
    state.last_deployment = Some(report.deployment.clone());
    state.last_outcome = report.outcome.clone();
    state.in_progress = None;
    states.save(state)?;
    Ok(report)
}

fn report_text(report: &Report, tally: Option<Tally>) -> String {
    let mut text = report.to_string();
    if let Some(t) = tally {
        let _ = writeln!(text, "load: {t}");
    }
    text
}

/// `deploy`, `deploy-blue-green`, `deploy-canary`: a deployment to its end (or the plan with
/// `--dry-run`).
pub async fn deploy(ctx: &Ctx, args: &CanaryArgs, flavour: Flavour) -> Result<Exit, CliError> {
    let config = deploy_config(ctx, args, flavour)?;
    if args.deploy.dry_run {
        // What the deployment would refuse, the dry run refuses too.
        behaviour(&args.deploy, Behaviour::default())?;
        return plan_of(ctx, config).await;
    }
    let service = service_of(&config).to_owned();
    // Bad flags are refused before the state directory is created or locked.
    behaviour(&args.deploy, Behaviour::default())?;
    ctx.check_load_rps()?;
    let states = StateDir::existing(&ctx.global.state_dir);
    let held = states.lock(&format!("deploy of {}", config.version))?;
    let mut state = ctx.state(&states, &service)?;
    let b = behaviour(&args.deploy, state.behaviour(&config.version))?;
    // Recorded before the deployment, so that the backend runs the version so; taken back if
    // no track of it starts (see `run_to_end`).
    let replaced = state.behaviours.insert(config.version.to_string(), b);
    deploy_held(
        ctx,
        &states,
        held,
        state,
        &config,
        Run::Deployment { replaced },
    )
    .await
}

/// `rollback`: the previous version (or `--to-version`) back by an immediate blue-green switch.
pub async fn rollback(ctx: &Ctx, args: &RollbackArgs) -> Result<Exit, CliError> {
    let (config, _) = ctx.config()?;
    let service = service_of(&config).to_owned();
    let nothing = || {
        CliError::usage(format!(
            "nothing is deployed (state directory {}): nothing to roll back",
            ctx.global.state_dir.display()
        ))
    };
    // Without a state directory nothing was ever deployed from it: refused without creating
    // one. (With one, what it records is read under its lock, which another command may hold.)
    if !ctx.global.state_dir.is_dir() {
        return Err(nothing());
    }
    ctx.check_load_rps()?;
    let states = StateDir::existing(&ctx.global.state_dir);
    let held = states.lock(&format!("rollback of {service}"))?;
    let state = ctx.state(&states, &service)?;
    let Some(current) = state.current.clone() else {
        return Err(nothing());
    };
    let target = match (&args.to_version, state.previous.last()) {
        (Some(v), _) => v.clone(),
        (None, Some(v)) => v.clone(),
        (None, None) => {
            return Err(CliError::usage(format!(
                "no version of `{service}` ran before {}: give --to-version",
                current.version
            )));
        }
    };
    if target == current.version {
        return Err(CliError::usage(format!(
            "invalid --to-version `{target}`: it is what runs already"
        )));
    }
    // Going back is to a version that ran here: one that never did would be switched in at
    // once, with none of a deployment's gradual checks.
    let known = state.known_versions();
    if !known.contains(&target) {
        let known: Vec<String> = known.iter().map(ToString::to_string).collect();
        return Err(CliError::usage(format!(
            "invalid --to-version `{target}`: never deployed from state directory {}, which \
             knows {}; deploy it with `deploy --version {target}`",
            ctx.global.state_dir.display(),
            known.join(", ")
        )));
    }
    let config = rollback_config(&config, target);
    deploy_held(ctx, &states, held, state, &config, Run::Rollback).await
}

/// What `deploy` and `rollback` share once they hold the state directory: the backend with
/// what ran brought back up, `config` (a rollback's for [`Run::Rollback`]) run to its end and
/// recorded, the cleanup and the result. Until the deployment starts, an error leaves the
/// directory as it was (see [`StateLock`]).
async fn deploy_held(
    ctx: &Ctx,
    states: &StateDir,
    mut held: StateLock,
    mut state: RunState,
    config: &DeploymentConfig,
    run: Run,
) -> Result<Exit, CliError> {
    let mut stack = ctx.deployment_stack(states, &held, &state, config).await?;
    held.keep();
    let mut interrupts = None;
    let result = run_to_end(
        ctx,
        &mut stack,
        states,
        &mut state,
        config,
        run,
        &mut interrupts,
    )
    .await;
    let what = if matches!(run, Run::Rollback) {
        "rollback"
    } else {
        "deployment"
    };
    finish(ctx, stack, &state, result, interrupts, what).await
}

/// The end of `deploy` and `rollback`: cleans up (delivers queued notifications, stops the
/// load and the processes) and prints the result.
///
/// A deployment that ended is recorded before the cleanup begins, so a signal then has
/// nothing to abort and nothing half-switched to warn of: the first one says so and lets the
/// cleanup finish (it is short: notifications wait at most 10 s), the next quits at once with
/// the outcome's exit status and the result (see [`Interrupts::ended`]). A signal is never
/// swallowed: a handler, once installed, keeps the default action (ending the process) from
/// ever running again.
async fn finish(
    ctx: &Ctx,
    stack: Stack,
    state: &RunState,
    result: Result<Report, CliError>,
    interrupts: Option<Interrupts>,
    what: &str,
) -> Result<Exit, CliError> {
    if let (Ok(report), Some(i)) = (&result, &interrupts)
        && let Ok(output) = ctx.ui.rendered(&report_text(report, None), report)
    {
        let exit = Exit::of_outcome(report.outcome.as_ref());
        let running = state
            .current
            .as_ref()
            .map_or("nothing".to_owned(), |r| r.version.to_string());
        let outcome = report
            .outcome
            .as_ref()
            .map_or("unfinished".to_owned(), ToString::to_string);
        i.ended(
            exit,
            &format!("{what} of {}", report.to.version),
            &outcome,
            &running,
            output,
        );
    }
    let tally = stack.shutdown().await;
    let report = result?;
    // Taken from the signal handler, so that it does not print the result a second time.
    if let Some(i) = &interrupts {
        i.take_output();
    }
    ctx.ui.result(&report_text(&report, tally), &report)?;
    Ok(Exit::of_outcome(report.outcome.as_ref()))
}

/// `plan`: the dry run.
pub async fn plan(ctx: &Ctx, args: &PlanArgs) -> Result<Exit, CliError> {
    let canary = CanaryArgs {
        deploy: args.deploy(),
        ..CanaryArgs::default()
    };
    let config = deploy_config(ctx, &canary, Flavour::Any(args.strategy))?;
    behaviour(&canary.deploy, Behaviour::default())?;
    plan_of(ctx, config).await
}

/// The plan on an in-memory copy of what runs: no process starts, nothing changes. While
/// another command holds the state directory, the copy's deployment lock is held in its name,
/// so the plan marks the start refused (exit 4, as the deployment would be).
async fn plan_of(ctx: &Ctx, config: DeploymentConfig) -> Result<Exit, CliError> {
    let service = service_of(&config).to_owned();
    let states = StateDir::existing(&ctx.global.state_dir);
    let state = ctx.state(&states, &service)?;
    let platform = Arc::new(InMemoryPlatform::new());
    let holder = states.holder();
    if let Some(holder) = &holder {
        platform.lock(&service, holder).await?;
    }
    let router = Arc::new(InMemoryRouter::new());
    if let Some(r) = &state.current {
        let spec = TrackSpec::new(
            &service,
            &r.version.to_string(),
            r.track.clone(),
            r.instances.max(1),
        )?;
        platform.bring_up(&spec).await?;
        let split = TrafficSplit::all_to(r.track.as_str(), &[])
            .map_err(|e| CliError::backend(e.to_string()))?;
        router
            .apply(&split)
            .await
            .map_err(|e| CliError::backend(e.to_string()))?;
    }
    let backends = ServiceBackends::new(
        router,
        Arc::new(InMemorySource::new()),
        Arc::new(InMemoryHealth::new()),
    );
    let mut builder = Orchestrator::builder(platform, Arc::new(InMemoryJournal::new()))
        .service(&service, backends);
    let options = ctx.options(&states, &state);
    if let Some((path, fleet)) = options.catalog {
        builder = builder.validator(crate::cli::backend::load_catalog(&path)?, fleet);
    }
    // The provider the deployment would take its backup with; for listing, which creates
    // nothing.
    if let Some(backup) = hooks::backup(&ctx.global, &ctx.env, &states, hooks::Use::List)? {
        builder = builder.backup(backup);
    }
    let mut plans = builder.build().plan(&config).await?;
    // The copy's lock stands for the state directory's: its refusal says what to do here, as
    // the deployment's own would, not the orchestrator's `resume` or `abandon`, which this
    // command line does not have.
    if holder.is_some() {
        let refused = format!("start: REFUSED — {}", states.in_use());
        for step in plans.iter_mut().flat_map(|p| p.steps.iter_mut()) {
            if step.starts_with("start: REFUSED") {
                step.clone_from(&refused);
            }
        }
    }
    let blocked = plans
        .iter()
        .any(|p| p.steps.iter().any(|s| s.starts_with("validation: BLOCKED")));
    let mut text = String::from("dry run: nothing was changed\n");
    for p in &plans {
        let _ = write!(text, "{p}");
    }
    let doc = json!({
        "dryRun": true,
        "plans": plans.iter().map(|p| json!({
            "service": p.service,
            "strategy": p.strategy,
            "from": p.from,
            "to": p.to,
            "steps": p.steps,
            "traffic": p.traffic.as_ref().map(ToString::to_string),
        })).collect::<Vec<_>>(),
    });
    ctx.ui.result(&text, &doc)?;
    Ok(if blocked {
        Exit::Blocked
    } else if holder.is_some() {
        Exit::Backend
    } else {
        Exit::Success
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_come_from_weight_events_only() {
        let w = EventKind::WeightChanged {
            version: "1.1.0".into(),
            track: "canary".into(),
            percent: 12.6,
        };
        assert_eq!(weight_of(&w), Some(13));
        assert_eq!(weight_of(&EventKind::Paused), None);
    }

    #[test]
    fn a_rollback_is_an_immediate_blue_green_switch_to_the_version() {
        let c = DeploymentConfig::new(
            StrategyKind::Canary,
            semver::Version::new(2, 0, 0),
            &["demo"],
        )
        .expect("config");
        let r = rollback_config(&c, semver::Version::new(1, 0, 0));
        assert_eq!(r.version, semver::Version::new(1, 0, 0));
        assert_eq!(r.strategy, StrategyKind::BlueGreen);
        assert_eq!(
            r.blue_green_config.traffic_strategy,
            TrafficStrategyKind::Immediate
        );
        assert_eq!(r.monitoring, c.monitoring);
    }
}
