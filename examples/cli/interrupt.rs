//! Ctrl-C (SIGINT) and SIGTERM while `deploy` or `rollback` runs: the first aborts the
//! deployment, which rolls back; the next quits at once. Once the deployment has ended and is
//! recorded, nothing is left to abort: the first signal says so while the command cleans up,
//! and the next quits at once with the outcome's exit status.
//!
//! A rollback can take a while (the new version's requests drain, its processes get their
//! grace period, notifications are delivered), and whoever presses Ctrl-C again, or a service
//! manager that follows SIGTERM with another, wants out now. The second signal gets that, with
//! exit status 5 and a message saying what may be left and how to pick it up again: it is
//! never ignored, since a signal handler, once installed, keeps the default action (ending the
//! process) from ever running again.

use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use indicatif::ProgressBar;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::cli::args::{BackendKind, Global};
use crate::cli::exit::Exit;
use crate::cli::hooks::FLUSH_BOUND;
use crate::cli::ui::Ui;

/// What a signal during a deployment does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnSignal {
    /// Abort the deployment: it rolls back to what ran, and the command waits for that.
    Abort,
    /// Quit at once with [`Exit::Forced`], whatever is left unfinished.
    Quit,
}

/// What the `n`th signal (counting from 1) of one command does: the first aborts, every later
/// one quits.
pub fn on_signal(n: u32) -> OnSignal {
    if n <= 1 {
        OnSignal::Abort
    } else {
        OnSignal::Quit
    }
}

/// `serin-cli` with the options of `global` that choose the record and the service a command
/// reads (`--backend`, `--state-dir`, `--config`, `--env-file`), as given: the commands a
/// message advises need them, or they would read another state directory (`.serin`), or be
/// refused this one's backend or service.
pub fn invocation(global: &Global) -> String {
    let mut cli = "serin-cli".to_owned();
    if global.backend != BackendKind::Local {
        cli.push_str(" --backend sim");
    }
    let options = [
        ("--state-dir", Some(global.state_dir.as_path())),
        ("--config", global.config.as_deref()),
        ("--env-file", global.env_file.as_deref()),
    ];
    for (flag, path) in options {
        match path {
            Some(p) if flag != "--state-dir" || p != Path::new(".serin") => {
                cli.push_str(&format!(" {flag} {}", quoted(&p.display().to_string())));
            }
            _ => {}
        }
    }
    cli
}

