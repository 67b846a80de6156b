//! The rollout order: the pairwise "must move before" verdicts and the handovers of APIs
//! layered into groups, cycles among them named, and the chosen order replayed state by state
//! as a check.

use std::collections::{BTreeMap, BTreeSet};

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use semver::Version;

use crate::explain::Explanation;
use crate::validation::{Finding, Move, Severity};

use super::handover::HandoverEdge;
use super::{PairInfo, Validator, View, Violation};

impl Validator {
    /// Turns the pairwise verdicts and the handovers (the new provider of an API moves before
    /// the old one) into "moves before" edges, reports conflicts and cycles (a handover caught
    /// in one is refused by name), and layers the moves into groups (longest path from the
    /// sources).
    pub(super) fn order(
        &self,
        moves: &BTreeMap<usize, Move>,
        pairs: &BTreeMap<(usize, usize), PairInfo>,
        handovers: &[HandoverEdge],
        findings: &mut Vec<Finding>,
    ) -> Vec<Vec<Move>> {
        let mut graph: DiGraph<usize, String> = DiGraph::new();
        let mut node: BTreeMap<usize, NodeIndex> = BTreeMap::new();
        for i in moves.keys() {
            node.insert(*i, graph.add_node(*i));
        }
        for ((x, y), info) in pairs {
            let (Some(&nx), Some(&ny)) = (node.get(x), node.get(y)) else {
                continue;
            };
            // The edge says why the other order fails.
            let why =
                |v: &Option<Violation>| v.as_ref().map(|v| v.fact.clone()).unwrap_or_default();
            match (info.a_first_ok, info.b_first_ok) {
                (true, false) => {
                    graph.add_edge(nx, ny, why(&info.b_first));
                }
                (false, true) => {
                    graph.add_edge(ny, nx, why(&info.a_first));
                }
                (false, false) => {
                    let (sx, sy) = (self.name(*x), self.name(*y));
                    let mut e = Explanation::new(format!(
                        "{sx} and {sy} cannot be upgraded in either order, nor together"
                    ));
                    if let Some(v) = &info.a_first {
                        e = e.derived(
                            Explanation::new(format!("{sx} cannot move before {sy}"))
                                .fact(self.state_fact(v)),
                        );
                    }
                    if let Some(v) = &info.b_first {
                        e = e.derived(
                            Explanation::new(format!("{sy} cannot move before {sx}"))
                                .fact(self.state_fact(v)),
                        );
                    }
                    findings.push(
                        Finding::new(
                            Severity::Error,
                            "order.conflict",
                            format!("{sx}, {sy}"),
                            format!("no order lets {sx} and {sy} both reach their targets"),
                        )
                        .with_explanation(e)
                        .with_recipe(
                            "add an intermediate release compatible with both sides, or change \
                             one service in a separate upgrade first",
                        ),
                    );
                }
                (true, true) => {}
            }
        }
        for h in handovers {
            if let (Some(&nn), Some(&no)) = (node.get(&h.new), node.get(&h.old)) {
                graph.add_edge(nn, no, h.fact.clone());
            }
        }
        let mut order = Vec::new();
        let cycles: Vec<Vec<NodeIndex>> = tarjan_scc(&graph)
            .into_iter()
            .filter(|c| c.len() > 1)
            .collect();
        for scc in &cycles {
            findings.push(self.cycle_finding(&graph, scc));
        }
        for h in handovers {
            let (Some(nn), Some(no)) = (node.get(&h.new), node.get(&h.old)) else {
                continue;
            };
            if let Some(scc) = cycles.iter().find(|c| c.contains(nn) && c.contains(no)) {
                findings.push(self.handover_cycle_finding(&graph, scc, h));
            }
        }
        if cycles.is_empty() {
            let mut level: BTreeMap<NodeIndex, usize> = BTreeMap::new();
            if let Ok(sorted) = petgraph::algo::toposort(&graph, None) {
                for nx in sorted {
                    let l = graph
                        .neighbors_directed(nx, petgraph::Direction::Incoming)
                        .filter_map(|p| level.get(&p).map(|l| l + 1))
                        .max()
                        .unwrap_or(0);
                    level.insert(nx, l);
                }
            }
            let depth = level.values().max().map_or(0, |m| m + 1);
            let mut groups: Vec<Vec<Move>> = vec![Vec::new(); depth];
            for (nx, l) in &level {
                if let (Some(i), Some(g)) = (graph.node_weight(*nx), groups.get_mut(*l))
                    && let Some(mv) = moves.get(i)
                {
                    g.push(mv.clone());
                }
            }
            for g in &mut groups {
                g.sort_by(|p, q| p.service.cmp(&q.service));
            }
            order = groups;
        }
        order
    }

