//! Ctrl-C (SIGINT) and SIGTERM while `deploy` or `rollback` runs: the first aborts the
//! deployment, which rolls back; the next quits at once.
//!
//! A rollback can take a while (the new version's requests drain, its processes get their
//! grace period, notifications are delivered), and whoever presses Ctrl-C again, or a service
//! manager that follows SIGTERM with another, wants out now. The second signal gets that, with
//! exit status 5 and a message saying what may be left and how to pick it up again: it is
//! never ignored, since a signal handler, once installed, keeps the default action (ending the
//! process) from ever running again.

use std::path::Path;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::cli::exit::Exit;
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

/// What is left when a second signal quits a deployment of `version` (a rollback when
/// `is_rollback`) that started from `recorded` (the version `state.json` names as running,
/// none before the first install), and how to go on.
pub fn forced_message(
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
         and stays unfinished in the journal ({dir}/journal.jsonl): `serin-cli status` shows it \
         as interrupted and `serin-cli logs` shows how far it got. "
    );
    let again = if is_rollback {
        format!("serin-cli rollback --to-version {version}")
    } else {
        format!("serin-cli deploy --version {version}")
    };
    match recorded {
        Some(r) => text.push_str(&format!(
            "{dir}/state.json still records {r} as what runs: the next command brings {r} back \
             up with all the traffic (`serin-cli health-check` does so and checks it); then \
             `{again}` tries the {what} again."
        )),
        None => text.push_str(&format!(
            "Nothing was recorded as running in {dir}/state.json: `serin-cli deploy --version \
             {version}` installs it afresh."
        )),
    }
    text
}

/// Listens for SIGINT and SIGTERM from its creation to the end of the command.
pub struct Interrupts {
    first: watch::Receiver<Option<&'static str>>,
}

impl Interrupts {
    /// Starts listening now (so no signal is missed between here and the first wait). The
    /// first signal is announced to [`first`](Self::first); the next one prints `forced` (and,
    /// with `--output json`, the error document) and ends the process with exit status 5.
    /// `None` where the signals cannot be listened to (the default action stays: the process
    /// ends).
    pub fn listen(ui: Ui, forced: String) -> Option<Interrupts> {
        let mut sigint = signal(SignalKind::interrupt()).ok()?;
        let mut sigterm = signal(SignalKind::terminate()).ok()?;
        let (tx, first) = watch::channel(None);
        tokio::spawn(async move {
            let mut n = 0;
            loop {
                let what = tokio::select! {
                    Some(()) = sigint.recv() => "interrupted",
                    Some(()) = sigterm.recv() => "terminated",
                    else => return,
                };
                n += 1;
                match on_signal(n) {
                    OnSignal::Abort => {
                        let _ = tx.send(Some(what));
                    }
                    OnSignal::Quit => {
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
                }
            }
        });
        Some(Interrupts { first })
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
        let text = forced_message(Path::new(".serin"), &v("1.2.0"), Some(&v("1.1.0")), false);
        for part in [
            "deployment of 1.2.0",
            "half-switched",
            ".serin/state.json still records 1.1.0",
            "serin-cli status",
            "serin-cli deploy --version 1.2.0",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
        let text = forced_message(Path::new(".serin"), &v("1.0.0"), Some(&v("1.1.0")), true);
        assert!(
            text.contains("rollback of 1.0.0")
                && text.contains("serin-cli rollback --to-version 1.0.0"),
            "{text}"
        );
        let text = forced_message(Path::new(".serin"), &v("1.0.0"), None, false);
        assert!(text.contains("installs it afresh"), "{text}");
    }
}
