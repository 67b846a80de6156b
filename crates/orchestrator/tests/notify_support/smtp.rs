//! A scripted SMTP server on loopback that counts connections, messages and `QUIT`s, for the
//! e-mail channel's tests that need more control than a real server gives (a server that never
//! greets, one that hangs up after each message, one without STARTTLS, one that takes a login
//! in clear text). Every mode refuses recipients whose local part starts with `gone` (550, as
//! a mailbox that no longer exists) and defers those starting with `busy` (450).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// How the server behaves on each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpMode {
    /// Greets and accepts every message, as long as the client stays.
    Serve,
    /// Accepts the connection and never says a word.
    Silent,
    /// Accepts one message, then hangs up without a word (as a server whose idle timeout ran
    /// out between messages).
    HangUpAfterEachMessage,
    /// As `Serve`, and offers a login (`AUTH PLAIN LOGIN`) without STARTTLS: what a client
    /// sees when an attacker strips the STARTTLS offer.
    ServeWithLogin,
}

#[derive(Debug, Default)]
struct Seen {
    connections: usize,
    messages: Vec<String>,
    quits: usize,
    /// The `AUTH` commands received.
    logins: Vec<String>,
    /// The recipients of each message, as the transaction's accepted `RCPT TO`s.
    recipients: Vec<Vec<String>>,
}

/// The server and what it saw.
#[derive(Clone)]
pub struct FakeSmtp {
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
}

impl FakeSmtp {
    pub async fn start(mode: SmtpMode) -> FakeSmtp {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let state = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                state.lock().expect("seen").connections += 1;
                tokio::spawn(session(stream, mode, Arc::clone(&state)));
            }
        });
        FakeSmtp { addr, seen }
    }

    pub fn host(&self) -> String {
        self.addr.ip().to_string()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn connections(&self) -> usize {
        self.seen.lock().expect("seen").connections
    }

    pub fn messages(&self) -> Vec<String> {
        self.seen.lock().expect("seen").messages.clone()
    }

    pub fn quits(&self) -> usize {
        self.seen.lock().expect("seen").quits
    }

    pub fn logins(&self) -> Vec<String> {
        self.seen.lock().expect("seen").logins.clone()
    }

    /// The accepted recipients of each message, in the order the messages came.
    pub fn recipients(&self) -> Vec<Vec<String>> {
        self.seen.lock().expect("seen").recipients.clone()
    }

    /// Waits (up to 5 s of real time) until `done` holds.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&FakeSmtp) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !done(self) {
            assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn session(stream: TcpStream, mode: SmtpMode, seen: Arc<Mutex<Seen>>) {
    if mode == SmtpMode::Silent {
        let _hold = stream;
        return std::future::pending::<()>().await;
    }
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    if write.write_all(b"220 fake ESMTP\r\n").await.is_err() {
        return;
    }
    let mut rcpts = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        let verb = line
            .split(' ')
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            // No STARTTLS: a client that requires it must refuse this server.
            "EHLO" if mode == SmtpMode::ServeWithLogin => {
                b"250-fake\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n250 SMTPUTF8\r\n"
            }
            "EHLO" => b"250-fake\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
            "AUTH" => {
                seen.lock().expect("seen").logins.push(line.clone());
                b"235 2.7.0 accepted\r\n"
            }
            "RCPT" => {
                let to = line
                    .split_once('<')
                    .and_then(|(_, rest)| rest.split_once('>'))
                    .map(|(addr, _)| addr.to_owned())
                    .unwrap_or_default();
                if to.starts_with("gone") {
                    b"550 5.1.1 no such mailbox\r\n"
                } else if to.starts_with("busy") {
                    b"450 4.2.1 mailbox busy, try later\r\n"
                } else {
                    rcpts.push(to);
                    b"250 OK\r\n"
                }
            }
            "MAIL" | "RSET" => {
                rcpts.clear();
                b"250 OK\r\n"
            }
            "HELO" | "NOOP" => b"250 OK\r\n",
            "QUIT" => {
                seen.lock().expect("seen").quits += 1;
                let _ = write.write_all(b"221 bye\r\n").await;
                return;
            }
            "DATA" => {
                if write.write_all(b"354 go ahead\r\n").await.is_err() {
                    return;
                }
                let mut text = String::new();
                loop {
                    match lines.next_line().await {
                        Ok(Some(l)) if l == "." => break,
                        Ok(Some(l)) => {
                            // Undo the client's dot-stuffing.
                            let unstuffed = if l.starts_with("..") { &l[1..] } else { &l[..] };
                            text.push_str(unstuffed);
                            text.push('\n');
                        }
                        _ => return,
                    }
                }
                {
                    let mut seen = seen.lock().expect("seen");
                    seen.messages.push(text);
                    seen.recipients.push(std::mem::take(&mut rcpts));
                }
                if write.write_all(b"250 queued\r\n").await.is_err() {
                    return;
                }
                if mode == SmtpMode::HangUpAfterEachMessage {
                    return;
                }
                continue;
            }
            _ => b"502 not implemented\r\n",
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}
