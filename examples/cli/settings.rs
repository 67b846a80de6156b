//! Settings: the `.env` file, the deployment config (file or built-in default), the brief's
//! environment variables over it, and the flags over both.

use std::collections::BTreeMap;
use std::path::Path;

use serin_orchestrator::{DeploymentConfig, Format};

use crate::cli::args::BackendKind;
use crate::cli::exit::CliError;

/// Variables from the process environment, then from the `.env` file: a variable set in the
/// environment is never overridden by the file. A blank value counts as unset, as the config's
/// overrides read it, so a make target's `VERSION=$(VERSION)` without a value leaves the file's
/// value in force.
#[derive(Debug, Clone, Default)]
pub struct EnvLookup {
    file: BTreeMap<String, String>,
}

impl EnvLookup {
    /// Reads `path`, or `.env` when no path is given and it exists; no file is no variables.
    pub fn load(path: Option<&Path>) -> Result<Self, CliError> {
        let (path, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (Path::new(".env").to_path_buf(), false),
        };
        if !required && !path.exists() {
            return Ok(EnvLookup::default());
        }
        let invalid = |why: String| {
            CliError::usage(format!("invalid --env-file `{}`: {why}", path.display()))
        };
        let text =
            std::fs::read_to_string(&path).map_err(|e| invalid(format!("cannot read it: {e}")))?;
        let file = parse_env_file(&text).map_err(invalid)?;
        Ok(EnvLookup { file })
    }

    /// The value of `name`: the environment's, else the file's; a blank one is none.
    pub fn get(&self, name: &str) -> Option<String> {
        let set = |v: &String| !v.trim().is_empty();
        std::env::var(name)
            .ok()
            .filter(set)
            .or_else(|| self.file.get(name).filter(|v| set(v)).cloned())
    }
}

/// Parses `KEY=value` lines (after a byte order mark, if any): blank lines and `#` comments are skipped, `export ` is allowed
/// before a key, values may be quoted (`'...'` as written, `"..."` with `\n`, `\"` and `\\`
/// escapes), and an unquoted value ends at a `#` after whitespace: `KEY= # note`, a comment
/// alone, is an empty value, not `# note`.
pub fn parse_env_file(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    // A byte order mark (an editor's UTF-8 with BOM) is no part of the first key, and unseen in
    // an error naming it.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {}: `{line}` is not KEY=value", i + 1));
        };
        let key = key.trim();
        let valid = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "line {}: `{key}` is not a variable name (letters, digits and `_`, not starting with a digit)",
                i + 1
            ));
        }
        let raw = value;
        let value = value.trim();
        let value = match value.chars().next() {
            Some(quote @ ('"' | '\'')) => {
                let rest = &value[1..];
                // The first closing quote ends the value (a `\"` within double quotes is
                // escaped); only a comment may follow it.
                let mut escaped = false;
                let end = rest.char_indices().find_map(|(at, c)| {
                    let closes = c == quote && !escaped;
                    escaped = quote == '"' && c == '\\' && !escaped;
                    closes.then_some(at)
                });
                let Some(end) = end else {
                    return Err(format!(
                        "line {}: the value of {key} has no closing `{quote}`",
                        i + 1
                    ));
                };
                let after = rest[end + 1..].trim_start();
                if !after.is_empty() && !after.starts_with('#') {
                    return Err(format!(
                        "line {}: the value of {key} goes on after its closing `{quote}` \
                         (`{after}`); only a `# comment` may follow it",
                        i + 1
                    ));
                }
                match quote {
                    '"' => unescape(&rest[..end]),
                    _ => rest[..end].to_owned(),
                }
            }
            // Read on the value as written: the whitespace that makes a `#` a comment's may be
            // the only thing between it and the `=`.
            _ => {
                let end = raw
                    .char_indices()
                    .find(|&(at, c)| c == '#' && raw[..at].ends_with(char::is_whitespace))
                    .map_or(raw.len(), |(at, _)| at);
                raw[..end].trim().to_owned()
            }
        };
        out.insert(key.to_owned(), value);
    }
    Ok(out)
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// The config used without `--config` on the local backend: the demo at small scale, so a
/// deployment takes seconds (two instances per colour; a canary in 3 s phases at 20%, 60% and
/// 100% with 1 s metric windows; a 6 s watch after promotion, checked every second, as the
/// proxy counts requests per second: a 30% error rate for three checks in a row switches back).
/// The strategy is the brief's default, blue-green (`deploy-canary` or
/// `DEPLOYMENT_STRATEGY=canary` for a canary).
const LOCAL_DEFAULT: &str = r#"
strategy: blue-green
version: 0.0.0
targetServices: [demo]
blueGreenConfig:
  replicasPerEnv: 2
  healthCheckInterval: 100ms
  readinessTimeout: 20s
  keepOldWarmFor: 1s
  drain: 500ms
