//! Floods one endpoint of a party on loopback and counts the answers (used by
//! `scripts/stress.sh`). Every request has a timeout and the whole run a hard
//! deadline, so it always ends; requests still open at the deadline are
//! counted as "unfinished".
//!
//! ```text
//! flood login  <party URL> <N>                  GET /login N times (a session cookie and
//!                                               csrf_token each), then N wrong-password
//!                                               POST /login for alice, all at once
//! flood device <party URL> <N> <CONCURRENCY>    N POST /device_authorization
//!                                               (client_id=speaker, login_hint=alice)
//! flood count  <database URL> <table>           SELECT COUNT(*) FROM <table>
//! ```
//!
//! Options (anywhere): --timeout SECONDS per request (default 30),
//! --deadline SECONDS for the whole run (default 60).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e_tests::walk::input_value;
use futures_util::stream::{self, StreamExt};
use reqwest::header::{COOKIE, SET_COOKIE};
use tokio::time::timeout_at;

/// Outcomes by status (or error kind), a sample error text per kind, and latencies.
#[derive(Default)]
struct Tally {
    counts: BTreeMap<String, usize>,
    samples: BTreeMap<String, String>,
    latencies: Vec<Duration>,
}

type Shared = Arc<Mutex<Tally>>;

impl Tally {
    fn record(shared: &Shared, started: Instant, result: Result<reqwest::StatusCode, reqwest::Error>) {
        let elapsed = started.elapsed();
        let mut t = shared.lock().unwrap();
        match result {
            Ok(status) => {
                *t.counts.entry(status.to_string()).or_default() += 1;
                t.latencies.push(elapsed);
            }
            Err(e) => {
                let kind = if e.is_timeout() {
                    "error: timeout"
                } else if e.is_connect() {
                    "error: connect"
                } else if e.is_body() || e.is_decode() {
                    "error: body"
                } else {
                    "error: other"
                };
                *t.counts.entry(kind.to_owned()).or_default() += 1;
                t.samples.entry(kind.to_owned()).or_insert_with(|| error_chain(&e));
            }
        }
    }

