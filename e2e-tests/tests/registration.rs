//! Clients that arrive without hand configuration: RFC 7591 dynamic
//! registration at `/register` and RFC 7592 read and delete, driven as a
//! stock client would drive them, against the real party B.

mod common;

use common::*;
use serde_json::{json, Value};

/// A public client's code redeemed at B with its PKCE verifier (RFC 6749 4.1.3, RFC 7636 4.5).
async fn redeem_as_public_client(pair: &Pair, client_id: &str, code: &str, verifier: &str, redirect: &str) -> Value {
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", client_id),
        ("code", code),
        ("code_verifier", verifier),
        ("redirect_uri", redirect),
    ];
    json_ok(http().post(format!("{}/token", pair.b.url)).form(&form).send().await.unwrap()).await
}

async fn register(pair: &Pair, metadata: &Value) -> reqwest::Response {
    http().post(format!("{}/register", pair.b.url)).json(metadata).send().await.unwrap()
}

/// A registered client's answer (201), or a panic naming what came back.
async fn registered(pair: &Pair, metadata: Value) -> Value {
    let res = register(pair, &metadata).await;
    let status = res.status();
    let no_store = header(&res, "cache-control");
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    assert_eq!(no_store.as_deref(), Some("no-store"), "RFC 7591 3.2.1");
    body
}

