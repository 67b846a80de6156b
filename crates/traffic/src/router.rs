//! The [`TrafficRouter`] trait: what every router (in-memory, embedded proxy, simulated fleet,
//! Kubernetes Service / Gateway API / Istio) offers the orchestrator.

use std::sync::Arc;

use async_trait::async_trait;

use crate::capabilities::Capabilities;
use crate::error::Result;
use crate::split::TrafficSplit;

/// Something that routes traffic to backends by a [`TrafficSplit`].
///
/// The contract, checked by the conformance suite in `testkit` (feature `testkit`):
/// - [`apply`](TrafficRouter::apply) is **atomic**: on success the whole split is in force; on
///   any error nothing changed and [`current`](TrafficRouter::current) still reads the previous
///   split. It is **idempotent**: applying the split in force again succeeds and changes nothing.
/// - A split that needs something the router cannot do (see
///   [`capabilities`](TrafficRouter::capabilities)) is refused with
///   [`Error::Unsupported`](crate::Error::Unsupported) before anything changes; a router never
///   approximates (rounding weights, dropping a route) silently.
/// - [`current`](TrafficRouter::current) reads back exactly the split last applied, or `None`
///   if none has been applied yet.
/// - Router-side failures (an API error, a failed reload) are
///   [`Error::Backend`](crate::Error::Backend).
///
/// The trait is object-safe (`&dyn TrafficRouter`, `Arc<dyn TrafficRouter>`) and implemented
/// for `Arc<T>` and `Box<T>` by forwarding.
#[async_trait]
pub trait TrafficRouter: Send + Sync {
    /// A short name for messages and errors (`in-memory`, `gateway-api/web`).
    fn name(&self) -> &str;

    /// What this router can do. Stable over the router's life.
    fn capabilities(&self) -> Capabilities;

    /// Puts `split` in force, all of it or nothing.
    async fn apply(&self, split: &TrafficSplit) -> Result<()>;

    /// The split in force, or `None` if none has been applied yet.
    async fn current(&self) -> Result<Option<TrafficSplit>>;
}

#[async_trait]
impl<T: TrafficRouter + ?Sized> TrafficRouter for Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }

    async fn apply(&self, split: &TrafficSplit) -> Result<()> {
        (**self).apply(split).await
    }

    async fn current(&self) -> Result<Option<TrafficSplit>> {
        (**self).current().await
    }
}

#[async_trait]
impl<T: TrafficRouter + ?Sized> TrafficRouter for Box<T> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }

    async fn apply(&self, split: &TrafficSplit) -> Result<()> {
        (**self).apply(split).await
    }

    async fn current(&self) -> Result<Option<TrafficSplit>> {
        (**self).current().await
    }
}