canaryConfig:
  initialPercentage: 20
  incrementPercentage: 40
  incrementInterval: 3s
  metricsWindow: 1s
  replicas: 1
  drain: 500ms
monitoring:
  checkInterval: 1s
  monitoringDuration: 6s
  consecutiveFailures: 3
  errorRateThreshold: 0.2
maxDeploymentDuration: 5m
"#;

/// The config used without `--config` on the sim backend: the brief's own scale (blue-green by
/// default; canary phases of 5 minutes with 30 s windows; a 5-minute watch), which virtual time
/// runs in moments.
const SIM_DEFAULT: &str = r#"
strategy: blue-green
version: 0.0.0
targetServices: [demo]
blueGreenConfig:
  replicasPerEnv: 3
  healthCheckInterval: 1s
  keepOldWarmFor: 2m
canaryConfig:
  initialPercentage: 5
  incrementPercentage: 20
  incrementInterval: 5m
  metricsWindow: 30s
monitoring:
  monitoringDuration: 5m
"#;

/// The config file's format, from its extension.
fn format_of(path: &Path) -> Result<Format, CliError> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("yaml" | "yml") => Ok(Format::Yaml),
        Some("toml") => Ok(Format::Toml),
        Some("json") => Ok(Format::Json),
        _ => Err(CliError::usage(format!(
            "config file {}: cannot tell its format; name it .yaml, .yml, .toml or .json",
            path.display()
        ))),
    }
}

/// The document with a placeholder top-level `version` added (the orchestrator requires one;
/// the CLI lets `--version` or `VERSION` give it instead). It is written out again, so its
/// lines are not the file's: only a document that failed for want of a version alone is read
/// this way, and its remaining errors are checks that name fields, not lines.
fn with_placeholder_version(text: &str, format: Format) -> Result<String, String> {
    let placeholder = "0.0.0";
    let not_a_table = || "the document is not a table of fields".to_owned();
    match format {
        Format::Yaml => {
            let mut v: serde_yaml_ng::Value =
                serin_compat::catalog::from_str(text, serin_compat::Format::Yaml)
                    .map_err(|e| e.to_string())?;
            v.as_mapping_mut()
                .ok_or_else(not_a_table)?
                .insert("version".into(), placeholder.into());
            serde_yaml_ng::to_string(&v).map_err(|e| e.to_string())
        }
        Format::Json => {
            let mut v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
            v.as_object_mut()
                .ok_or_else(not_a_table)?
                .insert("version".into(), placeholder.into());
            serde_json::to_string_pretty(&v).map_err(|e| e.to_string())
        }
        Format::Toml => {
            let mut v: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
            v.insert("version".into(), placeholder.into());
            toml::to_string(&v).map_err(|e| e.to_string())
        }
    }
}

/// Whether `e` is the refusal of a document that has no top-level `version`.
fn lacks_version(e: &serin_orchestrator::Error) -> bool {
    e.to_string().contains("missing field `version`")
}

/// A loaded config, and whether a version to deploy was actually given (by the file or the
/// `VERSION` variable) rather than left at the placeholder.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The config, with the environment applied and validated.
    pub config: DeploymentConfig,
    /// Whether the file or `VERSION` named a version.
    pub version_given: bool,
}

