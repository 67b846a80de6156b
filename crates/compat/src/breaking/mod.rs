//! Breaking-change detection between two versions of an API surface.
//!
//! Checks are direction-aware, as oasdiff's and buf's are: removing a field a client *sends*
//! (request) hurts nobody who keeps sending it, but removing a field the server *returns*
//! (response) breaks every reader. A breaking change shipped without the bump semver asks for
//! (a new major, or a new minor below 1.0) is itself an error.
//!
//! Serin diffs the surfaces a registry describes ([`diff_endpoints`]); changes that oasdiff or
//! buf found in the real specs are read with [`from_oasdiff`] and [`from_buf`] and count the
//! same way.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::registry::ProvidedApi;
use crate::validation::{Finding, Severity};

mod reported;

pub use reported::{from_buf, from_oasdiff};

/// A field of a request or a response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Field {
    /// Its name.
    pub name: String,
    /// Its type, compared as text (`string`, `int64`, `Money`).
    #[serde(rename = "type")]
    pub ty: String,
    /// Whether it must be present.
    #[serde(default)]
    pub required: bool,
}

impl Field {
    /// A field.
    pub fn new(name: impl Into<String>, ty: impl Into<String>, required: bool) -> Self {
        Self {
            name: name.into(),
            ty: ty.into(),
            required,
        }
    }
}

/// An endpoint (`GET /orders/{id}`) or message, with the fields it takes and returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Endpoint {
    /// Its name.
    pub name: String,
    /// Fields the client sends.
    #[serde(default)]
    pub request: Vec<Field>,
    /// Fields the server returns.
    #[serde(default)]
    pub response: Vec<Field>,
}

/// The smallest version bump a change needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Bump {
    /// Nothing visible changed.
    None,
    /// A fix.
    Patch,
    /// Something was added.
    Minor,
    /// Something existing broke.
    Major,
}

impl fmt::Display for Bump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Patch => "patch",
            Self::Minor => "minor",
            Self::Major => "major",
        })
    }
}

/// Which side of the exchange a field is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    /// Sent by the client.
    Request,
    /// Returned by the server.
    Response,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Request => "request",
            Self::Response => "response",
        })
    }
}

/// One detected change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Change {
    /// The check's id (`response-field-removed`; `oasdiff.…` and `buf.…` for changes another
    /// tool reported).
    pub id: String,
    /// How serious.
    pub severity: Severity,
    /// The bump it needs.
    pub required_bump: Bump,
    /// Where (`orders GET /orders response.total`).
    pub location: String,
    /// What happened.
    pub message: String,
}

/// The kind of bump between two versions, with Cargo's rule that below 1.0 the left-most
/// non-zero component is the "major" one and the next the "minor" one, as consumers' `^0.2`
/// requirements accept `0.2.1` but not `0.3.0`: `0.2.0 -> 0.3.0` is a major bump and
/// `0.2.0 -> 0.2.1` a minor one, and in `0.0.x`, which `^0.0.3` pins exactly, every release is a
/// major bump.
///
/// A move to, from or between pre-releases is a major bump too, as cargo-semver-checks counts
/// it: a pre-release promises no compatibility (SemVer §9), so `2.0.0-rc.1 -> 2.0.0-rc.2` may
/// break what `rc.1` offered, and only the stable releases on either side are held to their
/// numbers.
pub fn bump_between(old: &Version, new: &Version) -> Bump {
    if (!old.pre.is_empty() || !new.pre.is_empty()) && old.cmp_precedence(new).is_ne() {
        return Bump::Major;
    }
    let key = |v: &Version| -> (u64, u64, u64) {
        if v.major > 0 {
            (v.major, 0, 0)
        } else if v.minor > 0 {
            (0, v.minor, 0)
        } else {
            (0, 0, v.patch)
        }
    };
    if key(old) != key(new) {
        return Bump::Major;
    }
    // The component after the "major" one (`0.0.x` has none left: its patch is the "major").
    let compatible = |v: &Version| if v.major > 0 { v.minor } else { v.patch };
    let (o, n) = (
        (old.major, old.minor, old.patch),
        (new.major, new.minor, new.patch),
    );
    if compatible(old) != compatible(new) {
        Bump::Minor
    } else if o != n {
        Bump::Patch
    } else {
        Bump::None
    }
}

