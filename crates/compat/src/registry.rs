//! The version registry: services, their releases, and what each release needs and offers.
//!
//! Serialized as `services: { <name>: { releases: [ {version, ...}, ... ] } }` (camelCase keys),
//! validated on load: every version parses, none is declared twice (build metadata does not set
//! two versions apart, SemVer §10), no service is named twice, every migration has a name
//! (no two of a release the same) and its SQL (or a file that holds it, read by [`Catalog::load`](crate::Catalog::load)).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};

use crate::breaking::{Change, Endpoint};
use crate::error::{Error, Result};
use crate::migration::{Options, RunBy, Runner};
use crate::selector::{req_serde, version_serde};

/// An API a release offers to others, with its own semver version and, optionally, its surface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProvidedApi {
    /// The API's name (`orders`, `payments.v1`).
    pub name: String,
    /// The API's version; consumers state requirements against it.
    #[serde(with = "version_serde")]
    pub version: Version,
    /// The endpoints or messages, for breaking-change detection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<Endpoint>,
    /// Changes since the API's version in the service's previous release that a
    /// breaking-change tool found in the real specs (read with
    /// [`from_oasdiff`](crate::breaking::from_oasdiff) or
    /// [`from_buf`](crate::breaking::from_buf)). Validation reports them for every release an
    /// upgrade passes, and checks that the API's version rose enough for them over the move.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reported: Vec<Change>,
}

impl ProvidedApi {
    /// `name` at `version`, with no surface and nothing reported.
    pub fn new(name: impl Into<String>, version: Version) -> Self {
        Self {
            name: name.into(),
            version,
            endpoints: Vec::new(),
            reported: Vec::new(),
        }
    }

    /// With the endpoints Serin diffs itself.
    pub fn with_endpoints(mut self, endpoints: Vec<Endpoint>) -> Self {
        self.endpoints = endpoints;
        self
    }

    /// With changes another tool reported since the previous release.
    pub fn with_reported(mut self, changes: Vec<Change>) -> Self {
        self.reported = changes;
        self
    }
}

/// An API a release calls, and which versions of it it works with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsumedApi {
    /// The API's name.
    pub api: String,
    /// The versions this release works with (Cargo caret semantics).
    #[serde(with = "req_serde")]
    pub version: VersionReq,
}

/// One SQL migration shipped with a release: its SQL written out (`sql`), or a file that holds
/// it (`file`, relative to the catalog file, read by [`Catalog::load`](crate::Catalog::load)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Migration {
    /// Its name (`0012_add_email`); by default, the stem of its file.
    #[serde(default)]
    pub name: String,
    /// The SQL text (PostgreSQL).
    #[serde(default)]
    pub sql: String,
    /// The file that holds the SQL, until it is read into `sql`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// The tool that runs it, where its text does not say (`sqlx`, `diesel`, `refinery`,
    /// `golang-migrate`, `drizzle`): whether it runs in a transaction, and as one query, decides what may
    /// run at all. A file that carries a runner's markers (`-- +goose Up`) is read as that
    /// runner's without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<Runner>,
    /// Whether the runner wraps it in a transaction, as configured outside the file; by default
    /// as the file and the runner say. A diesel migration's `metadata.toml`
    /// (`run_in_transaction`) is read with its file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction: Option<bool>,
    /// Opt-in rules to judge it by besides those always on
    /// ([`OPT_IN_RULES`](crate::migration::OPT_IN_RULES), or `require-timeout-settings`), as
    /// `enableRules: [prefer-robust-stmts]`; a name that is none is refused on load.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enable_rules: Vec<String>,
}

impl Migration {
    /// How its runner runs it, if the catalog names the runner.
    pub fn run_by(&self) -> Option<RunBy> {
        self.runner.map(|runner| RunBy {
            runner,
            transaction: self.transaction,
        })
    }

    /// The analysis options its [`enable_rules`](Self::enable_rules) ask for.
    pub fn options(&self) -> Options {
        Options::enabling(self.enable_rules.iter().cloned())
    }

