//! Behaviour: plans executed against the in-memory router the way an executor would — with a
//! `PlanCursor`, `tokio::time` (paused in these tests) and a rollback when the router fails.

use std::time::Duration;

use serin_traffic::{
    Capabilities, Capability, Error, InMemoryRouter, MatchRoute, Mirror, Next, Plan, PlanCursor,
    StickySession, Strategy, TrafficRouter, TrafficSplit, ValueMatch, Weight, WeightedStep,
};
use tokio::time::Instant;

/// A minimal executor: applies each due step, sleeps through holds, approves when `approve`
/// says so, and on a router error rolls back to the plan's starting split.
async fn execute(
    router: &dyn TrafficRouter,
    plan: &Plan,
    approve: impl Fn(usize) -> bool,
) -> Result<Vec<(Duration, TrafficSplit)>, Error> {
    let origin = Instant::now();
    let now_ms = || u64::try_from(origin.elapsed().as_millis()).unwrap();
    let mut cursor = PlanCursor::new();
    let mut log = Vec::new();
    loop {
        match cursor.next(plan, now_ms())? {
            Next::Apply { step } => {
                let split = plan.step(step).unwrap().split();
                if let Err(e) = router.apply(split).await {
                    let back = match cursor.last_applied() {
                        Some(i) => plan.rollback_from(i)?,
                        None => plan.rollback(),
                    };
                    router.apply(back.target()).await?;
                    return Err(e);
                }
                assert_eq!(router.current().await?.as_ref(), Some(split));
                cursor.applied(plan, step, now_ms())?;
                log.push((origin.elapsed(), split.clone()));
            }
            Next::Wait { until_millis } => {
                tokio::time::sleep(Duration::from_millis(until_millis - now_ms())).await;
            }
            Next::AwaitApproval { step } => {
                if !approve(step) {
                    return Ok(log);
                }
                cursor.approve(plan, step)?;
            }
            Next::Done => return Ok(log),
        }
    }
}

fn stable() -> TrafficSplit {
    TrafficSplit::from_percents([("stable", 100), ("canary", 0)]).unwrap()
}

#[tokio::test(start_paused = true)]
async fn gradual_plan_runs_on_schedule() {
    let router = InMemoryRouter::new();
    router.apply(&stable()).await.unwrap();
    let strategy =
        Strategy::gradual(Weight::from_percent(10).unwrap(), Duration::from_secs(30)).unwrap();
    let plan = Plan::shift(&stable(), "canary", &strategy).unwrap();

    let log = execute(&router, &plan, |_| true).await.unwrap();

    let times: Vec<u64> = log.iter().map(|(t, _)| t.as_secs()).collect();
    assert_eq!(times, (0..10).map(|i| i * 30).collect::<Vec<_>>());
    let mut expected = vec![stable()];
    expected.extend(plan.steps().iter().map(|s| s.split().clone()));
    assert_eq!(router.history(), expected);
    assert_eq!(
        router.current().await.unwrap().as_ref(),
        Some(plan.target())
    );
}

#[tokio::test(start_paused = true)]
async fn approval_gate_stops_the_plan_until_given() {
    let router = InMemoryRouter::new();
    let strategy = Strategy::weighted(vec![
        WeightedStep::new(Weight::from_percent(5).unwrap(), Duration::from_secs(60)),
        WeightedStep::new(Weight::from_percent(50).unwrap(), Duration::from_secs(60))
            .with_pause(serin_traffic::Pause::UntilApproved),
    ])
    .unwrap();
    let plan = Plan::shift(&stable(), "canary", &strategy).unwrap();

    let log = execute(&router, &plan, |_| false).await.unwrap();
    assert_eq!(log.len(), 2);
    let held = router.current().await.unwrap().unwrap();
    assert_eq!(
        held.weight_of("canary"),
        Some(Weight::from_percent(50).unwrap())
    );

    let log = execute(&InMemoryRouter::new(), &plan, |_| true)
        .await
        .unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(log[2].0, Duration::from_secs(120));
}

