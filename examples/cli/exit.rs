//! Exit codes and the CLI's one error type.

use serin_orchestrator::{Error as OrchestratorError, Outcome};

/// The process exit status (see `--help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: success.
    Success = 0,
    /// 1: rolled back, failed, or a health check failed.
    Failed = 1,
    /// 2: usage or configuration error.
    Usage = 2,
    /// 3: blocked by validation.
    Blocked = 3,
    /// 4: backend error.
    Backend = 4,
    /// 5: a second interrupt quit a deployment before it finished rolling back; it may be left
    /// half-switched.
    Forced = 5,
}

impl Exit {
    /// The exit status of a deployment that ended with `outcome` (`None`: it did not end).
    pub fn of_outcome(outcome: Option<&Outcome>) -> Exit {
        match outcome {
            Some(Outcome::Succeeded) => Exit::Success,
            Some(Outcome::Blocked { .. }) => Exit::Blocked,
            Some(_) | None => Exit::Failed,
        }
    }
}

/// Why a command failed, and with which exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// The exit status.
    pub exit: Exit,
    /// What went wrong, naming the input, the value and the reason.
    pub message: String,
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

impl CliError {
    /// A usage or configuration error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            exit: Exit::Usage,
            message: message.into(),
        }
    }

    /// A backend error (exit 4).
    pub fn backend(message: impl Into<String>) -> Self {
        CliError {
            exit: Exit::Backend,
            message: message.into(),
        }
    }
}

impl From<OrchestratorError> for CliError {
    fn from(e: OrchestratorError) -> Self {
        let exit = match &e {
            OrchestratorError::InvalidField { .. } | OrchestratorError::NotFound { .. } => {
                Exit::Usage
            }
            OrchestratorError::Blocked { .. } => Exit::Blocked,
            _ => Exit::Backend,
        };
        CliError {
            exit,
            message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orchestrator_errors_map_to_their_exit_status() {
        let bad =
            OrchestratorError::invalid("canaryConfig.incrementPercentage", 0, "must be above 0");
        assert_eq!(CliError::from(bad).exit, Exit::Usage);
        let blocked = OrchestratorError::Blocked {
            service: "demo".into(),
            version: "2.0.0".into(),
            reason: "db too old".into(),
        };
        assert_eq!(CliError::from(blocked).exit, Exit::Blocked);
        let down = OrchestratorError::platform("process", "port in use");
        assert_eq!(CliError::from(down).exit, Exit::Backend);
        assert_eq!(Exit::of_outcome(Some(&Outcome::Succeeded)), Exit::Success);
        assert_eq!(
            Exit::of_outcome(Some(&Outcome::RolledBack { reason: "x".into() })),
            Exit::Failed
        );
        assert_eq!(Exit::of_outcome(None), Exit::Failed);
    }
}
