//! An API that moves from one service to another in one change: `search` leaves `idx` (its
//! 2.0.0 no longer provides it) and arrives in `idx2` 1.1.0, while `web`, which does not move,
//! keeps calling it.

use semver::{Version, VersionReq};
use serin_compat::matrix::Requires;
use serin_compat::registry::ProvidedApi;
use serin_compat::steps::{StepKind, StepPhase};
use serin_compat::{
    Fleet, Matrix, Proposal, Registry, Release, Rule, Selector, Severity, UpgradeValidation,
    Validator, Verdict,
};

fn v(s: &str) -> Version {
    Version::parse(s).unwrap()
}

fn req(s: &str) -> VersionReq {
    VersionReq::parse(s).unwrap()
}

/// `idx` 1.0.0 provides search 1.2.0 and 2.0.0 nothing; `idx2` 1.0.0 provides `idx2_now` (if
/// any) and 1.1.0 provides `idx2_next`; `web` 1.0.0 calls search ^1.2.
fn registry(idx2_now: Option<&str>, idx2_next: Option<&str>) -> Registry {
    let mut reg = Registry::new();
    let providing = |version: &str, api: Option<&str>| {
        let release = Release::new(v(version));
        match api {
            Some(api) => release.providing(ProvidedApi::new("search", v(api))),
            None => release,
        }
    };
    reg.add_release("idx", providing("1.0.0", Some("1.2.0")))
        .unwrap();
    reg.add_release("idx", providing("2.0.0", None)).unwrap();
    reg.add_release("idx2", providing("1.0.0", idx2_now))
        .unwrap();
    reg.add_release("idx2", providing("1.1.0", idx2_next))
        .unwrap();
    reg.add_release(
        "web",
        Release::new(v("1.0.0")).consuming("search", req("^1.2")),
    )
    .unwrap();
    reg
}

fn fleet() -> Fleet {
    Fleet::new()
        .with("idx", v("1.0.0"))
        .with("idx2", v("1.0.0"))
        .with("web", v("1.0.0"))
}

fn both() -> Proposal {
    Proposal::new()
        .with("idx", v("2.0.0"))
        .with("idx2", v("1.1.0"))
}

fn order_names(result: &UpgradeValidation) -> Vec<Vec<&str>> {
    result
        .order
        .iter()
        .map(|g| g.iter().map(|m| m.service.as_str()).collect())
        .collect()
}

fn find<'a>(result: &'a UpgradeValidation, code: &str) -> Option<&'a serin_compat::Finding> {
    result.findings.iter().find(|f| f.code == code)
}

#[test]
fn an_api_handed_over_passes_with_the_new_provider_first() {
    let validator = Validator::new(registry(None, Some("1.3.0")), Matrix::default()).unwrap();
    let result = validator.validate(&fleet(), &both()).unwrap();
    assert_eq!(result.verdict, Verdict::OkWithWarnings, "{result}");
    assert_eq!(order_names(&result), [["idx2"], ["idx"]], "{result}");
    assert!(find(&result, "breaking.api-removed").is_none(), "{result}");
    let moved = find(&result, "breaking.api-moved").unwrap();
    assert_eq!(moved.severity, Severity::Warn);
    assert_eq!(
        moved.message,
        "api search 1.2.0 is no longer provided by idx: idx2 1.1.0 provides search 1.3.0, which \
         every consumer in the target state accepts"
    );
    let handover: Vec<(StepPhase, &str, &str)> = result
        .steps
        .iter()
        .filter(|s| s.kind == StepKind::Handover)
        .map(|s| (s.phase, s.service.as_str(), s.text.as_str()))
        .collect();
    assert_eq!(
        handover,
        [
            (
                StepPhase::Before,
                "idx2",
                "upgrade idx2 first: it takes over api search from idx; idx2 1.1.0 (group 1) \
                 must serve it before idx 2.0.0 (group 2), which no longer provides it, is \
                 deployed"
            ),
            (
                StepPhase::After,
                "idx",
                "api search is served by idx2 now: point any caller that still addresses idx \
                 for it at idx2"
            ),
        ]
    );
}

