//! Behaviour of the validator: order, explanations, cycles, conflicts, migrations, breaking
//! changes and bad input.

use semver::{Version, VersionReq};
use serin_compat::breaking::{self, Endpoint, Field};
use serin_compat::matrix::{OneMinorAtATime, PairRule, Requires, Target};
use serin_compat::path::UpgradeGraph;
use serin_compat::registry::ProvidedApi;
use serin_compat::steps::StepKind;
use serin_compat::{
    Error, Fleet, Matrix, Proposal, Registry, Release, Rule, Selector, Severity, UpgradeValidation,
    Validator, Verdict,
};

fn v(s: &str) -> Version {
    Version::parse(s).unwrap()
}

fn sel(s: &str) -> Selector {
    Selector::parse(s, "test").unwrap()
}

fn registry(entries: &[(&str, &[&str])]) -> Registry {
    let mut r = Registry::new();
    for (service, versions) in entries {
        for ver in *versions {
            r.add_release(service, Release::new(v(ver))).unwrap();
        }
    }
    r
}

fn requires(service: &str, versions: &str, dependency: &str, req: &str) -> Rule {
    Rule::Requires(Requires {
        id: Some(format!("{service}-needs-{dependency}")),
        service: service.into(),
        versions: sel(versions),
        dependency: dependency.into(),
        req: sel(req),
        reason: None,
    })
}

fn order_names(result: &UpgradeValidation) -> Vec<Vec<String>> {
    result
        .order
        .iter()
        .map(|g| g.iter().map(|m| m.service.clone()).collect())
        .collect()
}

fn codes(result: &UpgradeValidation) -> Vec<&str> {
    result.findings.iter().map(|f| f.code.as_str()).collect()
}

#[test]
fn derivation_names_the_blocked_dependency_path() {
    let reg = registry(&[
        ("a", &["1.0.0", "2.0.0"]),
        ("b", &["1.2.0", "1.3.0", "1.4.0"]),
    ]);
    let matrix = Matrix::new(vec![requires("a", ">=2.0.0", "b", ">=1.4")], &reg).unwrap();
    let graph = UpgradeGraph::builder()
        .releases(["1.2.0", "1.3.0", "1.4.0"].map(v))
        .edges(sel("*"), sel("*"))
        .block(
            sel("<1.4.0"),
            sel("1.4.0"),
            "1.4.0 rewrites the ledger format",
        )
        .build("graphs.b")
        .unwrap();
    let validator = Validator::new(reg, matrix)
        .unwrap()
        .with_graph("b", graph)
        .unwrap();
    let fleet = Fleet::new().with("a", v("1.0.0")).with("b", v("1.2.0"));
    let result = validator
        .validate(&fleet, &Proposal::new().with("a", v("2.0.0")))
        .unwrap();
    assert_eq!(result.verdict, Verdict::Blocked);
    let finding = result
        .findings
        .iter()
        .find(|f| f.code == "matrix.requires")
        .unwrap();
    let text = finding.explanation.as_ref().unwrap().to_string();
    assert!(
        text.contains("the edge 1.2.0 -> 1.4.0 is unusable because blocked: 1.4.0 rewrites"),
        "{text}"
    );
    assert!(
        text.contains("1.4.0 cannot be reached from 1.2.0"),
        "{text}"
    );
    assert!(
        text.contains("a 2.0.0 needs b >=1.4 (rule a-needs-b)")
            && text.ends_with("a 2.0.0 cannot be deployed while b is at 1.2.0."),
        "{text}"
    );
}

#[test]
fn recipe_suggests_upgrading_the_dependency_when_reachable() {
    let reg = registry(&[("a", &["1.0.0", "2.0.0"]), ("b", &["1.2.0", "1.4.0"])]);
    let matrix = Matrix::new(vec![requires("a", ">=2.0.0", "b", ">=1.4")], &reg).unwrap();
    let validator = Validator::new(reg, matrix).unwrap();
    let fleet = Fleet::new().with("a", v("1.0.0")).with("b", v("1.2.0"));
    let result = validator
        .validate(&fleet, &Proposal::new().with("a", v("2.0.0")))
        .unwrap();
    let f = result
        .findings
        .iter()
        .find(|f| f.code == "matrix.requires")
        .unwrap();
    assert_eq!(
        f.recipe.as_deref(),
        Some("upgrade b to 1.4.0 in the same change")
    );
    // Following the recipe works, and b goes first.
    let both = Proposal::new().with("a", v("2.0.0")).with("b", v("1.4.0"));
    let result = validator.validate(&fleet, &both).unwrap();
    assert_eq!(result.verdict, Verdict::Ok, "{result}");
    assert_eq!(order_names(&result), vec![vec!["b"], vec!["a"]]);
}

