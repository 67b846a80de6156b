//! Rules and graphs select the releases they name, and the semver check of an API's version
//! asks only what semver promises.

use crate::catalog_support;

use catalog_support::{check, codes, load};
use serin_compat::{UpgradeValidation, Verdict};

/// A release listed with build metadata is the release its rules name without it: a deny that
/// names `1.4.0` applies to `1.4.0+linux`.
#[test]
fn a_deny_that_names_a_version_applies_to_its_build() {
    let yaml = "registry:\n  services:\n\
                \x20   db: {releases: [{version: 1.3.0+linux}, {version: 1.4.0+linux}]}\n\
                \x20   api: {releases: [{version: 1.0.0}, {version: 2.0.0}]}\n\
                rules:\n\
                \x20 - deny: {a: {service: api, versions: 2.0.0}, b: {service: db, versions: 1.4.0}}\n";
    let validator = load(yaml);
    let result = check(
        &validator,
        "{db: 1.4.0+linux, api: 1.0.0}",
        &[("api", "2.0.0")],
    );
    assert_eq!(result.verdict, Verdict::Blocked, "{result}");
    assert!(codes(&result).contains(&"matrix.deny"), "{result}");
}

/// ... and an edge blocked from `1.3.0` to `1.4.0` is blocked between their builds.
#[test]
fn a_blocked_edge_that_names_versions_blocks_their_builds() {
    let yaml = "registry:\n  services:\n\
                \x20   db: {releases: [{version: 1.3.0+linux}, {version: 1.4.0+linux}]}\n\
                graphs:\n\
                \x20 db:\n\
                \x20   edges: [{from: '*', to: '*'}]\n\
                \x20   blocked: [{from: 1.3.0, to: 1.4.0, reason: corrupts the cache}]\n";
    let validator = load(yaml);
    let result = check(&validator, "db: 1.3.0+linux", &[("db", "1.4.0+linux")]);
    assert_eq!(result.verdict, Verdict::Blocked, "{result}");
}

/// A pre-release promises no compatibility (SemVer §9): one release candidate may break what
/// the last offered, in its API or as its authors declare, and the stable release is held only
/// to the stable release before it.
#[test]
fn release_candidates_may_break_without_a_semver_violation() {
    let orders = |version: &str, fields: &str| {
        format!(
            "{{version: {version}, provides: [{{name: orders, version: {version}, endpoints: \
             [{{name: GET /orders, response: [{fields}]}}]}}]}}"
        )
    };
    let yaml = format!(
        "registry:\n  services:\n    shop:\n      releases:\n\
         \x20       - {}\n        - {}\n        - {}\n\
         \x20       - {{version: 2.0.0-rc.3, breaking: [orders are paged]}}\n",
        orders("1.0.0", "{name: total, type: int, required: true}"),
        orders("2.0.0-rc.1", "{name: total, type: string, required: true}"),
        orders("2.0.0-rc.2", ""),
    );
    let validator = load(&yaml);
    let semver = |result: &UpgradeValidation| {
        result
            .findings
            .iter()
            .filter(|f| f.code == "breaking.semver-violation")
            .count()
    };
    let result = check(&validator, "shop: 2.0.0-rc.1", &[("shop", "2.0.0-rc.2")]);
    assert!(
        codes(&result).contains(&"breaking.response-field-removed"),
        "{result}"
    );
    assert_eq!(semver(&result), 0, "{result}");
    let result = check(&validator, "shop: 2.0.0-rc.2", &[("shop", "2.0.0-rc.3")]);
    assert!(codes(&result).contains(&"breaking.declared"), "{result}");
    assert_eq!(semver(&result), 0, "{result}");
}
