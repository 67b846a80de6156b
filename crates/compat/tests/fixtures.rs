//! Real-world upgrade rules written as data (fixtures/*.yaml), each with its cases.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serin_compat::{Catalog, Fleet, Format, Proposal, Verdict};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FixtureFile {
    catalog: serde_yaml_ng::Value,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Case {
    name: String,
    fleet: Fleet,
    proposal: Proposal,
    verdict: Verdict,
    #[serde(default)]
    order: Option<Vec<Vec<String>>>,
    #[serde(default)]
    codes: Vec<String>,
    #[serde(default)]
    explanation_contains: Option<String>,
    #[serde(default)]
    recipe_contains: Option<String>,
    #[serde(default)]
    path: Option<Vec<String>>,
    #[serde(default)]
    stops: Option<Vec<String>>,
}

fn run(file: &str) -> usize {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(file),
    )
    .expect("fixture readable");
    let fixture: FixtureFile = serde_yaml_ng::from_str(&text).expect("fixture parses");
    let catalog_text = serde_yaml_ng::to_string(&fixture.catalog).expect("re-serialises");
    let catalog = Catalog::parse(&catalog_text, Format::Yaml).expect("catalog valid");
    let validator = catalog.validator().expect("validator");
    for case in &fixture.cases {
        let result = validator
            .validate(&case.fleet, &case.proposal)
            .unwrap_or_else(|e| panic!("{file}: {}: {e}", case.name));
        let context = format!("{file}: {}\n{result}", case.name);
        assert_eq!(result.verdict, case.verdict, "{context}");
        for code in &case.codes {
            assert!(
                result.findings.iter().any(|f| &f.code == code),
                "missing {code}: {context}"
            );
        }
        if let Some(order) = &case.order {
            let got: Vec<Vec<String>> = result
                .order
                .iter()
                .map(|g| g.iter().map(|m| m.service.clone()).collect())
                .collect();
            assert_eq!(&got, order, "{context}");
        }
        if let Some(needle) = &case.explanation_contains {
            let found = result.findings.iter().any(|f| {
                f.explanation
                    .as_ref()
                    .is_some_and(|e| e.to_string().contains(needle.as_str()))
            });
            assert!(found, "no explanation contains {needle:?}: {context}");
        }
        if let Some(needle) = &case.recipe_contains {
            let found = result.findings.iter().any(|f| {
                f.recipe
                    .as_deref()
                    .is_some_and(|r| r.contains(needle.as_str()))
            });
            assert!(found, "no recipe contains {needle:?}: {context}");
        }
        let paths: BTreeMap<&str, Vec<String>> = result
            .paths
            .iter()
            .map(|(s, p)| (s.as_str(), p.hops.iter().map(ToString::to_string).collect()))
            .collect();
        if let Some(path) = &case.path {
            assert!(
                paths.values().any(|p| p == path),
                "path {path:?} not in {paths:?}: {context}"
            );
        }
        if let Some(stops) = &case.stops {
            let got: Vec<String> = result
                .paths
                .values()
                .flat_map(|p| p.stops.iter().map(ToString::to_string))
                .collect();
            assert_eq!(&got, stops, "{context}");
        }
        if result.is_allowed() {
            assert!(
                !result.steps.is_empty() || result.order.is_empty(),
                "{context}"
            );
        }
    }
    fixture.cases.len()
}

#[test]
fn kubernetes_control_plane_skew() {
    assert_eq!(run("kubernetes.yaml"), 8);
}

#[test]
fn postgresql_minor_versus_major() {
    assert_eq!(run("postgresql.yaml"), 6);
}

#[test]
fn elasticsearch_717_stop() {
    assert_eq!(run("elasticsearch.yaml"), 7);
}

#[test]
fn gitlab_required_stops() {
    assert_eq!(run("gitlab.yaml"), 4);
}
