//! A value a field's type refuses (a selector, a version) is named by its own path, in YAML as
//! in JSON: the field, the value and the reason, not only the map around it.

use serin_compat::{Catalog, Format};

const RELEASES: &str =
    "registry:\n  services:\n    api:\n      releases:\n        - version: 1.0.0\n";

fn yaml_error(text: &str) -> String {
    Catalog::parse(text, Format::Yaml).unwrap_err().to_string()
}

#[test]
fn a_bad_selector_or_version_in_yaml_names_its_field() {
    let cases = [
        (
            format!(
                "{RELEASES}rules:\n  - requires: {{ service: api, versions: \">=banana\", \
                 dependency: db, req: \">=1.4\" }}\n"
            ),
            "rules[0].requires.versions: invalid version \">=banana\": neither a version nor a \
             requirement",
        ),
        (
            format!(
                "{RELEASES}rules:\n  - requires: {{ service: api, versions: \"*\", \
                 dependency: db, req: \">=x1.4\" }}\n"
            ),
            "rules[0].requires.req: invalid version \">=x1.4\"",
        ),
        (
            format!(
                "{RELEASES}graphs:\n  api: {{ edges: [ {{from: \"*\", to: \"1.x.y.z\"}} ] }}\n"
            ),
            "graphs.api.edges[0].to: invalid version \"1.x.y.z\"",
        ),
        (
            RELEASES.replace("1.0.0", "1.0.x"),
            "registry.services.api.releases[0].version: invalid version \"1.0.x\": unexpected \
             character 'x'",
        ),
    ];
    for (text, expected) in cases {
        let err = yaml_error(&text);
        assert!(
            err.starts_with(&format!("cannot parse YAML: {expected}")),
            "{err}"
        );
        // The reader's position stays.
        assert!(err.contains(" at line "), "{err}");
    }
}

#[test]
fn json_names_the_same_path_without_a_placeholder() {
    let text = r#"{"rules":[{"requires":{"service":"api","versions":">=banana","dependency":"db","req":">=1.4"}}]}"#;
    let err = Catalog::parse(text, Format::Json).unwrap_err().to_string();
    assert!(
        err.starts_with(
            "cannot parse JSON: rules[0].requires.versions: invalid version \">=banana\""
        ),
        "{err}"
    );
}

#[test]
fn errors_that_named_their_place_already_keep_it() {
    let unknown = yaml_error(&format!("{RELEASES}          bogus: 1\n"));
    assert!(
        unknown.starts_with(
            "cannot parse YAML: registry.services.api.releases[0].bogus: unknown field `bogus`"
        ),
        "{unknown}"
    );
    let duplicate = yaml_error("graphs:\n  api: { edges: [] }\n  api: { edges: [] }\n");
    assert!(
        duplicate.starts_with("cannot parse YAML: graphs: duplicate key graphs.api"),
        "{duplicate}"
    );
}
