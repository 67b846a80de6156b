//! The example CLI (`serin-cli`), run as a program: deployments, status, logs and rollbacks
//! across invocations on the simulated fleet (virtual time, so they take moments), the exit
//! codes of bad input, and one small run on the local backend (demo-service processes behind
//! the embedded proxy, real time, a few seconds).
//!
//! The CLI is an `[[example]]`, which `cargo test -p serin-examples` builds before running
//! these tests into `target/<profile>/examples/`, beside this test's own directory; run alone
//! (`--test cli`), the tests build it with cargo into a target directory of their own.

use std::io::{BufRead as _, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::OnceLock;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

/// `target/<profile>`: this test runs from `target/<profile>/deps`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// Whether `binary` reflects every source change this test itself was built with (changes
/// made since, while it runs, do not count: the test matches the sources as they were then).
fn current(binary: &Path) -> bool {
    let this = std::env::current_exe()
        .and_then(std::fs::metadata)
        .and_then(|m| m.modified())
        .ok();
    serin_examples::freshness_as_of(binary, this) == serin_examples::Freshness::Fresh
}

/// Builds `args` with cargo into `target/<dir>` (the main target directory is locked while
/// `cargo test` runs) and returns the product at `product` under it.
fn build_elsewhere(dir: &str, args: &[&str], product: &str) -> PathBuf {
    let own = profile_dir().join(dir);
    let built = own.join("debug").join(product);
    // Cargo knows best what is current; asking it is skipped only while nothing has changed.
    if !current(&built) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "-q"])
            .args(args)
            .arg("--target-dir")
            .arg(&own)
            .status()
            .expect("cargo build");
        assert!(
            status.success() && built.exists(),
            "could not build {}",
            built.display()
        );
    }
    built
}

/// The example `name`, built once per run: the one cargo built beside this test while it is
/// newer than its sources (`--test cli` alone does not rebuild examples), else one built in a
/// directory of its own.
fn example_binary(cell: &'static OnceLock<PathBuf>, name: &str, build_dir: &str) -> &'static Path {
    cell.get_or_init(|| {
        let bin = profile_dir().join("examples").join(name);
        if current(&bin) {
            return bin;
        }
        build_elsewhere(
            build_dir,
            &["-p", "serin-examples", "--example", name],
            &format!("examples/{name}"),
        )
    })
}

/// The CLI binary.
fn cli_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    example_binary(&BIN, "serin-cli", "serin-cli-build")
}

/// The `report_chart` example.
fn report_chart_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    example_binary(&BIN, "report_chart", "report-chart-build")
}

/// The demo service binary of `serin-local`.
fn demo_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // The one beside this test unless it is older than its sources (built before they
        // changed: the tests would run the old demo service).
        let bin = profile_dir().join("serin-demo-service");
        if current(&bin) {
            return bin;
        }
        build_elsewhere(
            "serin-demo-build",
            &["-p", "serin-local", "--bin", "serin-demo-service"],
            "serin-demo-service",
        )
    })
}

/// A CLI run in `dir` (its working directory, where `.serin` and `.env` live), with none of
/// the brief's variables inherited from the environment running the tests.
fn cli(dir: &Path) -> Command {
    let mut cmd = Command::new(cli_binary());
    cmd.current_dir(dir);
    for var in [
        "VERSION",
        "DEPLOYMENT_STRATEGY",
        "REPLICAS",
        "INITIAL_PERCENTAGE",
        "INCREMENT",
        "PHASE_DURATION",
        "CANARY_ERROR_RATE",
        "MAX_ERROR_RATE",
        "TRAFFIC_STRATEGY",
        "TRAFFIC_INCREMENT",
        "TRAFFIC_INTERVAL",
        "MONITORING_DURATION",
        "CHECK_INTERVAL",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// A CLI run on the simulated fleet.
fn sim(dir: &Path) -> Command {
    let mut cmd = cli(dir);
    cmd.args(["--backend", "sim"]);
    cmd
}

/// [`sim`] with the catalog `catalog.yaml` of `dir`.
fn with_catalog(dir: &Path) -> Command {
    let mut c = sim(dir);
    c.args(["--catalog", "catalog.yaml"]);
    c
}

/// `cmd` with `args` and `--output json`, exiting with `code`: what it printed.
fn json_stdout(cmd: &mut Command, args: &[&str], code: i32) -> Vec<u8> {
    cmd.args(args)
        .args(["--output", "json"])
        .assert()
        .code(code)
        .get_output()
        .stdout
        .clone()
}

/// `cmd` with `args` and `--output json`, succeeding: its document.
fn succeeds_with_json(cmd: &mut Command, args: &[&str]) -> Value {
    json(&json_stdout(cmd, args, 0))
}

/// `args` on the simulated fleet, succeeding, with `--output json`: its document.
fn sim_json(dir: &Path, args: &[&str]) -> Value {
    succeeds_with_json(&mut sim(dir), args)
}

/// The deployment `args` on the simulated fleet with `--output json`, exiting with `code`: its
/// report.
fn sim_report(dir: &Path, args: &[&str], code: i32) -> Value {
    report(&json_stdout(&mut sim(dir), args, code))
}

/// Installs `version` on the simulated fleet in `dir`.
fn deploy_on_sim(dir: &Path, version: &str) {
    sim(dir)
        .args(["deploy", "--version", version])
        .assert()
        .success();
}

fn json(output: &[u8]) -> Value {
    serde_json::from_slice(output).unwrap_or_else(|e| {
        panic!(
            "not one JSON document ({e}): {}",
            String::from_utf8_lossy(output)
        )
    })
}

/// A deployment's report, as JSON; it also reads back as the orchestrator's `Report` (an
/// estimate that is not a number, such as an error-rate ratio over two arms without errors,
/// is written as `"NaN"` and reads back as one).
fn report(output: &[u8]) -> Value {
    if let Err(e) = serde_json::from_slice::<serin_orchestrator::Report>(output) {
        panic!("not a report ({e}): {}", String::from_utf8_lossy(output));
    }
    let r = json(output);
    for field in [
        "deployment",
        "service",
        "strategy",
        "to",
        "outcome",
        "timeline",
    ] {
        assert!(r.get(field).is_some(), "a report has `{field}`: {r}");
    }
    r
}

/// How the reported deployment ended: `succeeded`, `rolledBack`, `blocked` or `failed`.
fn result(report: &Value) -> &str {
    report["outcome"]["result"].as_str().unwrap_or("unfinished")
}

/// `logs` on the simulated fleet in `dir` shows 1.1.0's promotion and a rollback.
fn logs_show_the_promotion_and_the_rollback(dir: &Path) {
    sim(dir)
        .args(["logs"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "completed: 1.1.0 serves all traffic",
        ))
        .stdout(predicate::str::contains("rolled back"));
}

/// `status` on the default (local) backend, as JSON.
fn status(dir: &Path) -> Value {
    succeeds_with_json(&mut cli(dir), &["status"])
}

/// `status` on the simulated fleet, as JSON.
fn sim_status(dir: &Path) -> Value {
    sim_json(dir, &["status"])
}

/// `name` in the state directory of `dir`.
fn state_file(dir: &Path, name: &str) -> PathBuf {
    dir.join(".serin").join(name)
}

/// The example config file: a gradual blue-green switch.
fn example_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cli/deploy.yaml")
}

#[test]
fn help_lists_the_verbs_and_documents_the_exit_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let assert = cli(dir.path()).arg("--help").assert().success();
    let text = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    for verb in [
        "deploy",
        "deploy-blue-green",
        "deploy-canary",
        "rollback",
        "status",
        "monitor",
        "logs",
        "metrics",
        "health-check",
        "plan",
        "backups",
        "compact",
    ] {
        assert!(text.contains(verb), "{verb} missing from:\n{text}");
    }
    for code in [
        "0  success",
        "1  the deployment was rolled back",
        "2  usage",
        "3  blocked",
        "4  backend",
    ] {
        assert!(text.contains(code), "`{code}` missing from:\n{text}");
    }
    cli(dir.path())
        .args(["deploy", "--strategy", "sideways"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("sideways"));
}

/// `deploy-blue-green` and `deploy-canary` name their strategy: they offer no `--strategy`,
/// which `deploy` and `plan` take.
#[test]
fn the_verbs_that_name_their_strategy_offer_no_strategy_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let help = |verb: &str| {
        let out = cli(dir.path()).args([verb, "--help"]).assert().success();
        String::from_utf8_lossy(&out.get_output().stdout).into_owned()
    };
    for verb in ["deploy-blue-green", "deploy-canary"] {
        let text = help(verb);
        assert!(text.contains("--version"), "{verb}: {text}");
        assert!(!text.contains("--strategy"), "{verb}: {text}");
        sim(dir.path())
            .args([verb, "--version", "1.0.0", "--strategy", "canary"])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("--strategy"));
    }
    for verb in ["deploy", "plan"] {
        let text = help(verb);
        assert!(text.contains("--strategy"), "{verb}: {text}");
    }
}

#[test]
fn a_dry_run_plans_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    sim(dir.path())
        .args(["deploy", "--version", "1.0.0", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains("dry run: nothing was changed"))
        .stdout(predicate::str::contains("install 1.0.0"));
    assert!(!state_file(dir.path(), "state.json").exists());
    assert!(!state_file(dir.path(), "journal.jsonl").exists());
    // Before any deployment, the verbs that read the history find it empty.
    sim(dir.path())
        .args(["logs"])
        .assert()
        .success()
        .stdout(predicate::str::contains("no events"));
    sim(dir.path()).args(["compact"]).assert().success();
    // The example config file: a gradual blue-green switch.
    let example = example_config();
    sim(dir.path())
        .args([
            "--config",
            example.to_str().expect("path"),
            "plan",
            "--version",
            "1.0.0",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "install 1.0.0 on blue by blue-green",
        ));
}

