//! The RFC 9700 security baseline of the authorization server, as a client,
//! a user's browser and a resource server see it: single-use codes, refresh
//! rotation, exact redirect URIs, PKCE, client authentication, audience
//! binding, revocation, introspection and private_key_jwt.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use serde_json::json;

const BOTH_SCOPES: &str = "player:read player:control";

// 1. Authorization codes are single use (RFC 6749 4.1.2, RFC 9700 4.5).

#[tokio::test]
async fn a_replayed_code_fails_and_revokes_what_its_first_redemption_issued() {
    let pair = spawn_pair().await;
    let user = browser();
    login(&user, &pair.b.url, "alice", "wonderland").await;
    let (code, verifier) = code_at_b(&pair, &user, BOTH_SCOPES).await;

    let (access, refresh) = token_pair(redeem_code_at_b(&pair, &code, &verifier).await).await;
    assert_eq!(player_at_b(&pair, &access).await.status(), 200, "the first redemption's token works");

    expect_oauth_error(redeem_code_at_b(&pair, &code, &verifier).await, 400, "invalid_grant").await;

    expect_api_error(player_at_b(&pair, &access).await, 401, "invalid_token").await;
    assert_eq!(introspect_at_b(&pair, &access).await["active"], false);
    assert_eq!(introspect_at_b(&pair, &refresh).await["active"], false);
    expect_oauth_error(refresh_at_b(&pair, &refresh).await, 400, "invalid_grant").await;
}

// 2. Refresh tokens rotate; a reused one revokes its family (RFC 9700 4.14.2).

#[tokio::test]
async fn a_reused_refresh_token_revokes_the_whole_family() {
    let pair = spawn_pair().await;
    let (first_access, first_refresh) = token_for(&pair, "alice", BOTH_SCOPES).await;

    let (access, refresh) = token_pair(refresh_at_b(&pair, &first_refresh).await).await;
    assert_ne!(refresh, first_refresh, "refresh tokens rotate");
    assert_ne!(access, first_access);
    assert_eq!(player_at_b(&pair, &access).await.status(), 200, "the refreshed token works");

    expect_oauth_error(refresh_at_b(&pair, &first_refresh).await, 400, "invalid_grant").await;

    expect_oauth_error(refresh_at_b(&pair, &refresh).await, 400, "invalid_grant").await;
    expect_api_error(player_at_b(&pair, &access).await, 401, "invalid_token").await;
    expect_api_error(player_at_b(&pair, &first_access).await, 401, "invalid_token").await;
}

// 3. Redirect URIs: exact match, never an open redirect (RFC 9700 4.1, RFC 6749 4.1.2.1).

#[tokio::test]
async fn an_unregistered_redirect_uri_or_unknown_client_gets_an_error_page_not_a_redirect() {
    let pair = spawn_pair().await;
    let user = browser();
    login(&user, &pair.b.url, "alice", "wonderland").await;
    let (_, challenge) = pkce_pair();
    let good = b_authorize_url(&pair, BOTH_SCOPES, &challenge, "s1");

    for evil in [
        "https://evil.example/callback".to_owned(),
        format!("{}/link/callback/../steal", pair.a.url),
        format!("{}/link/callbackX", pair.a.url),
    ] {
        let url = good.replace(&urlencode(&a_callback(&pair)), &urlencode(&evil));
        assert!(url.contains(&urlencode(&evil)), "the test rewrote the redirect URI");
        let html = expect_error_page(user.get(&url).send().await.unwrap(), 400).await;
        assert!(!html.contains("evil.example"), "the error page must not link to the attacker's URI");
    }

    let unknown = good.replace(&format!("client_id={A_CLIENT}"), "client_id=no-such-client");
    assert!(unknown.contains("no-such-client"));
    expect_error_page(user.get(&unknown).send().await.unwrap(), 400).await;
}

