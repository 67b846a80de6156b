//! The compatibility matrix: rules between versions of services.
//!
//! Rule kinds:
//! - [`Requires`]: versions of a service need versions of another (a semver range).
//! - [`PairRule`] as `deny` or `allow`: an explicit verdict on a pair of version sets. A deny
//!   always wins; an allow exempts the pair from `requires`, `skew` and API requirements. An
//!   allow and a deny for the same two version sets (written alike, or naming one version
//!   however written: `1.4.0`, `=1.4.0`) contradict each other and are rejected; where they
//!   only overlap, the deny wins for the pairs both catch.
//! - [`Skew`]: how many minors a client may lag behind (or lead) a server, as in Kubernetes'
//!   version-skew policy, with an override below a version.
//! - [`OneMinorAtATime`]: a service moves at most one minor per step, up or down, and never skips
//!   a major (it crosses one from its latest minor to the next major's `.0`).
//! - [`Transition`]: blocks or warns about a kind of change (e.g. a PostgreSQL major).
//!
//! Written as a list of externally tagged entries: `- requires: {service: api, ...}`.

use std::fmt;

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::registry::Registry;
use crate::selector::{Selector, version_serde};

/// Versions of one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Target {
    /// The service.
    pub service: String,
    /// Which of its versions (default: all).
    #[serde(default)]
    pub versions: Selector,
}

impl Target {
    /// A target.
    pub fn new(service: impl Into<String>, versions: Selector) -> Self {
        Self {
            service: service.into(),
            versions,
        }
    }

    /// Whether both name the same versions of the same service, however written.
    fn same_as(&self, other: &Self) -> bool {
        self.service == other.service && self.versions.same_releases(&other.versions)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.service, self.versions)
    }
}

/// `service` at `versions` needs `dependency` at `req` running beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Requires {
    /// A name for messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The dependent service.
    pub service: String,
    /// Which of its versions the rule is about (default: all).
    #[serde(default)]
    pub versions: Selector,
    /// The service depended on.
    pub dependency: String,
    /// The versions of it that work.
    pub req: Selector,
    /// Why, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An explicit verdict on every pairing of `a`'s and `b`'s versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PairRule {
    /// A name for messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// One side.
    pub a: Target,
    /// The other side.
    pub b: Target,
    /// Why, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A tighter `maxOlder` for clients older than `below`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SkewOverride {
    /// Applies to client versions lower than this.
    #[serde(with = "version_serde")]
    pub below: Version,
    /// The allowed lag, in minors.
    pub max_older: u64,
}

/// Version skew between a client and a server, in minors of the same major.
///
/// With `client == server` the rule bounds the spread between instances of one service that
/// run side by side (Kubernetes: HA apiservers within one minor): `maxOlder` bounds it, with
/// the overrides that apply to the older instance, and `maxNewer`, which would say the same,
/// is left out or equal to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Skew {
    /// A name for messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The client.
    pub client: String,
    /// The server.
    pub server: String,
    /// How many minors the client may lag.
    pub max_older: u64,
    /// How many minors the client may lead.
    #[serde(default)]
    pub max_newer: u64,
    /// Tighter lags below some client versions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<SkewOverride>,
}

impl Skew {
    /// The allowed lag for a client version (the tightest applicable override).
    pub fn max_older_for(&self, client: &Version) -> u64 {
        self.overrides
            .iter()
            .filter(|o| client < &o.below)
            .map(|o| o.max_older)
            .fold(self.max_older, u64::min)
    }