#[tokio::test(start_paused = true)]
async fn router_failure_mid_plan_rolls_back_to_stable_exactly() {
    let router = InMemoryRouter::new();
    router.apply(&stable()).await.unwrap();
    let strategy =
        Strategy::gradual(Weight::from_percent(25).unwrap(), Duration::from_secs(10)).unwrap();
    let plan = Plan::shift(&stable(), "canary", &strategy).unwrap();

    // Let two steps through, then the router fails.
    let partial = execute(&router, &plan, |_| true);
    let failer = async {
        tokio::time::sleep(Duration::from_secs(15)).await;
        router.fail_next_apply("upstream API unavailable");
    };
    let (result, ()) = tokio::join!(partial, failer);
    match result {
        Err(Error::Backend { message, .. }) => assert_eq!(message, "upstream API unavailable"),
        other => panic!("expected a backend error, got {other:?}"),
    }
    assert_eq!(router.current().await.unwrap(), Some(stable()));
    let history = router.history();
    assert_eq!(history.len(), 4, "{history:?}");
    assert_eq!(history.last(), Some(&stable()));
}

/// A rollback mid-plan leaves no header route or mirror to the rolled-back backend: like Argo
/// Rollouts' abort, it removes the deployment's managed routes, and the starting weights come
/// back exactly.
#[tokio::test(start_paused = true)]
async fn router_failure_mid_plan_rolls_back_without_routes_or_mirror() {
    let router = InMemoryRouter::new();
    let from = stable()
        .with_route(
            MatchRoute::header("x-canary", ValueMatch::Exact("always".into()), "canary").unwrap(),
        )
        .unwrap()
        .with_mirror(Mirror::new("canary", Weight::from_percent(10).unwrap()).unwrap());
    router.apply(&from).await.unwrap();
    let strategy =
        Strategy::gradual(Weight::from_percent(25).unwrap(), Duration::from_secs(10)).unwrap();
    let plan = Plan::shift(&from, "canary", &strategy).unwrap();

    let partial = execute(&router, &plan, |_| true);
    let failer = async {
        tokio::time::sleep(Duration::from_secs(15)).await;
        router.fail_next_apply("upstream API unavailable");
    };
    let (result, ()) = tokio::join!(partial, failer);
    assert!(matches!(result, Err(Error::Backend { .. })), "{result:?}");
    let now = router.current().await.unwrap().unwrap();
    assert_eq!(now, stable(), "{now}");
    assert!(now.routes().is_empty() && now.mirror().is_none(), "{now}");
    // The steps before the failure still carried the route and the mirror.
    let history = router.history();
    assert_eq!(history.len(), 4, "{history:?}");
    assert!(
        history[1..3]
            .iter()
            .all(|s| s.routes().len() == 1 && s.mirror().is_some())
    );
}

/// A whole-percent router follows a plan over three backends built at its granularity to the
/// end, where the service's sticky sessions are still in force and the deployment's header
/// route is gone.
#[tokio::test(start_paused = true)]
async fn a_plan_at_the_routers_granularity_runs_to_the_end_keeping_sticky_sessions() {
    let whole_percent = Capabilities::full()
        .with_weight_granularity(Weight::from_percent(1).unwrap())
        .unwrap();
    let router = InMemoryRouter::with_capabilities(whole_percent).named("nginx");
    let sticky = StickySession::new("serin-backend", Duration::from_secs(3600)).unwrap();
    let from = TrafficSplit::from_percents([("blue", 50), ("green", 50), ("canary", 0)])
        .unwrap()
        .with_route(
            MatchRoute::header("x-canary", ValueMatch::Exact("always".into()), "canary").unwrap(),
        )
        .unwrap()
        .with_sticky(sticky.clone());
    router.apply(&from).await.unwrap();
    let strategy =
        Strategy::gradual(Weight::from_percent(33).unwrap(), Duration::from_secs(30)).unwrap();
    let granularity = router.capabilities().weight_granularity();
    let plan = Plan::shift_with_granularity(&from, "canary", &strategy, granularity).unwrap();
    router
        .capabilities()
        .check_plan(&plan, router.name())
        .unwrap();

    let log = execute(&router, &plan, |_| true).await.unwrap();

    assert_eq!(log.len(), 4);
    let end = router.current().await.unwrap().unwrap();
    assert_eq!(
        end,
        TrafficSplit::from_percents([("blue", 0), ("green", 0), ("canary", 100)])
            .unwrap()
            .with_sticky(sticky)
    );
    assert!(end.routes().is_empty());
}

