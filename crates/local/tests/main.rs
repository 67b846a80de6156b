//! The crate's behaviour tests, one module per subject, built as a single test binary:
//! one link instead of one per file keeps a clean build small and quick.

mod support;

mod background_periods;
mod conformance;
mod demo_stop;
mod faults;
mod health_refresh;
mod http_health_status;
mod metrics_windows;
mod mirror;
mod probes;
mod proxied_conformance;
mod proxy_clients;
mod proxy_framing;
mod proxy_http;
mod proxy_limits;
mod proxy_shutdown;
mod proxy_sticky;
mod reaping;
mod scale;
mod switching;