    /// Why `client` at `c` may not talk to `server` at `s`, if it may not.
    pub fn violation(&self, c: &Version, s: &Version) -> Option<String> {
        if c.major != s.major {
            return Some(format!(
                "{} {c} and {} {s} are different majors",
                self.client, self.server
            ));
        }
        if self.client == self.server {
            let spread = c.minor.abs_diff(s.minor);
            let allowed = self.max_older_for(c.min(s));
            return (spread > allowed).then(|| {
                format!(
                    "{} instances at {c} and {s} are {spread} minors apart (at most {allowed} \
                     allowed)",
                    self.client
                )
            });
        }
        if c.minor > s.minor {
            let lead = c.minor - s.minor;
            return (lead > self.max_newer).then(|| {
                format!(
                    "{} {c} is {lead} minor(s) newer than {} {s} (at most {} allowed)",
                    self.client, self.server, self.max_newer
                )
            });
        }
        let lag = s.minor - c.minor;
        let allowed = self.max_older_for(c);
        (lag > allowed).then(|| {
            format!(
                "{} {c} is {lag} minor(s) older than {} {s} (at most {allowed} allowed)",
                self.client, self.server
            )
        })
    }
}

/// The service moves at most one minor per deployment and never skips a major.
///
/// A step goes to the next or the previous minor of the same major, or from the latest minor of
/// a major (the highest among its releases that are not yanked) to the next major's `.0`. A
/// rollback is bound as an upgrade is: `9.0.0 -> 1.0.0` is refused as `1.0.0 -> 9.0.0` is, with a
/// recipe of the minors to pass, each a step the rule allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OneMinorAtATime {
    /// A name for messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The service.
    pub service: String,
}

/// A kind of version change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ChangeKind {
    /// The major differs.
    Major,
    /// Same major, the minor differs.
    Minor,
    /// Same major and minor.
    Patch,
    /// The target is lower than the current version.
    Downgrade,
}

impl ChangeKind {
    /// Whether moving `from -> to` is of this kind.
    pub fn matches(self, from: &Version, to: &Version) -> bool {
        match self {
            Self::Major => from.major != to.major,
            Self::Minor => from.major == to.major && from.minor != to.minor,
            Self::Patch => from.major == to.major && from.minor == to.minor && from != to,
            Self::Downgrade => to < from,
        }
    }
}

/// What a [`Transition`] does to a matching change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Effect {
    /// The change may not happen as a rolling upgrade.
    Block,
    /// The change may happen, with a warning.
    Warn,
}

/// A policy on a kind of change of one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Transition {
    /// A name for messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The service.
    pub service: String,
    /// Which change.
    pub change: ChangeKind,
    /// Block or warn.
    pub effect: Effect,
    /// Why, and what to do instead.
    pub reason: String,
}

/// One rule of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Rule {
    /// A dependency range.
    Requires(Requires),
    /// A pair that never works together.
    Deny(PairRule),
    /// A pair that works together whatever other rules say.
    Allow(PairRule),
    /// A skew policy.
    Skew(Skew),
    /// Move one minor at a time.
    OneMinorAtATime(OneMinorAtATime),
    /// A policy on a kind of change.
    Transition(Transition),
}

impl Rule {
    /// The rule's id, if it has one.
    pub fn id(&self) -> Option<&str> {
        match self {
            Self::Requires(r) => r.id.as_deref(),
            Self::Deny(r) | Self::Allow(r) => r.id.as_deref(),
            Self::Skew(r) => r.id.as_deref(),
            Self::OneMinorAtATime(r) => r.id.as_deref(),
            Self::Transition(r) => r.id.as_deref(),
        }
    }

    /// The kind, as written in the serialized form.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Requires(_) => "requires",
            Self::Deny(_) => "deny",
            Self::Allow(_) => "allow",
            Self::Skew(_) => "skew",
            Self::OneMinorAtATime(_) => "oneMinorAtATime",
            Self::Transition(_) => "transition",
        }
    }

    /// The services the rule mentions, with the field each comes from.
    pub fn services(&self) -> Vec<(&'static str, &str)> {
        match self {
            Self::Requires(r) => vec![("service", &r.service), ("dependency", &r.dependency)],
            Self::Deny(r) | Self::Allow(r) => {
                vec![("a.service", &r.a.service), ("b.service", &r.b.service)]
            }
            Self::Skew(r) => vec![("client", &r.client), ("server", &r.server)],
            Self::OneMinorAtATime(r) => vec![("service", &r.service)],
            Self::Transition(r) => vec![("service", &r.service)],
        }
    }
}