#[tokio::test]
async fn a_plan_the_router_cannot_follow_is_refused_up_front() {
    let router = InMemoryRouter::with_capabilities(Capabilities::weights_only()).named("lb");
    let from = stable()
        .with_route(
            MatchRoute::header("x-canary", ValueMatch::Exact("always".into()), "canary").unwrap(),
        )
        .unwrap();
    let strategy =
        Strategy::gradual(Weight::from_percent(50).unwrap(), Duration::from_secs(1)).unwrap();
    let plan = Plan::shift(&from, "canary", &strategy).unwrap();
    match router.capabilities().check_plan(&plan, router.name()) {
        Err(Error::Unsupported {
            capability,
            router: name,
            ..
        }) => {
            assert_eq!(capability, Capability::HeaderRouting);
            assert_eq!(name, "lb");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
    // Applying a step anyway is refused and changes nothing.
    assert!(router.apply(plan.step(0).unwrap().split()).await.is_err());
    assert_eq!(router.current().await.unwrap(), None);
    // The plain final step is fine.
    router.apply(plan.target()).await.unwrap();
}

#[test]
fn dry_run_table_shows_routes_and_approvals() {
    let from = stable()
        .with_route(
            MatchRoute::header("x-canary", ValueMatch::Exact("always".into()), "canary").unwrap(),
        )
        .unwrap();
    let strategy = Strategy::weighted(vec![
        WeightedStep::new(Weight::from_bps(1250).unwrap(), Duration::from_secs(300))
            .with_pause(serin_traffic::Pause::UntilApproved),
    ])
    .unwrap();
    let table = Plan::shift(&from, "canary", &strategy).unwrap().to_string();
    let expected = "\
plan: 2 step(s) from [stable 100%, canary 0%; header x-canary=always -> canary] to [stable 0%, canary 100%], holding 5m in all, 1 approval(s)
step   stable  canary  hold  then            also
start    100%      0%     -                  header x-canary=always -> canary
0       87.5%   12.5%    5m  await approval  header x-canary=always -> canary
1          0%    100%     -  done
";
    assert_eq!(table, expected);
}

/// A plan and its cursor journalled mid-plan and read back, as another process does after a
/// crash, resume where they stood: the hold counts from when the step was applied, not from the
/// restart; an approval given before the crash is kept; the rest follows on schedule.
#[tokio::test]
async fn a_journalled_plan_resumes_where_it_stood() {
    let router = InMemoryRouter::new();
    let strategy = Strategy::weighted(vec![
        WeightedStep::new(Weight::from_percent(10).unwrap(), Duration::from_secs(60))
            .with_pause(serin_traffic::Pause::UntilApproved),
        WeightedStep::new(Weight::from_percent(50).unwrap(), Duration::from_secs(30)),
    ])
    .unwrap();
    let plan = Plan::shift(&stable(), "canary", &strategy).unwrap();
    let mut cursor = PlanCursor::new();
    router.apply(plan.step(0).unwrap().split()).await.unwrap();
    cursor.applied(&plan, 0, 1_000).unwrap();
    cursor.approve(&plan, 0).unwrap();
    let journal = (
        serde_json::to_string(&plan).unwrap(),
        serde_json::to_string(&cursor).unwrap(),
    );

    // The restart, 20s into the 60s hold.
    let plan: Plan = serde_json::from_str(&journal.0).unwrap();
    let mut cursor: PlanCursor = serde_json::from_str(&journal.1).unwrap();
    assert_eq!(
        cursor.next(&plan, 21_000).unwrap(),
        Next::Wait {
            until_millis: 61_000
        }
    );
    assert_eq!(cursor.next(&plan, 61_000).unwrap(), Next::Apply { step: 1 });
    router.apply(plan.step(1).unwrap().split()).await.unwrap();
    cursor.applied(&plan, 1, 61_000).unwrap();
    assert_eq!(cursor.next(&plan, 91_000).unwrap(), Next::Apply { step: 2 });
    router.apply(plan.target()).await.unwrap();
    cursor.applied(&plan, 2, 91_000).unwrap();
    assert_eq!(cursor.next(&plan, 91_000).unwrap(), Next::Done);
    assert_eq!(
        router.current().await.unwrap().as_ref(),
        Some(plan.target())
    );
}
