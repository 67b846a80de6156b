//! Resuming from a journal record that was edited by hand, damaged, or written by a clock
//! ahead of this one. A record whose fields disagree with each other is refused, naming the
//! field, and nothing moves; any other record runs to an end that agrees with the traffic
//! (a success leaves the new version live, a rollback the old one). No edit panics or hangs.

mod support;

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};
use serin_orchestrator::{Journal, Outcome, Record};
use serin_signals::Track;
use serin_traffic::TrafficRouter;
use support::{SERVICE, World, canary_config};

/// A canary of 1.1.0 over 1.0.0 (error rates given), killed once the new version's weight
/// reaches `weight`; returns the world and the journal's last record.
async fn killed_at(
    weight: f64,
    old_rate: f64,
    new_rate: f64,
) -> (Arc<World>, tokio::task::JoinHandle<()>, Record) {
    let (world, traffic) = World::serving(old_rate, new_rate).await;
    let h = world
        .orchestrator()
        .start(&canary_config("1.1.0"), SERVICE)
        .await
        .expect("start");
    while h.status().weight < weight {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    h.kill();
    let last = world.journal.all().last().expect("records").clone();
    (world, traffic, last)
}

/// Appends `edited` as the deployment's next record and resumes from it. `Err` holds the
/// refusal, after checking that nothing moved; `Ok` holds the outcome, after checking that it
/// agrees with what is live.
async fn resume_edited(world: &World, mut edited: Record) -> Result<Outcome, String> {
    let id = edited.deployment.clone();
    edited.seq = edited.seq.saturating_add(1);
    world.journal.append(&edited).await.expect("append");
    let split = world.router.current().await.expect("split");
    let handle = match world.orchestrator().resume(&id).await {
        Ok(h) => h,
        Err(e) => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            assert_eq!(
                world.router.current().await.expect("split"),
                split,
                "a refused resume moved traffic"
            );
            return Err(e.to_string());
        }
    };
    let report = tokio::time::timeout(Duration::from_secs(6 * 3600), handle.wait())
        .await
        .expect("the resumed deployment ends")
        .expect("report");
    let outcome = report
        .outcome
        .clone()
        .expect("an ended deployment has an outcome");
    let live = world.live_version().await;
    let expected = match outcome {
        Outcome::Succeeded => Some((Track::Canary, "1.1.0".to_owned())),
        _ => Some((Track::Stable, "1.0.0".to_owned())),
    };
    assert_eq!(live, expected, "{outcome:?} with {live:?} live\n{report}");
    Ok(outcome)
}

#[tokio::test(start_paused = true)]
async fn a_record_from_a_clock_ahead_is_observed_from_now() {
    // The record says the canary was observed up to two hours from now, as a journal written
    // on a machine whose clock is two hours ahead does. The canary serves 10× the errors.
    let (world, _traffic, mut edited) = killed_at(10.0, 0.005, 0.05).await;
    let resumed_at = world.clock.now();
    edited.state.observed_until = resumed_at.saturating_add(Duration::from_secs(2 * 3600));
    let outcome = resume_edited(&world, edited).await.expect("resumed");
    let Outcome::RolledBack { reason } = outcome else {
        panic!("a failing canary was promoted: {outcome:?}");
    };
    // Rolled back on the evidence, within minutes: not at the deadline two hours on, after a
    // wait during which nothing watched the canary.
    assert!(!reason.contains("maxDeploymentDuration"), "{reason}");
    let took = world.clock.now().as_millis() - resumed_at.as_millis();
    assert!(
        took < 10 * 60 * 1000,
        "rolled back {took} ms after resuming"
    );
}

