//! The command line: global options, verbs and their flags (clap derive).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory as _, Parser, Subcommand, ValueEnum};

/// What the exit status means; shown at the end of `--help`.
const EXIT_CODES: &str = "\
Exit status:
  0  success (the deployment succeeded, the rollback restored the version, the check passed)
  1  the deployment was rolled back or failed, a health check failed, or what `monitor`
     watched was unhealthy or over its thresholds
  2  usage or configuration error (bad flag, bad config file, nothing to roll back)
  3  blocked by validation (the compatibility catalog refused the upgrade)
  4  backend error (a process, the proxy, the simulator, the journal or the state directory,
     or the state directory is held by a running deploy or rollback)
  5  a second Ctrl-C or SIGTERM quit a deploy or rollback at once, before it finished rolling
     back: it may be left half-switched (see `status`; the next command brings back the
     recorded version)";

/// Zero-downtime deployments of a demo service on one machine (or in a simulated fleet).
#[derive(Debug, Parser)]
#[command(name = "serin-cli", version, after_help = EXIT_CODES, after_long_help = EXIT_CODES)]
pub struct Cli {
    /// The options every verb shares.
    #[command(flatten)]
    pub global: Global,
    /// The verb.
    #[command(subcommand)]
    pub command: Command,
}

/// Options of every verb.
#[derive(Debug, Args)]
pub struct Global {
    /// Deployment config (YAML, TOML or JSON, by extension), in the product brief's shape.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the event journal and the record of what runs are kept.
    #[arg(long, global = true, value_name = "DIR", default_value = ".serin")]
    pub state_dir: PathBuf,
    /// Environment file read for the brief's variables (VERSION, INCREMENT, ...); variables
    /// already set win. Default: `.env` if it exists.
    #[arg(long, global = true, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
    /// Where the service runs: `local` (processes behind the embedded proxy) or `sim` (a
    /// simulated fleet in virtual time).
    #[arg(long, global = true, value_enum, default_value_t = BackendKind::Local)]
    pub backend: BackendKind,
    /// `text` for people, `json` for machines (one JSON document per command on stdout).
    #[arg(long, global = true, value_enum, default_value_t = OutputKind::Text)]
    pub output: OutputKind,
    /// Requests per second of the built-in load (local: HTTP clients through the proxy; sim:
    /// the simulated load).
    // A negative number is this flag's (bad) value, refused naming the flag, not an unknown
    // flag `-5`.
    #[arg(
        long,
        global = true,
        value_name = "RPS",
        default_value_t = 100.0,
        allow_negative_numbers = true
    )]
    pub load_rps: f64,
    /// Address of the embedded proxy (local backend); port 0 picks a free one.
    #[arg(
        long,
        global = true,
        value_name = "ADDR",
        default_value = "127.0.0.1:0"
    )]
    pub listen: SocketAddr,
    /// The demo service binary (local backend). Default: `serin-demo-service` in the target
    /// directory this program was built in (built there with cargo if missing or older than
    /// its sources; refused, naming the command that builds it, while cargo holds that
    /// directory).
    #[arg(long, global = true, value_name = "FILE")]
    pub demo_binary: Option<PathBuf>,
    /// Seed of the simulated fleet (sim backend): a command run again with the same seed sees
    /// the same traffic, errors and latencies.
    #[arg(
        long,
        global = true,
        default_value_t = 1,
        allow_negative_numbers = true
    )]
    pub seed: u64,
    /// A compatibility catalog (YAML, TOML or JSON, `serin-compat`'s shape; migration
    /// `file`s relative to it); each upgrade is validated against it and the versions that run
    /// before anything changes.
    #[arg(long, global = true, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
    /// Delivery settings of the config's `notificationChannels` (JSON, YAML or TOML by
    /// extension, `NotifySettings`' shape: queue, retries, default secrets, SMTP server).
    /// Default: the defaults, secrets from each channel's `secretEnv`.
    #[arg(long, global = true, value_name = "FILE")]
    pub notify_settings: Option<PathBuf>,
    /// Back this directory up before each deployment (a snapshot kept under the state
    /// directory, in `backups/directory`), so a rollback can restore it.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        conflicts_with = "backup_postgres"
    )]
    pub backup_dir: Option<PathBuf>,
    /// Back this PostgreSQL database up before each deployment (`pg_dump`, kept under the
    /// state directory, in `backups/postgres`): `host=... port=... user=... dbname=...`
    /// (libpq keywords); the password from `password=` or else `PGPASSWORD`.
    #[arg(long, global = true, value_name = "CONNINFO")]
    pub backup_postgres: Option<String>,
    /// How many backups of the service to keep, at least 2 (older ones are deleted after each
    /// backup; a rollback that restores one takes a fresh backup first).
    #[arg(
        long,
        global = true,
        value_name = "N",
        default_value_t = 5,
        allow_negative_numbers = true
    )]
    pub backup_keep: usize,
}