#[tokio::test]
async fn the_token_request_must_repeat_the_redirect_uri_of_the_authorization_request() {
    let pair = spawn_pair().await;
    let user = browser();
    login(&user, &pair.b.url, "alice", "wonderland").await;
    let (code, verifier) = code_at_b(&pair, &user, BOTH_SCOPES).await;

    let other = format!("{}/other/callback", pair.a.url);
    let res = token_request_at_b(
        &pair,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &verifier),
            ("redirect_uri", &other),
        ],
    )
    .await;
    expect_oauth_error(res, 400, "invalid_grant").await;

    // Leaving it out is refused too (RFC 6749 4.1.3: required when the request had it).
    let (code, verifier) = code_at_b(&pair, &user, BOTH_SCOPES).await;
    let res = token_request_at_b(
        &pair,
        &[("grant_type", "authorization_code"), ("code", &code), ("code_verifier", &verifier)],
    )
    .await;
    let error = oauth_error(res, 400).await;
    assert!(["invalid_grant", "invalid_request"].contains(&error.as_str()), "{error}");
}

// 4. PKCE S256 is required and checked (RFC 7636, RFC 9700 2.1.1).

#[tokio::test]
async fn a_wrong_or_missing_code_verifier_is_invalid_grant() {
    let pair = spawn_pair().await;
    let user = browser();
    login(&user, &pair.b.url, "alice", "wonderland").await;
    let redirect_uri = a_callback(&pair);

    let (code, verifier) = code_at_b(&pair, &user, BOTH_SCOPES).await;
    let (wrong, _) = pkce_pair();
    assert_ne!(wrong, verifier);
    let res = token_request_at_b(
        &pair,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &wrong),
            ("redirect_uri", &redirect_uri),
        ],
    )
    .await;
    expect_oauth_error(res, 400, "invalid_grant").await;

    let (code, _) = code_at_b(&pair, &user, BOTH_SCOPES).await;
    let res = token_request_at_b(
        &pair,
        &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", &redirect_uri)],
    )
    .await;
    expect_oauth_error(res, 400, "invalid_grant").await;

    // The right verifier on a fresh code still works: the failures above were about PKCE.
    let (code, verifier) = code_at_b(&pair, &user, BOTH_SCOPES).await;
    token_pair(redeem_code_at_b(&pair, &code, &verifier).await).await;
}

#[tokio::test]
async fn a_plain_or_missing_code_challenge_goes_back_to_the_client_as_invalid_request() {
    let pair = spawn_pair().await;
    let user = browser();
    login(&user, &pair.b.url, "alice", "wonderland").await;
    let (verifier, _) = pkce_pair();
    let base = format!("{}/authorize", pair.b.url);
    let common = [("response_type", "code"), ("client_id", A_CLIENT), ("scope", BOTH_SCOPES)];
    let callback = a_callback(&pair);

    let mut plain = common.to_vec();
    plain.extend([
        ("redirect_uri", callback.as_str()),
        ("state", "st-plain"),
        ("code_challenge", verifier.as_str()),
        ("code_challenge_method", "plain"),
    ]);
    let mut missing = common.to_vec();
    missing.extend([("redirect_uri", callback.as_str()), ("state", "st-missing"), ("code_challenge_method", "S256")]);

    for (params, state) in [(plain, "st-plain"), (missing, "st-missing")] {
        let res = user.get(url_with(&base, &params)).send().await.unwrap();
        assert_eq!(res.status(), 302, "{state}: an error the client can handle goes back to it");
        let location = header(&res, "location").unwrap();
        assert!(location.starts_with(&format!("{callback}?")), "{state}: redirected to {location}");
        let back = location_params(&res);
        assert_eq!(back.get("error").map(String::as_str), Some("invalid_request"), "{state}: {back:?}");
        assert_eq!(back.get("state").map(String::as_str), Some(state));
        assert_eq!(back.get("iss"), Some(&pair.b.url), "RFC 9207 iss on error responses too");
        assert!(!back.contains_key("code"), "{state}: no code without PKCE");
    }
}

// 5. Client authentication, grant types and the user's "no".

