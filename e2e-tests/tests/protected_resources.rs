//! Every API of a party is a protected resource of its own (RFC 9728 3.1,
//! 3.3): its metadata is found by path insertion, names exactly its URL, and
//! a token asked for that URL (RFC 8707) works there and nowhere else. The
//! party-wide document and tokens stay. Challenges as RFC 6750 3.1 has them.

mod common;

use common::*;

#[tokio::test]
async fn each_api_has_its_own_resource_metadata_found_by_path_insertion() {
    let pair = spawn_pair().await;
    let doc = |path: &str| http().get(format!("{}/.well-known/oauth-protected-resource{path}", pair.b.url)).send();
    for path in ["/api/player", "/api/player/play", "/api/whoami"] {
        let meta = json_ok(doc(path).await.unwrap()).await;
        assert_eq!(meta["resource"], format!("{}{path}", pair.b.url), "3.3: the URL the document was found for");
        assert_eq!(meta["authorization_servers"], serde_json::json!([pair.b.url]));
        assert_eq!(meta["bearer_methods_supported"], serde_json::json!(["header"]));
    }
    let player = json_ok(doc("/api/player").await.unwrap()).await;
    assert_eq!(player["scopes_supported"], serde_json::json!(["player:read", "player:control"]));
    // The party-wide document is still there; a page or an unknown path has none.
    assert_eq!(json_ok(doc("").await.unwrap()).await["resource"], pair.b.url.as_str());
    for path in ["/login", "/api/playerx", "/api/now-playing"] {
        assert_eq!(doc(path).await.unwrap().status(), 404, "{path}");
    }
}

#[tokio::test]
async fn the_challenge_names_the_document_of_the_path_called_and_no_error_without_a_token() {
    let pair = spawn_pair().await;
    let res = http().get(format!("{}/api/player", pair.b.url)).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let challenge = www_authenticate(&res);
    let document = format!("{}/.well-known/oauth-protected-resource/api/player", pair.b.url);
    assert!(challenge.contains(&format!("resource_metadata=\"{document}\"")), "{challenge}");
    assert!(!challenge.contains("error"), "RFC 6750 3.1: no error code without credentials: {challenge}");
    assert!(res.text().await.unwrap().is_empty(), "nor an error in the body");
}

#[tokio::test]
async fn a_token_for_one_api_works_there_and_at_no_other_api() {
    let pair = spawn_pair().await;
    let player = format!("{}/api/player", pair.b.url);
    // client_credentials with resource = the API's URL (RFC 8707 2).
    let token = client_credentials_token_at_b(&pair, &[("resource", &player)]).await;
    assert_eq!(jwt_claims(&token)["aud"], player.as_str());
    let whoami = http().get(format!("{}/api/whoami", pair.b.url)).bearer_auth(&token).send().await.unwrap();
    expect_api_error(whoami, 401, "invalid_token").await;

    // The code flow with resource = the player's URL: the user's token is the player's alone.
    let browser = browser();
    login(&browser, &pair.b.url, "alice", demo_password("alice")).await;
    let (verifier, challenge) = pkce_pair();
    let url = url_with(&b_authorize_url(&pair, "player:read", &challenge, "s1"), &[("resource", &player)]);
    let back = authorize(&browser, &url).await;
    let code = location_params(&back).get("code").cloned().expect("a code");
    let (access, refresh) = token_pair(redeem_code_at_b(&pair, &code, &verifier).await).await;
    assert_eq!(jwt_claims(&access)["aud"], player.as_str());
    assert_eq!(player_at_b(&pair, &access).await.status(), 200);
    let whoami = http().get(format!("{}/api/whoami", pair.b.url)).bearer_auth(&access).send().await.unwrap();
    expect_api_error(whoami, 401, "invalid_token").await;
    // A refresh keeps the binding.
    let (next, _) = token_pair(refresh_at_b(&pair, &refresh).await).await;
    assert_eq!(jwt_claims(&next)["aud"], player.as_str());

    // Another party's URL, or a page here, is no resource of B's.
    for other in [format!("{}/api/now-playing", pair.a.url), format!("{}/login", pair.b.url)] {
        let res = client_credentials(&pair.b.url, A_CLIENT, A_SECRET, &[("resource", &other)]).await;
        expect_oauth_error(res, 400, "invalid_target").await;
    }
}

#[tokio::test]
async fn the_metadata_lists_signing_algorithms_wherever_it_lists_private_key_jwt() {
    let pair = spawn_pair().await;
    let meta =
        json_ok(http().get(format!("{}/.well-known/oauth-authorization-server", pair.a.url)).send().await.unwrap())
            .await;
    for endpoint in ["token", "revocation", "introspection"] {
        let methods = meta[format!("{endpoint}_endpoint_auth_methods_supported")].as_array().unwrap().clone();
        assert!(methods.contains(&"private_key_jwt".into()), "{endpoint}");
        let algs = &meta[format!("{endpoint}_endpoint_auth_signing_alg_values_supported")];
        assert!(algs.as_array().is_some_and(|a| a.contains(&"ES256".into())), "RFC 8414 2, {endpoint}: {meta}");
    }
}