#[test]
fn a_new_provider_of_a_version_the_consumer_does_not_accept_still_blocks() {
    // A new major, and an older minor below the consumer's ^1.2.
    for offered in ["2.0.0", "1.1.0"] {
        let validator = Validator::new(registry(None, Some(offered)), Matrix::default()).unwrap();
        let result = validator.validate(&fleet(), &both()).unwrap();
        assert_eq!(result.verdict, Verdict::Blocked, "{offered}: {result}");
        let removed = find(&result, "breaking.api-removed").unwrap();
        assert_eq!(removed.severity, Severity::Error);
        assert!(find(&result, "breaking.api-moved").is_none(), "{result}");
        assert!(
            result.findings.iter().any(|f| f.code == "api.requires"
                && f.evidence.iter().any(|e| e.contains(&format!(
                    "web 1.0.0 calls api search ^1.2 but idx2 1.1.0 provides search {offered}"
                )))),
            "{offered}: {result}"
        );
        assert!(
            !result.steps.iter().any(|s| s.kind == StepKind::Handover),
            "{result}"
        );
    }
}

#[test]
fn a_handover_caught_in_a_cycle_is_refused_by_name() {
    let reg = registry(None, Some("1.3.0"));
    // idx2 1.1.0 reads what idx 2.0.0 writes: it cannot move first.
    let rule = Rule::Requires(Requires {
        id: Some("idx2-reads-idx-format".into()),
        service: "idx2".into(),
        versions: Selector::parse(">=1.1.0", "test").unwrap(),
        dependency: "idx".into(),
        req: Selector::parse(">=2.0.0", "test").unwrap(),
        reason: None,
    });
    let matrix = Matrix::new(vec![rule], &reg).unwrap();
    let validator = Validator::new(reg, matrix).unwrap();
    let result = validator.validate(&fleet(), &both()).unwrap();
    assert_eq!(result.verdict, Verdict::Blocked, "{result}");
    assert!(result.order.is_empty(), "{result}");
    assert!(find(&result, "order.cycle").is_some(), "{result}");
    let refused = find(&result, "order.handover").unwrap();
    assert_eq!(refused.severity, Severity::Error);
    assert_eq!(refused.subject, "api search: idx -> idx2");
    assert_eq!(
        refused.message,
        "api search cannot move from idx to idx2 in this change: idx2 must be upgraded before \
         idx stops providing it, and the services idx, idx2 cannot all be ordered"
    );
    let why = refused.explanation.as_ref().unwrap().to_string();
    assert!(
        why.contains(
            "idx2 must move before idx because otherwise idx 2.0.0 no longer provides api \
             search, which web 1.0.0 calls (^1.2), and idx2 provides it only once it runs 1.1.0"
        ),
        "{why}"
    );
    assert!(
        why.contains("idx must move before idx2 because otherwise idx2 1.1.0 needs idx >=2.0.0"),
        "{why}"
    );
    assert!(
        refused
            .recipe
            .as_deref()
            .unwrap()
            .contains("in two changes")
    );
}

#[test]
fn a_plain_removal_still_blocks() {
    // idx2 provides nothing: whether it moves too or not, web loses search.
    let validator = Validator::new(registry(None, None), Matrix::default()).unwrap();
    for proposal in [both(), Proposal::new().with("idx", v("2.0.0"))] {
        let result = validator.validate(&fleet(), &proposal).unwrap();
        assert_eq!(result.verdict, Verdict::Blocked, "{result}");
        assert_eq!(
            find(&result, "breaking.api-removed").unwrap().severity,
            Severity::Error
        );
        let f = find(&result, "api.requires").unwrap();
        assert_eq!(f.subject, "idx 2.0.0");
        assert!(find(&result, "order.handover").is_none(), "{result}");
    }
    // A new provider that is not part of the change does not take anything over.
    let validator = Validator::new(registry(None, Some("1.3.0")), Matrix::default()).unwrap();
    let result = validator
        .validate(&fleet(), &Proposal::new().with("idx", v("2.0.0")))
        .unwrap();
    assert_eq!(result.verdict, Verdict::Blocked, "{result}");
    assert!(find(&result, "breaking.api-removed").is_some(), "{result}");
}

