//! The backend a command runs on, assembled for the length of one command: the embedded proxy
//! with demo-service processes (`local`), or a simulated fleet in virtual time (`sim`); the
//! orchestrator over it, journalling to the state directory.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serin_compat::{Catalog, Fleet};
use serin_local::{
    HttpHealth, ProbePaths, ProcessConfig, ProcessPlatform, ProxiedPlatform, ProxyConfig,
    ProxyRouter,
};
use serin_orchestrator::{
    Clock, DeploymentConfig, Journal, Orchestrator, Platform, ServiceBackends, SpecFn, TrackSpec,
    TrackStatus, wait_ready,
};
use serin_signals::{
    HealthSignal, HealthSource, Measurement, Metric, MetricQuery, MetricsSource, Timestamp, Window,
};
use serin_sim::{LatencyProfile, Load as SimLoad, Schedule, SimConfig, SimWorld, VersionProfile};
use serin_traffic::{TrafficRouter, TrafficSplit};
use tokio::task::JoinHandle;

use crate::cli::args::BackendKind;
use crate::cli::exit::CliError;
use crate::cli::hooks::{Hooks, Notifications};
use crate::cli::state::{Behaviour, Running};
use serin_local::load::{Load, Tally};

/// What a command needs to assemble its backend.
#[derive(Debug, Clone)]
pub struct Options {
    /// Which backend.
    pub backend: BackendKind,
    /// The service.
    pub service: String,
    /// Each version's demo behaviour.
    pub behaviours: BTreeMap<String, Behaviour>,
    /// Requests per second of the built-in load.
    pub load_rps: f64,
    /// The proxy's address (local).
    pub listen: SocketAddr,
    /// The demo service binary (local); found or built when `None`.
    pub demo_binary: Option<PathBuf>,
    /// Where the processes' logs go (local).
    pub logs: PathBuf,
    /// The simulated fleet's seed (sim).
    pub seed: u64,
    /// A compatibility catalog to validate upgrades with, and what runs now.
    pub catalog: Option<(PathBuf, Fleet)>,
}

/// The local backend's parts: the proxy, the platform it follows, the task keeping it in step,
/// the HTTP probes (the orchestrator's health source) with the task refreshing them, and the
/// load.
struct Local {
    proxy: ProxyRouter,
    proxied: Arc<ProxiedPlatform>,
    sync: JoinHandle<()>,
    probes: Arc<HttpHealth>,
    refresh: JoinHandle<()>,
    load: Option<Load>,
}

/// Where the demo service answers its readiness and liveness probes.
fn demo_probes() -> ProbePaths {
    ProbePaths::new("/ready", "/live")
}

enum Kind {
    Local(Box<Local>),
    Sim { world: SimWorld },
}

/// What each backend contributes to the orchestrator.
struct Parts {
    platform: Arc<dyn Platform>,
    router: Arc<dyn TrafficRouter>,
    metrics: Arc<dyn MetricsSource>,
    health: Arc<dyn HealthSource>,
    spec: SpecFn,
    kind: Kind,
    clock: Clock,
}

/// One track's measurements over a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackMetrics {
    /// The track.
    pub track: String,
    /// The version it runs.
    pub version: String,
    /// Its share of traffic in percent.
    pub weight: f64,
    /// Requests served over the window.
    pub requests: u64,
    /// Of which failed (5xx or no answer).
    pub errors: u64,
    /// `errors / requests` (none without requests).
    pub error_rate: Option<f64>,
    /// Requests per second.
    pub throughput: f64,
    /// Median latency in milliseconds.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency in milliseconds.
    pub p99_ms: Option<f64>,
}

/// One track's probe results.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackHealth {
    /// The track.
    pub track: String,
    /// The version it runs.
    pub version: String,
    /// Instances the platform reports ready, of all.
    pub ready: usize,
    /// All instances.
    pub instances: usize,
    /// The latest probe results.
    pub probes: Vec<HealthSignal>,
}

impl TrackHealth {
    /// Every instance ready and no probe failing or unknown.
    pub fn healthy(&self) -> bool {
        self.ready == self.instances
            && self.instances > 0
            && self
                .probes
                .iter()
                .all(|p| p.status == serin_signals::ProbeStatus::Pass)
    }
}

