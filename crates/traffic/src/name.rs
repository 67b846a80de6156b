//! Names that end up in router config: [`BackendName`]s and HTTP header/cookie tokens.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The name of a backend a split routes to — usually a track (`stable`, `canary`, `blue`,
/// `green`) or another named group of instances.
///
/// A DNS-1123 label (lowercase letters, digits and `-`, at most 63 characters, starting and
/// ending with a letter or digit), so the same name works as a Kubernetes Service suffix, a
/// label value and a proxy upstream name. Serialized as the plain string.
///
/// ```
/// use serin_traffic::BackendName;
///
/// assert_eq!(BackendName::new("canary")?.as_str(), "canary");
/// assert!(BackendName::new("Canary").is_err());
/// # Ok::<(), serin_traffic::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BackendName(String);

impl BackendName {
    /// A backend name, checked to be a DNS-1123 label.
    pub fn new(name: &str) -> Result<Self> {
        Self::named("backend", name)
    }

    /// The name as written in config.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn named(field: &str, name: &str) -> Result<Self> {
        validate_label(field, name)?;
        Ok(BackendName(name.to_owned()))
    }
}

impl FromStr for BackendName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl TryFrom<String> for BackendName {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        validate_label("backend", &s)?;
        Ok(BackendName(s))
    }
}

impl From<BackendName> for String {
    fn from(n: BackendName) -> String {
        n.0
    }
}

impl AsRef<str> for BackendName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BackendName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks that `value` is a DNS-1123 label; `field` names it in the error.
fn validate_label(field: &str, value: &str) -> Result<()> {
    let reason = if value.is_empty() {
        Some("must not be empty")
    } else if value.len() > 63 {
        Some("must be at most 63 characters")
    } else if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Some("may only hold lowercase letters, digits and '-' (a DNS-1123 label)")
    } else if value.starts_with('-') || value.ends_with('-') {
        Some("must start and end with a letter or digit")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::invalid(field, value, reason)),
        None => Ok(()),
    }
}

/// Checks that `value` is an HTTP token (RFC 9110 `tchar`s), as header and cookie names are.
pub(crate) fn validate_token(field: &str, value: &str) -> Result<()> {
    const SPECIALS: &[u8] = b"!#$%&'*+-.^_`|~";
    if value.is_empty() {
        return Err(Error::invalid(field, value, "must not be empty"));
    }
    if value.len() > 256 {
        return Err(Error::invalid(
            field,
            value,
            "must be at most 256 characters",
        ));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || SPECIALS.contains(&b))
    {
        return Err(Error::invalid(
            field,
            value,
            "may only hold letters, digits and !#$%&'*+-.^_`|~ (an HTTP token)",
        ));
    }
    Ok(())
}

/// Checks that `value` can appear in a header or cookie value: non-empty, visible ASCII or
/// spaces, without leading or trailing space, and for cookies none of `"`, `,`, `;`, `\`.
pub(crate) fn validate_value(field: &str, value: &str, cookie: bool) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(field, value, "must not be empty"));
    }
    if value.len() > 1024 {
        return Err(Error::invalid(
            field,
            value,
            "must be at most 1024 characters",
        ));
    }
    if value.starts_with(' ') || value.ends_with(' ') {
        return Err(Error::invalid(
            field,
            value,
            "must not start or end with a space",
        ));
    }
    if !value.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        return Err(Error::invalid(
            field,
            value,
            "may only hold visible ASCII characters and spaces",
        ));
    }
    if cookie && value.bytes().any(|b| b" \",;\\".contains(&b)) {
        return Err(Error::invalid(
            field,
            value,
            "a cookie value may not hold spaces, '\"', ',', ';' or '\\'",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_names_are_dns_labels() {
        for ok in ["stable", "canary", "shadow-1", "a", &"x".repeat(63)] {
            assert!(BackendName::new(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("Blue", "lowercase"),
            ("-a", "start and end"),
            ("a_b", "lowercase"),
            (&"x".repeat(64), "63"),
        ] {
            let msg = BackendName::new(bad).unwrap_err().to_string();
            assert!(msg.contains("backend") && msg.contains(why), "{bad}: {msg}");
        }
        assert!(serde_json::from_str::<BackendName>("\"Not Valid\"").is_err());
        assert_eq!(
            serde_json::from_str::<BackendName>("\"green\"").unwrap(),
            BackendName::new("green").unwrap()
        );
    }

    #[test]
    fn tokens_and_values() {
        assert!(validate_token("h", "x-canary").is_ok());
        assert!(validate_token("h", "x canary").is_err());
        assert!(validate_token("h", "").is_err());
        assert!(validate_value("v", "always", false).is_ok());
        assert!(validate_value("v", "a b", false).is_ok());
        assert!(validate_value("v", "a b", true).is_err());
        assert!(validate_value("v", "a;b", true).is_err());
        assert!(validate_value("v", "tab\there", false).is_err());
        assert!(validate_value("v", " lead", false).is_err());
    }
}
