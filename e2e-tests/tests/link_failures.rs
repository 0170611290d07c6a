//! Everything that can go wrong around the reciprocal link: every error the
//! reciprocal grant answers (docs/http.md), the peer down or silent at each outbound
//! leg, a restart between legs, double submits, the back button, replayed or
//! forged callbacks, and a link the peer withdrew.

mod common;

use std::time::{Duration, Instant};

use common::*;

const RECIPROCAL: &str = "urn:ietf:params:oauth:grant-type:reciprocal";

/// POSTs the reciprocal grant to B as `voice-assistant` with `form`.
async fn push_to_b(pair: &Pair, secret: &str, form: &[(&str, &str)]) -> reqwest::Response {
    let mut body = vec![("grant_type", RECIPROCAL), ("client_id", A_CLIENT)];
    body.extend_from_slice(form);
    http().post(format!("{}/token", pair.b.url)).basic_auth(A_CLIENT, Some(secret)).form(&body).send().await.unwrap()
}

/// An access token B issued to its public `speaker` client for alice (RFC 8628).
async fn speaker_token_for_alice(pair: &Pair) -> String {
    let started = http()
        .post(format!("{}/device_authorization", pair.b.url))
        .form(&[("client_id", "speaker"), ("login_hint", "alice")])
        .send()
        .await
        .unwrap();
    let started = json_ok(started).await;
    let alice = browser();
    login(&alice, &pair.b.url, "alice", "wonderland").await;
    let user_code = started["user_code"].as_str().unwrap();
    let (_, confirm) = page(&alice, &url_with(&format!("{}/device", pair.b.url), &[("user_code", user_code)])).await;
    submit(&alice, &format!("{}/device", pair.b.url), &confirm, &[("user_code", user_code), ("decision", "approve")])
        .await;
    let form = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", started["device_code"].as_str().unwrap()),
        ("client_id", "speaker"),
    ];
    let tokens = json_ok(http().post(format!("{}/token", pair.b.url)).form(&form).send().await.unwrap()).await;
    tokens["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_error_row_of_the_reciprocal_grant() {
    let mut pair = spawn_pair().await;
    let (access, refresh) = token_for(&pair, "alice", "player:read").await;

    // A code A never minted: A refuses it, so B answers invalid_grant.
    let res = push_to_b(&pair, A_SECRET, &[("code", "made-up"), ("access_token", &access)]).await;
    let (error, why) = oauth_error_parts(res, 400).await;
    assert!(error == "invalid_grant" && why.contains("refused the code"), "{why}");

    // Bad, foreign-issuer and user-less access tokens.
    let res = push_to_b(&pair, A_SECRET, &[("code", "c"), ("access_token", "not-a-jwt")]).await;
    expect_oauth_error(res, 400, "invalid_grant").await;
    let a_token = json_ok(client_credentials(&pair.a.url, B_CLIENT, B_SECRET, &[]).await).await;
    let foreign = a_token["access_token"].as_str().unwrap();
    expect_oauth_error(
        push_to_b(&pair, A_SECRET, &[("code", "c"), ("access_token", foreign)]).await,
        400,
        "invalid_grant",
    )
    .await;
    // A token of B's issued to another client: the speaker, through the device flow.
    let speaker = speaker_token_for_alice(&pair).await;
    let res = push_to_b(&pair, A_SECRET, &[("code", "c"), ("access_token", &speaker)]).await;
    assert_eq!(
        oauth_error_parts(res, 400).await,
        ("invalid_grant".into(), "the access_token was issued to another client".into())
    );
    let no_user = client_credentials_token_at_b(&pair, &[]).await;
    let res = push_to_b(&pair, A_SECRET, &[("code", "c"), ("access_token", &no_user)]).await;
    assert_eq!(
        oauth_error_parts(res, 400).await,
        ("invalid_grant".into(), "the access_token does not name a user".into())
    );

    // Missing parameters.
    expect_oauth_error(push_to_b(&pair, A_SECRET, &[("code", "c")]).await, 400, "invalid_request").await;
    expect_oauth_error(push_to_b(&pair, A_SECRET, &[("access_token", &access)]).await, 400, "invalid_request").await;

    // Client authentication (RFC 6749 2.3).
    let res = push_to_b(&pair, "wrong-secret", &[("code", "c"), ("access_token", &access)]).await;
    assert!(www_authenticate(&res).starts_with("Basic"));
    expect_oauth_error(res, 401, "invalid_client").await;
    let anonymous = http()
        .post(format!("{}/token", pair.b.url))
        .form(&[("grant_type", RECIPROCAL), ("code", "c"), ("access_token", access.as_str())])
        .send()
        .await
        .unwrap();
    expect_oauth_error(anonymous, 401, "invalid_client").await;

    // The legacy form takes the token from the Authorization header only.
    let legacy = |token: Option<&str>| {
        let mut req = http().post(format!("{}/token", pair.b.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.form(&[
            ("grant_type", "mutual_authorization_code"),
            ("code", "made-up"),
            ("client_id", A_CLIENT),
            ("client_secret", A_SECRET),
        ])
        .send()
    };
    expect_oauth_error(legacy(None).await.unwrap(), 400, "invalid_request").await;
    expect_oauth_error(legacy(Some(&access)).await.unwrap(), 400, "invalid_grant").await;

    // Party A down: B cannot redeem the code and says it is temporary.
    pair.a.stop();
    let res = push_to_b(&pair, A_SECRET, &[("code", "c"), ("access_token", &access)]).await;
    expect_oauth_error(res, 400, "temporarily_unavailable").await;

    // A revoked token.
    assert_eq!(revoke_at_b(&pair, &refresh, None).await.status(), 200);
    let res = push_to_b(&pair, A_SECRET, &[("code", "c"), ("access_token", &access)]).await;
    let (error, why) = oauth_error_parts(res, 400).await;
    assert!(error == "invalid_grant" && why.contains("revoked"), "{why}");
}

#[tokio::test]
async fn the_peer_down_when_linking_starts_is_said_plainly() {
    let mut pair = spawn_pair().await;
    let alice = browser();
    login(&alice, &pair.a.url, "alice", "wonderland").await;
    pair.b.stop();
    let (_, home) = page(&alice, &format!("{}/", pair.a.url)).await;
    let (_, outcome) = submit(&alice, &format!("{}/link/start", pair.a.url), &home, &[]).await;
    assert_eq!(flow_step(&outcome), "failed");
    assert!(outcome.contains("Tempo Music gave no answer (it could not be reached)"), "{outcome}");
    assert!(outcome.contains("Start linking again"), "a way to retry: {outcome}");
    assert_eq!(link_state(&alice, &pair.a.url).await, "none");
}

#[tokio::test]
async fn a_silent_peer_times_out_with_a_message() {
    // A "peer" that accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let dir = scratch_dir();
    let db = database_url(&dir, "party-a", false).await;
    let port = free_port();
    let a = start("party-a", port, &silent_url, &db, &dir, &["--peer-timeout".into(), "1".into()]).await;
    let alice = browser();
    login(&alice, &a.url, "alice", "wonderland").await;
    let (_, home) = page(&alice, &format!("{}/", a.url)).await;
    let began = Instant::now();
    let (_, outcome) = submit(&alice, &format!("{}/link/start", a.url), &home, &[]).await;
    assert!(began.elapsed() < Duration::from_secs(5), "bounded by --peer-timeout");
    assert!(outcome.contains("did not answer in time"), "{outcome}");
    drop(silent);
}

#[tokio::test]
async fn the_peer_down_at_the_callback_fails_cleanly_and_linking_again_works() {
    let mut pair = spawn_pair().await;
    let alice = user_at_both(&pair, "alice").await;
    // Walk to B's redirect back to A, and stop B before A redeems the code.
    let back = authorization_response(&alice, &pair).await;
    let callback = back.headers()["location"].to_str().unwrap().to_owned();
    pair.b.stop();
    let (_, outcome) = page(&alice, &callback).await;
    assert_eq!(flow_step(&outcome), "failed");
    assert!(outcome.contains("Tempo Music gave no answer"), "{outcome}");
    assert_eq!(link_state(&alice, &pair.a.url).await, "none");

    pair.b.restart().await;
    let outcome = link(&alice, &pair.a.url, &pair.b.url, "alice", "wonderland", "approve").await;
    assert_eq!(flow_step(&outcome), "done", "{outcome}");
    assert_eq!(link_state(&alice, &pair.a.url).await, "mutual");
}

#[tokio::test]
async fn the_peer_down_at_the_reciprocal_push_offers_a_retry_that_completes() {
    let mut pair = spawn_pair().await;
    let alice = browser();
    login(&alice, &pair.a.url, "alice", "wonderland").await;
    let (_, consent) = link_until_reciprocal(&alice, &pair.a.url, &pair.b.url, "alice", "wonderland").await;
    pair.b.stop();
    let outcome = answer_reciprocal(&alice, &pair.a.url, &consent, "approve").await;
    assert_eq!(flow_step(&outcome), "failed");
    assert!(outcome.contains("Tempo Music gave no answer") && outcome.contains("Try again"), "{outcome}");

    pair.b.restart().await;
    assert_eq!(link_state(&alice, &pair.b.url).await, "one-way", "B never got A's token");
    let flow = input_value(&outcome, "flow").unwrap();
    let (_, done) =
        submit(&alice, &format!("{}/link/reciprocal", pair.a.url), &outcome, &[("flow", &flow), ("decision", "retry")])
            .await;
    assert_eq!(flow_step(&done), "done", "{done}");
    assert_eq!(link_state(&alice, &pair.a.url).await, "mutual");
    assert_eq!(link_state(&alice, &pair.b.url).await, "mutual");
}

#[tokio::test]
async fn a_restart_of_b_between_steps_3_and_6_lets_the_link_complete() {
    let mut pair = spawn_pair().await;
    let alice = browser();
    login(&alice, &pair.a.url, "alice", "wonderland").await;
    let (_, consent) = link_until_reciprocal(&alice, &pair.a.url, &pair.b.url, "alice", "wonderland").await;
    assert_eq!(data_page(&consent).as_deref(), Some("reciprocal-consent"));
    pair.b.restart().await;
    let outcome = answer_reciprocal(&alice, &pair.a.url, &consent, "approve").await;
    assert_eq!(flow_step(&outcome), "done", "{outcome}");
    assert_eq!(link_state(&alice, &pair.b.url).await, "mutual");
}

#[tokio::test]
async fn double_submits_the_back_button_and_replayed_callbacks_are_harmless() {
    let pair = spawn_pair().await;
    let alice = user_at_both(&pair, "alice").await;
    let back = authorization_response(&alice, &pair).await;
    let callback = back.headers()["location"].to_str().unwrap().to_owned();

    // A forged issuer is refused before the code is used (RFC 9207 mix-up defence).
    let forged = callback.replace(&format!("iss={}", urlencoded(&pair.b.url)), "iss=http%3A%2F%2Fevil.example");
    assert_ne!(forged, callback);
    let (_, outcome) = page(&alice, &forged).await;
    assert!(outcome.contains("its issuer did not match"), "{outcome}");
    // ... and that attempt is over: the genuine answer replayed now changes nothing.
    let (_, again) = page(&alice, &callback).await;
    assert_eq!(flow_step(&again), "failed");

    // A fresh attempt; its callback is replayed after it completed.
    let (_, consent) = link_until_reciprocal(&alice, &pair.a.url, &pair.b.url, "alice", "wonderland").await;
    let flow = input_value(&consent, "flow").unwrap();
    let form = consent_fields(&consent, &flow, "approve");
    // Both submits in flight at once: only one may take the step.
    let url = format!("{}/link/reciprocal", pair.a.url);
    let (first, second) = tokio::join!(alice.post(&url).form(&form).send(), alice.post(&url).form(&form).send());
    let (first, second) = (first.unwrap(), second.unwrap());
    let (_, first) = follow(&alice, first).await;
    let (_, second) = follow(&alice, second).await;
    assert_eq!((flow_step(&first), flow_step(&second)), ("done".into(), "done".into()));
    // The back button to the consent page shows the outcome instead.
    let (_, back_to_consent) = page(&alice, &format!("{}/link/reciprocal?flow={flow}", pair.a.url)).await;
    assert_eq!(data_page(&back_to_consent).as_deref(), Some("link-outcome"));
    let (_, trace) = page(&alice, &format!("{}/link/trace", pair.a.url)).await;
    assert_eq!(trace.matches("<title>reciprocal grant: code").count(), 1, "one push for two submits: {trace}");
    assert_eq!(link_state(&alice, &pair.b.url).await, "mutual");

    // Someone else's browser cannot use alice's callback.
    let bob = browser();
    login(&bob, &pair.a.url, "bob", "builder").await;
    expect_error_page(bob.get(&callback).send().await.unwrap(), 400).await;
    // Nor can a made-up state.
    let made_up = format!("{}/link/callback?code=x&state=nope&iss={}", pair.a.url, urlencoded(&pair.b.url));
    expect_error_page(alice.get(made_up).send().await.unwrap(), 400).await;
}

fn urlencoded(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn consent_fields(html: &str, flow: &str, decision: &str) -> Vec<(String, String)> {
    vec![
        ("csrf_token".into(), input_value(html, "csrf_token").unwrap()),
        ("flow".into(), flow.into()),
        ("decision".into(), decision.into()),
    ]
}

#[tokio::test]
async fn a_link_withdrawn_at_the_peer_shows_as_broken() {
    let pair = spawn_pair().await;
    let alice = linked_alice(&pair).await;
    // At B, take back everything Aria may do there.
    let (_, settings) = page(&alice, &format!("{}/link/settings", pair.b.url)).await;
    submit(&alice, &format!("{}/link/settings", pair.b.url), &settings, &[]).await;
    let (_, home) = page(&alice, &format!("{}/", pair.a.url)).await;
    assert!(home.contains("data-link-state=\"one-way\""), "{home}");
    assert!(home.contains("Tempo Music no longer accepts this link"), "the home page says so: {home}");
    let after = play_from_a(&alice, &pair, "jazz").await;
    assert!(after.contains("no longer accepts this link"), "{after}");
}

#[tokio::test]
async fn held_tokens_are_refreshed_before_they_expire() {
    // B issues tokens that live 30 s, inside A's one-minute refresh margin.
    let pair = spawn_pair_with(&[], &["--access-token-ttl", "30"]).await;
    let alice = linked_alice(&pair).await;
    let first = held_token(&pair.a, "alice").await.unwrap();
    let home = play_from_a(&alice, &pair, "jazz").await;
    assert!(home.contains("is playing So What"), "{home}");
    let second = held_token(&pair.a, "alice").await.unwrap();
    assert_ne!(first, second, "refreshed before use");
    assert_eq!(player_at_b(&pair, &second).await.status(), 200);
}

#[tokio::test]
async fn unlinking_while_the_peer_is_down_can_be_finished_later() {
    let mut pair = spawn_pair().await;
    let alice = linked_alice(&pair).await;
    let b_holds = held_token(&pair.b, "alice").await.unwrap();
    pair.b.stop();
    let (_, home) = page(&alice, &format!("{}/", pair.a.url)).await;
    let (_, outcome) = submit(&alice, &format!("{}/link/unlink", pair.a.url), &home, &[]).await;
    assert!(outcome.contains("Unlink again once it is back"), "{outcome}");
    // A's side is gone at once: B's token no longer works at A.
    let card = serde_json::json!({"title": "T", "artist": "A"});
    let res =
        http().post(format!("{}/api/now-playing", pair.a.url)).bearer_auth(&b_holds).json(&card).send().await.unwrap();
    expect_api_error(res, 401, "invalid_token").await;

    pair.b.restart().await;
    let (_, home) = page(&alice, &format!("{}/", pair.a.url)).await;
    assert!(home.contains("Unlinking did not reach Tempo Music"), "the home page says what is left: {home}");
    let (_, outcome) = submit(&alice, &format!("{}/link/unlink", pair.a.url), &home, &[]).await;
    assert!(outcome.contains("Unlinked:"), "{outcome}");
    assert_eq!(link_state(&alice, &pair.a.url).await, "none");
    assert_eq!(link_state(&alice, &pair.b.url).await, "none");
}

#[tokio::test]
async fn denying_when_linking_again_withdraws_the_earlier_access() {
    let pair = spawn_pair().await;
    let alice = linked_alice(&pair).await;
    let first = held_token(&pair.a, "alice").await.unwrap();
    let outcome = link(&alice, &pair.a.url, &pair.b.url, "alice", "wonderland", "deny").await;
    assert!(outcome.contains("Linked one way"), "{outcome}");
    let (_, a_home) = page(&alice, &format!("{}/", pair.a.url)).await;
    assert!(a_home.contains("data-link-state=\"one-way\""), "{a_home}");
    assert_eq!(link_state(&alice, &pair.b.url).await, "one-way");
    // The replaced token from the first link was revoked at B; the new one works.
    expect_api_error(player_at_b(&pair, &first).await, 401, "invalid_token").await;
    let second = held_token(&pair.a, "alice").await.unwrap();
    assert_eq!(player_at_b(&pair, &second).await.status(), 200);
}

#[tokio::test]
async fn a_restart_of_a_at_the_reciprocal_consent_lets_the_link_complete() {
    let mut pair = spawn_pair().await;
    let alice = browser();
    login(&alice, &pair.a.url, "alice", "wonderland").await;
    let (_, consent) = link_until_reciprocal(&alice, &pair.a.url, &pair.b.url, "alice", "wonderland").await;
    pair.a.restart().await;
    // The session cookie and the flow both survive: the same page still works.
    let outcome = answer_reciprocal(&alice, &pair.a.url, &consent, "approve").await;
    assert_eq!(flow_step(&outcome), "done", "{outcome}");
    assert_eq!(link_state(&alice, &pair.a.url).await, "mutual");
    assert_eq!(link_state(&alice, &pair.b.url).await, "mutual");
}

#[tokio::test]
async fn link_pages_send_a_signed_out_user_to_sign_in_and_back() {
    let pair = spawn_pair().await;
    let stranger = browser();
    for path in ["/link/settings", "/link/trace", "/link/outcome?flow=x"] {
        let res = stranger.get(format!("{}{path}", pair.a.url)).send().await.unwrap();
        assert_eq!(res.status(), 303, "{path}");
        let next = url_with("http://x/login", &[("next", path)]).replace("http://x", "");
        assert_eq!(header(&res, "location").as_deref(), Some(next.as_str()), "{path}");
    }
    // After signing in, the page asked for opens.
    let (_, form) = page(&stranger, &format!("{}/link/settings", pair.a.url)).await;
    let fields = [("username", "alice"), ("password", "wonderland"), ("next", "/link/settings")];
    let (_, settings) = submit(&stranger, &format!("{}/login", pair.a.url), &form, &fields).await;
    assert_eq!(data_page(&settings).as_deref(), Some("settings"));
}

#[tokio::test]
async fn a_silent_peer_does_not_hold_up_the_home_page() {
    let mut pair = spawn_pair().await;
    let alice = linked_alice(&pair).await;
    pair.b.stop();
    // B's port now accepts connections and never answers.
    let silent = std::net::TcpListener::bind(("127.0.0.1", pair.b.port)).unwrap();
    let began = Instant::now();
    let (_, home) = page(&alice, &format!("{}/", pair.a.url)).await;
    assert!(began.elapsed() < Duration::from_secs(4), "took {:?}", began.elapsed());
    assert!(home.contains("Tempo Music could not be asked whether this still works"), "{home}");
    drop(silent);
}

#[tokio::test]
async fn every_state_changing_form_refuses_a_missing_or_wrong_csrf_token() {
    let pair = spawn_pair().await;
    let alice = user_at_both(&pair, "alice").await;
    let forms = [
        (&pair.a.url, "/link/start"),
        (&pair.a.url, "/link/reciprocal"),
        (&pair.a.url, "/link/settings"),
        (&pair.a.url, "/link/unlink"),
        (&pair.a.url, "/assistant/play"),
        (&pair.a.url, "/consents/revoke"),
        (&pair.a.url, "/logout"),
        (&pair.b.url, "/device"),
        (&pair.b.url, "/kiosk"),
        (&pair.b.url, "/authorize"),
        (&pair.b.url, "/login"),
        (&pair.b.url, "/signup"),
    ];
    for (base, path) in forms {
        for token in [None, Some("forged")] {
            let mut form = vec![("decision", "approve"), ("scope", "assistant:notify"), ("query", "jazz")];
            if let Some(t) = token {
                form.push(("csrf_token", t));
            }
            let res = alice.post(format!("{base}{path}")).form(&form).send().await.unwrap();
            let page = expect_error_page(res, 403).await;
            assert!(page.contains("This form has expired"), "{path} with {token:?}: {page}");
        }
    }
    assert_eq!(link_state(&alice, &pair.a.url).await, "none", "nothing happened");
}
