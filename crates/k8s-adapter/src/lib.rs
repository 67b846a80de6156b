//! # serin-k8s-adapter
//!
//! The Kubernetes adapter, built on kube-rs: one Deployment per track, Service-selector switches,
//! and Gateway API / Istio / SMI / NGINX traffic routers, with readiness taken from the API.
//!
//! This crate is not yet implemented: it exposes no API so far.
