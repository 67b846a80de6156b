//! The parts of a split beside its weights: [`MatchRoute`]s that send matching requests to one
//! backend, a [`Mirror`] that copies a share of requests to a shadow backend, and
//! [`StickySession`]s that keep a user on the backend they were first sent to.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration;
use crate::error::{Error, Result};
use crate::name::{BackendName, validate_token, validate_value};
use crate::weight::{Percent, Weight};

/// What part of a request a [`MatchRoute`] looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MatchOn {
    /// An HTTP header (names compare case-insensitively and are kept lowercase).
    Header,
    /// A cookie (names compare case-sensitively).
    Cookie,
}

impl fmt::Display for MatchOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchOn::Header => "header",
            MatchOn::Cookie => "cookie",
        })
    }
}

/// How a [`MatchRoute`] compares the value. Regular expressions are deliberately absent: exact
/// and prefix matches are what every router supports alike.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ValueMatch {
    /// The value equals this string.
    Exact(String),
    /// The value starts with this (non-empty) string.
    Prefix(String),
}

impl ValueMatch {
    /// The string compared against.
    pub fn as_str(&self) -> &str {
        match self {
            ValueMatch::Exact(s) | ValueMatch::Prefix(s) => s,
        }
    }

    /// Whether `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            ValueMatch::Exact(s) => value == s,
            ValueMatch::Prefix(p) => value.starts_with(p.as_str()),
        }
    }
}

/// A rule that sends every request carrying a header or cookie value to one backend, whatever
/// the weights say — e.g. `x-canary: always` → `canary`, so testers reach the new version at 0%.
///
/// Routes are tried in order; the first that matches wins; requests matching none follow the
/// weights. Serialized flat:
/// `{"header": "x-canary", "exact": "always", "backend": "canary"}` or
/// `{"cookie": "beta", "prefix": "yes", "backend": "canary"}`.
///
/// ```
/// use serin_traffic::{MatchRoute, ValueMatch};
///
/// let route = MatchRoute::header("X-Canary", ValueMatch::Exact("always".into()), "canary")?;
/// assert_eq!(route.name(), "x-canary");
/// assert!(route.matches_value("always"));
/// assert!(MatchRoute::header("x canary", ValueMatch::Exact("always".into()), "canary").is_err());
/// # Ok::<(), serin_traffic::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawRoute", into = "RawRoute")]
pub struct MatchRoute {
    on: MatchOn,
    name: String,
    value: ValueMatch,
    backend: BackendName,
}

impl MatchRoute {
    /// A route on header `name` (kept lowercase).
    pub fn header(name: &str, value: ValueMatch, backend: &str) -> Result<Self> {
        Self::new(MatchOn::Header, name, value, backend)
    }

    /// A route on cookie `name`.
    pub fn cookie(name: &str, value: ValueMatch, backend: &str) -> Result<Self> {
        Self::new(MatchOn::Cookie, name, value, backend)
    }

    /// A route on a header or cookie, checked: the name must be an HTTP token, the value
    /// non-empty printable ASCII (no separators for cookies), the backend a valid name.
    pub fn new(on: MatchOn, name: &str, value: ValueMatch, backend: &str) -> Result<Self> {
        let field = on.to_string();
        validate_token(&field, name)?;
        let (value_field, cookie) = match (&value, on) {
            (ValueMatch::Exact(_), MatchOn::Header) => ("exact", false),
            (ValueMatch::Prefix(_), MatchOn::Header) => ("prefix", false),
            (ValueMatch::Exact(_), MatchOn::Cookie) => ("exact", true),
            (ValueMatch::Prefix(_), MatchOn::Cookie) => ("prefix", true),
        };
        validate_value(value_field, value.as_str(), cookie)?;
        let backend = BackendName::named("backend", backend)?;
        let name = match on {
            MatchOn::Header => name.to_ascii_lowercase(),
            MatchOn::Cookie => name.to_owned(),
        };
        Ok(MatchRoute {
            on,
            name,
            value,
            backend,
        })
    }

    /// Header or cookie.
    pub fn on(&self) -> MatchOn {
        self.on
    }

    /// The header (lowercase) or cookie name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How the value is compared.
    pub fn value(&self) -> &ValueMatch {
        &self.value
    }

    /// Where matching requests go.
    pub fn backend(&self) -> &BackendName {
        &self.backend
    }

    /// Whether a request whose header or cookie holds `value` matches this route.
    pub fn matches_value(&self, value: &str) -> bool {
        self.value.matches(value)
    }
}

impl fmt::Display for MatchRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.value {
            ValueMatch::Exact(_) => "=",
            ValueMatch::Prefix(_) => "^=",
        };
        write!(
            f,
            "{} {}{}{} -> {}",
            self.on,
            self.name,
            op,
            self.value.as_str(),
            self.backend
        )
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RawRoute {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cookie: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prefix: Option<String>,
    backend: String,
}

