//! `serin-cli`: the brief's make targets as one command line over Serin — `deploy`,
//! `deploy-blue-green`, `deploy-canary`, `rollback`, `status`, `monitor`, `logs`, `metrics`,
//! `health-check` and `plan`, plus `backups` and `compact` (trims the journal's old finished
//! deployments) — on one machine (`--backend local`, the default) or on a simulated fleet in
//! virtual time (`--backend sim`).
//!
//! ```text
//! cargo build -p serin-examples --example serin-cli
//! target/debug/examples/serin-cli deploy --version 1.0.0             # first install
//! target/debug/examples/serin-cli deploy-canary --version 1.1.0      # judged canary, promoted
//! target/debug/examples/serin-cli deploy --version 1.2.0 --error-rate 0.3
//! # blue-green: 30% errors, switched back by its rollback trigger (exit 1); 1.1.0 serves again
//! target/debug/examples/serin-cli status
//! target/debug/examples/serin-cli logs --tail 20
//! target/debug/examples/serin-cli rollback                           # back to 1.0.0
//! target/debug/examples/serin-cli --backend sim --state-dir .serin-sim deploy --version 1.0.0
//! mkdir -p data                                                      # the directory backed up
//! target/debug/examples/serin-cli --backup-dir data deploy --version 1.3.0   # snapshot data/ first
//! target/debug/examples/serin-cli --backup-dir data backups                  # what was kept
//! ```
//!
//! ## The model
//!
//! - **Each command runs in the foreground to its end.** `deploy` and `rollback` return once the
//!   deployment has succeeded, rolled back or failed; nothing stays behind in the background.
//! - **The state directory** (`--state-dir`, default `.serin`) holds the orchestrator's event
//!   journal (`journal.jsonl`, a `FileJournal`: every state change and event of every
//!   deployment), `state.json` (the service, the version that serves all traffic with its track
//!   and instance count, the versions that ran before it, each version's demo behaviour, the
//!   last deployment's id and outcome, and a mark while a deployment runs) and, on the local
//!   backend, the processes' logs (`logs/`), and the backups of `--backup-dir` and
//!   `--backup-postgres` (`backups/`). So `status`, `logs`, `rollback` and `backups` work
//!   across invocations. One `deploy` or `rollback` at a time holds the directory (a lock on
//!   its file `lock`, released when the command ends, however it ends): another one started
//!   meanwhile is refused (exit 4, naming the holder's process and what it does) and changes
//!   nothing, and `status` says the deployment is in progress. `monitor`, `metrics` and
//!   `health-check` are refused too while a `deploy` or `rollback` holds the directory (exit 4,
//!   naming the holder): they bring up their own copy of the recorded version, which during a
//!   deployment would be a second service beside the one being changed, measured under a load
//!   of its own, describing neither. Follow the deployment's own output, or `status` and
//!   `logs`, and measure once it has ended. `status` reads the last deployment's phase and outcome back from the
//!   journal (`Orchestrator::status`); `state.json` stays because the local backend's processes
//!   end with each command, so what runs must be recorded apart from the journal to be
//!   brought back up.
//! - **Local backend: a one-machine demo whose processes live as long as the command.** A
//!   command that needs the service first brings the recorded version back up as
//!   `serin-demo-service` processes behind the embedded reverse proxy (`--listen`, any free
//!   loopback port by default) and gives it all traffic; it then drives a small built-in load
//!   through the proxy (`--load-rps`, 100 requests a second by default) so the canary judges
//!   and the rollback triggers have data, does its work, and stops everything at the end. The
//!   processes' output is in `<state-dir>/logs/`.
//! - **Sim backend:** the same commands on `serin-sim`'s simulated fleet, whose virtual time
//!   runs a deployment of hours in moments; the simulated load is `--load-rps`; `--seed`
//!   chooses its random streams (the same seed, the same traffic, errors and latencies, though
//!   each command's virtual clock starts at the wall-clock time). Without `--config` it uses the brief's scale (5-minute phases).
//! - **Versions and their behaviour.** `--version` names the version to deploy; the demo
//!   service behaves as `--error-rate` (the share of requests it answers with a 500, default 0)
//!   and `--latency-ms` (a delay per answer) say — on the sim backend, the simulated version's
//!   error rate and extra median latency. The behaviour is remembered per version in
//!   `state.json`, so the version comes back the same when it is brought up again.
//! - **Configuration:** `--config` (YAML, TOML or JSON by extension) in the product brief's
//!   shape (`DeploymentConfig`, one service in `targetServices`, as in the example
//!   `examples/cli/deploy.yaml`; `version` may be left to
//!   `--version` or `VERSION`); without it, a built-in demo-scale config (service `demo`,
//!   blue-green by default as in the brief, canary 20% → 60% → 100% in 3 s phases on the local
//!   backend). Over it, the brief's
//!   environment variables (`VERSION`, `DEPLOYMENT_STRATEGY`, `INITIAL_PERCENTAGE`, `INCREMENT`,
//!   `PHASE_DURATION`, `CANARY_ERROR_RATE`, ...), read from the environment and from the
//!   `--env-file` (default `.env` if it exists; a variable already set in the environment
//!   wins); over both, the flags.
//! - **Validation:** with `--catalog` (a `serin-compat` catalog), each upgrade is validated
//!   against the catalog and the version that runs; a blocked upgrade changes nothing.
//! - **`rollback`** deploys the version that ran before the current one (or `--to-version`,
//!   one deployed from the state directory before; any other is refused, naming those that
//!   were) back by an immediate blue-green switch with the config's health gate and monitoring, as
//!   the orchestrator's `rollback_to` does; the version gone back to leaves the list of
//!   previous versions.
//! - **`plan`** and **`deploy --dry-run`** compute the plan on an in-memory copy of what runs:
//!   no process starts and nothing changes. While a `deploy` or `rollback` holds the state
//!   directory, the plan's first step is `start: REFUSED`, naming that command, and the dry
//!   run exits 4, as the deployment would.
//! - **`monitor --duration`** samples health (HTTP `/ready` and `/live` of every instance) and
//!   the proxy's measurements every `--interval` (without the flags, for the brief's
//!   `MONITORING_DURATION` every `CHECK_INTERVAL`, else for 5 minutes every second);
//!   **`metrics`** measures once over `--duration`; **`health-check`** probes once. A duration
//!   is `30s`, `5m` or a number of seconds, and never zero.
//! - **Output:** text for people, with progress bars on stderr when stdout and stderr are
//!   terminals; a deployment's events are lines on stderr, and when none has come for 10 s
//!   (then 20 s, 40 s, ...) a line says so, with the canary's last decision to hold if it
//!   holds; `--output json` prints exactly one JSON document on stdout per command — a
//!   deployment's or rollback's is the orchestrator's `Report`; an error's is
//!   `{"error": ..., "exitCode": ...}` (errors the argument parser finds are printed by it, on
//!   stderr only).
//! - **Notifications:** when the config has `notificationChannels` (webhook, Slack,
//!   PagerDuty, e-mail), `deploy` and `rollback` deliver the deployment's events to them
//!   (`serin_orchestrator::notify::ChannelNotifier`). Each channel's `secretEnv` names the
//!   variable holding its secret, read from the environment or the `--env-file`; a channel
//!   that cannot be served (no secret, a bad URL) is a configuration error before anything
//!   runs. `--notify-settings` (JSON, YAML or TOML) sets the queue, retries, default secrets
//!   and the SMTP server. Deliveries run in the background while the deployment goes on; the
//!   command waits up to 10 s at its end for what is still queued, and warns on stderr of
//!   what failed or was dropped. (On the sim backend deliveries keep real time.)
//! - **Backups:** with `--backup-dir DIR` every deployment first snapshots that directory,
//!   which must exist (`DirectorySnapshot`); with `--backup-postgres "host=... port=... user=... dbname=..."`
//!   it first dumps that database with `pg_dump` (`PostgresBackup`, dump mode; the password
//!   from `password=` or `PGPASSWORD`). One of the two at a time; the backups are kept under
//!   `<state-dir>/backups/`, the last `--backup-keep` (default 5) of the service. `backups`
//!   lists them, oldest first (given the same flag), and creates nothing: before the first
//!   backup it lists none. The backup's id is in the deployment's
//!   timeline (`backupTaken`). `rollback` goes through the orchestrator's rollback: it takes
//!   a fresh backup, and when the deployments it undoes ran destructive (contract) migrations
//!   it restores the backup taken before them, or refuses when there is none.
//! - **The journal** is read back whole: an estimate that is not a number (an error-rate
//!   ratio over two arms without errors) is written as `"NaN"` and read back as one, so
//!   `logs` and reports show every event; a corrupt line is an error (exit 4), not skipped.
//!
//! ## Exit status
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the deployment was rolled back or failed; a health check (or monitoring) saw a failure |
//! | 2 | usage or configuration error (bad flag, bad config naming its field, nothing to roll back) |
//! | 3 | blocked by validation (`--catalog`) |
//! | 4 | backend error (process, proxy, simulator, journal, state directory; the state directory held by a running `deploy` or `rollback`) |
//! | 5 | a second interrupt quit a `deploy` or `rollback` before it finished rolling back; it may be left half-switched |
//!
//! **Interrupting.** Ctrl-C (SIGINT) or SIGTERM during `deploy` or `rollback` aborts the
//! deployment: it rolls back to what ran, is recorded, and the command ends with exit 1. (The
//! demo processes run in process groups of their own, so the terminal's interrupt reaches only
//! the command, which stops them at its end.) A second Ctrl-C or SIGTERM, while it rolls back
//! or cleans up, quits at once with exit 5 and says what may be left: the deployment unfinished
//! in the journal, perhaps half-switched, and `state.json` still naming the version that ran
//! before, which the next command brings back up with all traffic; `status` shows the
//! deployment as interrupted. Once the deployment has ended and is recorded, the command only
//! cleans up (delivers queued notifications, at most 10 s, and stops the processes): a first
//! signal then says the deployment has already ended and lets the cleanup finish, and a second
//! quits at once with the outcome's exit status (0 or 1, not 5) and its report; only the
//! undelivered notifications are lost. Between the orchestrator's last record and the command
//! recording the end in `state.json` there is a short window (tens of milliseconds): a second
//! signal that lands in it still quits with exit 5, though the journal already shows the
//! deployment finished, and `status` says it was interrupted until the next deployment. A command killed outright (SIGKILL) leaves its deployment
//! unfinished in the journal, and `status` says it was interrupted; on the local backend its
//! demo processes stop by themselves once it is gone (their standard input, a pipe the command
//! held, closes), and the next command brings the recorded version back up. Either way, that
//! next command (one that starts the backend) then closes the deployment left unfinished as
//! failed, "abandoned" (`Orchestrator::abandon`): it cannot resume, its tracks having ended
//! with the command that ran it, and its report and notification channels say so. It does so
//! only while it holds the state directory, so never to a deployment another command runs: a
//! `monitor`, `metrics` or `health-check` that finds the directory taken meanwhile is refused.

