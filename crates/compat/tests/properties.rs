//! Properties over generated fleets, rules and graphs, and parsers fed arbitrary text.

use std::collections::{BTreeSet, VecDeque};

use proptest::prelude::*;
use semver::Version;
use serin_compat::matrix::{OneMinorAtATime, PairRule, Requires, Skew, Target};
use serin_compat::path::{EdgeState, PathOptions, RequiredStop, Risk, Route, UpgradeGraph};
use serin_compat::{
    Catalog, Fleet, Format, Matrix, Proposal, Registry, Release, Rule, Selector, Validator,
    Verdict, breaking, migration, parse_version,
};

const SELECTORS: &[&str] = &[
    "*",
    ">=1.1.0",
    "<1.3.0",
    "^1",
    "1.2.0",
    ">=1.2.0, <2.0.0",
    "2.0.0",
];

fn v(minor: u64) -> Version {
    if minor >= 5 {
        Version::new(2, 0, 0)
    } else {
        Version::new(1, minor, 0)
    }
}

fn sel(i: usize) -> Selector {
    Selector::parse(SELECTORS[i % SELECTORS.len()], "gen").unwrap()
}

#[derive(Debug, Clone)]
enum RuleSpec {
    Requires(usize, usize, usize, usize),
    Deny(usize, usize, usize, usize),
    Skew(usize, usize, u64, u64),
    OneMinor(usize),
}

fn rule_strategy(n: usize) -> impl Strategy<Value = RuleSpec> {
    prop_oneof![
        (0..n, 0..n, 0..7usize, 0..7usize).prop_map(|(a, b, x, y)| RuleSpec::Requires(a, b, x, y)),
        (0..n, 0..n, 0..7usize, 0..7usize).prop_map(|(a, b, x, y)| RuleSpec::Deny(a, b, x, y)),
        (0..n, 0..n, 0..3u64, 0..2u64).prop_map(|(a, b, o, w)| RuleSpec::Skew(a, b, o, w)),
        (0..n).prop_map(RuleSpec::OneMinor),
    ]
}

fn name(i: usize) -> String {
    format!("s{i}")
}

fn to_rule(spec: &RuleSpec) -> Option<Rule> {
    Some(match *spec {
        RuleSpec::Requires(a, b, x, y) if a != b => Rule::Requires(Requires {
            id: None,
            service: name(a),
            versions: sel(x),
            dependency: name(b),
            req: sel(y),
            reason: None,
        }),
        RuleSpec::Deny(a, b, x, y) => Rule::Deny(PairRule {
            id: None,
            a: Target::new(name(a), sel(x)),
            b: Target::new(name(b), sel(y)),
            reason: None,
        }),
        RuleSpec::Skew(a, b, o, w) => Rule::Skew(Skew {
            id: None,
            client: name(a),
            server: name(b),
            max_older: o,
            // Between instances of one service only `maxOlder` bounds the spread.
            max_newer: if a == b { 0 } else { w },
            overrides: vec![],
        }),
        RuleSpec::OneMinor(a) => Rule::OneMinorAtATime(OneMinorAtATime {
            id: None,
            service: name(a),
        }),
        _ => return None,
    })
}

#[derive(Debug, Clone)]
struct World {
    n: usize,
    current: Vec<u64>,
    targets: Vec<Option<u64>>,
    rules: Vec<RuleSpec>,
    extra: RuleSpec,
}

fn world() -> impl Strategy<Value = World> {
    (2..6usize).prop_flat_map(|n| {
        (
            proptest::collection::vec(0..6u64, n),
            proptest::collection::vec(proptest::option::of(0..6u64), n),
            proptest::collection::vec(rule_strategy(n), 0..6),
            rule_strategy(n),
        )
            .prop_map(move |(current, targets, rules, extra)| World {
                n,
                current,
                targets,
                rules,
                extra,
            })
    })
}