#[test]
fn api_versions_order_provider_before_consumer() {
    let provides = |api_version: &str| ProvidedApi::new("payments", v(api_version));
    let mut reg = Registry::new();
    reg.add_release("pay", Release::new(v("1.5.0")).providing(provides("1.5.0")))
        .unwrap();
    reg.add_release("pay", Release::new(v("1.9.0")).providing(provides("1.9.0")))
        .unwrap();
    reg.add_release(
        "api",
        Release::new(v("1.0.0")).consuming("payments", VersionReq::parse("^1.0").unwrap()),
    )
    .unwrap();
    reg.add_release(
        "api",
        Release::new(v("2.0.0")).consuming("payments", VersionReq::parse("^1.9").unwrap()),
    )
    .unwrap();
    let validator = Validator::new(reg, Matrix::default()).unwrap();
    let fleet = Fleet::new().with("api", v("1.0.0")).with("pay", v("1.5.0"));
    let proposal = Proposal::new()
        .with("api", v("2.0.0"))
        .with("pay", v("1.9.0"));
    let result = validator.validate(&fleet, &proposal).unwrap();
    assert_eq!(result.verdict, Verdict::Ok, "{result}");
    assert_eq!(order_names(&result), vec![vec!["pay"], vec!["api"]]);
    // Alone, the consumer is blocked and the reason names the API.
    let result = validator
        .validate(&fleet, &Proposal::new().with("api", v("2.0.0")))
        .unwrap();
    assert_eq!(result.verdict, Verdict::Blocked);
    assert!(result.findings.iter().any(|f| {
        f.code == "api.requires"
            && f.evidence
                .iter()
                .any(|e| e.contains("calls api payments ^1.9"))
    }));
}

#[test]
fn ordering_cycle_is_named() {
    let reg = registry(&[
        ("a", &["1.0.0", "2.0.0"]),
        ("b", &["1.0.0", "2.0.0"]),
        ("c", &["1.0.0", "2.0.0"]),
    ]);
    let rules = vec![
        requires("a", ">=2.0.0", "b", ">=2.0.0"),
        requires("b", ">=2.0.0", "c", ">=2.0.0"),
        requires("c", ">=2.0.0", "a", ">=2.0.0"),
    ];
    let validator = Validator::new(reg.clone(), Matrix::new(rules, &reg).unwrap()).unwrap();
    let fleet = Fleet::new()
        .with("a", v("1.0.0"))
        .with("b", v("1.0.0"))
        .with("c", v("1.0.0"));
    let proposal = Proposal::new()
        .with("a", v("2.0.0"))
        .with("b", v("2.0.0"))
        .with("c", v("2.0.0"));
    let result = validator.validate(&fleet, &proposal).unwrap();
    assert_eq!(result.verdict, Verdict::Blocked);
    let cycle = result
        .findings
        .iter()
        .find(|f| f.code == "order.cycle")
        .unwrap();
    assert_eq!(cycle.subject, "a -> c -> b -> a");
    let why = cycle.explanation.as_ref().unwrap().to_string();
    assert!(
        why.contains("a must move before c because otherwise c 2.0.0 needs a >=2.0.0"),
        "{why}"
    );
    assert!(result.order.is_empty());
}

#[test]
fn deny_conflict_has_no_order() {
    let reg = registry(&[("a", &["1.0.0", "2.0.0"]), ("b", &["1.0.0", "2.0.0"])]);
    let rules = vec![
        Rule::Deny(PairRule {
            id: Some("old-b-breaks-new-a".into()),
            a: Target::new("a", sel("2.0.0")),
            b: Target::new("b", sel("<2")),
            reason: Some("wire format".into()),
        }),
        requires("b", ">=2.0.0", "a", ">=2.0.0"),
    ];
    let validator = Validator::new(reg.clone(), Matrix::new(rules, &reg).unwrap()).unwrap();
    let fleet = Fleet::new().with("a", v("1.0.0")).with("b", v("1.0.0"));
    let proposal = Proposal::new().with("a", v("2.0.0")).with("b", v("2.0.0"));
    let result = validator.validate(&fleet, &proposal).unwrap();
    assert_eq!(result.verdict, Verdict::Blocked);
    let f = result
        .findings
        .iter()
        .find(|f| f.code == "order.conflict")
        .unwrap();
    let why = f.explanation.as_ref().unwrap().to_string();
    assert!(
        why.contains("a 2.0.0 is denied with b 1.0.0 (rule old-b-breaks-new-a: wire format)"),
        "{why}"
    );
    assert!(why.contains("cannot be upgraded in either order"), "{why}");
}

#[test]
fn allow_exempts_and_deny_beats_allow() {
    let reg = registry(&[("a", &["1.0.0", "2.0.0"]), ("b", &["1.2.0", "1.4.0"])]);
    let allow = Rule::Allow(PairRule {
        id: Some("tested-together".into()),
        a: Target::new("a", sel("2.0.0")),
        b: Target::new("b", sel("1.2.0")),
        reason: None,
    });
    let rules = vec![requires("a", ">=2.0.0", "b", ">=1.4"), allow.clone()];
    let validator = Validator::new(reg.clone(), Matrix::new(rules, &reg).unwrap()).unwrap();
    let fleet = Fleet::new().with("a", v("1.0.0")).with("b", v("1.2.0"));
    let proposal = Proposal::new().with("a", v("2.0.0"));
    assert_eq!(
        validator.validate(&fleet, &proposal).unwrap().verdict,
        Verdict::Ok
    );

    let deny = Rule::Deny(PairRule {
        id: Some("broken".into()),
        a: Target::new("a", sel(">=2")),
        b: Target::new("b", sel("*")),
        reason: None,
    });
    let matrix = Matrix::new(vec![allow, deny], &reg).unwrap();
    let validator = Validator::new(reg, matrix).unwrap();
    let result = validator.validate(&fleet, &proposal).unwrap();
    assert_eq!(result.verdict, Verdict::Blocked);
    assert!(
        result
            .findings
            .iter()
            .any(|f| f.message.contains("a 2.0.0 cannot be deployed")
                && f.evidence.iter().any(|e| e.contains("contradictory rules")))
    );
}

