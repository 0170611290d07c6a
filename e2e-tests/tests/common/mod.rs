//! Starts the real `party-a` and `party-b` binaries on free ports, each with
//! a database of its own, and offers the steps a browser or a client takes.
//!
//! Party A runs on SQLite. Party B runs on PostgreSQL when `TEST_DATABASE_URL`
//! is set (in a schema of its own), so every run covers both backends.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::redirect::Policy;
use sha2::{Digest, Sha256};

pub use e2e_tests::walk::*;

/// Party A's client at B and its dev secret, as A's profile has them.
pub const A_CLIENT: &str = party_a::PARTY.peer.our_client_id;
pub const A_SECRET: &str = party_a::PARTY.defaults.client_secret;
/// Party B's client at A and its dev secret.
pub const B_CLIENT: &str = party_b::PARTY.peer.our_client_id;
pub const B_SECRET: &str = party_b::PARTY.defaults.client_secret;

/// Rates for tests that sign in many users at once from loopback.
const ROOMY_LIMITS: &[&str] = &[
    "--rate-sign-in",
    "10000/min",
    "--rate-device-authorization",
    "10000/min",
    "--rate-user-code",
    "10000/min",
    "--rate-client-auth-failures",
    "10000/min",
    "--rate-sign-in-global",
    "10000/s",
    "--rate-device-authorization-global",
    "10000/s",
    "--rate-user-code-global",
    "10000/s",
    "--device-pending-per-address",
    "1000",
];

/// One running party; killed when dropped.
pub struct Party {
    pub name: &'static str,
    pub url: String,
    pub port: u16,
    pub database_url: String,
    pub peer_url: String,
    pub dir: PathBuf,
    child: Child,
    extra_args: Vec<String>,
}

impl Party {
    pub fn stdout_path(&self) -> PathBuf {
        self.dir.join(format!("{}.stdout", self.name))
    }
    pub fn stderr_path(&self) -> PathBuf {
        self.dir.join(format!("{}.stderr", self.name))
    }
    /// Everything the process wrote so far (banner and log).
    pub fn output(&self) -> String {
        let out = std::fs::read_to_string(self.stdout_path()).unwrap_or_default();
        let err = std::fs::read_to_string(self.stderr_path()).unwrap_or_default();
        format!("{out}{err}")
    }
    /// The log so far. A writer thread in the party batches its lines, so
    /// this reads until the file has stopped growing (at most a second).
    pub fn log(&self) -> String {
        let read = || std::fs::read_to_string(self.stderr_path()).unwrap_or_default();
        let mut log = read();
        for _ in 0..50 {
            std::thread::sleep(Duration::from_millis(20));
            let again = read();
            if again == log {
                break;
            }
            log = again;
        }
        log
    }

    /// Stops the process and starts it again on the same port and database.
    pub async fn restart(&mut self) {
        self.stop();
        let again = start(self.name, self.port, &self.peer_url, &self.database_url, &self.dir, &self.extra_args).await;
        *self = again;
    }

