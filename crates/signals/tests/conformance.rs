//! The conformance suites run against the in-memory sources through the public API, directly and
//! behind `Arc`/`Box` trait objects, as every other backend's tests will run them.

use std::sync::Arc;

use serin_signals::testkit::{self, InMemoryFixture, InMemoryHealthFixture};
use serin_signals::{HealthSource, MetricsSource};

#[tokio::test]
async fn in_memory_source_conforms() {
    let fixture = InMemoryFixture::new();
    testkit::check_metrics_source_all(fixture.source().as_ref(), &fixture).await;
}

#[tokio::test]
async fn in_memory_source_conforms_behind_arc_and_box() {
    let fixture = InMemoryFixture::new();
    let shared: Arc<dyn MetricsSource> = Arc::clone(fixture.source()) as Arc<dyn MetricsSource>;
    testkit::check_metrics_source_all(&shared, &fixture).await;
    let boxed: Box<dyn MetricsSource> = Box::new(Arc::clone(fixture.source()));
    testkit::check_counts_per_track(&boxed, &fixture).await;
    testkit::check_range_steps(&boxed, &fixture).await;
}

#[tokio::test]
async fn in_memory_health_conforms() {
    let fixture = InMemoryHealthFixture::new();
    testkit::check_health_source_all(fixture.source().as_ref(), &fixture).await;
}

#[tokio::test]
async fn in_memory_health_conforms_behind_box() {
    let fixture = InMemoryHealthFixture::new();
    let boxed: Box<dyn HealthSource> = Box::new(Arc::clone(fixture.source()));
    testkit::check_health_source_all(&boxed, &fixture).await;
}