#[test]
fn missing_dependency_and_new_service() {
    let reg = registry(&[("a", &["1.0.0"]), ("b", &["1.0.0"])]);
    let matrix = Matrix::new(vec![requires("a", "*", "b", "*")], &reg).unwrap();
    let validator = Validator::new(reg, matrix).unwrap();
    let result = validator
        .validate(&Fleet::new(), &Proposal::new().with("a", v("1.0.0")))
        .unwrap();
    assert_eq!(result.verdict, Verdict::Blocked);
    assert!(
        result
            .findings
            .iter()
            .any(|f| f.message.contains("while b is not deployed"))
    );
    let both = Proposal::new().with("a", v("1.0.0")).with("b", v("1.0.0"));
    let result = validator.validate(&Fleet::new(), &both).unwrap();
    assert_eq!(result.verdict, Verdict::Ok, "{result}");
    assert_eq!(order_names(&result), vec![vec!["b"], vec!["a"]]);
    assert!(result.order[0][0].from.is_empty());
}

#[test]
fn bad_input_is_an_error_that_names_it() {
    let reg = registry(&[("a", &["1.0.0", "2.0.0"])]);
    let validator = Validator::new(reg.clone(), Matrix::default()).unwrap();
    let err = validator
        .validate(&Fleet::new().with("zz", v("1.0.0")), &Proposal::new())
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnknownService { path, .. } if path == "fleet.zz"),
        "{err}"
    );
    let err = validator
        .validate(&Fleet::new(), &Proposal::new().with("a", v("9.9.9")))
        .unwrap_err();
    assert!(err.to_string().contains("proposal.a") && err.to_string().contains("9.9.9"));
    let err = Matrix::new(vec![requires("a", "*", "a", "*")], &reg).unwrap_err();
    assert!(
        err.to_string().contains("rules[0].requires.dependency"),
        "{err}"
    );
    assert!(
        Validator::new(reg, Matrix::default())
            .unwrap()
            .with_graph("nope", UpgradeGraph::builder().build("g").unwrap())
            .is_err()
    );
}

#[test]
fn existing_violations_warn_and_check_fleet_reports_them() {
    let reg = registry(&[
        ("a", &["1.0.0", "1.1.0"]),
        ("b", &["1.0.0"]),
        ("c", &["1.0.0", "1.1.0"]),
    ]);
    let matrix = Matrix::new(vec![requires("a", "*", "b", ">=2")], &reg).unwrap();
    let validator = Validator::new(reg, matrix).unwrap();
    let fleet = Fleet::new()
        .with("a", v("1.0.0"))
        .with("b", v("1.0.0"))
        .with("c", v("1.0.0"));
    assert_eq!(validator.check_fleet(&fleet).unwrap().len(), 1);
    let result = validator
        .validate(&fleet, &Proposal::new().with("c", v("1.1.0")))
        .unwrap();
    assert_eq!(result.verdict, Verdict::OkWithWarnings);
    assert!(codes(&result).contains(&"matrix.requires.existing"));
}

#[test]
fn migrations_become_findings_and_steps() {
    let mut reg = Registry::new();
    reg.add_release("api", Release::new(v("1.0.0")).with_schema_version(11))
        .unwrap();
    reg.add_release(
        "api",
        Release::new(v("1.1.0"))
            .with_schema_version(12)
            .with_migration(
                "0012_email",
                "SET lock_timeout = '1s';\nALTER TABLE users ADD COLUMN email text;\n\
                 ALTER TABLE users DROP COLUMN legacy_mail;",
            ),
    )
    .unwrap();
    reg.add_release(
        "api",
        Release::new(v("1.2.0")).with_migration("0013_idx", "CREATE INDEX i ON users (email);"),
    )
    .unwrap();
    reg.add_release(
        "api",
        Release::new(v("1.3.0")).with_migration("0014_bad", "ALTER TABLE ;"),
    )
    .unwrap();
    reg.add_release(
        "api",
        Release::new(v("1.4.0")).with_migration(
            "0015_operators",
            "SET lock_timeout = '1s';\n-- serin:ignore unparsable-statement\n\
             CREATE OPERATOR === (LEFTARG = int, RIGHTARG = int, FUNCTION = int4eq);",
        ),
    )
    .unwrap();
    let validator = Validator::new(reg, Matrix::default()).unwrap();
    let fleet = Fleet::new().with("api", v("1.0.0"));

    let result = validator
        .validate(&fleet, &Proposal::new().with("api", v("1.1.0")))
        .unwrap();
    assert_eq!(result.verdict, Verdict::OkWithWarnings, "{result}");
    let kinds: Vec<StepKind> = result.steps.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        vec![
            StepKind::Backup,
            StepKind::ExpandMigration,
            StepKind::Deploy,
            StepKind::ContractMigration
        ]
    );
    let drop = result
        .findings
        .iter()
        .find(|f| f.code == "sql.ban-drop-column")
        .unwrap();
    assert_eq!(
        drop.subject,
        "api 1.1.0 migration 0012_email statement 3 (line 3, column 1)"
    );
    assert!(drop.recipe.as_deref().unwrap().contains("contract phase"));

    let result = validator
        .validate(&fleet, &Proposal::new().with("api", v("1.2.0")))
        .unwrap();
    assert_eq!(result.verdict, Verdict::Blocked);
    let idx = result
        .findings
        .iter()
        .find(|f| f.code == "sql.require-concurrent-index-creation")
        .unwrap();
    assert!(
        idx.subject
            .contains("0013_idx statement 1 (line 1, column 1)")
    );
    assert!(result.steps.is_empty());

    let result = validator
        .validate(&fleet, &Proposal::new().with("api", v("1.3.0")))
        .unwrap();
    assert_eq!(result.verdict, Verdict::Blocked);
    let parse = result
        .findings
        .iter()
        .find(|f| f.code == "sql.unparsable-statement")
        .unwrap();
    assert!(
        parse
            .subject
            .contains("0014_bad statement 1 (line 1, column 1)")
    );
    assert!(parse.message.contains("Line: 1"), "{}", parse.message);

    // Reviewed by hand and marked so, a statement the parser cannot read no longer blocks.
    let fleet = Fleet::new().with("api", v("1.3.0"));
    let result = validator
        .validate(&fleet, &Proposal::new().with("api", v("1.4.0")))
        .unwrap();
    assert_ne!(result.verdict, Verdict::Blocked, "{result}");
    let unread = result
        .findings
        .iter()
        .find(|f| f.code == "sql.unparsable-statement")
        .unwrap();
    assert_eq!(unread.severity, Severity::Info);
    assert!(
        unread.message.contains("ignored by a serin:ignore comment"),
        "{}",
        unread.message
    );
}

