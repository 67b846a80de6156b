//! Quickstart: a real gradual traffic switch from `stable` to `canary`, 10% every 30 s, on the
//! in-memory router.
//!
//! The plan is built as a pure value and printed as a dry-run table; then it is executed step by
//! step with `tokio::time`: each due step is applied, read back from the router and checked,
//! and each hold is slept through. By default the holds run 150 times faster (30 s becomes
//! 200 ms) so the demo takes about two seconds; `--real-time` keeps the plan's own holds.
//!
//! ```text
//! cargo run -p serin-examples --example quickstart [-- --real-time]
//! ```

use std::error::Error;
use std::time::Duration;

use serin_traffic::{
    InMemoryRouter, Next, Plan, PlanCursor, Strategy, TrafficRouter, TrafficSplit, Weight,
};
use tokio::time::Instant;

/// How much faster than the plan's own holds the demo runs by default.
const FAST_FACTOR: u32 = 150;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let real_time = std::env::args().skip(1).any(|a| a == "--real-time");
    for arg in std::env::args().skip(1) {
        if arg != "--real-time" && arg != "--fast" {
            return Err(
                format!("unknown argument `{arg}`; use --fast (default) or --real-time").into(),
            );
        }
    }
    let scale = if real_time { 1 } else { FAST_FACTOR };

    // 1. The starting split and the strategy (the brief's TRAFFIC_INCREMENT=10, TRAFFIC_INTERVAL=30).
    let stable = TrafficSplit::from_percents([("stable", 100), ("canary", 0)])?;
    let strategy = Strategy::gradual(Weight::from_percent(10)?, Duration::from_secs(30))?;
    let plan = Plan::shift(&stable, "canary", &strategy)?;

    // 2. Dry run: the plan is a value, printable before anything changes.
    println!("== dry run ==");
    print!("{plan}");

    // 3. The router. Refuse up front a plan it could not follow to the end.
    let router = InMemoryRouter::new();
    router.capabilities().check_plan(&plan, router.name())?;
    router.apply(&stable).await?;
    println!(
        "== executing on router `{}` ({}) ==",
        router.name(),
        if real_time {
            "real time".to_owned()
        } else {
            format!("holds {FAST_FACTOR}x faster than planned; --real-time for the real pace")
        }
    );

    // 4. Execute: the cursor (pure) says what is due; this loop does the waiting and applying.
    let origin = Instant::now();
    let elapsed_ms = || u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut cursor = PlanCursor::new();
    loop {
        // The cursor works in plan time; the demo clock runs `scale` times faster.
        let plan_now = elapsed_ms().saturating_mul(u64::from(scale));
        match cursor.next(&plan, plan_now) {
            Next::Apply { step } => {
                let Some(planned) = plan.step(step) else {
                    return Err(format!("the plan has no step {step}").into());
                };
                router.apply(planned.split()).await?;
                let read_back = router.current().await?;
                if read_back.as_ref() != Some(planned.split()) {
                    return Err(format!(
                        "router reads back {read_back:?} after applying step {step}"
                    )
                    .into());
                }
                cursor.applied(&plan, step, plan_now)?;
                println!(
                    "[{:>6.2}s] step {step}: applied [{}], read back ok, hold {}",
                    origin.elapsed().as_secs_f64(),
                    planned.split(),
                    if planned.hold().is_zero() {
                        "-".to_owned()
                    } else {
                        format!("{:?}", planned.hold() / scale)
                    }
                );
            }
            Next::Wait { until_millis } => {
                let wait_ms = until_millis
                    .saturating_sub(plan_now)
                    .div_ceil(u64::from(scale));
                tokio::time::sleep(Duration::from_millis(wait_ms)).await;
            }
            Next::AwaitApproval { step } => {
                // A gradual plan has no approval gates; a weighted one would wait here.
                println!("step {step} awaits approval; approving for the demo");
                cursor.approve(&plan, step)?;
            }
            Next::Done => break,
        }
    }
    println!(
        "done in {:.2}s: [{}]",
        origin.elapsed().as_secs_f64(),
        router
            .current()
            .await?
            .map(|s| s.to_string())
            .unwrap_or_default()
    );

    // 5. The history of applied splits, and the rollback that was ready at every step.
    println!("== history of applied splits ==");
    for (i, split) in router.history().iter().enumerate() {
        println!("{i:>3}  {split}");
    }
    println!("== had it gone wrong: the rollback plan ==");
    print!("{}", plan.rollback());
    Ok(())
}
