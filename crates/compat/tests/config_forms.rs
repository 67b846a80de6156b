//! How config is written by hand: an enum with data as a one-key map in YAML (the form JSON
//! reads), with serde's YAML tag still accepted; and TOML errors that name the field.

use serin_compat::catalog::from_str;
use serin_compat::{Catalog, Format, Rule};

#[test]
fn a_rule_on_its_own_reads_as_a_one_key_map_in_yaml() {
    let rule: Rule = from_str("oneMinorAtATime: {service: api}\n", Format::Yaml).unwrap();
    assert_eq!(rule.kind(), "oneMinorAtATime");
    let rules: Vec<Rule> = from_str(
        "- oneMinorAtATime: {service: api}\n- skew: {client: web, server: api, maxOlder: 1}\n",
        Format::Yaml,
    )
    .unwrap();
    assert_eq!(rules.len(), 2);
}

#[test]
fn a_rule_written_as_a_yaml_tag_still_reads() {
    let rule: Rule = from_str("!oneMinorAtATime {service: api}\n", Format::Yaml).unwrap();
    assert_eq!(rule.kind(), "oneMinorAtATime");
}

#[test]
fn a_bad_field_inside_a_one_key_map_is_named_by_its_path() {
    let err = from_str::<Vec<Rule>>("- skew: {client: web, sever: api}\n", Format::Yaml)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("cannot parse YAML: [0].skew.sever: unknown field `sever`"),
        "{err}"
    );
}

#[test]
fn toml_errors_name_the_field_and_keep_the_position() {
    let text =
        "[registry.services.api]\nreleases = [{ version = \"1.0.0\", schemaVersion = \"two\" }]\n";
    let err = Catalog::parse(text, Format::Toml).unwrap_err().to_string();
    assert!(
        err.contains("registry.services.api.releases[0].schemaVersion: invalid type: string"),
        "{err}"
    );
    assert!(err.contains("line 2"), "{err}");
    let err = Catalog::parse("extra = 1\n", Format::Toml)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `extra`"), "{err}");
    let err = Catalog::parse("registry = [", Format::Toml)
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 1"), "{err}");
}
