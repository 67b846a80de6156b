//! The verbs: each loads the settings and the state, assembles its backend, does its work,
//! records what runs and tears the backend down again.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use indicatif::ProgressBar;
use serde_json::json;
use serin_compat::Fleet;
use serin_orchestrator::{
    DeploymentConfig, DeploymentHandle, Event, EventKind, InMemoryJournal, InMemoryPlatform,
    Orchestrator, Platform, Report, ServiceBackends, StrategyKind, TrackSpec, TrafficStrategyKind,
};
use serin_signals::{InMemoryHealth, InMemorySource, Timestamp, Window};
use serin_traffic::{InMemoryRouter, TrafficRouter, TrafficSplit};
use tokio::sync::broadcast;

use crate::cli::args::{
    CanaryArgs, DeployArgs, Global, LogsArgs, MetricsArgs, MonitorArgs, RollbackArgs, StrategyArg,
};
use crate::cli::backend::{Options, Stack, TrackHealth, TrackMetrics};
use crate::cli::exit::{CliError, Exit};
use crate::cli::journal::{Overlay, events as journal_events};
use crate::cli::settings::{EnvLookup, load_config, service_of};
use crate::cli::state::{Behaviour, RunState, StateDir};
use crate::cli::ui::Ui;

/// Everything every verb starts from.
pub struct Ctx {
    /// The global options.
    pub global: Global,
    /// The environment and `.env` file.
    pub env: EnvLookup,
    /// Output settings.
    pub ui: Ui,
}

impl Ctx {
    fn states(&self) -> Result<StateDir, CliError> {
        StateDir::open(&self.global.state_dir)
    }

    /// The config (file, or the backend's built-in default) with the environment applied.
    fn config(&self) -> Result<(DeploymentConfig, bool), CliError> {
        let loaded = load_config(
            self.global.config.as_deref(),
            self.global.backend,
            &self.env,
        )?;
        Ok((loaded.config, loaded.version_given))
    }

    /// The recorded state, checked against the service and backend of this invocation.
    fn state(&self, states: &StateDir, service: &str) -> Result<RunState, CliError> {
        match states.load()? {
            None => Ok(RunState::new(service, self.global.backend)),
            Some(s) if s.service != service => Err(CliError::usage(format!(
                "state directory {} records service `{}`, but the config deploys `{service}`; use another --state-dir",
                self.global.state_dir.display(),
                s.service
            ))),
            Some(s) if s.backend != self.global.backend => Err(CliError::usage(format!(
                "state directory {} records the {:?} backend, not {:?}; pass --backend {} or use another --state-dir",
                self.global.state_dir.display(),
                s.backend,
                self.global.backend,
                format!("{:?}", s.backend).to_lowercase()
            ))),
            Some(s) => Ok(s),
        }
    }

    fn options(&self, states: &StateDir, state: &RunState) -> Options {
        let fleet = match &state.current {
            Some(r) => Fleet::new().with(state.service.clone(), r.version.clone()),
            None => Fleet::new(),
        };
        Options {
            backend: self.global.backend,
            service: state.service.clone(),
            behaviours: state.behaviours.clone(),
            load_rps: self.global.load_rps,
            listen: self.global.listen,
            demo_binary: self.global.demo_binary.clone(),
            logs: states.logs(),
            seed: self.global.seed,
            catalog: self.global.catalog.clone().map(|p| (p, fleet)),
        }
    }

    fn journal(states: &StateDir) -> Result<Arc<Overlay>, CliError> {
        Overlay::open(&states.journal())
            .map(Arc::new)
            .map_err(|e| CliError::backend(format!("journal: {e}")))
    }

    /// Assembles the backend and brings back what ran.
    async fn stack(
        &self,
        states: &StateDir,
        state: &RunState,
        config: &DeploymentConfig,
    ) -> Result<Stack, CliError> {
        if !self.global.load_rps.is_finite() || self.global.load_rps <= 0.0 {
            return Err(CliError::usage(format!(
                "invalid --load-rps `{}`: must be a number of requests per second above 0",
                self.global.load_rps
            )));
        }
        let stack = Stack::build(&self.options(states, state), Self::journal(states)?).await?;
        if let Some(current) = &state.current
            && let Err(e) = stack.restore(current, config).await
        {
            stack.shutdown().await;
            return Err(e);
        }
        Ok(stack)
    }
}