impl TryFrom<RawRoute> for MatchRoute {
    type Error = Error;
    fn try_from(r: RawRoute) -> Result<Self> {
        let (on, name) = match (r.header, r.cookie) {
            (Some(h), None) => (MatchOn::Header, h),
            (None, Some(c)) => (MatchOn::Cookie, c),
            (Some(h), Some(c)) => {
                return Err(Error::invalid(
                    "cookie",
                    c,
                    format!("a route matches one thing; it already matches header `{h}`"),
                ));
            }
            (None, None) => {
                return Err(Error::invalid(
                    "header",
                    "(missing)",
                    "a route needs `header` or `cookie`",
                ));
            }
        };
        let value = match (r.exact, r.prefix) {
            (Some(e), None) => ValueMatch::Exact(e),
            (None, Some(p)) => ValueMatch::Prefix(p),
            (Some(_), Some(p)) => {
                return Err(Error::invalid(
                    "prefix",
                    p,
                    "a route has either `exact` or `prefix`, not both",
                ));
            }
            (None, None) => {
                return Err(Error::invalid(
                    "exact",
                    "(missing)",
                    "a route needs `exact` or `prefix`",
                ));
            }
        };
        MatchRoute::new(on, &name, value, &r.backend)
    }
}

impl From<MatchRoute> for RawRoute {
    fn from(m: MatchRoute) -> Self {
        let (header, cookie) = match m.on {
            MatchOn::Header => (Some(m.name), None),
            MatchOn::Cookie => (None, Some(m.name)),
        };
        let (exact, prefix) = match m.value {
            ValueMatch::Exact(e) => (Some(e), None),
            ValueMatch::Prefix(p) => (None, Some(p)),
        };
        RawRoute {
            header,
            cookie,
            exact,
            prefix,
            backend: m.backend.into(),
        }
    }
}

/// A copy of a share of requests sent to a shadow backend, whose responses are discarded:
/// the new version sees real traffic while users only ever see the old one.
///
/// Serialized as `{"backend": "shadow", "percent": 10}`.
///
/// ```
/// use serin_traffic::{Mirror, Weight};
///
/// let m = Mirror::new("shadow", Weight::from_percent(10)?)?;
/// assert_eq!(m.backend().as_str(), "shadow");
/// assert!(Mirror::new("shadow", Weight::ZERO).is_err());
/// # Ok::<(), serin_traffic::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawMirror", into = "RawMirror")]
pub struct Mirror {
    backend: BackendName,
    percent: Weight,
}

impl Mirror {
    /// Mirror `percent` of requests (more than zero) to `backend`.
    pub fn new(backend: &str, percent: Weight) -> Result<Self> {
        let backend = BackendName::named("backend", backend)?;
        if percent.is_zero() {
            return Err(Error::invalid(
                "percent",
                percent,
                "must be more than 0% (leave the mirror out instead)",
            ));
        }
        Ok(Mirror { backend, percent })
    }

    /// The shadow backend.
    pub fn backend(&self) -> &BackendName {
        &self.backend
    }

    /// The share of requests copied.
    pub fn percent(&self) -> Weight {
        self.percent
    }
}

impl fmt::Display for Mirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mirror {} -> {}", self.percent, self.backend)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RawMirror {
    backend: String,
    percent: Percent,
}

impl TryFrom<RawMirror> for Mirror {
    type Error = Error;
    fn try_from(r: RawMirror) -> Result<Self> {
        Mirror::new(&r.backend, r.percent.weight("percent")?)
    }
}

impl From<Mirror> for RawMirror {
    fn from(m: Mirror) -> Self {
        RawMirror {
            backend: m.backend.into(),
            percent: m.percent.into(),
        }
    }
}

/// Session affinity: the router sets `cookie` on a user's first response, naming the backend
/// chosen by the weights, and keeps that user there for `ttl` — so a user does not flip between
/// versions from one request to the next during a canary.
///
/// A cookie pins only to a backend the split still gives weight: one naming a backend at 0% (or
/// one the split no longer names) is ignored and the user is chosen again by the weights, so a
/// rollback, which keeps sticky sessions, leaves no one on the version it took traffic from.
/// Match routes still come first.
///
/// Serialized as `{"cookie": "serin-backend", "ttl": "1h"}` (the TTL also reads milliseconds).
///
/// ```
/// use std::time::Duration;
/// use serin_traffic::StickySession;
///
/// let s = StickySession::new("serin-backend", Duration::from_secs(3600))?;
/// assert_eq!(s.cookie(), "serin-backend");
/// assert!(StickySession::new("serin-backend", Duration::ZERO).is_err());
/// # Ok::<(), serin_traffic::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawSticky", into = "RawSticky")]
pub struct StickySession {
    cookie: String,
    ttl: Duration,
}

