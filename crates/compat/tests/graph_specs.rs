//! Upgrade graphs written in a catalog: every entry does what it says, or is refused by name.

use crate::catalog_support;

use catalog_support::{check, codes, load};
use serin_compat::{Catalog, Format, Verdict};

fn catalog(releases: &str, graph: &str) -> String {
    format!("registry:\n  services:\n    a: {{releases: [{releases}]}}\ngraphs:\n  a:\n{graph}")
}

fn refused(text: &str) -> String {
    Catalog::parse(text, Format::Yaml)
        .expect_err("the catalog should be refused")
        .to_string()
}

#[test]
fn an_edge_written_downwards_makes_no_edge_and_is_refused() {
    let text = catalog(
        "{version: 1.0.0}, {version: 2.0.0}",
        "    edges: [{from: '*', to: '*'}, {from: 2.0.0, to: 1.0.0}]\n",
    );
    assert_eq!(
        refused(&text),
        "graphs.a.edges[1]: invalid value \"=2.0.0 -> =1.0.0\": every release it leads from is \
         higher than every release it leads to, and edges lead only to higher releases (the \
         graph holds upgrades)"
    );
    // A service with one release has no edge yet, and its rules wait for the next.
    let text = catalog("{version: 1.0.0}", "    edges: [{from: '*', to: '*'}]\n");
    Catalog::parse(&text, Format::Yaml).unwrap();
    // Ranges that overlap make the edges that go up.
    let text = catalog(
        "{version: 1.0.0}, {version: 2.0.0}",
        "    edges: [{from: '>=1.0.0', to: '<=2.0.0'}]\n",
    );
    Catalog::parse(&text, Format::Yaml).unwrap();
}

#[test]
fn a_yanked_release_an_edge_names_is_left_out_of_routes_not_out_of_the_catalog() {
    let text = catalog(
        "{version: 1.0.0}, {version: 1.1.0, yanked: true}, {version: 1.2.0}",
        "    edges: [{from: 1.0.0, to: 1.1.0}, {from: 1.1.0, to: 1.2.0}, {from: 1.0.0, to: 1.2.0}]\n",
    );
    let validator = load(&text);
    // The way off the yanked release is the edge written for it.
    let result = check(&validator, "a: 1.1.0", &[("a", "1.2.0")]);
    assert_eq!(result.verdict, Verdict::Ok, "{result}");
    assert_eq!(result.paths["a"].hops, [catalog_support::v("1.2.0")]);
    let result = check(&validator, "a: 1.0.0", &[("a", "1.2.0")]);
    assert_eq!(result.verdict, Verdict::Ok, "{result}");
    // No route leads to it, and the explanation says why.
    let result = check(&validator, "a: 1.0.0", &[("a", "1.1.0")]);
    assert_eq!(result.verdict, Verdict::Blocked, "{result}");
    assert!(codes(&result).contains(&"registry.yanked"), "{result}");
    let no_route = result
        .findings
        .iter()
        .find(|f| f.code == "path.no-route")
        .unwrap_or_else(|| panic!("{result}"));
    let why = no_route.explanation.as_ref().unwrap().to_string();
    assert!(why.contains("1.1.0 is withdrawn (yanked)"), "{why}");
}

#[test]
fn a_block_or_a_risk_says_what_it_is() {
    let releases = "{version: 1.0.0}, {version: 2.0.0}";
    let edges = "    edges: [{from: '*', to: '*'}]\n";
    let text = catalog(
        releases,
        &format!("{edges}    blocked: [{{from: 1.0.0, to: 2.0.0, reason: ' '}}]\n"),
    );
    assert_eq!(
        refused(&text),
        "graphs.a.blocked[0].reason: invalid value \" \": say why the edge is blocked; the \
         explanation of a missing route quotes it"
    );
    for (risk, field) in [
        ("{name: '', message: data loss}", "name"),
        ("{name: CacheCorruption, message: ''}", "message"),
    ] {
        let text = catalog(
            releases,
            &format!("{edges}    conditional: [{{from: 1.0.0, to: 2.0.0, risks: [{risk}]}}]\n"),
        );
        let err = refused(&text);
        assert!(
            err.starts_with(&format!(
                "graphs.a.conditional[0].risks[0].{field}: invalid value"
            )),
            "{err}"
        );
    }
}

