//! Which failures are worth another try, and how long to wait before it.
//!
//! Transient: connection errors, timeouts, HTTP 5xx, HTTP 429, and Prometheus' own `timeout`,
//! `canceled`, `unavailable` and `internal` error types. Never retried: any other 4xx and the
//! `bad_data` / `execution` error types (the same query would fail the same way), and answers that
//! cannot be read.
//!
//! An answer that carries warnings (see [`response`]) is transient too unless warnings are
//! accepted: a partial count can pass for a whole one, and a store that did not answer usually
//! does at the next attempt.

use std::time::Duration;

use super::response::{self, Answer, ResponseError};

/// Why an attempt did not give series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Worth retrying after a backoff.
    Transient(String),
    /// The attempt ran out of time (also retried).
    TimedOut,
    /// The query is wrong; not retried.
    BadQuery(String),
    /// The answer cannot be read; not retried.
    Malformed(String),
}

impl Failure {
    /// Whether another attempt may succeed.
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self, Failure::Transient(_) | Failure::TimedOut)
    }
}

/// Prometheus error types that say "try again later" rather than "your query is wrong".
fn transient_error_type(error_type: &str) -> bool {
    matches!(
        error_type,
        "timeout" | "canceled" | "unavailable" | "internal"
    )
}

/// A short, single-line excerpt of a body for error messages.
fn excerpt(body: &str) -> String {
    let one_line: String = body
        .chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if body.chars().count() > 200 {
        format!("{one_line}...")
    } else {
        one_line
    }
}

/// Classifies one HTTP answer; `accept_warnings` takes an answer that carries warnings as whole.
pub(crate) fn classify(status: u16, body: &str, accept_warnings: bool) -> Result<Answer, Failure> {
    let parsed = response::parse(body);
    match status {
        200..=299 => match parsed {
            Ok(answer) if answer.warnings.is_empty() || accept_warnings => Ok(answer),
            Ok(answer) => Err(Failure::Transient(format!(
                "the answer may be partial; it carries warnings: {} \
                 (set `acceptWarnings` to take such answers as whole)",
                excerpt(&answer.warnings.join("; "))
            ))),
            Err(ResponseError::Api { error_type, error }) => {
                if transient_error_type(&error_type) {
                    Err(Failure::Transient(format!("{error_type}: {error}")))
                } else {
                    Err(Failure::BadQuery(format!("{error_type}: {error}")))
                }
            }
            Err(ResponseError::Malformed(reason)) => Err(Failure::Malformed(reason)),
        },
        429 | 500..=599 => {
            let detail = match parsed {
                Err(ResponseError::Api { error_type, error }) => format!("{error_type}: {error}"),
                _ => excerpt(body),
            };
            Err(Failure::Transient(format!("HTTP {status}: {detail}")))
        }
        400..=499 => match parsed {
            // Prometheus answers `canceled` with 499, and it is as transient at any status.
            Err(ResponseError::Api { error_type, error }) if transient_error_type(&error_type) => {
                Err(Failure::Transient(format!(
                    "HTTP {status}: {error_type}: {error}"
                )))
            }
            Err(ResponseError::Api { error_type, error }) => {
                Err(Failure::BadQuery(format!("{error_type}: {error}")))
            }
            _ => Err(Failure::Malformed(format!(
                "HTTP {status} without a Prometheus error ({}): {}",
                // Refused by Prometheus' basic auth (`--web.config.file`) or a proxy before it.
                if matches!(status, 401 | 403) {
                    "are the credentials right (the user and password, or bearerTokenFile)?"
                } else {
                    "is the base URL right?"
                },
                excerpt(body)
            ))),
        },
        _ => Err(Failure::Malformed(format!(
            "unexpected HTTP {status}: {}",
            excerpt(body)
        ))),
    }
}

/// The wait before retry number `retry` (0 for the first retry): `initial` doubled each time,
/// capped at `max`. No jitter, so retries are reproducible; a single shell polls one Prometheus,
/// so there is no herd to spread.
pub(crate) fn backoff(retry: u32, initial: Duration, max: Duration) -> Duration {
    let factor = 2u32.checked_pow(retry).unwrap_or(u32::MAX);
    initial.checked_mul(factor).unwrap_or(max).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
    const BAD_DATA: &str =
        r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error"}"#;
    const EXECUTION: &str =
        r#"{"status":"error","errorType":"execution","error":"many-to-many matching not allowed"}"#;
    const TIMEOUT: &str = r#"{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}"#;
    const CANCELED: &str =
        r#"{"status":"error","errorType":"canceled","error":"context canceled"}"#;

    #[test]
    fn success_and_permanent_failures() {
        assert_eq!(classify(200, OK, false).map(|a| a.series), Ok(vec![]));
        for (status, body) in [(400, BAD_DATA), (422, EXECUTION), (200, BAD_DATA)] {
            let f = classify(status, body, false).unwrap_err();
            assert!(
                matches!(f, Failure::BadQuery(_)) && !f.is_transient(),
                "{status}: {f:?}"
            );
        }
        let f = classify(404, "404 page not found", false).unwrap_err();
        assert!(
            matches!(&f, Failure::Malformed(r) if r.contains("404") && r.contains("base URL")),
            "{f:?}"
        );
        // A proxy in front of Prometheus that refuses the credentials: the URL is right.
        for status in [401, 403] {
            let f = classify(status, "Unauthorized", false).unwrap_err();
            assert!(
                matches!(&f, Failure::Malformed(r) if r.contains(&status.to_string())
                    && r.contains("credentials") && !r.contains("base URL")),
                "{f:?}"
            );
        }
        assert!(matches!(
            classify(200, "<html>", false),
            Err(Failure::Malformed(_))
        ));
        assert!(matches!(
            classify(302, "", false),
            Err(Failure::Malformed(_))
        ));
    }

    #[test]
    fn transient_failures_are_retried() {
        for (status, body) in [
            (503, TIMEOUT),
            (500, "oops"),
            (502, "<html>bad gateway</html>"),
            (429, "slow down"),
            (200, TIMEOUT),
            (499, CANCELED),
        ] {
            let f = classify(status, body, false).unwrap_err();
            assert!(f.is_transient(), "{status} {body}: {f:?}");
        }
        assert!(Failure::TimedOut.is_transient());
        let Err(Failure::Transient(reason)) = classify(503, TIMEOUT, false) else {
            panic!("503 must be transient")
        };
        assert!(
            reason.contains("HTTP 503") && reason.contains("timed out"),
            "{reason}"
        );
    }

    #[test]
    fn warned_answers_are_retried_unless_accepted() {
        let partial = r#"{"status":"success","data":{"resultType":"vector","result":[]},"warnings":["store-2 did not answer"]}"#;
        let Err(Failure::Transient(reason)) = classify(200, partial, false) else {
            panic!("a warned answer must be transient")
        };
        assert!(
            reason.contains("store-2 did not answer") && reason.contains("acceptWarnings"),
            "{reason}"
        );
        assert_eq!(classify(200, partial, true).map(|a| a.series), Ok(vec![]));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (i, m) = (Duration::from_millis(100), Duration::from_secs(1));
        let waits: Vec<u128> = (0..6).map(|r| backoff(r, i, m).as_millis()).collect();
        assert_eq!(waits, vec![100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(backoff(u32::MAX, i, m), m);
    }

    #[test]
    fn long_bodies_are_cut() {
        let Err(Failure::Transient(reason)) = classify(500, &"x\n".repeat(1_000), false) else {
            panic!("500 must be transient")
        };
        assert!(reason.len() < 300 && reason.ends_with("...") && !reason.contains('\n'));
    }
}
