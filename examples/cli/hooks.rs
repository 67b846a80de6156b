//! What the orchestrator is given besides the backend: the notifier of the config's
//! `notificationChannels` and the backup provider of `--backup-dir` / `--backup-postgres`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use serin_orchestrator::backup::{
    DirectorySnapshot, PostgresBackup, PostgresConnection, PostgresMode, PostgresSettings,
    Retention,
};
use serin_orchestrator::notify::{ChannelNotifier, NotifySettings};
use serin_orchestrator::{BackupInfo, BackupProvider, DeploymentConfig, Error};

use crate::cli::args::Global;
use crate::cli::exit::CliError;
use crate::cli::settings::EnvLookup;
use crate::cli::state::StateDir;

/// How long a command waits, at its end, for notifications still queued to be delivered.
pub const FLUSH_BOUND: Duration = Duration::from_secs(10);

/// The notifier and backup provider of one invocation.
#[derive(Default)]
pub struct Hooks {
    /// Delivers the events of the config's `notificationChannels`.
    pub notifier: Option<Notifications>,
    /// Takes a backup before each deployment.
    pub backup: Option<Arc<dyn BackupProvider>>,
}

/// The notifier, and where its deliveries run.
///
/// On the sim backend the command's runtime runs in virtual time, where a receiver's answer
/// would never come before a request timeout; the deliveries then run on `io`, a runtime of
/// real time, and the flush waits there.
pub struct Notifications {
    /// The notifier given to the orchestrator.
    pub notifier: Arc<ChannelNotifier>,
    io: Option<tokio::runtime::Handle>,
}

impl Notifications {
    /// Waits (at most [`FLUSH_BOUND`]) for what is queued, and warns on stderr of what was
    /// not delivered.
    pub async fn flush(&self) {
        let notifier = self.notifier.clone();
        let wait = async move { tokio::time::timeout(FLUSH_BOUND, notifier.flush()).await };
        let flushed = match &self.io {
            Some(io) => io.spawn(wait).await.is_ok_and(|r| r.is_ok()),
            None => wait.await.is_ok(),
        };
        let stats = self.notifier.stats();
        if !flushed {
            eprintln!(
                "warning: notifications still undelivered after {}s were abandoned",
                FLUSH_BOUND.as_secs()
            );
        }
        if stats.failed > 0 || stats.dropped > 0 {
            eprintln!(
                "warning: {} notification(s) failed and {} were dropped (of {} queued)",
                stats.failed, stats.dropped, stats.queued
            );
        }
    }
}

/// Reads a settings file as JSON, YAML or TOML by its extension.
fn read_settings(path: &Path) -> Result<NotifySettings, CliError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("invalid --notify-settings `{shown}`: {e}")))?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let parsed: Result<NotifySettings, String> = match ext.as_str() {
        "yaml" | "yml" => serin_compat::catalog::from_str(&text, serin_compat::Format::Yaml)
            .map_err(|e| e.to_string()),
        "toml" => toml::from_str(&text).map_err(|e| e.to_string()),
        _ => serde_json::from_str(&text).map_err(|e| e.to_string()),
    };
    let settings =
        parsed.map_err(|e| CliError::usage(format!("invalid --notify-settings `{shown}`: {e}")))?;
    settings
        .validate()
        .map_err(|e| CliError::usage(format!("invalid --notify-settings `{shown}`: {e}")))?;
    Ok(settings)
}

/// The notifier of `config`'s channels (none without channels). Secrets named by a channel's
/// `secretEnv` come from the environment or the `.env` file; every channel is checked before
/// anything runs, so a missing secret is a configuration error naming the channel.
pub fn notifier(
    global: &Global,
    env: &EnvLookup,
    io: Option<tokio::runtime::Handle>,
    config: &DeploymentConfig,
) -> Result<Option<Notifications>, CliError> {
    // Read (and checked) even without channels: a flag given is never ignored.
    let settings = match &global.notify_settings {
        Some(path) => read_settings(path)?,
        None => NotifySettings::default(),
    };
    if config.notification_channels.is_empty() {
        return Ok(None);
    }
    let env = env.clone();
    let mut notifier = ChannelNotifier::new(settings)
        .map_err(|e| CliError::usage(e.to_string()))?
        .with_env(move |name| env.get(name));
    if let Some(io) = &io {
        notifier = notifier.on_runtime(io.clone());
    }
    notifier
        .check_channels(&config.notification_channels)
        .map_err(|e| CliError::usage(e.to_string()))?;
    Ok(Some(Notifications {
        notifier: Arc::new(notifier),
        io,
    }))
}