    /// Kills the process (SIGKILL: no clean stop, as in a crash) and waits for it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` (`TERM`, `INT`) to the process, as a supervisor or Ctrl-C does.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{signal} {}", self.child.id());
    }

    /// How the process ended, once it has; it must have ended `within`.
    pub async fn exit_status(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "{} still runs after {within:?}:\n{}", self.name, self.output());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Party {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Both parties, pointing at each other.
pub struct Pair {
    pub a: Party,
    pub b: Party,
}

/// A port no other test of this run was given: the kernel may hand a port
/// just released to the next bind, and two parties on one port would each
/// see the other's `/healthz`.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut given = GIVEN.lock().unwrap();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

pub fn binary(name: &str) -> PathBuf {
    // target/debug/deps/<test> → target/debug/<name>
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = dir.join(name);
    assert!(bin.exists(), "{} is missing: run `cargo test --workspace` (it builds the party binaries)", bin.display());
    bin
}

pub fn scratch_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.parent().and_then(Path::parent).and_then(Path::parent).unwrap();
    let dir = target.join("e2e-tmp").join(uuid::Uuid::new_v4().simple().to_string());
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A database URL for one party: a new PostgreSQL schema when asked for and
/// available, otherwise a new SQLite file.
pub async fn database_url(dir: &Path, name: &str, postgres: bool) -> String {
    if postgres {
        if let Ok(base) = std::env::var("TEST_DATABASE_URL") {
            let schema = format!("e2e_{}", uuid::Uuid::new_v4().simple());
            let out = Command::new("psql").arg(&base).arg("-qc").arg(format!("CREATE SCHEMA {schema}")).output();
            match out {
                Ok(o) if o.status.success() => {
                    let sep = if base.contains('?') { '&' } else { '?' };
                    return format!("{base}{sep}options=-c%20search_path%3D{schema}");
                }
                other => {
                    panic!("TEST_DATABASE_URL is set but a schema could not be created: {other:?}")
                }
            }
        }
    }
    format!("sqlite://{}/{name}.db", dir.display())
}

pub async fn start(
    name: &'static str,
    port: u16,
    peer_url: &str,
    database_url: &str,
    dir: &Path,
    extra: &[String],
) -> Party {
    let url = format!("http://127.0.0.1:{port}");
    // Several instances of one party share the public URL given in `extra`.
    let public_url = match extra.iter().position(|a| a == "--public-url") {
        Some(i) => extra[i + 1].clone(),
        None => url.clone(),
    };
    let own_public_url = ["--public-url".to_owned(), url.clone()];
    let public_url_args = if public_url == url { &own_public_url[..] } else { &[] };
    // Tests sign many users in from one address; the limits' own tests pass tighter ones.
    let roomy: Vec<&str> = ROOMY_LIMITS
        .chunks(2)
        .filter(|flag| !extra.iter().any(|a| a == flag[0]))
        .flat_map(|flag| flag.iter().copied())
        .collect();
    let stdout =
        std::fs::OpenOptions::new().create(true).append(true).open(dir.join(format!("{name}.stdout"))).unwrap();
    let stderr =
        std::fs::OpenOptions::new().create(true).append(true).open(dir.join(format!("{name}.stderr"))).unwrap();
    let child = Command::new(binary(name))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--peer-url", peer_url])
        .args(public_url_args)
        .args(["--database-url", database_url, "--workers", "2"])
        .args(roomy)
        .args(extra)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("start party binary");
    let party = Party {
        name,
        url: url.clone(),
        port,
        database_url: database_url.to_owned(),
        peer_url: peer_url.to_owned(),
        dir: dir.to_owned(),
        child,
        extra_args: extra.to_vec(),
    };
    let mut party = party;
    wait_healthy(&mut party).await;
    party
}

async fn wait_healthy(party: &mut Party) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let http = reqwest::Client::new();
    while Instant::now() < deadline {
        // Another process answering on this port must not pass for ours.
        if let Ok(Some(status)) = party.child.try_wait() {
            panic!("{} exited at start ({status}):\n{}", party.name, party.output());
        }
        if let Ok(r) = http.get(format!("{}/healthz", party.url)).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} did not become healthy:\n{}", party.name, party.output());
}

/// Starts both parties (A on SQLite, B on PostgreSQL when available).
pub async fn spawn_pair() -> Pair {
    spawn_pair_with(&[], &[]).await
}

pub async fn spawn_pair_with(a_args: &[&str], b_args: &[&str]) -> Pair {
    spawn_pair_on(false, a_args, b_args).await
}

/// Both parties on PostgreSQL when `TEST_DATABASE_URL` is set (for several instances of A).
pub async fn spawn_pair_on_postgres(a_args: &[&str], b_args: &[&str]) -> Pair {
    spawn_pair_on(true, a_args, b_args).await
}

