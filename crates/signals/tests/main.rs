//! The crate's behaviour tests, one module per subject, built as a single test binary:
//! one link instead of one per file keeps a clean build small and quick.

#[cfg(feature = "testkit")]
mod conformance;
mod in_memory_sources;
mod outage;
#[cfg(all(feature = "prometheus", feature = "testkit"))]
mod prometheus;
mod sketch_accuracy;
