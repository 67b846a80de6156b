//! [`InMemoryRouter`]: a [`TrafficRouter`] that only remembers, for tests, examples and dry runs.

use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::capabilities::Capabilities;
use crate::error::{Error, Result};
use crate::router::TrafficRouter;
use crate::split::TrafficSplit;

/// A router that keeps the split in memory and records every change.
///
/// Its [`Capabilities`] are configurable, so a test can model a weights-only load balancer or an
/// all-or-nothing Service switch and see the refusals a real one would give. It needs no async
/// runtime to be built or inspected, and [`fail_next_apply`](InMemoryRouter::fail_next_apply)
/// injects a router-side failure.
///
/// ```
/// use serin_traffic::{InMemoryRouter, TrafficRouter, TrafficSplit};
///
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let waker = std::task::Waker::noop();
/// #     let mut cx = std::task::Context::from_waker(waker);
/// #     let mut f = std::pin::pin!(f);
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
/// # }
/// let router = InMemoryRouter::new();
/// let split = TrafficSplit::from_percents([("stable", 90), ("canary", 10)])?;
/// block_on(router.apply(&split))?;
/// block_on(router.apply(&split))?; // idempotent: recorded once
/// assert_eq!(block_on(router.current())?, Some(split.clone()));
/// assert_eq!(router.history(), vec![split]);
/// # Ok::<(), serin_traffic::Error>(())
/// ```
#[derive(Debug)]
pub struct InMemoryRouter {
    name: String,
    capabilities: Capabilities,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    history: Vec<TrafficSplit>,
    fail_next: Option<String>,
    applies: usize,
}

impl InMemoryRouter {
    /// A router named `in-memory` with [`Capabilities::full`].
    pub fn new() -> Self {
        Self::with_capabilities(Capabilities::full())
    }

    /// A router named `in-memory` with the given capabilities.
    pub fn with_capabilities(capabilities: Capabilities) -> Self {
        InMemoryRouter {
            name: "in-memory".to_owned(),
            capabilities,
            state: Mutex::new(State::default()),
        }
    }

    /// The same router under another name (as errors will show it).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Every split that changed what was in force, oldest first. Re-applying the split in force
    /// is not recorded (it changes nothing).
    pub fn history(&self) -> Vec<TrafficSplit> {
        self.lock().history.clone()
    }

    /// How many `apply` calls succeeded, re-applications included.
    pub fn apply_count(&self) -> usize {
        self.lock().applies
    }

    /// Makes the next `apply` fail with [`Error::Backend`] carrying `message`, changing nothing —
    /// to test how callers handle a router outage.
    pub fn fail_next_apply(&self, message: impl Into<String>) {
        self.lock().fail_next = Some(message.into());
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave `State` half-updated (every update is a
        // single push or assignment), so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Default for InMemoryRouter {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl TrafficRouter for InMemoryRouter {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    async fn apply(&self, split: &TrafficSplit) -> Result<()> {
        let mut state = self.lock();
        if let Some(message) = state.fail_next.take() {
            return Err(Error::Backend {
                router: self.name.clone(),
                message,
            });
        }
        self.capabilities.check(split, &self.name)?;
        if state.history.last() != Some(split) {
            state.history.push(split.clone());
        }
        state.applies += 1;
        Ok(())
    }

    async fn current(&self) -> Result<Option<TrafficSplit>> {
        Ok(self.lock().history.last().cloned())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::capabilities::Capability;
    use crate::testkit;
    use crate::weight::Weight;

    #[tokio::test]
    async fn conformance_full() {
        testkit::check_all(&InMemoryRouter::new()).await;
    }

    #[tokio::test]
    async fn conformance_reduced_capabilities() {
        let whole_percent = Capabilities::weights_only()
            .with_weight_granularity(Weight::from_percent(1).unwrap())
            .unwrap();
        for caps in [
            Capabilities::weights_only(),
            Capabilities::switch_only(),
            whole_percent,
            whole_percent.with_header_routing(true),
            Capabilities::full()
                .with_mirroring(false)
                .with_cookie_routing(false),
            Capabilities::full().with_sticky_sessions(false),
        ] {
            testkit::check_all(&InMemoryRouter::with_capabilities(caps)).await;
        }
    }

    #[tokio::test]
    async fn conformance_through_arc_and_box() {
        let arc = Arc::new(InMemoryRouter::with_capabilities(
            Capabilities::weights_only(),
        ));
        testkit::check_all(&arc).await;
        let dyn_arc: Arc<dyn TrafficRouter> = arc.clone();
        testkit::check_all(&dyn_arc).await;
        let boxed: Box<dyn TrafficRouter> = Box::new(InMemoryRouter::new().named("boxed"));
        testkit::check_all(&boxed).await;
        assert_eq!(boxed.name(), "boxed");
        let box_of_arc = Box::new(arc.clone());
        testkit::check_all(&box_of_arc).await;
        assert!(!arc.history().is_empty());
    }

    #[tokio::test]
    async fn history_records_changes_only_and_failures_change_nothing() {
        let router = InMemoryRouter::new();
        assert_eq!(router.current().await.unwrap(), None);
        let a = TrafficSplit::from_percents([("stable", 100), ("canary", 0)]).unwrap();
        let b = TrafficSplit::from_percents([("stable", 90), ("canary", 10)]).unwrap();
        router.apply(&a).await.unwrap();
        router.apply(&a).await.unwrap();
        router.apply(&b).await.unwrap();
        router.fail_next_apply("connection refused");
        let e = router.apply(&a).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "router `in-memory` failed: connection refused"
        );
        assert_eq!(router.current().await.unwrap(), Some(b.clone()));
        router.apply(&a).await.unwrap();
        assert_eq!(router.history(), vec![a.clone(), b, a]);
        assert_eq!(router.apply_count(), 4);
    }

    #[tokio::test]
    async fn refusal_names_router_and_capability() {
        let router = InMemoryRouter::with_capabilities(Capabilities::switch_only()).named("svc");
        let b = TrafficSplit::from_percents([("stable", 90), ("canary", 10)]).unwrap();
        match router.apply(&b).await {
            Err(Error::Unsupported {
                capability,
                router: name,
                reason,
            }) => {
                assert_eq!(capability, Capability::WeightGranularity);
                assert_eq!(name, "svc");
                assert!(reason.contains("stable"), "{reason}");
            }
            other => panic!("expected Unsupported, got {other:?}"),
        }
        assert!(router.history().is_empty());
    }

    #[test]
    fn builds_without_a_runtime() {
        let router = InMemoryRouter::default();
        assert_eq!(router.capabilities(), Capabilities::full());
        assert!(router.history().is_empty());
    }
}