/// Loads `path` (or the backend's built-in default), applies the brief's environment
/// variables and checks that it deploys exactly one service.
pub fn load_config(
    path: Option<&Path>,
    backend: BackendKind,
    env: &EnvLookup,
) -> Result<Loaded, CliError> {
    let (config, mut version_given) = match path {
        None => {
            let text = match backend {
                BackendKind::Local => LOCAL_DEFAULT,
                BackendKind::Sim => SIM_DEFAULT,
            };
            let c = DeploymentConfig::from_yaml(text)
                .map_err(|e| CliError::usage(format!("the built-in config: {e}")))?;
            (c, false)
        }
        Some(path) => {
            let format = format_of(path)?;
            let text = std::fs::read_to_string(path).map_err(|e| {
                CliError::usage(format!("cannot read config file {}: {e}", path.display()))
            })?;
            let in_file = |e: &dyn std::fmt::Display| {
                CliError::usage(format!("config file {}: {e}", path.display()))
            };
            // The file as written first, so that an error's line and column are the file's.
            match DeploymentConfig::parse(&text, format) {
                Ok(c) => (c, true),
                Err(e) if lacks_version(&e) => {
                    let filled =
                        with_placeholder_version(&text, format).map_err(|e| in_file(&e))?;
                    let c = DeploymentConfig::parse(&filled, format).map_err(|e| in_file(&e))?;
                    (c, false)
                }
                Err(e) => return Err(in_file(&e)),
            }
        }
    };
    if env.get("VERSION").is_some() {
        version_given = true;
    }
    let config = config
        .with_overrides(|name| env.get(name))
        .map_err(|e| CliError::usage(format!("environment: {e}")))?;
    if config.target_services.len() != 1 {
        return Err(CliError::usage(format!(
            "invalid targetServices `{:?}`: the example CLI deploys exactly one service",
            config.target_services
        )));
    }
    Ok(Loaded {
        config,
        version_given,
    })
}

