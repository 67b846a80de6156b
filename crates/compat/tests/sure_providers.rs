//! A consumer of an API is served only by a provider sure to offer it at that point: a provider
//! that moves in the same group may still run any state of its route, so one that offers the
//! API only at the end of its route does not count for the consumer moving beside it.

use crate::catalog_support;

use catalog_support::{check, load};
use serin_compat::Verdict;

/// `idx` offers `search` only in 2.0.0, which it reaches through the required stop 1.5.
const SEARCH: &str = "registry:\n  services:\n    web:\n      releases:\n\
\x20       - {version: 1.0.0}\n\
\x20       - {version: 2.0.0, consumes: [{api: search, version: ^1}]}\n\
\x20   idx:\n      releases:\n        - {version: 1.0.0}\n        - {version: 1.5.0}\n\
\x20       - {version: 2.0.0, provides: [{name: search, version: 1.0.0}]}\n\
\x20   idx2:\n      releases:\n        - {version: 1.0.0}\n\
\x20       - {version: 1.1.0, provides: [{name: search, version: 1.2.0}]}\n\
graphs:\n  idx:\n    edges: [{from: '*', to: '*'}]\n    requiredStops:\n\
\x20     - {name: 1.5 before 2, stop: 1.5.*, into: '>=2.0.0'}\n";

fn groups(result: &serin_compat::UpgradeValidation) -> Vec<Vec<&str>> {
    result
        .order
        .iter()
        .map(|g| g.iter().map(|m| m.service.as_str()).collect())
        .collect()
}

#[test]
fn a_provider_that_offers_the_api_only_at_the_end_of_its_route_moves_first() {
    let validator = load(SEARCH);
    let result = check(
        &validator,
        "{web: 1.0.0, idx: 1.0.0}",
        &[("web", "2.0.0"), ("idx", "2.0.0")],
    );
    // web 2.0.0 may not run while idx is still at 1.0.0 or 1.5.0: idx moves first.
    assert_eq!(result.verdict, Verdict::Ok, "{result}");
    assert_eq!(groups(&result), [vec!["idx"], vec!["web"]], "{result}");
}

#[test]
fn a_provider_sure_to_offer_the_api_throughout_serves_a_consumer_beside_it() {
    let validator = load(SEARCH);
    // idx2 offers the API before and after its move: web may move beside it.
    let result = check(
        &validator,
        "{web: 1.0.0, idx: 1.0.0, idx2: 1.1.0}",
        &[("web", "2.0.0"), ("idx", "2.0.0")],
    );
    assert_eq!(result.verdict, Verdict::Ok, "{result}");
}
