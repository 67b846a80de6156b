//! Running PostgreSQL's client programs: separate arguments, never a shell; connection
//! settings in the child's environment only.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;

use tokio::process::Command;

use crate::error::{Error, Result};

/// How to start a client program: where it lives and the environment it gets.
#[derive(Clone)]
pub(crate) struct Client {
    pub(crate) bin_dir: Option<PathBuf>,
    /// `PGHOST`, `PGPORT`, `PGUSER` and, if set, `PGPASSWORD`.
    pub(crate) env: Vec<(&'static str, String)>,
}

/// Variables a parent process may have set that would change where or how a child connects,
/// or how its session shows values: the time zone and date style are part of a row's text,
/// which the checksums that verify a restore read, and the process that restores need not be
/// the one that took the backup.
const CLEARED: [&str; 10] = [
    "PGDATABASE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGOPTIONS",
    "PGPASSFILE",
    "PGPASSWORD",
    "PGHOSTADDR",
    "PGCONNECT_TIMEOUT",
    "PGTZ",
    "PGDATESTYLE",
];

impl Client {
    /// `program` with `args`, its environment set and stdin closed.
    fn std_command(&self, program: &str, args: &[OsString]) -> std::process::Command {
        let path = match &self.bin_dir {
            Some(dir) => dir.join(program),
            None => PathBuf::from(program),
        };
        let mut cmd = std::process::Command::new(path);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for var in CLEARED {
            cmd.env_remove(var);
        }
        for (var, value) in &self.env {
            cmd.env(var, value);
        }
        cmd
    }

    /// A command for `program` with `args`, its environment set and stdin closed; killed
    /// if it is dropped before it ends.
    pub(crate) fn command(&self, program: &str, args: &[OsString]) -> Command {
        let mut cmd = Command::from(self.std_command(program, args));
        cmd.kill_on_drop(true);
        cmd
    }

    /// This client, its sessions named `name` on the server (`application_name`), so that
    /// a cleanup can find the sessions of one operation and end them.
    pub(crate) fn named(&self, name: &str) -> Client {
        let mut client = self.clone();
        client.env.retain(|(var, _)| *var != "PGAPPNAME");
        client.env.push(("PGAPPNAME", name.to_owned()));
        client
    }

    /// Runs `program` to completion; its stdout on success, an error quoting its stderr
    /// otherwise. Arguments hold no secret (the password is in the environment), so the error
    /// may show them.
    pub(crate) async fn run(&self, program: &str, args: &[OsString]) -> Result<String> {
        let output = self
            .command(program, args)
            .output()
            .await
            .map_err(|e| failed(program, args, &format!("cannot start it: {e}")))?;
        answer(program, args, output)
    }

    /// [`run`](Self::run) on this thread, for a drop (which cannot wait): the thread waits,
    /// for at most [`CONNECT_TIMEOUT_S`] to connect and then for the statements.
    pub(crate) fn run_blocking(&self, program: &str, args: &[OsString]) -> Result<String> {
        let output = self
            .std_command(program, args)
            .env("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT_S.to_string())
            .output()
            .map_err(|e| failed(program, args, &format!("cannot start it: {e}")))?;
        answer(program, args, output)
    }
}

/// How long a cleanup run from a drop waits to connect, in seconds.
pub(crate) const CONNECT_TIMEOUT_S: u32 = 10;

/// The stdout of a program that succeeded, or an error quoting its stderr.
fn answer(program: &str, args: &[OsString], output: std::process::Output) -> Result<String> {
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(failed(
        program,
        args,
        &format!("{}: {}", output.status, tail(&stderr)),
    ))
}

/// The last lines of a program's error output, enough to see why it failed.
pub(crate) fn tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(8);
    lines.get(start..).unwrap_or_default().join(" | ")
}

/// The error of a client program that failed.
pub(crate) fn failed(program: &str, args: &[OsString], reason: &str) -> Error {
    let shown: Vec<String> = args
        .iter()
        .map(|a| format!("{:?}", a.to_string_lossy()))
        .collect();
    Error::backend(
        "backup",
        "postgres",
        format!("{program} {} failed: {reason}", shown.join(" ")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row's text, which the verification checksums, depends on the session's time zone
    /// and date style: set by the parent process for the backup but not the restore (or the
    /// other way round), they would fail the verification of a good restore.
    #[test]
    fn the_parents_session_defaults_never_reach_a_child() {
        let client = Client {
            bin_dir: None,
            env: vec![("PGHOST", "h".to_owned())],
        };
        let cmd = client.std_command("psql", &[]);
        let removed: Vec<_> = cmd
            .get_envs()
            .filter(|(_, value)| value.is_none())
            .map(|(var, _)| var.to_string_lossy().into_owned())
            .collect();
        for var in ["PGTZ", "PGDATESTYLE", "PGOPTIONS"] {
            assert!(removed.iter().any(|r| r == var), "{var}: {removed:?}");
        }
    }
}
