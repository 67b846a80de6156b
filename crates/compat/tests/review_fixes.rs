//! Defects found in review, each with the behaviour that fixes it.

use crate::catalog_support;

use catalog_support::{check, codes, load, v};
use serin_compat::{Catalog, Fleet, Format, Proposal, UpgradeValidation, Validator, Verdict};

fn hops(result: &UpgradeValidation, service: &str) -> Vec<String> {
    result.paths[service]
        .hops
        .iter()
        .map(ToString::to_string)
        .collect()
}

// 1. The final replay checks a move hop by hop, as the analysis does.

const SELF_SKEW: &str = "registry:\n  services:\n    k:\n      releases:\n\
\x20       - {version: 1.28.0}\n        - {version: 1.29.0}\n        - {version: 1.30.0}\n\
rules:\n  - skew: {client: k, server: k, maxOlder: 1}\n\
graphs:\n  k:\n    edges: [{from: '*', to: '*'}]\n    requiredStops:\n\
\x20     - {name: 1.29 before 1.30, stop: 1.29.*, into: '>=1.30.0'}\n";

#[test]
fn a_multi_hop_move_under_a_self_skew_rule_is_replayed_hop_by_hop() {
    let validator = load(SELF_SKEW);
    let result = check(&validator, "k: 1.28.0", &[("k", "1.30.0")]);
    assert_eq!(result.verdict, Verdict::Ok, "{result}");
    assert_eq!(hops(&result, "k"), ["1.29.0", "1.30.0"]);
    assert!(!result.steps.is_empty());
    // A fleet half-way there finishes its way to the stop first.
    let result = check(&validator, "k: [1.28.0, 1.29.0]", &[("k", "1.30.0")]);
    assert_eq!(result.verdict, Verdict::Ok, "{result}");
    assert_eq!(hops(&result, "k"), ["1.29.0", "1.30.0"]);
    // The states that do exist are still checked: without the stop, 1.28 and 1.30 would run
    // side by side.
    let direct = load(&SELF_SKEW[..SELF_SKEW.find("graphs:").unwrap()]);
    let result = check(&direct, "k: 1.28.0", &[("k", "1.30.0")]);
    assert_eq!(result.verdict, Verdict::Blocked, "{result}");
    assert!(codes(&result).contains(&"matrix.skew"), "{result}");
}

// 2. A fleet half-way through a rollout moves from every version it runs.

const ES: &str = "registry:\n  services:\n    es:\n      releases:\n\
\x20       - {version: 7.10.0}\n        - {version: 7.17.0}\n        - {version: 8.0.0}\n\
\x20       - {version: 8.1.0}\n\
graphs:\n  es:\n    edges: [{from: '*', to: '*'}]\n    requiredStops:\n\
\x20     - {name: 7.17 before 8, stop: 7.17.*, into: '>=8.0.0'}\n";

#[test]
fn a_mixed_fleet_passes_the_required_stops_of_every_version_it_runs() {
    let validator = load(ES);
    let result = check(&validator, "es: [7.10.0, 7.17.0]", &[("es", "8.0.0")]);
    assert_eq!(result.verdict, Verdict::Ok, "{result}");
    // The instances at 7.10 reach 8.x only through 7.17: the rollout to 7.17 finishes first.
    assert_eq!(hops(&result, "es"), ["7.17.0", "8.0.0"]);
    assert_eq!(result.paths["es"].from, v("7.10.0"));
    // No single route suits 7.10 and 8.0 instances: refused, with what to do.
    let result = check(&validator, "es: [7.10.0, 8.0.0]", &[("es", "8.1.0")]);
    assert_eq!(result.verdict, Verdict::Blocked, "{result}");
    let f = result
        .findings
        .iter()
        .find(|f| f.code == "path.mixed-fleet")
        .unwrap_or_else(|| panic!("{result}"));
    assert!(f.message.contains("es runs 7.10.0, 8.0.0"), "{}", f.message);
    let why = f.explanation.as_ref().unwrap().to_string();
    // The edge exists: the required stop removes it, and the explanation says so.
    assert!(
        why.contains(
            "the instances at 7.10.0 cannot go straight to 8.1.0: the edge 7.10.0 -> 8.1.0 is \
             unusable because it would skip the required stop \"7.17 before 8\""
        ),
        "{why}"
    );
    assert_eq!(
        f.recipe.as_deref(),
        Some("bring every instance of es to one version first, then upgrade to 8.1.0")
    );
    // A uniform fleet is routed as before.
    let result = check(&validator, "es: 7.10.0", &[("es", "8.1.0")]);
    assert_eq!(hops(&result, "es"), ["7.17.0", "8.1.0"]);
}

