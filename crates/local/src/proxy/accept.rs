//! Where a worker's client connections come from, and the worker threads themselves.
//!
//! With worker threads, the first worker accepts every connection and deals them out in turn
//! (itself included), so the workers share the clients evenly: with copies of one listener in
//! every worker, whichever wakes first takes a burst of new connections and one thread ends up
//! serving most of them. A connection handed over costs one wake-up of its worker, once; its
//! requests are then served on that worker alone.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use super::{Shared, serve, upstream};

/// A source of client connections for one worker.
pub(super) enum Conns {
    /// Accepts from the listener, keeps every `peers.len() + 1`-th connection and hands the
    /// others to the peers in turn.
    Listen {
        listener: TcpListener,
        peers: Vec<mpsc::UnboundedSender<std::net::TcpStream>>,
        turn: usize,
    },
    /// Connections handed over by the accepting worker.
    Handed(mpsc::UnboundedReceiver<std::net::TcpStream>),
}

/// How long a listener rests after a failed accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// The next connection of `listener`, or `None` after a failed accept and a short rest: when
/// the process is out of file descriptors (EMFILE) the kernel keeps the connection queued and
/// every accept fails again at once, so retrying without a pause would spin a core.
pub(super) async fn accept(listener: &TcpListener) -> Option<TcpStream> {
    match listener.accept().await {
        Ok((stream, _)) => Some(stream),
        Err(e) => {
            tracing::warn!(error = %e, "accept failed");
            tokio::time::sleep(ACCEPT_BACKOFF).await;
            None
        }
    }
}

impl Conns {
    /// Everything from `listener`.
    pub(super) fn listen(listener: TcpListener) -> Self {
        Conns::Listen {
            listener,
            peers: Vec::new(),
            turn: 0,
        }
    }

    /// The next connection this worker serves; `None` once no more can come. Cancel-safe: a
    /// connection is accepted or received only when this returns it or hands it on.
    pub(super) async fn next(&mut self) -> Option<TcpStream> {
        match self {
            Conns::Listen {
                listener,
                peers,
                turn,
            } => loop {
                let Some(stream) = accept(listener).await else {
                    continue;
                };
                *turn = (*turn + 1) % (peers.len() + 1);
                let Some(peer) = turn.checked_sub(1).and_then(|i| peers.get(i)) else {
                    return Some(stream);
                };
                let std = match stream.into_std() {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(error = %e, "accepted connection lost");
                        continue;
                    }
                };
                // A peer that has stopped cannot take it: serve it here.
                if let Err(back) = peer.send(std) {
                    match TcpStream::from_std(back.0) {
                        Ok(s) => return Some(s),
                        Err(e) => tracing::debug!(error = %e, "accepted connection lost"),
                    }
                }
            },
            Conns::Handed(rx) => loop {
                let std = rx.recv().await?;
                match TcpStream::from_std(std) {
                    Ok(s) => return Some(s),
                    Err(e) => tracing::debug!(error = %e, "handed connection lost"),
                }
            },
        }
    }
}

/// Starts `workers` threads, each serving its share of `listener`'s connections on a runtime
/// of its own until `stopped`.
pub(super) fn spawn_workers(
    listener: TcpListener,
    workers: u16,
    shared: &Arc<Shared>,
    stopped: &watch::Receiver<bool>,
    serving: &watch::Receiver<()>,
) -> Result<(), String> {
    // The listener is registered with the caller's runtime: move it to the first worker's.
    let listener = listener.into_std().map_err(|e| e.to_string())?;
    let mut peers = Vec::new();
    let mut sources = Vec::new();
    for _ in 1..workers {
        let (tx, rx) = mpsc::unbounded_channel();
        peers.push(tx);
        sources.push(Conns::Handed(rx));
    }
    let mut first = Some((listener, peers));
    for index in 0..workers {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("worker runtime: {e}"))?;
        let handed = if index == 0 { None } else { sources.pop() };
        let listen = if index == 0 { first.take() } else { None };
        let (shared, stopped, serving) = (shared.clone(), stopped.clone(), serving.clone());
        std::thread::Builder::new()
            .name(format!("serin-proxy-{index}"))
            .spawn(move || {
                upstream::set_worker(usize::from(index));
                runtime.block_on(async move {
                    let conns = match (listen, handed) {
                        (Some((l, peers)), _) => match TcpListener::from_std(l) {
                            Ok(listener) => Conns::Listen {
                                listener,
                                peers,
                                turn: 0,
                            },
                            Err(e) => {
                                tracing::warn!(error = %e, "proxy worker cannot listen");
                                return;
                            }
                        },
                        (None, Some(rx)) => rx,
                        (None, None) => return,
                    };
                    serve(conns, shared, stopped, serving).await;
                });
            })
            .map_err(|e| format!("worker thread: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_are_dealt_in_turn_and_kept_when_a_peer_is_gone() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut conns = Conns::Listen {
            listener,
            peers: vec![tx],
            turn: 0,
        };
        let mut clients = Vec::new();
        for _ in 0..4 {
            clients.push(TcpStream::connect(addr).await.unwrap());
        }
        // Four accepted: the peer gets the first and third, this worker the second and fourth.
        let kept = [conns.next().await.unwrap(), conns.next().await.unwrap()];
        assert_ne!(kept[0].peer_addr().unwrap(), kept[1].peer_addr().unwrap());
        let mut handed = 0;
        while rx.try_recv().is_ok() {
            handed += 1;
        }
        assert_eq!(handed, 2);
        // With the peer gone, its turn is served here.
        drop(rx);
        clients.push(TcpStream::connect(addr).await.unwrap());
        clients.push(TcpStream::connect(addr).await.unwrap());
        let a = conns.next().await.unwrap();
        let b = conns.next().await.unwrap();
        assert_ne!(a.peer_addr().unwrap(), b.peer_addr().unwrap());
    }

    #[tokio::test]
    async fn handed_connections_arrive_and_the_source_ends_with_its_sender() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let mut conns = Conns::Handed(rx);
        let _client = TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        tx.send(accepted.into_std().unwrap()).unwrap();
        assert!(conns.next().await.is_some());
        drop(tx);
        assert!(conns.next().await.is_none());
    }
}