    fn cycle_finding(&self, graph: &DiGraph<usize, String>, scc: &[NodeIndex]) -> Finding {
        let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
        let start = scc.iter().copied().min().unwrap_or_default();
        // Breadth-first search inside the component for a way back to `start`.
        let mut prev: BTreeMap<NodeIndex, (NodeIndex, String)> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut end = None;
        while let Some(u) = queue.pop_front() {
            for e in graph.edges(u) {
                use petgraph::visit::EdgeRef;
                let t = e.target();
                if !members.contains(&t) {
                    continue;
                }
                if t == start {
                    end = Some((u, e.weight().clone()));
                    break;
                }
                if let std::collections::btree_map::Entry::Vacant(slot) = prev.entry(t) {
                    slot.insert((u, e.weight().clone()));
                    queue.push_back(t);
                }
            }
            if end.is_some() {
                break;
            }
        }
        let mut chain = Vec::new();
        if let Some((last, why)) = end {
            chain.push((last, start, why));
            let mut cur = last;
            while cur != start {
                let Some((p, why)) = prev.get(&cur).cloned() else {
                    break;
                };
                chain.push((p, cur, why));
                cur = p;
            }
            chain.reverse();
        }
        let name = |nx: NodeIndex| {
            graph
                .node_weight(nx)
                .map_or("?", |i| self.name(*i))
                .to_owned()
        };
        let mut names: Vec<String> = chain.iter().map(|(f, _, _)| name(*f)).collect();
        names.push(name(start));
        let cycle = names.join(" -> ");
        let mut e = Explanation::new(format!("no order exists for the cycle {cycle}"));
        for (f, t, why) in &chain {
            e = e.fact(format!(
                "{} must move before {} because otherwise {why}",
                name(*f),
                name(*t)
            ));
        }
        Finding::new(
            Severity::Error,
            "order.cycle",
            cycle.clone(),
            format!("the services {cycle} must each move before the next: a cycle"),
        )
        .with_explanation(e)
        .with_recipe("split the upgrade: add a release of one service that works with both sides")
    }

    /// A handover that other rules make impossible: the new provider must move before the old
    /// one, and the cycle `scc` says it cannot.
    fn handover_cycle_finding(
        &self,
        graph: &DiGraph<usize, String>,
        scc: &[NodeIndex],
        h: &HandoverEdge,
    ) -> Finding {
        let (old, new, api) = (self.name(h.old), self.name(h.new), h.api.as_str());
        let mut members: Vec<&str> = scc
            .iter()
            .filter_map(|n| graph.node_weight(*n))
            .map(|i| self.name(*i))
            .collect();
        members.sort_unstable();
        let conclusion = format!(
            "api {api} cannot move from {old} to {new} in this change: {new} must be upgraded \
             before {old} stops providing it, and the services {} cannot all be ordered",
            members.join(", ")
        );
        // The cycle's derivation names the handover's edge among the others.
        let mut e = Explanation::new(conclusion.clone());
        if let Some(why) = self.cycle_finding(graph, scc).explanation {
            e = e.derived(why);
        }
        Finding::new(
            Severity::Error,
            "order.handover",
            format!("api {api}: {old} -> {new}"),
            conclusion,
        )
        .with_evidence(h.fact.clone())
        .with_explanation(e)
        .with_recipe(format!(
            "hand api {api} over in two changes: first upgrade {new} while {old} keeps \
             providing it (in a release of {old} that {new} works with), then release {old} \
             without it"
        ))
    }