async fn spawn_pair_on(a_on_postgres: bool, a_args: &[&str], b_args: &[&str]) -> Pair {
    let dir = scratch_dir();
    let (pa, pb) = (free_port(), free_port());
    let (a_url, b_url) = (format!("http://127.0.0.1:{pa}"), format!("http://127.0.0.1:{pb}"));
    let a_db = database_url(&dir, "party-a", a_on_postgres).await;
    let b_db = database_url(&dir, "party-b", true).await;
    let a_args: Vec<String> = a_args.iter().map(|s| s.to_string()).collect();
    let b_args: Vec<String> = b_args.iter().map(|s| s.to_string()).collect();
    let (a, b) = tokio::join!(
        start("party-a", pa, &b_url, &a_db, &dir, &a_args),
        start("party-b", pb, &a_url, &b_db, &dir, &b_args)
    );
    Pair { a, b }
}

/// A PKCE pair (RFC 7636): (verifier, S256 challenge).
pub fn pkce_pair() -> (String, String) {
    let verifier = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// The query parameters of a redirect's `Location`.
pub fn location_params(res: &reqwest::Response) -> std::collections::HashMap<String, String> {
    let loc = res.headers().get("location").expect("a redirect").to_str().unwrap();
    url::Url::parse(loc).unwrap().query_pairs().into_owned().collect()
}

/// Follows an authorization URL as the signed-in `browser`: approves the
/// consent page if one is shown and returns the redirect back to the client.
pub async fn authorize(browser: &reqwest::Client, authorize_url: &str) -> reqwest::Response {
    let res = browser.get(authorize_url).send().await.unwrap();
    if res.status() != 200 {
        return res;
    }
    let base = {
        let u = url::Url::parse(authorize_url).unwrap();
        format!("{}://{}", u.scheme(), u.host_str().unwrap()) + &u.port().map(|p| format!(":{p}")).unwrap_or_default()
    };
    let html = res.text().await.unwrap();
    assert_eq!(data_page(&html).as_deref(), Some("consent"), "expected the consent page: {html}");
    decide(browser, &base, &html, "approve").await
}

/// Decodes a JWT's payload without verifying it (tests look at claims).
pub fn jwt_claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

// ---------------------------------------------------------------------------
// Raw-HTTP helpers for the security, bad-input and page tests: the code flow
// and the token, revocation and introspection endpoints without a client
// library, so tests see exactly what goes over the wire.
// ---------------------------------------------------------------------------

/// The demo password of a seeded user (from the party's profile).
pub fn demo_password(user: &str) -> &'static str {
    match user {
        "alice" => "wonderland",
        "bob" => "builder",
        "kiosk" => "staff-only",
        other => panic!("{other} is not a demo user"),
    }
}

/// A plain HTTP client: no cookies, never follows redirects.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
}

/// `base` with `params` appended as a query string.
pub fn url_with(base: &str, params: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(base).unwrap();
    url.query_pairs_mut().extend_pairs(params);
    url.to_string()
}

/// Party A's redirect URI at party B (its registered `/link/callback`).
pub fn a_callback(pair: &Pair) -> String {
    format!("{}/link/callback", pair.a.url)
}

/// An authorization request of `voice-assistant` at party B, with PKCE S256,
/// `state` and the registered redirect URI.
pub fn b_authorize_url(pair: &Pair, scope: &str, challenge: &str, state: &str) -> String {
    url_with(
        &format!("{}/authorize", pair.b.url),
        &[
            ("response_type", "code"),
            ("client_id", A_CLIENT),
            ("redirect_uri", &a_callback(pair)),
            ("scope", scope),
            ("state", state),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ],
    )
}