/// The rules, validated against a registry.
///
/// ```
/// use serin_compat::{Matrix, Registry, Release, Rule, matrix::Requires, Selector};
/// let mut registry = Registry::new();
/// registry.add_release("api", Release::new("2.0.0".parse().unwrap())).unwrap();
/// registry.add_release("db", Release::new("1.4.0".parse().unwrap())).unwrap();
/// let rule = Rule::Requires(Requires {
///     id: Some("api-needs-db".into()), service: "api".into(), versions: Selector::Any,
///     dependency: "db".into(), req: ">=1.4".parse().unwrap(), reason: None });
/// let matrix = Matrix::new(vec![rule], &registry).unwrap();
/// assert_eq!(matrix.label(0), "rule api-needs-db");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Matrix {
    #[serde(with = "serde_yaml_ng::with::singleton_map_recursive")]
    rules: Vec<Rule>,
}

impl Matrix {
    /// Validates `rules` against `registry`: every service named exists, numbers make sense,
    /// no two rules share an id, and no allow contradicts a deny over the very same versions.
    pub fn new(rules: Vec<Rule>, registry: &Registry) -> Result<Self> {
        let matrix = Self { rules };
        matrix.validate(registry)?;
        Ok(matrix)
    }

    /// The rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// `rule <id>` or `rules[<index>]`, for messages.
    pub fn label(&self, index: usize) -> String {
        match self.rules.get(index).and_then(Rule::id) {
            Some(id) => format!("rule {id}"),
            None => format!("rules[{index}]"),
        }
    }