/// Django's `sqlmigrate` output for `max_length` 100 -> 200 after the model's first migration.
#[test]
fn a_retype_is_judged_against_the_schema_the_running_version_has() {
    let mut reg = Registry::new();
    let releases = [
        (
            "1.0.0",
            "0001_initial",
            "BEGIN;\nCREATE TABLE \"shop_customer\" (\"id\" bigint NOT NULL PRIMARY KEY \
             GENERATED BY DEFAULT AS IDENTITY, \"name\" varchar(100) NOT NULL);\nCOMMIT;",
        ),
        (
            "1.1.0",
            "0002_longer_name",
            "BEGIN;\nSET LOCAL lock_timeout = '1s';\n\
             ALTER TABLE \"shop_customer\" ALTER COLUMN \"name\" TYPE varchar(200);\nCOMMIT;",
        ),
        (
            "1.2.0",
            "0003_shorter_name",
            "SET lock_timeout = '1s';\nALTER TABLE shop_customer ALTER name TYPE varchar(50);",
        ),
    ];
    for (version, name, sql) in releases {
        reg.add_release("api", Release::new(v(version)).with_migration(name, sql))
            .unwrap();
    }
    let validator = Validator::new(reg, Matrix::default()).unwrap();
    let retypes = |from: &str, to: &str| -> Vec<String> {
        let result = validator
            .validate(
                &Fleet::new().with("api", v(from)),
                &Proposal::new().with("api", v(to)),
            )
            .unwrap();
        result
            .findings
            .iter()
            .filter(|f| f.code == "sql.changing-column-type")
            .map(|f| format!("{:?} {}", f.severity, f.message))
            .collect()
    };
    // The running 1.0.0 made it varchar(100): 200 is a widening, the catalog only.
    assert_eq!(retypes("1.0.0", "1.1.0"), Vec::<String>::new());
    // Through 1.1.0 it is varchar(200), so 50 rewrites and truncates what 1.1.0 wrote.
    let narrowed = retypes("1.0.0", "1.2.0");
    assert_eq!(narrowed.len(), 1, "{narrowed:?}");
    assert!(
        narrowed[0].starts_with("Error")
            && narrowed[0].contains("from VARCHAR(200) to VARCHAR(50)"),
        "{narrowed:?}"
    );
    assert_eq!(retypes("1.1.0", "1.2.0"), narrowed);
}

