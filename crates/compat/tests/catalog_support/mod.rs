//! Loading a catalog and validating a fleet against it, shared by the behaviour tests that
//! write their catalogs as YAML.

use serin_compat::{Catalog, Fleet, Format, Proposal, UpgradeValidation, Validator};

pub fn v(s: &str) -> semver::Version {
    semver::Version::parse(s).unwrap()
}

pub fn load(yaml: &str) -> Validator {
    Catalog::parse(yaml, Format::Yaml)
        .unwrap_or_else(|e| panic!("{e}"))
        .validator()
        .unwrap_or_else(|e| panic!("{e}"))
}

pub fn check(validator: &Validator, fleet: &str, proposal: &[(&str, &str)]) -> UpgradeValidation {
    let fleet = Fleet::from_yaml_str(fleet).unwrap();
    let proposal = proposal
        .iter()
        .fold(Proposal::new(), |p, (s, t)| p.with(*s, v(t)));
    validator.validate(&fleet, &proposal).unwrap()
}

pub fn codes(result: &UpgradeValidation) -> Vec<&str> {
    result.findings.iter().map(|f| f.code.as_str()).collect()
}