    /// Replays the chosen order state by state. Each move of a group passes its states one by
    /// one ([`hop_states`]: the versions running plus one hop, then that hop alone), while the
    /// other moves of its group may run any version of their routes (so a rule between two
    /// releases must allow each of them) and offer an API only if every state of their routes
    /// does (so a consumer is never counted as served by a provider still on its way); once the
    /// group is done, every move of it runs its target.
    pub(super) fn replay(&self, order: &[Vec<Move>], current: &[Vec<Version>]) -> Vec<Finding> {
        let mut state: Vec<Vec<Version>> = current.to_vec();
        let mut findings = Vec::new();
        for (g, group) in order.iter().enumerate() {
            let moving: Vec<(usize, &Move)> = group
                .iter()
                .filter_map(|mv| self.index.get(&mv.service).map(|&i| (i, mv)))
                .collect();
            // Every version each move of the group may run while the group rolls out.
            let mut during = state.clone();
            // The states each move of the group passes, its start first.
            let mut passes = BTreeMap::new();
            for (i, mv) in &moving {
                if let Some(slot) = during.get_mut(*i) {
                    let mut route = vec![slot.clone()];
                    route.extend(hop_states(slot, &mv.hops));
                    passes.insert(*i, route);
                    slot.extend(mv.hops.iter().cloned());
                    slot.sort();
                    slot.dedup();
                }
            }
            for (i, mv) in &moving {
                let (Some(start), Some(rolling_out)) = (state.get(*i), during.get(*i).cloned())
                else {
                    continue;
                };
                // Each state in turn in the move's own slot, the rest as during the group: one
                // slot changes, not a copy of every service's per state.
                for step in hop_states(start, &mv.hops) {
                    if let Some(slot) = during.get_mut(*i) {
                        *slot = step;
                    }
                    let view = View::Rolling {
                        state: &during,
                        passes: &passes,
                        stepping: *i,
                    };
                    let found = self.check_touching(&[*i], view, current, g, "while it rolls out");
                    if !found.is_empty() {
                        // A rule two moves of the group break together is reported once.
                        for f in found {
                            if !findings.iter().any(|e: &Finding| e.message == f.message) {
                                findings.push(f);
                            }
                        }
                        break;
                    }
                }
                if let Some(slot) = during.get_mut(*i) {
                    *slot = rolling_out;
                }
            }
            let ids: Vec<usize> = moving.iter().map(|(i, _)| *i).collect();
            for (i, mv) in &moving {
                if let (Some(t), Some(slot)) = (mv.target(), state.get_mut(*i)) {
                    *slot = vec![t.clone()];
                }
            }
            let done = View::State(&state);
            findings.extend(self.check_touching(&ids, done, current, g, "after it completes"));
        }
        findings
    }

    fn check_touching(
        &self,
        ids: &[usize],
        view: View<'_>,
        current: &[Vec<Version>],
        group: usize,
        when: &str,
    ) -> Vec<Finding> {
        let cis: BTreeSet<usize> = ids
            .iter()
            .filter_map(|i| self.by_service.get(*i))
            .flatten()
            .copied()
            .collect();
        let (View::State(state) | View::Rolling { state, .. }) = view else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for ci in cis {
            let Some(c) = self.constraints.get(ci) else {
                continue;
            };
            let (Some(sa), Some(sb)) = (state.get(c.a), state.get(c.b)) else {
                continue;
            };
            if let Some(v) = self.check_skipping(ci, sa, sb, view, &|v| v.preexisting(current)) {
                out.push(Finding::new(
                    Severity::Error,
                    self.code(ci),
                    format!("group {}", group + 1),
                    format!("the fleet breaks a rule {when}: {}", v.fact),
                ));
            }
        }
        out
    }

    /// The states a moving service passes through: for each hop, the mixed set then the new one.
    pub(super) fn states_of(
        &self,
        i: usize,
        current: &[Vec<Version>],
        changing: &[Option<Vec<Version>>],
    ) -> Vec<Vec<Version>> {
        match changing.get(i) {
            Some(Some(hops)) => hop_states(current.get(i).map_or(&[][..], Vec::as_slice), hops),
            _ => Vec::new(),
        }
    }
}

