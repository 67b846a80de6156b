//! Written canary `steps` replace the steps derived from `initialPercentage`,
//! `incrementPercentage`, `targetPercentage` and `incrementInterval`: those are refused beside
//! them rather than ignored, the steps must reach a weight the judges can compare at, and an
//! error in a step names it as the file writes it.

use serin_orchestrator::DeploymentConfig;

fn canary(steps_and_fields: &str) -> String {
    format!(
        "strategy: canary\nversion: 1.0.0\ntargetServices: [web]\ncanaryConfig:\n{steps_and_fields}"
    )
}

fn refused(yaml: &str) -> String {
    DeploymentConfig::from_yaml(yaml)
        .expect_err(yaml)
        .to_string()
}

#[test]
fn steps_that_never_split_traffic_are_refused() {
    for steps in [
        "  steps:\n    - setWeight: 100\n    - pause: {duration: 1m}\n",
        "  steps:\n    - pause: {duration: 1m}\n",
        "  steps:\n    - setWeight: 0\n    - pause: {duration: 1m}\n    - setWeight: 100\n",
    ] {
        let err = refused(&canary(steps));
        assert!(
            err.contains("canaryConfig.steps `") && err.contains("strictly between 0 and 100"),
            "{err}"
        );
        assert!(!err.contains("  "), "{err}");
    }
    let split = "  steps:\n    - setWeight: 50\n    - pause: {duration: 1m}\n    - setWeight: 100\n    - pause: {duration: 1m}\n";
    DeploymentConfig::from_yaml(&canary(split)).expect("a split at 50% is compared");
}

#[test]
fn the_fields_steps_replace_are_refused_beside_them() {
    let steps = "  steps:\n    - setWeight: 10\n    - pause: {duration: 1m}\n";
    for (field, value) in [
        ("initialPercentage", "20"),
        ("incrementPercentage", "25"),
        ("targetPercentage", "50"),
        ("incrementInterval", "3m"),
    ] {
        let err = refused(&canary(&format!("  {field}: {value}\n{steps}")));
        assert!(
            err.contains(&format!("canaryConfig.{field} `{value}`"))
                && err.contains("has no effect"),
            "{err}"
        );
    }
    // Left as they are, or written as their defaults, they are no contradiction.
    DeploymentConfig::from_yaml(&canary(steps)).expect("steps alone");
    DeploymentConfig::from_yaml(&canary(&format!("  targetPercentage: 100\n{steps}")))
        .expect("the default written out");
}

#[test]
fn an_error_in_a_written_step_names_the_step() {
    let err = refused(&canary(
        "  steps:\n    - setWeight: 10\n    - pause: {duration: 1m}\n    - setWeight: 101\n",
    ));
    assert!(
        err.contains("canaryConfig.steps[2].setWeight `101`"),
        "{err}"
    );
    assert!(
        err.contains("101") && !err.contains("canaryPolicy"),
        "{err}"
    );
    let err = refused(&canary(
        "  steps:\n    - setWeight: 10\n    - setWeight: 100\n    - analysis: {duration: 1m}\n",
    ));
    assert!(err.contains("canaryConfig.steps[2].analysis `"), "{err}");
}
