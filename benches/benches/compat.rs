//! serin-compat at scale: validating a proposed change of a large fleet, and path queries on a
//! large release graph.
//!
//! ```text
//! cargo bench -p serin-benches --bench compat -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! - `validate`: 10,000 services with 20 releases each and 50,000 `requires` constraints
//!   (seeded), the fleet at 1.10.0, and (a) 1,000 or (b) all 10,000 services moving to 1.11.0.
//!   Among the constraints, those between two moving services that bite only on the new
//!   versions force an order (dependency first), so the answer has several groups.
//!   Target: under 1 s.
//! - `validate with APIs`: 2,000 services with 12 releases each, where 400 provide one API
//!   each (its version follows the release) and the other 1,600 call three of them (`^1`,
//!   seeded); the fleet at 1.10.0 and every fourth service moving to 1.11.0. Among the moving
//!   callers, some new releases need the new version of a moving API (the provider moves
//!   first), and 20 APIs move from one provider to another (the new provider moves first, the
//!   old one's release without the API is no breaking removal). This exercises the provider
//!   and caller checks and the handover of APIs. Beside it, the baseline: the same fleet and
//!   change with no API declared. No target.
//! - `route`: a release graph of 2,000 releases and over 100,000 upgrade edges (each release to
//!   the next 52), with blocked and conditional edges and a required stop; shortest safe route
//!   from the first to the last release. Target: under 1 ms.
//! - `route, every release to every later one`: 10,000 releases (1.0.0 to 10.999.0), an edge
//!   rule `* -> *` (50 million edges, decided from the rule as the search reaches them), and a
//!   required stop at each major's last minor before the next major; the route from 1.0.0 to
//!   10.999.0 passes all nine stops. No target: the graph's edges used to be built one by
//!   one, and at this size they would not fit in memory (4,000 releases took 5.7 s and 1.9 GB).
//!   The building of the graph is timed beside it.
//! - `migration`: the safety analysis of a migration of 2,400 PostgreSQL statements (additions,
//!   concurrent indexes, a drop under a `serin:ignore` comment, backfills, and `SET STATISTICS`,
//!   which the parser does not know and the analysis reads from its words), beside the
//!   baseline of sqlparser's own `parse_sql` of the 2,000 statements it can read. No target.
//!
//! After criterion's own report, a summary table prints the mean of a few timed runs of each
//! case next to its target.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serin_compat::matrix::Requires;
use serin_compat::migration;
use serin_compat::path::{GraphBuilder, PathOptions, RequiredStop, Risk, Route, UpgradeGraph};
use serin_compat::registry::ProvidedApi;
use serin_compat::{
    Fleet, Matrix, Proposal, Registry, Release, Rule, Selector, UpgradeValidation, Validator,
    Verdict, Version, VersionReq,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

const SEED: u64 = 0x5e41_c0a7;
const SERVICES: usize = 10_000;
const RELEASES: u64 = 20;
const CONSTRAINTS: usize = 50_000;
const GRAPH_RELEASES: u64 = 2_000;
const FAN_OUT: u64 = 52;
const WIDE_RELEASES: u64 = 10_000;

fn name(i: usize) -> String {
    format!("svc-{i:05}")
}

struct FleetCase {
    validator: Validator,
    fleet: Fleet,
    proposal: Proposal,
}

fn fleet_case(moving: usize) -> FleetCase {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let mut registry = Registry::new();
    for i in 0..SERVICES {
        for minor in 0..RELEASES {
            registry
                .add_release(&name(i), Release::new(Version::new(1, minor, 0)))
                .expect("fresh release");
        }
    }
    let is_moving = |i: usize| i < moving;
    let mut rules = Vec::with_capacity(CONSTRAINTS);
    while rules.len() < CONSTRAINTS {
        let a = rng.random_range(0..SERVICES);
        let b = rng.random_range(0..SERVICES);
        if a == b {
            continue;
        }
        // Dependencies point to lower indices, so forced orders never form a cycle.
        let (a, b) = (a.max(b), a.min(b));
        let ordering = is_moving(a) && is_moving(b) && rng.random_bool(0.2);
        let (versions, req) = if ordering {
            (">=1.11.0", ">=1.11.0")
        } else {
            let floors = ["*", "^1", ">=1.5.0", ">=1.10.0"];
            ("*", floors[rng.random_range(0..floors.len())])
        };
        rules.push(Rule::Requires(Requires {
            id: None,
            service: name(a),
            versions: Selector::parse(versions, "bench").expect("selector"),
            dependency: name(b),
            req: Selector::parse(req, "bench").expect("selector"),
            reason: None,
        }));
    }
    let matrix = Matrix::new(rules, &registry).expect("valid matrix");
    let validator = Validator::new(registry, matrix).expect("validator");
    moving_fleet(validator, SERVICES, is_moving)
}

/// `services` services all at 1.10.0, the `is_moving` ones proposed at 1.11.0.
fn moving_fleet(
    validator: Validator,
    services: usize,
    is_moving: impl Fn(usize) -> bool,
) -> FleetCase {
    let mut fleet = Fleet::new();
    let mut proposal = Proposal::new();
    for i in 0..services {
        fleet.insert(name(i), Version::new(1, 10, 0));
        if is_moving(i) {
            proposal = proposal.with(name(i), Version::new(1, 11, 0));
        }
    }
    FleetCase {
        validator,
        fleet,
        proposal,
    }
}

const API_SERVICES: usize = 2_000;
const API_RELEASES: u64 = 12;
const APIS: usize = 400;
const API_CALLS: usize = 3;
const HANDOVERS: usize = 20;

/// The API case; with no API declared at all when `!with_apis` (the baseline).
fn api_case(with_apis: bool) -> FleetCase {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let is_moving = |i: usize| i.is_multiple_of(4);
    let api = |k: usize| format!("api-{k:03}");
    // Handed over: the first `HANDOVERS` APIs of moving providers, each to the provider
    // `APIS / 2` further on (moving too), whose new release takes it.
    let handed_over = |k: usize| k.is_multiple_of(4) && k / 4 < HANDOVERS;
    let mut registry = Registry::new();
    for i in 0..API_SERVICES {
        let calls: Vec<usize> = (0..API_CALLS).map(|_| rng.random_range(0..APIS)).collect();
        let needs_new = is_moving(i) && rng.random_bool(0.3);
        for minor in 0..API_RELEASES {
            let version = Version::new(1, minor, 0);
            let newest = minor == API_RELEASES - 1;
            let mut release = Release::new(version.clone());
            if with_apis && i < APIS {
                if !(newest && handed_over(i)) {
                    release = release.providing(ProvidedApi::new(api(i), version.clone()));
                }
                let from = i.wrapping_sub(APIS / 2);
                if newest && i >= APIS / 2 && handed_over(from) {
                    release = release.providing(ProvidedApi::new(api(from), version.clone()));
                }
            }
            if with_apis && i >= APIS {
                for &k in &calls {
                    // A new release that needs what the API's moving provider adds in its own.
                    let req = if newest && needs_new && is_moving(k) && !handed_over(k) {
                        ">=1.11.0"
                    } else {
                        "^1"
                    };
                    release = release.consuming(api(k), VersionReq::parse(req).expect("req"));
                }
            }
            registry
                .add_release(&name(i), release)
                .expect("fresh release");
        }
    }
    let matrix = Matrix::new(Vec::new(), &registry).expect("valid matrix");
    let validator = Validator::new(registry, matrix).expect("validator");
    moving_fleet(validator, API_SERVICES, is_moving)
}

fn graph_case() -> UpgradeGraph {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let version = |i: u64| Version::new(i / 100, i % 100, 0);
    let mut builder = UpgradeGraph::builder().releases((0..GRAPH_RELEASES).map(version));
    let mut edges = 0;
    for i in 0..GRAPH_RELEASES {
        for j in (i + 1)..(i + 1 + FAN_OUT).min(GRAPH_RELEASES) {
            builder = builder.edge(version(i), version(j));
            edges += 1;
        }
    }
    for _ in 0..200 {
        let i = rng.random_range(0..GRAPH_RELEASES - 1);
        let j = (i + 1 + rng.random_range(0..FAN_OUT)).min(GRAPH_RELEASES - 1);
        builder = builder.block(
            Selector::Exact(version(i)),
            Selector::Exact(version(j)),
            "seeded block",
        );
        let k = rng.random_range(0..GRAPH_RELEASES - 1);
        let l = (k + 1 + rng.random_range(0..FAN_OUT)).min(GRAPH_RELEASES - 1);
        builder = builder.conditional(
            Selector::Exact(version(k)),
            Selector::Exact(version(l)),
            vec![Risk {
                name: "SeededRisk".into(),
                message: "seeded".into(),
                url: None,
            }],
        );
    }
    builder = builder.required_stop(RequiredStop {
        name: "last 9.x before 10.x".into(),
        stop: Selector::parse("9.99.*", "bench").expect("selector"),
        into: Selector::parse(">=10.0.0", "bench").expect("selector"),
    });
    let graph = builder.build("bench").expect("graph builds");
    assert!(edges >= 100_000, "{edges} edges declared");
    assert!(
        graph.edge_count() >= 100_000,
        "{} usable edges",
        graph.edge_count()
    );
    graph
}

/// 10,000 releases, every one to every later one, a stop before each major.
fn wide_graph_case() -> GraphBuilder {
    let version = |i: u64| Version::new(1 + i / 1_000, i % 1_000, 0);
    let any = || Selector::parse("*", "bench").expect("selector");
    let mut builder = UpgradeGraph::builder()
        .releases((0..WIDE_RELEASES).map(version))
        .edges(any(), any());
    for major in 2..=WIDE_RELEASES / 1_000 {
        let prev = major - 1;
        builder = builder.required_stop(RequiredStop {
            name: format!("{prev}.999 before {major}.x"),
            stop: Selector::parse(&format!("{prev}.999.*"), "bench").expect("selector"),
            into: Selector::parse(&format!(">={major}.0.0, <{}.0.0", major + 1), "bench")
                .expect("selector"),
        });
    }
    builder
}

const MIGRATION_STATEMENTS: usize = 2_400;

/// A migration of `MIGRATION_STATEMENTS` statements; without the ones sqlparser cannot read
/// when `readable_only`.
fn migration_text(readable_only: bool) -> String {
    (0..MIGRATION_STATEMENTS)
        .filter_map(|i| {
            let t = i / 6;
            Some(match i % 6 {
                0 => "SET lock_timeout = '1s';".to_owned(),
                1 => format!("ALTER TABLE t{t} ADD COLUMN c{t} text;"),
                2 => format!("CREATE INDEX CONCURRENTLY i{t} ON t{t} (c{t});"),
                3 => {
                    format!("-- serin:ignore ban-drop-column\nALTER TABLE t{t} DROP COLUMN old{t};")
                }
                4 => format!("UPDATE t{t} SET c{t} = 'x' WHERE id < 1000;"),
                _ if readable_only => return None,
                _ => format!("ALTER TABLE t{t} ALTER COLUMN c{t} SET STATISTICS 500;"),
            })
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn validate(case: &FleetCase) -> UpgradeValidation {
    case.validator
        .validate(&case.fleet, &case.proposal)
        .expect("validates")
}

fn mean_of(runs: u32, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..runs {
        f();
    }
    start.elapsed() / runs
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let small = fleet_case(1_000);
    let all = fleet_case(SERVICES);
    let graph = graph_case();
    let (from, to) = (Version::new(0, 0, 0), Version::new(19, 99, 0));
    let opts = PathOptions::default();

    let result = validate(&small);
    assert_eq!(result.verdict, Verdict::Ok, "{}", result.findings.len());
    let groups_small = result.order.len();
    let result = validate(&all);
    assert_eq!(result.verdict, Verdict::Ok, "{}", result.findings.len());
    let groups_all = result.order.len();
    let apis = api_case(true);
    let no_apis = api_case(false);
    let result = validate(&apis);
    assert_ne!(result.verdict, Verdict::Blocked, "{result}");
    let groups_apis = result.order.len();
    let moved_apis = result
        .findings
        .iter()
        .filter(|f| f.code == "breaking.api-moved")
        .count();
    assert_eq!(moved_apis, HANDOVERS, "{result}");
    let result = validate(&no_apis);
    assert_eq!(result.verdict, Verdict::Ok, "{}", result.findings.len());
    let groups_no_apis = result.order.len();
    let Route::Found(path) = graph.route(&from, &to, opts).expect("route") else {
        panic!("no route in the bench graph");
    };
    let wide = wide_graph_case().build("wide").expect("graph builds");
    let (wide_from, wide_to) = (Version::new(1, 0, 0), Version::new(10, 999, 0));
    let Route::Found(wide_path) = wide.route(&wide_from, &wide_to, opts).expect("route") else {
        panic!("no route in the wide bench graph");
    };
    assert_eq!(wide_path.stops.len(), 9, "{wide_path}");

    let migration = migration_text(false);
    let readable = migration_text(true);
    let report = migration::analyze("bench", &migration).expect("analysis");
    assert_eq!(report.statements.len(), MIGRATION_STATEMENTS);
    assert!(
        report
            .findings()
            .all(|(_, f)| f.ignored || f.rule == "backfill"),
        "only backfills are reported, and the drop is ignored"
    );
    let parse_readable = || {
        Parser::parse_sql(&PostgreSqlDialect {}, &readable).expect("the readable statements parse")
    };
    assert_eq!(parse_readable().len(), MIGRATION_STATEMENTS / 6 * 5);

    let mut group = criterion.benchmark_group("compat");
    group.sample_size(10);
    group.bench_function("validate 10k services / 50k constraints, 1k moving", |b| {
        b.iter(|| black_box(validate(&small)))
    });
    group.bench_function("validate 10k services / 50k constraints, 10k moving", |b| {
        b.iter(|| black_box(validate(&all)))
    });
    group.bench_function("validate 2k services / 400 APIs, 500 moving", |b| {
        b.iter(|| black_box(validate(&apis)))
    });
    group.bench_function("baseline: the same fleet and change without APIs", |b| {
        b.iter(|| black_box(validate(&no_apis)))
    });
    group.finish();
    let mut group = criterion.benchmark_group("compat");
    group.bench_function("route on 2k releases / 100k edges", |b| {
        b.iter(|| black_box(graph.route(&from, &to, opts).expect("route")))
    });
    group.bench_function("route on 10k releases, * -> *, 9 stops", |b| {
        b.iter(|| black_box(wide.route(&wide_from, &wide_to, opts).expect("route")))
    });
    group.bench_function("analyze a migration of 2,400 statements", |b| {
        b.iter(|| black_box(migration::analyze("bench", &migration).expect("analysis")))
    });
    group.bench_function("baseline: sqlparser parse_sql of 2,000 statements", |b| {
        b.iter(|| black_box(parse_readable()))
    });
    group.finish();
    criterion.final_summary();

    let t_small = mean_of(5, || {
        black_box(validate(&small));
    });
    let t_all = mean_of(5, || {
        black_box(validate(&all));
    });
    let t_route = mean_of(1_000, || {
        black_box(graph.route(&from, &to, opts).expect("route"));
    });
    let t_wide_build = mean_of(5, || {
        black_box(wide_graph_case().build("wide").expect("graph builds"));
    });
    let t_wide_route = mean_of(100, || {
        black_box(wide.route(&wide_from, &wide_to, opts).expect("route"));
    });
    println!();
    println!("serin-compat at scale (seed {SEED:#x}; mean of timed runs after criterion)");
    println!("| case | runs | mean | target | ratio to target |");
    println!("|---|---|---|---|---|");
    let row = |label: &str, runs: u32, t: Duration, target: Duration| {
        println!(
            "| {label} | {runs} | {:.3} ms | {:.3} ms | {:.3} |",
            t.as_secs_f64() * 1e3,
            target.as_secs_f64() * 1e3,
            t.as_secs_f64() / target.as_secs_f64()
        );
    };
    row(
        &format!("validate, 1k of 10k moving ({groups_small} groups)"),
        5,
        t_small,
        Duration::from_secs(1),
    );
    row(
        &format!("validate, all 10k moving ({groups_all} groups)"),
        5,
        t_all,
        Duration::from_secs(1),
    );
    row(
        &format!(
            "route, {} releases / {} edges ({} hops)",
            graph.release_count(),
            graph.edge_count(),
            path.hops.len()
        ),
        1_000,
        t_route,
        Duration::from_millis(1),
    );
    let untargeted = |label: &str, runs: u32, t: Duration| {
        println!(
            "| {label} | {runs} | {:.3} ms | - | - |",
            t.as_secs_f64() * 1e3
        );
    };
    untargeted(
        &format!(
            "route, {} releases, every release to every later one ({} hops through {} stops)",
            wide.release_count(),
            wide_path.hops.len(),
            wide_path.stops.len()
        ),
        100,
        t_wide_route,
    );
    untargeted("building that graph", 5, t_wide_build);
    let t_apis = mean_of(5, || {
        black_box(validate(&apis));
    });
    let t_no_apis = mean_of(5, || {
        black_box(validate(&no_apis));
    });
    untargeted(
        &format!(
            "validate, {API_SERVICES} services calling {APIS} APIs, {} moving, {HANDOVERS} \
             APIs handed over ({groups_apis} groups)",
            API_SERVICES / 4
        ),
        5,
        t_apis,
    );
    untargeted(
        &format!("baseline: the same fleet and change without APIs ({groups_no_apis} groups)"),
        5,
        t_no_apis,
    );
    println!(
        "with APIs ÷ without: {:.2}",
        t_apis.as_secs_f64() / t_no_apis.as_secs_f64()
    );
    let t_analyze = mean_of(20, || {
        black_box(migration::analyze("bench", &migration).expect("analysis"));
    });
    let t_parse = mean_of(20, || {
        black_box(parse_readable());
    });
    untargeted(
        &format!("migration safety analysis, {MIGRATION_STATEMENTS} statements"),
        20,
        t_analyze,
    );
    untargeted(
        &format!(
            "baseline: sqlparser parse_sql of the {} it reads",
            MIGRATION_STATEMENTS / 6 * 5
        ),
        20,
        t_parse,
    );
    println!(
        "analysis ÷ parse: {:.2} (per statement {:.1} µs against {:.1} µs)",
        t_analyze.as_secs_f64() / t_parse.as_secs_f64(),
        t_analyze.as_secs_f64() * 1e6 / MIGRATION_STATEMENTS as f64,
        t_parse.as_secs_f64() * 1e6 / (MIGRATION_STATEMENTS / 6 * 5) as f64
    );
}