    /// Checks the rules against `registry` (called by [`Matrix::new`]).
    pub fn validate(&self, registry: &Registry) -> Result<()> {
        for (i, rule) in self.rules.iter().enumerate() {
            let path = format!("rules[{i}].{}", rule.kind());
            // An id is how messages name the rule, so it must name one rule.
            if let Some(id) = rule.id() {
                if id.trim().is_empty() {
                    return Err(Error::InvalidValue {
                        path: format!("{path}.id"),
                        value: id.to_owned(),
                        reason: "an id names the rule in messages; give a name or leave it out"
                            .into(),
                    });
                }
                if let Some(j) = self.rules[..i].iter().position(|r| r.id() == Some(id)) {
                    return Err(Error::InvalidValue {
                        path: format!("{path}.id"),
                        value: id.to_owned(),
                        reason: format!(
                            "rules[{j}] has the same id; each rule needs its own, as messages \
                             name rules by it"
                        ),
                    });
                }
            }
            for (field, service) in rule.services() {
                if !registry.has_service(service) {
                    return Err(Error::UnknownService {
                        path: format!("{path}.{field}"),
                        service: service.to_owned(),
                    });
                }
            }
            if let Rule::Requires(r) = rule
                && r.service == r.dependency
            {
                return Err(Error::InvalidValue {
                    path: format!("{path}.dependency"),
                    value: r.dependency.clone(),
                    reason: "a service cannot require itself; use skew for instance spread".into(),
                });
            }
            if let Rule::Transition(t) = rule
                && t.reason.trim().is_empty()
            {
                return Err(Error::InvalidValue {
                    path: format!("{path}.reason"),
                    value: String::new(),
                    reason: "say why the change is blocked or risky".into(),
                });
            }
            if let Rule::Skew(s) = rule
                && s.client == s.server
                && s.max_newer != 0
                && s.max_newer != s.max_older
            {
                return Err(Error::InvalidValue {
                    path: format!("{path}.maxNewer"),
                    value: s.max_newer.to_string(),
                    reason: format!(
                        "between instances of {} maxOlder ({}) bounds the spread either way; \
                         leave maxNewer out",
                        s.client, s.max_older
                    ),
                });
            }
            if let Rule::Skew(s) = rule
                && let Some((j, o)) = s
                    .overrides
                    .iter()
                    .enumerate()
                    .find(|(_, o)| o.max_older > s.max_older)
            {
                return Err(Error::InvalidValue {
                    path: format!("{path}.overrides[{j}].maxOlder"),
                    value: o.max_older.to_string(),
                    reason: format!(
                        "an override may only tighten maxOlder ({}), not widen it",
                        s.max_older
                    ),
                });
            }
        }
        for (i, a) in self.rules.iter().enumerate() {
            let Rule::Allow(allow) = a else { continue };
            for (j, d) in self.rules.iter().enumerate() {
                let Rule::Deny(deny) = d else { continue };
                let same = (allow.a.same_as(&deny.a) && allow.b.same_as(&deny.b))
                    || (allow.a.same_as(&deny.b) && allow.b.same_as(&deny.a));
                if same {
                    return Err(Error::ContradictoryRules {
                        first: self.label(i),
                        second: self.label(j),
                        reason: format!("one allows and one denies {} with {}", allow.a, allow.b),
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Release;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn registry() -> Registry {
        let mut r = Registry::new();
        for (s, ver) in [
            ("kubelet", "1.28.0"),
            ("kube-apiserver", "1.30.0"),
            ("db", "1.0.0"),
        ] {
            r.add_release(s, Release::new(v(ver))).unwrap();
        }
        r
    }

    fn kubelet_skew() -> Skew {
        Skew {
            id: None,
            client: "kubelet".into(),
            server: "kube-apiserver".into(),
            max_older: 3,
            max_newer: 0,
            overrides: vec![SkewOverride {
                below: v("1.25.0"),
                max_older: 2,
            }],
        }
    }

    #[test]
    fn skew_follows_kubernetes_table() {
        let s = kubelet_skew();
        assert!(s.violation(&v("1.27.0"), &v("1.30.0")).is_none());
        assert!(s.violation(&v("1.26.0"), &v("1.30.0")).is_some());
        assert!(s.violation(&v("1.31.0"), &v("1.30.0")).is_some());
        assert!(s.violation(&v("1.22.0"), &v("1.24.0")).is_none());
        assert!(s.violation(&v("1.22.0"), &v("1.25.0")).is_some());
        assert!(s.violation(&v("2.0.0"), &v("1.30.0")).is_some());
    }

    #[test]
    fn self_skew_bounds_spread() {
        let s = Skew {
            id: None,
            client: "kube-apiserver".into(),
            server: "kube-apiserver".into(),
            max_older: 1,
            max_newer: 1,
            overrides: vec![],
        };
        assert!(s.violation(&v("1.30.0"), &v("1.29.0")).is_none());
        assert!(s.violation(&v("1.28.0"), &v("1.30.0")).is_some());
    }

    #[test]
    fn self_skew_honours_overrides_and_refuses_a_different_max_newer() {
        let mut s = Skew {
            id: None,
            client: "kube-apiserver".into(),
            server: "kube-apiserver".into(),
            max_older: 2,
            max_newer: 0,
            overrides: vec![SkewOverride {
                below: v("1.25.0"),
                max_older: 1,
            }],
        };
        assert!(s.violation(&v("1.28.0"), &v("1.30.0")).is_none());
        let why = s
            .violation(&v("1.24.0"), &v("1.26.0"))
            .expect("too far apart");
        assert!(why.contains("at most 1 allowed"), "{why}");
        assert!(s.violation(&v("1.24.0"), &v("1.25.0")).is_none());
        Matrix::new(vec![Rule::Skew(s.clone())], &registry()).unwrap();
        s.max_newer = 3;
        let err = Matrix::new(vec![Rule::Skew(s)], &registry())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rules[0].skew.maxNewer") && err.contains("\"3\""),
            "{err}"
        );
    }

    #[test]
    fn change_kinds() {
        assert!(ChangeKind::Major.matches(&v("15.6.0"), &v("16.0.0")));
        assert!(!ChangeKind::Major.matches(&v("16.1.0"), &v("16.4.0")));
        assert!(ChangeKind::Minor.matches(&v("16.1.0"), &v("16.4.0")));
        assert!(ChangeKind::Patch.matches(&v("16.1.0"), &v("16.1.2")));
        assert!(ChangeKind::Downgrade.matches(&v("16.1.2"), &v("16.1.0")));
    }

    #[test]
    fn unknown_service_is_named() {
        let rule = Rule::OneMinorAtATime(OneMinorAtATime {
            id: None,
            service: "nope".into(),
        });
        let err = Matrix::new(vec![rule], &registry())
            .unwrap_err()
            .to_string();
        assert!(err.contains("rules[0].oneMinorAtATime.service") && err.contains("nope"));
    }

    #[test]
    fn contradictory_allow_and_deny_are_rejected() {
        let pair = PairRule {
            id: Some("x".into()),
            a: Target::new("db", Selector::Any),
            b: Target::new("kubelet", Selector::Any),
            reason: None,
        };
        let mut swapped = pair.clone();
        swapped.id = Some("y".into());
        std::mem::swap(&mut swapped.a, &mut swapped.b);
        let err =
            Matrix::new(vec![Rule::Allow(pair), Rule::Deny(swapped)], &registry()).unwrap_err();
        assert!(matches!(err, Error::ContradictoryRules { .. }));
    }

    #[test]
    fn an_allow_and_a_deny_of_one_version_written_differently_contradict() {
        let pair = |db: &str, kubelet: &str| PairRule {
            id: None,
            a: Target::new("db", Selector::parse(db, "t").unwrap()),
            b: Target::new("kubelet", Selector::parse(kubelet, "t").unwrap()),
            reason: None,
        };
        let matrix =
            |allow, deny| Matrix::new(vec![Rule::Allow(allow), Rule::Deny(deny)], &registry());
        let err = matrix(pair("1.1.0", "*"), pair("=1.1.0+a", "*")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rules[0] and rules[1] contradict each other: one allows and one denies db =1.1.0 with kubelet *"
        );
        assert!(matrix(pair("1.28.0", "=1.0.0-rc.1"), pair("=1.28.0", "1.0.0-rc.1")).is_err());
        // Ranges that only overlap are left to the deny, as before.
        assert!(matrix(pair("1.1.0", "*"), pair("=1.1", "*")).is_ok());
        assert!(matrix(pair("1.1.0", "*"), pair(">=1.1.0, <=1.1.0", "*")).is_ok());
    }

    #[test]
    fn ids_are_unique_and_not_blank() {
        let one_minor = |id: &str| {
            Rule::OneMinorAtATime(OneMinorAtATime {
                id: Some(id.into()),
                service: "db".into(),
            })
        };
        let err = Matrix::new(
            vec![one_minor("a"), one_minor("b"), one_minor("a")],
            &registry(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("rules[2].oneMinorAtATime.id")
                && err.contains("\"a\"")
                && err.contains("rules[0] has the same id"),
            "{err}"
        );
        let err = Matrix::new(vec![one_minor(" ")], &registry())
            .unwrap_err()
            .to_string();
        assert!(err.contains("rules[0].oneMinorAtATime.id"), "{err}");
        Matrix::new(vec![one_minor("a"), one_minor("b")], &registry()).unwrap();
    }

    #[test]
    fn override_may_not_widen() {
        let mut s = kubelet_skew();
        s.overrides[0].max_older = 5;
        let err = Matrix::new(vec![Rule::Skew(s)], &registry())
            .unwrap_err()
            .to_string();
        assert!(err.contains("overrides[0].maxOlder"), "{err}");
    }

    #[test]
    fn yaml_form() {
        let yaml = "- skew: {client: kubelet, server: kube-apiserver, maxOlder: 3}\n\
                    - oneMinorAtATime: {service: kube-apiserver}\n\
                    - requires: {service: kubelet, dependency: db, req: '>=1.0'}\n";
        let m: Matrix = serde_yaml_ng::from_str(yaml).unwrap();
        assert_eq!(m.rules().len(), 3);
        m.validate(&registry()).unwrap();
        assert!(serde_yaml_ng::from_str::<Matrix>("- skew: {client: a, sever: b}").is_err());
    }
}
