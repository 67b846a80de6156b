//! Everything as one document: the registry, the rules and the upgrade graphs.
//!
//! ```yaml
//! registry:
//!   services:
//!     api: { releases: [ {version: 1.0.0}, {version: 2.0.0} ] }
//! rules:
//!   - oneMinorAtATime: { service: api }
//! graphs:
//!   api: { edges: [ {from: "*", to: "*"} ] }
//! ```
//!
//! Loading validates everything and names the offending path.

use std::collections::BTreeMap;
use std::path::Path;

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::path::{GraphBuilder, GraphSpec, UpgradeGraph};
use crate::registry::{Registry, Release};
use crate::validate::Validator;

/// A serialization format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// YAML.
    Yaml,
    /// JSON.
    Json,
    /// TOML.
    Toml,
}

impl Format {
    /// The format a file's extension names: `.yaml` or `.yml`, `.json`, `.toml`.
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()? {
            "yaml" | "yml" => Some(Self::Yaml),
            "json" => Some(Self::Json),
            "toml" => Some(Self::Toml),
            _ => None,
        }
    }
}

/// Registry, rules and graphs, validated together.
///
/// Read one with [`parse`](Self::parse) or [`load`](Self::load), which read its migration
/// files and validate it. Deserialized by other means, it is checked by each part alone (a
/// registry, a matrix), not against the others: call [`check`](Self::check) before using it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Catalog {
    /// Services and releases.
    #[serde(default)]
    pub registry: Registry,
    /// The compatibility matrix.
    #[serde(default)]
    pub rules: Matrix,
    /// Upgrade graphs per service.
    #[serde(default, deserialize_with = "unique_graphs")]
    pub graphs: BTreeMap<String, GraphSpec>,
}

fn unique_graphs<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, GraphSpec>, D::Error> {
    crate::unique::unique_map(d, "graphs")
}

/// Parses `text` in `format` into any deserializable type, with the parser's position and the
/// path of the field at fault.
///
/// In YAML an enum with data is written as JSON writes it, a map with one key
/// (`timed: 5m`, `perRequest: {}`); serde's own YAML form, a tag (`!timed 5m`), is read too.
pub fn from_str<T: serde::de::DeserializeOwned>(text: &str, format: Format) -> Result<T> {
    match format {
        Format::Yaml => {
            if let Some(reason) = crate::yaml_nesting_problem(text) {
                return Err(Error::Parse {
                    format: "YAML",
                    reason,
                });
            }
            // The two forms cannot be read in one pass: the one-key-map reader refuses tags.
            // A document in neither is reported as the one-key-map reader saw it.
            from_yaml(text, true).or_else(|e| from_yaml(text, false).map_err(|_| e))
        }
        Format::Json => {
            // serde_json's errors give a line and column only; the path names the field, as
            // the YAML reader's errors do.
            let mut de = serde_json::Deserializer::from_str(text);
            let parsed = serde_path_to_error::deserialize(&mut de)
                .map_err(|e| with_path(&e.path().to_string(), e.into_inner().to_string()))
                .and_then(|value| de.end().map(|()| value).map_err(|e| e.to_string()));
            parsed.map_err(|reason| Error::Parse {
                format: "JSON",
                reason,
            })
        }
        Format::Toml => {
            // toml's own errors name the line but not the field; a syntax error has no field.
            let parsed = toml::Deserializer::parse(text)
                .map_err(|e| e.to_string())
                .and_then(|de| {
                    serde_path_to_error::deserialize(de).map_err(|e| {
                        let reason = match e.inner().span() {
                            Some(span) => {
                                format!("{} at {}", e.inner().message(), position(text, span.start))
                            }
                            None => e.inner().message().to_string(),
                        };
                        with_path(&e.path().to_string(), reason)
                    })
                });
            parsed.map_err(|reason| Error::Parse {
                format: "TOML",
                reason,
            })
        }
    }
}

/// Reads YAML with enums as one-key maps (`one_key_maps`) or as tags.
fn from_yaml<T: serde::de::DeserializeOwned>(text: &str, one_key_maps: bool) -> Result<T> {
    // The reader's own path stops at the map around a value its type refused (a selector, a
    // version); serde_path_to_error follows it down to the field.
    let mut track = serde_path_to_error::Track::new();
    let de = serde_path_to_error::Deserializer::new(
        serde_yaml_ng::Deserializer::from_str(text),
        &mut track,
    );
    let read = if one_key_maps {
        serde_yaml_ng::with::singleton_map_recursive::deserialize(de)
    } else {
        T::deserialize(de)
    };
    read.map_err(|e| Error::Parse {
        format: "YAML",
        reason: at_path(&track.path().to_string(), e.to_string()),
    })
}

