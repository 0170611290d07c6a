//! Distributed OAuth (draft-hardt-distributed-oauth, RFC 9728): a client that knows only
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
    assert_eq!(access.resource, api, "RFC 9728 3.1: the resource is the API's URL");
    let claims = jwt_claims(&access.access_token);
    assert_eq!(claims["aud"], api.as_str(), "bound to that API");
    assert_eq!(claims["host"], format!("127.0.0.1:{}", pair.b.port), "the host the client called");

    let ok = http().get(&api).bearer_auth(&access.access_token).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    // Access token reuse (draft section 5.1): the other API refuses it.
    let elsewhere =
        http().get(format!("{}/api/now-playing", pair.a.url)).bearer_auth(&access.access_token).send().await;
    expect_api_error(elsewhere.unwrap(), 401, "invalid_token").await;
    // RFC 8707: and so does another API of the same party.
    let sibling = http().get(format!("{}/api/player", pair.b.url)).bearer_auth(&access.access_token).send().await;
    expect_api_error(sibling.unwrap(), 401, "invalid_token").await;
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

/// What the stand-in server answers for a path prefix: status, headers, body.
type Route = (&'static str, u16, Vec<(String, String)>, String);

/// A stand-in server on `port` answering each path prefix with a fixed
/// status, headers and body; returns its base URL.
async fn fake_server_at(port: u16, routes: Vec<Route>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let routes = routes.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let (status, headers, body) = routes
                    .iter()
                    .find(|(p, ..)| path.starts_with(p))
                    .map(|(_, s, h, b)| (*s, h.clone(), b.clone()))
                    .unwrap_or((404, vec![], String::new()));
                let mut response =
                    format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n", body.len());
                for (k, v) in headers {
                    response.push_str(&format!("{k}: {v}\r\n"));
                }
                response.push_str("content-type: application/json\r\n\r\n");
                response.push_str(&body);
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    base
}

#[tokio::test]
async fn metadata_that_names_another_issuer_or_resource_is_refused() {
    // An issuer whose metadata claims to be someone else (RFC 8414 3.3).
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let challenge = format!(r#"Bearer realm="fake", iss="{base}""#);
    let served = fake_server_at(
        port,
        vec![
            ("/api", 401, vec![("www-authenticate".into(), challenge)], "{}".into()),
            (
                "/.well-known/oauth-authorization-server",
                200,
                vec![],
                r#"{"issuer":"http://evil.example","token_endpoint":"http://evil.example/token"}"#.into(),
            ),
        ],
    )
    .await;
    assert_eq!(served, base);
    let trusted = [TrustedIssuer { issuer: &base, client_id: "c", client_secret: "s" }];
    let err = access_for_api(&http(), &format!("{base}/api"), "x", &trusted).await.unwrap_err();
    assert!(matches!(&err, DiscoveryError::Mismatch(why) if why.contains("evil.example")), "{err}");

    // Resource metadata naming another resource (RFC 9728 3.3).
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let challenge = format!(r#"Bearer iss="{base}", resource_metadata="{base}/.well-known/oauth-protected-resource""#);
    fake_server_at(
        port,
        vec![
            ("/api", 401, vec![("www-authenticate".into(), challenge)], "{}".into()),
            (
                "/.well-known/oauth-protected-resource",
                200,
                vec![],
                format!(r#"{{"resource":"http://elsewhere.example","authorization_servers":["{base}"]}}"#),
            ),
        ],
    )
    .await;
    let trusted = [TrustedIssuer { issuer: &base, client_id: "c", client_secret: "s" }];
    let err = access_for_api(&http(), &format!("{base}/api"), "x", &trusted).await.unwrap_err();
    assert!(matches!(&err, DiscoveryError::Mismatch(why) if why.contains("elsewhere.example")), "{err}");
}

#[tokio::test]
async fn the_discover_command_walks_from_a_bare_api_url_to_a_call_registering_itself() {
    let pair = spawn_pair().await;
    let api = format!("{}/api/whoami", pair.b.url);
    let out = std::process::Command::new(binary("discover"))
        .args([api.as_str(), "--trust", pair.b.url.as_str()])
        .output()
        .expect("run discover");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("1. registered at {} as dyn-", pair.b.url)), "{stdout}");
    assert!(stdout.contains(&format!("resource metadata names {api}")), "{stdout}");
    assert!(stdout.contains(&format!("4. GET {api} -> 200")), "{stdout}");
}