/// The assembled backend and the orchestrator over it.
pub struct Stack {
    /// The orchestrator.
    pub orchestrator: Orchestrator,
    notifications: Option<Notifications>,
    platform: Arc<dyn Platform>,
    router: Arc<dyn TrafficRouter>,
    metrics: Arc<dyn MetricsSource>,
    service: String,
    spec: SpecFn,
    load_rps: f64,
    kind: Kind,
}

/// The demo service binary: the given one, or `serin-demo-service` in this program's target
/// directory (built there with cargo when missing or older than its sources; see
/// `serin_examples::demo_binary`). The given one is made absolute: a bare
/// name (`--demo-binary demo`) would otherwise be looked up on `PATH` when started, not in the
/// working directory where it was found.
fn demo_binary(given: Option<&Path>) -> Result<PathBuf, CliError> {
    if let Some(p) = given {
        let invalid = |why: String| {
            CliError::usage(format!("invalid --demo-binary `{}`: {why}", p.display()))
        };
        if !p.is_file() {
            return Err(invalid("no such file".into()));
        }
        return std::fs::canonicalize(p).map_err(|e| invalid(e.to_string()));
    }
    serin_examples::demo_binary().map_err(|e| CliError::backend(format!("{e}; pass --demo-binary")))
}

fn sim_profile(b: Behaviour) -> VersionProfile {
    let base = LatencyProfile::default();
    VersionProfile::default()
        .with_error_rate(Schedule::constant(b.error_rate))
        .with_latency(LatencyProfile::new(
            base.median_ms + b.latency_ms as f64,
            base.sigma,
        ))
}

/// Where a simulated world starts: the wall-clock time now, or the time of the journal's
/// latest record if that is later. A simulated deployment runs in virtual time, ahead of the
/// wall clock; one cut short (a second signal, a kill) leaves records dated after now, and a
/// world started before them would close it as abandoned (and date what comes next) before
/// its own last event, so that its report's timeline and duration would go backwards.
async fn sim_start(journal: &dyn Journal) -> Result<Timestamp, CliError> {
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    let latest = journal
        .last_records()
        .await
        .map_err(|e| CliError::backend(format!("journal: {e}")))?
        .iter()
        .map(|r| r.at)
        .max();
    Ok(latest.map_or(now, |at| at.max(now)))
}

fn platform_err(e: serin_orchestrator::Error) -> CliError {
    CliError::backend(e.to_string())
}