#[test]
fn changes_other_tools_reported_count_for_every_release_passed() {
    let oasdiff = |json: &str| breaking::from_oasdiff("orders", json).unwrap();
    let orders = |version: &str| ProvidedApi::new("orders", v(version));
    let mut reg = Registry::new();
    let releases = [
        Release::new(v("1.0.0")).providing(orders("2.1.0")),
        Release::new(v("1.1.0")).providing(orders("2.2.0").with_reported(oasdiff(
            r#"[{"id": "response-property-removed", "level": 3, "operation": "GET",
                "path": "/orders/{id}", "text": "removed the required property 'total'"}]"#,
        ))),
        Release::new(v("1.2.0")).providing(orders("2.2.1").with_reported(oasdiff(
            r#"[{"id": "endpoint-added", "level": 1, "operation": "POST", "path": "/refunds",
                "text": "endpoint added"}]"#,
        ))),
        Release::new(v("2.0.0")).providing(
            orders("3.0.0").with_reported(
                breaking::from_buf(
                    "orders",
                    r#"{"path":"orders.proto","start_line":7,"start_column":3,"type":"FIELD_NO_DELETE","message":"Field \"4\" was deleted."}"#,
                )
                .unwrap(),
            ),
        ),
    ];
    for r in releases {
        reg.add_release("shop", r).unwrap();
    }
    let validator = Validator::new(reg, Matrix::default()).unwrap();
    let check = |from: &str, to: &str| {
        validator
            .validate(
                &Fleet::new().with("shop", v(from)),
                &Proposal::new().with("shop", v(to)),
            )
            .unwrap()
    };

    // A breaking change under a minor bump of the API.
    let result = check("1.0.0", "1.1.0");
    assert_eq!(result.verdict, Verdict::Blocked);
    let removed = result
        .findings
        .iter()
        .find(|f| f.code == "breaking.oasdiff.response-property-removed")
        .unwrap();
    assert_eq!(
        (removed.severity, removed.subject.as_str()),
        (Severity::Error, "shop 1.1.0 api orders")
    );
    assert!(removed.message.contains("(orders GET /orders/{id})"));
    let semver: Vec<_> = result
        .findings
        .iter()
        .filter(|f| f.code == "breaking.semver-violation")
        .collect();
    assert_eq!(
        semver.len(),
        1,
        "one check per API over the move: {semver:?}"
    );
    assert!(
        semver[0].message.contains("2.1.0 -> 2.2.0 (minor bump)"),
        "{semver:?}"
    );
    assert_eq!(semver[0].evidence, ["orders GET /orders/{id}"]);

    // An addition under a patch bump: a warning.
    let result = check("1.1.0", "1.2.0");
    assert_eq!(result.verdict, Verdict::OkWithWarnings, "{result}");
    let semver = result
        .findings
        .iter()
        .find(|f| f.code == "breaking.semver-violation")
        .unwrap();
    assert_eq!(semver.severity, Severity::Warn);

    // Straight to 2.0.0: every release passed reports its changes, and the API's major bump
    // covers them all; the breaking changes still block for the consumers' sake.
    let result = check("1.0.0", "2.0.0");
    let codes: Vec<&str> = result.findings.iter().map(|f| f.code.as_str()).collect();
    for code in [
        "breaking.oasdiff.response-property-removed",
        "breaking.oasdiff.endpoint-added",
        "breaking.buf.FIELD_NO_DELETE",
    ] {
        assert!(codes.contains(&code), "{code} in {codes:?}");
    }
    assert!(!codes.contains(&"breaking.semver-violation"), "{codes:?}");
    assert_eq!(result.verdict, Verdict::Blocked);

    // A change that may break clients, under a major bump: a warning, and the plan puts the
    // change behind a feature flag.
    let mut reg = Registry::new();
    reg.add_release("cart", Release::new(v("1.0.0")).providing(orders("1.4.0")))
        .unwrap();
    let maybe = oasdiff(
        r#"[{"id": "response-optional-property-removed", "level": 2, "operation": "GET",
            "path": "/orders", "text": "removed the optional property 'note'"}]"#,
    );
    reg.add_release(
        "cart",
        Release::new(v("1.1.0")).providing(orders("2.0.0").with_reported(maybe)),
    )
    .unwrap();
    let result = Validator::new(reg, Matrix::default())
        .unwrap()
        .validate(
            &Fleet::new().with("cart", v("1.0.0")),
            &Proposal::new().with("cart", v("1.1.0")),
        )
        .unwrap();
    assert_eq!(result.verdict, Verdict::OkWithWarnings, "{result}");
    assert!(
        result.steps.iter().any(|s| s.kind == StepKind::FeatureFlag
            && s.text.contains("removed the optional property 'note'")),
        "{:?}",
        result.steps
    );
}

#[test]
fn breaking_api_change_without_major_and_declared_breaks() {
    let surface = |ty: &str, version: &str| {
        ProvidedApi::new("orders", v(version)).with_endpoints(vec![Endpoint {
            name: "GET /orders/{id}".into(),
            request: vec![],
            response: vec![Field::new("total", ty, true)],
        }])
    };
    let mut reg = Registry::new();
    reg.add_release(
        "shop",
        Release::new(v("1.0.0")).providing(surface("int64", "2.1.0")),
    )
    .unwrap();
    reg.add_release(
        "shop",
        Release::new(v("1.1.0")).providing(surface("string", "2.2.0")),
    )
    .unwrap();
    reg.add_release(
        "shop",
        Release::new(v("2.0.0"))
            .providing(surface("string", "3.0.0"))
            .with_breaking("orders.total is a decimal string"),
    )
    .unwrap();
    let validator = Validator::new(reg, Matrix::default()).unwrap();
    let fleet = Fleet::new().with("shop", v("1.0.0"));
    let result = validator
        .validate(&fleet, &Proposal::new().with("shop", v("1.1.0")))
        .unwrap();
    assert_eq!(result.verdict, Verdict::Blocked);
    let f = result
        .findings
        .iter()
        .find(|f| f.code == "breaking.semver-violation")
        .unwrap();
    assert_eq!(f.severity, Severity::Error);
    assert!(
        f.message.contains("2.1.0 -> 2.2.0 (minor bump)"),
        "{}",
        f.message
    );

    let result = validator
        .validate(&fleet, &Proposal::new().with("shop", v("2.0.0")))
        .unwrap();
    assert_eq!(
        result.verdict,
        Verdict::Blocked,
        "type change is still an error for readers"
    );
    let fleet = Fleet::new().with("shop", v("1.1.0"));
    let result = validator
        .validate(&fleet, &Proposal::new().with("shop", v("2.0.0")))
        .unwrap();
    assert_eq!(result.verdict, Verdict::Ok, "{result}");
    assert!(
        result.steps.iter().any(|s| s.kind == StepKind::FeatureFlag
            && s.text.contains("orders.total is a decimal string"))
    );
    assert!(result.steps.iter().any(|s| s.kind == StepKind::Cleanup));
}

