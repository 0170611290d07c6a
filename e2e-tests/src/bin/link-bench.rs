//! Whole reciprocal links per second over HTTP, many users at once, and the
//! latency of the server-side reciprocal part (legs F–G of docs/protocol.md:
//! A mints the code and pushes it; B checks the token, redeems the code
//! at A and stores A's tokens), timed as the user's `POST /link/reciprocal`.
//!
//! ```text
//! link-bench <party A URL> <party B URL> [users=200] [concurrency=16]
//! ```

use std::time::{Duration, Instant};

use e2e_tests::walk::{browser, data_page, follow, input_value, link_until_reciprocal, sign_up};
use futures_util::stream::{self, StreamExt};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (a, b) = match (args.get(1), args.get(2)) {
        (Some(a), Some(b)) => (a.clone(), b.clone()),
        _ => {
            eprintln!("usage: link-bench <party A URL> <party B URL> [users] [concurrency]");
            std::process::exit(2);
        }
    };
    let users: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(200);
    let concurrency: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(16);
    let run = std::process::id();

    // Accounts first (argon2 is deliberately slow and not part of a link).
    let people: Vec<(String, reqwest::Client)> = stream::iter(0..users)
        .map(|i| {
            let (a, b) = (a.clone(), b.clone());
            async move {
                let name = format!("bench{run}x{i}");
                let user = browser();
                sign_up(&user, &a, &name, "bench-password").await;
                sign_up(&user, &b, &name, "bench-password").await;
                (name, user)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;

    let started = Instant::now();
    let timings: Vec<(Duration, Duration)> = stream::iter(people)
        .map(|(name, user)| {
            let (a, b) = (a.clone(), b.clone());
            async move {
                let t0 = Instant::now();
                let (_, consent) = link_until_reciprocal(&user, &a, &b, &name, "bench-password").await;
                assert_eq!(data_page(&consent).as_deref(), Some("reciprocal-consent"), "{consent}");
                let form = [
                    ("csrf_token", input_value(&consent, "csrf_token").unwrap()),
                    ("flow", input_value(&consent, "flow").unwrap()),
                    ("decision", "approve".to_owned()),
                ];
                let t1 = Instant::now();
                let res = user.post(format!("{a}/link/reciprocal")).form(&form).send().await.unwrap();
                let t2 = Instant::now();
                let (_, outcome) = follow(&user, res).await;
                assert!(outcome.contains("data-flow-step=\"done\""), "{name}: {outcome}");
                (t2 - t0, t2 - t1)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let wall = started.elapsed();

    let mut whole: Vec<Duration> = timings.iter().map(|t| t.0).collect();
    let mut reciprocal: Vec<Duration> = timings.iter().map(|t| t.1).collect();
    whole.sort();
    reciprocal.sort();
    println!(
        "{:<44} {:>10.1} links/s   p50 {:>9}   p99 {:>9}   ({users} users, {concurrency} at once)",
        "whole link (legs A-G, HTTP, browser side)",
        users as f64 / wall.as_secs_f64(),
        ms(percentile(&whole, 0.5)),
        ms(percentile(&whole, 0.99)),
    );
    println!(
        "{:<44} {:>16}   p50 {:>9}   p99 {:>9}",
        "legs E-G (POST /link/reciprocal)",
        "",
        ms(percentile(&reciprocal, 0.5)),
        ms(percentile(&reciprocal, 0.99)),
    );
}