/// An absolute form of `path` (relative to the working directory), without `.` or `..`.
fn absolute(flag: &str, path: &Path) -> Result<PathBuf, CliError> {
    std::fs::canonicalize(path)
        .map_err(|e| CliError::usage(format!("invalid {flag} `{}`: {e}", path.display())))
}

/// What a backup provider is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Taking (and restoring) backups: the store is created if missing.
    Deploy,
    /// Listing them: nothing is created, and a store that does not exist lists nothing.
    List,
}

/// The store of `kind`'s backups under the state directory, as an absolute path; created if
/// missing when it is for `Use::Deploy`.
fn store(states: &StateDir, kind: &str, purpose: Use) -> Result<PathBuf, CliError> {
    let dir = states.backups().join(kind);
    if purpose == Use::List {
        return resolved("--state-dir", &dir);
    }
    std::fs::create_dir_all(&dir).map_err(|e| {
        CliError::backend(format!(
            "cannot create the backup store {}: {e}",
            dir.display()
        ))
    })?;
    absolute("--state-dir", &dir)
}

/// Removes the backup stores under the state directory, and the directory that holds them,
/// where they are empty (nothing is removed that holds a backup).
pub fn remove_empty_stores(states: &StateDir) {
    let backups = states.backups();
    for kind in ["directory", "postgres"] {
        let _ = std::fs::remove_dir(backups.join(kind));
    }
    let _ = std::fs::remove_dir(backups);
}

/// `path` made absolute without creating anything: its nearest existing ancestor resolved (as
/// [`absolute`] does), with the missing rest appended as written.
fn resolved(flag: &str, path: &Path) -> Result<PathBuf, CliError> {
    let invalid =
        |why: String| CliError::usage(format!("invalid {flag} `{}`: {why}", path.display()));
    let full = std::path::absolute(path).map_err(|e| invalid(e.to_string()))?;
    let mut missing = Vec::new();
    let mut at = full.as_path();
    loop {
        match std::fs::canonicalize(at) {
            Ok(mut real) => {
                real.extend(missing.iter().rev());
                return Ok(real);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (Some(name), Some(parent)) = (at.file_name(), at.parent()) else {
                    return Err(invalid(e.to_string()));
                };
                missing.push(name);
                at = parent;
            }
            Err(e) => return Err(invalid(e.to_string())),
        }
    }
}

/// The backup provider of `--backup-dir` or `--backup-postgres` (none without either), for
/// `purpose`.
pub fn backup(
    global: &Global,
    env: &EnvLookup,
    states: &StateDir,
    purpose: Use,
) -> Result<Option<Arc<dyn BackupProvider>>, CliError> {
    let retention = Retention::keep_last(global.backup_keep).map_err(|e| {
        CliError::usage(format!(
            "invalid --backup-keep `{}`: {e}",
            global.backup_keep
        ))
    })?;
    if let Some(dir) = &global.backup_dir {
        let source = absolute("--backup-dir", dir)?;
        if !source.is_dir() {
            return Err(CliError::usage(format!(
                "invalid --backup-dir `{}`: not a directory",
                dir.display()
            )));
        }
        let provider = DirectorySnapshot::new(&source, store(states, "directory", purpose)?)
            .map_err(|e| CliError::usage(format!("invalid --backup-dir `{}`: {e}", dir.display())))?
            .with_retention(retention);
        return Ok(Some(Arc::new(provider)));
    }
    if let Some(conninfo) = &global.backup_postgres {
        let connection = postgres_connection(conninfo, env)?;
        let settings = PostgresSettings::new(connection, store(states, "postgres", purpose)?)
            .with_mode(PostgresMode::default())
            .with_retention(retention);
        let provider = PostgresBackup::new(settings)
            .map_err(|e| CliError::usage(format!("invalid --backup-postgres: {e}")))?;
        return Ok(Some(Arc::new(provider)));
    }
    Ok(None)
}

/// The connection of `--backup-postgres`, with the password of `PGPASSWORD` when the string
/// gives none (as libpq would take it).
fn postgres_connection(conninfo: &str, env: &EnvLookup) -> Result<PostgresConnection, CliError> {
    let connection = PostgresConnection::from_conninfo(conninfo)
        .map_err(|e| CliError::usage(format!("invalid --backup-postgres: {e}")))?;
    match env.get("PGPASSWORD") {
        Some(password) if connection.password.is_none() => Ok(connection.with_password(password)),
        _ => Ok(connection),
    }
}