#[test]
fn an_api_another_service_already_serves_is_no_removal_and_needs_no_order() {
    let validator =
        Validator::new(registry(Some("1.3.0"), Some("1.3.0")), Matrix::default()).unwrap();
    let result = validator
        .validate(&fleet(), &Proposal::new().with("idx", v("2.0.0")))
        .unwrap();
    assert_eq!(result.verdict, Verdict::OkWithWarnings, "{result}");
    assert_eq!(
        find(&result, "breaking.api-moved").unwrap().message,
        "api search 1.2.0 is no longer provided by idx: idx2 1.0.0 provides search 1.3.0, which \
         every consumer in the target state accepts"
    );
    // Both moving: idx2 serves search throughout, so nothing waits for it.
    let result = validator.validate(&fleet(), &both()).unwrap();
    assert_eq!(order_names(&result), [["idx", "idx2"]], "{result}");
    assert!(
        !result.steps.iter().any(|s| s.kind == StepKind::Handover),
        "{result}"
    );
}

/// Before its move, a service runs what it runs now: a new provider serves a consumer only once
/// it has moved, even when every release its move passes provides the API.
#[test]
fn new_providers_move_before_a_consumer_that_needs_them() {
    let mut reg = Registry::new();
    for g in ["g1", "g2"] {
        reg.add_release(g, Release::new(v("1.0.0"))).unwrap();
        reg.add_release(
            g,
            Release::new(v("1.1.0")).providing(ProvidedApi::new("geo", v("1.0.0"))),
        )
        .unwrap();
    }
    reg.add_release("web", Release::new(v("1.0.0"))).unwrap();
    reg.add_release("web", Release::new(v("2.0.0")).consuming("geo", req("^1")))
        .unwrap();
    let validator = Validator::new(reg, Matrix::default()).unwrap();
    let fleet = Fleet::new()
        .with("g1", v("1.0.0"))
        .with("g2", v("1.0.0"))
        .with("web", v("1.0.0"));
    let proposal = Proposal::new()
        .with("g1", v("1.1.0"))
        .with("g2", v("1.1.0"))
        .with("web", v("2.0.0"));
    let result = validator.validate(&fleet, &proposal).unwrap();
    assert_eq!(result.verdict, Verdict::Ok, "{result}");
    assert_eq!(order_names(&result), vec![vec!["g1", "g2"], vec!["web"]]);
}

/// With no consumer in the registry, the callers the removed API was written for are the
/// measure: a new provider must offer a version `^` the removed one accepts.
#[test]
fn an_api_nobody_in_the_registry_calls_moves_only_to_a_compatible_version() {
    for (offered, moved) in [("1.3.0", true), ("2.0.0", false)] {
        let mut reg = Registry::new();
        reg.add_release(
            "idx",
            Release::new(v("1.0.0")).providing(ProvidedApi::new("search", v("1.2.0"))),
        )
        .unwrap();
        reg.add_release("idx", Release::new(v("2.0.0"))).unwrap();
        reg.add_release("idx2", Release::new(v("1.0.0"))).unwrap();
        reg.add_release(
            "idx2",
            Release::new(v("1.1.0")).providing(ProvidedApi::new("search", v(offered))),
        )
        .unwrap();
        let validator = Validator::new(reg, Matrix::default()).unwrap();
        let fleet = Fleet::new()
            .with("idx", v("1.0.0"))
            .with("idx2", v("1.0.0"));
        let result = validator.validate(&fleet, &both()).unwrap();
        if moved {
            assert_eq!(result.verdict, Verdict::OkWithWarnings, "{result}");
            assert_eq!(
                find(&result, "breaking.api-moved").unwrap().message,
                "api search 1.2.0 is no longer provided by idx: idx2 1.1.0 provides search \
                 1.3.0, compatible with 1.2.0 (^1.2.0); no consumer in the registry calls it"
            );
        } else {
            assert_eq!(result.verdict, Verdict::Blocked, "{result}");
            assert!(find(&result, "breaking.api-removed").is_some(), "{result}");
        }
    }
}