#[tokio::test]
async fn a_wrong_client_secret_is_invalid_client() {
    let pair = spawn_pair().await;
    let token = format!("{}/token", pair.b.url);

    let res = http()
        .post(&token)
        .basic_auth(A_CLIENT, Some("not-the-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let challenge = header(&res, "www-authenticate").unwrap_or_default();
    expect_oauth_error(res, 401, "invalid_client").await;
    assert!(challenge.starts_with("Basic "), "Basic was tried, so the 401 carries a Basic challenge: {challenge:?}");

    let res = http()
        .post(&token)
        .form(&[("grant_type", "client_credentials"), ("client_id", A_CLIENT), ("client_secret", "not-the-secret")])
        .send()
        .await
        .unwrap();
    expect_oauth_error(res, 401, "invalid_client").await;

    // The right secret by either method works: the failures were about the secret.
    assert_eq!(client_credentials(&pair.b.url, A_CLIENT, A_SECRET, &[]).await.status(), 200);
    let res = http()
        .post(&token)
        .form(&[("grant_type", "client_credentials"), ("client_id", A_CLIENT), ("client_secret", A_SECRET)])
        .send()
        .await
        .unwrap();
    json_ok(res).await;
}

#[tokio::test]
async fn an_unknown_grant_type_is_unsupported_grant_type() {
    let pair = spawn_pair().await;
    let res = token_request_at_b(&pair, &[("grant_type", "urn:example:no-such-grant")]).await;
    expect_oauth_error(res, 400, "unsupported_grant_type").await;
    let res =
        token_request_at_b(&pair, &[("grant_type", "password"), ("username", "alice"), ("password", "wonderland")])
            .await;
    expect_oauth_error(res, 400, "unsupported_grant_type").await;
}

#[tokio::test]
async fn denying_consent_sends_access_denied_back_with_state_and_iss() {
    let pair = spawn_pair().await;
    let user = browser();
    login(&user, &pair.b.url, "alice", "wonderland").await;
    let (_, challenge) = pkce_pair();
    let page = user.get(b_authorize_url(&pair, BOTH_SCOPES, &challenge, "st-deny")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert_eq!(data_page(&html).as_deref(), Some("consent"));

    let res = decide(&user, &pair.b.url, &html, "deny").await;
    assert_eq!(res.status(), 303);
    assert!(header(&res, "location").unwrap().starts_with(&format!("{}?", a_callback(&pair))));
    let back = location_params(&res);
    assert_eq!(back.get("error").map(String::as_str), Some("access_denied"));
    assert_eq!(back.get("state").map(String::as_str), Some("st-deny"));
    assert_eq!(back.get("iss"), Some(&pair.b.url));
    assert!(!back.contains_key("code"));

    // Nothing was remembered: the next request asks again.
    let again = user.get(b_authorize_url(&pair, BOTH_SCOPES, &challenge, "st-2")).send().await.unwrap();
    assert_eq!(again.status(), 200, "a denial is not remembered as consent");
}

// 6. Tokens are bound to one resource (RFC 8707, Distributed OAuth `host`).

#[tokio::test]
async fn client_credentials_tokens_are_bound_to_the_resource_they_name() {
    let pair = spawn_pair().await;

    let token = client_credentials_token_at_b(&pair, &[("resource", &pair.b.url)]).await;
    let claims = jwt_claims(&token);
    assert_eq!(claims["aud"], pair.b.url.as_str());
    assert_eq!(claims["iss"], pair.b.url.as_str());
    assert_eq!(claims["client_id"], A_CLIENT);

    let res = client_credentials(&pair.b.url, A_CLIENT, A_SECRET, &[("resource", &pair.a.url)]).await;
    expect_oauth_error(res, 400, "invalid_target").await;

    let host = format!("127.0.0.1:{}", pair.b.port);
    let bound = client_credentials_token_at_b(&pair, &[("host", &host)]).await;
    assert_eq!(jwt_claims(&bound)["host"], host.as_str());
    assert_eq!(jwt_claims(&bound)["aud"], pair.b.url.as_str());
    let res =
        client_credentials(&pair.b.url, A_CLIENT, A_SECRET, &[("host", &format!("127.0.0.1:{}", pair.a.port))]).await;
    expect_oauth_error(res, 400, "invalid_target").await;

    // B's token is worthless at A.
    let res = http().get(format!("{}/api/now-playing", pair.a.url)).bearer_auth(&token).send().await.unwrap();
    let challenge = expect_api_error(res, 401, "invalid_token").await;
    assert!(challenge.contains(&format!("iss=\"{}\"", pair.a.url)), "{challenge}");

    // A client_credentials token acts for no user, and the player is a user's:
    // a valid token that will not do here, so 403 (a 401 would send the client round again).
    expect_api_error(player_at_b(&pair, &token).await, 403, "insufficient_scope").await;
}

// 7. Introspection (RFC 7662) and revocation (RFC 7009).

#[tokio::test]
async fn introspection_reports_a_live_token_and_revocation_kills_its_grant() {
    let pair = spawn_pair().await;
    let (access, refresh) = token_for(&pair, "alice", BOTH_SCOPES).await;
    assert_eq!(player_at_b(&pair, &access).await.status(), 200);

    let info = introspect_at_b(&pair, &access).await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["scope"], "player:control player:read");
    assert_eq!(info["client_id"], A_CLIENT);
    assert!(info["sub"].as_str().is_some_and(|s| !s.is_empty()), "{info}");
    let exp = info["exp"].as_i64().expect("exp");
    assert!(exp > now() && exp <= now() + 3600, "exp {exp} is not in the near future");
    assert_eq!(introspect_at_b(&pair, &refresh).await["active"], true);

    let res = revoke_at_b(&pair, &access, Some("access_token")).await;
    assert_eq!(res.status(), 200);

    assert_eq!(introspect_at_b(&pair, &access).await["active"], false);
    expect_api_error(player_at_b(&pair, &access).await, 401, "invalid_token").await;
    assert_eq!(introspect_at_b(&pair, &refresh).await["active"], false, "revoking a token revokes its grant");
    expect_oauth_error(refresh_at_b(&pair, &refresh).await, 400, "invalid_grant").await;

    // RFC 7009 2.2: an unknown token is answered 200 too.
    assert_eq!(revoke_at_b(&pair, "no-such-token", None).await.status(), 200);
    assert_eq!(introspect_at_b(&pair, "no-such-token").await["active"], false);

    // Revocation needs client authentication.
    let res = http().post(format!("{}/revoke", pair.b.url)).form(&[("token", access.as_str())]).send().await.unwrap();
    expect_oauth_error(res, 401, "invalid_client").await;
    let res =
        http().post(format!("{}/introspect", pair.b.url)).form(&[("token", access.as_str())]).send().await.unwrap();
    expect_oauth_error(res, 401, "invalid_client").await;
}

// 8. The API checks scope and audience and tells a client where to get a token (RFC 6750, RFC 9728).

#[tokio::test]
async fn the_api_demands_a_valid_token_with_the_right_scope() {
    let pair = spawn_pair().await;
    let (read_only, _) = token_for(&pair, "alice", "player:read").await;
    assert_eq!(jwt_claims(&read_only)["scope"], "player:read");
    assert_eq!(player_at_b(&pair, &read_only).await.status(), 200);

    let play = |token: Option<&str>| {
        let req = http().post(format!("{}/api/player/play", pair.b.url)).json(&json!({"query": "jazz"}));
        let req = match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        req.send()
    };

    let challenge = expect_api_error(play(Some(read_only.as_str())).await.unwrap(), 403, "insufficient_scope").await;
    assert!(challenge.contains("scope=\"player:control\""), "{challenge}");

    let res = play(None).await.unwrap();
    assert_eq!(res.status(), 401);
    let challenge = www_authenticate(&res);
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(challenge.contains(&format!("iss=\"{}\"", pair.b.url)), "{challenge}");
    assert!(
        challenge.contains(&format!(
            "resource_metadata=\"{}/.well-known/oauth-protected-resource/api/player/play\"",
            pair.b.url
        )),
        "{challenge}"
    );
    assert!(!challenge.contains("error="), "no error code without credentials (RFC 6750 3.1): {challenge}");

    expect_api_error(play(Some("not-a-token")).await.unwrap(), 401, "invalid_token").await;
    let forged = {
        let mut parts: Vec<String> = read_only.split('.').map(str::to_owned).collect();
        let mut claims = jwt_claims(&read_only);
        claims["scope"] = json!("player:read player:control");
        parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
        parts.join(".")
    };
    expect_api_error(play(Some(forged.as_str())).await.unwrap(), 401, "invalid_token").await;
}

// 9. private_key_jwt (RFC 7523 2.2, 3).

async fn assertion_grant(b_url: &str, assertion: &str) -> reqwest::Response {
    http()
        .post(format!("{b_url}/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", assertion),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn private_key_jwt_accepts_a_fresh_assertion_once_and_refuses_bad_ones() {
    let kid = "test-key-1";
    let key = ClientKey::generate(kid);
    // Party B fetches voice-assistant's keys from `<peer-url>/jwks.json`: the peer is our JWKS server.
    let jwks_url = serve_json(json!({ "keys": [key.jwk] })).await;
    let dir = scratch_dir();
    let port = free_port();
    let db = database_url(&dir, "party-b", true).await;
    let b = start("party-b", port, &jwks_url, &db, &dir, &[]).await;
    let token_endpoint = format!("{}/token", b.url);

    let assertion = key.assertion(kid, &token_endpoint, now() + 60);
    let body = json_ok(assertion_grant(&b.url, &assertion).await).await;
    assert_eq!(jwt_claims(body["access_token"].as_str().unwrap())["client_id"], A_CLIENT);
    let by_issuer = key.assertion(kid, &b.url, now() + 60);
    json_ok(assertion_grant(&b.url, &by_issuer).await).await;

    // The same assertion again: its jti was seen.
    expect_oauth_error(assertion_grant(&b.url, &assertion).await, 401, "invalid_client").await;
    // Meant for another server.
    let elsewhere = key.assertion(kid, "https://other.example/token", now() + 60);
    expect_oauth_error(assertion_grant(&b.url, &elsewhere).await, 401, "invalid_client").await;
    // Expired ten minutes ago.
    let expired = key.assertion(kid, &token_endpoint, now() - 600);
    expect_oauth_error(assertion_grant(&b.url, &expired).await, 401, "invalid_client").await;
    // Signed by another key under the registered kid.
    let impostor = ClientKey::generate(kid).assertion(kid, &token_endpoint, now() + 60);
    expect_oauth_error(assertion_grant(&b.url, &impostor).await, 401, "invalid_client").await;

    // A fresh, good assertion still works after all that.
    json_ok(assertion_grant(&b.url, &key.assertion(kid, &token_endpoint, now() + 60)).await).await;
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn whoami_describes_a_valid_token_and_refuses_others() {
    let pair = spawn_pair().await;
    let (access, _) = token_for(&pair, "alice", "player:read").await;
    let whoami = |token: &str| http().get(format!("{}/api/whoami", pair.b.url)).bearer_auth(token.to_owned()).send();
    let res = whoami(&access).await.unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    let claims = jwt_claims(&access);
    assert_eq!(body["sub"], claims["sub"]);
    assert_eq!(body["client_id"], A_CLIENT);
    assert_eq!(body["scope"], "player:read");
    assert_eq!(body["exp"], claims["exp"]);
    expect_api_error(whoami("not-a-token").await.unwrap(), 401, "invalid_token").await;
    // A token of party B is not for party A's API.
    let res = http().get(format!("{}/api/whoami", pair.a.url)).bearer_auth(&access).send().await.unwrap();
    expect_api_error(res, 401, "invalid_token").await;
}