/// `provider`, with its calls run on the real-time runtime `io` when there is one (the
/// simulated backend's) while the deployment's thread waits for them, blocked.
///
/// A backup is real work that takes real time. On the simulation's paused clock, a runtime
/// that only waits for it is idle, so its clock would jump from timer to timer for as long as
/// `pg_dump` runs: years of virtual time, past every deadline. Blocking the simulation's one
/// thread instead keeps its clock still: the backup takes no virtual time.
pub fn in_real_time(
    provider: Arc<dyn BackupProvider>,
    io: Option<tokio::runtime::Handle>,
) -> Arc<dyn BackupProvider> {
    match io {
        Some(io) => Arc::new(InRealTime {
            inner: provider,
            io,
        }),
        None => provider,
    }
}

struct InRealTime {
    inner: Arc<dyn BackupProvider>,
    io: tokio::runtime::Handle,
}

impl InRealTime {
    fn wait<T: Send + 'static>(
        &self,
        work: impl Future<Output = serin_orchestrator::Result<T>> + Send + 'static,
    ) -> serin_orchestrator::Result<T> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.io.spawn(async move {
            let _ = tx.send(work.await);
        });
        rx.recv().unwrap_or_else(|_| {
            Err(Error::backend(
                "backup",
                self.inner.name(),
                "the backup's task ended without an answer",
            ))
        })
    }
}

#[async_trait]
impl BackupProvider for InRealTime {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn backup(&self, service: &str, label: &str) -> serin_orchestrator::Result<String> {
        let (p, service, label) = (
            Arc::clone(&self.inner),
            service.to_owned(),
            label.to_owned(),
        );
        self.wait(async move { p.backup(&service, &label).await })
    }

    async fn restore(&self, id: &str) -> serin_orchestrator::Result<()> {
        let (p, id) = (Arc::clone(&self.inner), id.to_owned());
        self.wait(async move { p.restore(&id).await })
    }

    async fn info(&self, id: &str) -> serin_orchestrator::Result<BackupInfo> {
        let (p, id) = (Arc::clone(&self.inner), id.to_owned());
        self.wait(async move { p.info(&id).await })
    }

    async fn list(&self, service: &str) -> serin_orchestrator::Result<Vec<BackupInfo>> {
        let (p, service) = (Arc::clone(&self.inner), service.to_owned());
        self.wait(async move { p.list(&service).await })
    }

    async fn delete(&self, id: &str) -> serin_orchestrator::Result<()> {
        let (p, id) = (Arc::clone(&self.inner), id.to_owned());
        self.wait(async move { p.delete(&id).await })
    }

