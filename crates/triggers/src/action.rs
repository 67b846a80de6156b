//! What a trigger asks for ([`Action`]) and what it does when its data goes missing
//! ([`MissingData`]).

use std::fmt;

use serde::{Deserialize, Serialize};

/// What the engine asks the orchestrator to do when a trigger fires.
///
/// Ordered by severity: `Warn < Hold < Rollback`. A higher action may escalate a trigger that is
/// still inside the cooldown of a lower one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// Tell people; change nothing.
    Warn,
    /// Stop moving forward (no promotion, no weight increase) until the condition clears: the
    /// evidence is inconclusive or the fault is not this deployment's.
    Hold,
    /// Put traffic back on the stable version.
    Rollback,
}

impl Action {
    /// Every action, least severe first.
    pub const ALL: [Action; 3] = [Action::Warn, Action::Hold, Action::Rollback];

    pub(crate) fn index(self) -> usize {
        match self {
            Action::Warn => 0,
            Action::Hold => 1,
            Action::Rollback => 2,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Warn => "warn",
            Action::Hold => "hold",
            Action::Rollback => "rollback",
        })
    }
}

/// What a trigger does when its data goes missing (no usable observation for `staleAfter`).
///
/// Missing data is never treated as healthy: the trigger enters the `stale` state and asks for
/// this policy's action once on entry, unless the cooldown of a fire of the same or a higher
/// level still runs (the state, and so the engine's current action, are stale all the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MissingData {
    /// Ask the orchestrator to hold (the default): no promotion on missing evidence.
    #[default]
    Hold,
    /// Warn only.
    Warn,
    /// Treat missing data as a failure and ask for a rollback.
    Fire,
}

impl MissingData {
    /// The action asked for when the trigger goes stale.
    pub fn action(self) -> Action {
        match self {
            MissingData::Hold => Action::Hold,
            MissingData::Warn => Action::Warn,
            MissingData::Fire => Action::Rollback,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_ordered_by_severity() {
        assert!(Action::Warn < Action::Hold && Action::Hold < Action::Rollback);
        for (i, a) in Action::ALL.iter().enumerate() {
            assert_eq!(a.index(), i);
        }
        assert_eq!(MissingData::default().action(), Action::Hold);
        assert_eq!(MissingData::Fire.action(), Action::Rollback);
        assert_eq!(
            serde_json::from_str::<MissingData>("\"warn\"").unwrap(),
            MissingData::Warn
        );
    }
}
