//! Malformed, oversized and hostile requests: each gets an exact 4xx with an
//! RFC 6749 5.2 JSON body (protocol endpoints and APIs) or the error page
//! (browsers), never a 5xx.

mod common;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const OVER_LIMIT: usize = 64 * 1024 + 1;

/// A raw form body to B's token endpoint as `voice-assistant` (Basic).
async fn raw_token_request(pair: &Pair, content_type: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
    http()
        .post(format!("{}/token", pair.b.url))
        .basic_auth(A_CLIENT, Some(A_SECRET))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

const FORM: &str = "application/x-www-form-urlencoded";

/// A client_credentials form padded with an ignored parameter to `len` bytes.
fn padded_form(len: usize) -> String {
    let mut body = String::from("grant_type=client_credentials&pad=");
    body.push_str(&"a".repeat(len - body.len()));
    body
}

#[tokio::test]
async fn a_body_over_64_kib_is_refused_with_413() {
    let pair = spawn_pair().await;
    // Just under the limit is served, so the refusal below is about size.
    json_ok(raw_token_request(&pair, FORM, padded_form(60 * 1024)).await).await;
    expect_oauth_error(raw_token_request(&pair, FORM, padded_form(OVER_LIMIT)).await, 413, "invalid_request").await;
    let res = http()
        .post(format!("{}/api/player/play", pair.b.url))
        .header("content-type", "application/json")
        .body(format!("{{\"query\": \"{}\"}}", "a".repeat(OVER_LIMIT)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413, "the API refuses it too");
    // A browser posting an oversized form gets a page, never raw JSON.
    let res = http()
        .post(format!("{}/login", pair.b.url))
        .header("content-type", FORM)
        .body(padded_form(OVER_LIMIT))
        .send()
        .await
        .unwrap();
    expect_error_page(res, 413).await;
}

/// Sends `body` chunked (no Content-Length) over a raw connection; returns
/// the status and the body of the response.
async fn chunked_post(base_port: u16, path: &str, body: &[u8]) -> (u16, String) {
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", base_port)).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{base_port}\r\nAuthorization: Basic {}\r\n\
         Content-Type: {FORM}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        base64_basic(A_CLIENT, A_SECRET)
    );
    let mut wire = head.into_bytes();
    for chunk in body.chunks(8 * 1024) {
        wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        wire.extend_from_slice(chunk);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    // The server may answer and close before it has read everything.
    let _ = socket.write_all(&wire).await;
    let mut response = Vec::new();
    let _ = socket.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP response: {text:?}"));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

fn base64_basic(id: &str, secret: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
}

#[tokio::test]
async fn a_chunked_body_over_64_kib_is_refused_with_a_4xx() {
    let pair = spawn_pair().await;
    let (status, body) = chunked_post(pair.b.port, "/token", padded_form(1024).as_bytes()).await;
    assert_eq!(status, 200, "a small chunked body is served: {body}");

    let (status, body) = chunked_post(pair.b.port, "/token", padded_form(OVER_LIMIT + 16 * 1024).as_bytes()).await;
    assert!((400..500).contains(&status), "expected a 4xx, got {status}: {body}");
    assert!(!body.contains("access_token"), "{body}");
    // The party is still serving.
    assert_eq!(http().get(format!("{}/healthz", pair.b.url)).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_duplicated_parameter_is_invalid_request() {
    let pair = spawn_pair().await;
    let res = raw_token_request(&pair, FORM, "grant_type=client_credentials&grant_type=client_credentials").await;
    expect_oauth_error(res, 400, "invalid_request").await;
    let res =
        raw_token_request(&pair, FORM, "grant_type=client_credentials&scope=player:read&scope=player:control").await;
    expect_oauth_error(res, 400, "invalid_request").await;
}

#[tokio::test]
async fn a_json_body_at_the_token_endpoint_is_invalid_request() {
    let pair = spawn_pair().await;
    let res = raw_token_request(&pair, "application/json", r#"{"grant_type": "client_credentials"}"#).await;
    expect_oauth_error(res, 400, "invalid_request").await;
}

#[tokio::test]
async fn a_parameter_that_is_not_utf8_is_invalid_request() {
    let pair = spawn_pair().await;
    let res = raw_token_request(&pair, FORM, "grant_type=client_credentials&scope=%FF%FE").await;
    expect_oauth_error(res, 400, "invalid_request").await;
}

#[tokio::test]
async fn a_nul_character_is_invalid_request_and_never_a_server_error() {
    // Party B runs on PostgreSQL when it can, which cannot store NUL: it must never get that far.
    let pair = spawn_pair().await;
    let res = http()
        .post(format!("{}/token", pair.b.url))
        .header("content-type", FORM)
        .body("grant_type=client_credentials&client_id=voice%00assistant&client_secret=x")
        .send()
        .await
        .unwrap();
    expect_oauth_error(res, 400, "invalid_request").await;
    let basic = http()
        .post(format!("{}/token", pair.b.url))
        .basic_auth("voice\0assistant", Some("x"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    expect_oauth_error(basic, 401, "invalid_client").await;
    let page = http().get(format!("{}/login?next=%00", pair.b.url)).send().await.unwrap();
    expect_error_page(page, 400).await;
    assert!(!pair.b.log().contains(" ERROR "), "{}", pair.b.log());
}

#[tokio::test]
async fn an_unknown_parameter_is_ignored() {
    let pair = spawn_pair().await;
    // RFC 6749 3.2: the server MUST ignore unrecognized request parameters.
    let res = raw_token_request(&pair, FORM, "grant_type=client_credentials&flavour=strawberry&x-trace=1").await;
    let body = json_ok(res).await;
    assert_eq!(body["token_type"], "Bearer");
}

#[tokio::test]
async fn a_missing_grant_type_is_invalid_request() {
    let pair = spawn_pair().await;
    expect_oauth_error(raw_token_request(&pair, FORM, "scope=player:read").await, 400, "invalid_request").await;
    expect_oauth_error(raw_token_request(&pair, FORM, "grant_type=").await, 400, "invalid_request").await;
}

#[tokio::test]
async fn malformed_json_at_the_api_is_a_400_json_error() {
    let pair = spawn_pair().await;
    let (token, _) = token_for(&pair, "alice", "player:read player:control").await;
    let play = |body: &'static str, content_type: &'static str| {
        http()
            .post(format!("{}/api/player/play", pair.b.url))
            .bearer_auth(&token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    for (body, content_type) in [
        (r#"{"query": "jazz""#, "application/json"),
        (r#"{"query": 42}"#, "application/json"),
        (r#"{"song": "jazz"}"#, "application/json"),
        ("query=jazz", "application/x-www-form-urlencoded"),
    ] {
        let res = play(body, content_type).await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        assert_eq!(status, 400, "{body}: {text}");
        let json: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{body}: not JSON: {text}"));
        assert!(json["error"].is_string() && json["error_description"].is_string(), "{body}: {text}");
    }
    // The token itself is fine.
    let res = play(r#"{"query": "jazz"}"#, "application/json").await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_duplicated_client_id_at_authorize_gets_an_error_page() {
    let pair = spawn_pair().await;
    let user = browser();
    login(&user, &pair.b.url, "alice", "wonderland").await;
    let (_, challenge) = pkce_pair();
    let url = format!("{}&client_id=evil-client", b_authorize_url(&pair, "player:read", &challenge, "s"));
    expect_error_page(user.get(&url).send().await.unwrap(), 400).await;
}

#[tokio::test]
async fn a_login_without_its_csrf_token_is_refused() {
    let pair = spawn_pair().await;
    let user = browser();
    // The browser has a session (and so a CSRF token) but does not send it.
    assert_eq!(user.get(format!("{}/login", pair.b.url)).send().await.unwrap().status(), 200);
    let res = user
        .post(format!("{}/login", pair.b.url))
        .form(&[("username", "alice"), ("password", "wonderland"), ("next", "/")])
        .send()
        .await
        .unwrap();
    expect_error_page(res, 403).await;
    // A wrong token is refused the same way.
    let res = user
        .post(format!("{}/login", pair.b.url))
        .form(&[("csrf_token", "forged"), ("username", "alice"), ("password", "wonderland")])
        .send()
        .await
        .unwrap();
    expect_error_page(res, 403).await;
    // And no session came of it.
    let home = user.get(format!("{}/", pair.b.url)).send().await.unwrap();
    assert!(home.status().is_redirection());
    assert_eq!(header(&home, "location").as_deref(), Some("/login"));
}

#[tokio::test]
async fn an_unknown_path_gets_a_404_page() {
    let pair = spawn_pair().await;
    for party in [&pair.a, &pair.b] {
        let res = http().get(format!("{}/no/such/page", party.url)).send().await.unwrap();
        expect_error_page(res, 404).await;
    }
}

#[tokio::test]
async fn a_malformed_query_on_a_page_gets_an_error_page() {
    let pair = spawn_pair().await;
    let res = http().get(format!("{}/login?next=%FF%FE", pair.b.url)).send().await.unwrap();
    expect_error_page(res, 400).await;
}

#[tokio::test]
async fn a_login_never_redirects_off_site_or_fails_on_a_crafted_next() {
    let pair = spawn_pair().await;
    for next in
        ["/\t/evil.example", "/\\evil.example", "//evil.example", "/\r\nSet-Cookie: x=1", "https://evil.example"]
    {
        let user = browser();
        let page = user.get(format!("{}/login", pair.b.url)).send().await.unwrap().text().await.unwrap();
        let csrf = input_value(&page, "csrf_token").unwrap();
        let res = user
            .post(format!("{}/login", pair.b.url))
            .form(&[("csrf_token", csrf.as_str()), ("username", "alice"), ("password", "wonderland"), ("next", next)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303, "{next:?}");
        assert_eq!(res.headers()["location"], "/", "{next:?}");
    }
}
