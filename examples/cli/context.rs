//! What every verb starts from: the options, the environment, the state directory, the
//! config, and the backend with what ran brought back up.

use std::sync::Arc;

use serin_compat::Fleet;
use serin_orchestrator::{DeploymentConfig, FileJournal};

use crate::cli::args::{BackendKind, Global};
use crate::cli::backend::{Options, Stack};
use crate::cli::exit::CliError;
use crate::cli::hooks::{self, Hooks};
use crate::cli::settings::{EnvLookup, load_config};
use crate::cli::state::{RunState, StateDir, StateLock};
use crate::cli::ui::Ui;

/// The journal size past which a finished deployment compacts it.
const JOURNAL_COMPACT_BYTES: u64 = 32 * 1024 * 1024;
/// Finished deployments an automatic compaction keeps whole.
const JOURNAL_KEEP_FINISHED: usize = 100;

/// Everything every verb starts from.
pub struct Ctx {
    /// The global options.
    pub global: Global,
    /// The environment and `.env` file.
    pub env: EnvLookup,
    /// Output settings.
    pub ui: Ui,
    /// A runtime of real time for notification deliveries when the command runs in virtual
    /// time (sim backend).
    pub io: Option<tokio::runtime::Handle>,
}

impl Ctx {
    /// The config (file, or the backend's built-in default) with the environment applied.
    pub fn config(&self) -> Result<(DeploymentConfig, bool), CliError> {
        let loaded = load_config(
            self.global.config.as_deref(),
            self.global.backend,
            &self.env,
        )?;
        Ok((loaded.config, loaded.version_given))
    }