#[test]
fn deploy_status_logs_and_rollbacks_work_across_invocations_on_the_simulated_fleet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();

    // First install.
    let install = sim_report(d, &["deploy", "--version", "1.0.0"], 0);
    assert_eq!(result(&install), "succeeded", "{install}");
    assert!(
        install["schemaVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("serin.report/")),
        "the orchestrator's versioned report: {install}"
    );
    assert!(install["from"].is_null(), "{install}");

    // The plan sees what runs, and changes nothing.
    let plan = sim_json(
        d,
        &["plan", "--version", "1.1.0", "--strategy", "blue-green"],
    );
    assert_eq!(plan["plans"][0]["from"]["version"], "1.0.0", "{plan}");
    assert_eq!(plan["plans"][0]["to"]["version"], "1.1.0", "{plan}");
    assert_eq!(plan["plans"][0]["strategy"], "blue-green", "{plan}");
    assert_eq!(sim_status(d)["current"]["version"], "1.0.0");

    // A healthy canary is promoted.
    let canary = sim_report(
        d,
        &[
            "deploy-canary",
            "--version",
            "1.1.0",
            "--initial-percentage",
            "10",
            "--increment",
            "30",
            "--phase-duration",
            "2m",
        ],
        0,
    );
    assert_eq!(result(&canary), "succeeded", "{canary}");
    assert_eq!(canary["from"]["version"], "1.0.0", "{canary}");
    let timeline = canary["timeline"].as_array().cloned().unwrap_or_default();
    let weights: Vec<f64> = timeline
        .iter()
        .filter(|e| e["kind"]["type"] == "weightChanged")
        .filter_map(|e| e["kind"]["percent"].as_f64())
        .collect();
    let canary_id = canary["deployment"].as_str().expect("id").to_owned();
    assert_eq!(weights.first(), Some(&10.0), "{weights:?}");
    assert!(weights.contains(&40.0), "{weights:?}");

    // A version answering 20% errors is rolled back by its canary: exit 1.
    let bad = sim_report(
        d,
        &["deploy", "--version", "1.2.0", "--error-rate", "0.2"],
        1,
    );
    assert_eq!(result(&bad), "rolledBack", "{bad}");

    let s = sim_status(d);
    assert_eq!(s["current"]["version"], "1.1.0", "{s}");
    assert_eq!(s["previous"], serde_json::json!(["1.0.0"]), "{s}");
    assert_eq!(s["lastDeployment"], bad["deployment"], "{s}");
    // Read back from the journal: the rolled-back deployment's outcome, at its end.
    assert_eq!(s["lastOutcome"], bad["outcome"], "{s}");
    assert_eq!(s["lastPhase"], "finished", "{s}");
    assert!(s["interrupted"].is_null(), "{s}");

    // The journal holds every deployment's events.
    logs_show_the_promotion_and_the_rollback(d);
    let events = sim_json(d, &["logs", "--deployment", &canary_id])["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        events.len(),
        timeline.len(),
        "the journal has every event of the report"
    );
    assert!(events.iter().all(|e| e["deployment"] == canary_id.as_str()));
    let tail = sim_json(d, &["logs", "--tail", "1"]);
    assert_eq!(tail["events"].as_array().map(Vec::len), Some(1));
    sim(d)
        .args(["logs", "--deployment", "nope"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("nope"));

    // Compaction keeps the last finished deployment whole and trims the two before it to their
    // last record, whose final events stay; what runs is not the journal's and stays.
    let c = sim_json(d, &["compact", "--keep", "1"]);
    assert_eq!(
        (c["trimmed"].as_u64(), c["kept"].as_u64()),
        (Some(2), Some(1)),
        "{c}"
    );
    assert!(c["recordsDropped"].as_u64() > Some(0), "{c}");
    assert!(c["bytesAfter"].as_u64() < c["bytesBefore"].as_u64(), "{c}");
    let left = sim_json(d, &["logs", "--deployment", &canary_id])["events"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(
        left > 0 && left < timeline.len(),
        "{left} of {}",
        timeline.len()
    );
    logs_show_the_promotion_and_the_rollback(d);
    assert_eq!(sim_status(d)["lastPhase"], "finished");

    // Rollback goes back to the version before 1.1.0.
    let back = sim_report(d, &["rollback"], 0);
    assert_eq!(result(&back), "succeeded", "{back}");
    assert_eq!(back["to"]["version"], "1.0.0", "{back}");
    assert_eq!(back["strategy"], "blue-green", "{back}");
    let s = sim_status(d);
    assert_eq!(s["current"]["version"], "1.0.0", "{s}");
    assert_eq!(s["previous"], serde_json::json!([]), "{s}");

    // Nothing ran before 1.0.0 now; a named version still works.
    sim(d)
        .args(["rollback"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--to-version"));
    // A version never deployed from this state directory is refused, naming those that were.
    sim(d)
        .args(["rollback", "--to-version", "0.9.0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid --to-version `0.9.0`"))
        .stderr(predicate::str::contains("1.0.0, 1.1.0, 1.2.0"));
    assert_eq!(sim_status(d)["current"]["version"], "1.0.0");
    sim(d)
        .args(["rollback", "--to-version", "1.1.0"])
        .assert()
        .success()
        .stdout(predicate::str::contains("outcome: succeeded"));
    assert_eq!(sim_status(d)["current"]["version"], "1.1.0");

    // Monitoring and metrics of what runs, in virtual time.
    let m = sim_json(d, &["monitor", "--duration", "3m", "--interval", "1m"]);
    assert_eq!(m["healthy"], true, "{m}");
    let samples = m["samples"].as_array().cloned().unwrap_or_default();
    assert_eq!(samples.len(), 3, "{m}");
    for sample in &samples {
        let track = &sample["tracks"][0];
        assert_eq!(track["version"], "1.1.0", "{sample}");
        // 100 requests a second for a minute, give or take the Poisson noise.
        let n = track["requests"].as_u64().unwrap_or(0);
        assert!((5_000..7_000).contains(&n), "{n} requests in {sample}");
    }
    let m = sim_json(d, &["metrics", "--duration", "10s"]);
    assert!(
        m["tracks"][0]["p99Ms"].as_f64().is_some_and(|p| p > 0.0),
        "{m}"
    );
    sim(d)
        .args(["health-check"])
        .assert()
        .success()
        .stdout(predicate::str::contains("3/3 ready — healthy"));

    // Trimmed to their last records, the deployments still tell status how the last one ended;
    // with the journal gone, status still tells what runs.
    sim(d).args(["compact", "--keep", "0"]).assert().success();
    assert_eq!(sim_status(d)["lastPhase"], "finished");
    std::fs::remove_file(state_file(d, "journal.jsonl")).expect("journal");
    let s = sim_status(d);
    assert_eq!(s["current"]["version"], "1.1.0", "{s}");
    assert!(
        s["lastDeployment"].is_string() && s["lastPhase"].is_null(),
        "{s}"
    );
    sim(d)
        .args(["status"])
        .assert()
        .success()
        .stdout(predicate::str::contains("no longer in the journal"));

    // Another backend on the same state directory is refused.
    cli(d)
        .args([
            "--demo-binary",
            demo_binary().to_str().expect("path"),
            "health-check",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--backend sim"));
}

#[test]
fn monitor_watches_as_long_and_as_often_as_the_brief_s_variables_say() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    deploy_on_sim(d, "1.0.0");
    std::fs::write(d.join(".env"), "MONITORING_DURATION=180\n").expect("write .env");
    let m = succeeds_with_json(sim(d).env("CHECK_INTERVAL", "1m"), &["monitor"]);
    assert_eq!(
        m["samples"].as_array().map(Vec::len),
        Some(3),
        "3 minutes by 1"
    );
    // The flags win.
    let m = succeeds_with_json(
        sim(d).env("CHECK_INTERVAL", "1m"),
        &["monitor", "--duration", "2m"],
    );
    assert_eq!(
        m["samples"].as_array().map(Vec::len),
        Some(2),
        "2 minutes by 1"
    );
    sim(d)
        .env("CHECK_INTERVAL", "0")
        .args(["monitor"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("CHECK_INTERVAL `0`"));
}

/// `monitor` judges what it measures by the deployment's own thresholds: an error rate over
/// `ERROR_RATE_THRESHOLD` for `CONSECUTIVE_FAILURES` samples in a row exits 1 and says so,
/// though every probe passes; under a threshold it raises, the same version passes.
#[test]
fn monitor_fails_a_version_whose_error_rate_stays_over_its_threshold() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    sim(d)
        .env("ERROR_RATE_THRESHOLD", "0.9")
        .args(["deploy", "--version", "1.0.0", "--error-rate", "0.3"])
        .assert()
        .success();
    let watch = ["monitor", "--duration", "30s", "--interval", "10s"];
    let m = json(&json_stdout(&mut sim(d), &watch, 1));
    assert_eq!(m["healthy"], true, "every probe passed: {m}");
    assert_eq!(m["withinThresholds"], false, "{m}");
    let over = &m["samples"][0]["overThresholds"][0];
    assert!(
        over.as_str()
            .is_some_and(|o| o.contains("over errorRateThreshold 10%")),
        "{m}"
    );
    sim(d)
        .args(watch)
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "over its thresholds for 3 samples in a row",
        ));
    // With four samples in a row needed, three breaching samples are no breach.
    let m = json(&json_stdout(
        sim(d).env("CONSECUTIVE_FAILURES", "4"),
        &watch,
        0,
    ));
    assert_eq!(m["withinThresholds"], true, "{m}");
    let m = succeeds_with_json(sim(d).env("ERROR_RATE_THRESHOLD", "0.9"), &watch);
    assert_eq!(m["withinThresholds"], true, "{m}");
}

/// Every sample of `monitor` measures a window in which the load ran: the first one does not
/// reach back to before the load started, which would show a fraction of its rate.
#[test]
fn monitor_s_first_sample_measures_the_load_only_since_it_started() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    deploy_on_sim(d, "1.0.0");
    // So many requests that a second's count is within a few percent of the rate.
    let m = succeeds_with_json(
        &mut sim(d),
        &[
            "--load-rps",
            "20000",
            "monitor",
            "--duration",
            "3s",
            "--interval",
            "1s",
        ],
    );
    let samples = m["samples"].as_array().expect("samples");
    assert_eq!(samples.len(), 3, "{m}");
    for sample in samples {
        let rps = sample["tracks"][0]["throughput"]
            .as_f64()
            .expect("throughput");
        assert!(rps > 19_000.0, "{rps} requests a second in {sample}");
    }
}

/// `--seed`'s promise ("a command run again with the same seed sees the same traffic, errors
/// and latencies") for `metrics`: the same seed over the same recorded deployment measures the
/// same requests, errors and latencies, whatever the wall-clock millisecond it started at, and
/// over all of `--duration`.
#[test]
fn metrics_run_again_with_its_seed_measures_the_same_traffic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    deploy_on_sim(d, "1.0.0");
    let measure = || {
        let m = sim_json(d, &["--seed", "3", "metrics", "--duration", "5s"]);
        let window = &m["window"];
        let length = window["end"].as_u64().zip(window["start"].as_u64());
        assert_eq!(length.map(|(end, start)| end - start), Some(5_000), "{m}");
        let t = &m["tracks"][0];
        (
            t["requests"].clone(),
            t["errors"].clone(),
            t["p50Ms"].clone(),
            t["p99Ms"].clone(),
        )
    };
    let first = measure();
    for _ in 0..3 {
        // Runs start at different milliseconds of the wall clock.
        std::thread::sleep(std::time::Duration::from_millis(137));
        assert_eq!(measure(), first, "same seed, different traffic");
    }
}

/// The simulated fleet starts at the wall-clock time, but its draws count from its start: a
/// canary run again with the same `--seed` sees the same requests, errors and latencies in
/// every window and ends the same way, and another seed sees others.
#[test]
fn a_simulated_canary_run_again_with_its_seed_sees_the_same_traffic() {
    let run = |seed: &str| {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        sim(d)
            .args(["--seed", seed, "deploy", "--version", "1.0.0"])
            .assert()
            .success();
        let args = ["--seed", seed, "deploy-canary", "--version", "1.1.0"];
        // Errors the error-free 1.0.0 never shows: rolled back within a few windows.
        let r = sim_report(d, &[&args[..], &["--error-rate", "0.05"]].concat(), 1);
        let arms: Vec<(Value, Value, Value)> = r["samples"]
            .as_array()
            .expect("samples")
            .iter()
            .flat_map(|s| s["arms"].as_array().expect("arms").clone())
            .map(|a| {
                (
                    a["requests"].clone(),
                    a["errors"].clone(),
                    a["p99Ms"].clone(),
                )
            })
            .collect();
        assert!(!arms.is_empty(), "{r}");
        (arms, r["outcome"].clone())
    };
    let first = run("7");
    assert_eq!(run("7"), first);
    assert_ne!(run("8").0, first.0);
}

#[test]
fn report_chart_draws_the_deployment_a_prefix_names_and_refuses_an_ambiguous_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    deploy_on_sim(d, "1.0.0");
    // 1.1.0 twice: rolled back, then promoted.
    let first = sim_report(
        d,
        &["deploy", "--version", "1.1.0", "--error-rate", "0.3"],
        1,
    );
    let second = sim_report(d, &["deploy", "--version", "1.1.0", "--error-rate", "0"], 0);
    let ids = [&first, &second].map(|r| r["deployment"].as_str().expect("id").to_owned());
    let chart = |args: &[&str]| {
        let mut cmd = Command::new(report_chart_binary());
        cmd.current_dir(d).args(args);
        cmd
    };
    // A `--deployment` that names several deployments of the journal, or none, is a usage
    // error as a report's other deployment is: the input is fine, the argument is not.
    chart(&[
        ".serin/journal.jsonl",
        "chart.svg",
        "--deployment",
        "demo-1.1.0",
    ])
    .assert()
    .code(2)
    .stderr(predicate::str::contains(ids[0].as_str()))
    .stderr(predicate::str::contains(ids[1].as_str()))
    .stderr(predicate::str::contains("usage: report_chart"));
    chart(&[
        ".serin/journal.jsonl",
        "chart.svg",
        "--deployment",
        "demo-9",
    ])
    .assert()
    .code(2)
    .stderr(predicate::str::contains(
        "invalid --deployment `demo-9`: no deployment in .serin/journal.jsonl starts with it",
    ))
    .stderr(predicate::str::contains(ids[1].as_str()));
    assert!(!d.join("chart.svg").exists());
    chart(&[
        ".serin/journal.jsonl",
        "chart.svg",
        "--deployment",
        &ids[1],
        "--json",
        "report.json",
    ])
    .assert()
    .success()
    .stdout(predicate::str::contains(ids[1].as_str()));
    assert!(d.join("chart.svg").is_file());
    // A report holds one deployment: a `--deployment` that names another is refused, not
    // ignored (the chart would silently show another deployment than the one named).
    chart(&["report.json", "other.svg", "--deployment", "demo-1.0.0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "invalid --deployment `demo-1.0.0`: report.json is the report of {}",
            ids[1]
        )));
    assert!(!d.join("other.svg").exists());
    chart(&["report.json", "other.svg", "--deployment", &ids[1]])
        .assert()
        .success();
    // `--json -` is stdout, holding the JSON alone; no file named `-` is written.
    let piped = chart(&["report.json", "piped.svg", "--json", "-"])
        .assert()
        .success()
        .stderr(predicate::str::contains("piped.svg"))
        .get_output()
        .stdout
        .clone();
    assert_eq!(json(&piped)["deployment"], ids[1].as_str());
    assert!(!d.join("-").exists());
    chart(&["--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("usage: report_chart"));
    // A flag given twice is refused, not settled silently by the last one.
    for flag in ["--deployment", "--json"] {
        chart(&[".serin/journal.jsonl", "twice.svg", flag, "a", flag, "b"])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(format!("{flag} given twice")));
    }
    assert!(!d.join("twice.svg").exists());
    // A short option it does not have is named, not taken for a third file.
    chart(&["-d", &ids[1], ".serin/journal.jsonl", "short.svg"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown option `-d`"));
    assert!(!d.join("short.svg").exists());
    chart(&["missing.jsonl", "chart.svg"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot read missing.jsonl"));
    chart(&[".serin/journal.jsonl"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("usage: report_chart"));
}

/// A `--json` that names the input or the chart, however spelled, is refused before anything
/// is written: the journal a quickstart or a deployment kept would be lost under a report.
#[test]
fn report_chart_refuses_a_json_path_that_is_its_input_or_its_chart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    deploy_on_sim(d, "1.0.0");
    let journal = d.join(".serin/journal.jsonl");
    let before = std::fs::read(&journal).expect("journal");
    let chart = |args: &[&str]| {
        let mut cmd = Command::new(report_chart_binary());
        cmd.current_dir(d).args(args);
        cmd
    };
    for (args, named) in [
        (
            &[
                ".serin/journal.jsonl",
                "c.svg",
                "--json",
                "./.serin/journal.jsonl",
            ][..],
            "--json `./.serin/journal.jsonl`",
        ),
        (
            &[".serin/journal.jsonl", "c.svg", "--json", "./c.svg"][..],
            "--json `./c.svg`",
        ),
    ] {
        chart(args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(named))
            .stderr(predicate::str::contains("usage: report_chart"));
        assert_eq!(
            std::fs::read(&journal).expect("journal"),
            before,
            "{args:?} wrote over the journal"
        );
        assert!(!d.join("c.svg").exists(), "{args:?}");
    }
    // A chart that is not named `*.svg` is a bad argument too, whatever the input.
    chart(&[".serin/journal.jsonl", "c.png"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid chart path `c.png`"))
        .stderr(predicate::str::contains("usage: report_chart"));
    assert!(!d.join("c.png").exists());
}

/// Holds `dir`'s state directory as a running `deploy` does.
fn hold_state_dir(dir: &Path) -> std::fs::File {
    std::fs::create_dir_all(dir.join(".serin")).expect("state dir");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(state_file(dir, "lock"))
        .expect("lock file");
    lock.lock().expect("lock");
    lock
}

/// While a deployment holds the state directory, the dry run says that a start would be
/// refused, naming the holder and what to do as the deployment's own refusal does (never a
/// `resume` or `abandon` this command line does not have), and exits as the deployment itself
/// would (4).
#[test]
fn a_dry_run_marks_the_start_refused_while_another_command_holds_the_state_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    deploy_on_sim(d, "1.0.0");
    let mut held = hold_state_dir(d);
    held.set_len(0).expect("truncate");
    std::io::Write::write_all(&mut held, b"4242: deploy of 1.1.0").expect("holder");
    for args in [
        vec!["plan", "--version", "1.2.0"],
        vec!["deploy", "--version", "1.2.0", "--dry-run"],
    ] {
        sim(d)
            .args(&args)
            .assert()
            .code(4)
            .stdout(predicate::str::contains("start: REFUSED"))
            .stdout(predicate::str::contains(
                "in use by another command (process 4242: deploy of 1.1.0): wait for its end, \
                 or use another --state-dir",
            ))
            .stdout(predicate::str::contains("resume").not())
            .stdout(predicate::str::contains("abandon").not());
    }
    drop(held);
    sim(d)
        .args(["plan", "--version", "1.2.0"])
        .assert()
        .success()
        .stdout(predicate::str::contains("REFUSED").not());
}

/// The dry run plans the backup `--backup-dir` takes, and refuses what the deployment would
/// (a `--backup-keep` below 2), creating nothing either way.
#[test]
fn a_dry_run_plans_the_backup_of_the_flags_and_refuses_their_bad_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::create_dir(d.join("data dir")).expect("data dir");
    for verb in [vec!["plan"], vec!["deploy", "--dry-run"]] {
        sim(d)
            .args(["--backup-dir", "data dir"])
            .args(&verb)
            .args(["--version", "1.0.0"])
            .assert()
            .success()
            .stdout(predicate::str::contains("backup by directory"));
        sim(d)
            .args(["--backup-dir", "data dir", "--backup-keep", "1"])
            .args(&verb)
            .args(["--version", "1.0.0"])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("invalid --backup-keep `1`"));
    }
    assert!(!d.join(".serin").exists());
}

#[test]
fn two_commands_never_deploy_from_one_state_directory_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let held = hold_state_dir(d);
    for args in [vec!["deploy", "--version", "1.0.0"], vec!["rollback"]] {
        sim(d)
            .args(&args)
            .assert()
            .code(4)
            .stderr(predicate::str::contains("is in use by another command"));
    }
    assert!(!state_file(d, "state.json").exists());
    assert!(!state_file(d, "journal.jsonl").exists());
    // What only reads does not wait.
    sim(d).args(["status"]).assert().success();
    drop(held);
    deploy_on_sim(d, "1.0.0");

    // A deployment marked as started is running while a command holds the directory, and
    // was interrupted once none does.
    let path = state_file(d, "state.json");
    let mut state = json(&std::fs::read(&path).expect("state"));
    state["inProgress"] = "deployment of 1.1.0 started at 2026-01-01T00:00:00Z".into();
    std::fs::write(&path, state.to_string()).expect("write state");
    let held = hold_state_dir(d);
    let s = sim_status(d);
    assert!(
        s["inProgress"]
            .as_str()
            .is_some_and(|p| p.starts_with("deployment of 1.1.0"))
            && s["interrupted"].is_null(),
        "{s}"
    );
    sim(d)
        .args(["status"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "in progress: the deployment of 1.1.0",
        ))
        .stdout(predicate::str::contains("interrupted").not());
    drop(held);
    let s = sim_status(d);
    assert!(
        s["interrupted"].is_string() && s["inProgress"].is_null(),
        "{s}"
    );
}

#[test]
fn bad_config_and_bad_flags_exit_2_naming_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let write = |name: &str, text: &str| {
        let path = d.join(name);
        std::fs::write(&path, text).expect("write");
        path.to_str().expect("path").to_owned()
    };
    let bad = write(
        "deploy.yaml",
        "strategy: canary\ntargetServices: [demo]\ncanaryConfig:\n  incrementPercentage: 0\n",
    );
    let unknown = write(
        "deploy.json",
        r#"{"strategy":"canary","targetServices":["demo"],"canaryConfig":{"incrementPercent":10}}"#,
    );
    let two_services = write(
        "deploy.toml",
        "strategy = \"canary\"\ntargetServices = [\"demo\", \"other\"]\n",
    );

    // An unknown field is named in the JSON error document too.
    let out = sim(d)
        .args([
            "--config",
            &unknown,
            "--output",
            "json",
            "plan",
            "--version",
            "1.0.0",
        ])
        .assert()
        .code(2)
        .get_output()
        .stdout
        .clone();
    let doc = json(&out);
    assert_eq!(doc["exitCode"], 2);
    assert!(
        doc["error"]
            .as_str()
            .is_some_and(|e| e.contains("incrementPercent")),
        "{doc}"
    );

    /// An environment variable to set, the arguments, and what the error must name.
    type Case<'a> = (Option<(&'a str, &'a str)>, Vec<&'a str>, &'a str);
    let cases: [Case; 10] = [
        (
            None,
            vec!["--config", &bad, "deploy", "--version", "1.0.0"],
            "canaryConfig.incrementPercentage",
        ),
        (
            None,
            vec!["--config", &two_services, "plan", "--version", "1.0.0"],
            "targetServices",
        ),
        (
            None,
            vec!["deploy-canary", "--version", "1.0.0", "--increment", "0"],
            "canaryConfig.incrementPercentage",
        ),
        (
            None,
            vec!["deploy", "--version", "1.0.0", "--error-rate", "2"],
            "--error-rate",
        ),
        // A dry run refuses what the deployment would.
        (
            None,
            vec![
                "deploy",
                "--version",
                "1.0.0",
                "--dry-run",
                "--error-rate",
                "2",
            ],
            "--error-rate",
        ),
        (
            None,
            vec!["plan", "--version", "1.0.0", "--latency-ms", "99999999"],
            "--latency-ms",
        ),
        (None, vec!["deploy"], "no version to deploy"),
        (None, vec!["rollback"], "nothing is deployed"),
        (
            Some(("INCREMENT", "ten")),
            vec!["plan", "--version", "1.0.0"],
            "INCREMENT",
        ),
        (
            None,
            vec!["--config", &unknown, "plan", "--version", "1.0.0"],
            "incrementPercent",
        ),
    ];
    for (env, args, needle) in cases {
        let mut cmd = sim(d);
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        cmd.args(&args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(needle));
    }
    // The local load cannot pace past its bound; refused before anything starts.
    cli(d)
        .args(["deploy", "--version", "1.0.0", "--load-rps", "1e12"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--load-rps `1000000000000`: must be a number of requests per second above 0 and at \
             most 10000 on the local backend",
        ));
    // Nor can the simulated load pass its own; the flag is named, not the simulator's field.
    sim(d)
        .args(["deploy", "--version", "1.0.0", "--load-rps", "2e6"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "invalid --load-rps `2000000`: must be a number of requests per second above 0 and \
             at most 1000000 on the sim backend",
        ));
    // A negative rate is this flag's bad value, not an unknown flag.
    sim(d)
        .args(["--load-rps", "-5", "deploy", "--version", "1.0.0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid --load-rps `-5`"));
    // Nothing was recorded by any of them, and no state directory was even created.
    assert!(!state_file(d, "state.json").exists());
    assert!(!d.join(".serin").exists(), "bad input created .serin/");
}

/// A negative number given to a numeric flag is that flag's bad value (exit 2, naming it), not
/// an unknown argument `-1` (or `-0` for `-0.1`) that leaves the reader to guess its flag.
#[test]
fn a_negative_number_is_refused_naming_its_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for (args, flag) in [
        (&["--seed", "-1", "status"][..], "--seed"),
        (&["--backup-keep", "-2", "backups"], "--backup-keep"),
        (
            &["deploy", "--version", "1.0.0", "--error-rate", "-0.1"],
            "--error-rate",
        ),
        (
            &["deploy", "--version", "1.0.0", "--latency-ms", "-1"],
            "--latency-ms",
        ),
        (
            &[
                "deploy-canary",
                "--version",
                "1.0.0",
                "--initial-percentage",
                "-5",
            ],
            "--initial-percentage",
        ),
        (
            &["deploy-canary", "--version", "1.0.0", "--increment", "-5"],
            "--increment",
        ),
        (
            &[
                "deploy-canary",
                "--version",
                "1.0.0",
                "--phase-duration",
                "-5",
            ],
            "--phase-duration",
        ),
        (&["monitor", "--duration", "-5"], "--duration"),
        (&["monitor", "--interval", "-1"], "--interval"),
        (&["metrics", "--duration", "-5"], "--duration"),
        (&["logs", "--tail", "-3"], "--tail"),
        (&["compact", "--keep", "-1"], "--keep"),
    ] {
        sim(d)
            .args(args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(flag))
            .stderr(predicate::str::contains("unexpected argument").not());
    }
    assert!(!d.join(".serin").exists(), "bad input created .serin/");
}