const K_ONE_MINOR: &str = "registry:\n  services:\n    k:\n      releases:\n\
\x20       - {version: 1.28.0}\n        - {version: 1.29.0}\n        - {version: 1.30.0}\n\
\x20       - {version: 2.0.0}\n\
rules:\n  - oneMinorAtATime: {service: k}\n  - transition: {service: k, change: major, effect: warn, reason: read the notes}\n";

#[test]
fn move_rules_apply_from_every_running_version() {
    let validator = load(K_ONE_MINOR);
    let result = check(&validator, "k: [1.28.0, 1.29.0]", &[("k", "1.30.0")]);
    assert_eq!(result.verdict, Verdict::Blocked, "{result}");
    let f = result
        .findings
        .iter()
        .find(|f| f.code == "matrix.oneMinorAtATime")
        .unwrap();
    assert_eq!(f.message, "k 1.28.0 -> 1.30.0 skips a minor");
    assert_eq!(
        f.recipe.as_deref(),
        Some("move k one minor at a time: 1.28.0 -> 1.29.0 -> 1.30.0, each as its own upgrade")
    );
    // Finishing the rollout first is allowed.
    let result = check(&validator, "k: [1.28.0, 1.29.0]", &[("k", "1.29.0")]);
    assert_eq!(result.verdict, Verdict::Ok, "{result}");
    // Transitions too: the 1.30 instances of a fleet still partly on 1.29 cross no major.
    let result = check(&validator, "k: [1.30.0, 2.0.0]", &[("k", "2.0.0")]);
    assert!(codes(&result).contains(&"matrix.transition"), "{result}");
}

// 5. One minor at a time crosses a major from its latest minor, and bounds rollbacks too.

#[test]
fn one_minor_at_a_time_crosses_majors_and_every_recipe_can_be_followed() {
    let validator = load(
        "registry:\n  services:\n    k:\n      releases:\n\
         \x20       - {version: 1.0.0}\n        - {version: 7.16.0}\n        - {version: 7.17.3}\n\
         \x20       - {version: 8.0.0}\n        - {version: 8.1.0}\n        - {version: 9.0.0}\n\
         rules:\n  - oneMinorAtATime: {service: k}\n",
    );
    let verdict =
        |from: &str, to: &str| check(&validator, &format!("k: {from}"), &[("k", to)]).verdict;
    assert_eq!(verdict("7.17.3", "8.0.0"), Verdict::Ok);
    assert_eq!(verdict("8.0.0", "7.17.3"), Verdict::Ok);
    assert_eq!(verdict("8.1.0", "8.0.0"), Verdict::Ok);
    // Not from an earlier minor of the major, nor to a later minor of the next.
    assert_eq!(verdict("7.16.0", "8.0.0"), Verdict::Blocked);
    assert_eq!(verdict("7.17.3", "8.1.0"), Verdict::Blocked);
    // A rollback is bound as an upgrade is.
    assert_eq!(verdict("9.0.0", "1.0.0"), Verdict::Blocked);
    // Each recipe is a sequence of allowed steps.
    for (from, to, expected) in [
        ("7.16.0", "8.1.0", "7.16.0 -> 7.17.3 -> 8.0.0 -> 8.1.0"),
        ("8.1.0", "7.16.0", "8.1.0 -> 8.0.0 -> 7.17.3 -> 7.16.0"),
        ("7.17.3", "9.0.0", "7.17.3 -> 8.0.0 -> 8.1.0 -> 9.0.0"),
    ] {
        let result = check(&validator, &format!("k: {from}"), &[("k", to)]);
        let recipe = result
            .findings
            .iter()
            .find_map(|f| f.recipe.clone())
            .unwrap_or_else(|| panic!("{result}"));
        assert_eq!(
            recipe,
            format!("move k one minor at a time: {expected}, each as its own upgrade")
        );
        let steps: Vec<&str> = expected.split(" -> ").collect();
        for pair in steps.windows(2) {
            assert_eq!(verdict(pair[0], pair[1]), Verdict::Ok, "{pair:?}");
        }
    }
    // From 1.0 to 7.x, majors without releases are passed at their `.0`, and a long way is
    // summed up from its first stop.
    let result = check(&validator, "k: 1.0.0", &[("k", "7.16.0")]);
    let recipe = result
        .findings
        .iter()
        .find_map(|f| f.recipe.clone())
        .unwrap();
    assert_eq!(
        recipe,
        "move k one minor at a time from 1.0.0 to 7.16.0, each as its own upgrade, starting \
         with 2.0.x (not released): more than 12 minors lie in between"
    );
    let result = check(&validator, "k: 1.0.0", &[("k", "8.0.0")]);
    let recipe = result
        .findings
        .iter()
        .find_map(|f| f.recipe.clone())
        .unwrap();
    assert!(
        recipe.starts_with("move k one minor at a time from 1.0.0 to 8.0.0"),
        "{recipe}"
    );
}