#[test]
fn result_prints_and_serialises() {
    let reg = registry(&[("a", &["1.0.0", "1.1.0"])]);
    let validator = Validator::new(reg, Matrix::default()).unwrap();
    let result = validator
        .validate(
            &Fleet::new().with("a", v("1.0.0")),
            &Proposal::new().with("a", v("1.1.0")),
        )
        .unwrap();
    let text = result.to_string();
    assert!(text.starts_with("verdict: ok\n"), "{text}");
    assert!(text.contains("1. a 1.0.0 -> 1.1.0"), "{text}");
    let json = result.to_json().unwrap();
    assert!(json.contains("\"verdict\": \"ok\""), "{json}");
    let back: UpgradeValidation = serde_json::from_str(&json).unwrap();
    assert_eq!(back, result);
    let noop = validator
        .validate(
            &Fleet::new().with("a", v("1.0.0")),
            &Proposal::new().with("a", v("1.0.0")),
        )
        .unwrap();
    assert!(codes(&noop).contains(&"proposal.no-op") && noop.order.is_empty());
}

#[test]
fn schema_change_without_migration_warns() {
    let mut reg = Registry::new();
    reg.add_release("api", Release::new(v("1.0.0")).with_schema_version(3))
        .unwrap();
    reg.add_release("api", Release::new(v("1.1.0")).with_schema_version(4))
        .unwrap();
    let validator = Validator::new(reg, Matrix::default()).unwrap();
    let result = validator
        .validate(
            &Fleet::new().with("api", v("1.0.0")),
            &Proposal::new().with("api", v("1.1.0")),
        )
        .unwrap();
    assert_eq!(result.verdict, Verdict::OkWithWarnings);
    let f = result
        .findings
        .iter()
        .find(|f| f.code == "registry.schema-without-migration")
        .unwrap();
    assert!(
        f.message.contains("schema version 4 instead of 3"),
        "{}",
        f.message
    );
    assert!(result.steps.iter().any(|s| s.kind == StepKind::Backup));
}

#[test]
fn incompatible_targets_and_same_service_deny() {
    let reg = registry(&[("a", &["1.0.0", "2.0.0"]), ("b", &["1.0.0", "2.0.0"])]);
    let rules = vec![requires("a", ">=2.0.0", "b", "<2")];
    let validator = Validator::new(reg.clone(), Matrix::new(rules, &reg).unwrap()).unwrap();
    let fleet = Fleet::new().with("a", v("1.0.0")).with("b", v("1.0.0"));
    let both = Proposal::new().with("a", v("2.0.0")).with("b", v("2.0.0"));
    let result = validator.validate(&fleet, &both).unwrap();
    assert_eq!(result.verdict, Verdict::Blocked);
    assert!(
        result
            .findings
            .iter()
            .any(|f| f.message == "the targets a 2.0.0 and b 2.0.0 cannot run together at all"),
        "{result}"
    );

    // "1.x and 2.x of a never run side by side" (for instance, a changed cache format).
    let deny = Rule::Deny(PairRule {
        id: Some("no-mixed-a".into()),
        a: Target::new("a", sel("^1")),
        b: Target::new("a", sel("^2")),
        reason: Some("the cache format changed".into()),
    });
    let validator = Validator::new(reg.clone(), Matrix::new(vec![deny], &reg).unwrap()).unwrap();
    let fleet = Fleet::new().with("a", v("1.0.0"));
    assert!(
        validator.check_fleet(&fleet).unwrap().is_empty(),
        "a version never conflicts with itself"
    );
    let result = validator
        .validate(&fleet, &Proposal::new().with("a", v("2.0.0")))
        .unwrap();
    assert_eq!(result.verdict, Verdict::Blocked);
    let f = result
        .findings
        .iter()
        .find(|f| f.code == "matrix.deny")
        .unwrap();
    assert_eq!(
        f.message,
        "a cannot run 1.0.0 and 2.0.0 side by side during the rollout"
    );
}

/// The recipe of the one-minor-at-a-time rule for `web` moving `from` -> `to`, with `releases`
/// in the registry; `None` when the move is allowed.
fn one_minor_recipe(releases: &[&str], from: &str, to: &str) -> Option<String> {
    let mut all = releases.to_vec();
    all.extend([from, to]);
    let reg = registry(&[("web", &all)]);
    let rule = Rule::OneMinorAtATime(OneMinorAtATime {
        id: None,
        service: "web".into(),
    });
    let validator = Validator::new(reg.clone(), Matrix::new(vec![rule], &reg).unwrap()).unwrap();
    let result = validator
        .validate(
            &Fleet::new().with("web", v(from)),
            &Proposal::new().with("web", v(to)),
        )
        .unwrap();
    let finding = result
        .findings
        .iter()
        .find(|f| f.code == "matrix.oneMinorAtATime")?;
    assert_eq!(result.verdict, Verdict::Blocked);
    finding.recipe.clone()
}

#[test]
fn a_minor_released_only_as_a_pre_release_is_no_latest_minor_to_pass() {
    assert_eq!(
        one_minor_recipe(&["1.29.0", "1.31.0-rc.1"], "1.30.0", "2.0.0"),
        None
    );
    assert_eq!(
        one_minor_recipe(&["1.30.0", "1.31.0-rc.1"], "1.29.0", "2.0.0").unwrap(),
        "move web one minor at a time: 1.29.0 -> 1.30.0 -> 2.0.0, each as its own upgrade"
    );
}