#[tokio::test]
async fn a_native_app_registers_and_runs_the_code_flow_with_pkce() {
    let pair = spawn_pair().await;
    let meta =
        json_ok(http().get(format!("{}/.well-known/oauth-authorization-server", pair.b.url)).send().await.unwrap())
            .await;
    assert_eq!(meta["registration_endpoint"], format!("{}/register", pair.b.url));

    let redirect = "http://127.0.0.1:49152/callback";
    let app = registered(
        &pair,
        json!({"client_name": "Jukebox CLI", "redirect_uris": [redirect], "token_endpoint_auth_method": "none",
               "grant_types": ["authorization_code", "refresh_token"], "scope": "player:read"}),
    )
    .await;
    let client_id = app["client_id"].as_str().unwrap().to_owned();
    assert!(app.get("client_secret").is_none(), "a public client gets no secret: {app}");
    assert_eq!(app["redirect_uris"], json!([redirect]));
    assert!(app["registration_access_token"].is_string());

    // The code flow, as any public client runs it: PKCE S256, its own redirect URI.
    let browser = browser();
    login(&browser, &pair.b.url, "alice", demo_password("alice")).await;
    let (verifier, challenge) = pkce_pair();
    let authorize_url = url_with(
        &format!("{}/authorize", pair.b.url),
        &[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", redirect),
            ("scope", "player:read"),
            ("state", "s1"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let consent = browser.get(&authorize_url).send().await.unwrap().text().await.unwrap();
    assert!(consent.contains("Jukebox CLI") && consent.contains("data-registered"), "the page says who vouches");
    assert!(consent.contains("127.0.0.1"), "and where the answer goes");
    let back = authorize(&browser, &authorize_url).await;
    assert!(header(&back, "location").unwrap().starts_with(redirect));
    let code = location_params(&back).get("code").cloned().expect("a code");
    let tokens = redeem_as_public_client(&pair, &client_id, &code, &verifier, redirect).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(player_at_b(&pair, access).await.status(), 200);
    let refresh = [
        ("grant_type", "refresh_token"),
        ("client_id", &client_id),
        ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
    ];
    json_ok(http().post(format!("{}/token", pair.b.url)).form(&refresh).send().await.unwrap()).await;

    // It is on alice's home page, which can take its access back.
    let home = browser.get(format!("{}/", pair.b.url)).send().await.unwrap().text().await.unwrap();
    assert!(home.contains("Jukebox CLI"), "listed once it holds access");
}

#[tokio::test]
async fn a_registration_is_read_and_deleted_with_its_token_and_deleting_ends_its_tokens() {
    let pair = spawn_pair().await;
    let app = registered(&pair, json!({"client_name": "Nightly sync", "grant_types": ["client_credentials"]})).await;
    let (client_id, secret) = (app["client_id"].as_str().unwrap(), app["client_secret"].as_str().unwrap());
    let registration = app["registration_client_uri"].as_str().unwrap();
    let token = app["registration_access_token"].as_str().unwrap();
    assert_eq!(app["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(app["response_types"], json!([]));

    let read = json_ok(http().get(registration).bearer_auth(token).send().await.unwrap()).await;
    assert_eq!(read["client_name"], "Nightly sync");
    assert!(read.get("client_secret").is_none() && read.get("registration_access_token").is_none());
    for wrong in [Some("not-the-token"), None] {
        let req = http().get(registration);
        let req = match wrong {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        expect_oauth_error(req.send().await.unwrap(), 401, "invalid_token").await;
    }
    // Another client's registration token reads nothing of this one.
    let other = registered(&pair, json!({"grant_types": ["client_credentials"]})).await;
    let res = http().get(registration).bearer_auth(other["registration_access_token"].as_str().unwrap()).send().await;
    expect_oauth_error(res.unwrap(), 401, "invalid_token").await;

    // However often it asks, one grant is kept for it, and deleting ends every token.
    let earlier = json_ok(client_credentials(&pair.b.url, client_id, secret, &[]).await).await;
    let earlier = earlier["access_token"].as_str().unwrap().to_owned();
    let access = json_ok(client_credentials(&pair.b.url, client_id, secret, &[]).await).await;
    let access = access["access_token"].as_str().unwrap().to_owned();
    assert_eq!(jwt_claims(&earlier)["gid"], jwt_claims(&access)["gid"]);
    let whoami = || http().get(format!("{}/api/whoami", pair.b.url)).bearer_auth(&access).send();
    assert_eq!(whoami().await.unwrap().status(), 200);

    let deleted = http().delete(registration).bearer_auth(token).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    expect_api_error(whoami().await.unwrap(), 401, "invalid_token").await;
    let earlier_call = http().get(format!("{}/api/whoami", pair.b.url)).bearer_auth(&earlier).send().await;
    expect_api_error(earlier_call.unwrap(), 401, "invalid_token").await;
    expect_oauth_error(client_credentials(&pair.b.url, client_id, secret, &[]).await, 401, "invalid_client").await;
    expect_oauth_error(http().get(registration).bearer_auth(token).send().await.unwrap(), 401, "invalid_token").await;
}

#[tokio::test]
async fn a_registered_client_authenticates_only_with_the_method_it_registered() {
    let pair = spawn_pair().await;
    let token = format!("{}/token", pair.b.url);
    let by_post = |id: &str, secret: &str| {
        let form = [("grant_type", "client_credentials"), ("client_id", id), ("client_secret", secret)];
        http().post(&token).form(&form).send()
    };
    let basic = registered(&pair, json!({"grant_types": ["client_credentials"]})).await;
    let (id, secret) = (basic["client_id"].as_str().unwrap(), basic["client_secret"].as_str().unwrap());
    json_ok(client_credentials(&pair.b.url, id, secret, &[]).await).await;
    let (error, why) = oauth_error_parts(by_post(id, secret).await.unwrap(), 401).await;
    assert_eq!(error, "invalid_client");
    assert!(why.contains("client_secret_basic"), "{why}");

    let post = registered(
        &pair,
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post"}),
    )
    .await;
    let (id, secret) = (post["client_id"].as_str().unwrap(), post["client_secret"].as_str().unwrap());
    json_ok(by_post(id, secret).await.unwrap()).await;
    let res = client_credentials(&pair.b.url, id, secret, &[]).await;
    assert!(header(&res, "www-authenticate").is_some_and(|h| h.starts_with("Basic")), "RFC 6749 5.2");
    expect_oauth_error(res, 401, "invalid_client").await;
}

#[tokio::test]
async fn a_device_registers_its_own_key_and_authenticates_with_assertions() {
    let pair = spawn_pair().await;
    let key = ClientKey::generate("device-key-1");
    let app = registered(
        &pair,
        json!({"client_name": "Living-room speaker", "token_endpoint_auth_method": "private_key_jwt",
               "grant_types": ["client_credentials"], "jwks": {"keys": [key.jwk]}}),
    )
    .await;
    let client_id = app["client_id"].as_str().unwrap();
    assert!(app.get("client_secret").is_none(), "its key is its credential");
    let token_endpoint = format!("{}/token", pair.b.url);
    let assertion = key.assertion_of(client_id, "device-key-1", &token_endpoint, now() + 60);
    let form = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
        ("client_assertion", assertion.as_str()),
    ];
    let tokens = json_ok(http().post(&token_endpoint).form(&form).send().await.unwrap()).await;
    assert_eq!(jwt_claims(tokens["access_token"].as_str().unwrap())["client_id"], client_id);
    // Another key, claiming to be this device, is refused.
    let impostor =
        ClientKey::generate("device-key-1").assertion_of(client_id, "device-key-1", &token_endpoint, now() + 60);
    let form = [form[0], form[1], ("client_assertion", impostor.as_str())];
    expect_oauth_error(http().post(&token_endpoint).form(&form).send().await.unwrap(), 401, "invalid_client").await;
}

#[tokio::test]
async fn every_registration_error_is_rfc_7591_json_and_the_link_stays_out_of_reach() {
    let pair = spawn_pair_with(&[], &["--rate-registration", "100/min", "--rate-registration-global", "100/s"]).await;
    let cb = json!(["https://app.example/cb"]);
    for (metadata, code) in [
        (json!({"redirect_uris": ["http://app.example/cb"]}), "invalid_redirect_uri"),
        (json!({"redirect_uris": ["https://app.example/cb#x"]}), "invalid_redirect_uri"),
        (json!({"redirect_uris": ["https://app.example/cb http://evil.example/cb"]}), "invalid_redirect_uri"),
        (json!({}), "invalid_redirect_uri"),
        (
            json!({"redirect_uris": cb, "grant_types": ["urn:ietf:params:oauth:grant-type:reciprocal"]}),
            "invalid_client_metadata",
        ),
        (json!({"redirect_uris": cb, "scope": "assistant:notify"}), "invalid_client_metadata"),
        (json!({"redirect_uris": cb, "token_endpoint_auth_method": "private_key_jwt"}), "invalid_client_metadata"),
        (json!({"redirect_uris": "https://app.example/cb"}), "invalid_client_metadata"),
    ] {
        expect_oauth_error(register(&pair, &metadata).await, 400, code).await;
    }
    let form = http().post(format!("{}/register", pair.b.url)).form(&[("redirect_uris", "https://a/cb")]).send().await;
    expect_oauth_error(form.unwrap(), 400, "invalid_client_metadata").await;

    // A registered client asking for the reciprocal grant is refused it, whatever it sends.
    let app = registered(&pair, json!({"grant_types": ["client_credentials"]})).await;
    let (id, secret) = (app["client_id"].as_str().unwrap(), app["client_secret"].as_str().unwrap());
    let res = http()
        .post(format!("{}/token", pair.b.url))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "urn:ietf:params:oauth:grant-type:reciprocal"), ("code", "c"), ("access_token", "t")])
        .send()
        .await
        .unwrap();
    expect_oauth_error(res, 400, "unauthorized_client").await;
}

#[tokio::test]
async fn registration_is_rate_limited_per_address_and_capped() {
    let pair = spawn_pair_with(&[], &["--rate-registration", "3/min", "--max-registered-clients", "2"]).await;
    let metadata = json!({"grant_types": ["client_credentials"]});
    for _ in 0..2 {
        registered(&pair, metadata.clone()).await;
    }
    // At the cap: 503 until unused registrations are forgotten.
    let full = register(&pair, &metadata).await;
    assert_eq!(full.status(), 503);
    assert!(header(&full, "retry-after").is_some());
    let limited = register(&pair, &metadata).await;
    assert_eq!(limited.status(), 429);
    assert!(header(&limited, "retry-after").is_some());
}

// Client ID Metadata Documents: the client_id is the URL of the client's metadata.

const REDIRECT: &str = "http://127.0.0.1:49153/callback";

/// A metadata document served on loopback at `<base>/client.json`, naming
/// itself `client_id` unless `claims` says otherwise; returns that URL.
async fn document(status: &str, headers: &str, extra: Value, delay: std::time::Duration) -> String {
    let url = serve_http(
        status,
        &format!("Content-Type: application/json\r\n{headers}"),
        move |base| {
            let mut doc = json!({"client_id": format!("{base}/client.json"), "client_name": "Radio Widget",
                                 "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"});
            for (k, v) in extra.as_object().unwrap() {
                doc[k] = v.clone();
            }
            doc.to_string()
        },
        delay,
    )
    .await;
    format!("{url}/client.json")
}

fn authorize_as(pair: &Pair, client_id: &str, challenge: &str) -> String {
    url_with(
        &format!("{}/authorize", pair.b.url),
        &[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("scope", "player:read"),
            ("state", "s1"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ],
    )
}

#[tokio::test]
async fn a_client_known_only_by_its_metadata_url_runs_the_code_flow() {
    let pair = spawn_pair_with(&[], &["--insecure-client-metadata"]).await;
    let meta =
        json_ok(http().get(format!("{}/.well-known/oauth-authorization-server", pair.b.url)).send().await.unwrap())
            .await;
    assert_eq!(meta["client_id_metadata_document_supported"], true);
    let client_id = document("200 OK", "Cache-Control: max-age=600\r\n", json!({}), Default::default()).await;

    let browser = browser();
    login(&browser, &pair.b.url, "alice", demo_password("alice")).await;
    let (verifier, challenge) = pkce_pair();
    let consent = browser.get(authorize_as(&pair, &client_id, &challenge)).send().await.unwrap().text().await.unwrap();
    assert!(consent.contains("Radio Widget") && consent.contains("<strong>127.0.0.1</strong>"), "{consent}");
    let back = authorize(&browser, &authorize_as(&pair, &client_id, &challenge)).await;
    let code = location_params(&back).get("code").cloned().expect("a code");
    let tokens = redeem_as_public_client(&pair, &client_id, &code, &verifier, REDIRECT).await;
    assert_eq!(jwt_claims(tokens["access_token"].as_str().unwrap())["client_id"], client_id.as_str());
    assert_eq!(player_at_b(&pair, tokens["access_token"].as_str().unwrap()).await.status(), 200);
    let home = browser.get(format!("{}/", pair.b.url)).send().await.unwrap().text().await.unwrap();
    assert!(home.contains("Radio Widget"), "on the home page like any client with access");
}

#[tokio::test]
async fn a_metadata_document_that_cannot_vouch_for_its_client_is_refused() {
    let insecure = spawn_pair_with(&[], &["--insecure-client-metadata"]).await;
    let big = json!({"client_name": "x".repeat(90), "padding": "x".repeat(6 * 1024)});
    let slow = std::time::Duration::from_secs(6);
    let cases = [
        (
            "another client_id",
            document("200 OK", "", json!({"client_id": "https://other.example/c.json"}), Default::default()).await,
        ),
        (
            "a redirect to elsewhere",
            document("302 Found", "Location: https://other.example/c.json\r\n", json!({}), Default::default()).await,
        ),
        ("larger than 5 KiB", document("200 OK", "", big, Default::default()).await),
        ("slower than 5 s", document("200 OK", "", json!({}), slow).await),
        (
            "a redirect URI of another kind",
            document("200 OK", "", json!({"redirect_uris": ["http://evil.example/cb"]}), Default::default()).await,
        ),
        (
            "a shared secret",
            document("200 OK", "", json!({"token_endpoint_auth_method": "client_secret_basic"}), Default::default())
                .await,
        ),
    ];
    let user = browser();
    login(&user, &insecure.b.url, "alice", demo_password("alice")).await;
    let (_, challenge) = pkce_pair();
    for (what, client_id) in &cases {
        let res = user.get(authorize_as(&insecure, client_id, &challenge)).send().await.unwrap();
        assert_eq!(res.status(), 400, "{what}");
    }
    // Without --insecure-client-metadata a loopback document is never fetched,
    // by address or by a name that resolves there.
    let pair = spawn_pair().await;
    let good = document("200 OK", "", json!({}), Default::default()).await.replace("http://", "https://");
    let browser = browser();
    login(&browser, &pair.b.url, "alice", demo_password("alice")).await;
    for client_id in [good.clone(), good.replace("127.0.0.1", "localhost")] {
        let res = browser.get(authorize_as(&pair, &client_id, &challenge)).send().await.unwrap();
        assert_eq!(res.status(), 400, "{client_id}: loopback is not public");
    }
}
