//! Changes that other breaking-change tools found, read from their JSON output.
//!
//! Serin diffs the [`Endpoint`](super::Endpoint) surfaces a registry describes, but most teams
//! already run a specialised tool on their real specs: oasdiff on OpenAPI documents, buf on
//! protobuf files. Their findings become [`Change`]s, which a release's
//! [`ProvidedApi::reported`](crate::registry::ProvidedApi::reported) carries into validation,
//! where they count like Serin's own: as findings, and in the check that the API's version
//! was bumped enough.

use serde::Deserialize;

use super::{Bump, Change};
use crate::error::{Error, Result};
use crate::validation::Severity;

/// One entry of `oasdiff breaking` or `oasdiff changelog` output (`--format json`).
#[derive(Deserialize)]
struct OasdiffChange {
    id: String,
    #[serde(default)]
    text: String,
    level: u8,
    #[serde(default)]
    operation: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    source: String,
}

/// The object oasdiff's service wraps its changes in (`{"changes": [...], "diff_empty": false}`).
#[derive(Deserialize)]
struct OasdiffWrapped {
    changes: Vec<OasdiffChange>,
}

/// Reads the changes oasdiff reported for `api` from the JSON array that `oasdiff breaking
/// --format json` (or `oasdiff changelog --format json`) prints, or from the object that wraps
/// it (`{"changes": [...]}`, oasdiff's wrapped output).
///
/// Output with no changes is `[]`, as oasdiff prints it. Empty output is an error rather than
/// no changes: it is what a run that failed before printing leaves, and reading it as a clean
/// diff would let the breaking changes it did not report through.
///
/// Levels map as oasdiff means them: `3` (error) is a breaking change, `2` (warning) a change
/// that may break clients, both needing a major bump; `1` (info) is a compatible change, which
/// needs a minor one. Each change's id is oasdiff's, prefixed `oasdiff.`; its location is
/// `<api> <METHOD> <path>` (or the spec's section for a change outside the paths).
///
/// ```
/// use serin_compat::breaking::{from_oasdiff, Bump};
/// let json = r#"[{"id": "response-property-removed", "level": 3, "operation": "GET",
///     "path": "/orders/{id}", "text": "removed the required property 'total'"}]"#;
/// let changes = from_oasdiff("orders", json).unwrap();
/// assert_eq!(changes[0].id, "oasdiff.response-property-removed");
/// assert_eq!(changes[0].location, "orders GET /orders/{id}");
/// assert_eq!(changes[0].required_bump, Bump::Major);
/// ```
pub fn from_oasdiff(api: &str, json: &str) -> Result<Vec<Change>> {
    if json.trim().is_empty() {
        return Err(Error::Parse {
            format: "JSON",
            reason: format!(
                "oasdiff output for api {api} is empty: oasdiff prints `[]` when it finds no \
                 changes, so an empty output is a run that failed (see its stderr)"
            ),
        });
    }
    // Read by its shape rather than by trying both, so that an error names the entry and
    // field that is wrong rather than the form that did not match.
    let entries = if json.trim_start().starts_with('{') {
        serde_json::from_str::<OasdiffWrapped>(json).map(|w| w.changes)
    } else {
        serde_json::from_str::<Vec<OasdiffChange>>(json)
    }
    .map_err(|e| Error::Parse {
        format: "JSON",
        reason: format!("oasdiff output for api {api}: {e}"),
    })?;
    entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let (severity, required_bump) = match e.level {
                3 => (Severity::Error, Bump::Major),
                2 => (Severity::Warn, Bump::Major),
                1 => (Severity::Info, Bump::Minor),
                other => {
                    return Err(Error::InvalidValue {
                        path: format!("oasdiff output for api {api}: [{i}].level"),
                        value: other.to_string(),
                        reason: "must be 1 (info), 2 (warning) or 3 (error)".into(),
                    });
                }
            };
            let endpoint: Vec<&str> = [e.operation.as_str(), e.path.as_str()]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect();
            let place = if endpoint.is_empty() {
                e.source.as_str()
            } else {
                &endpoint.join(" ")
            };
            Ok(Change {
                id: format!("oasdiff.{}", e.id),
                severity,
                required_bump,
                location: format!("{api} {place}").trim_end().to_owned(),
                message: if e.text.is_empty() { e.id } else { e.text },
            })
        })
        .collect()
}

