//! The reciprocal link end to end (docs/protocol.md): either party starts
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

    let (_, consent) = link_until_reciprocal(&alice, &pair.a.url, &pair.b.url, "alice", "wonderland").await;
    assert_eq!(data_page(&consent).as_deref(), Some("reciprocal-consent"), "{consent}");
    assert!(
        consent.contains("Tempo Music")
            && consent.contains("assistant:notify")
            && consent.contains("assistant:announce")
    );
    let outcome = answer_reciprocal(&alice, &pair.a.url, &consent, "approve").await;
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

#[tokio::test]
async fn linking_at_b_is_the_mirror_image() {
    let pair = spawn_pair().await;
    let alice = browser();
    login(&alice, &pair.b.url, "alice", "wonderland").await;
    let (_, consent) = link_until_reciprocal(&alice, &pair.b.url, &pair.a.url, "alice", "wonderland").await;
    assert_eq!(data_page(&consent).as_deref(), Some("reciprocal-consent"), "{consent}");
    assert!(
        consent.contains("Aria Assistant") && consent.contains("player:control") && consent.contains("player:read")
    );
    let outcome = answer_reciprocal(&alice, &pair.b.url, &consent, "approve").await;
    assert_eq!(flow_step(&outcome), "done", "{outcome}");
    assert_eq!(link_state(&alice, &pair.b.url).await, "mutual");
    assert_eq!(link_state(&alice, &pair.a.url).await, "mutual");

    // B holds A's token from the code flow; A got B's token through the reciprocal grant.
    assert_eq!(jwt_claims(&held_token(&pair.b, "alice").await.unwrap())["client_id"], B_CLIENT);
    assert_eq!(jwt_claims(&held_token(&pair.a, "alice").await.unwrap())["scope"], "player:control player:read");
    let home = play_from_a(&alice, &pair, "queen").await;
    assert!(home.contains("Tempo Music is playing Bohemian Rhapsody by Queen."), "{home}");
    assert_eq!(now_playing_at_a(&alice, &pair).await["now_playing"]["title"], "Bohemian Rhapsody");
}

#[tokio::test]
async fn denying_the_reciprocal_request_leaves_a_one_way_link() {
    let pair = spawn_pair().await;
    let alice = browser();
    login(&alice, &pair.a.url, "alice", "wonderland").await;
    let outcome = link(&alice, &pair.a.url, &pair.b.url, "alice", "wonderland", "deny").await;
    assert_eq!(flow_step(&outcome), "done");
    assert!(outcome.contains("Linked one way"), "{outcome}");
    let (_, a_home) = page(&alice, &format!("{}/", pair.a.url)).await;
    assert!(a_home.contains("data-link-state=\"one-way\"") && a_home.contains("Linked one way with Tempo Music"));
    assert!(a_home.contains("Tempo Music cannot use your Aria Assistant account."), "{a_home}");
    assert_eq!(link_state(&alice, &pair.b.url).await, "one-way");
    assert!(held_token(&pair.b, "alice").await.is_none(), "B holds nothing from A");

    // B still plays, and says it could not show it on the assistant.
    let home = play_from_a(&alice, &pair, "jazz").await;
    assert!(home.contains("is playing So What by Miles Davis, but cannot show it here"), "{home}");
    assert_eq!(now_playing_at_a(&alice, &pair).await["now_playing"], serde_json::Value::Null);
}

/// The link settings form at `party`, saved with exactly `scopes` ticked; returns the outcome page.
async fn save_settings(user: &reqwest::Client, party: &Party, scopes: &[&str]) -> String {
    let (_, settings) = page(user, &format!("{}/link/settings", party.url)).await;
    assert_eq!(data_page(&settings).as_deref(), Some("settings"));
    let fields: Vec<(&str, &str)> = scopes.iter().map(|s| ("scope", *s)).collect();
    let (_, outcome) = submit(user, &format!("{}/link/settings", party.url), &settings, &fields).await;
    outcome
}

