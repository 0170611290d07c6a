//! Distributed OAuth (seed 004; CONTRACT section 5): a client that knows only
//! an API's URL finds the issuer from the 401, checks the metadata, and gets
//! a token bound to that API, which the other party's API rejects.

mod common;

use common::*;
use shared_protocol::client::discovery::{access_for_api, DiscoveryError, TrustedIssuer};

#[tokio::test]
async fn a_client_knowing_only_the_api_url_gets_a_token_bound_to_that_api() {
    let pair = spawn_pair().await;
    let api = format!("{}/api/whoami", pair.b.url);
    let trusted = [TrustedIssuer { issuer: &pair.b.url, client_id: A_CLIENT, client_secret: A_SECRET }];
    let access = access_for_api(&http(), &api, "player:read", &trusted).await.expect("discovery");
    assert_eq!(access.issuer, pair.b.url);
    assert_eq!(access.resource, pair.b.url);
    let claims = jwt_claims(&access.access_token);
    assert_eq!(claims["aud"], pair.b.url.as_str());
    assert_eq!(claims["host"], format!("127.0.0.1:{}", pair.b.port), "the host the client called");

    let ok = http().get(&api).bearer_auth(&access.access_token).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    // Access token reuse (draft section 5.1): the other API refuses it.
    let elsewhere =
        http().get(format!("{}/api/now-playing", pair.a.url)).bearer_auth(&access.access_token).send().await;
    expect_api_error(elsewhere.unwrap(), 401, "invalid_token").await;
}

#[tokio::test]
async fn credentials_go_only_to_a_trusted_issuer_and_only_after_a_challenge() {
    let pair = spawn_pair().await;
    // This client trusts only A: B's API names B, so nothing is sent anywhere.
    let trusted = [TrustedIssuer { issuer: &pair.a.url, client_id: B_CLIENT, client_secret: B_SECRET }];
    let err =
        access_for_api(&http(), &format!("{}/api/player", pair.b.url), "player:read", &trusted).await.unwrap_err();
    assert_eq!(err, DiscoveryError::UntrustedIssuer(vec![pair.b.url.clone()]));
    // A public URL challenges nothing.
    let err = access_for_api(&http(), &format!("{}/healthz", pair.b.url), "player:read", &trusted).await.unwrap_err();
    assert!(matches!(err, DiscoveryError::NoChallenge(_)), "{err}");
}
