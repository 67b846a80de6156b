//! APIs that change hands: a moving service stops providing an API that another moving service
//! starts to provide, in the same change (`search` leaves `idx` 2.0.0 and arrives in `idx2`
//! 1.1.0 while `web` keeps calling it).
//!
//! The consumers stay served only if the new provider runs its target before the old one stops
//! providing the API. No pair of moving services states that: the rule runs through a consumer,
//! which may not move at all. So the validator looks for it directly: for each API a moving
//! service drops from a release it passes, each version range its consumers ask for (the
//! releases they may run during the change) that it serves now and that no other provider
//! serves throughout is at risk, and a moving service whose target serves that range takes it
//! over. The taker's move is ordered before the old provider's ("moves before" edge); if other
//! rules order them the other way, the handover is refused by name. A range nobody takes over
//! is a plain removal, which the API check blocks.
//!
//! The cost follows the APIs that moving services drop, their consumers and their providers,
//! never every pair of services.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use semver::{Comparator, Op, Version, VersionReq};

use crate::registry::ProvidedApi;
use crate::validation::Move;

use super::{PairInfo, Validator};

/// A version range some consumer asks of an API, with the first consumer seen to ask it.
struct Need {
    req: VersionReq,
    consumer: (usize, Version),
    /// Whether a provider serves it before, during and after its own move (or does not move).
    stable: bool,
    /// The moving services whose target serves it, which do not serve it throughout.
    takers: Vec<usize>,
}

/// What one old provider drops: the first release it passes without the API, and the ranges at
/// risk that another moving service takes over.
struct Dropped {
    at: Version,
    risks: Vec<(VersionReq, (usize, Version), Vec<usize>)>,
}

/// The APIs moving services hand over to others in one change, by old provider and API.
#[derive(Default)]
pub(super) struct Handovers {
    by_old: BTreeMap<usize, BTreeMap<String, Dropped>>,
}

impl Handovers {
    /// Every service that takes over some range of `api` from `old`.
    pub(super) fn takers(&self, old: usize, api: &str) -> impl Iterator<Item = usize> + '_ {
        self.by_old
            .get(&old)
            .and_then(|apis| apis.get(api))
            .into_iter()
            .flat_map(|d| d.risks.iter().flat_map(|(_, _, t)| t.iter().copied()))
    }
}

/// One "moves before" edge of a handover: `new` moves before `old`.
#[derive(Debug, Clone)]
pub(super) struct HandoverEdge {
    pub(super) api: String,
    pub(super) old: usize,
    pub(super) new: usize,
    /// Why, as a sentence.
    pub(super) fact: String,
}

impl Validator {
    /// The version of `api` that release `v` of service `q` provides.
    fn api_version(&self, q: usize, v: &Version, api: &str) -> Option<&Version> {
        self.registry
            .release(self.name(q), v)
            .and_then(|r| r.provided(api))
            .map(|p| &p.version)
    }

    /// The handovers of a change: `current` is what runs, `mixed` every version a service may
    /// run during the change, `fin` what runs after it.
    pub(super) fn handovers(
        &self,
        moves: &BTreeMap<usize, Move>,
        current: &[Vec<Version>],
        mixed: &[Vec<Version>],
        fin: &[Vec<Version>],
    ) -> Handovers {
        let mut out = Handovers::default();
        let mut needs: HashMap<&str, Vec<Need>> = HashMap::new();
        for (&old, mv) in moves {
            let running = current.get(old).map_or(&[][..], Vec::as_slice);
            let apis: BTreeSet<&str> = running
                .iter()
                .filter_map(|v| self.registry.release(self.name(old), v))
                .flat_map(|r| r.provides.iter().map(|p| p.name.as_str()))
                .collect();
            for api in apis {
                let Some(at) = mv
                    .hops
                    .iter()
                    .find(|h| self.api_version(old, h, api).is_none())
                else {
                    continue;
                };
                let list = needs
                    .entry(api)
                    .or_insert_with(|| self.needs(api, moves, current, mixed, fin));
                let risks: Vec<_> = list
                    .iter()
                    .filter(|n| {
                        !n.stable
                            && running.iter().any(|v| {
                                self.api_version(old, v, api)
                                    .is_some_and(|p| n.req.matches(p))
                            })
                    })
                    .filter_map(|n| {
                        let takers: Vec<usize> =
                            n.takers.iter().copied().filter(|t| *t != old).collect();
                        (!takers.is_empty()).then(|| (n.req.clone(), n.consumer.clone(), takers))
                    })
                    .collect();
                if !risks.is_empty() {
                    out.by_old.entry(old).or_default().insert(
                        api.to_owned(),
                        Dropped {
                            at: at.clone(),
                            risks,
                        },
                    );
                }
            }
        }
        out
    }

