//! The authorization code flow end to end, with the `oauth2` crate as the
//! client, against the real party binaries.

mod common;

use common::*;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge, RedirectUrl, RefreshToken, Scope,
    TokenResponse, TokenUrl,
};

type Client = oauth2::Client<
    oauth2::basic::BasicErrorResponse,
    oauth2::basic::BasicTokenResponse,
    oauth2::basic::BasicTokenIntrospectionResponse,
    oauth2::StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

/// Party A's client registration at party B, as the `oauth2` crate sees it.
fn a_at_b(pair: &Pair) -> Client {
    BasicClient::new(ClientId::new(A_CLIENT.into()))
        .set_client_secret(ClientSecret::new(A_SECRET.into()))
        .set_auth_uri(AuthUrl::new(format!("{}/authorize", pair.b.url)).unwrap())
        .set_token_uri(TokenUrl::new(format!("{}/token", pair.b.url)).unwrap())
        .set_redirect_uri(RedirectUrl::new(format!("{}/link/callback", pair.a.url)).unwrap())
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

#[tokio::test]
async fn the_code_flow_with_pkce_yields_a_token_the_api_accepts() {
    let pair = spawn_pair().await;
    let client = a_at_b(&pair);
    let user = browser();
    login(&user, &pair.b.url, "alice", "wonderland").await;

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("player:read".into()))
        .add_scope(Scope::new("player:control".into()))
        .set_pkce_challenge(challenge)
        .url();
    let back = authorize(&user, url.as_str()).await;
    assert_eq!(back.status(), 303);
    let params = location_params(&back);
    assert_eq!(params.get("state"), Some(state.secret()));
    assert_eq!(params.get("iss"), Some(&pair.b.url), "RFC 9207 iss in the authorization response");
    assert!(back.headers()["location"].to_str().unwrap().starts_with(&format!("{}/link/callback?", pair.a.url)));

    let token = client
        .exchange_code(AuthorizationCode::new(params["code"].clone()))
        .set_pkce_verifier(verifier)
        .request_async(&http())
        .await
        .expect("token response");
    let access = token.access_token().secret();
    assert!(token.refresh_token().is_some());
    let claims = jwt_claims(access);
    assert_eq!(claims["iss"], pair.b.url.as_str());
    assert_eq!(claims["aud"], pair.b.url.as_str());
    assert_eq!(claims["client_id"], A_CLIENT);
    assert_eq!(claims["scope"], "player:control player:read");

    let api = reqwest::Client::new();
    let played = api
        .post(format!("{}/api/player/play", pair.b.url))
        .bearer_auth(access)
        .json(&serde_json::json!({"query": "jazz"}))
        .send()
        .await
        .unwrap();
    assert_eq!(played.status(), 200);
    let state: serde_json::Value =
        api.get(format!("{}/api/player", pair.b.url)).bearer_auth(access).send().await.unwrap().json().await.unwrap();
    assert_eq!(state["playing"], true);
    assert_eq!(state["title"], "So What");

    // A second authorization with the same scopes does not ask again (consent remembered).
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let (url, _) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("player:read".into()))
        .set_pkce_challenge(challenge)
        .url();
    let again = user.get(url.as_str()).send().await.unwrap();
    assert_eq!(again.status(), 302, "remembered consent redirects straight back");
    assert!(location_params(&again).contains_key("code"));

    // Refresh rotation through the oauth2 crate.
    let refreshed = client
        .exchange_refresh_token(&RefreshToken::new(token.refresh_token().unwrap().secret().clone()))
        .request_async(&http())
        .await
        .expect("refresh");
    assert_ne!(refreshed.refresh_token().unwrap().secret(), token.refresh_token().unwrap().secret());
}