/// Fleets mid-upgrade: everything at 1.0 or 1.1, targets at 1.2 and above, and rules whose
/// selectors bite exactly between old and new, so orders with several groups are common.
fn rollout_world() -> impl Strategy<Value = World> {
    (3..7usize).prop_flat_map(|n| {
        let rule = prop_oneof![
            (
                0..n,
                0..n,
                prop_oneof![Just(1usize), Just(5)],
                prop_oneof![Just(1usize), Just(5)]
            )
                .prop_map(|(a, b, x, y)| RuleSpec::Requires(a, b, x, y)),
            (0..n, 0..n, 0..2u64, 0..2u64).prop_map(|(a, b, o, w)| RuleSpec::Skew(a, b, o, w)),
            (0..n, 0..n, Just(4usize), Just(2usize))
                .prop_map(|(a, b, x, y)| RuleSpec::Deny(a, b, x, y)),
        ];
        (
            proptest::collection::vec(0..2u64, n),
            proptest::collection::vec(proptest::option::weighted(0.8, 2..5u64), n),
            proptest::collection::vec(rule.clone(), 1..8),
            rule,
        )
            .prop_map(move |(current, targets, rules, extra)| World {
                n,
                current,
                targets,
                rules,
                extra,
            })
    })
}

fn any_world() -> impl Strategy<Value = World> {
    prop_oneof![world(), rollout_world()]
}

fn registry(n: usize) -> Registry {
    let mut r = Registry::new();
    for i in 0..n {
        for m in 0..6 {
            r.add_release(&name(i), Release::new(v(m))).unwrap();
        }
    }
    r
}

fn validator(w: &World, with_extra: bool) -> Validator {
    let reg = registry(w.n);
    let mut rules: Vec<Rule> = w.rules.iter().filter_map(to_rule).collect();
    if with_extra && let Some(r) = to_rule(&w.extra) {
        rules.push(r);
    }
    let matrix = Matrix::new(rules, &reg).unwrap();
    Validator::new(reg, matrix).unwrap()
}

fn fleet_and_proposal(w: &World) -> (Fleet, Proposal) {
    let mut fleet = Fleet::new();
    let mut proposal = Proposal::new();
    for i in 0..w.n {
        fleet.insert(name(i), v(w.current[i]));
        if let Some(t) = w.targets[i] {
            proposal = proposal.with(name(i), v(t));
        }
    }
    (fleet, proposal)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, max_global_rejects: 20_000, ..ProptestConfig::default() })]

    /// Any order the validator returns satisfies every constraint at every intermediate step:
    /// while a group rolls out (old and new side by side) and after it completes.
    #[test]
    fn returned_order_is_safe_at_every_step(w in any_world()) {
        let val = validator(&w, false);
        let (fleet, proposal) = fleet_and_proposal(&w);
        prop_assume!(val.check_fleet(&fleet).unwrap().is_empty());
        let result = val.validate(&fleet, &proposal).unwrap();
        if result.verdict == Verdict::Blocked {
            return Ok(());
        }
        let mut state = fleet.clone();
        let mut moved = BTreeSet::new();
        for group in &result.order {
            for mv in group {
                let mut running = mv.from.clone();
                running.extend(mv.hops.iter().cloned());
                state.set(mv.service.clone(), running);
                prop_assert!(moved.insert(mv.service.clone()), "{} moves twice", mv.service);
            }
            let during = val.check_fleet(&state).unwrap();
            prop_assert!(during.is_empty(), "during group: {:?}\n{}", during, result);
            for mv in group {
                state.set(mv.service.clone(), vec![mv.target().unwrap().clone()]);
            }
            let after = val.check_fleet(&state).unwrap();
            prop_assert!(after.is_empty(), "after group: {:?}\n{}", after, result);
        }
        for (service, target) in proposal.iter() {
            prop_assert_eq!(state.running(service), std::slice::from_ref(target));
        }
    }

    /// Adding a constraint never turns "blocked" into "ok".
    #[test]
    fn adding_a_constraint_never_unblocks(w in any_world()) {
        let (fleet, proposal) = fleet_and_proposal(&w);
        let before = validator(&w, false).validate(&fleet, &proposal).unwrap();
        let after = validator(&w, true).validate(&fleet, &proposal).unwrap();
        if before.verdict == Verdict::Blocked {
            prop_assert_eq!(after.verdict, Verdict::Blocked, "{}\n---\n{}", before, after);
        }
    }
}

#[derive(Debug, Clone)]
struct GraphWorld {
    edges: Vec<(usize, usize)>,
    blocked: Vec<(usize, usize)>,
    conditional: Vec<(usize, usize)>,
    stop: bool,
    accept_conditional: bool,
    from: usize,
    to: usize,
}

fn gv(i: usize) -> Version {
    // 1.0.0 .. 1.9.0, then 2.0.0 .. 2.3.0
    if i < 10 {
        Version::new(1, i as u64, 0)
    } else {
        Version::new(2, (i - 10) as u64, 0)
    }
}

const NODES: usize = 14;