/// A `--catalog`, `--env-file` or `--state-dir` that cannot be used is a usage error naming
/// the flag and its value, and changes nothing.
/// An option of every verb given both before and after the verb is refused (exit 2, naming
/// it), as one given twice on either side is, rather than settled silently by the later one.
#[test]
fn a_global_option_given_before_and_after_the_verb_exits_2_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for args in [
        &[
            "--state-dir",
            "a",
            "deploy",
            "--version",
            "1.0.0",
            "--state-dir",
            "b",
        ][..],
        &[
            "--output",
            "json",
            "plan",
            "--version",
            "1.0.0",
            "--output=text",
        ],
    ] {
        sim(d)
            .args(args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(format!(
                "'{}' cannot be used multiple times",
                args[0]
            )));
    }
    assert!(!d.join("a").exists() && !d.join("b").exists());
    // Once, on either side, is fine.
    sim(d)
        .args(["plan", "--version", "1.0.0", "--output", "json"])
        .assert()
        .success();
}

/// `status` with a `--config` of another service than the state directory records is refused
/// as the verbs that deploy refuse it, rather than passing the recorded service's status off
/// as that one's.
#[test]
fn status_refuses_a_config_of_another_service() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    deploy_on_sim(d, "1.0.0");
    let web = d.join("web config.yaml");
    std::fs::write(&web, "strategy: canary\ntargetServices: [web]\n").expect("config");
    sim(d)
        .arg("--config")
        .arg(&web)
        .arg("status")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "records service `demo`, but the config deploys `web`",
        ));
    // Without a config, or with one of the recorded service, it reads the record.
    sim(d).arg("status").assert().success();
    sim(d)
        .arg("--config")
        .arg(example_config())
        .arg("status")
        .assert()
        .success()
        .stdout(predicate::str::contains("running: 1.0.0"));
}

