//! The platform conformance suite against the proxied platform over real processes: a retire
//! ends its drain once nothing is in flight at the proxy, and still lets a request in flight
//! finish before the processes stop.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serin_local::{ProcessConfig, ProcessPlatform, ProxiedPlatform, ProxyConfig, ProxyRouter};
use serin_orchestrator::testkit::{HeldRequest, PlatformFixture};
use serin_orchestrator::{Error, Platform, TrackSpec};
use serin_signals::Track;
use serin_traffic::{TrafficRouter, TrafficSplit};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The suite's fixture for the proxied platform: it holds a request in flight by asking the
/// demo service, through the proxy, for a delayed answer.
struct Proxied {
    platform: Arc<ProxiedPlatform>,
    router: ProxyRouter,
    template: TrackSpec,
}

fn failed(what: &str, e: impl std::fmt::Display) -> Error {
    Error::platform("test", format!("{what}: {e}"))
}

#[async_trait]
impl PlatformFixture for Proxied {
    fn template(&self) -> TrackSpec {
        self.template.clone()
    }

    fn ready_timeout(&self) -> Duration {
        Duration::from_secs(10)
    }

    /// The proxy sees every request in flight, so a retire of an idle track does not wait.
    fn waits_drain(&self) -> bool {
        false
    }

    async fn hold_request(
        &self,
        service: &str,
        track: &Track,
        lasting: Duration,
    ) -> serin_orchestrator::Result<Option<HeldRequest>> {
        // A status read gives the proxy the track's ready instances.
        let instances = self
            .platform
            .status(service, track)
            .await?
            .ready_addresses();
        let split = TrafficSplit::all_to(track.as_str(), &[]).map_err(|e| failed("split", e))?;
        self.router
            .apply(&split)
            .await
            .map_err(|e| failed("applying the split", e))?;
        let mut stream = tokio::net::TcpStream::connect(self.router.local_addr())
            .await
            .map_err(|e| failed("connecting to the proxy", e))?;
        let request = format!(
            "GET /delay/{} HTTP/1.1\r\nhost: {service}\r\nconnection: close\r\n\r\n",
            lasting.as_millis()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| failed("sending the request", e))?;
        while instances.iter().all(|a| self.router.in_flight(*a) == 0) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(Some(Box::pin(async move {
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer).await;
            answer.starts_with(b"HTTP/1.1 200")
        })))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxied_platform_passes_the_platform_suite() {
    let dir = support::scratch("proxied");
    // A grace period far shorter than the requests the suite holds: the demo service would
    // finish a request in flight on SIGTERM, so only a short grace shows whether the proxied
    // platform waited for it before it had the processes stopped.
    let config = ProcessConfig::new(dir.path())
        .with_grace(Duration::from_millis(10))
        .with_lock_dir(dir.path().join("locks"));
    let router = ProxyRouter::bind(ProxyConfig::default()).await.unwrap();
    let processes = ProcessPlatform::new(config).unwrap();
    let platform = Arc::new(ProxiedPlatform::new(processes, router.clone()));
    let fixture = Proxied {
        platform: Arc::clone(&platform),
        router: router.clone(),
        template: support::demo_spec("web", "1.0.0", Track::Stable, 1),
    };
    serin_orchestrator::testkit::check_all_with(&*platform, &fixture).await;
    assert!(platform.list().await.unwrap().is_empty());
    router.shutdown();
}