/// Where the service runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Demo-service processes behind the embedded reverse proxy, on this machine.
    Local,
    /// A deterministic simulated fleet in virtual time (`serin-sim`).
    Sim,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputKind {
    /// Lines for people, with progress bars on a terminal.
    Text,
    /// One JSON document on stdout.
    Json,
}

/// The strategies, as written in config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrategyArg {
    /// Blue-green.
    BlueGreen,
    /// Canary.
    Canary,
    /// Blue-green with a canary-judged partial switch.
    BlueGreenWithCanary,
}

/// The verbs, after the brief's make targets.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Deploys a version by the configured strategy (`DEPLOYMENT_STRATEGY`, or `--strategy`).
    Deploy(StrategyDeployArgs),
    /// Deploys a version by blue-green.
    DeployBlueGreen(DeployArgs),
    /// Deploys a version by canary.
    DeployCanary(CanaryArgs),
    /// Deploys the previous version back (or `--to-version`) by an immediate blue-green switch.
    Rollback(RollbackArgs),
    /// What runs, the versions before it, and where the last deployment stands.
    Status,
    /// Watches the health and metrics of what runs, under the built-in load. Exits 1 if a probe
    /// failed, or if the error rate or p99 stayed over `monitoring.errorRateThreshold` or
    /// `.latencyThreshold` (`ERROR_RATE_THRESHOLD`, `LATENCY_THRESHOLD`) for
    /// `consecutiveFailures` samples in a row. Refused (exit 4, naming the holder) while a
    /// deploy or rollback holds the state directory: it would run a second copy of what that
    /// command is changing.
    Monitor(MonitorArgs),
    /// The event journal: every event of every deployment.
    Logs(LogsArgs),
    /// Requests, errors and latency of what runs, measured under the built-in load. Refused
    /// (exit 4, naming the holder) while a deploy or rollback holds the state directory.
    Metrics(MetricsArgs),
    /// Brings what runs up and probes its readiness and liveness. Refused with nothing
    /// deployed (exit 2), and (exit 4, naming the holder) while a deploy or rollback holds the
    /// state directory.
    HealthCheck,
    /// The dry run: what would be deployed where, step by step; nothing changes.
    Plan(PlanArgs),
    /// The backups taken before deployments (`--backup-dir` or `--backup-postgres`), oldest
    /// first.
    Backups,
    /// Trims old finished deployments in the event journal to their last record, their final
    /// state (unfinished ones always stay whole).
    Compact(CompactArgs),
}

/// Flags of `deploy`, which chooses the strategy.
#[derive(Debug, Args, Clone, Default)]
pub struct StrategyDeployArgs {
    /// What every deployment takes.
    #[command(flatten)]
    pub deploy: DeployArgs,
    /// The strategy (`DEPLOYMENT_STRATEGY`; or `strategy` in the config file).
    #[arg(long, value_enum)]
    pub strategy: Option<StrategyArg>,
}

/// Flags of `plan`: those of `deploy` but `--dry-run`, which a plan, never changing anything,
/// has no use for (refused, rather than accepted to no effect).
#[derive(Debug, Args, Clone, Default)]
pub struct PlanArgs {
    /// The version to plan for (`VERSION`; or `version` in the config file).
    #[arg(long, value_name = "SEMVER")]
    pub version: Option<semver::Version>,
    /// Share of the new version's requests the demo service would answer with a 500
    /// (0 ..= 1), checked as `deploy` checks it.
    #[arg(long, value_name = "FRACTION", allow_negative_numbers = true)]
    pub error_rate: Option<f64>,
    /// Delay the new version's demo service would add to each answer, in milliseconds,
    /// checked as `deploy` checks it.
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    pub latency_ms: Option<u64>,
    /// The strategy (`DEPLOYMENT_STRATEGY`; or `strategy` in the config file).
    #[arg(long, value_enum)]
    pub strategy: Option<StrategyArg>,
}

impl PlanArgs {
    /// The flags as the deployment planned would take them.
    pub fn deploy(&self) -> DeployArgs {
        DeployArgs {
            version: self.version.clone(),
            dry_run: true,
            error_rate: self.error_rate,
            latency_ms: self.latency_ms,
        }
    }
}

/// Flags of every deployment (alone, those of `deploy-blue-green`, which names its strategy,
/// as `deploy-canary` does).
#[derive(Debug, Args, Clone, Default)]
pub struct DeployArgs {
    /// The version to deploy (`VERSION`; or `version` in the config file).
    #[arg(long, value_name = "SEMVER")]
    pub version: Option<semver::Version>,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Share of the new version's requests the demo service answers with a 500 (0 ..= 1);
    /// remembered for that version. Default: what was given before for it, else 0.
    #[arg(long, value_name = "FRACTION", allow_negative_numbers = true)]
    pub error_rate: Option<f64>,
    /// Delay the new version's demo service adds to each answer, in milliseconds; remembered
    /// for that version.
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    pub latency_ms: Option<u64>,
}

