//! One HTTP GET on loopback, for readiness and health probes.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::http1;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Why `path` cannot be a probe's request target (it must start with `/` and be a valid
/// origin-form path, query allowed), or `None` if it can.
pub(crate) fn path_problem(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return Some("must start with '/'".to_owned());
    }
    path.parse::<hyper::Uri>()
        .err()
        .map(|e| format!("is not a valid HTTP request path: {e}"))
}

/// Whether a probe's answer passes: any status from 200 to 399, as the kubelet counts an HTTP
/// probe. A redirect passes without being followed: the instance answered, and a readiness path
/// that redirects (`/ready` to `/ready/`, to a login page) is a service that runs; the kubelet
/// follows a redirect only to the same host, and passes one to any other host as it is.
pub(crate) fn passes(status: StatusCode) -> bool {
    (200..400).contains(&status.as_u16())
}

/// `GET path` on `addr` on a fresh connection, with everything (connect included) bounded by
/// `timeout`. `Err` says why there was no status: refused, timed out, closed.
pub(crate) async fn get(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<StatusCode, String> {
    let exchange = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        let (mut sender, conn) = http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake with {addr}: {e}"))?;
        let conn = tokio::spawn(conn);
        let req = Request::get(path)
            .header(hyper::header::HOST, addr.to_string())
            .header(hyper::header::CONNECTION, "close")
            .body(Empty::new())
            .map_err(|e| format!("bad probe path `{path}`: {e}"))?;
        let res = sender
            .send_request(req)
            .await
            .map_err(|e| format!("GET {path} on {addr}: {e}"))?;
        conn.abort();
        Ok(res.status())
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "GET {path} on {addr}: no answer within {timeout:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_passes_from_200_to_399_as_the_kubelet_counts() {
        for code in [200, 204, 299, 300, 301, 302, 304, 307, 308, 399] {
            assert!(passes(StatusCode::from_u16(code).unwrap()), "{code}");
        }
        for code in [100, 101, 199, 400, 404, 429, 500, 503, 599] {
            assert!(!passes(StatusCode::from_u16(code).unwrap()), "{code}");
        }
    }
}