fn graph_world() -> impl Strategy<Value = GraphWorld> {
    let pair = (0..NODES - 1).prop_flat_map(|a| (Just(a), a + 1..NODES));
    (
        proptest::collection::vec(pair.clone(), 0..50),
        proptest::collection::vec(pair.clone(), 0..8),
        proptest::collection::vec(pair, 0..8),
        any::<bool>(),
        any::<bool>(),
        0..NODES,
        0..NODES,
    )
        .prop_map(
            |(edges, blocked, conditional, stop, accept_conditional, from, to)| GraphWorld {
                edges,
                blocked,
                conditional,
                stop,
                accept_conditional,
                from,
                to,
            },
        )
}

const RULE_SELECTORS: &[&str] = &[
    "*",
    "^1",
    "^2",
    ">=1.5.0",
    "<1.7.0",
    "1.3.0",
    "2.1.0",
    ">=1.2.0, <2.1.0",
];

#[derive(Debug, Clone)]
struct RuleWorld {
    /// Edges added one by one, in either direction.
    exact: Vec<(usize, usize)>,
    /// Rules as indices into `RULE_SELECTORS`.
    edges: Vec<(usize, usize)>,
    blocked: Vec<(usize, usize)>,
    conditional: Vec<(usize, usize)>,
    /// (stop, into)
    stops: Vec<(usize, usize)>,
    accept_conditional: bool,
    from: usize,
    to: usize,
}

fn rule_world() -> impl Strategy<Value = RuleWorld> {
    let rule = (0..RULE_SELECTORS.len(), 0..RULE_SELECTORS.len());
    let pair = (0..NODES, 0..NODES).prop_filter("another release", |(a, b)| a != b);
    (
        proptest::collection::vec(pair, 0..5),
        proptest::collection::vec(rule.clone(), 0..4),
        proptest::collection::vec(rule.clone(), 0..3),
        proptest::collection::vec(rule.clone(), 0..3),
        proptest::collection::vec(rule, 0..3),
        any::<bool>(),
        0..NODES,
        0..NODES,
    )
        .prop_map(
            |(exact, edges, blocked, conditional, stops, accept_conditional, from, to)| RuleWorld {
                exact,
                edges,
                blocked,
                conditional,
                stops,
                accept_conditional,
                from,
                to,
            },
        )
}