#[test]
fn bad_file_flags_exit_2_naming_the_flag_and_its_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join("bad.env"), "not a variable\n").expect("write");
    std::fs::write(d.join("catalog.txt"), "").expect("write");
    std::fs::write(d.join("bad.yaml"), "services: [").expect("write");
    std::fs::write(d.join("a-file"), "").expect("write");
    let plan = ["plan", "--version", "1.0.0"];
    let deploy = ["deploy", "--version", "1.0.0"];
    let cases: [(&[&str], &[&str], &str); 10] = [
        (
            &["--catalog", "missing.yaml"],
            &plan,
            "--catalog `missing.yaml`",
        ),
        (
            &["--catalog", "catalog.txt"],
            &plan,
            "--catalog `catalog.txt`",
        ),
        (&["--catalog", "bad.yaml"], &plan, "--catalog `bad.yaml`"),
        (
            &["--env-file", "missing.env"],
            &plan,
            "--env-file `missing.env`",
        ),
        (&["--env-file", "bad.env"], &plan, "--env-file `bad.env`"),
        (&["--state-dir", "a-file"], &deploy, "--state-dir `a-file`"),
        (
            &["--state-dir", "a-file/sub"],
            &deploy,
            "--state-dir `a-file/sub`",
        ),
        (
            &["--state-dir", "a-file"],
            &["health-check"],
            "--state-dir `a-file`",
        ),
        (
            &["--state-dir", "a-file"],
            &["rollback"],
            "--state-dir `a-file`",
        ),
        (
            &["--state-dir", "a-file"],
            &["status"],
            "--state-dir `a-file`",
        ),
    ];
    for (flags, verb, needle) in cases {
        sim(d)
            .args(flags)
            .args(verb)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(needle));
    }
    assert!(!d.join(".serin").exists(), "bad flags created .serin/");
    assert_eq!(std::fs::read(d.join("a-file")).expect("a-file"), b"");
}