fn fields(list: &[Field]) -> BTreeMap<&str, &Field> {
    list.iter().map(|f| (f.name.as_str(), f)).collect()
}

fn change(
    id: &str,
    severity: Severity,
    required_bump: Bump,
    location: String,
    message: String,
) -> Change {
    Change {
        id: id.to_owned(),
        severity,
        required_bump,
        location,
        message,
    }
}

fn diff_fields(
    api: &str,
    endpoint: &str,
    direction: Direction,
    old: &[Field],
    new: &[Field],
    out: &mut Vec<Change>,
) {
    let (old, new) = (fields(old), fields(new));
    for (name, before) in &old {
        let location = format!("{api} {endpoint} {direction}.{name}");
        match new.get(name) {
            None => match direction {
                Direction::Response if before.required => out.push(change(
                    "response-field-removed",
                    Severity::Error,
                    Bump::Major,
                    location,
                    format!("required response field {name:?} was removed; readers expect it"),
                )),
                Direction::Response => out.push(change(
                    "response-optional-field-removed",
                    Severity::Warn,
                    Bump::Minor,
                    location,
                    format!("optional response field {name:?} was removed"),
                )),
                Direction::Request => out.push(change(
                    "request-field-removed",
                    Severity::Warn,
                    Bump::Minor,
                    location,
                    format!("request field {name:?} was removed; clients that send it are ignored"),
                )),
            },
            Some(after) => {
                if before.ty != after.ty {
                    out.push(change(
                        "field-type-changed",
                        Severity::Error,
                        Bump::Major,
                        location.clone(),
                        format!(
                            "{direction} field {name:?} changed type from {} to {}",
                            before.ty, after.ty
                        ),
                    ));
                }
                match (direction, before.required, after.required) {
                    (Direction::Request, false, true) => out.push(change(
                        "request-field-became-required",
                        Severity::Error,
                        Bump::Major,
                        location,
                        format!("request field {name:?} became required; old clients omit it"),
                    )),
                    (Direction::Response, true, false) => out.push(change(
                        "response-field-became-optional",
                        Severity::Error,
                        Bump::Major,
                        location,
                        format!("response field {name:?} may now be missing; readers expect it"),
                    )),
                    (Direction::Request, true, false) => out.push(change(
                        "request-field-became-optional",
                        Severity::Info,
                        Bump::Minor,
                        location,
                        format!("request field {name:?} is now optional"),
                    )),
                    _ => {}
                }
            }
        }
    }
    for (name, added) in &new {
        if old.contains_key(name) {
            continue;
        }
        let location = format!("{api} {endpoint} {direction}.{name}");
        if direction == Direction::Request && added.required {
            out.push(change(
                "new-required-request-field",
                Severity::Error,
                Bump::Major,
                location,
                format!("new required request field {name:?}; old clients do not send it"),
            ));
        } else {
            out.push(change(
                "field-added",
                Severity::Info,
                Bump::Minor,
                location,
                format!("{direction} field {name:?} was added"),
            ));
        }
    }
}

/// The changes from one surface of an API to the next.
///
/// ```
/// use serin_compat::breaking::{diff_endpoints, Endpoint, Field, Bump};
/// let old = vec![Endpoint { name: "GET /o".into(), request: vec![],
///     response: vec![Field::new("total", "int64", true)] }];
/// let new = vec![Endpoint { name: "GET /o".into(), request: vec![],
///     response: vec![Field::new("total", "string", true)] }];
/// let changes = diff_endpoints("orders", &old, &new);
/// assert_eq!(changes[0].id, "field-type-changed");
/// assert_eq!(changes[0].required_bump, Bump::Major);
/// ```
pub fn diff_endpoints(api: &str, old: &[Endpoint], new: &[Endpoint]) -> Vec<Change> {
    let mut out = Vec::new();
    let new_by_name: BTreeMap<&str, &Endpoint> = new.iter().map(|e| (e.name.as_str(), e)).collect();
    let old_by_name: BTreeMap<&str, &Endpoint> = old.iter().map(|e| (e.name.as_str(), e)).collect();
    for (name, before) in &old_by_name {
        match new_by_name.get(name) {
            None => out.push(change(
                "endpoint-removed",
                Severity::Error,
                Bump::Major,
                format!("{api} {name}"),
                format!("endpoint {name:?} was removed"),
            )),
            Some(after) => {
                diff_fields(
                    api,
                    name,
                    Direction::Request,
                    &before.request,
                    &after.request,
                    &mut out,
                );
                diff_fields(
                    api,
                    name,
                    Direction::Response,
                    &before.response,
                    &after.response,
                    &mut out,
                );
            }
        }
    }
    for name in new_by_name.keys() {
        if !old_by_name.contains_key(name) {
            out.push(change(
                "endpoint-added",
                Severity::Info,
                Bump::Minor,
                format!("{api} {name}"),
                format!("endpoint {name:?} was added"),
            ));
        }
    }
    out
}

