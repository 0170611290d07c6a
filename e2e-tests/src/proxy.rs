//! A round-robin TCP proxy standing for the load balancer in front of
//! several instances of one party (loopback only). Each accepted connection
//! goes to the next backend in turn and is copied both ways until either
//! side closes; a backend that refuses the connection is skipped, as a load
//! balancer skips an instance that is down. At most 4,096 connections at once.
//!
//! For crash tests it can lose one answer on purpose
//! ([`RoundRobin::lose_answer_to`]): the request reaches its backend, which
//! does the work, and the client sees the connection close instead of the
//! reply — what a client sees when an instance dies between the two. Or it
//! can hold one answer back ([`RoundRobin::hold_answer_to`]), the client
//! left waiting, so that a test can kill the instance that sent the request
//! while it waits.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Semaphore};

/// How many bytes of one direction are kept to find a trap's marker that
/// straddles two reads.
const CARRY: usize = 512;

/// The proxy; it stops accepting when dropped.
pub struct RoundRobin {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accepting: tokio::task::JoinHandle<()>,
}

struct Shared {
    backends: Vec<String>,
    next: AtomicUsize,
    open: Arc<Semaphore>,
    trap: Mutex<Option<Trap>>,
}

/// A request to catch: the first one whose bytes contain `marker`.
struct Trap {
    marker: Vec<u8>,
    sprung: oneshot::Sender<usize>,
    /// The answer is held back (the client keeps waiting) rather than the connection closed.
    hold: bool,
}

impl RoundRobin {
    /// Listens on `listen` (e.g. `127.0.0.1:0`) in front of `backends` (`host:port`).
    pub async fn bind(listen: &str, backends: Vec<String>) -> std::io::Result<Self> {
        assert!(!backends.is_empty(), "a proxy needs at least one backend");
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            backends,
            next: AtomicUsize::new(0),
            open: Arc::new(Semaphore::new(4096)),
            trap: Mutex::new(None),
        });
        let accepting = tokio::spawn(accept(listener, shared.clone()));
        Ok(Self { addr, shared, accepting })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Arms a trap for the next request containing `marker` (checked as the
    /// bytes pass, so a marker in the body works too): it reaches its
    /// backend, the backend's answer is dropped and both connections are
    /// closed. Resolves to the index of that backend once its answer has
    /// started to come back, that is once it has done the work.
    pub fn lose_answer_to(&self, marker: &str) -> oneshot::Receiver<usize> {
        self.arm(marker, false)
    }

    /// As [`Self::lose_answer_to`], but the connection to the client stays
    /// open and silent until the client closes it: the client waits as for an
    /// instance that hangs.
    pub fn hold_answer_to(&self, marker: &str) -> oneshot::Receiver<usize> {
        self.arm(marker, true)
    }

    fn arm(&self, marker: &str, hold: bool) -> oneshot::Receiver<usize> {
        assert!(marker.len() <= CARRY, "a marker is at most {CARRY} bytes");
        let (sprung, caught) = oneshot::channel();
        *self.shared.trap.lock().unwrap() = Some(Trap { marker: marker.as_bytes().to_vec(), sprung, hold });
        caught
    }

    /// Serves until the process ends (for the `round-robin` binary).
    pub async fn run(mut self) {
        let _ = (&mut self.accepting).await;
    }
}

impl Drop for RoundRobin {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        let Ok(permit) = shared.open.clone().acquire_owned().await else { return };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = relay(&shared, client).await;
        });
    }
}

/// The next backend that takes the connection, starting with the one whose turn it is.
async fn connect(shared: &Shared) -> Option<(usize, TcpStream)> {
    let n = shared.backends.len();
    let first = shared.next.fetch_add(1, Ordering::Relaxed);
    for i in 0..n {
        let index = (first + i) % n;
        if let Ok(stream) = TcpStream::connect(&shared.backends[index]).await {
            return Some((index, stream));
        }
    }
    None
}

async fn relay(shared: &Shared, client: TcpStream) -> std::io::Result<()> {
    let Some((index, server)) = connect(shared).await else { return Ok(()) };
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    // Set when a request of this connection sprang the trap: its answer is lost (or held).
    let doomed: Mutex<Option<(oneshot::Sender<usize>, bool)>> = Mutex::new(None);
    // Told when the client closes its side (a held answer waits for that).
    let client_gone = tokio::sync::Notify::new();

    let up = async {
        let (mut buf, mut seen) = (vec![0u8; 16 * 1024], Vec::with_capacity(2 * CARRY));
        loop {
            let n = match from_client.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    client_gone.notify_one();
                    return to_server.shutdown().await;
                }
                Ok(n) => n,
            };
            let carried = seen.len();
            seen.extend_from_slice(&buf[..n]);
            spring(shared, &seen, carried, &doomed);
            let keep = seen.len().saturating_sub(CARRY);
            seen.drain(..keep);
            to_server.write_all(&buf[..n]).await?;
        }
    };
    let down = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = from_server.read(&mut buf).await?;
            if n == 0 {
                return to_client.shutdown().await;
            }
            let caught = doomed.lock().unwrap().take();
            if let Some((sprung, hold)) = caught {
                let _ = sprung.send(index);
                if hold {
                    client_gone.notified().await;
                }
                return Err(std::io::Error::other("answer lost on purpose"));
            }
            to_client.write_all(&buf[..n]).await?;
        }
    };
    // Either direction failing closes both connections (they drop here).
    tokio::try_join!(up, down).map(|_| ())
}

/// Takes the armed trap if `seen` holds its marker ending in the new bytes (after `carried`).
fn spring(shared: &Shared, seen: &[u8], carried: usize, doomed: &Mutex<Option<(oneshot::Sender<usize>, bool)>>) {
    let mut trap = shared.trap.lock().unwrap();
    let Some(armed) = trap.as_ref() else { return };
    let m = armed.marker.len();
    let hit = seen.windows(m).enumerate().any(|(at, w)| w == armed.marker.as_slice() && at + m > carried);
    if hit {
        *doomed.lock().unwrap() = trap.take().map(|t| (t.sprung, t.hold));
    }
}