/// One annotation of `buf breaking --error-format json` output (one JSON object a line).
#[derive(Deserialize)]
struct BufAnnotation {
    #[serde(default)]
    path: String,
    #[serde(default)]
    start_line: u64,
    #[serde(default)]
    start_column: u64,
    #[serde(rename = "type")]
    rule: String,
    #[serde(default)]
    message: String,
}

/// Reads the changes buf reported for `api` from the output of `buf breaking --error-format
/// json`: one JSON object a line, each a rule (`FIELD_NO_DELETE`) that the change breaks.
///
/// Every such change is breaking under the category buf checked, so each is an error that
/// needs a major bump. Ids are buf's rule names prefixed `buf.`; locations are
/// `<api> <file>:<line>:<column>`, or only `<api>` for a deleted file (buf gives it no path; its
/// message names it). Blank lines are skipped; a line that is not an annotation is an error
/// naming it. Checked against the output of buf 1.75.
///
/// ```
/// use serin_compat::breaking::from_buf;
/// let out = r#"{"path":"orders/v1/orders.proto","start_line":12,"start_column":3,"type":"FIELD_NO_DELETE","message":"Previously present field \"4\" with name \"total\" on message \"Order\" was deleted."}"#;
/// let changes = from_buf("orders.v1", out).unwrap();
/// assert_eq!(changes[0].id, "buf.FIELD_NO_DELETE");
/// assert_eq!(changes[0].location, "orders.v1 orders/v1/orders.proto:12:3");
/// ```
pub fn from_buf(api: &str, output: &str) -> Result<Vec<Change>> {
    output
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let a: BufAnnotation = serde_json::from_str(line).map_err(|e| Error::Parse {
                format: "JSON",
                reason: format!("buf output for api {api}, line {}: {e}", i + 1),
            })?;
            let place = match (a.path.as_str(), a.start_line) {
                ("", _) => String::new(),
                (path, 0) => format!(" {path}"),
                (path, line) => format!(" {path}:{line}:{}", a.start_column.max(1)),
            };
            Ok(Change {
                id: format!("buf.{}", a.rule),
                severity: Severity::Error,
                required_bump: Bump::Major,
                location: format!("{api}{place}"),
                message: if a.message.is_empty() {
                    a.rule
                } else {
                    a.message
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oasdiff_levels_locations_and_sections() {
        let json = r#"[
            {"id": "response-property-removed", "text": "removed 'total'", "level": 3,
             "operation": "GET", "operationId": "getOrder", "path": "/orders/{id}",
             "source": "openapi.yaml", "section": "paths"},
            {"id": "response-optional-property-removed", "level": 2, "operation": "GET",
             "path": "/orders"},
            {"id": "endpoint-added", "text": "endpoint added", "level": 1, "operation": "POST",
             "path": "/refunds"},
            {"id": "api-schema-removed", "text": "removed the schema 'Legacy'", "level": 3,
             "source": "components"}
        ]"#;
        let changes = from_oasdiff("orders", json).expect("read");
        let got: Vec<_> = changes
            .iter()
            .map(|c| {
                (
                    c.id.as_str(),
                    c.severity,
                    c.required_bump,
                    c.location.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "oasdiff.response-property-removed",
                    Severity::Error,
                    Bump::Major,
                    "orders GET /orders/{id}"
                ),
                (
                    "oasdiff.response-optional-property-removed",
                    Severity::Warn,
                    Bump::Major,
                    "orders GET /orders"
                ),
                (
                    "oasdiff.endpoint-added",
                    Severity::Info,
                    Bump::Minor,
                    "orders POST /refunds"
                ),
                (
                    "oasdiff.api-schema-removed",
                    Severity::Error,
                    Bump::Major,
                    "orders components"
                ),
            ]
        );
        // Without a text, the id says what happened.
        assert_eq!(changes[1].message, "response-optional-property-removed");
        assert!(from_oasdiff("orders", "[]").expect("empty").is_empty());
        // The service's wrapped form reads the same.
        let wrapped = r#"{"changes": [{"id": "endpoint-added", "level": 1, "operation": "POST",
            "path": "/refunds"}], "diff_empty": false}"#;
        let changes = from_oasdiff("orders", wrapped).expect("wrapped");
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].location, "orders POST /refunds");
        // A bad entry of the wrapped form is named as one of the bare array is.
        let err = from_oasdiff("orders", r#"{"changes": [{"level": 3}]}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `id`"), "{err}");
    }

    #[test]
    fn oasdiff_output_that_is_not_oasdiffs_is_an_error_naming_what() {
        let err = from_oasdiff("orders", r#"[{"id": "x", "level": 4}]"#).unwrap_err();
        assert!(
            err.to_string().contains("[0].level") && err.to_string().contains('4'),
            "{err}"
        );
        let err = from_oasdiff("orders", " \n").unwrap_err().to_string();
        assert!(err.contains("is empty") && err.contains("`[]`"), "{err}");
        for bad in ["", "{}", "[{\"level\": 3}]", "error: no such file"] {
            let err = from_oasdiff("orders", bad).unwrap_err().to_string();
            assert!(
                err.contains("oasdiff output for api orders"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn buf_lines_become_breaking_changes() {
        let out = concat!(
            r#"{"path":"a.proto","start_line":4,"start_column":3,"end_line":4,"end_column":20,"type":"FIELD_SAME_TYPE","message":"Field \"1\" changed type."}"#,
            "\n\n",
            r#"{"path":"b.proto","type":"FILE_NO_DELETE","message":"Previously present file \"b.proto\" was deleted."}"#,
            "\n",
            r#"{"type":"PACKAGE_NO_DELETE"}"#,
            "\n",
        );
        let changes = from_buf("shop.v1", out).expect("read");
        let got: Vec<_> = changes
            .iter()
            .map(|c| (c.id.as_str(), c.location.as_str(), c.severity))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "buf.FIELD_SAME_TYPE",
                    "shop.v1 a.proto:4:3",
                    Severity::Error
                ),
                ("buf.FILE_NO_DELETE", "shop.v1 b.proto", Severity::Error),
                ("buf.PACKAGE_NO_DELETE", "shop.v1", Severity::Error),
            ]
        );
        assert_eq!(changes[2].message, "PACKAGE_NO_DELETE");
        let err = from_buf("shop.v1", "{\"type\":\"X\"}\na.proto:1:1:Field deleted.")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    /// The output of buf 1.75 (`buf breaking --against ../old --error-format json`, default
    /// FILE category) for `orders.v1` after: a file deleted, a field deleted, one retyped
    /// (int64 to int32), one renamed, an enum value deleted and an RPC deleted.
    #[test]
    fn real_buf_output_is_read_whole() {
        let out = include_str!("../../fixtures/reported/buf_1.75_breaking.jsonl");
        let changes = from_buf("orders.v1", out).expect("read");
        let got: Vec<_> = changes
            .iter()
            .map(|c| (c.id.as_str(), c.location.as_str()))
            .collect();
        let file = "orders.v1 orders/v1/orders.proto";
        assert_eq!(
            got,
            [
                // A deleted file has no path of its own: the message names it.
                ("buf.FILE_NO_DELETE", "orders.v1"),
                ("buf.FIELD_NO_DELETE", &*format!("{file}:4:1")),
                ("buf.FIELD_SAME_TYPE", &*format!("{file}:6:3")),
                ("buf.FIELD_SAME_JSON_NAME", &*format!("{file}:7:3")),
                ("buf.FIELD_SAME_NAME", &*format!("{file}:7:10")),
                ("buf.ENUM_VALUE_NO_DELETE", &*format!("{file}:12:1")),
                ("buf.RPC_NO_DELETE", &*format!("{file}:17:1")),
            ]
        );
        assert!(changes[0].message.contains("orders/v1/refunds.proto"));
        assert!(
            changes
                .iter()
                .all(|c| c.severity == Severity::Error && c.required_bump == Bump::Major)
        );
    }
}