/// Findings for every API a service provided in `old` and provides (or no longer provides) in
/// `new`, including the semver check of each API's own version.
pub fn diff_provided(
    service: &str,
    old: &[ProvidedApi],
    new: &[ProvidedApi],
) -> (Vec<Finding>, Vec<Change>) {
    diff_provided_with(service, old, new, &BTreeMap::new(), &|_| None)
}

/// [`diff_provided`], with the changes other tools reported for each API over the move
/// (`reported`, by API name) counted in its semver check, and what serves an API `new` no
/// longer provides (`elsewhere`: who provides it instead, or `None`).
///
/// An API another service takes over in the same change is no removal: its consumers are
/// still served, so it is a warning (`breaking.api-moved`) that names who serves it now, as a
/// client that addresses this service for it must follow it. Without one, its consumers break
/// (`breaking.api-removed`, an error).
pub(crate) fn diff_provided_with(
    service: &str,
    old: &[ProvidedApi],
    new: &[ProvidedApi],
    reported: &BTreeMap<&str, Vec<Change>>,
    elsewhere: &dyn Fn(&ProvidedApi) -> Option<String>,
) -> (Vec<Finding>, Vec<Change>) {
    let mut findings = Vec::new();
    let mut all = Vec::new();
    for before in old {
        let subject = format!("{service} api {}", before.name);
        let Some(after) = new.iter().find(|p| p.name == before.name) else {
            if let Some(by) = elsewhere(before) {
                findings.push(Finding::new(
                    Severity::Warn,
                    "breaking.api-moved",
                    subject,
                    format!(
                        "api {} {} is no longer provided by {service}: {by}",
                        before.name, before.version
                    ),
                ));
                continue;
            }
            findings.push(Finding::new(
                Severity::Error,
                "breaking.api-removed",
                subject,
                format!(
                    "api {} {} is no longer provided; its consumers break",
                    before.name, before.version
                ),
            ));
            continue;
        };
        let changes = diff_endpoints(&before.name, &before.endpoints, &after.endpoints);
        for c in &changes {
            findings.push(Finding::new(
                c.severity,
                format!("breaking.{}", c.id),
                subject.clone(),
                format!("{} ({})", c.message, c.location),
            ));
        }
        let counted = match reported.get(before.name.as_str()) {
            Some(more) => Cow::Owned(changes.iter().chain(more).cloned().collect()),
            None => Cow::Borrowed(&changes),
        };
        findings.extend(semver_violation(
            &subject,
            &before.name,
            &before.version,
            &after.version,
            &counted,
        ));
        all.extend(changes);
    }
    (findings, all)
}