// 3. A consumer of an API needs a deployed provider that offers it.

const SEARCH: &str = "registry:\n  services:\n    web:\n      releases:\n\
\x20       - {version: 1.0.0}\n\
\x20       - {version: 2.0.0, consumes: [{api: search, version: ^1}]}\n\
\x20   idx:\n      releases:\n        - {version: 1.0.0}\n\
\x20       - {version: 1.5.0, provides: [{name: search, version: 1.2.0}]}\n\
\x20       - {version: 2.0.0}\n\
\x20   idx2:\n      releases:\n        - {version: 1.0.0}\n\
\x20       - {version: 1.1.0, provides: [{name: search, version: 1.0.0}]}\n";

fn api_finding(result: &UpgradeValidation) -> &serin_compat::Finding {
    result
        .findings
        .iter()
        .find(|f| f.code == "api.requires")
        .unwrap_or_else(|| panic!("{result}"))
}

#[test]
fn an_api_consumer_needs_some_deployed_provider_of_it() {
    let validator = load(SEARCH);
    // The provider runs a release without the API.
    let result = check(&validator, "{web: 1.0.0, idx: 1.0.0}", &[("web", "2.0.0")]);
    assert_eq!(result.verdict, Verdict::Blocked, "{result}");
    let f = api_finding(&result);
    assert_eq!(
        f.message,
        "web 2.0.0 cannot be deployed while idx is at 1.0.0"
    );
    assert!(
        f.evidence.iter().any(|e| e
            == "web 2.0.0 calls api search ^1 and no deployed release provides it (releases \
                of idx or idx2 do)"),
        "{:?}",
        f.evidence
    );
    assert_eq!(
        f.recipe.as_deref(),
        Some("upgrade idx to 1.5.0 in the same change")
    );
    // No provider is deployed at all.
    let result = check(&validator, "web: 1.0.0", &[("web", "2.0.0")]);
    assert_eq!(result.verdict, Verdict::Blocked, "{result}");
    let f = api_finding(&result);
    assert_eq!(
        f.message,
        "web 2.0.0 cannot be deployed while idx is not deployed"
    );
    assert_eq!(
        f.recipe.as_deref(),
        Some("deploy idx 1.5.0 in the same change")
    );
    // Moving the provider in the same change orders it first.
    let result = check(
        &validator,
        "{web: 1.0.0, idx: 1.0.0}",
        &[("web", "2.0.0"), ("idx", "1.5.0")],
    );
    assert_eq!(result.verdict, Verdict::Ok, "{result}");
    let order: Vec<Vec<&str>> = result
        .order
        .iter()
        .map(|g| g.iter().map(|m| m.service.as_str()).collect())
        .collect();
    assert_eq!(order, [["idx"], ["web"]]);
    // Another provider that offers it is enough.
    let result = check(
        &validator,
        "{web: 1.0.0, idx: 1.0.0, idx2: 1.1.0}",
        &[("web", "2.0.0")],
    );
    assert_eq!(result.verdict, Verdict::Ok, "{result}");
    // ... and it may be the one that moves to offer it, while a provider that never does
    // stands by.
    let result = check(
        &validator,
        "{web: 1.0.0, idx: 1.0.0, idx2: 1.0.0}",
        &[("web", "2.0.0"), ("idx2", "1.1.0")],
    );
    assert_eq!(result.verdict, Verdict::Ok, "{result}");
    // A provider that stops offering it, while the consumer runs, is blocked.
    let result = check(&validator, "{web: 2.0.0, idx: 1.5.0}", &[("idx", "2.0.0")]);
    assert_eq!(result.verdict, Verdict::Blocked, "{result}");
    // And the fleet check reports a consumer with no provider.
    let fleet = Fleet::from_yaml_str("web: 2.0.0").unwrap();
    let findings = validator.check_fleet(&fleet).unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f.message.contains("no deployed release provides it")),
        "{findings:?}"
    );
}

