//! [`SimHealth`]: the world as a [`HealthSource`].

use std::collections::BTreeMap;

use async_trait::async_trait;
use serin_orchestrator::TrackKey;
use serin_signals::{
    Error, HealthSignal, HealthSource, Probe, ProbeStatus, Result, Timestamp, Track, probe_key,
    worst_signal,
};

use crate::fault::Fault;
use crate::world::{SimWorld, State};

/// The name the simulated health source gives in messages and errors.
const NAME: &str = "sim";

/// The simulated world as a [`HealthSource`]: each running instance of the service's tracks
/// reports readiness, liveness and startup as the platform sees them, and every track reports
/// each of the world's dependencies, all probed at the moment of the call. Probe-failure
/// faults fail their probe; during a health-outage fault every call fails with
/// [`Error::Unavailable`]. Results recorded with [`SimWorld::record_health`] are reported too;
/// for each probe and instance the newest result wins (a recorded one on a tie).
#[derive(Debug, Clone)]
pub struct SimHealth {
    world: SimWorld,
}

impl SimHealth {
    pub(crate) fn new(world: SimWorld) -> Self {
        SimHealth { world }
    }

    /// The world this source belongs to.
    pub fn world(&self) -> &SimWorld {
        &self.world
    }

    /// The latest result of every probe and instance of `track`, keyed for ordering.
    async fn latest(&self, track: &Track) -> Result<BTreeMap<Key, HealthSignal>> {
        track.validate("track")?;
        let recorded = self.world.recorded_health().signals(track).await?;
        let now = self.world.now();
        let state = self.world.lock();
        let outage = state.fault_span_in_force(now, |f| match f {
            Fault::HealthOutage { span } => Some(*span),
            _ => None,
        });
        if let Some(span) = outage {
            return Err(Error::Unavailable {
                source_name: NAME.to_owned(),
                reason: format!(
                    "health outage from {:?} to {:?} after the start (scripted fault)",
                    span.from, span.until
                ),
            });
        }
        let mut latest: BTreeMap<Key, HealthSignal> = generated(&state, track, now)
            .into_iter()
            .map(|s| (key(&s), s))
            .collect();
        for signal in recorded {
            let k = key(&signal);
            if latest.get(&k).is_none_or(|g| g.at <= signal.at) {
                latest.insert(k, signal);
            }
        }
        Ok(latest)
    }
}

/// One result per probe and instance, listed in the order every health source uses.
type Key = ((u8, String), Option<String>);

fn key(s: &HealthSignal) -> Key {
    (probe_key(&s.probe), s.instance.clone())
}

/// The simulated probe results of `track` of the loaded service at `now`.
fn generated(state: &State, track: &Track, now: Timestamp) -> Vec<HealthSignal> {
    let key = TrackKey::new(state.config.service(), track);
    let Some(inc) = state.active(&key) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for inst in &inc.instances {
        let Some(s) = state.instance_state(&key, inc, inst, now) else {
            continue;
        };
        let signal = |probe, status, detail: Option<&String>| {
            let sig = HealthSignal::new(track.clone(), probe, status, now).with_instance(&inst.id);
            match detail {
                Some(d) => sig.with_detail(d.clone()),
                None => sig,
            }
        };
        out.push(signal(Probe::Readiness, s.readiness, s.detail.as_ref()));
        out.push(signal(Probe::Liveness, s.liveness, s.detail.as_ref()));
        let startup_fails = state.probe_failing(&key, &Probe::Startup, now);
        let startup = if s.started && !startup_fails {
            signal(Probe::Startup, ProbeStatus::Pass, None)
        } else {
            let why = if startup_fails {
                "startup probe failing".to_owned()
            } else {
                "still starting".to_owned()
            };
            signal(Probe::Startup, ProbeStatus::Fail, Some(&why))
        };
        out.push(startup);
    }
    for name in state.config.dependencies() {
        let probe = Probe::Dependency(name.clone());
        let sig = if state.probe_failing(&key, &probe, now) {
            HealthSignal::new(track.clone(), probe, ProbeStatus::Fail, now)
                .with_detail(format!("dependency `{name}` failing (scripted fault)"))
        } else {
            HealthSignal::new(track.clone(), probe, ProbeStatus::Pass, now)
        };
        out.push(sig);
    }
    out
}

#[async_trait]
impl HealthSource for SimHealth {
    fn name(&self) -> &str {
        NAME
    }

    async fn probe(&self, track: &Track, probe: &Probe) -> Result<Option<HealthSignal>> {
        let latest = self.latest(track).await?;
        Ok(worst_signal(latest.values().filter(|s| &s.probe == probe)).cloned())
    }

    async fn signals(&self, track: &Track) -> Result<Vec<HealthSignal>> {
        Ok(self.latest(track).await?.into_values().collect())
    }
}