#[test]
fn a_canary_that_waits_on_missing_data_says_so_while_it_waits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    deploy_on_sim(d, "1.0.0");
    // One request a hundred seconds: the analysis stays inconclusive until the deadline.
    let out = sim(d)
        .args(["deploy-canary", "--version", "1.1.0", "--load-rps", "0.01"])
        .assert()
        .code(1)
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8_lossy(&out);
    // The first hold of a step comes when its first analysis window closes (30 s): the notes
    // after it say what the canary waits on. (Whether one at 10 s does depends on whether a
    // line was printed during an earlier hold, and which track lacks data in a window depends
    // on which track the rare requests reached: the simulated traffic follows the clock.)
    for needle in [
        "... nothing new for 40s; still analysis: Hold",
        "... nothing new for 1m 20s; still analysis: Hold",
        "No data for the ",
        "inconclusive, never a pass",
    ] {
        assert!(err.contains(needle), "{needle:?} in:\n{err}");
    }
    // Each quiet stretch is noted at 10 s, 20 s, 40 s, ...: a few lines an hour, not one a tick.
    let notes = err.matches("... nothing new for").count();
    assert!((5..=60).contains(&notes), "{notes} notes in:\n{err}");
}

#[test]
fn the_env_file_gives_the_brief_variables_and_the_environment_wins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(
        d.join(".env"),
        "# deployment\nVERSION=2.0.0\nDEPLOYMENT_STRATEGY=blue-green\n",
    )
    .expect("write");
    let plan = |cmd: &mut Command| succeeds_with_json(cmd, &["plan"]);
    let p = plan(&mut sim(d));
    assert_eq!(p["plans"][0]["to"]["version"], "2.0.0", "{p}");
    assert_eq!(p["plans"][0]["strategy"], "blue-green", "{p}");
    let p = plan(sim(d).env("VERSION", "3.0.0"));
    assert_eq!(p["plans"][0]["to"]["version"], "3.0.0", "{p}");
    // A variable set but empty (a make target's `VERSION=$(VERSION)` without one) is unset, as
    // the config reads it: the file's value stands.
    let p = plan(sim(d).env("VERSION", "").env("DEPLOYMENT_STRATEGY", " "));
    assert_eq!(p["plans"][0]["to"]["version"], "2.0.0", "{p}");
    assert_eq!(p["plans"][0]["strategy"], "blue-green", "{p}");
    std::fs::write(d.join("other.env"), "VERSION=4.0.0\n").expect("write");
    let p = plan(sim(d).args(["--env-file", "other.env"]));
    assert_eq!(p["plans"][0]["to"]["version"], "4.0.0", "{p}");
    sim(d)
        .args(["--env-file", "missing.env", "plan"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("missing.env"));
}

/// Explicit canary steps replace the ones `--initial-percentage`, `--increment` and
/// `--phase-duration` derive: those flags are refused, as their variables are, rather than
/// ignored; and so are the variables when the verb, not the config, makes the deployment a
/// canary.
#[test]
fn canary_flags_over_explicit_steps_exit_2_naming_the_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let config = d.join("steps.yaml");
    std::fs::write(
        &config,
        "strategy: blue-green\ntargetServices: [demo]\n\
         canaryConfig: { steps: [ { setWeight: 10 }, { pause: { duration: 1m } } ] }\n",
    )
    .expect("write");
    let config = config.to_str().expect("path");
    for (flag, value) in [
        ("--initial-percentage", "20"),
        ("--increment", "30"),
        ("--phase-duration", "2m"),
    ] {
        sim(d)
            .args(["--config", config, "deploy-canary", "--version", "1.0.0"])
            .args([flag, value])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(format!("invalid {flag}")))
            .stderr(predicate::str::contains("canaryConfig.steps are explicit"))
            .stderr(predicate::str::contains(format!("or drop {flag}")));
    }
    for args in [
        &["deploy-canary", "--version", "1.0.0"][..],
        &["plan", "--version", "1.0.0", "--strategy", "canary"],
    ] {
        sim(d)
            .args(["--config", config])
            .args(args)
            .env("PHASE_DURATION", "120")
            .assert()
            .code(2)
            .stderr(predicate::str::contains("invalid PHASE_DURATION"))
            .stderr(predicate::str::contains("or unset PHASE_DURATION"));
    }
    // The blue-green the config asks for reads none of them.
    sim(d)
        .args(["--config", config, "plan", "--version", "1.0.0"])
        .env("PHASE_DURATION", "120")
        .assert()
        .success();
    assert!(!d.join(".serin").exists(), "bad input created .serin/");
}

#[test]
fn an_upgrade_the_catalog_refuses_is_blocked_with_exit_3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // The migration lives in a file next to the catalog, named by its stem.
    std::fs::write(
        d.join("catalog.yaml"),
        "registry:\n  services:\n    demo: { releases: [ {version: 1.0.0}, {version: 1.1.0,\n\
         \x20     migrations: [ {file: migrations/0011.sql} ] },\n\
         \x20     {version: 1.2.0} ] }\n\
         rules:\n  - oneMinorAtATime: {service: demo}\n",
    )
    .expect("write");
    std::fs::create_dir(d.join("migrations")).expect("mkdir");
    std::fs::write(
        d.join("migrations/0011.sql"),
        "SET lock_timeout = '1s'; ALTER TABLE t DROP COLUMN c",
    )
    .expect("write");
    with_catalog(d)
        .args(["deploy", "--version", "1.0.0"])
        .assert()
        .success();
    // The dry run lists the errors that block a change, and the warnings of one that passes.
    with_catalog(d)
        .args(["plan", "--version", "1.2.0"])
        .assert()
        .code(3)
        .stdout(predicate::str::contains(
            "validation: BLOCKED — [error] demo 1.2.0 (matrix.oneMinorAtATime): demo 1.0.0 -> \
             1.2.0 skips a minor (instead: move demo one minor at a time",
        ));
    with_catalog(d)
        .args(["plan", "--version", "1.1.0"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "validation: okWithWarnings — [warn] demo 1.1.0 migration 0011 statement 2 (line 1, \
             column 26) (sql.ban-drop-column): dropping column(s) c of t",
        ));
    let out = json_stdout(&mut with_catalog(d), &["deploy", "--version", "1.2.0"], 3);
    assert_eq!(result(&report(&out)), "blocked");
    assert_eq!(sim_status(d)["current"]["version"], "1.0.0");
}

/// `rollback --to-version` goes back only to a version deployed from the state directory
/// before: one whose deployment the catalog blocked before anything moved never ran, and
/// switching all traffic to it at once would skip every check a deployment has.
#[test]
fn rollback_refuses_a_version_whose_deployment_was_blocked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(
        d.join("catalog.yaml"),
        "registry:\n  services:\n    demo: { releases: [ {version: 1.0.0}, {version: 1.1.0},\n\
         \x20     {version: 1.2.0} ] }\n\
         rules:\n  - oneMinorAtATime: {service: demo}\n",
    )
    .expect("write");
    with_catalog(d)
        .args(["deploy", "--version", "1.0.0"])
        .assert()
        .success();
    let out = json_stdout(&mut with_catalog(d), &["deploy", "--version", "1.2.0"], 3);
    assert_eq!(result(&report(&out)), "blocked");
    // 1.2.0 never ran here: refused, naming what did.
    sim(d)
        .args(["rollback", "--to-version", "1.2.0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid --to-version `1.2.0`"))
        .stderr(predicate::str::contains("which knows 1.0.0;"));
    assert_eq!(sim_status(d)["current"]["version"], "1.0.0");
}

