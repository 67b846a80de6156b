//! Renders the timeline chart of a deployment report as SVG.
//!
//! The input is either a report's JSON (as `Report::to_json` writes it) or a deployment
//! journal (`journal.jsonl`, as `FileJournal` writes it — the quickstart keeps one in its work
//! directory), from which the report of one deployment is rebuilt: the one named by
//! `--deployment` (a prefix of its id is enough), or else the last one in the journal.
//!
//! ```text
//! cargo run -p serin-examples --example report_chart -- report.json chart.svg
//! cargo run -p serin-examples --example report_chart -- \
//!     /tmp/serin-quickstart-1234/journal.jsonl chart.svg --deployment demo-1.1.0 --json report.json
//! ```
//!
//! `--json PATH` also writes the report's JSON (schema `serin.report/v1`, see
//! `docs/report-schema.md`).

use std::error::Error;
use std::path::{Path, PathBuf};

use serin_orchestrator::{ChartOptions, FileJournal, Journal, Report};

type BoxError = Box<dyn Error + Send + Sync>;

const USAGE: &str =
    "usage: report_chart INPUT(.json | .jsonl) OUTPUT.svg [--deployment ID] [--json REPORT.json]";

struct Args {
    input: PathBuf,
    output: PathBuf,
    deployment: Option<String>,
    json: Option<PathBuf>,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, BoxError> {
    let mut positional = Vec::new();
    let mut deployment = None;
    let mut json = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--deployment" => deployment = Some(args.next().ok_or(USAGE)?),
            "--json" => json = Some(PathBuf::from(args.next().ok_or(USAGE)?)),
            "-h" | "--help" => return Err(USAGE.into()),
            _ => positional.push(PathBuf::from(a)),
        }
    }
    let [input, output] = <[PathBuf; 2]>::try_from(positional).map_err(|_| USAGE)?;
    Ok(Args {
        input,
        output,
        deployment,
        json,
    })
}

/// The report of one deployment in the journal at `path`.
async fn from_journal(path: &Path, wanted: Option<&str>) -> Result<Report, BoxError> {
    let journal = FileJournal::open(path)?;
    let ids = journal.deployments().await?;
    let id = match wanted {
        Some(w) => ids.iter().find(|id| id.starts_with(w)).ok_or_else(|| {
            format!(
                "no deployment `{w}*` in {}; it holds {ids:?}",
                path.display()
            )
        })?,
        None => ids
            .last()
            .ok_or_else(|| format!("{} holds no deployment", path.display()))?,
    };
    Ok(Report::from_records(&journal.records(id).await?)?)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let args = parse(std::env::args().skip(1))?;
    let is_journal = args
        .input
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl"));
    let report = if is_journal {
        from_journal(&args.input, args.deployment.as_deref()).await?
    } else {
        Report::from_json(&std::fs::read_to_string(&args.input)?)?
    };
    report.write_chart(&args.output, &ChartOptions::default())?;
    println!(
        "{} ({} samples, {} events) -> {}",
        report.deployment,
        report.samples.len(),
        report.timeline.len(),
        args.output.display()
    );
    if let Some(json) = &args.json {
        std::fs::write(json, report.to_json()? + "\n")?;
        println!("report JSON -> {}", json.display());
    }
    Ok(())
}
