//! The reciprocal link end to end (CONTRACT section 4): either party starts
//! it, one consent flow links both ways, and the product round trip uses a
//! token in each direction.

mod common;

use common::*;

#[tokio::test]
async fn linking_at_a_links_both_ways_and_music_shows_on_the_assistant() {
    let pair = spawn_pair().await;
    let alice = browser();
    login(&alice, &pair.a.url, "alice", "wonderland").await;
    assert_eq!(link_state(&alice, &pair.a.url).await, "none");

    let (_, consent) = link_until_reciprocal(&alice, &pair.a, &pair.b, "alice", "wonderland").await;
    assert_eq!(data_page(&consent).as_deref(), Some("reciprocal-consent"), "{consent}");
    assert!(consent.contains("Tempo Music") && consent.contains("assistant:notify") && consent.contains("assistant:announce"));
    let outcome = answer_reciprocal(&alice, &pair.a, &consent, "approve").await;
    assert_eq!(flow_step(&outcome), "done", "{outcome}");

    assert_eq!(link_state(&alice, &pair.a.url).await, "mutual");
    assert_eq!(link_state(&alice, &pair.b.url).await, "mutual");

    // Each side holds a token the other issued, for exactly what the user approved.
    let a_holds = jwt_claims(&held_token(&pair.a, "alice").await.unwrap());
    assert_eq!((a_holds["iss"].as_str(), a_holds["client_id"].as_str()), (Some(pair.b.url.as_str()), Some(A_CLIENT)));
    assert_eq!(a_holds["scope"], "player:control player:read");
    let b_holds = jwt_claims(&held_token(&pair.b, "alice").await.unwrap());
    assert_eq!((b_holds["iss"].as_str(), b_holds["client_id"].as_str()), (Some(pair.a.url.as_str()), Some(B_CLIENT)));
    assert_eq!(b_holds["scope"], "assistant:announce assistant:notify");

    // The round trip: A plays at B with B's token; B shows it at A with A's token.
    let home = play_from_a(&alice, &pair, "some jazz please").await;
    assert!(home.contains("Tempo Music is playing So What by Miles Davis."), "{home}");
    let np = now_playing_at_a(&alice, &pair).await;
    assert_eq!(np["now_playing"]["title"], "So What");
    assert_eq!(np["now_playing"]["artist"], "Miles Davis");
}