    /// The recorded state, checked against the service and backend of this invocation.
    pub fn state(&self, states: &StateDir, service: &str) -> Result<RunState, CliError> {
        match states.load()? {
            None => Ok(RunState::new(service, self.global.backend)),
            Some(s) if s.service != service => Err(self.other_service(&s.service, service)),
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

    /// The refusal of a config for `service` over a state directory that records `recorded`.
    pub fn other_service(&self, recorded: &str, service: &str) -> CliError {
        CliError::usage(format!(
            "state directory {} records service `{recorded}`, but the config deploys `{service}`; use another --state-dir",
            self.global.state_dir.display(),
        ))
    }

    pub fn options(&self, states: &StateDir, state: &RunState) -> Options {
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

    /// The journal file of the state directory: every record of every deployment, read back
    /// as written (a corrupt line is an error, not skipped). Past 32 MiB, a deployment that
    /// finishes trims all but the last 100 finished ones to their last record (`compact` does
    /// it at once, keeping as many as asked).
    pub fn journal(states: &StateDir) -> Result<Arc<FileJournal>, CliError> {
        FileJournal::open(states.journal())
            .map(|j| Arc::new(j.with_compaction(JOURNAL_COMPACT_BYTES, JOURNAL_KEEP_FINISHED)))
            .map_err(|e| CliError::backend(format!("journal: {e}")))
    }

    /// Assembles the backend and brings back what ran, for `verb`, a command that only looks
    /// at it. It checked that no deploy or rollback held the state directory, but one may have
    /// taken it while the backend started: so it closes deployments left unfinished only while
    /// it holds the directory itself, and is refused (naming the holder) if it cannot.
    pub async fn stack(
        &self,
        states: &StateDir,
        state: &RunState,
        config: &DeploymentConfig,
        verb: &str,
    ) -> Result<Stack, CliError> {
        let stack = self
            .assemble(states, state, config, Hooks::default())
            .await?;
        let closed = async {
            let _held = states.lock(verb)?;
            stack.abandon_unfinished(state.current.as_ref()).await
        }
        .await;
        or_shutdown(stack, closed).await
    }

    /// Assembles the backend and brings back what ran, for a deployment, which `_held` shows
    /// holds the state directory: with the notifier of the config's channels and the backup
    /// provider of the flags.
    pub async fn deployment_stack(
        &self,
        states: &StateDir,
        _held: &StateLock,
        state: &RunState,
        config: &DeploymentConfig,
    ) -> Result<Stack, CliError> {
        let notifier = hooks::notifier(&self.global, &self.env, self.io.clone(), config)?;
        // The backup store is made for the deployment; refused before it runs, the command
        // takes away what it made, so that it leaves no file behind.
        let had_store = states.backups().exists();
        let assembled = async {
            let hooks = Hooks {
                notifier,
                backup: hooks::backup(&self.global, &self.env, states, hooks::Use::Deploy)?
                    .map(|b| hooks::in_real_time(b, self.io.clone())),
            };
            self.assemble(states, state, config, hooks).await
        }
        .await;
        let stack = match assembled {
            Ok(stack) => stack,
            Err(e) => {
                if !had_store {
                    hooks::remove_empty_stores(states);
                }
                return Err(e);
            }
        };
        let closed = stack.abandon_unfinished(state.current.as_ref()).await;
        or_shutdown(stack, closed).await
    }

    async fn assemble(
        &self,
        states: &StateDir,
        state: &RunState,
        config: &DeploymentConfig,
        hooks: Hooks,
    ) -> Result<Stack, CliError> {
        self.check_load_rps()?;
        let stack =
            Stack::build(&self.options(states, state), Self::journal(states)?, hooks).await?;
        let restored = match &state.current {
            Some(current) => stack.restore(current, config).await,
            None => Ok(()),
        };
        or_shutdown(stack, restored).await
    }

    /// Refuses a `--load-rps` the backend cannot run (a usage error, exit 2). Commands that
    /// change what runs check it before they touch the state directory.
    pub fn check_load_rps(&self) -> Result<(), CliError> {
        // The local load cannot pace past its `MAX_RPS`, nor the simulated load past its own:
        // refused here, the error names the flag rather than the simulator's config field.
        let (most, backend) = match self.global.backend {
            BackendKind::Local => (serin_local::load::MAX_RPS, "local"),
            BackendKind::Sim => (serin_sim::MAX_RPS, "sim"),
        };
        let rps = self.global.load_rps;
        if !(rps > 0.0 && rps <= most) {
            return Err(CliError::usage(format!(
                "invalid --load-rps `{rps}`: must be a number of requests per second above 0 \
                 and at most {most} on the {backend} backend"
            )));
        }
        Ok(())
    }
}

/// `stack` if `done` succeeded; else `stack` shut down and the error.
async fn or_shutdown(stack: Stack, done: Result<(), CliError>) -> Result<Stack, CliError> {
    match done {
        Ok(()) => Ok(stack),
        Err(e) => {
            stack.shutdown().await;
            Err(e)
        }
    }
}

/// The state of a command that needs something deployed.
pub fn deployed(ctx: &Ctx, states: &StateDir, service: &str) -> Result<RunState, CliError> {
    let state = ctx.state(states, service)?;
    if state.current.is_none() {
        return Err(CliError::usage(format!(
            "nothing is deployed (state directory {}): deploy first",
            ctx.global.state_dir.display()
        )));
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::args::{Cli, OutputKind};

    fn sim_ctx(state_dir: &std::path::Path) -> Ctx {
        let dir = state_dir.to_str().expect("utf-8 path");
        let cli = Cli::try_parse_from([
            "serin-cli",
            "--backend",
            "sim",
            "--state-dir",
            dir,
            "health-check",
        ])
        .expect("flags");
        Ctx {
            global: cli.global,
            env: EnvLookup::default(),
            ui: Ui::new(OutputKind::Json),
            io: None,
        }
    }

    fn journal_lines(states: &StateDir) -> usize {
        std::fs::read_to_string(states.journal())
            .expect("journal")
            .lines()
            .count()
    }

    /// A deployment unfinished in the journal is closed as abandoned only by a command that
    /// holds the state directory: one a deploy that took the directory after a watching verb
    /// checked it is running, not abandoned, and the watching verb is refused.
    #[tokio::test(start_paused = true)]
    async fn a_watching_verb_abandons_nothing_while_a_deploy_holds_the_state_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ctx = sim_ctx(dir.path());
        let states = StateDir::open(&ctx.global.state_dir).expect("state dir");
        let (mut config, _) = ctx.config().expect("config");
        config.version = semver::Version::new(1, 0, 0);
        let state = RunState::new("demo", BackendKind::Sim);
        // A finished deployment cut back to its first record: as a running one leaves it.
        let held = states.lock("deploy of 1.0.0").expect("lock");
        let stack = ctx
            .deployment_stack(&states, &held, &state, &config)
            .await
            .expect("stack");
        let report = stack.orchestrator.start(&config, "demo").await;
        report.expect("started").wait().await.expect("report");
        stack.shutdown().await;
        let journal = std::fs::read_to_string(states.journal()).expect("journal");
        let first = journal.lines().next().expect("a record");
        std::fs::write(states.journal(), format!("{first}\n")).expect("cut");

        let watched = ctx.stack(&states, &state, &config, "health-check").await;
        let Err(e) = watched else {
            panic!("a watching verb ran beside the deploy that holds the state directory");
        };
        assert!(e.message.contains("deploy of 1.0.0"), "{e}");
        assert_eq!(
            journal_lines(&states),
            1,
            "the running deployment was abandoned"
        );

        // Once no command holds the directory, it was cut short: closed, and the lock given up.
        drop(held);
        let stack = ctx
            .stack(&states, &state, &config, "health-check")
            .await
            .expect("stack");
        stack.shutdown().await;
        assert!(
            journal_lines(&states) > 1,
            "the cut-short deployment stayed open"
        );
        assert!(!states.is_locked());
    }
}