/// `reason` with `path` in front, unless the path is the document itself.
fn with_path(path: &str, reason: String) -> String {
    if path == "." {
        reason
    } else {
        format!("{path}: {reason}")
    }
}

/// `line L, column C` (both from 1) of byte `offset` in `text`.
fn position(text: &str, offset: usize) -> String {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}")
}

/// The YAML reader's `message` with `path` (where the value stands, as serde_path_to_error
/// followed it) in front, in place of the reader's own path when that is `path` or a map
/// around it; a longer path of the reader's own is kept. The reader writes a path into a
/// document that is a list with a leading dot (`.[1].skew`), serde_path_to_error without.
fn at_path(path: &str, message: String) -> String {
    fn undotted(path: &str) -> &str {
        path.strip_prefix('.')
            .filter(|p| p.starts_with('['))
            .unwrap_or(path)
    }
    let around = |outer: &str, inner: &str| {
        undotted(inner)
            .strip_prefix(undotted(outer))
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
    };
    match message.split_once(": ") {
        Some((own, rest)) if around(own, path) => format!("{path}: {rest}"),
        Some((own, _)) if path == "." || around(path, own) => message,
        _ if path == "." => message,
        _ => format!("{path}: {message}"),
    }
}

impl Catalog {
    /// Parses and validates a catalog.
    ///
    /// ```
    /// use serin_compat::{Catalog, Format};
    /// let text = "registry:\n  services:\n    api:\n      releases:\n        - version: 1.0.0\n\
    ///             rules:\n  - oneMinorAtATime: {service: web}\n";
    /// let err = Catalog::parse(text, Format::Yaml).unwrap_err();
    /// assert!(err.to_string().contains("rules[0].oneMinorAtATime.service"));
    /// ```
    pub fn parse(text: &str, format: Format) -> Result<Self> {
        let catalog: Self = from_str(text, format)?;
        catalog.check()?;
        Ok(catalog)
    }

