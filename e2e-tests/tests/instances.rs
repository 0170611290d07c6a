//! Several instances of one party behind one database (CONTRACT section 1):
//! they share signing keys, the session key and revocations.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[tokio::test]
async fn two_instances_of_party_b_share_keys_sessions_and_revocations() {
    let pair = spawn_pair().await;
    let b = &pair.b;
    let second =
        start("party-b", free_port(), &pair.a.url, &b.database_url, &b.dir, &["--public-url".into(), b.url.clone()])
            .await;

    // A token issued by the first instance is accepted by the second.
    let (access, _) = token_for(&pair, "alice", "player:read").await;
    let at_second = || http().get(format!("{}/api/player", second.url)).bearer_auth(&access).send();
    assert_eq!(at_second().await.unwrap().status(), 200);

    // A session started at the first instance is valid at the second.
    let user = browser();
    login(&user, &b.url, "bob", "builder").await;
    let home = user.get(format!("{}/", second.url)).send().await.unwrap();
    assert_eq!(home.status(), 200, "the second instance reads the first one's session cookie");
    assert!(home.text().await.unwrap().contains("data-page=\"home\""));

    // A revocation at the first instance reaches the second, which had the token cached.
    assert_eq!(revoke_at_b(&pair, &access, None).await.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = at_second().await.unwrap().status();
        if status == 401 {
            break;
        }
        assert!(Instant::now() < deadline, "the second instance still accepts a revoked token");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Issue 9: two instances started at the same moment on an empty database
/// create one signing key between them and accept each other's tokens.
#[tokio::test]
async fn instances_started_together_on_an_empty_database_agree_on_keys() {
    let dir = scratch_dir();
    for trial in 0..10 {
        let db = database_url(&dir, &format!("party-b-{trial}"), true).await;
        let (p1, p2) = (free_port(), free_port());
        // The second instance serves the first one's public URL, as behind a load balancer.
        let public = ["--public-url".to_owned(), format!("http://127.0.0.1:{p1}")];
        let (first, second) = tokio::join!(
            start("party-b", p1, "http://127.0.0.1:9", &db, &dir, &[]),
            start("party-b", p2, "http://127.0.0.1:9", &db, &dir, &public),
        );
        let jwks = |p: &Party| http().get(format!("{}/jwks.json", p.url)).send();
        let (j1, j2) =
            (jwks(&first).await.unwrap().text().await.unwrap(), jwks(&second).await.unwrap().text().await.unwrap());
        assert_eq!(j1, j2, "trial {trial}: both instances publish the same keys");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&j1).unwrap()["keys"].as_array().unwrap().len(), 1);
        for (issuer, other) in [(&first, &second), (&second, &first)] {
            let token: serde_json::Value = http()
                .post(format!("{}/token", issuer.url))
                .basic_auth("voice-assistant", Some("voice-assistant-dev-secret"))
                .form(&[("grant_type", "client_credentials"), ("scope", "player:read")])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let access = token["access_token"].as_str().expect("a token");
            let answer: serde_json::Value = http()
                .post(format!("{}/introspect", other.url))
                .basic_auth("voice-assistant", Some("voice-assistant-dev-secret"))
                .form(&[("token", access)])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(answer["active"], true, "trial {trial}: a sibling's token is active");
        }
    }
}