/// The states of a service that runs `start` and deploys each of `hops` in turn: for each hop,
/// the versions running before it plus the hop (while it rolls out), then the hop alone.
pub(super) fn hop_states(start: &[Version], hops: &[Version]) -> Vec<Vec<Version>> {
    let mut states = Vec::with_capacity(hops.len() * 2);
    let mut running = start.to_vec();
    for hop in hops {
        let mut mixed = running;
        if !mixed.contains(hop) {
            mixed.push(hop.clone());
        }
        mixed.sort();
        states.push(mixed);
        running = vec![hop.clone()];
        states.push(running.clone());
    }
    states
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, Format};

    /// `idx` offers `search` only at 2.0.0, reached through 1.5.0; `idx2` offers it throughout.
    const SEARCH: &str = "registry:\n  services:\n    web:\n      releases:\n\
    \x20       - {version: 1.0.0}\n\
    \x20       - {version: 2.0.0, consumes: [{api: search, version: ^1}]}\n\
    \x20   idx:\n      releases:\n        - {version: 1.0.0}\n        - {version: 1.5.0}\n\
    \x20       - {version: 2.0.0, provides: [{name: search, version: 1.0.0}]}\n\
    \x20   idx2:\n      releases:\n        - {version: 1.0.0}\n\
    \x20       - {version: 1.1.0, provides: [{name: search, version: 1.2.0}]}\n\
    \x20       - {version: 1.2.0}\n";

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn mv(service: &str, from: &str, hops: &[&str]) -> Move {
        Move {
            service: service.to_owned(),
            from: vec![v(from)],
            hops: hops.iter().map(|h| v(h)).collect(),
        }
    }

    /// The codes the replay of `order` reports, from `web 1.0.0, idx 1.0.0` and `idx2` at
    /// `idx2` (not deployed when `None`).
    fn replayed(order: &[Vec<Move>], idx2: Option<&str>) -> Vec<String> {
        let validator = Catalog::parse(SEARCH, Format::Yaml)
            .unwrap()
            .validator()
            .unwrap();
        let mut current = vec![Vec::new(); validator.names.len()];
        current[validator.index["web"]] = vec![v("1.0.0")];
        current[validator.index["idx"]] = vec![v("1.0.0")];
        current[validator.index["idx2"]] = idx2.map(v).into_iter().collect();
        validator
            .replay(order, &current)
            .into_iter()
            .map(|f| f.code)
            .collect()
    }

    #[test]
    fn a_provider_of_the_same_group_serves_only_where_its_whole_route_does() {
        let web = mv("web", "1.0.0", &["2.0.0"]);
        let idx = mv("idx", "1.0.0", &["1.5.0", "2.0.0"]);
        // Together, web 2.0.0 may run while idx is still at 1.0.0 or 1.5.0.
        let together = [vec![web.clone(), idx.clone()]];
        assert_eq!(replayed(&together, None), ["api.requires"]);
        // The provider first, or another that serves throughout: sound, and still accepted.
        assert!(replayed(&[vec![idx.clone()], vec![web.clone()]], None).is_empty());
        assert!(replayed(&together, Some("1.1.0")).is_empty());
        // Nor is a provider of the group that offers the API throughout its route refused.
        let keeps = mv("idx2", "1.1.0", &["1.1.0"]);
        assert!(replayed(&[vec![web.clone(), keeps]], Some("1.1.0")).is_empty());
        // The API handed over from idx2 to idx in one group, once web calls it: idx2 may be
        // done before idx starts, and then nobody serves web. The new provider first is sound.
        let drops = mv("idx2", "1.1.0", &["1.2.0"]);
        let one_group = [vec![web.clone()], vec![idx.clone(), drops.clone()]];
        let found = replayed(&one_group, Some("1.1.0"));
        assert!(found.iter().any(|c| c == "api.requires"), "{found:?}");
        let in_turn = [vec![web], vec![idx], vec![drops]];
        assert!(replayed(&in_turn, Some("1.1.0")).is_empty());
    }
}