#[test]
fn one_minor_at_a_time_takes_the_latest_patch_of_the_current_minor_first() {
    let others = ["1.28.5", "1.28.6-rc.1", "1.29.3"];
    assert_eq!(
        one_minor_recipe(&others, "1.28.0", "1.30.0").unwrap(),
        "move web one minor at a time: 1.28.0 -> 1.28.5 -> 1.29.3 -> 1.30.0, each as its own \
         upgrade"
    );
    // Already at it, or on the way down, there is none to take.
    assert_eq!(
        one_minor_recipe(&["1.28.5", "1.29.3"], "1.28.6", "1.30.0").unwrap(),
        "move web one minor at a time: 1.28.6 -> 1.29.3 -> 1.30.0, each as its own upgrade"
    );
    assert_eq!(
        one_minor_recipe(&["1.30.2", "1.29.3"], "1.30.0", "1.28.0").unwrap(),
        "move web one minor at a time: 1.30.0 -> 1.29.3 -> 1.28.0, each as its own upgrade"
    );
}

#[test]
fn one_minor_at_a_time_lists_each_stop_or_sums_up_a_long_way() {
    // A few minors: the latest release of each, or the minor that must be released first.
    assert_eq!(
        one_minor_recipe(&["1.30.0", "1.30.10"], "1.29.3", "1.32.0").unwrap(),
        "move web one minor at a time: 1.29.3 -> 1.30.10 -> 1.31.x (not released) -> 1.32.0, \
         each as its own upgrade"
    );
    // A stop is a release, not a release candidate, unless its minor has only candidates.
    assert_eq!(
        one_minor_recipe(
            &["1.30.9", "1.30.10-rc.1", "1.31.0-rc.1", "1.31.0-rc.2"],
            "1.29.3",
            "1.32.0"
        )
        .unwrap(),
        "move web one minor at a time: 1.29.3 -> 1.30.9 -> 1.31.0-rc.2 -> 1.32.0, each as its own \
         upgrade"
    );
    // Date-numbered minors: a year apart is hundreds of thousands of minors; the recipe names
    // the first stop and counts the rest instead of listing every one.
    let long = one_minor_recipe(
        &["1.20230102.1", "1.20240601.0"],
        "1.20230101.0",
        "1.20241128.0",
    )
    .unwrap();
    assert_eq!(
        long,
        "move web one minor at a time from 1.20230101.0 to 1.20241128.0, each as its own \
         upgrade, starting with 1.20230102.1: 11026 minors lie in between, 2 of them released"
    );
    // At the end of the range of minors: no overflow, and no time spent per minor.
    let max = u64::MAX;
    assert_eq!(
        one_minor_recipe(&[], &format!("1.{max}.0"), &format!("1.{max}.1")),
        None
    );
    assert!(
        one_minor_recipe(&[], "1.0.0", &format!("1.{max}.0"))
            .unwrap()
            .contains(&format!(
                "{} minors lie in between, 0 of them released",
                max - 1
            ))
    );
}

#[test]
fn a_service_moves_off_a_yanked_or_unregistered_running_version_along_its_graph() {
    let catalog = serin_compat::Catalog::parse(
        "registry:\n  services:\n    api:\n      releases:\n\
         \x20       - {version: 1.0.0}\n        - {version: 1.1.0, yanked: true}\n\
         \x20       - {version: 1.2.0}\n        - {version: 2.0.0}\n\
         graphs:\n  api:\n    edges: [{from: '*', to: '*'}]\n    requiredStops:\n\
         \x20     - {name: 1.2 before 2, stop: 1.2.*, into: '>=2.0.0'}\n",
        serin_compat::Format::Yaml,
    )
    .unwrap();
    let validator = catalog.validator().unwrap();
    for (running, warning) in [
        ("1.1.0", None),
        ("1.1.5", Some("registry.unknown-running-version")),
    ] {
        let fleet = Fleet::new().with("api", v(running));
        let result = validator
            .validate(&fleet, &Proposal::new().with("api", v("1.2.0")))
            .unwrap();
        assert_ne!(result.verdict, Verdict::Blocked, "{:?}", result.findings);
        assert_eq!(result.paths["api"].hops, vec![v("1.2.0")]);
        assert_eq!(
            result
                .findings_at_least(Severity::Warn)
                .map(|f| f.code.as_str())
                .collect::<Vec<_>>(),
            Vec::from_iter(warning),
            "{running}"
        );
        // The graph's rules still apply to it: the way to 2.0.0 passes the required stop.
        let result = validator
            .validate(&fleet, &Proposal::new().with("api", v("2.0.0")))
            .unwrap();
        assert_eq!(result.paths["api"].hops, vec![v("1.2.0"), v("2.0.0")]);
        assert!(
            !codes(&result).contains(&"path.unknown-release"),
            "{running}"
        );
    }
}

