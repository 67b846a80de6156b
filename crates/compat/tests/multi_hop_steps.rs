//! The checklist of a move through required stops: what each hop needs happens once the hops
//! before it are deployed.

use crate::catalog_support;

use catalog_support::{check, load};
use serin_compat::Verdict;
use serin_compat::steps::{StepKind, StepPhase};

const GITLAB: &str = "registry:\n  services:\n    gl:\n      releases:\n\
\x20       - version: 16.10.0\n\
\x20       - version: 16.11.0\n          migrations:\n\
\x20           - {name: 1611_a, sql: \"SET lock_timeout = '1s'; ALTER TABLE users ADD COLUMN a text;\"}\n\
\x20       - version: 17.0.0\n\
\x20       - version: 17.1.0\n          migrations:\n\
\x20           - {name: 1710_b, sql: \"SET lock_timeout = '1s'; ALTER TABLE users ADD COLUMN b text;\"}\n\
graphs:\n  gl:\n    edges: [{from: '*', to: '*'}]\n\
\x20   requiredStops: [{name: '16.11', stop: 16.11.*, into: '>=17.0.0'}]\n";

#[test]
fn a_migration_of_a_later_hop_is_applied_after_the_required_stop_is_deployed() {
    let validator = load(GITLAB);
    let result = check(&validator, "gl: 16.10.0", &[("gl", "17.1.0")]);
    assert_eq!(result.verdict, Verdict::Ok, "{result}");
    let steps: Vec<(StepPhase, StepKind, &str)> = result
        .steps
        .iter()
        .map(|s| (s.phase, s.kind, s.text.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            (
                StepPhase::Before,
                StepKind::Backup,
                "back up its database and verify the backup restores"
            ),
            (
                StepPhase::Before,
                StepKind::ExpandMigration,
                "apply migration 1611_a (statements #1, #2) for 16.11.0 before deploying, with \
                 lock_timeout set"
            ),
            (
                StepPhase::Deploy,
                StepKind::RequiredStop,
                "group 1: deploy required stop 16.11.0, let background work finish, retire the \
                 previous version"
            ),
            // 17.1.0 is the next hop: its migration waits for the stop, as GitLab's upgrade
            // procedure asks.
            (
                StepPhase::Deploy,
                StepKind::ExpandMigration,
                "group 1: once 16.11.0 is deployed, apply migration 1710_b (statements #1, #2) \
                 for 17.1.0 before deploying, with lock_timeout set"
            ),
            (
                StepPhase::Deploy,
                StepKind::Deploy,
                "group 1: deploy 17.1.0 beside the running version, move the traffic to it, \
                 retire the old version"
            ),
        ]
    );
    // From the stop, the migration comes first, as for any single step.
    let result = check(&validator, "gl: 16.11.0", &[("gl", "17.1.0")]);
    assert_eq!(result.verdict, Verdict::Ok, "{result}");
    assert_eq!(result.steps[1].phase, StepPhase::Before, "{result}");
    assert_eq!(result.steps[1].kind, StepKind::ExpandMigration, "{result}");
}
