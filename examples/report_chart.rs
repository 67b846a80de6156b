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
//! `docs/report-schema.md`); `--json -` writes it to stdout, and the lines that say what was
//! written then go to stderr, so that stdout holds the JSON alone. A `--deployment` that names
//! no deployment of the input is a usage error, not ignored: with a report's JSON, one other
//! than the deployment it reports; with a journal, a prefix of none of its ids, or of several
//! (one version deployed twice), which is refused with their ids: the full id picks one. A `--json` that names the input or the chart
//! (however spelled: `./journal.jsonl`) is a usage error too, refused before anything is
//! written.
//!
//! Exit status: 0 when written; 2 on a usage error (bad arguments, a chart not named `*.svg`, a
//! `--json` over the input or the chart, or a `--deployment` the input does not hold or names
//! ambiguously); 1 when the input cannot be read or drawn (a journal that holds no deployment
//! at all among them).

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serin_orchestrator::{ChartOptions, FileJournal, Journal, Report};

type BoxError = Box<dyn Error + Send + Sync>;

const USAGE: &str = "usage: report_chart INPUT(.json | .jsonl) OUTPUT.svg [--deployment ID] [--json REPORT.json | -]";

/// Why the command ends without a chart.
enum Failure {
    /// `--help`: the usage, on stdout, exit 0.
    Help,
    /// Bad arguments: the usage, on stderr, exit 2.
    Usage(String),
    /// The input could not be read or drawn: exit 1.
    Failed(BoxError),
}

impl<E: Into<BoxError>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Failed(e.into())
    }
}

struct Args {
    input: PathBuf,
    output: PathBuf,
    deployment: Option<String>,
    json: Option<PathBuf>,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, Failure> {
    let mut positional = Vec::new();
    let mut deployment = None;
    let mut json = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--deployment" => set_once(&mut deployment, &a, args.next())?,
            "--json" => set_once(&mut json, &a, args.next().map(PathBuf::from))?,
            "-h" | "--help" => return Err(Failure::Help),
            // `-d` is no short `--deployment` (there are none): named, not taken for a file.
            flag if flag.starts_with('-') && flag != "-" => {
                return Err(Failure::Usage(format!("unknown option `{flag}`")));
            }
            _ => positional.push(PathBuf::from(a)),
        }
    }
    let [input, output] = <[PathBuf; 2]>::try_from(positional).map_err(|p| {
        Failure::Usage(format!(
            "expected an input and an output file, got {} argument(s)",
            p.len()
        ))
    })?;
    // The chart is SVG alone: another name is a bad argument, said before the input is read.
    if !output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"))
    {
        return Err(Failure::Usage(format!(
            "invalid chart path `{}`: charts are written as SVG, name the file `*.svg`",
            output.display()
        )));
    }
    // The report's JSON is written after the chart: over the input (a journal) it would lose
    // it, over the chart it would replace it.
    if let Some(json) = json.as_deref().filter(|j| *j != Path::new("-")) {
        for (what, other) in [("the input", &input), ("the chart", &output)] {
            if resolved(json) == resolved(other) {
                return Err(Failure::Usage(format!(
                    "invalid --json `{}`: it is {what} `{}`; name another file, or `-` for \
                     stdout",
                    json.display(),
                    other.display()
                )));
            }
        }
    }
    Ok(Args {
        input,
        output,
        deployment,
        json,
    })
}

/// The file `path` names, however spelled (`./a`, a link): the path itself, or its directory's,
/// made absolute; as given when neither exists.
fn resolved(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match (std::fs::canonicalize(dir), path.file_name()) {
        (Ok(d), Some(name)) => d.join(name),
        _ => path.to_path_buf(),
    }
}

/// Sets `flag`'s `slot` to `value`; a flag without a value, or given twice, is a usage error
/// (the last one would silently win over the first).
fn set_once<T>(slot: &mut Option<T>, flag: &str, value: Option<T>) -> Result<(), Failure> {
    let value = value.ok_or_else(|| Failure::Usage(format!("{flag} needs a value")))?;
    if slot.replace(value).is_some() {
        return Err(Failure::Usage(format!("{flag} given twice")));
    }
    Ok(())
}

/// The report of one deployment in the journal at `path`.
async fn from_journal(path: &Path, wanted: Option<&str>) -> Result<Report, Failure> {
    // A missing journal reads as an empty one: a mistyped path would say "no deployment".
    std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let journal = FileJournal::open(path)?;
    let ids = journal.deployments().await?;
    let Some(last) = ids.last() else {
        return Err(format!("{} holds no deployment", path.display()).into());
    };
    let id = match wanted {
        Some(w) => named(&ids, w, path)?,
        None => last,
    };
    Ok(Report::from_records(&journal.records(id).await?)?)
}

/// The id among `ids` (those of the journal at `path`) that `wanted` names: the exact id, else
/// the one id that starts with it. Naming none or several is a usage error, as naming another
/// deployment than a report's is: the journal is fine, the argument is not.
fn named<'a>(ids: &'a [String], wanted: &str, path: &Path) -> Result<&'a String, Failure> {
    if let Some(id) = ids.iter().find(|id| *id == wanted) {
        return Ok(id);
    }
    let starting: Vec<&String> = ids.iter().filter(|id| id.starts_with(wanted)).collect();
    match starting[..] {
        [id] => Ok(id),
        [] => Err(Failure::Usage(format!(
            "invalid --deployment `{wanted}`: no deployment in {} starts with it; it holds {}",
            path.display(),
            ids.join(", ")
        ))),
        ref several => Err(Failure::Usage(format!(
            "invalid --deployment `{wanted}`: it starts the ids of {} deployments in {} ({}); \
             give one of them",
            several.len(),
            path.display(),
            several
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Help) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Err(Failure::Usage(why)) => {
            eprintln!("error: {why}\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(e)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Failure> {
    let args = parse(std::env::args().skip(1))?;
    let is_journal = args
        .input
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl"));
    let report = if is_journal {
        from_journal(&args.input, args.deployment.as_deref()).await?
    } else {
        let shown = args.input.display();
        let text = std::fs::read_to_string(&args.input)
            .map_err(|e| format!("cannot read {shown}: {e}"))?;
        let report = Report::from_json(&text).map_err(|e| format!("{shown}: {e}"))?;
        // A report is one deployment's: drawing it when another was named would mislead.
        if let Some(w) = &args.deployment
            && !report.deployment.starts_with(w.as_str())
        {
            return Err(Failure::Usage(format!(
                "invalid --deployment `{w}`: {shown} is the report of {}, which that does not \
                 name",
                report.deployment
            )));
        }
        report
    };
    report.write_chart(&args.output, &ChartOptions::default())?;
    let json_to_stdout = args.json.as_deref() == Some(Path::new("-"));
    let said = format!(
        "{} ({} samples, {} events) -> {}",
        report.deployment,
        report.samples.len(),
        report.timeline.len(),
        args.output.display()
    );
    if json_to_stdout {
        eprintln!("{said}");
        println!("{}", report.to_json()?);
    } else {
        println!("{said}");
        if let Some(json) = &args.json {
            std::fs::write(json, report.to_json()? + "\n")?;
            println!("report JSON -> {}", json.display());
        }
    }
    Ok(())
}