fn exact(i: usize) -> Selector {
    Selector::Exact(gv(i))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any path uses only allowed (or, when accepted, conditional) edges, never a blocked one,
    /// and never enters 2.x except from the 1.9 stop; a route is found whenever one exists.
    #[test]
    fn paths_use_only_usable_edges(g in graph_world()) {
        let mut b = UpgradeGraph::builder().releases((0..NODES).map(gv));
        for (x, y) in &g.edges {
            b = b.edge(gv(*x), gv(*y));
        }
        for (x, y) in &g.blocked {
            b = b.block(exact(*x), exact(*y), "generated");
        }
        for (x, y) in &g.conditional {
            b = b.conditional(exact(*x), exact(*y), vec![Risk { name: "R".into(), message: "m".into(), url: None }]);
        }
        if g.stop {
            b = b.required_stop(RequiredStop {
                name: "1.9".into(),
                stop: Selector::parse("1.9.*", "t").unwrap(),
                into: Selector::parse(">=2.0.0", "t").unwrap(),
            });
        }
        let graph = b.build("g").unwrap();
        let usable = |x: usize, y: usize| {
            g.edges.contains(&(x, y))
                && !g.blocked.contains(&(x, y))
                && (g.accept_conditional || !g.conditional.contains(&(x, y)))
                && !(g.stop && y >= 10 && x < 9)
        };
        let opts = PathOptions { accept_conditional: g.accept_conditional };
        let route = graph.route(&gv(g.from), &gv(g.to), opts).unwrap();
        // Independent reachability.
        let mut seen = [false; NODES];
        seen[g.from] = true;
        let mut queue = VecDeque::from([g.from]);
        while let Some(x) = queue.pop_front() {
            for (y, reached) in seen.iter_mut().enumerate() {
                if !*reached && usable(x, y) {
                    *reached = true;
                    queue.push_back(y);
                }
            }
        }
        match route {
            Route::Found(path) => {
                prop_assert!(seen[g.to]);
                let index = |ver: &Version| (0..NODES).find(|i| &gv(*i) == ver).unwrap();
                let mut prev = g.from;
                for hop in &path.hops {
                    let next = index(hop);
                    prop_assert!(usable(prev, next), "hop {} -> {} is not usable", gv(prev), hop);
                    prop_assert!(graph.edge(&gv(prev), hop).is_some());
                    prev = next;
                }
                prop_assert_eq!(prev, g.to);
            }
            Route::NoRoute(why) => {
                prop_assert!(!seen[g.to], "a route exists but none was found");
                prop_assert!(!why.to_string().is_empty());
            }
        }
    }

    /// A graph built from rules (selectors on both sides, blocks, conditional edges, required
    /// stops, and edges added one by one in either direction) has exactly the edges the rules
    /// define, counts them, refuses exactly the graphs with a cycle, and routes at the least
    /// cost: its edges are decided from the rules when a search reaches them, so this holds
    /// that decision to the definition, pair by pair.
    #[test]
    fn rule_graphs_have_the_edges_their_rules_define(w in rule_world()) {
        let sel = |i: usize| Selector::parse(RULE_SELECTORS[i], "t").unwrap();
        let mut b = UpgradeGraph::builder().releases((0..NODES).map(gv));
        for (x, y) in &w.exact {
            b = b.edge(gv(*x), gv(*y));
        }
        for (f, t) in &w.edges {
            b = b.edges(sel(*f), sel(*t));
        }
        for (f, t) in &w.blocked {
            b = b.block(sel(*f), sel(*t), "generated");
        }
        for (k, (f, t)) in w.conditional.iter().enumerate() {
            let risk = Risk { name: format!("R{k}"), message: "m".into(), url: None };
            b = b.conditional(sel(*f), sel(*t), vec![risk]);
        }
        for (k, (stop, into)) in w.stops.iter().enumerate() {
            b = b.required_stop(RequiredStop { name: format!("S{k}"), stop: sel(*stop), into: sel(*into) });
        }
        let table: Vec<Vec<bool>> = (0..RULE_SELECTORS.len())
            .map(|i| (0..NODES).map(|x| sel(i).matches(&gv(x))).collect())
            .collect();
        let m = |i: usize, x: usize| table[i][x];
        let exists = |x: usize, y: usize| {
            x != y
                && (w.exact.contains(&(x, y))
                    || (y > x && w.edges.iter().any(|(f, t)| m(*f, x) && m(*t, y))))
        };
        let removed = |x: usize, y: usize| {
            w.blocked.iter().any(|(f, t)| m(*f, x) && m(*t, y))
                || w.stops.iter().any(|(stop, into)| m(*into, y) && !m(*into, x) && !m(*stop, x))
        };
        let conditional = |x: usize, y: usize| w.conditional.iter().any(|(f, t)| m(*f, x) && m(*t, y));
        let cost_of = |x: usize, y: usize, accept: bool| -> Option<u64> {
            if !exists(x, y) || removed(x, y) {
                return None;
            }
            match (conditional(x, y), accept) {
                (false, _) => Some(1),
                (true, true) => Some(1_000),
                (true, false) => None,
            }
        };
        let costs = |accept: bool| -> Vec<Vec<Option<u64>>> {
            (0..NODES).map(|x| (0..NODES).map(|y| cost_of(x, y, accept)).collect()).collect()
        };
        let (all, chosen) = (costs(true), costs(w.accept_conditional));
        let cost = |x: usize, y: usize| chosen[x][y];
        // Least costs between every two releases (Floyd-Warshall over 14 releases).
        let least = |c: &[Vec<Option<u64>>]| {
            let mut d: Vec<Vec<u64>> =
                c.iter().map(|row| row.iter().map(|c| c.unwrap_or(u64::MAX)).collect()).collect();
            for k in 0..NODES {
                for x in 0..NODES {
                    for y in 0..NODES {
                        if d[x][k] < u64::MAX && d[k][y] < u64::MAX {
                            d[x][y] = d[x][y].min(d[x][k] + d[k][y]);
                        }
                    }
                }
            }
            d
        };
        let cyclic = least(&all).iter().enumerate().any(|(x, row)| row[x] < u64::MAX);
        // A stop whose every release it guards lets no route in.
        let stop_inside = w.stops.iter().any(|(stop, into)| {
            (0..NODES).any(|x| m(*stop, x)) && (0..NODES).all(|x| !m(*stop, x) || m(*into, x))
        });
        let graph = match b.build("g") {
            Ok(graph) => graph,
            Err(e) if stop_inside => {
                prop_assert!(e.to_string().contains(".requiredStops["), "{}", e);
                return Ok(());
            }
            Err(e) => {
                prop_assert!(cyclic, "refused without a cycle: {}", e);
                prop_assert!(e.to_string().contains(" -> "), "{}", e);
                return Ok(());
            }
        };
        prop_assert!(!cyclic, "a cycle was not refused");
        prop_assert!(!stop_inside, "a stop inside what it guards was not refused");
        let mut count = 0;
        for (x, row) in all.iter().enumerate() {
            for (y, defined) in row.iter().enumerate() {
                let state = graph.edge(&gv(x), &gv(y));
                prop_assert_eq!(state.is_some(), defined.is_some(), "edge {} -> {}", gv(x), gv(y));
                if let Some(state) = state {
                    count += 1;
                    prop_assert_eq!(matches!(state, EdgeState::Conditional(_)), conditional(x, y));
                }
            }
        }
        prop_assert_eq!(graph.edge_count(), count);
        let opts = PathOptions { accept_conditional: w.accept_conditional };
        let mut dist = least(&chosen).swap_remove(w.from);
        dist[w.from] = 0;
        match graph.route(&gv(w.from), &gv(w.to), opts).unwrap() {
            Route::Found(path) => {
                let mut prev = w.from;
                let mut total = 0;
                for hop in &path.hops {
                    let next = (0..NODES).find(|i| &gv(*i) == hop).unwrap();
                    let c = cost(prev, next);
                    prop_assert!(c.is_some(), "hop {} -> {} is not usable", gv(prev), hop);
                    total += c.unwrap_or_default();
                    prev = next;
                }
                prop_assert_eq!(prev, w.to);
                prop_assert_eq!(total, dist[w.to], "not the least cost");
            }
            Route::NoRoute(why) => {
                prop_assert_eq!(dist[w.to], u64::MAX, "a route exists but none was found");
                prop_assert!(!why.to_string().is_empty());
            }
        }
    }

    /// No parser entry point panics on arbitrary text.
    #[test]
    fn parsers_never_panic(text in ".{0,200}") {
        let _ = Selector::parse(&text, "x");
        let _ = parse_version(&text, "x");
        let _ = migration::analyze("fuzz", &text);
        let _ = breaking::from_oasdiff("fuzz", &text);
        let _ = breaking::from_buf("fuzz", &text);
        let _ = Fleet::from_yaml_str(&text);
        for format in [Format::Yaml, Format::Json, Format::Toml] {
            let _ = Catalog::parse(&text, format);
        }
        let _ = serde_json::from_str::<Proposal>(&text);
        let _ = serde_yaml_ng::from_str::<Registry>(&text);
    }

    /// SQL built from real keywords reaches deep into the parser and the classifier without
    /// panicking; every statement gets a position, and one that is not parsed keeps its text.
    #[test]
    fn sql_fragments_never_panic(words in proptest::collection::vec(prop_oneof![
        Just("ALTER"), Just("TABLE"), Just("t"), Just("ADD"), Just("COLUMN"), Just("c"), Just("int"),
        Just("NOT"), Just("NULL"), Just("DEFAULT"), Just("now()"), Just("DROP"), Just("INDEX"),
        Just("CONCURRENTLY"), Just("CREATE"), Just("ON"), Just("("), Just(")"), Just(";"),
        Just("CONSTRAINT"), Just("UNIQUE"), Just("CHECK"), Just("VALID"), Just("RENAME"), Just("TO"),
        Just("SET"), Just("lock_timeout"), Just("="), Just("'1s'"), Just("BEGIN"), Just("COMMIT"),
        Just("TYPE"), Just("FOREIGN"), Just("KEY"), Just("REFERENCES"), Just("u"), Just(","),
        Just("SCHEMA"), Just("TABLESPACE"), Just("STATISTICS"), Just("-1"), Just("."),
        Just("\n-- serin:ignore ban-drop-column\n"), Just("/* serin:ignore-file */"),
        Just("'ü"), Just("\n"), Just("FUNCTION"), Just("ATOMIC"), Just("CASE"), Just("END"),
        Just("SEQUENCE"), Just("VACUUM"), Just("FULL"), Just("DO"), Just("$$ x $$"), Just("LIKE"),
        Just("\\i 0001_x.sql\n"), Just("\\gexec"), Just("\\echo it's"), Just("OWNER"),
        Just("varchar(10)"), Just("numeric(5,2)"), Just("USING"),
        // Runners' markers.
        Just("\n-- +goose Up\n"), Just("\n-- +goose Down\n"), Just("\n-- +goose StatementBegin\n"),
        Just("\n-- +goose StatementEnd\n"), Just("\n-- +goose NO TRANSACTION\n"),
        Just("\n-- +migrate Up notransaction\n"), Just("\n-- +migrate Down\n"),
        Just("\n-- migrate:up transaction:false\n"), Just("\n-- migrate:down\n"),
        Just("\n-- Up Migration\n"), Just("\n-- Down Migration\n"),
        Just("---- create above / drop below ----"), Just("\n---- tern: disable-tx ----\n"),
        Just("-- no-transaction\n"), Just("-- depends: 0001\n"),
        // Flyway's placeholders, whole and not; psql's variables.
        Just("${schema}.t"), Just("${flyway:user}"), Just("${"), Just("}"),
        Just(":'v'"), Just(":\"t\""), Just(":v"), Just("::int"), Just("[1:2]"), Just("E'\\'"),
        // Liquibase's changelog and changesets.
        Just("--liquibase formatted sql\n"), Just("\n--changeset a:1\n"),
        Just("\n--changeset a:2 runInTransaction:false splitStatements:false\n"),
        Just("\n--changeset a:3 dbms:mysql\n"), Just("\n--ignoreLines:start\n"),
        Just("\n--ignoreLines:end\n"),
        // Partitions, domains, primary keys made of indexes, timeouts.
        Just("PARTITION"), Just("OF"), Just("BY"), Just("RANGE"), Just("FOR"), Just("VALUES"),
        Just("FROM"), Just("ATTACH"), Just("DOMAIN"), Just("PRIMARY"), Just("IF"),
        Just("EXISTS"), Just("statement_timeout"), Just("RESET"), Just("EXPRESSION"),
        // Storage parameters, access methods, materialized views.
        Just("(fillfactor = 70)"), Just("(fastupdate = off, toast.autovacuum_enabled)"),
        Just("ACCESS"), Just("METHOD"), Just("MATERIALIZED"), Just("VIEW"), Just("brin"),
        Just("COLLATE"), Just("\"C\""), Just("citext"), Just("DATA"), Just("SAVEPOINT"),
        Just("--> statement-breakpoint\n"), Just("\\connect other\n"),
    ], 0..30)) {
        let sql = words.join(" ");
        // Learned as an earlier migration, the same text is the schema the analysis starts from.
        let mut schema = migration::Schema::default();
        schema.learn(&sql);
        if let Ok(report) = migration::analyze_after("gen", &sql, &schema) {
            for s in &report.statements {
                prop_assert!(s.line >= 1 && s.column >= 1);
                // A statement that is not parsed is reported as written.
                if s.findings.iter().any(|f| f.rule == "unparsable-statement") {
                    prop_assert!(!s.sql.is_empty() && sql.contains(&s.sql), "{:?}", s.sql);
                }
            }
        }
    }
}

