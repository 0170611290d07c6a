//! Hostile traffic against the real binaries: rate limits on every
//! unauthenticated path (429 with Retry-After), a stalled body cut off,
//! sessions that end at logout wherever the cookie went, and device requests
//! that one flood cannot pile up or hide. (Allowances refilling over time are
//! tested in process with an injected clock, beside the limits.)

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const SPEAKER: &str = "speaker";

/// `Retry-After` of a 429, as whole seconds above zero.
fn retry_after(res: &reqwest::Response) -> u64 {
    assert_eq!(res.status(), 429, "expected 429");
    let secs: u64 = header(res, "retry-after").expect("Retry-After").parse().expect("whole seconds");
    assert!(secs >= 1, "{secs}");
    secs
}

/// A client whose requests the parties see as coming from `address`
/// (they trust loopback as a proxy in these tests).
fn from(address: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-forwarded-for", address.parse().unwrap());
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .default_headers(headers)
        .build()
        .unwrap()
}

async fn device_authorization(client: &reqwest::Client, pair: &Pair, hint: Option<&str>) -> reqwest::Response {
    let mut form = vec![("client_id", SPEAKER)];
    if let Some(h) = hint {
        form.push(("login_hint", h));
    }
    client.post(format!("{}/device_authorization", pair.b.url)).form(&form).send().await.unwrap()
}

/// A wrong-password sign-in at B as `client`; returns the response.
async fn wrong_login(client: &reqwest::Client, pair: &Pair) -> reqwest::Response {
    let (_, form) = page(client, &format!("{}/login", pair.b.url)).await;
    let csrf = input_value(&form, "csrf_token").unwrap();
    let fields = [("csrf_token", csrf.as_str()), ("username", "alice"), ("password", "not-her-password")];
    client.post(format!("{}/login", pair.b.url)).form(&fields).send().await.unwrap()
}

#[tokio::test]
async fn every_limited_endpoint_answers_429_with_retry_after_per_address() {
    let limits = [
        "--trusted-proxy",
        "127.0.0.1",
        "--rate-sign-in",
        "2/min",
        "--rate-device-authorization",
        "2/min",
        "--rate-user-code",
        "2/min",
        "--rate-client-auth-failures",
        "2/min",
    ];
    let pair = spawn_pair_with(&[], &limits).await;
    let attacker = from("203.0.113.7");

    // Sign-in and sign-up: each costs a password hash.
    for _ in 0..2 {
        assert_eq!(wrong_login(&attacker, &pair).await.status(), 401);
    }
    let limited = wrong_login(&attacker, &pair).await;
    retry_after(&limited);
    expect_error_page(limited, 429).await;
    let (_, signup) = page(&attacker, &format!("{}/signup", pair.b.url)).await;
    let csrf = input_value(&signup, "csrf_token").unwrap();
    let res = attacker
        .post(format!("{}/signup", pair.b.url))
        .form(&[("csrf_token", csrf.as_str()), ("username", "mallory"), ("password", "long-enough")])
        .send()
        .await
        .unwrap();
    retry_after(&res);
    // Another address signs in as usual.
    let alice = from("198.51.100.1");
    login(&alice, &pair.b.url, "alice", "wonderland").await;

    // Device authorization: RFC 6749 JSON.
    for _ in 0..2 {
        assert_eq!(device_authorization(&attacker, &pair, None).await.status(), 200);
    }
    let limited = device_authorization(&attacker, &pair, None).await;
    retry_after(&limited);
    assert_eq!(oauth_error(limited, 429).await, "temporarily_unavailable");
    assert_eq!(device_authorization(&alice, &pair, None).await.status(), 200, "others are not limited");

    // User codes at /device, for a signed-in user: an error page.
    for _ in 0..2 {
        let res = alice.get(format!("{}/device?user_code=BCDF-GHJK", pair.b.url)).send().await.unwrap();
        assert_eq!(res.status(), 200);
    }
    let res = alice.get(format!("{}/device?user_code=BCDF-GHJK", pair.b.url)).send().await.unwrap();
    retry_after(&res);
    expect_error_page(res, 429).await;

    // Failed client authentication at /token, /revoke and /introspect.
    let wrong = || {
        attacker
            .post(format!("{}/token", pair.b.url))
            .basic_auth(A_CLIENT, Some("not-the-secret"))
            .form(&[("grant_type", "client_credentials")])
    };
    for _ in 0..2 {
        expect_oauth_error(wrong().send().await.unwrap(), 401, "invalid_client").await;
    }
    let limited = wrong().send().await.unwrap();
    retry_after(&limited);
    assert_eq!(oauth_error(limited, 429).await, "temporarily_unavailable");
    for path in ["/revoke", "/introspect"] {
        let res = attacker
            .post(format!("{}{path}", pair.b.url))
            .basic_auth(A_CLIENT, Some(A_SECRET))
            .form(&[("token", "x")])
            .send()
            .await
            .unwrap();
        retry_after(&res);
    }
    // Working clients elsewhere are never counted, however many requests they make.
    for _ in 0..10 {
        let res = from("198.51.100.2")
            .post(format!("{}/token", pair.b.url))
            .basic_auth(A_CLIENT, Some(A_SECRET))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    no_errors_logged(&pair.b);
}

/// What clients did wrong is logged at info or warn: ERROR is for the party's own faults.
fn no_errors_logged(party: &Party) {
    let log = party.log();
    assert!(!log.contains(" ERROR "), "client errors logged as ERROR:\n{log}");
}

#[tokio::test]
async fn the_forwarded_address_counts_only_behind_a_trusted_proxy() {
    let pair = spawn_pair_with(&[], &["--rate-sign-in", "2/min"]).await;
    // Loopback is not a trusted proxy here: a fresh X-Forwarded-For per request buys nothing.
    for i in 0..2 {
        assert_eq!(wrong_login(&from(&format!("203.0.113.{i}")), &pair).await.status(), 401);
    }
    retry_after(&wrong_login(&from("203.0.113.99"), &pair).await);
}

/// Sends a request head declaring a 60 KB body, then a few bytes and nothing more.
fn stall(port: u16, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 60000\r\n\r\ngrant_type="
    );
    s.write_all(head.as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    s
}

/// Everything the server sends until it closes the connection.
fn until_closed(mut s: TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return String::from_utf8_lossy(&got).into_owned(),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("the connection stayed open ({e}); got so far: {}", String::from_utf8_lossy(&got)),
        }
    }
}