    fn print(&self, title: &str, total: usize, wall: Duration) {
        let done: usize = self.counts.values().sum();
        println!("{title}: {total} requests in {:.2} s", wall.as_secs_f64());
        println!("  {:<28} {:>7}", "status", "count");
        for (status, n) in &self.counts {
            println!("  {status:<28} {n:>7}");
        }
        if done < total {
            println!("  {:<28} {:>7}", "unfinished (deadline)", total - done);
        }
        let mut l = self.latencies.clone();
        l.sort();
        if !l.is_empty() {
            let p = |q: f64| l[((l.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0;
            println!(
                "  latency of answered requests: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
                p(0.5),
                p(0.99),
                p(1.0)
            );
        }
        for (kind, text) in &self.samples {
            println!("  {kind}, e.g.: {text}");
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

struct Options {
    timeout: Duration,
    deadline: Duration,
    args: Vec<String>,
}

fn options() -> Options {
    let mut o = Options { timeout: Duration::from_secs(30), deadline: Duration::from_secs(60), args: Vec::new() };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let seconds =
            |v: Option<String>| Duration::from_secs_f64(v.and_then(|v| v.parse().ok()).unwrap_or_else(|| usage()));
        match a.as_str() {
            "--timeout" => o.timeout = seconds(it.next()),
            "--deadline" => o.deadline = seconds(it.next()),
            _ => o.args.push(a),
        }
    }
    o
}

fn usage() -> ! {
    eprintln!(
        "usage: flood login <URL> <N> | flood device <URL> <N> <CONCURRENCY> | flood count <DATABASE URL> <TABLE>\n\
         options: --timeout SECONDS (per request, default 30), --deadline SECONDS (whole run, default 60)"
    );
    std::process::exit(2);
}

fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}

/// One login slot: the `name=value` pairs of the session cookie and the form's CSRF token.
async fn login_slot(client: &reqwest::Client, url: &str) -> Result<(String, String), String> {
    let res = client.get(format!("{url}/login")).send().await.map_err(|e| error_chain(&e))?;
    let cookie = res
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect::<Vec<_>>()
        .join("; ");
    let status = res.status();
    let html = res.text().await.map_err(|e| error_chain(&e))?;
    let csrf = input_value(&html, "csrf_token").ok_or_else(|| format!("GET /login {status}: no csrf_token"))?;
    if cookie.is_empty() {
        return Err(format!("GET /login {status}: no session cookie"));
    }
    Ok((cookie, csrf))
}

async fn flood_login(o: &Options, url: &str, n: usize) {
    let deadline = tokio::time::Instant::now() + o.deadline;
    let client = client(o.timeout);

    let started = Instant::now();
    let slots: Vec<Result<(String, String), String>> = match timeout_at(
        deadline,
        stream::iter(0..n).map(|_| login_slot(&client, url)).buffer_unordered(64).collect::<Vec<_>>(),
    )
    .await
    {
        Ok(slots) => slots,
        Err(_) => {
            println!("deadline passed while getting {n} login forms");
            std::process::exit(1);
        }
    };
    let failed: Vec<&String> = slots.iter().filter_map(|s| s.as_ref().err()).collect();
    println!(
        "prepared {} of {n} login slots (GET /login: session cookie + csrf_token) in {:.2} s",
        n - failed.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some(e) = failed.first() {
        println!("  {} failed, e.g.: {e}", failed.len());
    }
    let slots: Vec<(String, String)> = slots.into_iter().filter_map(Result::ok).collect();
    let total = slots.len();

    // All at once: each request on its own task, so all are in flight together.
    let tally: Shared = Arc::default();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (cookie, csrf) in slots {
        let (client, tally, url) = (client.clone(), tally.clone(), url.to_owned());
        tasks.spawn(async move {
            let form = [("csrf_token", csrf.as_str()), ("username", "alice"), ("password", "wrong-password")];
            let t0 = Instant::now();
            let res = answer(client.post(format!("{url}/login")).header(COOKIE, cookie).form(&form)).await;
            Tally::record(&tally, t0, res);
        });
    }
    let all_done = timeout_at(deadline, async { while tasks.join_next().await.is_some() {} }).await.is_ok();
    let wall = started.elapsed();
    tasks.abort_all();
    tally.lock().unwrap().print("POST /login, wrong password, all at once", total, wall);
    if !all_done {
        println!("  (the {:.0} s deadline passed)", o.deadline.as_secs_f64());
    }
}

/// Sends the request and reads the whole body (part of the answer, and of the server's work).
async fn answer(req: reqwest::RequestBuilder) -> Result<reqwest::StatusCode, reqwest::Error> {
    let res = req.send().await?;
    let status = res.status();
    res.bytes().await?;
    Ok(status)
}

async fn flood_device(o: &Options, url: &str, n: usize, concurrency: usize) {
    let deadline = tokio::time::Instant::now() + o.deadline;
    let client = client(o.timeout);
    let tally: Shared = Arc::default();
    let started = Instant::now();
    let finished = timeout_at(
        deadline,
        stream::iter(0..n).for_each_concurrent(concurrency, |_| {
            let (client, tally) = (&client, tally.clone());
            async move {
                let t0 = Instant::now();
                let form = [("client_id", "speaker"), ("login_hint", "alice")];
                let res = answer(client.post(format!("{url}/device_authorization")).form(&form)).await;
                Tally::record(&tally, t0, res);
            }
        }),
    )
    .await
    .is_ok();
    let wall = started.elapsed();
    tally.lock().unwrap().print(&format!("POST /device_authorization, {concurrency} at a time"), n, wall);
    if !finished {
        println!("  (the {:.0} s deadline passed)", o.deadline.as_secs_f64());
    }
}

async fn count_rows(database_url: &str, table: &str) {
    use sqlx::Connection;
    if table.is_empty() || !table.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        usage();
    }
    let mut conn = sqlx::SqliteConnection::connect(database_url).await.expect("open the database");
    let sql = format!("SELECT COUNT(*) FROM {table}");
    let n: i64 = sqlx::query_scalar(&sql).fetch_one(&mut conn).await.expect("count rows");
    println!("{n}");
}

#[tokio::main]
async fn main() {
    let o = options();
    let arg = |i: usize| o.args.get(i).map(String::as_str);
    let num = |i: usize| arg(i).and_then(|s| s.parse::<usize>().ok()).filter(|&n| n > 0).unwrap_or_else(|| usage());
    match (arg(0), arg(1)) {
        (Some("login"), Some(url)) => flood_login(&o, url.trim_end_matches('/'), num(2)).await,
        (Some("device"), Some(url)) => flood_device(&o, url.trim_end_matches('/'), num(2), num(3)).await,
        (Some("count"), Some(db)) => count_rows(db, arg(2).unwrap_or_else(|| usage())).await,
        _ => usage(),
    }
}