/// The browser half of the code flow at B for a signed-in `browser`:
/// authorizes (approving consent if asked) and returns `(code, verifier)`.
pub async fn code_at_b(pair: &Pair, browser: &reqwest::Client, scope: &str) -> (String, String) {
    let (verifier, challenge) = pkce_pair();
    let state = uuid::Uuid::new_v4().simple().to_string();
    let back = authorize(browser, &b_authorize_url(pair, scope, &challenge, &state)).await;
    if !back.status().is_redirection() {
        let status = back.status();
        panic!("authorization did not redirect back: {status}: {}", back.text().await.unwrap_or_default());
    }
    let params = location_params(&back);
    assert_eq!(params.get("state"), Some(&state));
    let code = params.get("code").unwrap_or_else(|| panic!("no code in the redirect: {params:?}")).clone();
    (code, verifier)
}

/// POSTs `form` to B's token endpoint as `voice-assistant` (client_secret_basic).
pub async fn token_request_at_b(pair: &Pair, form: &[(&str, &str)]) -> reqwest::Response {
    http().post(format!("{}/token", pair.b.url)).basic_auth(A_CLIENT, Some(A_SECRET)).form(form).send().await.unwrap()
}

/// Redeems `code` at B with the redirect URI of the authorization request.
pub async fn redeem_code_at_b(pair: &Pair, code: &str, verifier: &str) -> reqwest::Response {
    let redirect_uri = a_callback(pair);
    token_request_at_b(
        pair,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", &redirect_uri),
        ],
    )
    .await
}

pub async fn refresh_at_b(pair: &Pair, refresh_token: &str) -> reqwest::Response {
    token_request_at_b(pair, &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]).await
}

/// `(access_token, refresh_token)` from a successful token response.
pub async fn token_pair(res: reqwest::Response) -> (String, String) {
    let body = json_ok(res).await;
    let access = body["access_token"].as_str().expect("access_token").to_owned();
    let refresh = body["refresh_token"].as_str().expect("refresh_token").to_owned();
    (access, refresh)
}

/// The whole code flow at B for a demo `user`: sign in, consent, redeem.
pub async fn token_for(pair: &Pair, user: &str, scope: &str) -> (String, String) {
    let browser = browser();
    login(&browser, &pair.b.url, user, demo_password(user)).await;
    let (code, verifier) = code_at_b(pair, &browser, scope).await;
    token_pair(redeem_code_at_b(pair, &code, &verifier).await).await
}

/// A `client_credentials` request at `base` with client_secret_basic and `extra` parameters.
pub async fn client_credentials(
    base: &str,
    client_id: &str,
    secret: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend_from_slice(extra);
    http().post(format!("{base}/token")).basic_auth(client_id, Some(secret)).form(&form).send().await.unwrap()
}

/// An access token of `voice-assistant` at B from client_credentials.
pub async fn client_credentials_token_at_b(pair: &Pair, extra: &[(&str, &str)]) -> String {
    let body = json_ok(client_credentials(&pair.b.url, A_CLIENT, A_SECRET, extra).await).await;
    body["access_token"].as_str().expect("access_token").to_owned()
}

/// RFC 7662 introspection at B as `voice-assistant`.
pub async fn introspect_at_b(pair: &Pair, token: &str) -> serde_json::Value {
    let res = http()
        .post(format!("{}/introspect", pair.b.url))
        .basic_auth(A_CLIENT, Some(A_SECRET))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    json_ok(res).await
}

/// RFC 7009 revocation at B as `voice-assistant`.
pub async fn revoke_at_b(pair: &Pair, token: &str, hint: Option<&str>) -> reqwest::Response {
    let mut form = vec![("token", token)];
    if let Some(h) = hint {
        form.push(("token_type_hint", h));
    }
    http().post(format!("{}/revoke", pair.b.url)).basic_auth(A_CLIENT, Some(A_SECRET)).form(&form).send().await.unwrap()
}

/// `GET <B>/api/player` with `token` as the bearer token.
pub async fn player_at_b(pair: &Pair, token: &str) -> reqwest::Response {
    http().get(format!("{}/api/player", pair.b.url)).bearer_auth(token).send().await.unwrap()
}