#[test]
fn a_small_canary_on_the_local_backend_with_real_processes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let demo = demo_binary().to_str().expect("path").to_owned();
    let local = |d: &Path| {
        let mut c = on_local(d, &demo);
        c.args(["--load-rps", "200"]);
        c
    };
    local(d)
        .args(["deploy-canary", "--version", "1.0.0"])
        .assert()
        .success()
        .stdout(predicate::str::contains("install 1.0.0"));
    let r = report(&json_stdout(
        &mut local(d),
        &["deploy-canary", "--version", "1.1.0"],
        0,
    ));
    assert_eq!(result(&r), "succeeded", "{r}");
    let s = status(d);
    assert_eq!(s["current"]["version"], "1.1.0", "{s}");
    assert_eq!(s["backend"], "local", "{s}");
    // Every process ended with the command: the logs are there, the ports are free.
    assert!(state_file(d, "logs").is_dir());
    let m = succeeds_with_json(&mut local(d), &["metrics", "--duration", "2s"]);
    let track = &m["tracks"][0];
    assert_eq!(track["version"], "1.1.0", "{m}");
    assert!(track["requests"].as_u64().is_some_and(|n| n > 50), "{m}");
    local(d)
        .args(["health-check"])
        .assert()
        .success()
        .stdout(predicate::str::contains("healthy"));

    // Ctrl-C (SIGINT) during a canary aborts it: it rolls back, and 1.1.0 still runs. So does
    // SIGTERM, as a service manager or a CI cancel sends it.
    for signal in ["-INT", "-TERM"] {
        let r = deploy_canary_then_signal(d, &demo, signal);
        assert_eq!(result(&r), "rolledBack", "{signal}: {r}");
        assert!(
            r["outcome"]["reason"]
                .as_str()
                .is_some_and(|x| x.contains("abort")),
            "{signal}: {r}"
        );
    }
    let s = status(d);
    assert_eq!(s["current"]["version"], "1.1.0", "{s}");
    assert!(s["interrupted"].is_null(), "{s}");

    // Rollback to 1.0.0 by an immediate switch under load: no request goes unanswered.
    local(d)
        .args(["rollback"])
        .assert()
        .success()
        .stdout(predicate::str::contains("1.1.0 on canary -> 1.0.0 on blue"))
        .stdout(predicate::str::contains("outcome: succeeded"))
        .stdout(
            predicate::str::is_match(
                r"load: [1-9]\d* answered \(0 with a 5xx from the service\), 0 unanswered",
            )
            .expect("regex"),
        );
    let s = status(d);
    assert_eq!(s["current"]["version"], "1.0.0", "{s}");
    assert_eq!(s["current"]["track"], "blue", "{s}");
}

#[test]
fn a_backend_that_cannot_start_exits_4_and_records_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let demo = demo_binary().to_str().expect("path").to_owned();
    cli(d)
        .args(["--demo-binary", &demo, "--listen", &addr])
        .args(["deploy", "--version", "1.0.0"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("cannot start the proxy"))
        .stderr(predicate::str::contains(addr.as_str()));
    assert!(!state_file(d, "state.json").exists());
    cli(d)
        .args([
            "--demo-binary",
            "no-such-demo",
            "deploy",
            "--version",
            "1.0.0",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--demo-binary `no-such-demo`"));
    assert!(!d.join(".serin").exists(), "a refused deploy left .serin/");
}

/// A reader that stops early (`serin-cli status | head -1`) is no error: the command ends
/// with its own exit status, not a panic.
#[test]
fn a_reader_that_stops_reading_is_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A result, and an error that `--output json` prints as a document.
    for (args, status) in [
        (&["--backend", "sim", "status"][..], 0),
        (
            &[
                "--backend",
                "sim",
                "--output",
                "json",
                "logs",
                "--deployment",
                "nowhere",
            ][..],
            2,
        ),
    ] {
        let mut child = std::process::Command::new(cli_binary())
            .current_dir(dir.path())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(status), "{args:?}: {stderr}");
    }
}