// 4. A graph's releases come from the registry, and no route passes a yanked one.

const ES_GRAPH: &str = "registry:\n  services:\n    es:\n      releases:\n\
\x20       - {version: 7.10.0}\n        - {version: 7.17.0, yanked: true}\n\
\x20       - {version: 8.0.0}\n\
graphs:\n  es:\n    releases: [7.17.0]\n    edges: [{from: '*', to: '*'}]\n    requiredStops:\n\
\x20     - {name: 7.17 before 8, stop: 7.17.*, into: '>=8.0.0'}\n";

#[test]
fn a_graph_never_routes_through_a_yanked_or_unregistered_release() {
    let validator = load(ES_GRAPH);
    let result = check(&validator, "es: 7.10.0", &[("es", "8.0.0")]);
    assert_eq!(result.verdict, Verdict::Blocked, "{result}");
    assert!(codes(&result).contains(&"path.no-route"), "{result}");
    // The yanked release is still a start.
    let result = check(&validator, "es: 7.17.0", &[("es", "8.0.0")]);
    assert_eq!(result.verdict, Verdict::Ok, "{result}");
    assert_eq!(hops(&result, "es"), ["8.0.0"]);
    // A release the registry does not have is refused, by path.
    let err = Catalog::parse(
        &ES_GRAPH.replace("releases: [7.17.0]", "releases: [7.10.0, 7.17.9]"),
        Format::Yaml,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "graphs.es.releases[1]: unknown version 7.17.9 of service \"es\": it is not in the \
         registry"
    );
    // A graph built by hand is checked when added, and its yanked releases are starts only.
    let catalog =
        Catalog::parse(&ES_GRAPH[..ES_GRAPH.find("graphs:").unwrap()], Format::Yaml).unwrap();
    let sel = |s: &str| serin_compat::Selector::parse(s, "test").unwrap();
    let graph = |releases: &[&str]| {
        serin_compat::UpgradeGraph::builder()
            .releases(releases.iter().map(|r| v(r)))
            .edges(sel("*"), sel("*"))
            .required_stop(serin_compat::path::RequiredStop {
                name: "7.17".into(),
                stop: sel("7.17.*"),
                into: sel(">=8.0.0"),
            })
            .build("graphs.es")
            .unwrap()
    };
    let base = || Validator::new(catalog.registry.clone(), catalog.rules.clone()).unwrap();
    let err = base()
        .with_graph("es", graph(&["7.10.0", "7.17.9", "8.0.0"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("graphs.es") && err.contains("7.17.9"), "{err}");
    let by_hand = base()
        .with_graph("es", graph(&["7.10.0", "7.17.0", "8.0.0"]))
        .unwrap();
    let result = check(&by_hand, "es: 7.10.0", &[("es", "8.0.0")]);
    assert_eq!(result.verdict, Verdict::Blocked, "{result}");
    let result = check(&by_hand, "es: 7.17.0", &[("es", "8.0.0")]);
    assert_eq!(result.verdict, Verdict::Ok, "{result}");
    // Nor does a route end at one; the explanation says why.
    let result = check(&by_hand, "es: 7.10.0", &[("es", "7.17.0")]);
    assert!(codes(&result).contains(&"registry.yanked"), "{result}");
    let no_route = result
        .findings
        .iter()
        .find(|f| f.code == "path.no-route")
        .unwrap_or_else(|| panic!("{result}"));
    let why = no_route.explanation.as_ref().unwrap().to_string();
    assert!(why.contains("7.17.0 is withdrawn (yanked)"), "{why}");
}

// 6. A pre-release is guarded by the required stops of its release.

#[test]
fn a_pre_release_target_passes_the_required_stops() {
    let validator = load(&ES.replace(
        "        - {version: 8.1.0}\n",
        "        - {version: 8.0.0-rc.1}\n        - {version: 7.17.1-rc.1}\n",
    ));
    let result = check(&validator, "es: 7.10.0", &[("es", "8.0.0-rc.1")]);
    assert_eq!(result.verdict, Verdict::Ok, "{result}");
    assert_eq!(hops(&result, "es"), ["7.17.0", "8.0.0-rc.1"]);
    let result = check(&validator, "es: 8.0.0-rc.1", &[("es", "8.0.0")]);
    assert_eq!(result.verdict, Verdict::Ok, "{result}");
    assert_eq!(hops(&result, "es"), ["8.0.0"]);
    // A candidate of the stop's minor is a stop too.
    let result = check(&validator, "es: 7.17.1-rc.1", &[("es", "8.0.0")]);
    assert_eq!(hops(&result, "es"), ["8.0.0"]);
}

// 7. A key written twice is refused, by name, wherever a document holds a map.

#[test]
fn duplicate_keys_are_refused_by_name() {
    let services = "registry:\n  services:\n    api:\n      releases: [{version: 1.0.0}]\n\
                    \x20   api:\n      releases: [{version: 2.0.0}]\n";
    let err = Catalog::parse(services, Format::Yaml)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("duplicate key services.api: each key may appear only once"),
        "{err}"
    );
    let graphs = "registry:\n  services:\n    api:\n      releases: [{version: 1.0.0}]\n\
                  graphs:\n  api: {edges: []}\n  api: {edges: []}\n";
    let err = Catalog::parse(graphs, Format::Yaml)
        .unwrap_err()
        .to_string();
    assert!(err.contains("duplicate key graphs.api"), "{err}");
    let json = r#"{"registry": {"services": {"api": {"releases": []}, "api": {"releases": []}}}}"#;
    let err = Catalog::parse(json, Format::Json).unwrap_err().to_string();
    assert!(err.contains("duplicate key services.api"), "{err}");
    let err = Fleet::from_yaml_str("api: 1.0.0\napi: 2.0.0")
        .unwrap_err()
        .to_string();
    assert!(err.contains("duplicate key fleet.api"), "{err}");
    let err = serde_json::from_str::<Fleet>(r#"{"api": "1.0.0", "api": "2.0.0"}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("duplicate key fleet.api"), "{err}");
    let err = serde_json::from_str::<Proposal>(r#"{"api": "1.0.0", "api": "2.0.0"}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("duplicate key proposal.api"), "{err}");
    let err = Fleet::from_yaml_str("kubelet: {a: 1}")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("fleet.kubelet: invalid version \"{…}\": it is a map"),
        "{err}"
    );
    // Distinct keys still load.
    let fleet = Fleet::from_yaml_str("api: 1.0.0\ndb: [1.0.0, 1.1.0]").unwrap();
    assert_eq!(fleet.running("db").len(), 2);
}

// 9. Messages name what they are about.

#[test]
fn a_fleet_version_written_as_a_number_is_named() {
    let err = Fleet::from_yaml_str("kubelet: 1.30").unwrap_err();
    assert!(
        matches!(err, serin_compat::Error::InvalidVersion { .. }),
        "{err:?}"
    );
    let err = err.to_string();
    assert!(
        err.starts_with("fleet.kubelet: invalid version \"1.3\": it is a number, not a version"),
        "{err}"
    );
    assert!(err.contains("\"1.30.0\""), "{err}");
    let err = Fleet::from_yaml_str("kubelet: [1.29.0, 1.30]")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("fleet.kubelet[1]: invalid version \"1.3\""),
        "{err}"
    );
    let err = Fleet::from_yaml_str("kubelet: true")
        .unwrap_err()
        .to_string();
    assert!(err.contains("it is a boolean"), "{err}");
    let err = serde_json::from_str::<Fleet>(r#"{"kubelet": 1.30}"#)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("fleet.kubelet: invalid version \"1.3\""),
        "{err}"
    );
}

#[test]
fn a_graph_cycle_is_named_along_its_edges() {
    let err = serin_compat::UpgradeGraph::builder()
        .releases(["1.5.0", "2.0.0", "10.0.0", "11.0.0"].map(v))
        .edge(v("1.5.0"), v("2.0.0"))
        .edge(v("2.0.0"), v("10.0.0"))
        .edge(v("10.0.0"), v("11.0.0"))
        .edge(v("10.0.0"), v("1.5.0"))
        .build("graphs.x")
        .unwrap_err()
        .to_string();
    assert_eq!(err, "graphs.x: cycle 1.5.0 -> 2.0.0 -> 10.0.0 -> 1.5.0");
}

// 10. Build metadata does not make a release.

#[test]
fn releases_that_differ_in_build_metadata_only_are_duplicates() {
    let yaml = "registry:\n  services:\n    api:\n      releases:\n\
                \x20       - {version: 1.0.0+b}\n        - {version: 1.0.0}\n        - {version: 1.0.0+a}\n";
    let err = Catalog::parse(yaml, Format::Yaml).unwrap_err().to_string();
    assert!(
        err.contains(
            "services.api.releases[1].version: duplicate release 1.0.0 (the same release as \
             1.0.0+b: build metadata does not set versions apart) of service \"api\""
        ),
        "{err}"
    );
    let mut registry = serin_compat::Registry::new();
    registry
        .add_release("api", serin_compat::Release::new(v("1.0.0")))
        .unwrap();
    let err = registry
        .add_release("api", serin_compat::Release::new(v("1.0.0+a")))
        .unwrap_err();
    assert!(
        matches!(err, serin_compat::Error::DuplicateRelease { .. }),
        "{err}"
    );
    // Nothing was added; pre-releases and other patches are still distinct.
    assert_eq!(registry.releases("api").count(), 1);
    for other in ["1.0.0-rc.1+a", "1.0.1+a"] {
        registry
            .add_release("api", serin_compat::Release::new(v(other)))
            .unwrap();
    }
    assert_eq!(registry.releases("api").count(), 3);
}

/// A binary that reports build metadata the registry does not list runs the registered release:
/// it is routed, checked and found in the registry as that release.
#[test]
fn a_running_version_with_build_metadata_is_its_registered_release() {
    let validator = load(SELF_SKEW);
    let result = check(&validator, "k: 1.28.0+build.7", &[("k", "1.30.0")]);
    assert_eq!(result.verdict, Verdict::Ok, "{result}");
    assert!(
        !codes(&result).contains(&"registry.unknown-running-version"),
        "{result}"
    );
    assert_eq!(hops(&result, "k"), ["1.29.0", "1.30.0"]);
    // Two builds of one release are one version of the fleet, not a mixed fleet.
    let result = check(
        &validator,
        "k: [1.28.0+build.7, 1.28.0+build.8]",
        &[("k", "1.30.0")],
    );
    assert_eq!(result.verdict, Verdict::Ok, "{result}");
    assert_eq!(hops(&result, "k"), ["1.29.0", "1.30.0"]);
}

/// A target that differs from the running version in build metadata only is the release that
/// runs: nothing moves, and no step deploys it again.
#[test]
fn a_target_with_build_metadata_of_the_running_release_is_no_move() {
    let validator = load(SELF_SKEW);
    for (fleet, target) in [
        ("k: 1.29.0", "1.29.0+build.7"),
        ("k: 1.29.0+build.7", "1.29.0"),
    ] {
        let result = check(&validator, fleet, &[("k", target)]);
        assert_eq!(codes(&result), ["proposal.no-op"], "{result}");
        assert!(result.order.is_empty(), "{result}");
        assert!(result.steps.is_empty(), "{result}");
    }
}

/// The breaking-change diff finds APIs, endpoints and fields by name: a name given twice would
/// hide the changes of one of them, so it is refused where it is written.
#[test]
fn a_name_given_twice_in_a_release_s_api_is_refused_naming_both() {
    let catalog = |provides: &str| {
        format!(
            "registry:\n  services:\n    api:\n      releases:\n\
             \x20       - version: 1.0.0\n          provides: {provides}\n"
        )
    };
    for (provides, path, first) in [
        (
            "[{name: orders, version: 1.0.0}, {name: orders, version: 2.0.0}]",
            "services.api.releases[0].provides[1].name",
            "provides[0] has the same name",
        ),
        (
            "[{name: orders, version: 1.0.0, endpoints: [{name: get}, {name: list}, {name: get}]}]",
            "services.api.releases[0].provides[0].endpoints[2].name",
            "endpoints[0] has the same name",
        ),
        (
            "[{name: orders, version: 1.0.0, endpoints: [{name: get, response: \
             [{name: id, type: string}, {name: id, type: int64}]}]}]",
            "services.api.releases[0].provides[0].endpoints[0].response[1].name",
            "response[0] has the same name",
        ),
    ] {
        let err = Catalog::parse(&catalog(provides), Format::Yaml)
            .unwrap_err()
            .to_string();
        assert!(err.contains(path) && err.contains(first), "{err}");
    }
    let mut registry = serin_compat::Registry::new();
    let api = serin_compat::registry::ProvidedApi::new("orders", v("1.0.0"));
    let err = registry
        .add_release(
            "api",
            serin_compat::Release::new(v("1.0.0"))
                .providing(api.clone())
                .providing(api),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("services.api.releases[1.0.0].provides[1].name"),
        "{err}"
    );
}