#[test]
fn a_block_or_a_risk_that_matches_no_release_is_refused_as_an_edge_is() {
    let releases = "{version: 7.10.0}, {version: 7.17.0}";
    let edges = "    edges: [{from: '*', to: '*'}]\n";
    // A typo (7.71.0 for 7.17.0) would leave open the edge the block was written to close.
    let text = catalog(
        releases,
        &format!("{edges}    blocked: [{{from: 7.10.0, to: 7.71.0, reason: snapshots}}]\n"),
    );
    assert_eq!(
        refused(&text),
        "graphs.a.blocked[0]: invalid value \"=7.10.0 -> =7.71.0\": matches no release on one side"
    );
    let text = catalog(
        releases,
        &format!(
            "{edges}    conditional: [{{from: 6.8.0, to: 7.17.0, risks: [{{name: r, message: m}}]}}]\n"
        ),
    );
    assert_eq!(
        refused(&text),
        "graphs.a.conditional[0]: invalid value \"=6.8.0 -> =7.17.0\": matches no release on one \
         side"
    );
}

#[test]
fn a_required_stop_has_a_name() {
    let text = catalog(
        "{version: 7.10.0}, {version: 7.17.0}, {version: 8.0.0}",
        "    edges: [{from: '*', to: '*'}]\n    requiredStops: [{name: ' ', stop: 7.17.*, into: '>=8.0.0'}]\n",
    );
    assert_eq!(
        refused(&text),
        "graphs.a.requiredStops[0].name: invalid value \" \": name the stop (`7.17 before 8`); \
         a route refused for skipping it names it"
    );
}

#[test]
fn a_route_through_a_deprecated_release_warns_as_deploying_it_does() {
    let text = "registry:\n  services:\n    es:\n      releases:\n\
\x20       - {version: 7.10.0}\n        - {version: 7.17.0, deprecated: true}\n\
\x20       - {version: 8.0.0}\n\
graphs:\n  es:\n    edges: [{from: '*', to: '*'}]\n    requiredStops:\n\
\x20     - {name: 7.17 before 8, stop: 7.17.*, into: '>=8.0.0'}\n";
    let validator = load(text);
    let result = check(&validator, "es: 7.10.0", &[("es", "8.0.0")]);
    assert_eq!(result.verdict, Verdict::OkWithWarnings, "{result}");
    let f = result
        .findings
        .iter()
        .find(|f| f.code == "registry.deprecated")
        .unwrap_or_else(|| panic!("{result}"));
    assert_eq!(f.subject, "es 7.17.0");
    assert_eq!(
        f.message,
        "es 7.17.0 is deprecated, and the route to 8.0.0 deploys it"
    );
    // Deploying it as the target warns once.
    let result = check(&validator, "es: 7.10.0", &[("es", "7.17.0")]);
    assert_eq!(codes(&result), ["registry.deprecated"], "{result}");
}

#[test]
fn a_stop_out_of_reach_is_explained_by_what_keeps_routes_from_it() {
    let text = catalog(
        "{version: 7.10.0}, {version: 7.17.0}, {version: 8.0.0}",
        "    edges: [{from: '*', to: '*'}]\n\
         \x20   blocked: [{from: 7.10.0, to: 7.17.*, reason: snapshots taken by 7.10 do not restore}]\n\
         \x20   requiredStops: [{name: 7.17 before 8, stop: 7.17.*, into: '>=8.0.0'}]\n",
    );
    let result = check(&load(&text), "a: 7.10.0", &[("a", "8.0.0")]);
    let no_route = result
        .findings
        .iter()
        .find(|f| f.code == "path.no-route")
        .unwrap_or_else(|| panic!("{result}"));
    assert_eq!(
        no_route.explanation.as_ref().unwrap().to_string(),
        "Because the edge 7.10.0 -> 7.17.0 is unusable because blocked: snapshots taken by 7.10 \
         do not restore, no release of the required stop \"7.17 before 8\" (7.17.*) is reachable \
         from 7.10.0. So, because the edge 7.10.0 -> 8.0.0 is unusable because it would skip the \
         required stop \"7.17 before 8\" (routes into >=8.0.0 pass 7.17.*) and no release of the \
         required stop \"7.17 before 8\" (7.17.*) is reachable from 7.10.0, 8.0.0 cannot be \
         reached from 7.10.0."
    );
}