/// Flags of `deploy-canary`.
#[derive(Debug, Args, Clone, Default)]
pub struct CanaryArgs {
    /// What every deployment takes.
    #[command(flatten)]
    pub deploy: DeployArgs,
    /// The first canary weight in percent (`INITIAL_PERCENTAGE`).
    #[arg(long, value_name = "PERCENT", allow_negative_numbers = true)]
    pub initial_percentage: Option<u8>,
    /// Percent added per phase (`INCREMENT`).
    #[arg(long, value_name = "PERCENT", allow_negative_numbers = true)]
    pub increment: Option<u8>,
    /// How long each phase is judged (`PHASE_DURATION`): `30s`, `5m`, or seconds.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, allow_negative_numbers = true)]
    pub phase_duration: Option<Duration>,
}

/// Flags of `rollback`.
#[derive(Debug, Args, Clone, Default)]
pub struct RollbackArgs {
    /// The version to go back to, one deployed from the state directory before (default: the
    /// one that ran before the current one).
    #[arg(long, value_name = "SEMVER")]
    pub to_version: Option<semver::Version>,
}

/// Flags of `monitor`.
#[derive(Debug, Args, Clone, Default)]
pub struct MonitorArgs {
    /// How long to watch: `30s`, `5m`, or seconds (`MONITORING_DURATION`; default 5m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, allow_negative_numbers = true)]
    pub duration: Option<Duration>,
    /// How often to sample health and metrics (`CHECK_INTERVAL`; default 1s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, allow_negative_numbers = true)]
    pub interval: Option<Duration>,
}

/// Flags of `logs`.
#[derive(Debug, Args, Clone, Default)]
pub struct LogsArgs {
    /// Only this deployment's events.
    #[arg(long, value_name = "ID")]
    pub deployment: Option<String>,
    /// Only the last N events.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub tail: Option<usize>,
}

/// Flags of `compact`.
#[derive(Debug, Args, Clone)]
pub struct CompactArgs {
    /// How many of the most recent finished deployments keep all their records.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 50,
        allow_negative_numbers = true
    )]
    pub keep: usize,
}

/// Flags of `metrics`.
#[derive(Debug, Args, Clone)]
pub struct MetricsArgs {
    /// How long to measure: `5s`, `1m`, or seconds.
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = parse_duration,
        default_value = "5s",
        allow_negative_numbers = true
    )]
    pub duration: Duration,
}

impl Cli {
    /// The command line of this process, parsed; exits with the usage (status 2) when it is
    /// not one. An option of every verb given both before and after the verb is refused as
    /// one given twice on either side is: the parser would keep the later one silently.
    pub fn parse_args() -> Cli {
        let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
        if let Some(flag) = repeated_global(&argv) {
            Cli::command()
                .error(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!("the argument '--{flag}' cannot be used multiple times"),
                )
                .exit();
        }
        Cli::parse_from(argv)
    }
}

/// The first global option `argv` gives more than once (`--output json plan --output text`),
/// as `--name value` or `--name=value`, before a `--` that ends the options.
fn repeated_global(argv: &[std::ffi::OsString]) -> Option<String> {
    let command = Cli::command();
    let globals: Vec<&str> = command
        .get_arguments()
        .filter(|a| a.is_global_set())
        .filter_map(|a| a.get_long())
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    let args = argv.iter().skip(1).map(|a| a.to_string_lossy());
    for arg in args.take_while(|a| a != "--") {
        let Some(name) = arg.strip_prefix("--") else {
            continue;
        };
        let name = name.split_once('=').map_or(name, |(n, _)| n);
        if globals.contains(&name) && !seen.insert(name.to_owned()) {
            return Some(name.to_owned());
        }
    }
    None
}

/// A duration as the brief writes them: a bare number is seconds (`PHASE_DURATION=300`),
/// otherwise a human string (`30s`, `5m`, `1h30m`). Zero is refused however it is written:
/// no phase, watch, sampling interval or measurement can last no time.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let d = match t.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(t)
            .map_err(|e| format!("`{t}` is not a duration (`30s`, `5m`, or seconds): {e}"))?,
    };
    if d.is_zero() {
        return Err(format!("`{t}` must be longer than zero"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_seconds_or_human_strings() {
        assert_eq!(parse_duration("300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("soon").unwrap_err().contains("soon"));
        assert!(parse_duration("0s").is_err());
        assert!(
            parse_duration("0")
                .unwrap_err()
                .contains("longer than zero")
        );
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// A plan never changes anything: `--dry-run` would be a flag that does nothing.
    #[test]
    fn a_plan_refuses_dry_run() {
        let e = Cli::try_parse_from(["serin-cli", "plan", "--version", "1.0.0", "--dry-run"])
            .expect_err("refused");
        assert_eq!(e.kind(), clap::error::ErrorKind::UnknownArgument, "{e}");
        assert!(e.to_string().contains("--dry-run"), "{e}");
        let cli = Cli::try_parse_from(["serin-cli", "plan", "--version", "1.0.0"]).unwrap();
        assert!(matches!(cli.command, Command::Plan(_)));
    }
}
