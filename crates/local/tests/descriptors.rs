//! A process out of file descriptors: the proxy's listeners rest between failed accepts instead
//! of spinning a core. In a test binary of its own, since it lowers the whole process's limit.

use std::fs::File;
use std::io::{Read, Write};
use std::time::Duration;

use nix::sys::resource::{Resource, UsageWho, getrlimit, getrusage, setrlimit};
use serin_local::{ProxyConfig, ProxyRouter};

/// CPU time the process has used so far, user and system.
fn cpu() -> Duration {
    let u = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    let t = |tv: nix::sys::time::TimeVal| {
        Duration::from_secs(u64::try_from(tv.tv_sec()).unwrap_or(0))
            + Duration::from_micros(u64::try_from(tv.tv_usec()).unwrap_or(0))
    };
    t(u.user_time()) + t(u.system_time())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_rest_while_the_process_is_out_of_file_descriptors() {
    let admin = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let router = ProxyRouter::bind(ProxyConfig::default().with_admin(admin))
        .await
        .expect("proxy");
    let listeners = [router.local_addr(), router.admin_addr().expect("admin")];

    // Every descriptor taken: the limit a little above what is open, then filled.
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("limit");
    let open = std::fs::read_dir("/proc/self/fd").expect("fds").count() as u64;
    setrlimit(Resource::RLIMIT_NOFILE, open + 32, hard).expect("lower the limit");
    let mut filler: Vec<File> = std::iter::from_fn(|| File::open("/dev/null").ok())
        .take(1_000)
        .collect();
    // One client per listener, each on a descriptor freed for it: its connection is queued by
    // the kernel, and every accept of it fails (EMFILE) until a descriptor comes free.
    let mut clients = Vec::new();
    for addr in listeners {
        filler.pop();
        clients.push(std::net::TcpStream::connect(addr).expect("queued connection"));
    }

    let before = cpu();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let used = cpu() - before;

    drop(filler);
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).expect("restore the limit");
    // With descriptors back, the queued connections are served.
    for client in &clients {
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
    }
    let admin_client = &mut clients[1];
    admin_client
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut answer = String::new();
    let _ = admin_client.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    router.shutdown();
    // A listener retrying at once would have kept a core busy for the whole half second.
    assert!(
        used < Duration::from_millis(150),
        "{used:?} of CPU in 500 ms while out of descriptors"
    );
}