    /// Checks that it has a name and either SQL or a file, not both; a file's stem names it
    /// when no name is given (the directory's name for `up.sql`, as diesel lays migrations
    /// out; without `.up` for `0001_users.up.sql`).
    fn settle(&mut self, path: &str) -> Result<()> {
        let invalid = |name: &str, reason: &str| Error::InvalidValue {
            path: path.to_owned(),
            value: name.to_owned(),
            reason: reason.to_owned(),
        };
        match (&self.file, self.sql.trim().is_empty()) {
            (Some(_), false) => return Err(invalid(&self.name, "give `sql` or `file`, not both")),
            (None, true) => {
                return Err(invalid(
                    &self.name,
                    "give its SQL as `sql`, or a `file` that holds it",
                ));
            }
            (Some(file), true) if self.name.is_empty() => self.name = name_of(file),
            _ => {}
        }
        if let (Some(t), None) = (self.transaction, self.runner) {
            return Err(Error::InvalidValue {
                path: format!("{path}.transaction"),
                value: t.to_string(),
                reason: "name the runner (`runner`) that does or does not open the transaction"
                    .into(),
            });
        }
        if self.name.trim().is_empty() {
            return Err(invalid(
                &self.name,
                "name it (`name`), e.g. `0012_add_email`",
            ));
        }
        self.options().check(&format!("{path}.enableRules"))
    }
}

/// A migration's name from its file: the stem, or the directory's name for `up.sql`, and
/// without `.up` for `0001_users.up.sql`.
fn name_of(file: &Path) -> String {
    let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned());
    let dir = || {
        file.parent()
            .and_then(Path::file_name)
            .map(|d| d.to_string_lossy().into_owned())
    };
    match stem.as_deref() {
        Some("up") => dir().unwrap_or_default(),
        Some(stem) => stem.strip_suffix(".up").unwrap_or(stem).to_owned(),
        None => String::new(),
    }
}

/// Whether diesel runs the migration in `up_sql` in a transaction, as the `metadata.toml`
/// beside it says (`run_in_transaction`, true by default); `stated`, the catalog's word, must
/// agree with it.
fn diesel_transaction(up_sql: &Path, at: &str, stated: Option<bool>) -> Result<Option<bool>> {
    let path = up_sql.with_file_name("metadata.toml");
    let invalid = |reason: String| Error::InvalidValue {
        path: at.to_owned(),
        value: path.display().to_string(),
        reason,
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(stated),
        Err(e) => return Err(invalid(format!("cannot read it: {e}"))),
    };
    let metadata: DieselMetadata =
        toml::from_str(&text).map_err(|e| invalid(format!("cannot parse it: {e}")))?;
    match (metadata.run_in_transaction, stated) {
        (Some(file), Some(catalog)) if file != catalog => Err(invalid(format!(
            "it says run_in_transaction = {file}, the catalog's `transaction` {catalog}; diesel \
             follows the file"
        ))),
        (Some(file), _) => Ok(Some(file)),
        (None, stated) => Ok(stated),
    }
}

/// The part of a diesel migration's `metadata.toml` that says how it runs.
#[derive(Deserialize)]
struct DieselMetadata {
    run_in_transaction: Option<bool>,
}

/// Metadata of one released version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Release {
    /// The version.
    #[serde(with = "version_serde")]
    pub version: Version,
    /// Release notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Still deployable, but on its way out: deploying it warns.
    #[serde(default)]
    pub deprecated: bool,
    /// Withdrawn: never a target or a stop.
    #[serde(default)]
    pub yanked: bool,
    /// The database schema version this release needs: never below an older release's, as
    /// migrations run in version order (a registry that says otherwise is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<u64>,
    /// APIs offered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provides: Vec<ProvidedApi>,
    /// APIs called.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumes: Vec<ConsumedApi>,
    /// Breaking changes the authors declare (each becomes a feature-flag reminder).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub breaking: Vec<String>,
    /// SQL migrations to reach this release's schema.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub migrations: Vec<Migration>,
}

