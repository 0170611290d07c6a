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