#[tokio::test(start_paused = true)]
async fn a_record_whose_fields_disagree_is_refused_naming_the_field() {
    type Edit = fn(&mut Record);
    let cases: [(&str, Edit, &str); 9] = [
        (
            "another deployment's id",
            |r| r.state.id = "web-9.9.9-1".into(),
            "state.id",
        ),
        (
            "a weight over 100%",
            |r| r.state.weight = 150.0,
            "state.weight",
        ),
        (
            "a NaN weight",
            |r| r.state.weight = f64::NAN,
            "state.weight",
        ),
        ("a sequence number past 2^53", |r| r.seq = 1 << 60, "seq"),
        (
            "an event number past 2^53",
            |r| r.state.next_event = u64::MAX,
            "state.nextEvent",
        ),
        (
            "a canary without the version it is compared with",
            |r| r.state.from = None,
            "state.from",
        ),
        (
            "a canary without its controller",
            |r| r.state.canary = None,
            "state.canary",
        ),
        (
            "an end without an outcome",
            |r| r.state.stage = serin_orchestrator::Stage::Done,
            "state.outcome",
        ),
        (
            "an outcome before the end",
            |r| r.state.outcome = Some(Outcome::Succeeded),
            "state.outcome",
        ),
    ];
    for (what, edit, field) in cases {
        let (world, _traffic, mut edited) = killed_at(10.0, 0.005, 0.005).await;
        edit(&mut edited);
        let e = resume_edited(&world, edited)
            .await
            .expect_err(&format!("{what}: resumed"));
        assert!(e.contains(&format!("{field} ")), "{what}: {e}");
    }
}

/// Every leaf of `v` to edit, as a path; `state.config` is left out (resume validates it as a
/// whole), and the pure cores' own state only at its top (their crates edit every field).
fn paths(v: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let opaque = |p: &[String]| {
        p == ["state", "config"]
            || (p.len() >= 3
                && p[0] == "state"
                && ["canary", "triggers", "plan"].contains(&p[1].as_str()))
    };
    let visit = |key: String, x: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>| {
        path.push(key);
        if path.as_slice() != ["state", "config"] {
            out.push(path.clone());
        }
        if !opaque(path) {
            paths(x, path, out);
        }
        path.pop();
    };
    match v {
        Value::Object(m) => m.iter().for_each(|(k, x)| visit(k.clone(), x, path, out)),
        Value::Array(a) => a
            .iter()
            .take(2)
            .enumerate()
            .for_each(|(i, x)| visit(i.to_string(), x, path, out)),
        _ => {}
    }
}

fn at<'a>(v: &'a mut Value, path: &[String]) -> &'a mut Value {
    path.iter().fold(v, |v, p| match v {
        Value::Array(a) => &mut a[p.parse::<usize>().expect("index")],
        v => &mut v[p.as_str()],
    })
}

/// One edit on its own thread and runtime, so that a panic or a hang fails it alone.
fn run_edit(weight: f64, path: Vec<String>, value: Value) -> String {
    let (tx, rx) = mpsc::channel();
    let label = format!("{} = {value} at {weight}%", path.join("."));
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        let result = rt.block_on(async move {
            let (world, _traffic, last) = killed_at(weight, 0.005, 0.005).await;
            let mut record = serde_json::to_value(&last).expect("serialize");
            *at(&mut record, &path) = value;
            // An edit the record's own type refuses never reaches resume.
            let Ok(edited) = serde_json::from_value::<Record>(record) else {
                return "unreadable".to_owned();
            };
            match resume_edited(&world, edited).await {
                Ok(outcome) => format!("{outcome:?}"),
                Err(e) => format!("refused: {e}"),
            }
        });
        let _ = tx.send(result);
    });
    rx.recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{label}: panicked or hung"))
}

#[test]
fn no_edit_of_a_record_panics_hangs_or_ends_against_the_traffic() {
    let values = [
        json!(-1),
        json!(1e300),
        json!(u64::MAX),
        json!(0),
        json!(""),
        Value::Null,
    ];
    let mut refused = 0;
    let mut ran = 0;
    // In the canary stage, and in the watch after promotion.
    for weight in [10.0, 100.0] {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        let last = rt.block_on(async { killed_at(weight, 0.005, 0.005).await.2 });
        let record = serde_json::to_value(&last).expect("serialize");
        let mut all = Vec::new();
        paths(&record, &mut Vec::new(), &mut all);
        for path in all {
            for value in &values {
                let result = run_edit(weight, path.clone(), value.clone());
                refused += usize::from(result.starts_with("refused"));
                ran += usize::from(!result.starts_with("refused") && result != "unreadable");
            }
        }
    }
    // Both kinds happen: the sweep reaches resume and the executor, not only serde.
    assert!(refused > 0 && ran > 0, "refused {refused}, ran {ran}");
}