/// In a mixed fleet, the instances of the oldest version still serve its API, so what the move
/// takes from their clients counts from it; the newest version's migrations have run, so they
/// are not judged again.
#[test]
fn a_mixed_fleet_counts_api_changes_from_its_oldest_version_and_migrations_from_its_newest() {
    let mut reg = Registry::new();
    reg.add_release(
        "pay",
        Release::new(v("1.0.0"))
            .providing(ProvidedApi::new("legacy", v("1.0.0")))
            .with_schema_version(1),
    )
    .unwrap();
    reg.add_release(
        "pay",
        Release::new(v("1.1.0"))
            .with_breaking("the legacy API is gone")
            .with_schema_version(2)
            .with_migration("0002_drop_note", "ALTER TABLE orders DROP COLUMN note;"),
    )
    .unwrap();
    reg.add_release("pay", Release::new(v("2.0.0")).with_schema_version(2))
        .unwrap();
    let validator = Validator::new(reg, Matrix::default()).unwrap();
    let fleet = Fleet::new().with("pay", v("1.0.0")).with("pay", v("1.1.0"));
    let result = validator
        .validate(&fleet, &Proposal::new().with("pay", v("2.0.0")))
        .unwrap();
    let codes: Vec<&str> = result.findings.iter().map(|f| f.code.as_str()).collect();
    assert!(codes.contains(&"breaking.api-removed"), "{result}");
    assert!(
        result
            .findings
            .iter()
            .any(|f| f.code == "breaking.declared" && f.message.contains("legacy API is gone")),
        "{result}"
    );
    assert!(
        !codes.iter().any(|c| c.starts_with("sql.")),
        "1.1.0's migration ran with 1.1.0: {result}"
    );
}

/// On a first install nothing runs, so no client was served what the release history's
/// reported changes remove: they block nothing, as the same change found by Serin's own diff
/// of the surfaces does not.
#[test]
fn changes_reported_in_the_history_of_a_service_do_not_block_its_first_install() {
    let orders = |version: &str| ProvidedApi::new("orders", v(version));
    let removed = breaking::from_oasdiff(
        "orders",
        r#"[{"id": "response-property-removed", "level": 3, "operation": "GET",
            "path": "/orders/{id}", "text": "removed the required property 'total'"}]"#,
    )
    .unwrap();
    let mut reg = Registry::new();
    reg.add_release("shop", Release::new(v("1.0.0")).providing(orders("2.1.0")))
        .unwrap();
    reg.add_release(
        "shop",
        Release::new(v("2.0.0")).providing(orders("3.0.0").with_reported(removed)),
    )
    .unwrap();
    let validator = Validator::new(reg, Matrix::default()).unwrap();
    let first = validator
        .validate(&Fleet::new(), &Proposal::new().with("shop", v("2.0.0")))
        .unwrap();
    assert_ne!(first.verdict, Verdict::Blocked, "{first}");
    // From 1.0.0, its clients lose the property: blocked.
    let upgrade = validator
        .validate(
            &Fleet::new().with("shop", v("1.0.0")),
            &Proposal::new().with("shop", v("2.0.0")),
        )
        .unwrap();
    assert_eq!(upgrade.verdict, Verdict::Blocked, "{upgrade}");
}

/// The first recipe when api moves to 2.0.0, which needs `db ^1`, over `fleet` (db has 1.0.0,
/// 1.9.0 and 2.0.0).
fn db_recipe(fleet: Fleet) -> String {
    let reg = registry(&[
        ("api", &["1.0.0", "2.0.0"]),
        ("db", &["1.0.0", "1.9.0", "2.0.0"]),
    ]);
    let matrix = Matrix::new(vec![requires("api", ">=2.0.0", "db", "^1")], &reg).unwrap();
    let result = Validator::new(reg, matrix)
        .unwrap()
        .validate(&fleet, &Proposal::new().with("api", v("2.0.0")))
        .unwrap();
    assert_eq!(result.verdict, Verdict::Blocked, "{result}");
    result
        .findings
        .iter()
        .find_map(|f| f.recipe.clone())
        .unwrap_or_default()
}

/// A dependency that must go back is moved back to the nearest release that matches, and the
/// recipe says it goes back rather than calling it an upgrade; one that runs nowhere yet is
/// deployed at the newest release that matches.
#[test]
fn a_recipe_names_the_nearest_matching_release_and_its_direction() {
    let api = || Fleet::new().with("api", v("1.0.0"));
    assert_eq!(
        db_recipe(api().with("db", v("2.0.0"))),
        "move db back to 1.9.0 in the same change"
    );
    assert_eq!(db_recipe(api()), "deploy db 1.9.0 in the same change");
}

#[test]
fn the_expand_step_of_a_migration_in_one_transaction_ends_the_transaction_it_opens() {
    let mut reg = Registry::new();
    reg.add_release("api", Release::new(v("1.0.0"))).unwrap();
    reg.add_release(
        "api",
        Release::new(v("1.1.0")).with_migration(
            "0012_email",
            "BEGIN;\nSET LOCAL lock_timeout = '1s';\nALTER TABLE users ADD COLUMN email text;\n\
             ALTER TABLE users DROP COLUMN legacy_mail;\nCOMMIT;",
        ),
    )
    .unwrap();
    let validator = Validator::new(reg, Matrix::default()).unwrap();
    let fleet = Fleet::new().with("api", v("1.0.0"));
    let result = validator
        .validate(&fleet, &Proposal::new().with("api", v("1.1.0")))
        .unwrap();
    let text = |kind: StepKind| {
        result
            .steps
            .iter()
            .find(|s| s.kind == kind)
            .map(|s| s.text.clone())
            .unwrap_or_else(|| panic!("no {kind:?} step: {result}"))
    };
    // Without its COMMIT, the column added would stay locked, then be undone, while 1.1.0 is
    // deployed expecting it.
    assert_eq!(
        text(StepKind::ExpandMigration),
        "apply migration 0012_email (statements #1, #2, #3, #5) for 1.1.0 before deploying, \
         with lock_timeout set"
    );
    assert_eq!(
        text(StepKind::ContractMigration),
        "once no version older than 1.1.0 runs, apply migration 0012_email statements #1, #2, \
         #4, #5"
    );
}