/// The finding when `changes` to `api` need a bigger bump than its version got (`from` ->
/// `to`), naming the changes that need it.
fn semver_violation(
    subject: &str,
    api: &str,
    from: &Version,
    to: &Version,
    changes: &[Change],
) -> Option<Finding> {
    // Going back to an older version is a rollback, not a release: what it takes away was
    // added under a version that was bumped for it, and the changes themselves are reported
    // (as warnings: the validator's consumers check guards the clients it knows).
    if to.cmp_precedence(from).is_lt() {
        return None;
    }
    let needed = changes
        .iter()
        .map(|c| c.required_bump)
        .max()
        .unwrap_or(Bump::None);
    let actual = bump_between(from, to);
    if needed <= actual || needed < Bump::Minor {
        return None;
    }
    let worst: Vec<&str> = changes
        .iter()
        .filter(|c| c.required_bump == needed)
        .map(|c| c.location.as_str())
        .collect();
    Some(
        Finding::new(
            if needed == Bump::Major {
                Severity::Error
            } else {
                Severity::Warn
            },
            "breaking.semver-violation",
            subject,
            format!(
                "api {api} goes {from} -> {to} ({actual} bump) but its changes need a {needed} bump"
            ),
        )
        .with_evidence(worst.join(", "))
        .with_recipe(
            "release the change under a new major API version, or keep the old behaviour until \
             every consumer has moved",
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(name: &str, req: Vec<Field>, resp: Vec<Field>) -> Endpoint {
        Endpoint {
            name: name.into(),
            request: req,
            response: resp,
        }
    }

    fn ids(changes: &[Change]) -> Vec<&str> {
        changes.iter().map(|c| c.id.as_str()).collect()
    }

    #[test]
    fn bumps_follow_cargo_rules() {
        let v = |s: &str| Version::parse(s).unwrap();
        assert_eq!(bump_between(&v("1.2.3"), &v("2.0.0")), Bump::Major);
        assert_eq!(bump_between(&v("1.2.3"), &v("1.3.0")), Bump::Minor);
        assert_eq!(bump_between(&v("1.2.3"), &v("1.2.4")), Bump::Patch);
        assert_eq!(bump_between(&v("0.2.3"), &v("0.3.0")), Bump::Major);
        assert_eq!(bump_between(&v("0.0.3"), &v("0.0.4")), Bump::Major);
        assert_eq!(bump_between(&v("1.2.3"), &v("1.2.3")), Bump::None);
        // Below 1.0 the levels shift: the patch digit is the compatible one.
        assert_eq!(bump_between(&v("0.2.0"), &v("0.2.1")), Bump::Minor);
        // A pre-release on either side promises nothing.
        for (old, new) in [
            ("0.2.1-rc.1", "0.2.1"),
            ("0.0.3-rc.1", "0.0.3"),
            ("2.0.0-rc.1", "2.0.0-rc.2"),
            ("1.4.0", "1.5.0-rc.1"),
            ("1.5.0-rc.1", "1.5.0"),
        ] {
            assert_eq!(
                bump_between(&v(old), &v(new)),
                Bump::Major,
                "{old} -> {new}"
            );
        }
        assert_eq!(
            bump_between(&v("2.0.0-rc.1"), &v("2.0.0-rc.1+b")),
            Bump::None
        );
        assert_eq!(bump_between(&v("1.2.3+a"), &v("1.2.3+b")), Bump::None);
    }

    /// The semver findings of `orders` going `from` -> `to` with a response field added (an
    /// additive change) or removed (a breaking one).
    fn semver_findings(from: &str, to: &str, breaking: bool) -> Vec<Severity> {
        let old = ProvidedApi::new("orders", Version::parse(from).unwrap())
            .with_endpoints(vec![ep("e", vec![], vec![Field::new("t", "int", true)])]);
        let mut new = old.clone();
        new.version = Version::parse(to).unwrap();
        if breaking {
            new.endpoints[0].response.clear();
        } else {
            new.endpoints[0]
                .response
                .push(Field::new("u", "int", false));
        }
        let (findings, _) = diff_provided("svc", &[old], &[new]);
        findings
            .iter()
            .filter(|f| f.code == "breaking.semver-violation")
            .map(|f| f.severity)
            .collect()
    }

    #[test]
    fn below_one_a_patch_release_may_add_and_a_minor_one_may_break() {
        assert_eq!(semver_findings("0.2.0", "0.2.1", false), []);
        assert_eq!(semver_findings("0.2.0", "0.2.1", true), [Severity::Error]);
        assert_eq!(semver_findings("0.2.1", "0.3.0", true), []);
        // In 0.0.x every release is breaking, so it may break anything.
        assert_eq!(semver_findings("0.0.1", "0.0.2", true), []);
        // At 1.0 and above a patch release still may not add.
        assert_eq!(semver_findings("1.2.0", "1.2.1", false), [Severity::Warn]);
    }

    #[test]
    fn pre_releases_may_break() {
        assert_eq!(semver_findings("2.0.0-rc.1", "2.0.0-rc.2", true), []);
        assert_eq!(semver_findings("2.0.0-rc.2", "2.0.0", true), []);
        assert_eq!(semver_findings("1.4.0", "1.5.0-rc.1", true), []);
        // Between stable releases the check still holds.
        assert_eq!(semver_findings("1.4.0", "1.5.0", true), [Severity::Error]);
    }

    #[test]
    fn going_back_to_an_older_version_is_no_semver_violation() {
        // The way back from a release that added a field takes it away again.
        let added = |version: &str, fields: usize| {
            ProvidedApi::new("orders", Version::parse(version).unwrap()).with_endpoints(vec![ep(
                "e",
                vec![],
                (0..fields)
                    .map(|i| Field::new(format!("f{i}"), "int", true))
                    .collect(),
            )])
        };
        let (findings, changes) = diff_provided("svc", &[added("1.1.0", 2)], &[added("1.0.0", 1)]);
        assert_eq!(ids(&changes), ["response-field-removed"]);
        assert!(
            !findings
                .iter()
                .any(|f| f.code == "breaking.semver-violation"),
            "{findings:?}"
        );
        // The way up is checked as before.
        let (findings, _) = diff_provided("svc", &[added("1.0.0", 2)], &[added("1.0.1", 1)]);
        assert!(
            findings
                .iter()
                .any(|f| f.code == "breaking.semver-violation")
        );
    }

    #[test]
    fn each_check_fires() {
        let old = vec![
            ep("gone", vec![], vec![]),
            ep(
                "e",
                vec![
                    Field::new("a", "string", false),
                    Field::new("b", "string", true),
                ],
                vec![
                    Field::new("x", "int", true),
                    Field::new("y", "int", false),
                    Field::new("z", "int", true),
                    Field::new("w", "int", true),
                ],
            ),
        ];
        let new = vec![
            ep(
                "e",
                vec![
                    Field::new("a", "string", true),
                    Field::new("c", "string", true),
                    Field::new("d", "string", false),
                ],
                vec![
                    Field::new("z", "string", true),
                    Field::new("w", "int", false),
                ],
            ),
            ep("fresh", vec![], vec![]),
        ];
        let changes = diff_endpoints("api", &old, &new);
        let got = ids(&changes);
        for expected in [
            "endpoint-removed",
            "endpoint-added",
            "request-field-became-required",
            "request-field-removed",
            "new-required-request-field",
            "field-added",
            "response-field-removed",
            "response-optional-field-removed",
            "field-type-changed",
            "response-field-became-optional",
        ] {
            assert!(got.contains(&expected), "{expected} missing from {got:?}");
        }
    }

    #[test]
    fn unchanged_surface_has_no_changes() {
        let s = vec![ep("e", vec![Field::new("a", "t", true)], vec![])];
        assert!(diff_endpoints("api", &s, &s).is_empty());
    }

    #[test]
    fn breaking_without_major_is_a_semver_violation() {
        let old = ProvidedApi::new("orders", Version::new(2, 1, 0)).with_endpoints(vec![ep(
            "e",
            vec![],
            vec![Field::new("t", "int", true)],
        )]);
        let mut new = old.clone();
        new.version = Version::new(2, 2, 0);
        new.endpoints[0].response.clear();
        let (findings, _) = diff_provided(
            "svc",
            std::slice::from_ref(&old),
            std::slice::from_ref(&new),
        );
        assert!(
            findings
                .iter()
                .any(|f| f.code == "breaking.semver-violation" && f.severity == Severity::Error)
        );
        new.version = Version::new(3, 0, 0);
        let (findings, _) = diff_provided("svc", &[old], &[new]);
        assert!(
            !findings
                .iter()
                .any(|f| f.code == "breaking.semver-violation")
        );
    }

    #[test]
    fn removed_api_is_an_error() {
        let old = ProvidedApi::new("orders", Version::new(1, 0, 0));
        let (findings, _) = diff_provided("svc", &[old], &[]);
        assert_eq!(findings[0].code, "breaking.api-removed");
    }

    #[test]
    fn an_api_served_elsewhere_is_moved_not_removed() {
        let old = ProvidedApi::new("orders", Version::new(1, 0, 0));
        let elsewhere = |api: &ProvidedApi| {
            (api.name == "orders").then(|| "shop 2.0.0 provides orders 1.1.0".to_owned())
        };
        let (findings, _) = diff_provided_with("svc", &[old], &[], &BTreeMap::new(), &elsewhere);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].code, "breaking.api-moved");
        assert_eq!(findings[0].severity, Severity::Warn);
        assert_eq!(
            findings[0].message,
            "api orders 1.0.0 is no longer provided by svc: shop 2.0.0 provides orders 1.1.0"
        );
    }
}