#[tokio::test]
async fn a_stalled_body_is_answered_408_and_the_connection_closed() {
    let pair = spawn_pair_with(&[], &["--body-timeout", "1"]).await;
    let port = pair.b.port;
    let started = Instant::now();
    let stalled: Vec<TcpStream> = (0..20).map(|i| stall(port, if i % 2 == 0 { "/token" } else { "/login" })).collect();
    let answers =
        tokio::task::spawn_blocking(move || stalled.into_iter().map(until_closed).collect::<Vec<_>>()).await.unwrap();
    for answer in &answers {
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    assert!(started.elapsed() < Duration::from_secs(8), "all cut off: {:?}", started.elapsed());
    // The party still serves everyone else.
    assert_eq!(http().get(format!("{}/healthz", pair.b.url)).send().await.unwrap().status(), 200);
    no_errors_logged(&pair.b);
}

/// The session cookie a response sets, as `name=value`.
fn set_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("party_b_session="))
        .map(|c| c.split(';').next().unwrap().to_owned())
}

#[tokio::test]
async fn a_copied_session_cookie_stops_working_at_logout() {
    let pair = spawn_pair_with(&[], &[]).await;
    let plain = http();
    let b = &pair.b.url;
    let form = plain.get(format!("{b}/login")).send().await.unwrap();
    let cookie = set_cookie(&form).unwrap();
    let csrf = input_value(&form.text().await.unwrap(), "csrf_token").unwrap();
    let signed_in = plain
        .post(format!("{b}/login"))
        .header("cookie", &cookie)
        .form(&[("csrf_token", csrf.as_str()), ("username", "alice"), ("password", "wonderland")])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let cookie = set_cookie(&signed_in).unwrap();
    let copied = cookie.clone();
    let home = plain.get(format!("{b}/")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(home.status(), 200, "signed in");
    let cookie = set_cookie(&home).unwrap_or(cookie);
    let csrf = input_value(&home.text().await.unwrap(), "csrf_token").unwrap();

    let out = plain.post(format!("{b}/logout")).header("cookie", &cookie).form(&[("csrf_token", csrf)]).send();
    assert_eq!(out.await.unwrap().status(), 303);
    let replay = plain.get(format!("{b}/")).header("cookie", &copied).send().await.unwrap();
    assert_eq!(replay.status(), 303, "the copied cookie is signed out");
    assert_eq!(header(&replay, "location").as_deref(), Some("/login"));
}

#[tokio::test]
async fn device_requests_are_capped_and_the_kiosk_finds_an_account_under_a_flood() {
    let pair = spawn_pair_with(&[], &["--trusted-proxy", "127.0.0.1", "--device-pending-per-address", "12"]).await;
    let device = from("192.0.2.1");
    let first: Value = json_ok(device_authorization(&device, &pair, Some("alice")).await).await;
    let mine: Value = json_ok(device_authorization(&device, &pair, Some("alice")).await).await;

    // A flood naming bob from elsewhere: bob keeps his newest five, alice is untouched.
    let flood = http();
    for _ in 0..40 {
        let res = device_authorization(&flood, &pair, Some("bob")).await;
        assert_eq!(res.status(), 200);
    }
    let staff = browser();
    login(&staff, &pair.b.url, "kiosk", "staff-only").await;
    let rows = |html: &str| html.matches("<tr><td>").count();
    let (_, alice) = page(&staff, &format!("{}/kiosk?account=alice", pair.b.url)).await;
    assert_eq!(rows(&alice), 2, "alice's requests are found at once: {alice}");
    let (_, bob) = page(&staff, &format!("{}/kiosk?account=bob", pair.b.url)).await;
    assert_eq!(rows(&bob), 5, "at most five wait per account: {bob}");

    // Five more for alice: the oldest of hers are ended, and the device is told.
    for _ in 0..4 {
        json_ok(device_authorization(&device, &pair, Some("alice")).await).await;
    }
    let (_, alice) = page(&staff, &format!("{}/kiosk?account=alice", pair.b.url)).await;
    assert_eq!(rows(&alice), 5, "{alice}");
    let poll = |code: &Value| {
        http().post(format!("{}/token", pair.b.url)).form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", code["device_code"].as_str().unwrap()),
            ("client_id", SPEAKER),
        ])
    };
    expect_oauth_error(poll(&first).send().await.unwrap(), 400, "expired_token").await;
    expect_oauth_error(poll(&mine).send().await.unwrap(), 400, "authorization_pending").await;

    // Per address: at most twelve waiting; the rest are refused with a time to come back.
    let other = from("192.0.2.2");
    for _ in 0..12 {
        assert_eq!(device_authorization(&other, &pair, None).await.status(), 200);
    }
    let refused = device_authorization(&other, &pair, None).await;
    retry_after(&refused);
    assert_eq!(oauth_error(refused, 429).await, "temporarily_unavailable");
}