/// Which verb asked for a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// `deploy`: the strategy of the flag, the environment or the config.
    Any,
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
    match (flavour, d.strategy) {
        (Flavour::BlueGreen, _) => config.strategy = StrategyKind::BlueGreen,
        (Flavour::Canary, _) => config.strategy = StrategyKind::Canary,
        (Flavour::Any, Some(s)) => config.strategy = strategy_of(s),
        (Flavour::Any, None) => {}
    }
    if let Some(p) = args.initial_percentage {
        config.canary_config.initial_percentage = p;
    }
    if let Some(p) = args.increment {
        config.canary_config.increment_percentage = p;
    }
    if let Some(p) = args.phase_duration {
        config.canary_config.increment_interval = p;
    }
    config
        .validate()
        .map_err(|e| CliError::usage(format!("flags: {e}")))?;
    Ok(config)
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

/// Shows a running deployment: its events as lines, its phase and weight on a bar.
fn show_events(
    ui: Ui,
    bar: ProgressBar,
    mut events: broadcast::Receiver<Event>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(e) => {
                    if let EventKind::PhaseChanged { phase } = &e.kind {
                        bar.set_prefix(phase.to_string());
                    }
                    if let Some(w) = weight_of(&e.kind) {
                        bar.set_position(w);
                    }
                    if let EventKind::AnalysisResult { decision } = &e.kind
                        && decision.action == serin_canary::controller::Action::Hold
                    {
                        continue;
                    }
                    let line = format!("  {} {}", e.at, e.kind);
                    bar.set_message(e.kind.to_string().chars().take(60).collect::<String>());
                    ui.note(&bar, &line);
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
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

/// Waits for the end of a deployment; Ctrl-C aborts it (it rolls back) and waits for that.
async fn until_the_end(
    ui: Ui,
    bar: &ProgressBar,
    handle: DeploymentHandle,
) -> serin_orchestrator::Result<Report> {
    let mut status = handle.watch();
    // Registered now, not at the first poll of a select branch, so no interrupt is missed.
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    let mut interrupted = sigint.is_none();
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
            signal = async { sigint.as_mut()?.recv().await }, if !interrupted => {
                interrupted = true;
                if signal.is_some() {
                    ui.note(bar, "interrupted: aborting the deployment (it rolls back) ...");
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
/// health gate and monitoring, as `Orchestrator::rollback_to` deploys it (built here so the
/// command gets a handle for its progress and for Ctrl-C).
fn rollback_config(config: &DeploymentConfig, version: semver::Version) -> DeploymentConfig {
    let mut c = config.clone();
    c.version = version;
    c.strategy = StrategyKind::BlueGreen;
    c.blue_green_config.traffic_strategy = TrafficStrategyKind::Immediate;
    c
}

/// Runs one deployment to its end on `stack` with progress, then records what runs.
async fn run_to_end(
    ctx: &Ctx,
    stack: &mut Stack,
    states: &StateDir,
    state: &mut RunState,
    config: &DeploymentConfig,
    is_rollback: bool,
) -> Result<Report, CliError> {
    let service = state.service.clone();
    if state.current.is_some() {
        stack.start_load().await;
    }
    if let Some(addr) = stack.address() {
        ctx.ui
            .note(&ProgressBar::hidden(), &format!("proxy on http://{addr}"));
    }
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
    let report = match stack.orchestrator.start(config, &service).await {
        Ok(handle) => until_the_end(ctx.ui, &bar, handle).await,
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
                state.record_running(running, &config.version);
            }
            state.in_progress = None;
            states.save(state)?;
            return Err(e.into());
        }
    };
    let running = stack.running().await?;
    state.record_running(running, &config.version);
    state.last_deployment = Some(report.deployment.clone());
    state.last_outcome = report.outcome.clone();
    state.in_progress = None;
    states.save(state)?;
    Ok(report)
}

fn report_text(report: &Report, tally: Option<crate::cli::load::Tally>) -> String {
    let mut text = report.to_string();
    if let Some(t) = tally {
        let _ = writeln!(
            text,
            "load: {} answered ({} with a 5xx from the service), {} unanswered",
            t.answered, t.server_errors, t.unanswered
        );
    }
    text
}

/// `deploy`, `deploy-blue-green`, `deploy-canary`: a deployment to its end (or the plan with
/// `--dry-run`).
pub async fn deploy(ctx: &Ctx, args: &CanaryArgs, flavour: Flavour) -> Result<Exit, CliError> {
    let config = deploy_config(ctx, args, flavour)?;
    if args.deploy.dry_run {
        return plan_of(ctx, config).await;
    }
    let service = service_of(&config).to_owned();
    let states = ctx.states()?;
    let mut state = ctx.state(&states, &service)?;
    let b = behaviour(&args.deploy, state.behaviour(&config.version))?;
    state.behaviours.insert(config.version.to_string(), b);
    let mut stack = ctx.stack(&states, &state, &config).await?;
    let result = run_to_end(ctx, &mut stack, &states, &mut state, &config, false).await;
    let tally = stack.shutdown().await;
    let report = result?;
    let exit = Exit::of_outcome(report.outcome.as_ref());
    ctx.ui.result(&report_text(&report, tally), &report)?;
    Ok(exit)
}

/// `rollback`: the previous version (or `--to-version`) back by an immediate blue-green switch.
pub async fn rollback(ctx: &Ctx, args: &RollbackArgs) -> Result<Exit, CliError> {
    let (config, _) = ctx.config()?;
    let service = service_of(&config).to_owned();
    let states = ctx.states()?;
    let mut state = ctx.state(&states, &service)?;
    let Some(current) = state.current.clone() else {
        return Err(CliError::usage(format!(
            "nothing is deployed (state directory {}): nothing to roll back",
            ctx.global.state_dir.display()
        )));
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
    let config = rollback_config(&config, target);
    let mut stack = ctx.stack(&states, &state, &config).await?;
    let result = run_to_end(ctx, &mut stack, &states, &mut state, &config, true).await;
    let tally = stack.shutdown().await;
    let report = result?;
    let exit = Exit::of_outcome(report.outcome.as_ref());
    ctx.ui.result(&report_text(&report, tally), &report)?;
    Ok(exit)
}

/// `plan`: the dry run.
pub async fn plan(ctx: &Ctx, args: &DeployArgs) -> Result<Exit, CliError> {
    let canary = CanaryArgs {
        deploy: args.clone(),
        ..CanaryArgs::default()
    };
    let config = deploy_config(ctx, &canary, Flavour::Any)?;
    plan_of(ctx, config).await
}

/// The plan on an in-memory copy of what runs: no process starts, nothing changes.
async fn plan_of(ctx: &Ctx, config: DeploymentConfig) -> Result<Exit, CliError> {
    let service = service_of(&config).to_owned();
    let states = StateDir::existing(&ctx.global.state_dir);
    let state = ctx.state(&states, &service)?;
    let platform = Arc::new(InMemoryPlatform::new());
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
    let plans = builder.build().plan(&config).await?;
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
    } else {
        Exit::Success
    })
}

/// `status`: what runs, what ran before, how the last deployment ended.
pub async fn status(ctx: &Ctx) -> Result<Exit, CliError> {
    let states = StateDir::existing(&ctx.global.state_dir);
    let Some(state) = states.load()? else {
        let text = format!(
            "nothing deployed (state directory {})",
            ctx.global.state_dir.display()
        );
        ctx.ui.result(&text, &json!({ "deployed": false }))?;
        return Ok(Exit::Success);
    };
    let mut text = String::new();
    let _ = writeln!(
        text,
        "service: {} ({:?} backend)",
        state.service, state.backend
    );
    match &state.current {
        Some(r) => {
            let _ = writeln!(
                text,
                "running: {} on {} ({} instance(s))",
                r.version, r.track, r.instances
            );
        }
        None => {
            let _ = writeln!(text, "running: nothing");
        }
    }
    let previous: Vec<String> = state.previous.iter().map(ToString::to_string).collect();
    let _ = writeln!(
        text,
        "previous versions: {}",
        if previous.is_empty() {
            "none".to_owned()
        } else {
            previous.join(", ")
        }
    );
    if let Some(id) = &state.last_deployment {
        let _ = writeln!(
            text,
            "last deployment: {id}: {}",
            state
                .last_outcome
                .as_ref()
                .map_or("not finished".to_owned(), ToString::to_string)
        );
    }
    if let Some(p) = &state.in_progress {
        let _ = writeln!(text, "interrupted: the {p} and was stopped before its end");
    }
    let doc = json!({
        "deployed": state.current.is_some(),
        "service": state.service,
        "backend": state.backend,
        "current": state.current,
        "previous": state.previous,
        "lastDeployment": state.last_deployment,
        "lastOutcome": state.last_outcome,
        "interrupted": state.in_progress,
    });
    ctx.ui.result(&text, &doc)?;
    Ok(Exit::Success)
}

/// One event as a line: its own rendering when it parses; otherwise (a record the journal
/// could not read back, see `journal`) the analysis' action, reason and evidence, or the JSON.
fn event_line(v: &serde_json::Value) -> String {
    if let Ok(e) = serde_json::from_value::<Event>(v.clone()) {
        return format!("{} {} #{} {}", e.at, e.deployment, e.seq, e.kind);
    }
    let at = v.get("at").and_then(serde_json::Value::as_u64).map_or_else(
        || "?".to_owned(),
        |ms| Timestamp::from_millis(ms).to_string(),
    );
    let kind = v.get("kind").cloned().unwrap_or_default();
    let what = match kind.get("decision") {
        Some(d) => {
            let text = |key: &str| d.get(key).and_then(|x| x.as_str()).unwrap_or("").to_owned();
            let evidence: Vec<String> = d
                .get("evidence")
                .and_then(|e| e.as_array())
                .map(|list| {
                    list.iter()
                        .filter_map(|e| e.get("summary").and_then(|s| s.as_str()))
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            format!(
                "analysis: {} — {} [{}]",
                text("action"),
                text("reason"),
                evidence.join("; ")
            )
        }
        None => kind.to_string().chars().take(300).collect(),
    };
    format!(
        "{at} {} #{} {what}",
        v.get("deployment").and_then(|d| d.as_str()).unwrap_or("?"),
        v.get("seq").map_or_else(String::new, ToString::to_string),
    )
}

/// `logs`: the journal's events, oldest first.
pub async fn logs(ctx: &Ctx, args: &LogsArgs) -> Result<Exit, CliError> {
    let states = StateDir::existing(&ctx.global.state_dir);
    let mut events = journal_events(&states.journal())?;
    if let Some(id) = &args.deployment {
        events.retain(|e| e.get("deployment").and_then(|d| d.as_str()) == Some(id.as_str()));
        if events.is_empty() {
            return Err(CliError::usage(format!(
                "invalid --deployment `{id}`: no such deployment in the journal"
            )));
        }
    }
    if let Some(n) = args.tail {
        let skip = events.len().saturating_sub(n);
        events.drain(..skip);
    }
    let mut text = String::new();
    for e in &events {
        let _ = writeln!(text, "{}", event_line(e));
    }
    if events.is_empty() {
        text.push_str("no events\n");
    }
    ctx.ui.result(&text, &json!({ "events": events }))?;
    Ok(Exit::Success)
}

/// `[start, end)` shrunk to whole seconds: both backends measure in one-second buckets, and a
/// bucket counts in the window it starts in, so a partial second at either edge would be
/// under-counted. A window shorter than a whole second is kept as it is.
fn whole_seconds(start: Timestamp, end: Timestamp) -> Result<Window, CliError> {
    let first = start.as_millis().div_ceil(1_000) * 1_000;
    let last = end.as_millis() / 1_000 * 1_000;
    let (a, b) = if last > first {
        (Timestamp::from_millis(first), Timestamp::from_millis(last))
    } else {
        (start, end)
    };
    Window::new(a, b).map_err(|e| CliError::backend(e.to_string()))
}

/// The state of a command that needs something deployed.
fn deployed(ctx: &Ctx, states: &StateDir, service: &str) -> Result<RunState, CliError> {
    let state = ctx.state(states, service)?;
    if state.current.is_none() {
        return Err(CliError::usage(format!(
            "nothing is deployed (state directory {}): deploy first",
            ctx.global.state_dir.display()
        )));
    }
    Ok(state)
}

fn metrics_text(tracks: &[TrackMetrics]) -> String {
    let mut text = String::new();
    for t in tracks {
        let _ = writeln!(
            text,
            "{:<8} {:<8} {:>5.1}%  {:>7} req  {:>6.1} req/s  errors {:>5} ({})  p50 {}  p99 {}",
            t.track,
            t.version,
            t.weight,
            t.requests,
            t.throughput,
            t.errors,
            t.error_rate
                .map_or("-".to_owned(), |r| format!("{:.2}%", r * 100.0)),
            t.p50_ms.map_or("-".to_owned(), |v| format!("{v:.1}ms")),
            t.p99_ms.map_or("-".to_owned(), |v| format!("{v:.1}ms")),
        );
    }
    text
}

/// `metrics`: what runs, measured under the built-in load for `--duration`.
pub async fn metrics(ctx: &Ctx, args: &MetricsArgs) -> Result<Exit, CliError> {
    let (config, _) = ctx.config()?;
    let service = service_of(&config).to_owned();
    let states = ctx.states()?;
    let state = deployed(ctx, &states, &service)?;
    let mut stack = ctx.stack(&states, &state, &config).await?;
    let result = async {
        stack.start_load().await;
        let start = stack.now();
        let bar = ctx.ui.bar(
            args.duration.as_secs().max(1),
            "{spinner} measuring {elapsed}/{len}s {bar:30}",
        );
        let step = Duration::from_secs(1).min(args.duration);
        let deadline = tokio::time::Instant::now() + args.duration;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(step).await;
            bar.inc(1);
        }
        bar.finish_and_clear();
        let window = whole_seconds(start, stack.now())?;
        Ok::<_, CliError>((window, stack.measure(window).await?))
    }
    .await;
    stack.shutdown().await;
    let (window, tracks) = result?;
    let text = format!("{window}\n{}", metrics_text(&tracks));
    ctx.ui
        .result(&text, &json!({ "window": window, "tracks": tracks }))?;
    Ok(Exit::Success)
}

fn health_text(tracks: &[TrackHealth]) -> String {
    let mut text = String::new();
    for t in tracks {
        let _ = writeln!(
            text,
            "{} ({}): {}/{} ready — {}",
            t.track,
            t.version,
            t.ready,
            t.instances,
            if t.healthy() { "healthy" } else { "UNHEALTHY" }
        );
        for p in &t.probes {
            let _ = writeln!(
                text,
                "  {:?} {} {:?}{}",
                p.probe,
                p.instance.as_deref().unwrap_or("(track)"),
                p.status,
                p.detail
                    .as_deref()
                    .map_or(String::new(), |d| format!(": {d}"))
            );
        }
    }
    text
}

/// `health-check`: brings what runs up and probes it.
pub async fn health_check(ctx: &Ctx) -> Result<Exit, CliError> {
    let (config, _) = ctx.config()?;
    let service = service_of(&config).to_owned();
    let states = ctx.states()?;
    let state = ctx.state(&states, &service)?;
    let stack = ctx.stack(&states, &state, &config).await?;
    let result = stack.probe().await;
    stack.shutdown().await;
    let tracks = result?;
    let healthy = tracks.iter().all(TrackHealth::healthy);
    let text = if state.current.is_none() {
        format!(
            "nothing deployed yet; the {:?} backend starts\n",
            ctx.global.backend
        )
        .to_lowercase()
    } else {
        health_text(&tracks)
    };
    ctx.ui
        .result(&text, &json!({ "healthy": healthy, "tracks": tracks }))?;
    Ok(if healthy { Exit::Success } else { Exit::Failed })
}

/// `monitor`: samples health and metrics of what runs every `--interval` for `--duration`.
pub async fn monitor(ctx: &Ctx, args: &MonitorArgs) -> Result<Exit, CliError> {
    let (config, _) = ctx.config()?;
    let service = service_of(&config).to_owned();
    let states = ctx.states()?;
    let state = deployed(ctx, &states, &service)?;
    let mut stack = ctx.stack(&states, &state, &config).await?;
    let interval = args.interval.min(args.duration);
    let result = async {
        stack.start_load().await;
        let steps = (args.duration.as_millis() / interval.as_millis().max(1)).max(1);
        // Each sample measures the last whole seconds (at least one) before it.
        let steps = u64::try_from(steps).unwrap_or(u64::MAX);
        let bar = ctx.ui.bar(
            steps,
            "{spinner} monitoring [{elapsed_precise}] {bar:30} {msg}",
        );
        let mut samples = Vec::new();
        let mut healthy = true;
        let span = Duration::from_secs(interval.as_secs().max(1));
        for _ in 0..steps {
            tokio::time::sleep(interval).await;
            let end = stack.now();
            let window = whole_seconds(end.saturating_sub(span + Duration::from_secs(1)), end)?;
            let tracks = stack.measure(window).await?;
            let health = stack.probe().await?;
            let ok = health.iter().all(TrackHealth::healthy);
            healthy &= ok;
            let summary: Vec<String> = tracks
                .iter()
                .map(|t| {
                    format!(
                        "{} {} {:.0}% {:.0} req/s err {}",
                        t.track,
                        t.version,
                        t.weight,
                        t.throughput,
                        t.error_rate
                            .map_or("-".to_owned(), |r| format!("{:.2}%", r * 100.0))
                    )
                })
                .collect();
            let line = format!(
                "{} {} | {}",
                window.end(),
                summary.join(" | "),
                if ok { "healthy" } else { "UNHEALTHY" }
            );
            bar.set_message(line.clone());
            ctx.ui.note(&bar, &line);
            bar.inc(1);
            samples.push(
                json!({ "window": window, "tracks": tracks, "health": health, "healthy": ok }),
            );
        }
        bar.finish_and_clear();
        Ok::<_, CliError>((samples, healthy))
    }
    .await;
    let tally = stack.shutdown().await;
    let (samples, healthy) = result?;
    let mut text = format!(
        "monitored {} for {}: {}\n",
        service,
        humantime::format_duration(args.duration),
        if healthy {
            "healthy throughout"
        } else {
            "UNHEALTHY at times"
        }
    );
    if let Some(t) = tally {
        let _ = writeln!(
            text,
            "load: {} answered ({} with a 5xx from the service), {} unanswered",
            t.answered, t.server_errors, t.unanswered
        );
    }
    ctx.ui.result(
        &text,
        &json!({ "healthy": healthy, "samples": samples, "load": tally }),
    )?;
    Ok(if healthy { Exit::Success } else { Exit::Failed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_shrink_to_whole_seconds_unless_shorter_than_one() {
        let t = Timestamp::from_millis;
        let w = whole_seconds(t(10_250), t(13_900)).expect("window");
        assert_eq!((w.start(), w.end()), (t(11_000), t(13_000)));
        let w = whole_seconds(t(10_000), t(12_000)).expect("window");
        assert_eq!((w.start(), w.end()), (t(10_000), t(12_000)));
        let w = whole_seconds(t(10_250), t(10_900)).expect("window");
        assert_eq!((w.start(), w.end()), (t(10_250), t(10_900)));
    }

    #[test]
    fn an_event_that_does_not_parse_still_shows_its_decision() {
        let v = serde_json::json!({
            "deployment": "demo-1.2.0-1",
            "service": "demo",
            "seq": 9,
            "at": 1_700_000_000_000u64,
            "kind": {
                "type": "analysisResult",
                "decision": {
                    "action": "rollback",
                    "reason": "critical regression in `error_rate`",
                    "evidence": [{ "summary": "ratio NaN, e-value 25", "effects": [{ "estimate": null }] }],
                },
            },
        });
        let line = event_line(&v);
        assert_eq!(
            line,
            "2023-11-14T22:13:20.000Z demo-1.2.0-1 #9 analysis: rollback — critical regression in `error_rate` [ratio NaN, e-value 25]"
        );
        let parsed = serde_json::json!({
            "deployment": "demo-1.0.0-1",
            "service": "demo",
            "seq": 0,
            "at": 1_700_000_000_000u64,
            "kind": { "type": "completed", "version": "1.0.0" },
        });
        assert!(
            event_line(&parsed).ends_with("#0 completed: 1.0.0 serves all traffic"),
            "{}",
            event_line(&parsed)
        );
    }

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