impl Release {
    /// A release with no metadata.
    pub fn new(version: Version) -> Self {
        Self {
            version,
            notes: None,
            deprecated: false,
            yanked: false,
            schema_version: None,
            provides: Vec::new(),
            consumes: Vec::new(),
            breaking: Vec::new(),
            migrations: Vec::new(),
        }
    }

    /// Marks it deprecated.
    #[must_use]
    pub fn deprecated(mut self) -> Self {
        self.deprecated = true;
        self
    }

    /// Marks it yanked.
    #[must_use]
    pub fn yanked(mut self) -> Self {
        self.yanked = true;
        self
    }

    /// Sets the required schema version.
    #[must_use]
    pub fn with_schema_version(mut self, schema: u64) -> Self {
        self.schema_version = Some(schema);
        self
    }

    /// Adds a provided API.
    #[must_use]
    pub fn providing(mut self, api: ProvidedApi) -> Self {
        self.provides.push(api);
        self
    }

    /// Adds a consumed API.
    #[must_use]
    pub fn consuming(mut self, api: impl Into<String>, version: VersionReq) -> Self {
        self.consumes.push(ConsumedApi {
            api: api.into(),
            version,
        });
        self
    }

    /// Adds a declared breaking change.
    #[must_use]
    pub fn with_breaking(mut self, change: impl Into<String>) -> Self {
        self.breaking.push(change.into());
        self
    }

    /// Adds a migration.
    #[must_use]
    pub fn with_migration(mut self, name: impl Into<String>, sql: impl Into<String>) -> Self {
        self.migrations.push(Migration {
            name: name.into(),
            sql: sql.into(),
            file: None,
            runner: None,
            transaction: None,
            enable_rules: Vec::new(),
        });
        self
    }

    /// The provided API called `name`, if any.
    pub fn provided(&self, name: &str) -> Option<&ProvidedApi> {
        self.provides.iter().find(|p| p.name == name)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ServiceRepr {
    #[serde(default)]
    releases: Vec<Release>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RegistryRepr {
    #[serde(default, deserialize_with = "unique_services")]
    services: BTreeMap<String, ServiceRepr>,
}

fn unique_services<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, ServiceRepr>, D::Error> {
    crate::unique::unique_map(d, "services")
}

/// All services and their releases.
///
/// ```
/// use serin_compat::{Registry, Release};
/// let mut registry = Registry::new();
/// registry.add_release("api", Release::new("1.0.0".parse().unwrap())).unwrap();
/// assert!(registry.add_release("api", Release::new("1.0.0".parse().unwrap())).is_err());
/// assert_eq!(registry.releases("api").count(), 1);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RegistryRepr", into = "RegistryRepr")]
pub struct Registry {
    services: BTreeMap<String, BTreeMap<Version, Release>>,
}

/// Refuses a blank service name, at `path`.
fn check_service_name(service: &str, path: &str) -> Result<()> {
    if service.trim().is_empty() {
        return Err(Error::InvalidValue {
            path: path.to_owned(),
            value: service.to_owned(),
            reason: "a service name must not be empty".into(),
        });
    }
    Ok(())
}

impl TryFrom<RegistryRepr> for Registry {
    type Error = Error;
    fn try_from(repr: RegistryRepr) -> Result<Self> {
        let mut registry = Self::new();
        for (name, service) in repr.services {
            // Checked here too: a service without releases never reaches `insert`.
            check_service_name(&name, &format!("services.{name}"))?;
            registry.services.entry(name.clone()).or_default();
            for (i, mut release) in service.releases.into_iter().enumerate() {
                let path = format!("services.{name}.releases[{i}]");
                for (j, m) in release.migrations.iter_mut().enumerate() {
                    m.settle(&format!("{path}.migrations[{j}]"))?;
                }
                registry.insert(&name, release, &path)?;
            }
        }
        Ok(registry)
    }
}

impl From<Registry> for RegistryRepr {
    fn from(registry: Registry) -> Self {
        Self {
            services: registry
                .services
                .into_iter()
                .map(|(name, releases)| {
                    (
                        name,
                        ServiceRepr {
                            releases: releases.into_values().collect(),
                        },
                    )
                })
                .collect(),
        }
    }
}

/// Refuses a name given twice among a release's APIs, an API's endpoints, or an endpoint's
/// request or response fields: the breaking-change diff finds each by its name, so the changes
/// of all but one of the same name would go unreported.
fn check_surface(provides: &[ProvidedApi], path: &str) -> Result<()> {
    fn unique<'a>(
        names: impl Iterator<Item = &'a str>,
        at: impl Fn(usize) -> String,
    ) -> Result<()> {
        let mut seen = std::collections::BTreeMap::new();
        for (i, name) in names.enumerate() {
            if let Some(first) = seen.insert(name, i) {
                return Err(Error::InvalidValue {
                    path: format!("{}.name", at(i)),
                    value: name.to_owned(),
                    reason: format!("{} has the same name", at(first)),
                });
            }
        }
        Ok(())
    }
    unique(provides.iter().map(|a| a.name.as_str()), |i| {
        format!("{path}.provides[{i}]")
    })?;
    for (i, api) in provides.iter().enumerate() {
        let api_at = format!("{path}.provides[{i}]");
        unique(api.endpoints.iter().map(|e| e.name.as_str()), |j| {
            format!("{api_at}.endpoints[{j}]")
        })?;
        for (j, endpoint) in api.endpoints.iter().enumerate() {
            for (side, fields) in [
                ("request", &endpoint.request),
                ("response", &endpoint.response),
            ] {
                unique(fields.iter().map(|f| f.name.as_str()), |k| {
                    format!("{api_at}.endpoints[{j}].{side}[{k}]")
                })?;
            }
        }
    }
    Ok(())
}

/// The release of `releases` with `version`'s precedence (build metadata ignored); the registry
/// holds at most one.
fn same_release<'a>(
    releases: &'a BTreeMap<Version, Release>,
    version: &Version,
) -> Option<&'a Release> {
    if let Some(exact) = releases.get(version) {
        return Some(exact);
    }
    // Versions of one precedence sort together, the one without metadata first.
    let mut base = version.clone();
    base.build = semver::BuildMetadata::EMPTY;
    releases
        .range(base..)
        .next()
        .map(|(_, r)| r)
        .filter(|r| r.version.cmp_precedence(version).is_eq())
}