impl StickySession {
    /// Sticky sessions through cookie `cookie` (an HTTP token) lasting `ttl`: a whole number of
    /// seconds, at least one. A cookie's `Max-Age` counts whole seconds: a TTL below one would
    /// set `Max-Age=0`, which deletes the cookie instead of keeping the user on their backend,
    /// and a fraction of a second would be rounded by every router.
    pub fn new(cookie: &str, ttl: Duration) -> Result<Self> {
        validate_token("cookie", cookie)?;
        if ttl < Duration::from_secs(1) {
            return Err(Error::invalid(
                "ttl",
                duration::human(ttl),
                "must be at least 1s (cookies count their lifetime in whole seconds)",
            ));
        }
        if ttl.subsec_nanos() != 0 {
            return Err(Error::invalid(
                "ttl",
                duration::human(ttl),
                "must be a whole number of seconds (cookies count their lifetime in whole \
                 seconds)",
            ));
        }
        Ok(StickySession {
            cookie: cookie.to_owned(),
            ttl,
        })
    }

    /// The cookie's name.
    pub fn cookie(&self) -> &str {
        &self.cookie
    }

    /// How long a user stays on their backend.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

impl fmt::Display for StickySession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sticky cookie {} for {}",
            self.cookie,
            duration::human(self.ttl)
        )
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RawSticky {
    cookie: String,
    #[serde(with = "duration")]
    ttl: Duration,
}

impl TryFrom<RawSticky> for StickySession {
    type Error = Error;
    fn try_from(r: RawSticky) -> Result<Self> {
        StickySession::new(&r.cookie, r.ttl)
    }
}

impl From<StickySession> for RawSticky {
    fn from(s: StickySession) -> Self {
        RawSticky {
            cookie: s.cookie,
            ttl: s.ttl,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_read_and_write_flat() {
        let json = r#"{"header":"X-Canary","exact":"always","backend":"canary"}"#;
        let r: MatchRoute = serde_json::from_str(json).unwrap();
        assert_eq!(r.on(), MatchOn::Header);
        assert_eq!(r.name(), "x-canary");
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"header":"x-canary","exact":"always","backend":"canary"}"#
        );
        let c: MatchRoute =
            serde_json::from_str(r#"{"cookie":"beta","prefix":"yes","backend":"canary"}"#).unwrap();
        assert!(c.matches_value("yes-please"));
        assert!(!c.matches_value("no"));
        assert_eq!(c.to_string(), "cookie beta^=yes -> canary");
    }

    #[test]
    fn malformed_routes_name_the_field() {
        for (json, field) in [
            (
                r#"{"header":"a","cookie":"b","exact":"x","backend":"c"}"#,
                "cookie",
            ),
            (r#"{"exact":"x","backend":"c"}"#, "header"),
            (r#"{"header":"a","backend":"c"}"#, "exact"),
            (
                r#"{"header":"a","exact":"x","prefix":"y","backend":"c"}"#,
                "prefix",
            ),
            (r#"{"header":"a b","exact":"x","backend":"c"}"#, "header"),
            (r#"{"cookie":"a","exact":"x;y","backend":"c"}"#, "exact"),
            (r#"{"header":"a","exact":"x","backend":"C"}"#, "backend"),
            (
                r#"{"header":"a","exact":"x","backend":"c","regex":".*"}"#,
                "regex",
            ),
        ] {
            let msg = serde_json::from_str::<MatchRoute>(json)
                .unwrap_err()
                .to_string();
            assert!(msg.contains(field), "{json}: {msg}");
        }
    }

    #[test]
    fn mirror_and_sticky_validate() {
        let m: Mirror = serde_json::from_str(r#"{"backend":"shadow","percent":12.5}"#).unwrap();
        assert_eq!(m.percent().bps(), 1250);
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"backend":"shadow","percent":12.5}"#
        );
        let msg = serde_json::from_str::<Mirror>(r#"{"backend":"shadow","percent":0}"#)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("percent"), "{msg}");
        let msg = serde_json::from_str::<Mirror>(r#"{"backend":"shadow","percent":120}"#)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("percent") && msg.contains("100%"), "{msg}");

        let s: StickySession =
            serde_json::from_str(r#"{"cookie":"serin","ttl":86400000}"#).unwrap();
        assert_eq!(s.ttl(), Duration::from_secs(86_400));
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"cookie":"serin","ttl":"1day"}"#
        );
        assert!(serde_json::from_str::<StickySession>(r#"{"cookie":"serin","ttl":0}"#).is_err());
        let msg = serde_json::from_str::<StickySession>(r#"{"cookie":"serin","ttl":"500ms"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("ttl `500ms`") && msg.contains("at least 1s"),
            "{msg}"
        );
        assert!(StickySession::new("serin", Duration::from_secs(1)).is_ok());
        // A cookie's Max-Age cannot say 1.5s: a router would round it, so it is refused.
        let msg = serde_json::from_str::<StickySession>(r#"{"cookie":"serin","ttl":"1500ms"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("ttl `1s 500ms`") && msg.contains("whole number of seconds"),
            "{msg}"
        );
        assert!(StickySession::new("serin", Duration::from_millis(60_001)).is_err());
        assert!(serde_json::from_str::<StickySession>(r#"{"cookie":"a b","ttl":"1h"}"#).is_err());
    }
}