/// The body of a 200 JSON response (panics with the body otherwise).
pub async fn json_ok(res: reqwest::Response) -> serde_json::Value {
    let status = res.status();
    let text = res.text().await.unwrap();
    assert_eq!(status, 200, "expected 200, got {status}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Checks an RFC 6749 5.2 error response: `status`, JSON with both `error` and a
/// non-empty `error_description`, `Cache-Control: no-store`. Returns `error`.
pub async fn oauth_error(res: reqwest::Response, status: u16) -> String {
    oauth_error_parts(res, status).await.0
}

/// `(error, error_description)` of an RFC 6749 5.2 error response with `status`.
pub async fn oauth_error_parts(res: reqwest::Response, status: u16) -> (String, String) {
    let got = res.status();
    let cache = header(&res, "cache-control").unwrap_or_default();
    let content_type = header(&res, "content-type").unwrap_or_default();
    let text = res.text().await.unwrap();
    assert_eq!(got, status, "unexpected status; body: {text}");
    assert!(content_type.starts_with("application/json"), "error is not JSON ({content_type}): {text}");
    assert!(cache.contains("no-store"), "error response without Cache-Control: no-store ({cache:?})");
    let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    let description = body["error_description"].as_str().unwrap_or_else(|| panic!("no error_description: {text}"));
    assert!(!description.is_empty(), "empty error_description: {text}");
    (body["error"].as_str().unwrap_or_else(|| panic!("no error: {text}")).to_owned(), description.to_owned())
}

/// Asserts an RFC 6749 5.2 error response with `status` and `error` = `code`.
pub async fn expect_oauth_error(res: reqwest::Response, status: u16, code: &str) {
    assert_eq!(oauth_error(res, status).await, code);
}

/// One response header as a string.
pub fn header(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers().get(name).map(|v| v.to_str().unwrap().to_owned())
}

/// The `WWW-Authenticate` challenge of an API rejection (panics when absent).
pub fn www_authenticate(res: &reqwest::Response) -> String {
    header(res, "www-authenticate").unwrap_or_else(|| panic!("{} without WWW-Authenticate", res.status()))
}

/// Asserts an API rejection: `status` and `error="<code>"` in the Bearer challenge.
pub async fn expect_api_error(res: reqwest::Response, status: u16, code: &str) -> String {
    let challenge = header(&res, "www-authenticate");
    let got = res.status();
    let body = res.text().await.unwrap();
    assert_eq!(got, status, "unexpected API status; body: {body}");
    let challenge = challenge.unwrap_or_else(|| panic!("{got} without WWW-Authenticate"));
    assert!(challenge.starts_with("Bearer "), "not a Bearer challenge: {challenge}");
    assert!(challenge.contains(&format!("error=\"{code}\"")), "expected error=\"{code}\" in {challenge}");
    challenge
}

/// Asserts the branded HTML error page with `status`; returns its HTML.
pub async fn expect_error_page(res: reqwest::Response, status: u16) -> String {
    let got = res.status();
    let content_type = header(&res, "content-type").unwrap_or_default();
    assert!(
        res.headers().get("location").is_none(),
        "an error page must not redirect: {:?}",
        res.headers().get("location")
    );
    let html = res.text().await.unwrap();
    assert_eq!(got, status, "unexpected status for an error page: {html}");
    assert!(content_type.starts_with("text/html"), "error page is not HTML ({content_type}): {html}");
    assert_eq!(data_page(&html).as_deref(), Some("error"), "not the error page: {html}");
    html
}

/// The decoded (unverified) JOSE header of a JWT.
pub fn jwt_header(token: &str) -> serde_json::Value {
    let header = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The request lines of a party's log, `(method, path, status)` in order:
/// lines of the form `<time> INFO <METHOD> <path> <status> <n>µs`.
pub fn request_lines(log: &str) -> Vec<(String, String, u16)> {
    log.lines()
        .filter_map(|line| {
            let plain = strip_ansi(line);
            let words: Vec<&str> = plain.split_whitespace().collect();
            match words.as_slice() {
                [_, "INFO", method, path, status, latency]
                    if method.chars().all(|c| c.is_ascii_uppercase()) && latency.ends_with("µs") =>
                {
                    Some(((*method).to_owned(), (*path).to_owned(), status.parse().ok()?))
                }
                _ => None,
            }
        })
        .collect()
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The link (docs/protocol.md) as a browser walks it.
// ---------------------------------------------------------------------------

/// The home page's `data-link-state` at `base` for the signed-in browser.
pub async fn link_state(browser: &reqwest::Client, base: &str) -> String {
    let (_, html) = page(browser, &format!("{base}/")).await;
    let marker = "data-link-state=\"";
    let start = html.find(marker).unwrap_or_else(|| panic!("no link state on: {html}")) + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

/// A browser signed in as demo `user` at both parties.
pub async fn user_at_both(pair: &Pair, user: &str) -> reqwest::Client {
    let b = browser();
    login(&b, &pair.a.url, user, demo_password(user)).await;
    login(&b, &pair.b.url, user, demo_password(user)).await;
    b
}

/// Starts a link at A as `browser` (signed in at both) and approves at B;
/// returns B's redirect back to A's callback, not yet followed.
pub async fn authorization_response(browser: &reqwest::Client, pair: &Pair) -> reqwest::Response {
    let (_, home) = page(browser, &format!("{}/", pair.a.url)).await;
    let csrf = input_value(&home, "csrf_token").unwrap();
    let to_b = browser.post(format!("{}/link/start", pair.a.url)).form(&[("csrf_token", csrf)]).send().await.unwrap();
    let consent = browser.get(to_b.headers()["location"].to_str().unwrap()).send().await.unwrap().text().await.unwrap();
    decide(browser, &pair.b.url, &consent, "approve").await
}

/// Alice, signed in at A, linked both ways from A (her browser is signed in at both).
pub async fn linked_alice(pair: &Pair) -> reqwest::Client {
    let alice = browser();
    login(&alice, &pair.a.url, "alice", "wonderland").await;
    let outcome = link(&alice, &pair.a.url, &pair.b.url, "alice", "wonderland", "approve").await;
    assert_eq!(flow_step(&outcome), "done", "{outcome}");
    alice
}

/// The access token `party` holds from its peer for `username`, read from
/// its database (the tests check what a peer would see when using it).
pub async fn held_token(party: &Party, username: &str) -> Option<String> {
    let pool = database(party).await;
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT p.access_token FROM peer_tokens p JOIN users u ON u.id = p.user_id WHERE u.username = $1",
    )
    .bind(username)
    .fetch_optional(&pool)
    .await
    .unwrap();
    pool.close().await;
    row.map(|(t,)| t)
}

/// Says something to the assistant (party A's text box); returns A's home page after.
pub async fn play_from_a(browser: &reqwest::Client, pair: &Pair, query: &str) -> String {
    let (_, home) = page(browser, &format!("{}/", pair.a.url)).await;
    let (_, after) = submit(browser, &format!("{}/assistant/play", pair.a.url), &home, &[("query", query)]).await;
    after
}

/// `GET /api/now-playing` at A with the browser's session.
pub async fn now_playing_at_a(browser: &reqwest::Client, pair: &Pair) -> serde_json::Value {
    browser.get(format!("{}/api/now-playing", pair.a.url)).send().await.unwrap().json().await.unwrap()
}

/// The id of `username` at `party`, read from its database.
pub async fn user_id_at(party: &Party, username: &str) -> String {
    let pool = database(party).await;
    let (id,): (String,) =
        sqlx::query_as("SELECT id FROM users WHERE username = $1").bind(username).fetch_one(&pool).await.unwrap();
    pool.close().await;
    id
}

/// A connection to `party`'s own database, to check what it stored.
pub async fn database(party: &Party) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&party.database_url).await.unwrap()
}

// ---------------------------------------------------------------------------
// Several instances (docs/architecture.md, "Several instances"): two of each party on PostgreSQL, each pair
// behind a round-robin proxy that is its public URL.
// ---------------------------------------------------------------------------

pub use e2e_tests::proxy::RoundRobin;

/// Two instances of A and two of B, each party on its own PostgreSQL schema.
pub struct Cluster {
    pub a: Vec<Party>,
    pub b: Vec<Party>,
    pub a_proxy: RoundRobin,
    pub b_proxy: RoundRobin,
}

impl Cluster {
    /// A's public URL (its proxy).
    pub fn a_url(&self) -> String {
        self.a_proxy.url()
    }
    pub fn b_url(&self) -> String {
        self.b_proxy.url()
    }
}

/// The cluster, or `None` (with a note) without `TEST_DATABASE_URL`: several
/// instances share PostgreSQL only.
pub async fn spawn_cluster(a_args: &[&str], b_args: &[&str]) -> Option<Cluster> {
    if std::env::var("TEST_DATABASE_URL").is_err() {
        eprintln!("skipped: several instances need TEST_DATABASE_URL (PostgreSQL); scripts/test.sh sets it");
        return None;
    }
    let dir = scratch_dir();
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let backends = |p: &[u16]| p.iter().map(|p| format!("127.0.0.1:{p}")).collect::<Vec<_>>();
    let a_proxy = RoundRobin::bind("127.0.0.1:0", backends(&ports[..2])).await.unwrap();
    let b_proxy = RoundRobin::bind("127.0.0.1:0", backends(&ports[2..])).await.unwrap();
    let (a_db, b_db) = (database_url(&dir, "party-a", true).await, database_url(&dir, "party-b", true).await);
    let with_public = |public: String, args: &[&str]| {
        let mut all = vec!["--public-url".to_owned(), public];
        all.extend(args.iter().map(|s| s.to_string()));
        all
    };
    let (a_args, b_args) = (with_public(a_proxy.url(), a_args), with_public(b_proxy.url(), b_args));
    let (a_url, b_url) = (a_proxy.url(), b_proxy.url());
    let (a1, a2, b1, b2) = tokio::join!(
        start("party-a", ports[0], &b_url, &a_db, &dir, &a_args),
        start("party-a", ports[1], &b_url, &a_db, &dir, &a_args),
        start("party-b", ports[2], &a_url, &b_db, &dir, &b_args),
        start("party-b", ports[3], &a_url, &b_db, &dir, &b_args),
    );
    Some(Cluster { a: vec![a1, a2], b: vec![b1, b2], a_proxy, b_proxy })
}

/// A browser that opens a new connection for every request, so that a
/// per-connection proxy sends its requests to the instances in turn.
pub fn roaming_browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(Policy::none()).pool_max_idle_per_host(0).build().unwrap()
}

/// The live grants `party` holds for `username` and `client_id`, read from its database.
pub async fn live_grants(party: &Party, username: &str, client_id: &str) -> i64 {
    let pool = database(party).await;
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM grants g JOIN users u ON u.id = g.user_id
         WHERE u.username = $1 AND g.client_id = $2 AND g.revoked_at IS NULL",
    )
    .bind(username)
    .bind(client_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    n
}

/// An EC P-256 key pair: PKCS#8 for signing and its public JWK.
pub struct ClientKey {
    pkcs8: Vec<u8>,
    pub jwk: serde_json::Value,
}

impl ClientKey {
    pub fn generate(kid: &str) -> Self {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).unwrap();
        let point = pair.public_key().as_ref();
        assert_eq!((point.len(), point[0]), (65, 4), "an uncompressed P-256 point");
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..]),
        });
        Self { pkcs8: doc.as_ref().to_vec(), jwk }
    }

    /// A client assertion of party A's client, signed with this key under `kid`.
    pub fn assertion(&self, kid: &str, aud: &str, exp: i64) -> String {
        self.assertion_of(A_CLIENT, kid, aud, exp)
    }

    /// A client assertion (RFC 7523 3) of `client_id`, signed with this key under `kid`.
    pub fn assertion_of(&self, client_id: &str, kid: &str, aud: &str, exp: i64) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(kid.to_owned());
        let claims = serde_json::json!({
            "iss": client_id, "sub": client_id, "aud": aud, "exp": exp, "iat": now(),
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ec_der(&self.pkcs8)).unwrap()
    }
}

