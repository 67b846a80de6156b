//! [`SimRouter`]: the world as a [`TrafficRouter`].

use async_trait::async_trait;
use serin_traffic::{Capabilities, Error, Result, TrafficRouter, TrafficSplit};

use crate::fault::Fault;
use crate::timeline::EventKind;
use crate::world::SimWorld;

/// The name the simulated router gives in messages and errors.
const NAME: &str = "sim";

/// The simulated world as a [`TrafficRouter`]: the split it applies divides the world's load
/// among the service's tracks from that virtual instant on.
///
/// Its capabilities are the config's ([`SimConfig::with_capabilities`](crate::SimConfig)); a
/// split that needs more is refused with `Unsupported`. A router-errors fault, or
/// [`SimWorld::fail_next_apply`], makes `apply` fail with `Backend`, changing nothing. A mirror
/// sends copies of its share of all requests to its track, which serves them and whose metrics
/// count them, as a shadow's do (copies that find no ready instance are dropped: no user waits
/// for them). Match routes and sticky sessions are accepted when claimed and read back, but no
/// simulated request carries the header or cookie a route matches, so the load follows the
/// weights.
#[derive(Debug, Clone)]
pub struct SimRouter {
    world: SimWorld,
    capabilities: Capabilities,
}

impl SimRouter {
    pub(crate) fn new(world: SimWorld) -> Self {
        let capabilities = world.lock().config.capabilities();
        SimRouter {
            world,
            capabilities,
        }
    }

    /// The world this router belongs to.
    pub fn world(&self) -> &SimWorld {
        &self.world
    }
}

#[async_trait]
impl TrafficRouter for SimRouter {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    async fn apply(&self, split: &TrafficSplit) -> Result<()> {
        let now = self.world.now();
        let mut state = self.world.lock();
        let injected = state.fail_next_apply.take().or_else(|| {
            state.active_fault(now, |f, since| match f {
                Fault::RouterErrors { span, message } if span.contains(since) => {
                    Some(message.clone())
                }
                _ => None,
            })
        });
        let outcome = match injected {
            Some(message) => Err(Error::Backend {
                router: NAME.to_owned(),
                message,
            }),
            None => self.capabilities.check(split, NAME),
        };
        if let Err(e) = outcome {
            state.push(
                now,
                EventKind::ApplyFailed {
                    split: split.clone(),
                    reason: e.to_string(),
                },
            );
            return Err(e);
        }
        let changed = state.set_split(now, split);
        state.push(
            now,
            EventKind::SplitApplied {
                split: split.clone(),
                changed,
            },
        );
        Ok(())
    }

    async fn current(&self) -> Result<Option<TrafficSplit>> {
        Ok(self.world.lock().current_split().cloned())
    }
}
