//! A client that behaves as an MCP client does (the MCP authorization
//! specification's order of steps), knowing only an API's URL: RFC 9728 from
//! the 401 and by path insertion, RFC 8414, then a Client ID Metadata
//! Document or RFC 7591 registration, the code flow with PKCE S256 and
//! RFC 8707 `resource`, the API call, and a refresh. Written here from the
//! RFCs, not from the project's own client code.

mod common;

use common::*;
use serde_json::{json, Value};

const REDIRECT: &str = "http://127.0.0.1:49154/callback";

/// How the client makes itself known to the authorization server.
enum Identity {
    /// A metadata document served on loopback; the client_id is its URL.
    MetadataDocument,
    /// RFC 7591 registration at the advertised endpoint.
    Registration,
}

fn challenge_param(challenge: &str, name: &str) -> Option<String> {
    let key = format!("{name}=\"");
    let at = challenge.find(&key)? + key.len();
    Some(challenge[at..at + challenge[at..].find('"')?].to_owned())
}

async fn get_json(url: &str) -> Value {
    json_ok(http().get(url).send().await.unwrap()).await
}

/// The whole walk for `api`; returns the API's answer to the refreshed token.
async fn walk(pair: &Pair, api: &str, identity: Identity) -> Value {
    // 1. Unauthenticated call: 401 with resource_metadata (RFC 9728 5.1).
    let res = http().get(api).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let challenge = www_authenticate(&res);
    let metadata_url = challenge_param(&challenge, "resource_metadata").expect("resource_metadata in the challenge");
    // 2. The same document by path insertion (RFC 9728 3.1), naming exactly the API (3.3).
    let url = url::Url::parse(api).unwrap();
    let inserted = format!("{}/.well-known/oauth-protected-resource{}", url.origin().ascii_serialization(), url.path());
    assert_eq!(metadata_url, inserted);
    let resource = get_json(&inserted).await;
    assert_eq!(resource["resource"], api);
    let issuer = resource["authorization_servers"][0].as_str().unwrap().to_owned();
    // 3. RFC 8414, with what an MCP client insists on.
    let server = get_json(&format!("{issuer}/.well-known/oauth-authorization-server")).await;
    assert_eq!(server["issuer"], issuer.as_str());
    assert!(server["code_challenge_methods_supported"].as_array().unwrap().contains(&json!("S256")));
    // 4. An identity.
    let client_id = match identity {
        Identity::MetadataDocument => {
            assert_eq!(server["client_id_metadata_document_supported"], true);
            let base = serve_http(
                "200 OK",
                "Content-Type: application/json\r\n",
                |base| {
                    json!({"client_id": format!("{base}/client.json"), "client_name": "MCP Inspector",
                           "redirect_uris": [REDIRECT], "grant_types": ["authorization_code", "refresh_token"],
                           "token_endpoint_auth_method": "none"})
                    .to_string()
                },
                Default::default(),
            )
            .await;
            format!("{base}/client.json")
        }
        Identity::Registration => {
            let metadata = json!({"client_name": "MCP Inspector", "redirect_uris": [REDIRECT],
                                  "grant_types": ["authorization_code", "refresh_token"], "token_endpoint_auth_method": "none"});
            let res =
                http().post(server["registration_endpoint"].as_str().unwrap()).json(&metadata).send().await.unwrap();
            assert_eq!(res.status(), 201);
            res.json::<Value>().await.unwrap()["client_id"].as_str().unwrap().to_owned()
        }
    };
    // 5. The code flow with PKCE S256 and resource = the API (RFC 8707).
    let browser = browser();
    login(&browser, &pair.b.url, "alice", demo_password("alice")).await;
    let (verifier, challenge) = pkce_pair();
    let authorize_url = url_with(
        server["authorization_endpoint"].as_str().unwrap(),
        &[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", REDIRECT),
            ("scope", "player:read"),
            ("state", "mcp-state"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("resource", api),
        ],
    );
    let back = authorize(&browser, &authorize_url).await;
    let params = location_params(&back);
    assert_eq!(params.get("state").map(String::as_str), Some("mcp-state"));
    assert_eq!(params.get("iss"), Some(&issuer), "RFC 9207");
    let token_endpoint = server["token_endpoint"].as_str().unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", client_id.as_str()),
        ("code", params["code"].as_str()),
        ("code_verifier", &verifier),
        ("redirect_uri", REDIRECT),
        ("resource", api),
    ];
    let tokens = json_ok(http().post(token_endpoint).form(&form).send().await.unwrap()).await;
    assert_eq!(jwt_claims(tokens["access_token"].as_str().unwrap())["aud"], api);
    // 6. The API call, then a refresh and the call again.
    let call = |token: String| async move { http().get(api).bearer_auth(token).send().await.unwrap() };
    assert_eq!(call(tokens["access_token"].as_str().unwrap().to_owned()).await.status(), 200);
    let refresh = [
        ("grant_type", "refresh_token"),
        ("client_id", client_id.as_str()),
        ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
    ];
    let refreshed = json_ok(http().post(token_endpoint).form(&refresh).send().await.unwrap()).await;
    json_ok(call(refreshed["access_token"].as_str().unwrap().to_owned()).await).await
}

#[tokio::test]
async fn an_mcp_style_client_reaches_the_player_with_a_client_metadata_document() {
    let pair = spawn_pair_with(&[], &["--insecure-client-metadata"]).await;
    let answer = walk(&pair, &format!("{}/api/player", pair.b.url), Identity::MetadataDocument).await;
    assert!(answer.get("playing").is_some(), "{answer}");
}

#[tokio::test]
async fn an_mcp_style_client_reaches_the_player_after_registering() {
    let pair = spawn_pair().await;
    let answer = walk(&pair, &format!("{}/api/player", pair.b.url), Identity::Registration).await;
    assert!(answer.get("playing").is_some(), "{answer}");
}
