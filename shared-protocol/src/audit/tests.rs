use super::verify::{verify_log, Failure};
use super::*;
use crate::clock::ManualClock;
use crate::test_support::unit::{state, state_with};
use crate::tokens::KeyPolicy;

const ALICE: &str = "user-alice";
const BOB: &str = "user-bob";

/// The whole log as `/audit/events` serves it to staff.
async fn log_of(app: &AppState) -> String {
    let rows = app.store.audit_events(None, 0, 10_000).await.unwrap();
    rows.iter().map(|r| format!("{}\n", serde_json::to_string(&r.set_jwt).unwrap())).collect()
}

fn jwks(app: &AppState) -> Value {
    app.keys.current().jwks().clone()
}

/// Five decisions of two users, interleaved.
async fn decisions(app: &AppState) {
    let given = |scope| Event::ConsentGiven { client_id: "tv", scope };
    record(app, Some(ALICE), None, given("player:read")).await;
    record(app, Some(BOB), None, given("player:control")).await;
    record(app, Some(ALICE), None, Event::ConsentWithdrawn { client_id: "tv" }).await;
    link_began(app, ALICE, "first-access-token").await;
    link_direction(app, ALICE, Direction::Outbound, Some("player:read"), EndCause::User).await;
    record(app, Some(BOB), None, Event::ConsentDenied { client_id: "tv", scope: "player:read" }).await;
}

fn lines(log: &str) -> Vec<&str> {
    log.lines().collect()
}

#[actix_web::test]
async fn a_log_as_written_verifies() {
    let app = state(ManualClock::new(1_000)).await;
    decisions(&app).await;
    let verified = verify_log(&log_of(&app).await, &jwks(&app), Some(app.config.issuer())).unwrap();
    assert_eq!(verified.entries, 5);
    assert_eq!(verified.chains, 2);
    assert_eq!(verified.keys, vec![app.keys.current().kid().to_owned()]);
}

