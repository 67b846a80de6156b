//! The conformance suites run against the in-memory sources through the public API, directly and
//! behind `Arc`/`Box` trait objects, as every other backend's tests will run them.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serin_signals::testkit::{self, HealthFixture, InMemoryFixture, InMemoryHealthFixture};
use serin_signals::{
    HealthSignal, HealthSource, MetricsSource, Probe, ProbeStatus, Result, Track, probe_key,
    worst_signal,
};

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

/// How a health store breaks the contract.
#[derive(Clone, Copy, PartialEq)]
enum Flaw {
    /// Keeps the last result recorded for each probe and instance, whatever its time.
    LastRecordedWins,
    /// Lists signals newest probe first.
    Unordered,
    /// Summarises a probe by its newest instance result rather than its worst.
    NewestInstanceWins,
    /// Ranks an unknown result as worse than a failed one.
    UnknownOutranksFail,
    /// Summarises instances failing alike by the oldest result.
    OldestOnTie,
    /// Reports results without the instance they are of.
    Nameless,
}

/// A store of probe results with one flaw.
struct Store {
    flaw: Flaw,
    held: Mutex<Vec<HealthSignal>>,
    tracks: Mutex<u32>,
}

impl Store {
    fn new(flaw: Flaw) -> Self {
        Store {
            flaw,
            held: Mutex::new(Vec::new()),
            tracks: Mutex::new(0),
        }
    }
}

#[async_trait]
impl HealthSource for Store {
    fn name(&self) -> &str {
        "store"
    }

    async fn probe(&self, track: &Track, probe: &Probe) -> Result<Option<HealthSignal>> {
        let all = self.signals(track).await?;
        let results = all.iter().filter(|s| &s.probe == probe);
        if self.flaw == Flaw::NewestInstanceWins {
            return Ok(results.max_by_key(|s| s.at).cloned());
        }
        if self.flaw == Flaw::UnknownOutranksFail {
            let rank = |status| match status {
                ProbeStatus::Pass => 0,
                ProbeStatus::Fail => 1,
                ProbeStatus::Unknown => 2,
            };
            return Ok(results.max_by_key(|s| (rank(s.status), s.at)).cloned());
        }
        if self.flaw == Flaw::OldestOnTie {
            let rank = |status| match status {
                ProbeStatus::Pass => 0,
                ProbeStatus::Unknown => 1,
                ProbeStatus::Fail => 2,
            };
            return Ok(results
                .max_by_key(|s| (rank(s.status), std::cmp::Reverse(s.at)))
                .cloned());
        }
        Ok(worst_signal(results).cloned())
    }

    async fn signals(&self, track: &Track) -> Result<Vec<HealthSignal>> {
        track.validate("track")?;
        let mut out = self.held.lock().unwrap().clone();
        out.retain(|s| &s.track == track);
        out.sort_by_key(|s| (probe_key(&s.probe), s.instance.clone()));
        if self.flaw == Flaw::Unordered {
            out.reverse();
        }
        if self.flaw == Flaw::Nameless {
            out.iter_mut().for_each(|s| s.instance = None);
        }
        Ok(out)
    }
}

#[async_trait]
impl HealthFixture for Store {
    async fn arrange(&self, signal: HealthSignal) -> Result<()> {
        let mut held = self.held.lock().unwrap();
        let same = |s: &HealthSignal| {
            s.track == signal.track && s.probe == signal.probe && s.instance == signal.instance
        };
        let newer_held = held.iter().any(|s| same(s) && s.at > signal.at);
        if self.flaw == Flaw::LastRecordedWins || !newer_held {
            held.retain(|s| !same(s));
            held.push(signal);
        }
        Ok(())
    }

    fn fresh_track(&self, purpose: &str) -> Track {
        let mut n = self.tracks.lock().unwrap();
        *n += 1;
        Track::named(&format!("tk-{purpose}-{n}")).unwrap()
    }
}

#[tokio::test]
#[should_panic(expected = "arranged after one of 2000 ms must not replace it")]
async fn a_store_where_a_late_older_result_wins_fails_the_suite() {
    let store = Store::new(Flaw::LastRecordedWins);
    testkit::check_health_source_all(&store, &store).await;
}

#[tokio::test]
#[should_panic(expected = "readiness must report the worst instance")]
async fn a_store_where_the_newest_instance_hides_a_worse_one_fails_the_suite() {
    let store = Store::new(Flaw::NewestInstanceWins);
    testkit::check_health_source_all(&store, &store).await;
}

#[tokio::test]
#[should_panic(expected = "signals must be ordered by probe")]
async fn a_store_that_lists_signals_out_of_order_fails_the_suite() {
    let store = Store::new(Flaw::Unordered);
    testkit::check_health_source_all(&store, &store).await;
}

#[tokio::test]
#[should_panic(expected = "a failing instance must outrank an unknown one")]
async fn a_store_where_an_unknown_instance_hides_a_failing_one_fails_the_suite() {
    let store = Store::new(Flaw::UnknownOutranksFail);
    testkit::check_health_source_all(&store, &store).await;
}

#[tokio::test]
#[should_panic(expected = "the most recent result must win")]
async fn a_store_where_the_oldest_of_a_tie_wins_fails_the_suite() {
    let store = Store::new(Flaw::OldestOnTie);
    testkit::check_health_source_all(&store, &store).await;
}

#[tokio::test]
#[should_panic(expected = "with its instance")]
async fn a_store_that_drops_the_instance_fails_the_suite() {
    let store = Store::new(Flaw::Nameless);
    testkit::check_health_source_all(&store, &store).await;
}