/// A tiny HTTP server on loopback answering every request with `status`
/// (e.g. "200 OK"), `headers` (each ending in CRLF) and `body` after
/// `delay`; returns its URL. `body` is made from that URL. Stands for a
/// client's JWKS or metadata document.
pub async fn serve_http(status: &str, headers: &str, body: impl FnOnce(&str) -> String, delay: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let body = body(&url);
    let response =
        format!("HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let response = response.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                tokio::time::sleep(delay).await;
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    url
}

/// [`serve_http`] with a JSON `body`, at once.
pub async fn serve_json(body: serde_json::Value) -> String {
    serve_http("200 OK", "Content-Type: application/json\r\n", move |_| body.to_string(), Duration::ZERO).await
}

/// What a user does after a link attempt from `from` broke off: "Try again"
/// on the latest attempt's outcome page when it offers it, the peer's
/// request when it still waits for an answer, and otherwise a new link.
/// Returns the outcome page it ends on.
pub async fn retry_link(user: &reqwest::Client, from: &str, to: &str, name: &str, password: &str) -> String {
    let (_, latest) = page(user, &format!("{from}/link/outcome")).await;
    if data_page(&latest).as_deref() == Some("link-outcome") {
        // Nothing runs any more: an attempt still "talking to" the peer was left by a dead instance.
        assert_ne!(flow_step(&latest), "sending", "the user is left waiting on an attempt nobody carries on: {latest}");
        if latest.contains("value=\"retry\"") {
            let flow = input_value(&latest, "flow").expect("the retry form names its flow");
            let (_, outcome) =
                submit(user, &format!("{from}/link/reciprocal"), &latest, &[("flow", &flow), ("decision", "retry")])
                    .await;
            return outcome;
        }
        if flow_step(&latest) == "consent" {
            let flow = input_value(&latest, "flow").unwrap_or_default();
            let (_, consent) = page(user, &format!("{from}/link/reciprocal?flow={flow}")).await;
            if data_page(&consent).as_deref() == Some("reciprocal-consent") {
                return answer_reciprocal(user, from, &consent, "approve").await;
            }
        }
    }
    link(user, from, to, name, password, "approve").await
}

/// Whether `username`'s link is whole at both parties of the cluster, read
/// from the databases of `a` and `b`: each holds an unbroken token from the
/// other, and exactly one live grant of the other's client, the one that token belongs to.
pub async fn link_is_whole(a: &Party, b: &Party, username: &str) -> Result<(), String> {
    for (here, there, client) in [(a, b, B_CLIENT), (b, a, A_CLIENT)] {
        let grants = live_grants(here, username, client).await;
        if grants != 1 {
            return Err(format!("{}: {grants} live grants of {client} for {username}", here.name));
        }
        let held = held_token(there, username).await.ok_or(format!("{} holds no token for {username}", there.name))?;
        let pool = database(there).await;
        let (broken,): (Option<String>,) =
            sqlx::query_as("SELECT p.broken FROM peer_tokens p JOIN users u ON u.id = p.user_id WHERE u.username = $1")
                .bind(username)
                .fetch_one(&pool)
                .await
                .unwrap();
        pool.close().await;
        if let Some(why) = broken {
            return Err(format!("{}'s token for {username} is marked broken: {why}", there.name));
        }
        let gid = jwt_claims(&held)["gid"].as_str().unwrap_or_default().to_owned();
        let pool = database(here).await;
        let (live,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM grants WHERE id = $1 AND revoked_at IS NULL")
            .bind(&gid)
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        if live != 1 {
            return Err(format!("{} holds a token of grant {gid} that {} does not keep live", there.name, here.name));
        }
    }
    Ok(())
}