    /// The ranges of `api` its consumers ask for while the change runs (a consumer that moves
    /// may run any version of its move), each with who serves it.
    fn needs(
        &self,
        api: &str,
        moves: &BTreeMap<usize, Move>,
        current: &[Vec<Version>],
        mixed: &[Vec<Version>],
        fin: &[Vec<Version>],
    ) -> Vec<Need> {
        let set = |sets: &'_ [Vec<Version>], i: usize| -> Vec<Version> {
            sets.get(i).cloned().unwrap_or_default()
        };
        let mut by_req: BTreeMap<String, (VersionReq, (usize, Version))> = BTreeMap::new();
        for &c in self.api_consumers.get(api).map_or(&[][..], Vec::as_slice) {
            let versions = if moves.contains_key(&c) {
                set(mixed, c)
            } else {
                set(current, c)
            };
            for v in versions {
                let Some(release) = self.registry.release(self.name(c), &v) else {
                    continue;
                };
                for need in release.consumes.iter().filter(|n| n.api == api) {
                    by_req
                        .entry(need.version.to_string())
                        .or_insert_with(|| (need.version.clone(), (c, v.clone())));
                }
            }
        }
        let providers = self.api_providers.get(api).map_or(&[][..], Vec::as_slice);
        by_req
            .into_values()
            .map(|(req, consumer)| {
                let serves = |q: usize, v: &Version| {
                    self.api_version(q, v, api).is_some_and(|p| req.matches(p))
                };
                let mut stable = false;
                let mut takers = Vec::new();
                for &q in providers {
                    let now = current
                        .get(q)
                        .is_some_and(|s| s.iter().any(|v| serves(q, v)));
                    match moves.get(&q) {
                        None => stable |= now,
                        Some(mv) if now && mv.hops.iter().all(|h| serves(q, h)) => stable = true,
                        Some(_) => {
                            if fin.get(q).is_some_and(|s| s.iter().any(|v| serves(q, v))) {
                                takers.push(q);
                            }
                        }
                    }
                }
                Need {
                    req,
                    consumer,
                    stable,
                    takers,
                }
            })
            .collect()
    }

    /// The "moves before" edges of the handovers: for each range at risk, the first service
    /// that takes it over and that no pairwise rule makes move after the old provider (so
    /// that a choice among several new providers does not make a cycle a pair already rules
    /// out), else the first one.
    pub(super) fn handover_edges(
        &self,
        handovers: &Handovers,
        pairs: &BTreeMap<(usize, usize), PairInfo>,
        fin: &[Vec<Version>],
    ) -> Vec<HandoverEdge> {
        let after_old = |old: usize, t: usize| {
            pairs.get(&(old.min(t), old.max(t))).is_some_and(|p| {
                let (old_first, t_first) = if old < t {
                    (p.a_first_ok, p.b_first_ok)
                } else {
                    (p.b_first_ok, p.a_first_ok)
                };
                old_first && !t_first
            })
        };
        let list = |set: &[Version]| {
            set.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("+")
        };
        let mut edges: BTreeMap<(usize, usize, &str), HandoverEdge> = BTreeMap::new();
        let dropped = handovers
            .by_old
            .iter()
            .flat_map(|(old, apis)| apis.iter().map(move |(api, d)| (old, api, d)));
        for (old, api, dropped) in dropped {
            for (req, (c, cv), takers) in &dropped.risks {
                let Some(&new) = takers
                    .iter()
                    .find(|t| !after_old(*old, **t))
                    .or(takers.first())
                else {
                    continue;
                };
                edges
                    .entry((new, *old, api.as_str()))
                    .or_insert_with(|| HandoverEdge {
                        api: api.clone(),
                        old: *old,
                        new,
                        fact: format!(
                            "{} {} no longer provides api {api}, which {} {cv} calls ({req}), \
                             and {} provides it only once it runs {}",
                            self.name(*old),
                            dropped.at,
                            self.name(*c),
                            self.name(new),
                            list(fin.get(new).map_or(&[][..], Vec::as_slice))
                        ),
                    });
            }
        }
        edges.into_values().collect()
    }

    /// Whether the target state still serves `removed` once `old` no longer provides it: another
    /// service's target provides the API, every range its consumers' targets ask for is served
    /// by one of them, and, when no consumer in the registry calls it, one of them provides a
    /// version that `^` the removed one accepts (what its callers were written against). The
    /// answer names the providers; `None` is a removal.
    pub(super) fn taken_over(
        &self,
        old: usize,
        removed: &ProvidedApi,
        fin: &[Vec<Version>],
    ) -> Option<String> {
        let api = removed.name.as_str();
        let offered: Vec<(usize, &Version, &Version)> = self
            .api_providers
            .get(api)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter(|q| **q != old)
            .flat_map(|&q| {
                fin.get(q)
                    .map_or(&[][..], Vec::as_slice)
                    .iter()
                    .filter_map(move |v| self.api_version(q, v, api).map(|p| (q, v, p)))
            })
            .collect();
        if offered.is_empty() {
            return None;
        }
        let mut asked: Vec<VersionReq> = Vec::new();
        for &c in self.api_consumers.get(api).map_or(&[][..], Vec::as_slice) {
            for v in fin.get(c).map_or(&[][..], Vec::as_slice) {
                let Some(release) = self.registry.release(self.name(c), v) else {
                    continue;
                };
                asked.extend(
                    release
                        .consumes
                        .iter()
                        .filter(|n| n.api == api)
                        .map(|n| n.version.clone()),
                );
            }
        }
        let served = |req: &VersionReq| offered.iter().any(|(_, _, p)| req.matches(p));
        let why = if asked.is_empty() {
            let v = &removed.version;
            let caret = VersionReq {
                comparators: vec![Comparator {
                    op: Op::Caret,
                    major: v.major,
                    minor: Some(v.minor),
                    patch: Some(v.patch),
                    pre: v.pre.clone(),
                }],
            };
            if !served(&caret) {
                return None;
            }
            format!("compatible with {v} ({caret}); no consumer in the registry calls it")
        } else {
            if !asked.iter().all(served) {
                return None;
            }
            "which every consumer in the target state accepts".to_owned()
        };
        let by: Vec<String> = offered
            .iter()
            .map(|(q, v, p)| format!("{} {v} provides {api} {p}", self.name(*q)))
            .collect();
        Some(format!("{}, {why}", by.join(" and ")))
    }
}