/// The one service the config deploys.
pub fn service_of(config: &DeploymentConfig) -> &str {
    config
        .target_services
        .first()
        .map_or("demo", String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_parse_comments_exports_and_quotes() {
        let text = "# deploy settings\nVERSION=1.1.0\nexport INCREMENT = 10 # percent\n\
                    NAME='a # b'\nMSG=\"line\\nnext\"\n\n";
        let vars = parse_env_file(text).expect("parse");
        assert_eq!(vars["VERSION"], "1.1.0");
        assert_eq!(vars["INCREMENT"], "10");
        assert_eq!(vars["NAME"], "a # b");
        assert_eq!(vars["MSG"], "line\nnext");
    }

    #[test]
    fn a_quoted_value_ends_at_its_first_closing_quote() {
        let text =
            "VERSION='1.1.0' # don't bump by hand\nNAME=\"a \\\"b\\\"\" # the \"stable\" one\n";
        let vars = parse_env_file(text).expect("parse");
        assert_eq!(vars["VERSION"], "1.1.0");
        assert_eq!(vars["NAME"], "a \"b\"");
        let err = parse_env_file("VERSION='1.1.0'.1\n").expect_err("text after the quote");
        assert!(err.contains("line 1") && err.contains("VERSION"), "{err}");
    }

    /// A comment after `KEY=` is no value: `VERSION= # set per release` leaves VERSION unset,
    /// as a comment after a value is dropped, whatever whitespace comes before its `#`.
    #[test]
    fn a_comment_after_the_equals_sign_is_no_value() {
        let vars = parse_env_file("VERSION= # set per release\nINCREMENT=10\t# percent\nTAG=#1\n")
            .expect("parse");
        assert_eq!(vars["VERSION"], "");
        assert_eq!(vars["INCREMENT"], "10");
        // A `#` right after `=` is the value's, as it is right after any other character.
        assert_eq!(vars["TAG"], "#1");
    }

    /// An editor that saves UTF-8 with a byte order mark writes it before the first key.
    #[test]
    fn a_byte_order_mark_before_the_first_key_is_not_part_of_it() {
        let vars = parse_env_file("\u{feff}VERSION=1.1.0\r\nINCREMENT=10\r\n").expect("parse");
        assert_eq!(vars["VERSION"], "1.1.0");
        assert_eq!(vars["INCREMENT"], "10");
    }

    #[test]
    fn a_blank_value_in_the_file_is_unset() {
        let env = EnvLookup {
            file: parse_env_file("SERIN_SETTINGS_BLANK= \nSERIN_SETTINGS_SET=1\n").expect("parse"),
        };
        assert_eq!(env.get("SERIN_SETTINGS_BLANK"), None);
        assert_eq!(env.get("SERIN_SETTINGS_SET").as_deref(), Some("1"));
    }

    #[test]
    fn bad_env_lines_name_the_line() {
        assert!(
            parse_env_file("A=1\noops\n")
                .unwrap_err()
                .contains("line 2")
        );
        assert!(parse_env_file("1A=1").unwrap_err().contains("`1A`"));
        assert!(parse_env_file("A=\"open").unwrap_err().contains("closing"));
    }

    #[test]
    fn a_missing_version_is_filled_in_every_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, text) in [
            ("c.yaml", "strategy: canary\ntargetServices: [web]\n"),
            (
                "c.json",
                r#"{"strategy":"canary","targetServices":["web"]}"#,
            ),
            (
                "c.toml",
                "strategy = \"canary\"\ntargetServices = [\"web\"]\n",
            ),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            let loaded = load_config(Some(&path), BackendKind::Sim, &EnvLookup::default())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!loaded.version_given, "{name}");
            assert_eq!(service_of(&loaded.config), "web", "{name}");
        }
        let path = dir.path().join("v.yaml");
        std::fs::write(
            &path,
            "version: 1.0.0\nstrategy: canary\ntargetServices: [web]\n",
        )
        .expect("write");
        let loaded =
            load_config(Some(&path), BackendKind::Sim, &EnvLookup::default()).expect("loads");
        assert!(loaded.version_given);
        assert_eq!(loaded.config.version, semver::Version::new(1, 0, 0));
        assert!(with_placeholder_version("[1, 2]", Format::Yaml).is_err());
    }

    #[test]
    fn an_error_in_a_file_without_a_version_names_the_file_s_own_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The unknown field is on line 6 of each file, after comments and blank lines that a
        // document written out again would not keep.
        for (name, text, at) in [
            (
                "c.yaml",
                "# deploy\n\n# settings\nstrategy: canary\ncanaryConfig:\n  incrementPercent: 30\ntargetServices: [demo]\n",
                "line 6 column 3",
            ),
            (
                "c.toml",
                "# deploy\n\nstrategy = \"canary\"\ntargetServices = [\"demo\"]\n[canaryConfig]\nincrementPercent = 30\n",
                "line 6, column 1",
            ),
            (
                "c.json",
                "{\n  \"strategy\": \"canary\",\n\n  \"targetServices\": [\"demo\"],\n  \"canaryConfig\": {\n    \"incrementPercent\": 30 }\n}\n",
                "line 6 column",
            ),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            let e = load_config(Some(&path), BackendKind::Sim, &EnvLookup::default())
                .expect_err("unknown field");
            assert!(
                e.message.contains("incrementPercent") && e.message.contains(at),
                "{name}: `{at}` in {}",
                e.message
            );
        }
    }

    #[test]
    fn the_example_config_file_loads_without_a_version() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("cli/deploy.yaml");
        let loaded = load_config(Some(&path), BackendKind::Local, &EnvLookup::default())
            .expect("the example config loads");
        assert!(!loaded.version_given);
        assert_eq!(
            loaded.config.strategy,
            serin_orchestrator::StrategyKind::BlueGreen
        );
        assert_eq!(loaded.config.canary_config.initial_percentage, 10);
        assert_eq!(service_of(&loaded.config), "demo");
    }

    /// The example's commented-out parity judges load once uncommented, so the example stays
    /// one a user can switch on.
    #[test]
    fn the_example_config_s_commented_parity_judges_load_when_uncommented() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("cli/deploy.yaml");
        let text = std::fs::read_to_string(&path).expect("the example config");
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let start = lines
            .iter()
            .position(|l| l.trim() == "# parityJudges:")
            .expect("a commented parityJudges block");
        for line in &mut lines[start..] {
            let Some(body) = line.strip_prefix("  # ") else {
                break;
            };
            *line = format!("  {body}");
        }
        // The file leaves the version to the command line.
        let text = format!("version: 1.0.0\n{}", lines.join("\n"));
        let config = DeploymentConfig::from_yaml(&text).expect("loads uncommented");
        let parity = config.canary_config.parity_judges.expect("parity judges");
        assert_eq!(parity.role, serin_orchestrator::ParityRole::Alongside);
        let flagger = parity.flagger.expect("a Flagger analysis");
        assert_eq!((flagger.threshold, flagger.metrics.len()), (2, 3));
        let argo = parity.argo.first().expect("an Argo metric");
        let condition = argo
            .success_condition
            .as_ref()
            .expect("its success condition");
        assert_eq!(condition.to_string(), "result[0] <= 0.05");
    }

    #[test]
    fn the_built_in_configs_are_valid() {
        for text in [LOCAL_DEFAULT, SIM_DEFAULT] {
            let c = DeploymentConfig::from_yaml(text).expect("valid");
            assert_eq!(service_of(&c), "demo");
        }
    }
}