impl Stack {
    /// Assembles the backend of `options`, journalling to `journal`. Nothing runs yet.
    pub async fn build(
        options: &Options,
        journal: Arc<dyn Journal>,
        hooks: Hooks,
    ) -> Result<Stack, CliError> {
        let service = options.service.clone();
        let behaviours = Arc::new(options.behaviours.clone());
        let validation = match &options.catalog {
            None => None,
            Some((path, fleet)) => Some((load_catalog(path)?, fleet.clone())),
        };
        let Parts {
            platform,
            router,
            metrics,
            health,
            spec,
            kind,
            clock,
        } = match options.backend {
            BackendKind::Local => {
                let demo = demo_binary(options.demo_binary.as_deref())?
                    .display()
                    .to_string();
                let proxy = ProxyRouter::bind(
                    ProxyConfig::listening_on(options.listen)
                        .with_connect_timeout(Duration::from_secs(5)),
                )
                .await
                .map_err(|e| {
                    CliError::backend(format!("cannot start the proxy on {}: {e}", options.listen))
                })?;
                let processes = ProcessPlatform::new(
                    ProcessConfig::new(&options.logs).with_grace(Duration::from_secs(2)),
                )
                .map_err(|e| {
                    CliError::backend(format!("cannot start the process platform: {e}"))
                })?;
                let proxied = Arc::new(ProxiedPlatform::new(processes, proxy.clone()));
                let sync = proxied.spawn_sync(Duration::from_millis(50));
                let spec: SpecFn = Arc::new(move |spec: TrackSpec| {
                    let b = behaviours
                        .get(&spec.version().to_string())
                        .copied()
                        .unwrap_or_default();
                    spec.with_command([demo.as_str()])?
                        .with_env("DEMO_ERROR_RATE", &b.error_rate.to_string())?
                        .with_env("DEMO_LATENCY_MS", &b.latency_ms.to_string())
                });
                // Every instance's `/ready` and `/live`, probed each second: what health-check
                // triggers read.
                let probes = Arc::new(HttpHealth::new(Duration::from_secs(2))?);
                let refresh = probes.spawn_refresh(
                    proxied.clone(),
                    &service,
                    demo_probes(),
                    Duration::from_secs(1),
                );
                Parts {
                    platform: proxied.clone(),
                    router: Arc::new(proxy.clone()),
                    metrics: Arc::new(proxy.metrics()),
                    health: probes.clone(),
                    spec,
                    kind: Kind::Local(Box::new(Local {
                        proxy,
                        proxied,
                        sync,
                        probes,
                        refresh,
                        load: None,
                    })),
                    clock: Clock::system(),
                }
            }
            BackendKind::Sim => {
                let mut config = SimConfig::new(options.seed)
                    .with_start(sim_start(journal.as_ref()).await?)
                    .with_service(service.clone())
                    .with_load(SimLoad::constant(options.load_rps));
                for (version, b) in options.behaviours.iter() {
                    let v = semver::Version::parse(version).map_err(|e| {
                        CliError::backend(format!("state: version `{version}`: {e}"))
                    })?;
                    config = config.with_profile(v, sim_profile(*b));
                }
                let world = SimWorld::new(config)
                    .map_err(|e| CliError::usage(format!("simulated fleet: {e}")))?;
                let spec: SpecFn = Arc::new(Ok);
                Parts {
                    platform: Arc::new(world.platform()),
                    router: Arc::new(world.router()),
                    metrics: Arc::new(world.metrics()),
                    health: Arc::new(world.health()),
                    spec,
                    kind: Kind::Sim {
                        world: world.clone(),
                    },
                    clock: Clock::starting_at(world.now()),
                }
            }
        };
        let backends = ServiceBackends::new(router.clone(), metrics.clone(), health)
            .with_command(spec.clone());
        let mut builder = Orchestrator::builder(platform.clone(), journal)
            .service(&service, backends)
            .clock(clock);
        if let Some((validator, fleet)) = validation {
            builder = builder.validator(validator, fleet);
        }
        if let Some(n) = &hooks.notifier {
            builder = builder.notifier(n.notifier.clone());
        }
        if let Some(b) = hooks.backup {
            builder = builder.backup(b);
        }
        Ok(Stack {
            orchestrator: builder.build(),
            notifications: hooks.notifier,
            platform,
            router,
            metrics,
            service,
            spec,
            load_rps: options.load_rps,
            kind,
        })
    }

    /// The proxy's address (local backend).
    pub fn address(&self) -> Option<SocketAddr> {
        match &self.kind {
            Kind::Local(local) => Some(local.proxy.local_addr()),
            Kind::Sim { .. } => None,
        }
    }

    /// Where the backend's one-second measuring buckets start: the epoch for the proxy, whose
    /// buckets are whole seconds of the wall clock; the world's start for the simulated fleet,
    /// which draws each second of its traffic by its place from its start.
    pub fn bucket_origin(&self) -> Timestamp {
        match &self.kind {
            Kind::Local(_) => Timestamp::EPOCH,
            Kind::Sim { world } => world.config().start(),
        }
    }

    /// Now, by the orchestrator's clock (virtual on the sim backend).
    pub fn now(&self) -> Timestamp {
        self.orchestrator.clock().now()
    }

    /// Ends as failed each deployment the journal has unfinished: a command stopped before its
    /// end (a second signal, a kill) left it so, and it cannot resume, as its tracks ended with
    /// that command and what ran before it, `current`, has been brought back. Its report, the
    /// journal's compaction and its notification channels then see it ended. Only a command
    /// that holds the state directory gets here, so none of them is running.
    pub async fn abandon_unfinished(&self, current: Option<&Running>) -> Result<(), CliError> {
        let unfinished = self
            .orchestrator
            .unfinished()
            .await
            .map_err(|e| CliError::backend(format!("journal: {e}")))?;
        let reason = match current {
            Some(r) => format!(
                "the command running it was stopped before its end; {} serves again",
                r.version
            ),
            None => "the command running it was stopped before its end".to_owned(),
        };
        for id in unfinished {
            self.orchestrator
                .abandon(&id, &reason)
                .await
                .map_err(|e| CliError::backend(format!("closing the interrupted {id}: {e}")))?;
        }
        Ok(())
    }