    fn retention(&self) -> Option<Retention> {
        self.inner.retention()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_settings_are_read_by_extension_and_validated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let yaml = dir.path().join("notify.yaml");
        std::fs::write(&yaml, "queueCapacity: 8\nrequestTimeout: 2s\n").expect("write");
        let s = read_settings(&yaml).expect("yaml settings");
        assert_eq!(s.queue_capacity, 8);
        assert_eq!(s.request_timeout, Duration::from_secs(2));
        let json = dir.path().join("notify.json");
        std::fs::write(&json, r#"{"queueCapacity": 0}"#).expect("write");
        let e = read_settings(&json).expect_err("zero capacity");
        assert!(e.message.contains("queueCapacity"), "{}", e.message);
        std::fs::write(&json, r#"{"queueSize": 3}"#).expect("write");
        let e = read_settings(&json).expect_err("unknown field");
        assert!(e.message.contains("queueSize"), "{}", e.message);
    }

    use clap::Parser;

    fn global(args: &[&str]) -> Global {
        let mut argv = vec!["serin-cli"];
        argv.extend_from_slice(args);
        argv.push("status");
        crate::cli::args::Cli::try_parse_from(argv)
            .expect("arguments")
            .global
    }

    #[test]
    fn backup_flags_are_checked_and_name_the_flag() {
        let dir = tempfile::tempdir().expect("tempdir");
        let states = StateDir::open(&dir.path().join("state")).expect("state dir");
        let env = EnvLookup::default();
        assert!(
            backup(&global(&[]), &env, &states, Use::Deploy)
                .expect("none")
                .is_none()
        );

        let missing = dir.path().join("missing");
        let missing = missing.to_str().expect("utf-8");
        let e = backup(
            &global(&["--backup-dir", missing]),
            &env,
            &states,
            Use::Deploy,
        )
        .err()
        .expect("no such directory");
        assert!(e.message.contains("--backup-dir"), "{}", e.message);

        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("mkdir");
        let data = data.to_str().expect("utf-8");
        let e = backup(
            &global(&["--backup-dir", data, "--backup-keep", "0"]),
            &env,
            &states,
            Use::Deploy,
        )
        .err()
        .expect("keep nothing");
        assert!(e.message.contains("--backup-keep"), "{}", e.message);

        let listing = backup(&global(&["--backup-dir", data]), &env, &states, Use::List)
            .expect("provider")
            .expect("some");
        assert!(!states.backups().exists(), "listing created the store");
        let listed = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(listing.list("demo"))
            .expect("an absent store lists nothing");
        assert!(listed.is_empty());
        let provider = backup(&global(&["--backup-dir", data]), &env, &states, Use::Deploy)
            .expect("provider")
            .expect("some");
        assert!(states.backups().join("directory").is_dir());
        assert!(!provider.name().is_empty());

        let e = backup(
            &global(&["--backup-postgres", "host=h colour=red"]),
            &env,
            &states,
            Use::Deploy,
        )
        .err()
        .expect("unknown key");
        assert!(e.message.contains("--backup-postgres"), "{}", e.message);
        assert!(
            crate::cli::args::Cli::try_parse_from([
                "serin-cli",
                "--backup-dir",
                data,
                "--backup-postgres",
                "host=h",
                "status"
            ])
            .is_err(),
            "one provider at a time"
        );
    }

    #[test]
    fn pgpassword_fills_in_only_a_password_the_conninfo_lacks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let env_file = dir.path().join("test.env");
        std::fs::write(&env_file, "PGPASSWORD=from-env\n").expect("write");
        let env = EnvLookup::load(Some(&env_file)).expect("env file");
        let from_env = env.get("PGPASSWORD");
        // A key's value that merely mentions the word is no password.
        let c = postgres_connection("host=pgpassword-vault user=password_admin", &env)
            .expect("connection");
        assert_eq!(c.password, from_env);
        let c = postgres_connection("host=h user=u password='x y'", &env).expect("connection");
        assert_eq!(c.password.as_deref(), Some("x y"));
    }

    #[test]
    fn channels_get_a_notifier_whose_secrets_come_from_the_env_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let yaml = "version: 1.0.0\nstrategy: blue-green\ntargetServices: [demo]\nnotificationChannels:\n  - type: webhook\n    destination: http://127.0.0.1:9/hook\n    secretEnv: SERIN_CLI_UNIT_HOOK_SECRET\n";
        let config = DeploymentConfig::from_yaml(yaml).expect("config");
        let none = EnvLookup::default();
        assert!(
            notifier(
                &global(&[]),
                &none,
                None,
                &DeploymentConfig::from_yaml(
                    "version: 1.0.0\nstrategy: blue-green\ntargetServices: [demo]\n"
                )
                .expect("config")
            )
            .expect("no channels")
            .is_none()
        );
        let e = notifier(&global(&[]), &none, None, &config)
            .err()
            .expect("no secret");
        assert!(
            e.message.contains("notificationChannels[0]") && e.message.contains("secretEnv"),
            "{}",
            e.message
        );
        let env_file = dir.path().join("test.env");
        std::fs::write(&env_file, "SERIN_CLI_UNIT_HOOK_SECRET=s3cret\n").expect("write");
        let env = EnvLookup::load(Some(&env_file)).expect("env file");
        let n = notifier(&global(&[]), &env, None, &config)
            .expect("notifier")
            .expect("some");
        assert_eq!(n.notifier.stats().queued, 0);
        let settings = dir.path().join("notify.json");
        std::fs::write(&settings, r#"{"retry": {"maxAttempts": 0}}"#).expect("write");
        let settings = settings.to_str().expect("utf-8");
        let e = notifier(
            &global(&["--notify-settings", settings]),
            &env,
            None,
            &config,
        )
        .err()
        .expect("bad settings");
        assert!(e.message.contains("maxAttempts"), "{}", e.message);
    }
}