#[actix_web::test]
async fn each_entry_is_a_signed_set_naming_the_one_before_in_its_chain() {
    let app = state(ManualClock::new(1_000)).await;
    decisions(&app).await;
    let rows = app.store.audit_events(None, 0, 100).await.unwrap();
    let claims: Vec<SetClaims> =
        rows.iter().map(|r| app.keys.current().verify(&r.set_jwt, SET_TYP).expect("signed by the party")).collect();
    assert_eq!(claims.iter().map(|c| c.seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert_eq!(claims[0].prev, None, "alice's first");
    assert_eq!(claims[2].prev.as_deref(), Some(rows[0].digest.as_str()), "alice's second names her first");
    assert_eq!(claims[4].prev.as_deref(), Some(rows[1].digest.as_str()), "bob's second names his first");
    let (kind, payload) = claims[3].event().unwrap();
    assert_eq!((kind, payload["direction"].as_str()), ("link-made", Some("outbound")));
    assert_eq!(claims[3].txn.as_deref(), Some(digest("first-access-token").as_str()), "the link is named");
    assert_eq!(claims[3].sub.as_deref(), Some(ALICE));
}

/// Verifies `log` and returns the failure it must have.
fn failure(app: &AppState, log: &str) -> Failure {
    verify_log(log, &jwks(app), None).expect_err("a tampered log must not verify")
}

#[actix_web::test]
async fn an_edited_entry_is_named() {
    let app = state(ManualClock::new(1_000)).await;
    decisions(&app).await;
    let log = log_of(&app).await;
    let mut edited = lines(&log).iter().map(|l| l.to_string()).collect::<Vec<_>>();
    // Rewrite entry 3's claims (a withdrawal turned into a consent) and keep its signature.
    let jwt: String = serde_json::from_str(&edited[2]).unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let forged = String::from_utf8(engine.decode(parts[1]).unwrap()).unwrap().replace("withdrawn", "given");
    edited[2] = serde_json::to_string(&format!("{}.{}.{}", parts[0], engine.encode(forged), parts[2])).unwrap();
    let f = failure(&app, &edited.join("\n"));
    assert_eq!((f.line, f.seq), (3, None));
    assert!(f.reason.contains("signature"), "{f}");
}

#[actix_web::test]
async fn a_removed_entry_is_named_by_the_one_after_it() {
    let app = state(ManualClock::new(1_000)).await;
    decisions(&app).await;
    let log = log_of(&app).await;
    let mut kept = lines(&log);
    kept.remove(2); // alice's withdrawal
    let f = failure(&app, &kept.join("\n"));
    assert_eq!(f.seq, Some(4), "alice's next entry no longer names the one before it: {f}");
    assert!(f.reason.contains("removed"), "{f}");
}

#[actix_web::test]
async fn reordered_entries_are_named() {
    let app = state(ManualClock::new(1_000)).await;
    decisions(&app).await;
    let log = log_of(&app).await;
    let mut moved = lines(&log);
    moved.swap(0, 1);
    let f = failure(&app, &moved.join("\n"));
    assert_eq!((f.line, f.seq), (2, Some(1)), "{f}");
    assert!(f.reason.contains("reordered"), "{f}");
}

#[actix_web::test]
async fn a_foreign_key_or_issuer_is_refused() {
    let app = state(ManualClock::new(1_000)).await;
    decisions(&app).await;
    let other = state(ManualClock::new(1_000)).await;
    let log = log_of(&app).await;
    let f = verify_log(&log, &jwks(&other), None).unwrap_err();
    assert_eq!(f.line, 1);
    assert!(f.reason.contains("vouches"), "{f}");
    let f = verify_log(&log, &jwks(&app), Some("https://elsewhere.example")).unwrap_err();
    assert!(f.reason.contains("issuer"), "{f}");
}

#[actix_web::test]
async fn a_direction_is_recorded_once_per_change() {
    let app = state(ManualClock::new(1_000)).await;
    link_began(&app, ALICE, "token-1").await;
    for _ in 0..2 {
        link_direction(&app, ALICE, Direction::Inbound, Some("a"), EndCause::User).await;
    }
    link_direction(&app, ALICE, Direction::Inbound, Some("a b"), EndCause::User).await;
    link_direction(&app, ALICE, Direction::Inbound, None, EndCause::Peer).await;
    link_direction(&app, ALICE, Direction::Inbound, None, EndCause::User).await;
    link_direction(&app, ALICE, Direction::Outbound, Some("c"), EndCause::User).await;
    // A new link ends what the old one still held.
    link_began(&app, ALICE, "token-2").await;
    let kinds: Vec<(String, Option<String>)> = app
        .store
        .audit_events(Some(ALICE), 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let c: SetClaims = app.keys.current().verify(&r.set_jwt, SET_TYP).unwrap();
            let (kind, payload) = c.event().unwrap();
            (kind.to_owned(), payload["cause"].as_str().map(str::to_owned))
        })
        .collect();
    let expected = [
        ("link-made", None),
        ("link-changed", None),
        ("link-ended", Some("peer")),
        ("link-made", None),
        ("link-ended", Some("replaced")),
    ];
    let expected: Vec<(String, Option<String>)> =
        expected.iter().map(|(k, c)| (k.to_string(), c.map(str::to_owned))).collect();
    assert_eq!(kinds, expected);
}

#[actix_web::test]
async fn the_log_stays_verifiable_after_the_key_that_signed_it_retires() {
    let clock = ManualClock::new(1_000);
    let app = state_with(clock.clone(), &["--key-rotation-days", "1"]).await;
    decisions(&app).await;
    let first_kid = app.keys.current().kid().to_owned();
    // The next key is published, then signs; housekeeping vouches for the old one.
    clock.advance(86_400);
    app.keys.maintain(&app.store, app.now()).await.unwrap();
    clock.advance(KeyPolicy::PUBLISH_AHEAD + 1);
    app.keys.maintain(&app.store, app.now()).await.unwrap();
    assert_ne!(app.keys.current().kid(), first_kid, "rotated");
    vouch_for_new_key(&app).await.unwrap();
    record(&app, Some(ALICE), None, Event::ConsentWithdrawn { client_id: "tv" }).await;
    // Long after: the old key has left the JWKS.
    clock.advance(86_400);
    app.keys.maintain(&app.store, app.now()).await.unwrap();
    assert!(app.keys.current().public_jwk(&first_kid).is_none(), "retired");

    let log = log_of(&app).await;
    let verified = verify_log(&log, &jwks(&app), None).unwrap();
    assert_eq!(verified.entries, 7);
    assert_eq!(verified.keys.len(), 2);
    // Without the entry that vouches for it, the old key is unknown.
    let mut cut = lines(&log);
    cut.remove(5);
    let f = verify_log(&cut.join("\n"), &jwks(&app), None).unwrap_err();
    assert_eq!(f.line, 1);
    assert!(f.reason.contains(&first_kid), "{f}");
}

#[actix_web::test]
async fn instances_appending_at_once_keep_one_log() {
    let mut urls = vec![None];
    if let Some(url) = crate::store::testing::postgres_schema_url().await {
        urls.push(Some(url));
    }
    for url in urls {
        let file = std::env::temp_dir().join(format!("audit-{}.db", uuid::Uuid::new_v4().simple()));
        let url = url.unwrap_or_else(|| format!("sqlite://{}", file.display()));
        let flags = ["--database-url", url.as_str()];
        let one = state_with(ManualClock::new(1_000), &flags).await;
        let two = state_with(ManualClock::new(1_000), &flags).await;
        let mut tasks = Vec::new();
        for (i, app) in [one, two].into_iter().enumerate() {
            let app = std::sync::Arc::new(app);
            for n in 0..10 {
                let app = app.clone();
                tasks.push(tokio::spawn(async move {
                    let user = if n % 2 == 0 { ALICE } else { BOB };
                    let scope = format!("s{i}-{n}");
                    record(&app, Some(user), None, Event::ConsentGiven { client_id: "tv", scope: &scope }).await;
                    app
                }));
            }
        }
        let mut last = None;
        for t in tasks {
            last = Some(t.await.unwrap());
        }
        let app = last.unwrap();
        let log = log_of(&app).await;
        let verified = verify_log(&log, &jwks(&app), None).unwrap_or_else(|f| panic!("{url}: {f}"));
        assert_eq!(verified.entries, 20, "{url}: every append landed once");
        assert_eq!(verified.chains, 2);
    }
}