    /// Brings `current` up again as it ran when the last command ended and gives it all
    /// traffic.
    pub async fn restore(
        &self,
        current: &Running,
        config: &DeploymentConfig,
    ) -> Result<(), CliError> {
        let spec = TrackSpec::new(
            &self.service,
            &current.version.to_string(),
            current.track.clone(),
            current.instances.max(1),
        )
        .and_then(|s| (self.spec)(s))
        .map_err(platform_err)?;
        self.platform.bring_up(&spec).await.map_err(platform_err)?;
        let bg = &config.blue_green_config;
        wait_ready(
            self.platform.as_ref(),
            &self.service,
            &current.track,
            bg.health_check_interval,
            bg.readiness_timeout,
        )
        .await
        .map_err(|e| CliError::backend(format!("bringing {} back up: {e}", current.version)))?;
        let split = TrafficSplit::all_to(current.track.as_str(), &[])
            .map_err(|e| CliError::backend(format!("split for {}: {e}", current.track)))?;
        self.router
            .apply(&split)
            .await
            .map_err(|e| CliError::backend(format!("routing to {}: {e}", current.track)))?;
        if let Kind::Local(local) = &self.kind {
            // The proxy follows the platform; wait until it has the track's instances.
            for _ in 0..100 {
                local.proxied.sync().await;
                if !local.proxy.endpoints(current.track.as_str()).is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// Starts the built-in load (the simulated fleet has its own).
    pub async fn start_load(&mut self) -> Result<(), CliError> {
        let rps = self.load_rps;
        if let Kind::Local(local) = &mut self.kind
            && local.load.is_none()
        {
            let load = Load::start(local.proxy.local_addr(), rps)
                .map_err(|e| CliError::usage(format!("--load-rps: {e}")))?;
            local.load = Some(load);
            // Let the clients connect before anything is measured.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Ok(())
    }

    /// Every track that runs, with its share of traffic in percent.
    pub async fn tracks(&self) -> Result<Vec<(TrackStatus, f64)>, CliError> {
        let split = self
            .router
            .current()
            .await
            .map_err(|e| CliError::backend(format!("reading the split: {e}")))?;
        let tracks = self.platform.list().await.map_err(platform_err)?;
        Ok(tracks
            .into_iter()
            .filter(|t| t.service == self.service)
            .map(|t| {
                let w = split
                    .as_ref()
                    .and_then(|s| s.weight_of(t.track.as_str()))
                    .map_or(0.0, |w| w.as_percent());
                (t, w)
            })
            .collect())
    }

    /// What serves all traffic now: the track with the largest share (or the only track).
    pub async fn running(&self) -> Result<Option<Running>, CliError> {
        let tracks = self.tracks().await?;
        let best = tracks
            .iter()
            .filter(|(_, w)| *w > 0.0)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .or(match tracks.as_slice() {
                [only] => Some(only),
                _ => None,
            });
        Ok(best.map(|(t, _)| Running {
            version: t.version.clone(),
            track: t.track.clone(),
            instances: u32::try_from(t.instances.len()).unwrap_or(u32::MAX),
        }))
    }

    /// Each track's requests, errors and latency over `window`.
    pub async fn measure(&self, window: Window) -> Result<Vec<TrackMetrics>, CliError> {
        let mut out = Vec::new();
        for (t, weight) in self.tracks().await? {
            let q = |metric| MetricQuery::new(metric, t.track.clone(), window);
            let counts = self
                .metrics
                .query(&q(Metric::ErrorRate))
                .await
                .map_err(|e| CliError::backend(format!("metrics of {}: {e}", t.track)))?;
            let latency = self
                .metrics
                .query(&q(Metric::Latency))
                .await
                .map_err(|e| CliError::backend(format!("latency of {}: {e}", t.track)))?;
            let (requests, errors) = match &counts.measurement {
                Measurement::Counts(c) => (c.requests(), c.errors()),
                _ => (0, 0),
            };
            let (p50, p99) = match &latency.measurement {
                Measurement::Latency(s) => (s.quantile(0.5), s.quantile(0.99)),
                _ => (None, None),
            };
            let secs = window.length().as_secs_f64();
            out.push(TrackMetrics {
                track: t.track.to_string(),
                version: t.version.to_string(),
                weight,
                requests,
                errors,
                error_rate: counts.error_rate(),
                throughput: if secs > 0.0 {
                    requests as f64 / secs
                } else {
                    0.0
                },
                p50_ms: p50,
                p99_ms: p99,
            });
        }
        Ok(out)
    }

    /// Probes every track's instances now (local: HTTP `/ready` and `/live`; sim: the
    /// simulated probes).
    pub async fn probe(&self) -> Result<Vec<TrackHealth>, CliError> {
        let tracks = self.tracks().await?;
        let now = self.now();
        if let Kind::Local(local) = &self.kind {
            local
                .probes
                .refresh(self.platform.as_ref(), &self.service, &demo_probes(), now)
                .await
                .map_err(|e| CliError::backend(format!("probing: {e}")))?;
        }
        let mut out = Vec::new();
        for (t, _) in tracks {
            let probes = match &self.kind {
                Kind::Local(local) => local.probes.signals(&t.track).await,
                Kind::Sim { world } => world.health().signals(&t.track).await,
            }
            .map_err(|e| CliError::backend(format!("probing {}: {e}", t.track)))?;
            out.push(TrackHealth {
                track: t.track.to_string(),
                version: t.version.to_string(),
                ready: t.ready_count(),
                instances: t.instances.len(),
                probes,
            });
        }
        Ok(out)
    }

    /// Stops the load and every process, and closes the proxy; returns what the load saw.
    /// The simulated fleet simply ends with the command. Notifications still queued are
    /// delivered first (a bounded wait), so the end of a deployment is not lost with the process.
    pub async fn shutdown(self) -> Option<Tally> {
        if let Some(n) = &self.notifications {
            n.flush().await;
        }
        match self.kind {
            Kind::Local(local) => {
                let Local {
                    proxy,
                    proxied,
                    sync,
                    refresh,
                    load,
                    ..
                } = *local;
                refresh.abort();
                let tally = match load {
                    Some(l) => Some(l.stop().await),
                    None => None,
                };
                sync.abort();
                if let Ok(tracks) = proxied.list().await {
                    for t in tracks {
                        let _ = proxied.retire(&t.service, &t.track, Duration::ZERO).await;
                    }
                }
                proxy.shutdown();
                tally
            }
            Kind::Sim { .. } => None,
        }
    }
}

/// Reads a compatibility catalog (and the migration files it names, relative to it) and builds
/// its validator.
pub fn load_catalog(path: &Path) -> Result<serin_compat::Validator, CliError> {
    let invalid = |why: &dyn std::fmt::Display| {
        CliError::usage(format!("invalid --catalog `{}`: {why}", path.display()))
    };
    let format = serin_compat::Format::from_path(path)
        .ok_or_else(|| invalid(&"cannot tell its format; name it .yaml, .yml, .toml or .json"))?;
    let text =
        std::fs::read_to_string(path).map_err(|e| invalid(&format!("cannot read it: {e}")))?;
    Catalog::parse_in(&text, format, path.parent().unwrap_or(Path::new("")))
        .and_then(|c| c.validator())
        .map_err(|e| invalid(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_demo_binary_given_by_a_bare_name_is_started_from_where_it_was_found() {
        // The tests run in the package's directory.
        let found = demo_binary(Some(Path::new("Cargo.toml"))).expect("a file");
        assert!(found.is_absolute(), "{}", found.display());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        assert_eq!(Some(found), std::fs::canonicalize(manifest).ok());
        let e = demo_binary(Some(Path::new("no-such-demo"))).expect_err("missing");
        assert!(e.message.contains("--demo-binary `no-such-demo`"), "{e}");
    }
}