    /// Reads a catalog file: its format from its extension (`.yaml`, `.yml`, `.json`,
    /// `.toml`), and each migration given as a `file` from that path relative to the catalog
    /// file's directory. Then validates it, as [`parse`](Self::parse) does.
    ///
    /// ```yaml
    /// registry:
    ///   services:
    ///     api:
    ///       releases:
    ///         - version: 1.1.0
    ///           migrations:
    ///             - file: migrations/0012_add_email.sql   # named 0012_add_email
    ///             # sqlx runs it in a transaction: CREATE INDEX CONCURRENTLY would fail there.
    ///             - file: migrations/0013_index_email.sql
    ///               runner: sqlx
    ///             # diesel's layout: named 2026-01-02-000000_index, and `run_in_transaction`
    ///             # read from the metadata.toml beside it.
    ///             - file: migrations/2026-01-02-000000_index/up.sql
    ///               runner: diesel
    /// ```
    pub fn load(path: &Path) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidValue {
            path: "catalog".into(),
            value: path.display().to_string(),
            reason,
        };
        let format = Format::from_path(path).ok_or_else(|| {
            invalid("cannot tell its format: name it .yaml, .yml, .json or .toml".into())
        })?;
        let text =
            std::fs::read_to_string(path).map_err(|e| invalid(format!("cannot read it: {e}")))?;
        Self::parse_in(&text, format, path.parent().unwrap_or(Path::new("")))
    }

    /// [`parse`](Self::parse) a catalog whose migration `file`s are relative to `dir`, reading
    /// them.
    pub fn parse_in(text: &str, format: Format, dir: &Path) -> Result<Self> {
        let mut catalog: Self = from_str(text, format)?;
        catalog.registry.read_migration_files(dir)?;
        catalog.check()?;
        Ok(catalog)
    }

    /// Validates rules and graphs against the registry.
    pub fn check(&self) -> Result<()> {
        self.registry.check_migrations()?;
        self.rules.validate(&self.registry)?;
        self.graphs().map(|_| ())
    }

    /// Builds every graph, adding the registry's releases to each. A release a graph lists
    /// must be in the registry; a yanked one, listed or not, is only a start, so that no route
    /// passes through it or ends there, while a service that runs it still starts a route
    /// there (along the edges written out of it) and the rules that name it still load.
    pub fn graphs(&self) -> Result<BTreeMap<String, UpgradeGraph>> {
        let mut out = BTreeMap::new();
        for (service, spec) in &self.graphs {
            let path = format!("graphs.{service}");
            if !self.registry.has_service(service) {
                return Err(Error::UnknownService {
                    path,
                    service: service.clone(),
                });
            }
            let mut spec = spec.clone();
            for (i, listed) in spec.releases.iter().enumerate() {
                if self.registry.release(service, &listed.0).is_none() {
                    return Err(Error::UnknownVersion {
                        path: format!("{path}.releases[{i}]"),
                        service: service.clone(),
                        version: listed.0.to_string(),
                    });
                }
            }
            // An edge rule leads only to higher releases: one written downwards (a rollback
            // edge, say) would otherwise load and make no edge. A `* -> *` over a single release
            // is no such rule: it leads to the releases still to come.
            let all: Vec<&Version> = self
                .registry
                .releases(service)
                .map(|r| &r.version)
                .collect();
            for (i, edge) in spec.edges.iter().enumerate() {
                let lowest = all.iter().find(|v| edge.from.matches(v));
                let highest = all.iter().rev().find(|v| edge.to.matches(v));
                if let (Some(lowest), Some(highest)) = (lowest, highest)
                    && lowest > highest
                {
                    return Err(Error::InvalidValue {
                        path: format!("{path}.edges[{i}]"),
                        value: format!("{} -> {}", edge.from, edge.to),
                        reason: "every release it leads from is higher than every release it \
                                 leads to, and edges lead only to higher releases (the graph \
                                 holds upgrades)"
                            .into(),
                    });
                }
            }
            spec.releases.retain(|r| {
                self.registry
                    .release(service, &r.0)
                    .is_some_and(|r| !r.yanked)
            });
            let (yanked, releases): (Vec<&Release>, Vec<&Release>) =
                self.registry.releases(service).partition(|r| r.yanked);
            let version = |r: &Release| r.version.clone();
            let graph = GraphBuilder::from_spec(spec)
                .releases(releases.into_iter().map(version))
                .withdrawn(yanked.into_iter().map(version))
                .build(&path)?;
            out.insert(service.clone(), graph);
        }
        Ok(out)
    }

    /// A validator over this catalog.
    pub fn validator(&self) -> Result<Validator> {
        let graphs = self.graphs()?;
        let mut validator = Validator::new(self.registry.clone(), self.rules.clone())?;
        for (service, graph) in graphs {
            validator = validator.with_graph(&service, graph)?;
        }
        Ok(validator)
    }

    /// Serializes the catalog.
    pub fn to_string(&self, format: Format) -> Result<String> {
        let ser = |format: &'static str, e: String| Error::Serialize { format, reason: e };
        match format {
            Format::Yaml => serde_yaml_ng::to_string(self).map_err(|e| ser("YAML", e.to_string())),
            Format::Json => {
                serde_json::to_string_pretty(self).map_err(|e| ser("JSON", e.to_string()))
            }
            Format::Toml => toml::to_string(self).map_err(|e| ser("TOML", e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_name_the_field() {
        let json = r#"{"registry":{"services":{"api":{"releases":[{"version":"1.0.0","schemaVersion":"two"}]}}}}"#;
        let err = Catalog::parse(json, Format::Json).unwrap_err().to_string();
        assert!(
            err.contains("registry.services.api.releases[0].schemaVersion: invalid type: string"),
            "{err}"
        );
        let err = Catalog::parse("{} {}", Format::Json)
            .unwrap_err()
            .to_string();
        assert!(err.contains("trailing characters"), "{err}");
    }

    const YAML: &str = "registry:\n  services:\n    api:\n      releases:\n        - version: 1.0.0\n        - version: 1.1.0\n\
rules:\n  - oneMinorAtATime: {service: api}\n\
graphs:\n  api:\n    edges:\n      - {from: '*', to: '*'}\n";

    #[test]
    fn loads_from_every_format() {
        let c = Catalog::parse(YAML, Format::Yaml).unwrap();
        for format in [Format::Yaml, Format::Json, Format::Toml] {
            let text = c.to_string(format).unwrap();
            let back = Catalog::parse(&text, format).unwrap();
            assert_eq!(back, c, "{format:?}");
        }
        assert_eq!(c.graphs().unwrap()["api"].edge_count(), 1);
    }

    #[test]
    fn errors_name_the_position() {
        let err = Catalog::parse("registry: [", Format::Yaml)
            .unwrap_err()
            .to_string();
        assert!(err.contains("line") || err.contains("column"), "{err}");
        let err = Catalog::parse(
            "{\"registry\": {\"services\": {}}, \"extra\": 1}",
            Format::Json,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("extra"), "{err}");
        let bad_graph = YAML.replace("api:\n    edges", "web:\n    edges");
        let err = Catalog::parse(&bad_graph, Format::Yaml)
            .unwrap_err()
            .to_string();
        assert!(err.contains("graphs.web"), "{err}");
    }
}