/// A command refused after it took the state directory (a channel's secret missing, a catalog
/// that cannot be read, nothing to roll back) leaves no file behind: no lock file, and no
/// state directory it created.
#[test]
fn a_command_refused_after_taking_the_state_directory_leaves_no_file_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let config = config_with(
        d,
        "notificationChannels:\n  - type: webhook\n    destination: http://127.0.0.1:9/hook\n    secretEnv: SERIN_CLI_TEST_UNSET_SECRET\n",
    );
    sim(d)
        .env_remove("SERIN_CLI_TEST_UNSET_SECRET")
        .args(["--config", config.to_str().expect("utf-8 path")])
        .args(["deploy", "--version", "1.0.0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("secretEnv"));
    assert!(!d.join(".serin").exists(), "a refused deploy left .serin/");

    // A state directory that was there stays, as it was.
    std::fs::create_dir(d.join(".serin")).expect("mkdir");
    sim(d)
        .args([
            "--catalog",
            "no-such-catalog.yaml",
            "deploy",
            "--version",
            "1.0.0",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no-such-catalog.yaml"));
    // Nor its backup store.
    std::fs::create_dir(d.join("data")).expect("mkdir");
    sim(d)
        .args(["--backup-dir", "data", "--catalog", "no-such-catalog.yaml"])
        .args(["deploy", "--version", "1.0.0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no-such-catalog.yaml"));
    // A settings file given is read, though no channel needs it.
    sim(d)
        .args(["--notify-settings", "no-such-settings.json"])
        .args(["deploy", "--version", "1.0.0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "invalid --notify-settings `no-such-settings.json`",
        ));
    sim(d)
        .arg("rollback")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("nothing is deployed"));
    let left: Vec<_> = std::fs::read_dir(d.join(".serin"))
        .expect("state dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "refused commands left {left:?}");

    // A deployment keeps its lock file: the next command's error names the holder from it.
    deploy_on_sim(d, "1.0.0");
    assert!(state_file(d, "lock").exists());
}

/// The CLI copied into a target directory of its own under `root` (`root/debug/examples`), so
/// that it looks for the demo service in `root/debug`; returns that profile directory.
fn cli_in_own_target(root: &Path) -> (PathBuf, PathBuf) {
    let profile = root.join("debug");
    std::fs::create_dir_all(profile.join("examples")).expect("examples dir");
    let cli = profile.join("examples").join("serin-cli");
    std::fs::copy(cli_binary(), &cli).expect("copy the CLI");
    (profile, cli)
}

#[test]
fn a_demo_service_older_than_its_sources_is_not_run_while_cargo_holds_its_directory() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (profile, copied) = cli_in_own_target(&d.join("target"));
    let work = d.join("work");
    std::fs::create_dir_all(&work).expect("work dir");
    // The cargo that runs a program holds its target directory while it runs.
    let lock = std::fs::File::create(profile.join(".cargo-lock")).expect("lock file");
    lock.lock().expect("lock");
    let run = || {
        let mut cmd = Command::new(&copied);
        cmd.current_dir(&work)
            .env_remove("SERIN_DEMO_SERVICE")
            .env_remove("VERSION")
            .timeout(std::time::Duration::from_secs(60))
            .args(["deploy", "--version", "1.0.0"]);
        cmd
    };
    // Missing: building it would wait on the lock forever.
    run()
        .assert()
        .code(4)
        .stderr(predicate::str::contains("serin-demo-service is not in"))
        .stderr(predicate::str::contains(
            "cargo build -p serin-local --bin serin-demo-service",
        ));
    // Built before a source it is made of changed: the old code would run.
    let demo = profile.join("serin-demo-service");
    std::fs::write(&demo, "#!/bin/sh\nexit 1\n").expect("demo");
    std::fs::set_permissions(&demo, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let source = d.join("main.rs");
    std::fs::write(&source, "fn main() {}").expect("source");
    std::fs::write(
        profile.join("serin-demo-service.d"),
        format!("{}: {}\n", demo.display(), source.display()),
    )
    .expect("dep-info");
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&demo)
        .and_then(|f| f.set_modified(hour_ago))
        .expect("age the demo");
    run()
        .assert()
        .code(4)
        .stderr(predicate::str::contains(format!(
            "is older than {}",
            source.display()
        )))
        .stderr(predicate::str::contains("--demo-binary"));
    // Neither changed anything.
    assert!(!work.join(".serin").join("state.json").exists());
}

/// The example config with `extra` appended (more top-level fields).
fn config_with(dir: &Path, extra: &str) -> PathBuf {
    let mut text = std::fs::read_to_string(example_config()).expect("example config");
    text.push_str(extra);
    let path = dir.join("deploy.yaml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// One webhook delivery as the receiver saw it.
#[derive(Debug, Clone)]
struct Delivery {
    timestamp: String,
    signature: String,
    body: Vec<u8>,
}

/// A loopback HTTP receiver that records every request and answers 200 after half a second (a slow
/// receiver, so the deliveries outlast the deployment and only the CLI's flush at its end gets
/// them all out), on a runtime of its own (the CLI runs as a separate process).
fn webhook_receiver() -> (
    tokio::runtime::Runtime,
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<Delivery>>>,
) {
    use http_body_util::BodyExt;
    use hyper::body::Incoming;
    use hyper::{Request, Response};
    use hyper_util::rt::TokioIo;
    use std::sync::{Arc, Mutex};

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen: Arc<Mutex<Vec<Delivery>>> = Arc::default();
    let st = Arc::clone(&seen);
    rt.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let st = Arc::clone(&st);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let st = Arc::clone(&st);
                    async move {
                        let header = |name: &str| {
                            req.headers()
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_owned()
                        };
                        let timestamp = header(serin_orchestrator::notify::TIMESTAMP_HEADER);
                        let signature = header(serin_orchestrator::notify::SIGNATURE_HEADER);
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes().to_vec())
                            .unwrap_or_default();
                        st.lock().expect("deliveries").push(Delivery {
                            timestamp,
                            signature,
                            body,
                        });
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                        Ok::<_, std::convert::Infallible>(Response::new(http_body_util::Full::new(
                            bytes::Bytes::from_static(b"ok"),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (rt, addr, seen)
}

#[test]
fn a_deployment_on_the_simulated_fleet_delivers_signed_webhook_events() {
    const SECRET: &str = "shared-with-the-receiver";
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (_rt, addr, seen) = webhook_receiver();
    let config = config_with(
        d,
        &format!(
            "notificationChannels:\n  - type: webhook\n    destination: http://{addr}/hooks/deploys\n    secretEnv: SERIN_CLI_TEST_HOOK_SECRET\n"
        ),
    );
    let config = config.to_str().expect("utf-8 path");

    // Without the secret the channel cannot sign: a configuration error naming it, and nothing
    // is deployed.
    sim(d)
        .env_remove("SERIN_CLI_TEST_HOOK_SECRET")
        .args(["--config", config, "deploy", "--version", "1.0.0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("secretEnv"));
    assert!(seen.lock().expect("deliveries").is_empty());

    // The `.env` file gives the secret.
    std::fs::write(
        d.join(".env"),
        format!("SERIN_CLI_TEST_HOOK_SECRET={SECRET}\n"),
    )
    .expect("write .env");
    let out = json_stdout(
        sim(d).env_remove("SERIN_CLI_TEST_HOOK_SECRET"),
        &["--config", config, "deploy", "--version", "1.0.0"],
        0,
    );
    assert_eq!(result(&report(&out)), "succeeded");

    // Delivered before the command exited, each one signed with the secret.
    let deliveries = seen.lock().expect("deliveries").clone();
    let now = serin_signals::Timestamp::from_system_time(std::time::SystemTime::now());
    let mut types = Vec::new();
    for delivery in &deliveries {
        serin_orchestrator::notify::verify_signature(
            SECRET.as_bytes(),
            &delivery.timestamp,
            &delivery.body,
            &delivery.signature,
            now,
            std::time::Duration::from_secs(300),
        )
        .unwrap_or_else(|e| panic!("a signed delivery: {e}"));
        let event = json(&delivery.body);
        types.push(event["type"].as_str().unwrap_or("").to_owned());
    }
    for wanted in [
        "dev.serin.deployment.started",
        "dev.serin.deployment.completed",
    ] {
        assert!(types.iter().any(|t| t == wanted), "{wanted} in {types:?}");
    }
}

#[test]
fn deployments_back_up_the_directory_and_backups_lists_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::create_dir(d.join("data")).expect("mkdir");
    std::fs::write(d.join("data/orders.db"), b"rows of 1.0.0").expect("write");
    let backup = ["--backup-dir", "data", "--backup-keep", "2"];

    // Before the first deployment there is nothing to list.
    let listed = succeeds_with_json(sim(d).args(backup), &["backups"]);
    assert_eq!(listed["backups"], serde_json::json!([]));
    // Listing creates nothing: no state directory, no backup store.
    assert!(
        !d.join(".serin").exists(),
        "listing created the state directory"
    );

    for version in ["1.0.0", "1.1.0", "1.2.0"] {
        let r = report(&json_stdout(
            sim(d).args(backup),
            &["deploy", "--version", version],
            0,
        ));
        assert!(
            r["timeline"]
                .as_array()
                .is_some_and(|t| t.iter().any(|e| e["kind"]["type"] == "backupTaken")),
            "a backup is taken before {version}: {r}"
        );
    }

    // Oldest first; `--backup-keep 2` deleted the first.
    let doc = succeeds_with_json(sim(d).args(backup), &["backups"]);
    let labels: Vec<&str> = doc["backups"]
        .as_array()
        .expect("backups")
        .iter()
        .filter_map(|b| b["label"].as_str())
        .collect();
    assert_eq!(
        labels,
        ["before 1.0.0 -> 1.1.0", "before 1.1.0 -> 1.2.0"],
        "{doc}"
    );
    assert_eq!(doc["service"], "demo", "{doc}");
    let first = doc["backups"][0]["id"].as_str().expect("id").to_owned();
    sim(d)
        .args(backup)
        .arg("backups")
        .assert()
        .success()
        .stdout(predicate::str::contains(first).and(predicate::str::contains("1.1.0 -> 1.2.0")));

    // Without a provider there is nothing to list from.
    sim(d)
        .arg("backups")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--backup-dir"));
}

/// A database of the test's own on the server of `SERIN_TEST_POSTGRES`, created with `psql`
/// and dropped when the test ends.
struct Database {
    server: String,
    name: String,
}

impl Database {
    fn psql(server: &str, sql: &str) -> bool {
        std::process::Command::new("psql")
            .env("PGOPTIONS", "-c client_min_messages=warning")
            .arg(format!("{server} dbname=postgres"))
            .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
            .status()
            .is_ok_and(|s| s.success())
    }

    fn create(server: &str) -> Database {
        let name = format!("serin_cli_test_{}", std::process::id());
        Database::psql(server, &format!("DROP DATABASE IF EXISTS {name}"));
        assert!(
            Database::psql(server, &format!("CREATE DATABASE {name}")),
            "psql could not create {name}"
        );
        let db = Database {
            server: server.to_owned(),
            name,
        };
        assert!(
            std::process::Command::new("psql")
                .arg(db.conninfo())
                .args(["-v", "ON_ERROR_STOP=1", "-q", "-c"])
                .arg(
                    "CREATE TABLE orders (id int primary key); INSERT INTO orders VALUES (1), (2);"
                )
                .status()
                .is_ok_and(|s| s.success()),
            "psql could not fill {}",
            db.name
        );
        db
    }

    fn conninfo(&self) -> String {
        format!("{} dbname={}", self.server, self.name)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        Database::psql(
            &self.server,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

#[test]
fn deployments_back_up_a_postgres_database_when_one_is_given() {
    use std::io::Write as _;
    let server = match std::env::var("SERIN_TEST_POSTGRES") {
        Ok(s) if !s.trim().is_empty() => s,
        _ => {
            let _ = writeln!(
                std::io::stderr(),
                "skipped: the PostgreSQL backup test needs SERIN_TEST_POSTGRES (run scripts/services/postgres.sh)"
            );
            return;
        }
    };
    let db = Database::create(&server);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let conninfo = db.conninfo();
    let backup = ["--backup-postgres", conninfo.as_str()];
    let r = report(&json_stdout(
        sim(d).args(backup),
        &["deploy", "--version", "1.0.0"],
        0,
    ));
    // The real dump takes no virtual time: the simulation's clock stands still while it runs,
    // instead of jumping from timer to timer, past every deadline.
    let took = r["lastAt"].as_u64().expect("lastAt") - r["startedAt"].as_u64().expect("startedAt");
    assert!(
        took < 60_000,
        "the install took {took} ms of virtual time: {r}"
    );
    let doc = succeeds_with_json(sim(d).args(backup), &["backups"]);
    assert_eq!(
        doc["backups"][0]["label"], "before installing 1.0.0",
        "{doc}"
    );
    assert!(
        doc["backups"][0]["sizeBytes"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{doc}"
    );
    assert!(
        d.join(".serin/backups/postgres")
            .read_dir()
            .is_ok_and(|mut e| e.next().is_some()),
        "the dump is kept under the state directory"
    );
}

/// The CLI in `d` on the local backend, running the demo service `demo`.
fn on_local(d: &Path, demo: &str) -> Command {
    let mut c = cli(d);
    c.args(["--demo-binary", demo]);
    c.timeout(std::time::Duration::from_secs(60));
    c
}

/// Starts a canary of `version` in `d` on the local backend (`demo`), with `args` after the
/// verb and its stdout and stderr as given, and returns once the deployment is recorded as in
/// progress, and a little longer, so that the canary takes traffic.
fn start_canary(
    d: &Path,
    demo: &str,
    version: &str,
    args: &[&str],
    (stdout, stderr): (Stdio, Stdio),
) -> Child {
    let child = std::process::Command::new(cli_binary())
        .current_dir(d)
        .args(["--demo-binary", demo, "deploy-canary", "--version", version])
        .args(args)
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("spawn");
    // The command is a process of its own, in real time: poll its state file.
    let recorded = format!("\"inProgress\": \"deployment of {version}");
    let started = std::time::Instant::now();
    loop {
        let s = std::fs::read_to_string(state_file(d, "state.json")).unwrap_or_default();
        if s.contains(&recorded) {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 20,
            "the deployment never started: {s}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    child
}

/// Sends `signal` (`-INT`, `-TERM`) to `child`.
fn send(signal: &str, child: &Child) {
    let sent = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
}

/// Starts a canary of 1.2.0 in `d`, sends `signal` (`-INT`, `-TERM`) once it takes traffic, and
/// answers the report the command prints as it exits 1.
fn deploy_canary_then_signal(d: &Path, demo: &str, signal: &str) -> Value {
    let child = start_canary(
        d,
        demo,
        "1.2.0",
        &["--phase-duration", "60s", "--output", "json"],
        (Stdio::piped(), Stdio::null()),
    );
    send(signal, &child);
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    report(&out.stdout)
}

/// A second Ctrl-C (or SIGTERM) while an aborted canary rolls back quits at once with exit 5,
/// saying what may be left and how to go on; the next command brings back the version that ran.
#[test]
fn a_second_signal_while_the_deployment_rolls_back_quits_at_once_with_exit_5() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let demo = demo_binary().to_str().expect("path").to_owned();
    on_local(d, &demo)
        .args(["deploy", "--version", "1.0.0"])
        .assert()
        .success();
    // 1.1.0 answers in 3 s: rolling it back waits for its requests in flight.
    let mut child = start_canary(
        d,
        &demo,
        "1.1.0",
        &["--latency-ms", "3000", "--phase-duration", "60s"],
        (Stdio::null(), Stdio::piped()),
    );
    send("-INT", &child);
    // The second signal goes once the command says it aborts (rather than after a guessed
    // pause, which a loaded machine may outlast).
    let mut err = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut stderr = String::new();
    while !stderr.contains("aborting the deployment") {
        if err.read_line(&mut stderr).expect("stderr") == 0 {
            break;
        }
    }
    let second = std::time::Instant::now();
    send("-TERM", &child);
    err.read_to_string(&mut stderr).expect("stderr");
    let code = child.wait().expect("wait").code();
    assert_eq!(code, Some(5), "{stderr}");
    assert!(
        second.elapsed() < std::time::Duration::from_secs(2),
        "quit {:?} after the second signal",
        second.elapsed()
    );
    for part in [
        "aborting the deployment",
        "half-switched",
        ".serin/state.json still records 1.0.0",
        "serin-cli deploy --version 1.1.0",
    ] {
        assert!(stderr.contains(part), "{part}: {stderr}");
    }
    let s = status(d);
    assert!(
        s["interrupted"]
            .as_str()
            .is_some_and(|p| p.starts_with("deployment of 1.1.0")),
        "{s}"
    );
    assert_eq!(s["current"]["version"], "1.0.0", "{s}");
    // The journal still has the canary unfinished until the next command brings 1.0.0 back
    // and closes it as failed, abandoned: its tracks ended with the command that ran it.
    let abandoned = |d: &Path| {
        std::fs::read_to_string(state_file(d, "journal.jsonl"))
            .expect("journal")
            .lines()
            .filter(|l| l.contains("abandoned in the") && l.contains("1.0.0 serves again"))
            .count()
    };
    assert_eq!(abandoned(d), 0);
    on_local(d, &demo)
        .args(["health-check"])
        .assert()
        .success()
        .stdout(predicate::str::contains("1.0.0"));
    assert_eq!(abandoned(d), 1, "closed once");
    on_local(d, &demo).args(["health-check"]).assert().success();
    assert_eq!(abandoned(d), 1, "and only once");
    // Status names the abandoned deployment as the last one, not the install before it.
    let s = status(d);
    assert!(
        s["lastDeployment"]
            .as_str()
            .is_some_and(|id| id.starts_with("demo-1.1.0")),
        "{s}"
    );
    assert_eq!(s["lastOutcome"]["result"], "failed", "{s}");
}

/// A simulated deployment cut short (a second Ctrl-C, a kill) ran in virtual time, ahead of
/// the wall clock; the next command closes it as abandoned. Its closing record is not dated
/// before the records it follows, or its report's duration and timeline would go backwards.
#[test]
fn an_abandoned_simulated_deployment_is_not_closed_before_its_last_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    deploy_on_sim(d, "1.0.0");
    sim(d)
        .args(["deploy-canary", "--version", "1.1.0"])
        .assert()
        .success();
    // As a command stopped mid-canary leaves it: the canary's records up to a quarter hour in.
    let journal = state_file(d, "journal.jsonl");
    let text = std::fs::read_to_string(&journal).expect("journal");
    let lines: Vec<&str> = text.lines().collect();
    let first_canary = lines
        .iter()
        .position(|l| l.contains("\"deployment\":\"demo-1.1.0"))
        .expect("the canary's records");
    std::fs::write(
        &journal,
        format!("{}\n", lines[..first_canary + 20].join("\n")),
    )
    .expect("cut");
    // The next command closes it.
    sim(d).args(["health-check"]).assert().success();
    let logs = sim_json(d, &["logs"]);
    let times: Vec<u64> = logs["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| {
            e["deployment"]
                .as_str()
                .is_some_and(|id| id.starts_with("demo-1.1.0"))
        })
        .map(|e| e["at"].as_u64().expect("at"))
        .collect();
    assert!(
        times.len() > 1 && times.windows(2).all(|w| w[0] <= w[1]),
        "the canary's events go back in time: {times:?}"
    );
}

/// On the simulated fleet a backup blocks the simulation's one thread (so that it takes no
/// virtual time); a second signal during it still quits at once with exit 5.
#[test]
fn a_second_signal_during_a_simulated_deployment_s_backup_quits_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    deploy_on_sim(d, "1.0.0");
    // Enough to copy and hash for seconds in a debug build.
    let data = d.join("data");
    std::fs::create_dir(&data).expect("mkdir");
    let chunk: Vec<u8> = (0..10 << 20).map(|i: u32| (i % 251) as u8).collect();
    for i in 0..10 {
        std::fs::write(data.join(format!("f{i}")), &chunk).expect("write");
    }
    let mut child = std::process::Command::new(cli_binary())
        .current_dir(d)
        .args(["--backend", "sim", "--backup-dir", "data"])
        .args(["deploy", "--version", "1.1.0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // The signals go once the backup is under way: its snapshot has files in the store.
    let store = state_file(d, "backups").join("directory");
    let copying = || {
        std::fs::read_dir(&store)
            .into_iter()
            .flatten()
            .flatten()
            .any(|snapshot| {
                std::fs::read_dir(snapshot.path().join("tree"))
                    .is_ok_and(|mut files| files.next().is_some())
            })
    };
    let started = std::time::Instant::now();
    while !copying() {
        assert!(started.elapsed().as_secs() < 30, "the backup never started");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    send("-INT", &child);
    std::thread::sleep(std::time::Duration::from_millis(100));
    send("-INT", &child);
    let second = std::time::Instant::now();
    let mut stderr = String::new();
    let mut err = child.stderr.take().expect("stderr");
    err.read_to_string(&mut stderr).expect("stderr");
    let code = child.wait().expect("wait").code();
    let took = second.elapsed();
    assert_eq!(code, Some(5), "after {took:?}: {stderr}");
    assert!(
        took < std::time::Duration::from_secs(1),
        "quit {took:?} after the second signal"
    );
    // What it advises runs on the simulated fleet, whose record the local backend refuses.
    for advice in [
        "`serin-cli --backend sim health-check`",
        "`serin-cli --backend sim deploy --version 1.1.0`",
    ] {
        assert!(stderr.contains(advice), "{advice}: {stderr}");
    }
}

/// Once a deployment has ended and is recorded, a signal during the cleanup (here: waiting on
/// a notification receiver that never answers) has nothing to abort: the first one says so, the
/// second quits at once with the outcome's exit status and the report, not with exit 5 and a
/// warning that the deployment may be half-switched.
#[test]
fn a_signal_after_the_deployment_ended_quits_with_its_outcome_not_as_half_switched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // Accepts connections (the system's backlog) and never answers them.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("addr");
    let config = config_with(
        d,
        &format!(
            "notificationChannels:\n  - type: webhook\n    destination: http://{addr}/hooks\n    \
             secretEnv: SERIN_CLI_TEST_HOOK_SECRET\n"
        ),
    );
    let mut child = std::process::Command::new(cli_binary())
        .current_dir(d)
        .env("SERIN_CLI_TEST_HOOK_SECRET", "secret")
        .env_remove("VERSION")
        .args(["--backend", "sim", "--config"])
        .arg(&config)
        .args(["deploy", "--version", "1.0.0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // The end is recorded (state.json names the outcome, nothing in progress) before the
    // cleanup begins.
    let started = std::time::Instant::now();
    loop {
        let s = std::fs::read_to_string(state_file(d, "state.json")).unwrap_or_default();
        if s.contains("\"lastOutcome\": {") && s.contains("\"inProgress\": null") {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 20,
            "the deployment never ended: {s}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    send("-INT", &child);
    let mut err = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut stderr = String::new();
    while !stderr.contains("has already ended") {
        if err.read_line(&mut stderr).expect("stderr") == 0 {
            break;
        }
    }
    assert!(
        stderr.contains("interrupted: the deployment of 1.0.0 has already ended (succeeded)"),
        "the first signal is answered: {stderr}"
    );
    let second = std::time::Instant::now();
    send("-TERM", &child);
    err.read_to_string(&mut stderr).expect("stderr");
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("stdout");
    let code = child.wait().expect("wait").code();
    assert!(
        second.elapsed() < std::time::Duration::from_secs(2),
        "quit {:?} after the second signal",
        second.elapsed()
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("had already ended (succeeded) and is recorded")
            && !stderr.contains("half-switched"),
        "{stderr}"
    );
    assert!(stdout.contains("outcome: succeeded"), "{stdout}");
    assert_eq!(sim_status(d)["current"]["version"], "1.0.0");
    drop(silent);
}

/// `monitor`, `metrics` and `health-check` are refused while a deployment holds the state
/// directory, naming the holder, and start nothing; with nothing deployed they are refused
/// (a health check of nothing does not pass) and create no state directory.
#[test]
fn watching_verbs_are_refused_while_a_deployment_holds_the_state_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for args in [
        vec!["metrics", "--duration", "1s"],
        vec!["monitor", "--duration", "1s"],
        vec!["health-check"],
    ] {
        sim(d)
            .args(&args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("nothing is deployed"));
    }
    assert!(
        !d.join(".serin").exists(),
        "a watching verb created the state directory"
    );
    deploy_on_sim(d, "1.0.0");
    let held = hold_state_dir(d);
    std::fs::write(state_file(d, "lock"), "4242: deploy of 1.1.0").expect("holder");
    for args in [
        vec!["metrics", "--duration", "1s"],
        vec!["monitor", "--duration", "1s"],
        vec!["health-check"],
    ] {
        sim(d)
            .args(&args)
            .assert()
            .code(4)
            .stderr(predicate::str::contains(
                "in use by another command (process 4242: deploy of 1.1.0)",
            ))
            .stderr(predicate::str::contains(format!("`{}`", args[0])));
    }
    drop(held);
    sim(d)
        .args(["metrics", "--duration", "1s"])
        .assert()
        .success();
}