/// `text` as a shell word: as it is when it needs no quoting, else in single quotes.
fn quoted(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:=,@%".contains(c));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// What is left when a second signal quits a deployment of `version` (a rollback when
/// `is_rollback`) that started from `recorded` (the version `state.json` names as running,
/// none before the first install), and how to go on with `cli`, the command line's
/// [`invocation`].
pub fn forced_message(
    cli: &str,
    state_dir: &Path,
    version: &semver::Version,
    recorded: Option<&semver::Version>,
    is_rollback: bool,
) -> String {
    let what = if is_rollback {
        "rollback"
    } else {
        "deployment"
    };
    let dir = state_dir.display();
    let mut text = format!(
        "interrupted again: quitting at once, without waiting for the {what} of {version} to \
         finish rolling back. It may be left half-switched (part of the traffic on {version}) \
         and stays unfinished in the journal ({dir}/journal.jsonl): `{cli} status` shows it \
         as interrupted and `{cli} logs` shows how far it got. "
    );
    let again = if is_rollback {
        format!("{cli} rollback --to-version {version}")
    } else {
        format!("{cli} deploy --version {version}")
    };
    match recorded {
        Some(r) => text.push_str(&format!(
            "{dir}/state.json still records {r} as what runs: the next command brings {r} back \
             up with all the traffic (`{cli} health-check` does so and checks it); then \
             `{again}` tries the {what} again."
        )),
        None => text.push_str(&format!(
            "Nothing was recorded as running in {dir}/state.json: `{cli} deploy --version \
             {version}` installs it afresh."
        )),
    }
    text
}

/// Where the command stands when a signal comes.
enum Phase {
    /// The deployment runs or rolls back: the first signal aborts it; the next quits at once
    /// with [`Exit::Forced`] and this message.
    Running { forced: String },
    /// The deployment has ended and is recorded; the command is cleaning up.
    Ended(Ended),
}

/// What a signal during the cleanup after a recorded end says and does.
struct Ended {
    /// The exit status of the outcome.
    exit: Exit,
    /// What the first signal says: nothing is left to abort, the cleanup goes on.
    first: String,
    /// What the next one says as it quits.
    quit: String,
    /// The command's result, not printed yet (taken by whoever prints it).
    output: Option<String>,
}

/// Listens for SIGINT and SIGTERM from its creation to the end of the command.
pub struct Interrupts {
    first: watch::Receiver<Option<&'static str>>,
    phase: Arc<Mutex<Phase>>,
}

fn locked(phase: &Mutex<Phase>) -> MutexGuard<'_, Phase> {
    phase.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Interrupts {
    /// Starts listening now (so no signal is missed between here and the first wait). The
    /// first signal is announced to [`first`](Self::first); the next one prints `forced` (and,
    /// with `--output json`, the error document) and ends the process with exit status 5 —
    /// until [`ended`](Self::ended) says the deployment is over. `None` where the signals
    /// cannot be listened to (the default action stays: the process ends).
    ///
    /// With `io` (the simulated backend's real-time runtime), it listens there: the
    /// simulation's one thread is blocked while a backup runs (see
    /// [`in_real_time`](crate::cli::hooks::in_real_time)), and a second signal must quit then
    /// too.
    pub fn listen(
        ui: Ui,
        forced: String,
        io: Option<&tokio::runtime::Handle>,
    ) -> Option<Interrupts> {
        let _entered = io.map(tokio::runtime::Handle::enter);
        let mut sigint = signal(SignalKind::interrupt()).ok()?;
        let mut sigterm = signal(SignalKind::terminate()).ok()?;
        let (tx, first) = watch::channel(None);
        let phase = Arc::new(Mutex::new(Phase::Running { forced }));
        let shared = Arc::clone(&phase);
        tokio::spawn(async move {
            let mut n = 0;
            loop {
                let what = tokio::select! {
                    Some(()) = sigint.recv() => "interrupted",
                    Some(()) = sigterm.recv() => "terminated",
                    else => return,
                };
                n += 1;
                let mut phase = locked(&shared);
                match (&mut *phase, on_signal(n)) {
                    (Phase::Running { .. }, OnSignal::Abort) => {
                        let _ = tx.send(Some(what));
                    }
                    (Phase::Running { forced }, OnSignal::Quit) => {
                        eprintln!("error: {forced}");
                        if ui.json() {
                            let doc = serde_json::json!({
                                "error": forced,
                                "exitCode": Exit::Forced as u8,
                            });
                            println!("{doc}");
                        }
                        std::process::exit(i32::from(Exit::Forced as u8));
                    }
                    (Phase::Ended(ended), OnSignal::Abort) => {
                        ui.note(&ProgressBar::hidden(), &format!("{what}: {}", ended.first));
                    }
                    (Phase::Ended(ended), OnSignal::Quit) => {
                        // Whatever the command is printing, it ends its line first.
                        let mut out = std::io::stdout().lock();
                        eprintln!("{}", ended.quit);
                        if let Some(text) = ended.output.take() {
                            let _ = out.write_all(text.as_bytes());
                            let _ = out.flush();
                        }
                        std::process::exit(i32::from(ended.exit as u8));
                    }
                }
            }
        });
        Some(Interrupts { first, phase })
    }

    /// Waits for the first signal and says which (`interrupted`, `terminated`).
    pub async fn first(&mut self) -> &'static str {
        loop {
            if let Some(what) = *self.first.borrow_and_update() {
                return what;
            }
            if self.first.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Says the deployment is over and recorded, with `exit` the status of its outcome and
    /// `output` the command's result as it will print it. From now on nothing is left to
    /// abort: the first signal says so and lets the cleanup (notifications still queued, the
    /// processes) finish; the next quits at once, printing `output` unless the command has
    /// [taken](Self::take_output) it already, with `exit` — not [`Exit::Forced`], which says
    /// the deployment may be half-switched, when it is not. `what` names it (`deployment of
    /// 1.2.0`), `outcome` says how it ended and `running` what runs now.
    pub fn ended(&self, exit: Exit, what: &str, outcome: &str, running: &str, output: String) {
        let first = format!(
            "the {what} has already ended ({outcome}) and is recorded; finishing the cleanup \
             (queued notifications, at most {}s, and the processes); interrupt again to quit at \
             once",
            FLUSH_BOUND.as_secs()
        );
        let quit = format!(
            "interrupted again: quitting at once. The {what} had already ended ({outcome}) and \
             is recorded ({running} runs); only the cleanup was cut short: notifications still \
             queued are not delivered"
        );
        *locked(&self.phase) = Phase::Ended(Ended {
            exit,
            first,
            quit,
            output: Some(output),
        });
    }

    /// The result [`ended`](Self::ended) was given, for the command to print itself (so that
    /// a signal does not print it too); `None` once taken.
    pub fn take_output(&self) -> Option<String> {
        match &mut *locked(&self.phase) {
            Phase::Ended(ended) => ended.output.take(),
            Phase::Running { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_signal_aborts_and_the_next_ones_quit() {
        assert_eq!(on_signal(1), OnSignal::Abort);
        assert_eq!(on_signal(2), OnSignal::Quit);
        assert_eq!(on_signal(3), OnSignal::Quit);
    }

    #[test]
    fn a_forced_quit_says_what_is_left_and_how_to_go_on() {
        let v = |s: &str| semver::Version::parse(s).expect("version");
        let cli = "serin-cli";
        let text = forced_message(
            cli,
            Path::new(".serin"),
            &v("1.2.0"),
            Some(&v("1.1.0")),
            false,
        );
        for part in [
            "deployment of 1.2.0",
            "half-switched",
            ".serin/state.json still records 1.1.0",
            "serin-cli status",
            "serin-cli deploy --version 1.2.0",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
        let text = forced_message(
            cli,
            Path::new(".serin"),
            &v("1.0.0"),
            Some(&v("1.1.0")),
            true,
        );
        assert!(
            text.contains("rollback of 1.0.0")
                && text.contains("serin-cli rollback --to-version 1.0.0"),
            "{text}"
        );
        let text = forced_message(cli, Path::new(".serin"), &v("1.0.0"), None, false);
        assert!(text.contains("installs it afresh"), "{text}");
    }

    /// The commands a forced quit advises read the same record: with the options that chose
    /// the backend, the state directory, the config and the environment file.
    #[test]
    fn the_advised_commands_carry_the_options_that_chose_the_record() {
        use clap::Parser as _;
        let parse = |args: &[&str]| {
            crate::cli::args::Cli::try_parse_from(args)
                .expect("flags")
                .global
        };
        let global = parse(&[
            "serin-cli",
            "--backend",
            "sim",
            "--state-dir",
            "runs/my state",
            "--config",
            "deploy.yaml",
            "deploy",
            "--version",
            "1.2.0",
        ]);
        let cli = invocation(&global);
        assert_eq!(
            cli,
            "serin-cli --backend sim --state-dir 'runs/my state' --config deploy.yaml"
        );
        let v = |s: &str| semver::Version::parse(s).expect("version");
        let text = forced_message(
            &cli,
            &global.state_dir,
            &v("1.2.0"),
            Some(&v("1.1.0")),
            false,
        );
        for part in [
            &format!("`{cli} status`"),
            &format!("`{cli} health-check`"),
            &format!("`{cli} deploy --version 1.2.0`"),
        ] {
            assert!(text.contains(part.as_str()), "{part}: {text}");
        }
        let plain = parse(&["serin-cli", "status"]);
        assert_eq!(invocation(&plain), "serin-cli");
    }
}
