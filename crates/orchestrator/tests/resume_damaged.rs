//! Resuming from a journal record that was edited by hand, damaged, or written by a clock
//! ahead of this one. A record whose fields disagree with each other is refused, naming the
//! field, and nothing moves; any other record runs to an end that agrees with the traffic
//! (a success leaves the new version live, a rollback the old one). No edit panics or hangs.

use crate::support;

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};
use serin_orchestrator::{Journal, Outcome, Placement, Record, Stage, TrafficStrategyKind};
use serin_traffic::TrafficRouter;
use support::{SERVICE, World, blue_green_config, canary_config};

/// What is deployed: a canary, or a gradual blue-green switch (25% every 30 s).
#[derive(Clone, Copy, Debug)]
enum Kind {
    Canary,
    BlueGreen,
}

/// A deployment of 1.1.0 over 1.0.0 (error rates given), killed once the new version's
/// weight reaches `weight`; returns the world and the journal's last record.
async fn killed_at(
    kind: Kind,
    weight: f64,
    old_rate: f64,
    new_rate: f64,
) -> (Arc<World>, tokio::task::JoinHandle<()>, Record) {
    let (world, traffic, config) = match kind {
        Kind::Canary => {
            let (world, traffic) = World::serving(old_rate, new_rate).await;
            (world, traffic, canary_config("1.1.0"))
        }
        Kind::BlueGreen => {
            let world = Arc::new(World::new());
            world.set_rate("1.0.0", old_rate);
            world.set_rate("1.1.0", new_rate);
            let traffic = world.spawn_traffic();
            let install = blue_green_config("1.0.0", TrafficStrategyKind::Immediate);
            world.orchestrator().run(&install).await.expect("install");
            (
                world,
                traffic,
                blue_green_config("1.1.0", TrafficStrategyKind::Gradual),
            )
        }
    };
    let h = world
        .orchestrator()
        .start(&config, SERVICE)
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
/// agrees with what is live: the new version after a success, the old one (`from` and `to`
/// as the record had them before the edit) after a rollback.
async fn resume_edited(
    world: &World,
    mut edited: Record,
    from: &Placement,
    to: &Placement,
) -> Result<Outcome, String> {
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
    let live = match outcome {
        Outcome::Succeeded => to,
        _ => from,
    };
    assert_eq!(
        world.live_version().await,
        Some((live.track.clone(), live.version.to_string())),
        "{outcome:?}\n{report}"
    );
    Ok(outcome)
}

/// Resumes from the last record of a killed canary at 10%, edited by `edit`.
async fn resume_canary_edited(
    old_rate: f64,
    new_rate: f64,
    edit: impl FnOnce(&mut Record, &World),
) -> (Arc<World>, Result<Outcome, String>) {
    let (world, _traffic, mut record) = killed_at(Kind::Canary, 10.0, old_rate, new_rate).await;
    let (from, to) = (
        record.state.from.clone().expect("from"),
        record.state.to.clone(),
    );
    edit(&mut record, &world);
    let result = resume_edited(&world, record, &from, &to).await;
    (world, result)
}

#[tokio::test(start_paused = true)]
async fn a_record_from_a_clock_ahead_is_observed_from_now() {
    // The record says the canary was observed up to two hours from now, as a journal written
    // on a machine whose clock is two hours ahead does. The canary serves 10× the errors.
    let mut resumed_at = None;
    let (world, result) = resume_canary_edited(0.005, 0.05, |r, world| {
        let now = world.clock.now();
        r.state.observed_until = now.saturating_add(Duration::from_secs(2 * 3600));
        resumed_at = Some(now);
    })
    .await;
    let Ok(Outcome::RolledBack { reason }) = result else {
        panic!("a failing canary was not rolled back: {result:?}");
    };
    // Rolled back on the evidence, within minutes: not at the deadline two hours on, after a
    // wait during which nothing watched the canary.
    assert!(!reason.contains("maxDeploymentDuration"), "{reason}");
    let took = world.clock.now().as_millis() - resumed_at.expect("edited").as_millis();
    assert!(
        took < 10 * 60 * 1000,
        "rolled back {took} ms after resuming"
    );
}

#[tokio::test(start_paused = true)]
async fn a_record_whose_fields_disagree_is_refused_naming_the_field() {
    type Edit = fn(&mut Record);
    let cases: [(&str, Edit, &str); 10] = [
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
            |r| r.state.stage = Stage::Done,
            "state.outcome",
        ),
        (
            "an outcome before the end",
            |r| r.state.outcome = Some(Outcome::Succeeded),
            "state.outcome `succeeded`",
        ),
        (
            "a backup both taken and unconfirmed",
            |r| {
                r.state.backup = Some("b-1".into());
                r.state.backup_unconfirmed = Some("the copy was not verified".into());
            },
            "state.backupUnconfirmed `the copy was not verified`",
        ),
    ];
    for (what, edit, field) in cases {
        let (_world, result) = resume_canary_edited(0.005, 0.005, |r, _| edit(r)).await;
        let e = result.expect_err(&format!("{what}: resumed"));
        // The field as a whole word, or with its value when the case names one.
        let named = if field.ends_with('`') {
            field.to_owned()
        } else {
            format!("{field} ")
        };
        assert!(e.contains(&named), "{what}: {e}");
    }
}