/// Refuses a schema version that goes back against the releases beside `version`: the
/// migrations run in version order, so a newer release needs at least the schema of an older
/// one. Otherwise a move up would be judged as one down (a rollback that keeps the database
/// ahead), and a rollback as a move that needs migrations.
fn check_schema_order(
    releases: &BTreeMap<Version, Release>,
    version: &Version,
    schema: u64,
    path: &str,
) -> Result<()> {
    fn with_schema(r: &Release) -> Option<(&Release, u64)> {
        r.schema_version.map(|s| (r, s))
    }
    let older = releases
        .range(..version)
        .rev()
        .find_map(|(_, r)| with_schema(r))
        .filter(|(_, s)| *s > schema);
    let newer = releases
        .range(version..)
        .find_map(|(_, r)| with_schema(r))
        .filter(|(_, s)| *s < schema);
    let Some((other, at)) = older.or(newer) else {
        return Ok(());
    };
    let (than, which) = if other.version < *version {
        ("older", "above")
    } else {
        ("newer", "below")
    };
    Err(Error::InvalidValue {
        path: format!("{path}.schemaVersion"),
        value: schema.to_string(),
        reason: format!(
            "{than} release {} needs schema version {at}, {which} it: migrations run in version \
             order, so a newer release never needs an older schema",
            other.version
        ),
    })
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn insert(&mut self, service: &str, release: Release, path: &str) -> Result<()> {
        check_surface(&release.provides, path)?;
        // The checklist names a migration by its name: two of one name could not be told apart.
        for (j, m) in release.migrations.iter().enumerate() {
            if !m.name.is_empty() && release.migrations[..j].iter().any(|e| e.name == m.name) {
                return Err(Error::InvalidValue {
                    path: format!("{path}.migrations[{j}].name"),
                    value: m.name.clone(),
                    reason: "another migration of this release has this name; the checklist \
                             names migrations by name"
                        .into(),
                });
            }
        }
        check_service_name(service, path)?;
        // Build metadata does not set versions apart (SemVer §10): `1.0.0+a` is `1.0.0`. The
        // versions of the same precedence sort together, the one without metadata first.
        let existing = self
            .services
            .get(service)
            .and_then(|releases| same_release(releases, &release.version))
            .map(|r| &r.version);
        if let Some(existing) = existing {
            let version = if existing == &release.version {
                release.version.to_string()
            } else {
                format!(
                    "{} (the same release as {existing}: build metadata does not set versions \
                     apart)",
                    release.version
                )
            };
            return Err(Error::DuplicateRelease {
                path: format!("{path}.version"),
                service: service.to_owned(),
                version,
            });
        }
        if let (Some(schema), Some(releases)) = (release.schema_version, self.services.get(service))
        {
            check_schema_order(releases, &release.version, schema, path)?;
        }
        self.services
            .entry(service.to_owned())
            .or_default()
            .insert(release.version.clone(), release);
        Ok(())
    }

    /// Each migration given as a `file` and not read yet: where it is in the registry (for
    /// messages), its service, version and index, and the file.
    fn migration_files(
        &self,
    ) -> impl Iterator<Item = (String, &String, &Version, usize, &Migration, &Path)> {
        self.services.iter().flat_map(|(service, releases)| {
            releases.iter().flat_map(move |(version, release)| {
                release
                    .migrations
                    .iter()
                    .enumerate()
                    .filter_map(move |(j, m)| {
                        let at =
                            format!("services.{service}.releases[{version}].migrations[{j}].file");
                        m.file
                            .as_deref()
                            .map(|file| (at, service, version, j, m, file))
                    })
            })
        })
    }

    /// Reads the SQL of each migration given as a `file`, relative to `base`, into its `sql`,
    /// and for a diesel migration, whether it runs in a transaction from the `metadata.toml`
    /// beside it. A file that cannot be read (or is empty) is an error naming the migration, and
    /// changes nothing.
    pub fn read_migration_files(&mut self, base: &Path) -> Result<()> {
        let mut read = Vec::new();
        for (at, service, version, j, m, file) in self.migration_files() {
            let full = base.join(file);
            let invalid = |reason: String| Error::InvalidValue {
                path: at.clone(),
                value: full.display().to_string(),
                reason,
            };
            let sql = std::fs::read_to_string(&full)
                .map_err(|e| invalid(format!("cannot read it: {e}")))?;
            if sql.trim().is_empty() {
                return Err(invalid("the file is empty".into()));
            }
            let transaction = match m.runner {
                Some(Runner::Diesel) => diesel_transaction(&full, &at, m.transaction)?,
                _ => m.transaction,
            };
            read.push((service.clone(), version.clone(), j, sql, transaction));
        }
        for (service, version, j, sql, transaction) in read {
            if let Some(m) = self
                .services
                .get_mut(&service)
                .and_then(|r| r.get_mut(&version))
                .and_then(|r| r.migrations.get_mut(j))
            {
                m.sql = sql;
                m.file = None;
                m.transaction = transaction;
            }
        }
        Ok(())
    }

    /// Checks that every migration holds its SQL: one given as a `file` that was never read
    /// would otherwise be analysed as empty.
    pub(crate) fn check_migrations(&self) -> Result<()> {
        match self.migration_files().next() {
            Some((at, _, _, _, _, file)) => Err(Error::InvalidValue {
                path: at,
                value: file.display().to_string(),
                reason: "migration files are read by `Catalog::load` or `Catalog::parse_in` \
                         (relative to the catalog) or by `Registry::read_migration_files`"
                    .into(),
            }),
            None => Ok(()),
        }
    }

    /// Adds a release, checking its migrations as loading a registry does (a migration with
    /// neither SQL nor a file would otherwise be analysed as an empty, safe one); a bad
    /// migration or a version already present is an error and changes nothing.
    pub fn add_release(&mut self, service: &str, mut release: Release) -> Result<()> {
        let path = format!("services.{service}.releases[{}]", release.version);
        for (j, m) in release.migrations.iter_mut().enumerate() {
            m.settle(&format!("{path}.migrations[{j}]"))?;
        }
        self.insert(service, release, &path)
    }

    /// Whether the service is known.
    pub fn has_service(&self, service: &str) -> bool {
        self.services.contains_key(service)
    }

    /// Service names, sorted.
    pub fn services(&self) -> impl Iterator<Item = &str> {
        self.services.keys().map(String::as_str)
    }

    /// Releases of a service, oldest first (empty for an unknown service).
    pub fn releases(&self, service: &str) -> impl Iterator<Item = &Release> {
        self.services
            .get(service)
            .into_iter()
            .flat_map(|releases| releases.values())
    }

    /// One release. Build metadata does not set versions apart (SemVer §10), so `1.0.0+b` finds
    /// the release registered as `1.0.0` (or `1.0.0+a`): a fleet reports what its binaries say.
    pub fn release(&self, service: &str, version: &Version) -> Option<&Release> {
        same_release(self.services.get(service)?, version)
    }

    /// One release, or an error naming `path`.
    pub fn require(&self, service: &str, version: &Version, path: &str) -> Result<&Release> {
        let releases = self
            .services
            .get(service)
            .ok_or_else(|| Error::UnknownService {
                path: path.to_owned(),
                service: service.to_owned(),
            })?;
        same_release(releases, version).ok_or_else(|| Error::UnknownVersion {
            path: path.to_owned(),
            service: service.to_owned(),
            version: version.to_string(),
        })
    }

    /// Services whose releases provide `api` in at least one version.
    pub fn providers_of(&self, api: &str) -> Vec<&str> {
        self.services
            .iter()
            .filter(|(_, releases)| releases.values().any(|r| r.provided(api).is_some()))
            .map(|(name, _)| name.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_yaml_and_rejects_duplicates() {
        let yaml =
            "services:\n  api:\n    releases:\n      - version: 1.0.0\n      - version: 1.0.0\n";
        let err = serde_yaml_ng::from_str::<Registry>(yaml)
            .unwrap_err()
            .to_string();
        assert!(err.contains("services.api.releases[1].version"), "{err}");
    }

    #[test]
    fn bad_version_names_the_text() {
        let yaml = "services:\n  api:\n    releases:\n      - version: one\n";
        let err = serde_yaml_ng::from_str::<Registry>(yaml)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"one\""), "{err}");
    }

    #[test]
    fn a_blank_service_name_is_refused_with_or_without_releases() {
        for yaml in [
            "services:\n  \" \": {releases: []}\n",
            "services:\n  \"\": {releases: [{version: 1.0.0}]}\n",
        ] {
            let err = serde_yaml_ng::from_str::<Registry>(yaml)
                .unwrap_err()
                .to_string();
            assert!(err.contains("must not be empty"), "{yaml}: {err}");
        }
    }

    #[test]
    fn a_schema_version_that_goes_back_is_refused_naming_the_release_beside_it() {
        let v = |s: &str| Version::parse(s).unwrap();
        for (yaml, at, other) in [
            (
                "services:\n  api:\n    releases:\n      - {version: 1.0.0, schemaVersion: 5}\n      \
                 - {version: 1.1.0}\n      - {version: 2.0.0, schemaVersion: 4}\n",
                "services.api.releases[2].schemaVersion",
                "older release 1.0.0 needs schema version 5, above it",
            ),
            (
                "services:\n  api:\n    releases:\n      - {version: 2.0.0, schemaVersion: 4}\n      \
                 - {version: 1.0.0, schemaVersion: 5}\n",
                "services.api.releases[1].schemaVersion",
                "newer release 2.0.0 needs schema version 4, below it",
            ),
        ] {
            let err = serde_yaml_ng::from_str::<Registry>(yaml)
                .unwrap_err()
                .to_string();
            assert!(err.contains(at) && err.contains(other), "{err}");
        }
        let mut registry = Registry::new();
        registry
            .add_release("api", Release::new(v("1.0.0")).with_schema_version(5))
            .unwrap();
        let err = registry
            .add_release("api", Release::new(v("1.1.0")).with_schema_version(4))
            .unwrap_err();
        assert!(err.to_string().contains("schemaVersion"), "{err}");
        assert!(registry.release("api", &v("1.1.0")).is_none());
        // Equal and rising versions load, with releases that name none between them.
        let yaml = "services:\n  api:\n    releases:\n      - {version: 1.0.0, schemaVersion: 4}\n      \
                    - {version: 1.1.0}\n      - {version: 1.2.0, schemaVersion: 4}\n      \
                    - {version: 2.0.0, schemaVersion: 6}\n";
        serde_yaml_ng::from_str::<Registry>(yaml).unwrap();
    }

    #[test]
    fn unknown_field_is_rejected() {
        let yaml =
            "services:\n  api:\n    releases:\n      - version: 1.0.0\n        colour: red\n";
        assert!(serde_yaml_ng::from_str::<Registry>(yaml).is_err());
    }

    #[test]
    fn added_releases_have_their_migrations_checked_as_loaded_ones() {
        let mut r = Registry::new();
        let v1 = Version::new(1, 0, 0);
        let err = r
            .add_release(
                "api",
                Release::new(v1.clone()).with_migration("0001_users", " "),
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("services.api.releases[1.0.0].migrations[0]")
                && err.contains("0001_users")
                && err.contains("give its SQL"),
            "{err}"
        );
        let err = r
            .add_release(
                "api",
                Release::new(v1.clone()).with_migration("", "SELECT 1"),
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("name it"), "{err}");
        // Nothing was added.
        assert!(!r.has_service("api"));
        // A migration given as a file is named after it, as on load.
        let mut release = Release::new(v1.clone());
        release.migrations.push(Migration {
            name: String::new(),
            sql: String::new(),
            file: Some(PathBuf::from("migrations/0002_email.sql")),
            runner: None,
            transaction: None,
            enable_rules: Vec::new(),
        });
        r.add_release("api", release).unwrap();
        let added = r.release("api", &v1).unwrap();
        assert_eq!(added.migrations[0].name, "0002_email");
    }

    #[test]
    fn round_trips_and_finds_providers() {
        let mut r = Registry::new();
        r.add_release(
            "pay",
            Release::new(Version::new(1, 4, 0)).providing(
                ProvidedApi::new("payments", Version::new(2, 1, 0)).with_reported(
                    crate::breaking::from_buf("payments", r#"{"type":"FIELD_NO_DELETE"}"#).unwrap(),
                ),
            ),
        )
        .unwrap();
        r.add_release(
            "api",
            Release::new(Version::new(1, 0, 0))
                .consuming("payments", VersionReq::parse("^2").unwrap()),
        )
        .unwrap();
        assert_eq!(r.providers_of("payments"), vec!["pay"]);
        let json = serde_json::to_string(&r).unwrap();
        let back: Registry = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        // A catalog writes reported changes in the same shape.
        let yaml = r"
services:
  pay:
    releases:
      - version: 1.4.0
        provides:
          - name: payments
            version: 2.1.0
            reported:
              - id: buf.FIELD_NO_DELETE
                severity: error
                requiredBump: major
                location: payments
                message: FIELD_NO_DELETE
";
        let from_yaml: Registry = serde_yaml_ng::from_str(yaml).unwrap();
        assert_eq!(
            from_yaml.release("pay", &Version::new(1, 4, 0)),
            r.release("pay", &Version::new(1, 4, 0))
        );
        assert!(
            r.require("nope", &Version::new(1, 0, 0), "fleet.nope")
                .is_err()
        );
        let err = r
            .require("api", &Version::new(9, 0, 0), "proposal.api")
            .unwrap_err();
        assert!(err.to_string().contains("proposal.api"));
    }
}
