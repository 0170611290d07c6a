//! A clean stop (docs/architecture.md, "Stopping"): each party, on SQLite
//! and on PostgreSQL, is sent SIGTERM or SIGINT while token requests are in
//! flight. Each of them gets its whole answer, the process exits with
//! status 0 and no panic, its log ends saying it stopped, and on SQLite the
//! `.db` file alone, copied, holds everything written during the run. The
//! PostgreSQL variants skip without `TEST_DATABASE_URL`.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sqlx::Connection;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use common::*;

/// Requests in flight when the signal arrives.
const IN_FLIGHT: usize = 4;
const GRANT: &[u8] = b"grant_type=client_credentials";

#[tokio::test]
async fn party_a_on_sqlite_stops_cleanly_on_sigterm() {
    stops_cleanly("party-a", false, "TERM").await;
}

#[tokio::test]
async fn party_b_on_sqlite_stops_cleanly_on_ctrl_c() {
    stops_cleanly("party-b", false, "INT").await;
}

#[tokio::test]
async fn party_a_on_postgres_stops_cleanly_on_ctrl_c() {
    stops_cleanly("party-a", true, "INT").await;
}

#[tokio::test]
async fn party_b_on_postgres_stops_cleanly_on_sigterm() {
    stops_cleanly("party-b", true, "TERM").await;
}

async fn stops_cleanly(name: &'static str, postgres: bool, signal: &str) {
    if postgres && std::env::var("TEST_DATABASE_URL").is_err() {
        eprintln!("skipped: the PostgreSQL variant needs TEST_DATABASE_URL; scripts/test.sh sets it");
        return;
    }
    let dir = scratch_dir();
    let database_url = database_url(&dir, name, postgres).await;
    // No peer runs: nothing here calls it.
    let mut party = start(name, free_port(), "http://127.0.0.1:9", &database_url, &dir, &[]).await;
    // Its client at this party: the peer's, with the peer's secret.
    let (client, secret) = if name == "party-a" { (B_CLIENT, B_SECRET) } else { (A_CLIENT, A_SECRET) };

    // Written during the run: a new account (and its session).
    let username = format!("stop-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    sign_up(&browser(), &party.url, &username, "a-long-enough-password").await;

    // Requests in flight: the party has started on each (its `100 Continue`
    // says so, RFC 9110 10.1.1) and has half of each body.
    let auth = STANDARD.encode(format!("{client}:{secret}"));
    let mut connections = Vec::new();
    for _ in 0..IN_FLIGHT {
        let mut conn = BufReader::new(TcpStream::connect(("127.0.0.1", party.port)).await.unwrap());
        conn.write_all(&token_request_head(party.port, &auth)).await.unwrap();
        let mut interim = String::new();
        conn.read_line(&mut interim).await.unwrap();
        assert!(interim.starts_with("HTTP/1.1 100 "), "{interim}");
        conn.read_line(&mut interim).await.unwrap();
        conn.write_all(&GRANT[..GRANT.len() / 2]).await.unwrap();
        conn.flush().await.unwrap();
        connections.push(conn);
    }

    party.signal(signal);
    // The stop has begun once new connections are refused.
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", party.port)).await.is_ok() {
        assert!(Instant::now() < deadline, "{name} still accepts connections after SIG{signal}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The rest of each body arrives and is answered in full.
    let answers = futures_util::future::join_all(connections.iter_mut().map(|conn| async {
        conn.write_all(&GRANT[GRANT.len() / 2..]).await?;
        read_response(conn).await
    }))
    .await;
    for answer in answers {
        let (status, body) = answer.unwrap_or_else(|e| panic!("a request in flight was cut: {e}\n{}", party.output()));
        assert_eq!(status, 200, "{body}");
        let token: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(token["access_token"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
    }
    drop(connections);

    let status = party.exit_status(Duration::from_secs(30)).await;
    let log = std::fs::read_to_string(party.stderr_path()).unwrap();
    assert_eq!(status.code(), Some(0), "{name} exited with {status}:\n{log}");
    assert!(!log.to_lowercase().contains("panic"), "{log}");
    if !postgres {
        let db = dir.join(format!("{name}.db"));
        let wal = dir.join(format!("{name}.db-wal"));
        let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        assert_eq!(wal_len, 0, "{} still holds {wal_len} bytes not in the database file", wal.display());
        // The .db file alone, as a backup copies it.
        let copy_dir = scratch_dir();
        let copy = copy_dir.join("copy.db");
        std::fs::copy(&db, &copy).unwrap();
        let users = usernames(&copy).await;
        assert!(users.contains(&username), "the account made during the run is in the copy: {users:?}");
        assert!(users.iter().any(|u| u == "alice"), "the demo users are in the copy: {users:?}");
    }
    assert!(log.contains(&format!("{name} stopping (SIG{signal})")), "{log}");
    let last = log.lines().rfind(|l| !l.trim().is_empty()).unwrap_or_default();
    assert!(last.ends_with(&format!("INFO {name} stopped")), "the log ends with: {last}\n{log}");
}

fn token_request_head(port: u16, basic: &str) -> Vec<u8> {
    format!(
        "POST /token HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Basic {basic}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        GRANT.len()
    )
    .into_bytes()
}

/// One HTTP/1.1 response with a `Content-Length` body: (status, body), or
/// the error the connection ended with before the answer was whole.
async fn read_response(conn: &mut BufReader<TcpStream>) -> std::io::Result<(u16, String)> {
    let cut = |what: &str| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, what.to_owned());
    let mut line = String::new();
    if conn.read_line(&mut line).await? == 0 {
        return Err(cut("closed before the status line"));
    }
    let status = line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| cut(&line))?;
    let mut length = None;
    loop {
        line.clear();
        if conn.read_line(&mut line).await? == 0 {
            return Err(cut("closed within the head"));
        }
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<usize>().ok();
            }
        }
    }
    let mut body = vec![0; length.ok_or_else(|| cut("no Content-Length"))?];
    conn.read_exact(&mut body).await?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Every username in the SQLite database at `path`, opened on its own.
async fn usernames(path: &Path) -> Vec<String> {
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    let users: Vec<(String,)> = sqlx::query_as("SELECT username FROM users").fetch_all(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    users.into_iter().map(|(u,)| u).collect()
}