mod cli;

use std::io::Write as _;

use cli::args::{Cli, Command};
use cli::context::Ctx;
use cli::deploy::{self, Flavour};
use cli::exit::{CliError, Exit};
use cli::settings::EnvLookup;
use cli::state::StateDir;
use cli::ui::Ui;
use cli::{history, observe};

async fn run(cli: Cli, io: Option<tokio::runtime::Handle>) -> Result<Exit, CliError> {
    let env = EnvLookup::load(cli.global.env_file.as_deref())?;
    StateDir::check(&cli.global.state_dir)?;
    let ui = Ui::new(cli.global.output);
    let ctx = Ctx {
        global: cli.global,
        env,
        ui,
        io,
    };
    match &cli.command {
        Command::Deploy(args) => {
            let canary = cli::args::CanaryArgs {
                deploy: args.deploy.clone(),
                ..Default::default()
            };
            deploy::deploy(&ctx, &canary, Flavour::Any(args.strategy)).await
        }
        Command::DeployBlueGreen(args) => {
            let args = cli::args::CanaryArgs {
                deploy: args.clone(),
                ..Default::default()
            };
            deploy::deploy(&ctx, &args, Flavour::BlueGreen).await
        }
        Command::DeployCanary(args) => deploy::deploy(&ctx, args, Flavour::Canary).await,
        Command::Rollback(args) => deploy::rollback(&ctx, args).await,
        Command::Status => history::status(&ctx).await,
        Command::Monitor(args) => observe::monitor(&ctx, args).await,
        Command::Logs(args) => history::logs(&ctx, args).await,
        Command::Metrics(args) => observe::metrics(&ctx, args).await,
        Command::HealthCheck => observe::health_check(&ctx).await,
        Command::Plan(args) => deploy::plan(&ctx, args).await,
        Command::Backups => history::backups(&ctx).await,
        Command::Compact(args) => history::compact(&ctx, args).await,
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse_args();
    let output = cli.global.output;
    // The simulated fleet runs in virtual time: a paused clock that jumps to the next timer.
    let runtime = match cli.global.backend {
        cli::args::BackendKind::Sim => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build(),
        cli::args::BackendKind::Local => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
    };
    // Notifications leave in real time even when the deployment runs in virtual time.
    let io = match cli.global.backend {
        cli::args::BackendKind::Sim => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map(Some),
        cli::args::BackendKind::Local => Ok(None),
    };
    let result = match (runtime, io) {
        (Ok(rt), Ok(io)) => {
            let handle = io.as_ref().map(|r| r.handle().clone());
            rt.block_on(run(cli, handle))
        }
        (Err(e), _) | (_, Err(e)) => {
            Err(CliError::backend(format!("cannot start the runtime: {e}")))
        }
    };
    let exit = match result {
        Ok(exit) => exit,
        Err(e) => {
            eprintln!("error: {e}");
            if output == cli::args::OutputKind::Json {
                let doc = serde_json::json!({ "error": e.message, "exitCode": e.exit as u8 });
                // A reader that stopped reading gets nothing; the exit status still says it.
                let _ = writeln!(std::io::stdout(), "{doc}");
            }
            e.exit
        }
    };
    std::process::ExitCode::from(exit as u8)
}