#[tokio::test]
async fn the_settings_page_updates_exactly_what_the_peer_may_do() {
    let pair = spawn_pair().await;
    let alice = linked_alice(&pair).await;
    let first = held_token(&pair.b, "alice").await.unwrap();
    let (_, settings) = page(&alice, &format!("{}/link/settings", pair.a.url)).await;
    assert_eq!(settings.matches(" checked").count(), 2, "both scopes ticked: {settings}");

    // Remove assistant:notify: B gets a new token with only announce; the old one stops at once.
    let outcome = save_settings(&alice, &pair.a, &["assistant:announce"]).await;
    assert_eq!(flow_step(&outcome), "done", "{outcome}");
    let second = held_token(&pair.b, "alice").await.unwrap();
    assert_eq!(jwt_claims(&second)["scope"], "assistant:announce");
    let card = serde_json::json!({"title": "T", "artist": "A"});
    let old =
        http().post(format!("{}/api/now-playing", pair.a.url)).bearer_auth(&first).json(&card).send().await.unwrap();
    expect_api_error(old, 401, "invalid_token").await;
    let new =
        http().post(format!("{}/api/now-playing", pair.a.url)).bearer_auth(&second).json(&card).send().await.unwrap();
    expect_api_error(new, 403, "insufficient_scope").await;
    assert_eq!(link_state(&alice, &pair.a.url).await, "mutual", "B still holds a scope at A");
    let home = play_from_a(&alice, &pair, "abba").await;
    assert!(home.contains("cannot show it here"), "without notify B cannot post the card: {home}");

    // Add it back: a new token with both.
    let outcome = save_settings(&alice, &pair.a, &["assistant:announce", "assistant:notify"]).await;
    assert_eq!(flow_step(&outcome), "done", "{outcome}");
    let third = held_token(&pair.b, "alice").await.unwrap();
    assert_eq!(jwt_claims(&third)["scope"], "assistant:announce assistant:notify");
    let home = play_from_a(&alice, &pair, "abba").await;
    assert!(home.contains("Tempo Music is playing Dancing Queen by ABBA."), "{home}");

    // Nothing ticked: B may do nothing at A, and both homes say one-way.
    let outcome = save_settings(&alice, &pair.a, &[]).await;
    assert_eq!(flow_step(&outcome), "done");
    let gone =
        http().post(format!("{}/api/now-playing", pair.a.url)).bearer_auth(&third).json(&card).send().await.unwrap();
    expect_api_error(gone, 401, "invalid_token").await;
    assert_eq!(link_state(&alice, &pair.a.url).await, "one-way");
    let (_, b_home) = page(&alice, &format!("{}/", pair.b.url)).await;
    assert!(b_home.contains("data-link-state=\"one-way\""), "{b_home}");
}

/// Unlinks at `at` and checks that every token of the link fails at both APIs.
async fn unlink_and_check(pair: &Pair, at: &Party) {
    let alice = linked_alice(pair).await;
    let a_holds = held_token(&pair.a, "alice").await.unwrap();
    let b_holds = held_token(&pair.b, "alice").await.unwrap();
    assert_eq!(player_at_b(pair, &a_holds).await.status(), 200);

    let (_, home) = page(&alice, &format!("{}/", at.url)).await;
    let (_, outcome) = submit(&alice, &format!("{}/link/unlink", at.url), &home, &[]).await;
    assert!(outcome.contains("Unlinked:"), "{outcome}");
    assert_eq!(link_state(&alice, &pair.a.url).await, "none");
    assert_eq!(link_state(&alice, &pair.b.url).await, "none");
    expect_api_error(player_at_b(pair, &a_holds).await, 401, "invalid_token").await;
    let card = serde_json::json!({"title": "T", "artist": "A"});
    let res =
        http().post(format!("{}/api/now-playing", pair.a.url)).bearer_auth(&b_holds).json(&card).send().await.unwrap();
    expect_api_error(res, 401, "invalid_token").await;
    assert!(held_token(&pair.a, "alice").await.is_none() && held_token(&pair.b, "alice").await.is_none());
}

#[tokio::test]
async fn unlinking_at_a_removes_both_directions() {
    let pair = spawn_pair().await;
    unlink_and_check(&pair, &pair.a).await;
}

#[tokio::test]
async fn unlinking_at_b_removes_both_directions() {
    let pair = spawn_pair().await;
    unlink_and_check(&pair, &pair.b).await;
}

