//! The file journal over years of deployments: what its questions cost before and after a
//! compaction, and what the compaction itself costs.
//!
//! ```text
//! cargo bench -p serin-benches --bench journal
//! ```
//!
//! The journal holds 1,000 finished deployments of 40 records each (about 77 MiB, a few years of
//! daily deployments) and one unfinished one. Sizes are printed in MiB (2^20 bytes), the unit of
//! that figure. Each figure is the median of 5 passes, in one
//! thread. The baseline, measured in the same run, is reading the file's bytes and nothing
//! more. The compaction keeps the last 50 finished deployments whole and trims the others to
//! their last record; the questions are asked again of what it leaves.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serin_orchestrator::journal::testkit::sample_record;
use serin_orchestrator::{FileJournal, Journal, Stage};

const DEPLOYMENTS: usize = 1_000;
const RECORDS: u64 = 40;
const KEEP: usize = 50;
const PASSES: usize = 5;

fn write_journal(path: &Path) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("journal"));
    let mut line = |deployment: &str, seq: u64, done: bool| {
        let mut r = sample_record(deployment, seq);
        if done {
            r.state.stage = Stage::Done;
        }
        serde_json::to_writer(&mut out, &r).expect("record");
        out.write_all(b"\n").expect("write");
    };
    for d in 0..DEPLOYMENTS {
        let id = format!("web-{d:04}");
        for seq in 0..RECORDS {
            line(&id, seq, seq + 1 == RECORDS);
        }
    }
    line("web-running", 0, false);
    out.flush().expect("flush");
}

fn median(mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..PASSES)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[PASSES / 2]
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 20)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1_000.0)
}

/// The questions of one journal: (name, median time).
fn questions(rt: &tokio::runtime::Runtime, path: &Path) -> Vec<(&'static str, Duration)> {
    let j = FileJournal::open(path).expect("open");
    let read = median(|| {
        std::hint::black_box(std::fs::read(path).expect("read"));
    });
    let last = median(|| {
        std::hint::black_box(rt.block_on(j.last_records()).expect("last records"));
    });
    let one = median(|| {
        std::hint::black_box(rt.block_on(j.records("web-running")).expect("records"));
    });
    let all = median(|| {
        std::hint::black_box(rt.block_on(j.all_records()).expect("all records"));
    });
    vec![
        ("baseline: read the file's bytes", read),
        ("the last record of each (resume, status)", last),
        ("one deployment's records (report)", one),
        ("every record (logs)", all),
    ]
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("journal.jsonl");
    write_journal(&path);
    let before = questions(&rt, &path);
    let j = FileJournal::open(&path).expect("open");
    let t = Instant::now();
    let done = rt.block_on(j.compact(KEEP)).expect("compact");
    let compaction = t.elapsed();
    let after = questions(&rt, &path);

    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "\nFile journal, {DEPLOYMENTS} finished deployments of {RECORDS} records and one \
         running; median of {PASSES} passes; {cores} cores\n"
    );
    println!(
        "| question | {:.1} MiB, {} deployments | compacted: {:.1} MiB, {} whole, {} trimmed |",
        mib(done.bytes_before),
        DEPLOYMENTS + 1,
        mib(done.bytes_after),
        done.kept,
        done.trimmed
    );
    println!("|---|---|---|");
    for ((name, b), (_, a)) in before.iter().zip(&after) {
        println!("| {name} | {} | {} |", ms(*b), ms(*a));
    }
    println!(
        "\ncompact(keep {KEEP}): {}, once ({} records dropped)",
        ms(compaction),
        done.records_dropped
    );
}
