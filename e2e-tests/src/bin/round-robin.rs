//! A round-robin TCP proxy for loopback benchmarks of several instances
//! ([`e2e_tests::proxy::RoundRobin`]): each accepted connection goes to the
//! next backend that takes it.
//!
//!   round-robin --listen 127.0.0.1:PORT 127.0.0.1:A 127.0.0.1:B [...]

use e2e_tests::proxy::RoundRobin;

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
    let proxy = RoundRobin::bind(&listen, backends.clone()).await?;
    println!("round-robin on {listen} to {}", backends.join(", "));
    proxy.run().await;
    Ok(())
}

fn usage() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, "usage: round-robin --listen ADDR BACKEND [BACKEND ...]")
}
