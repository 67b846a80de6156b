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
use crate::cli::state::{RunState, StateDir};
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
    pub fn states(&self) -> Result<StateDir, CliError> {
        StateDir::open(&self.global.state_dir)
    }

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

    /// Assembles the backend and brings back what ran, for a command that only looks at it.
    pub async fn stack(
        &self,
        states: &StateDir,
        state: &RunState,
        config: &DeploymentConfig,
    ) -> Result<Stack, CliError> {
        self.assemble(states, state, config, Hooks::default()).await
    }

    /// Assembles the backend and brings back what ran, for a deployment: with the notifier of
    /// the config's channels and the backup provider of the flags.
    pub async fn deployment_stack(
        &self,
        states: &StateDir,
        state: &RunState,
        config: &DeploymentConfig,
    ) -> Result<Stack, CliError> {
        let hooks = Hooks {
            notifier: hooks::notifier(&self.global, &self.env, self.io.clone(), config)?,
            backup: hooks::backup(&self.global, &self.env, states, hooks::Use::Deploy)?
                .map(|b| hooks::in_real_time(b, self.io.clone())),
        };
        self.assemble(states, state, config, hooks).await
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
        if let Some(current) = &state.current
            && let Err(e) = stack.restore(current, config).await
        {
            stack.shutdown().await;
            return Err(e);
        }
        if let Err(e) = stack.abandon_unfinished(state.current.as_ref()).await {
            stack.shutdown().await;
            return Err(e);
        }
        Ok(stack)
    }

    /// Refuses a `--load-rps` the backend cannot run (a usage error, exit 2). Commands that
    /// change what runs check it before they touch the state directory.
    pub fn check_load_rps(&self) -> Result<(), CliError> {
        // The simulator checks its own bound; the local load cannot pace past `MAX_RPS`.
        let most = match self.global.backend {
            BackendKind::Local => serin_local::load::MAX_RPS,
            BackendKind::Sim => f64::INFINITY,
        };
        let rps = self.global.load_rps;
        if !(rps > 0.0 && rps <= most) {
            return Err(CliError::usage(format!(
                "invalid --load-rps `{rps}`: must be a number of requests per second above 0{}",
                if most.is_finite() {
                    format!(" and at most {most} on the local backend")
                } else {
                    String::new()
                }
            )));
        }
        Ok(())
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