/// Every field of `v` to edit, as a path. `state.config` is left out (resume validates it as a
/// whole), and the canary's controller and judges are edited only at their top (the canary
/// crate's `restored_state` tests edit every field of theirs).
fn paths(v: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let visit = |key: String, x: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>| {
        path.push(key);
        let canary_inside = path.len() > 3 && path[..2] == ["state", "canary"];
        if path.as_slice() != ["state", "config"] && !canary_inside {
            out.push(path.clone());
            paths(x, path, out);
        }
        path.pop();
    };
    match v {
        Value::Object(m) => m.iter().for_each(|(k, x)| visit(k.clone(), x, path, out)),
        // An array itself and its first two entries.
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

/// One edit, on its own thread and runtime so that a panic or a hang fails with its name.
fn run_edit(kind: Kind, weight: f64, path: Vec<String>, value: Value) -> String {
    let (tx, rx) = mpsc::channel();
    let label = format!("{kind:?} at {weight}%: {} = {value}", path.join("."));
    std::thread::spawn(move || {
        let rt = paused_runtime();
        let result = rt.block_on(async move {
            let (world, _traffic, last) = killed_at(kind, weight, 0.005, 0.005).await;
            let (from, to) = (
                last.state.from.clone().expect("from"),
                last.state.to.clone(),
            );
            let mut record = serde_json::to_value(&last).expect("serialize");
            *at(&mut record, &path) = value;
            // An edit the record's own type refuses never reaches resume.
            let Ok(edited) = serde_json::from_value::<Record>(record) else {
                return "unreadable".to_owned();
            };
            match resume_edited(&world, edited, &from, &to).await {
                Ok(outcome) => format!("{outcome:?}"),
                Err(e) => format!("refused: {e}"),
            }
        });
        let _ = tx.send(result);
    });
    rx.recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{label}: panicked or hung"))
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime")
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
    let (mut refused, mut ran) = (0, 0);
    // In a canary's analysis, in the watch after its promotion, and halfway through a
    // blue-green switch.
    for (kind, weight) in [
        (Kind::Canary, 10.0),
        (Kind::Canary, 100.0),
        (Kind::BlueGreen, 50.0),
    ] {
        let last =
            paused_runtime().block_on(async { killed_at(kind, weight, 0.005, 0.005).await.2 });
        let record = serde_json::to_value(&last).expect("serialize");
        let mut all = Vec::new();
        paths(&record, &mut Vec::new(), &mut all);
        for path in all {
            for value in &values {
                let result = run_edit(kind, weight, path.clone(), value.clone());
                refused += usize::from(result.starts_with("refused"));
                ran += usize::from(!result.starts_with("refused") && result != "unreadable");
            }
        }
    }
    // Both kinds of answer come: the edits reach resume and the executor, not only serde.
    assert!(refused > 0 && ran > 0, "refused {refused}, ran {ran}");
}
