//! A round-robin TCP proxy for loopback benchmarks and tests of several
//! instances: each accepted connection goes to the next backend in turn and
//! is copied both ways until either side closes. At most 4,096 connections
//! at once; a backend that refuses the connection gets the client's
//! connection closed.
//!
//!   round-robin --listen 127.0.0.1:PORT 127.0.0.1:A 127.0.0.1:B [...]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(flag), Some(listen)) = (args.next(), args.next()) else {
        return Err(usage());
    };
    let backends: Vec<String> = args.collect();
    if flag != "--listen" || backends.is_empty() {
        return Err(usage());
    }
    let listener = TcpListener::bind(&listen).await?;
    println!("round-robin on {listen} to {}", backends.join(", "));
    let (backends, next, open) = (Arc::new(backends), Arc::new(AtomicUsize::new(0)), Arc::new(Semaphore::new(4096)));
    loop {
        let (client, _) = listener.accept().await?;
        let Ok(permit) = open.clone().acquire_owned().await else { continue };
        let backend = backends[next.fetch_add(1, Ordering::Relaxed) % backends.len()].clone();
        tokio::spawn(async move {
            let _permit = permit;
            let (mut client, Ok(mut server)) = (client, TcpStream::connect(&backend).await) else { return };
            let _ = (client.set_nodelay(true), server.set_nodelay(true));
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        });
    }
}

fn usage() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, "usage: round-robin --listen ADDR BACKEND [BACKEND ...]")
}