#[tokio::test]
async fn the_legacy_mutual_grant_links_the_same_way() {
    let pair = spawn_pair_with(&["--reciprocal-form", "legacy"], &[]).await;
    let alice = browser();
    login(&alice, &pair.a.url, "alice", "wonderland").await;
    let outcome = link(&alice, &pair.a.url, &pair.b.url, "alice", "wonderland", "approve").await;
    assert_eq!(flow_step(&outcome), "done", "{outcome}");
    assert_eq!(link_state(&alice, &pair.b.url).await, "mutual");
    let (_, trace) = page(&alice, &format!("{}/link/trace", pair.a.url)).await;
    assert!(trace.contains("mutual_authorization_code: code"), "{trace}");
    assert_eq!(now_playing_at_a(&alice, &pair).await["now_playing"], serde_json::Value::Null);
    play_from_a(&alice, &pair, "soul").await;
    assert_eq!(now_playing_at_a(&alice, &pair).await["now_playing"]["title"], "Respect");
}

#[tokio::test]
async fn the_trace_shows_every_leg_and_no_secret() {
    let pair = spawn_pair().await;
    let alice = linked_alice(&pair).await;
    let (_, a_trace) = page(&alice, &format!("{}/link/trace", pair.a.url)).await;
    assert_eq!(data_page(&a_trace).as_deref(), Some("trace"));
    assert!(a_trace.contains("<svg") && !a_trace.contains("<script"), "drawn by the server: {a_trace}");
    for leg in ["A", "B", "C", "D", "E", "F", "G"] {
        assert!(a_trace.contains(&format!("<tspan font-weight=\"700\">{leg}</tspan>")), "leg {leg} at A: {a_trace}");
    }
    let (_, b_trace) = page(&alice, &format!("{}/link/trace", pair.b.url)).await;
    for leg in ["A", "B", "C", "D", "F", "G"] {
        assert!(b_trace.contains(&format!("<tspan font-weight=\"700\">{leg}</tspan>")), "leg {leg} at B: {b_trace}");
    }
    for token in [held_token(&pair.a, "alice").await.unwrap(), held_token(&pair.b, "alice").await.unwrap()] {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!a_trace.contains(signature) && !b_trace.contains(signature), "no token in the trace");
    }
}

#[tokio::test]
async fn fifty_users_link_at_once_without_mixing_anything_up() {
    // What is checked is that nothing mixes, not speed: fifty links at once
    // on a loaded 2-core machine may take longer than the default 5-s peer timeout.
    let slow = ["--peer-timeout", "30"];
    let pair = spawn_pair_with(&slow, &slow).await;
    let runs = (0..50).map(|i| {
        let pair = &pair;
        async move {
            let name = format!("user{i:02}");
            let password = format!("password-{i:02}");
            let user = browser();
            sign_up(&user, &pair.a.url, &name, &password).await;
            sign_up(&user, &pair.b.url, &name, &password).await;
            let outcome = link(&user, &pair.a.url, &pair.b.url, &name, &password, "approve").await;
            assert_eq!(flow_step(&outcome), "done", "{name}: {outcome}");
            play_from_a(&user, pair, &format!("{name} mix")).await;
            (name, user)
        }
    });
    let users = futures_util::future::join_all(runs).await;
    for (name, user) in &users {
        let np = now_playing_at_a(user, &pair).await;
        assert_eq!(np["now_playing"]["title"], format!("User{} Mix Radio", &name[4..]), "{name} sees only their own");
        assert_eq!(link_state(user, &pair.b.url).await, "mutual");
        let claims = jwt_claims(&held_token(&pair.b, name).await.unwrap());
        let (_, whoami) = page(user, &format!("{}/", pair.a.url)).await;
        assert!(whoami.contains(&format!("Signed in as <strong>{name}</strong>")));
        // B's token at A acts for this user's account at A.
        let a_user = user_id_at(&pair.a, name).await;
        assert_eq!(claims["sub"], a_user, "{name}");
    }
}

#[tokio::test]
async fn the_reciprocal_request_can_ride_on_the_authorization_response() {
    let pair = spawn_pair_with(&[], &["--reciprocal-in-authorization-response"]).await;
    let alice = user_at_both(&pair, "alice").await;
    let back = authorization_response(&alice, &pair).await;
    let params = location_params(&back);
    assert_eq!(params.get("reciprocal").map(String::as_str), Some("assistant:notify assistant:announce"));
    let (_, reciprocal) = follow(&alice, back).await;
    assert_eq!(data_page(&reciprocal).as_deref(), Some("reciprocal-consent"), "{reciprocal}");
}