/// Deeply nested input is an error, never a stack overflow.
#[test]
fn deeply_nested_input_is_an_error_not_a_crash() {
    let n = 20_000;
    let open = "[".repeat(n);
    for format in [Format::Yaml, Format::Json, Format::Toml] {
        assert!(Catalog::parse(&open, format).is_err());
        assert!(Catalog::parse(&format!("a = {open}"), format).is_err());
    }
    // YAML is refused by a linear scan before libyaml, whose time is quadratic in the depth,
    // parses it; the error names the line.
    let closed = format!("registry: {open}{}", "]".repeat(n));
    for err in [
        Catalog::parse(&closed, Format::Yaml).unwrap_err(),
        Fleet::from_yaml_str(&format!(
            "web: 1.0.0
db: {open}"
        ))
        .unwrap_err(),
    ] {
        assert!(err.to_string().contains("nest deeper than 128"), "{err}");
    }
    let nested = format!("{}1{}", "(".repeat(n), ")".repeat(n));
    for sql in [
        format!("SELECT {nested}"),
        format!("ALTER TABLE t ADD COLUMN c int DEFAULT {nested}"),
    ] {
        let report = migration::analyze("deep", &sql).unwrap();
        let finding = &report.statements[0].findings[0];
        assert_eq!(finding.rule, "unparsable-statement");
        assert!(finding.message.contains("recursion"), "{}", finding.message);
    }
    assert!(Selector::parse(&">=1.0.0, ".repeat(n), "rules[0].requires.req").is_err());
}
