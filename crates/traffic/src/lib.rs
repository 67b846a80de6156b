//! # serin-traffic
//!
//! Where traffic goes during a deployment, and how it moves:
//!
//! - [`TrafficSplit`]: weights over named backends (tracks such as `stable`, `canary`, `blue`,
//!   `green`) that always add up to exactly 100%, with optional header/cookie [`MatchRoute`]s,
//!   a [`Mirror`] to a shadow backend and [`StickySession`]s. Valid by construction.
//! - [`TrafficRouter`]: the async trait every router implements — apply a split (atomic and
//!   idempotent), read back the split in force, state its [`Capabilities`] and refuse a split
//!   that needs more ([`Error::Unsupported`]). [`InMemoryRouter`] is always compiled; the
//!   `testkit` feature holds the conformance suite every router's tests run.
//! - [`Strategy`] ([`Immediate`](Strategy::Immediate), [`Gradual`](Strategy::Gradual),
//!   [`Weighted`](Strategy::Weighted)) and [`Plan`]: the ordered steps from the current split to
//!   the target, with holds and approval pauses, printable as a dry-run table, serializable, and
//!   reversible ([`Plan::rollback`]). [`PlanCursor`] says which step is due given `now`.
//!
//! ## The unit
//!
//! A [`Weight`] is a whole number of **basis points**: 10 000 = 100%, 1 = 0.01%. Integers keep
//! every split summing to exactly 100% at every step — no rounding drift between what a plan
//! says and what a router reads back. Percent helpers ([`Weight::from_percent`],
//! [`TrafficSplit::from_percents`]) cover the usual whole percentages, and the serialized form is
//! the percentage (`10`, `12.5`), as the brief writes it.
//!
//! ## Why plans are pure
//!
//! Building a plan reads no clock, sleeps never and touches no router. The same plan can be
//! printed for a dry run, written to a journal before anything is applied, replayed after a crash,
//! property-tested without a runtime, and executed step by step by the orchestrator, which alone
//! waits (with `tokio::time`) and calls [`TrafficRouter::apply`]. Its rollback is a value too:
//! one step back to the starting split's weights (without the deployment's match routes and
//! mirror, which a rolled-back version must no longer receive).
//!
//! ```
//! use std::time::Duration;
//! use serin_traffic::{InMemoryRouter, Plan, Strategy, TrafficRouter, TrafficSplit, Weight};
//!
//! # fn block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     let waker = std::task::Waker::noop();
//! #     let mut cx = std::task::Context::from_waker(waker);
//! #     let mut f = std::pin::pin!(f);
//! #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
//! # }
//! # block_on(async {
//! let stable = TrafficSplit::from_percents([("stable", 100), ("canary", 0)])?;
//! let strategy = Strategy::gradual(Weight::from_percent(10)?, Duration::from_secs(30))?;
//! let plan = Plan::shift(&stable, "canary", &strategy)?;
//! println!("{plan}"); // the dry run
//!
//! let router = InMemoryRouter::new();
//! router.apply(&stable).await?;
//! for step in plan.steps().iter().take(3) {
//!     router.apply(step.split()).await?; // an executor would now hold for step.hold()
//! }
//! assert_eq!(router.current().await?.and_then(|s| s.weight_of("canary")), Some(Weight::from_percent(30)?));
//!
//! // Something went wrong at 30%: back to the stable split, exactly.
//! router.apply(plan.rollback_from(2)?.target()).await?;
//! assert_eq!(router.current().await?, Some(stable));
//! # Ok::<(), serin_traffic::Error>(())
//! # })?;
//! # Ok::<(), serin_traffic::Error>(())
//! ```

mod capabilities;
mod cursor;
mod duration;
mod error;
mod fingerprint;
mod memory;
mod name;
mod plan;
mod router;
mod routes;
mod split;
mod strategy;
#[cfg(any(feature = "testkit", test))]
pub mod testkit;
mod weight;

pub use capabilities::{Capabilities, Capability};
pub use cursor::{Next, PlanCursor};
pub use error::{Error, Result};
pub use memory::InMemoryRouter;
pub use name::BackendName;
pub use plan::{Plan, PlanStep};
pub use router::TrafficRouter;
pub use routes::{MatchOn, MatchRoute, Mirror, StickySession, ValueMatch};
pub use split::{BackendWeight, TrafficSplit};
pub use strategy::{Pause, Strategy, WeightedStep};
pub use weight::Weight;