#[tokio::test]
async fn a_whole_link_life_leaves_no_secret_in_either_log() {
    let pair = spawn_pair().await;
    let alice = user_at_both(&pair, "alice").await;
    let back = authorization_response(&alice, &pair).await;
    let code = location_params(&back)["code"].clone();
    let (_, consent) = follow(&alice, back).await;
    answer_reciprocal(&alice, &pair.a.url, &consent, "approve").await;
    let a_holds = held_token(&pair.a, "alice").await.unwrap();
    let b_holds = held_token(&pair.b, "alice").await.unwrap();
    let refresh_tokens = held_refresh_tokens(&pair).await;
    play_from_a(&alice, &pair, "jazz").await;
    let (_, settings) = page(&alice, &format!("{}/link/settings", pair.a.url)).await;
    submit(&alice, &format!("{}/link/settings", pair.a.url), &settings, &[("scope", "assistant:notify")]).await;
    let (_, home) = page(&alice, &format!("{}/", pair.a.url)).await;
    submit(&alice, &format!("{}/link/unlink", pair.a.url), &home, &[]).await;

    let mut secrets = vec![("code", code), ("A's token", a_holds), ("B's token", b_holds)];
    secrets.extend(refresh_tokens.into_iter().map(|t| ("refresh token", t)));
    for party in [&pair.a, &pair.b] {
        let log = party.log();
        for (what, secret) in &secrets {
            assert!(!log.contains(secret.as_str()), "{} logged the {what}:\n{log}", party.name);
        }
        let lines = log.lines().filter(|l| !l.trim().is_empty()).count();
        let requests = request_lines(&log).len();
        assert!(lines - requests <= 8, "{}: besides start-up, one line per request:\n{log}", party.name);
    }
}

/// The refresh tokens both parties hold for alice.
async fn held_refresh_tokens(pair: &Pair) -> Vec<String> {
    let mut out = Vec::new();
    for party in [&pair.a, &pair.b] {
        let pool = database(party).await;
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT refresh_token FROM peer_tokens WHERE refresh_token IS NOT NULL")
                .fetch_all(&pool)
                .await
                .unwrap();
        pool.close().await;
        out.extend(rows.into_iter().map(|(t,)| t));
    }
    assert_eq!(out.len(), 2, "each party holds a refresh token");
    out
}

#[tokio::test]
async fn the_whole_link_works_with_private_key_jwt_and_no_shared_secret() {
    // Each party signs its client assertions with its own key; the peer reads
    // it from the party's JWKS. Neither party is given the other's secret.
    let pkj = ["--client-auth", "private-key-jwt", "--client-secret", "not-what-the-peer-expects"];
    let pair = spawn_pair_with(&pkj, &pkj).await;
    let alice = linked_alice(&pair).await;
    assert_eq!(link_state(&alice, &pair.b.url).await, "mutual");
    let home = play_from_a(&alice, &pair, "jazz").await;
    assert!(home.contains("Tempo Music is playing So What by Miles Davis."), "{home}");
    assert_eq!(now_playing_at_a(&alice, &pair).await["now_playing"]["title"], "So What");
    let (_, home) = page(&alice, &format!("{}/", pair.a.url)).await;
    let (_, outcome) = submit(&alice, &format!("{}/link/unlink", pair.a.url), &home, &[]).await;
    assert!(outcome.contains("Unlinked:"), "the revocation at the peer authenticated too: {outcome}");
    assert_eq!(link_state(&alice, &pair.b.url).await, "none");
}

#[tokio::test]
async fn the_legacy_grant_authenticates_with_private_key_jwt_in_the_body() {
    let a_args = ["--reciprocal-form", "legacy", "--client-auth", "private-key-jwt", "--client-secret", "unused"];
    let pair = spawn_pair_with(&a_args, &[]).await;
    let alice = linked_alice(&pair).await;
    assert_eq!(link_state(&alice, &pair.b.url).await, "mutual");
}
