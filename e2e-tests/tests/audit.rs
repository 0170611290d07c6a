//! The audit log (docs/audit.md) as a user, staff and a verifier see it:
//! each grant decision of a link is a signed entry at both parties, naming
//! the same link, and `audit verify` names the entry a database edit broke.

mod common;

use common::*;
use serde_json::Value;

/// The entries `browser` may read at `base`, as served (JSON strings, one per line).
async fn entries(browser: &reqwest::Client, base: &str) -> (String, Vec<Value>) {
    let res = browser.get(format!("{base}/audit/events")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "content-type").as_deref(), Some("application/jsonl"));
    let text = res.text().await.unwrap();
    let claims = text.lines().map(|l| jwt_claims(&serde_json::from_str::<String>(l).unwrap())).collect();
    (text, claims)
}

/// `(kind, direction or client, cause)` of each entry, for comparing.
fn kinds(claims: &[Value]) -> Vec<String> {
    claims
        .iter()
        .map(|c| {
            let (uri, payload) = c["events"].as_object().unwrap().iter().next().unwrap();
            let kind = uri.rsplit('/').next().unwrap();
            let what = payload["direction"].as_str().or(payload["client_id"].as_str()).unwrap_or("-");
            match payload["cause"].as_str() {
                Some(cause) => format!("{kind} {what} {cause}"),
                None => format!("{kind} {what}"),
            }
        })
        .collect()
}

/// A session cookie (`name=value`) for `user` at `base`, as a person would
/// copy it from their browser to hand to `audit verify`.
async fn session_cookie(base: &str, user: &str) -> String {
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let cookie_of =
        |res: &reqwest::Response| res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let form = plain.get(format!("{base}/login")).send().await.unwrap();
    let first = cookie_of(&form);
    let csrf = input_value(&form.text().await.unwrap(), "csrf_token").unwrap();
    let fields = [("csrf_token", csrf.as_str()), ("username", user), ("password", demo_password(user)), ("next", "/")];
    let res = plain.post(format!("{base}/login")).header("cookie", first).form(&fields).send().await.unwrap();
    assert_eq!(res.status(), 303);
    cookie_of(&res)
}

/// Runs `party-a audit verify ARGS`: (succeeded, stdout + stderr).
async fn verify(bin: &str, args: &[&str]) -> (bool, String) {
    verify_as(bin, None, args).await
}

/// [`verify`] with the party's `PUBLIC_URL` set, as where the party is deployed.
async fn verify_as(bin: &str, public_url: Option<&str>, args: &[&str]) -> (bool, String) {
    let mut command = std::process::Command::new(binary(bin));
    command.arg("audit").arg("verify").args(args);
    if let Some(url) = public_url {
        command.env("PUBLIC_URL", url);
    }
    let out = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[tokio::test]
async fn a_link_is_recorded_at_both_parties_under_one_name_and_verifies() {
    let pair = spawn_pair().await;
    let alice = linked_alice(&pair).await;
    login(&alice, &pair.b.url, "alice", "wonderland").await;
    let (_, home) = page(&alice, &format!("{}/", pair.b.url)).await;
    submit(&alice, &format!("{}/link/unlink", pair.b.url), &home, &[]).await;

    let (_, at_a) = entries(&alice, &pair.a.url).await;
    let (_, at_b) = entries(&alice, &pair.b.url).await;
    // A got its token from B, asked alice, pushed its code; B unlinked, and A heard of it.
    assert_eq!(
        kinds(&at_a),
        [
            "link-made outbound",
            "consent-given music-service",
            "link-made inbound",
            "link-ended inbound peer",
            "link-ended outbound peer",
        ],
    );
    assert_eq!(
        kinds(&at_b),
        [
            "consent-given voice-assistant",
            "link-made inbound",
            "link-made outbound",
            "link-ended inbound user",
            "link-ended outbound user",
        ],
    );
    // The two logs name the same link, and each entry names its user at that party.
    let links =
        |claims: &[Value]| claims.iter().filter_map(|c| c["txn"].as_str().map(str::to_owned)).collect::<Vec<_>>();
    let link = links(&at_a)[0].clone();
    assert!(links(&at_a).iter().chain(&links(&at_b)).all(|l| *l == link), "{at_a:?} {at_b:?}");
    assert_eq!(links(&at_b).len(), 4);
    let alice_at_a = user_id_at(&pair.a, "alice").await;
    assert!(at_a.iter().all(|c| c["sub"] == alice_at_a.as_str() && c["iss"] == pair.a.url.as_str()));

    // The page says it in words.
    let (_, audit_page) = page(&alice, &format!("{}/audit", pair.a.url)).await;
    assert_eq!(data_page(&audit_page).as_deref(), Some("audit"));
    for words in [
        "Your grant decisions at Aria Assistant",
        "Allowed Tempo Music to use: assistant:announce assistant:notify.",
        "Link Aria Assistant → Tempo Music made",
        "Link Tempo Music → Aria Assistant ended: Tempo Music revoked it.",
        "party-a audit verify",
    ] {
        assert!(audit_page.contains(words), "{words:?} missing from {audit_page}");
    }

    // The verifier, from the URL with alice's cookie: JWKS through A's metadata.
    let cookie = session_cookie(&pair.a.url, "alice").await;
    let url = format!("{}/audit/events", pair.a.url);
    let (ok, out) = verify("party-a", &[&url, "--cookie", &cookie]).await;
    assert!(ok && out.contains("verified: 5 entries in 1 chains"), "{out}");
    let (ok, out) = verify("party-a", &[&url]).await;
    assert!(!ok && out.contains("--cookie"), "without a session: {out}");
}

#[tokio::test]
async fn staff_see_every_account_and_others_see_their_own() {
    let pair = spawn_pair().await;
    linked_alice(&pair).await;
    let bob = browser();
    login(&bob, &pair.b.url, "bob", "builder").await;
    let (_, only_bob) = entries(&bob, &pair.b.url).await;
    assert!(only_bob.is_empty(), "bob decided nothing: {only_bob:?}");
    let (_, page_of_bob) = page(&bob, &format!("{}/audit", pair.b.url)).await;
    assert!(page_of_bob.contains("Nothing yet"), "{page_of_bob}");

    let staff = browser();
    login(&staff, &pair.b.url, "kiosk", "staff-only").await;
    let (_, all) = entries(&staff, &pair.b.url).await;
    assert_eq!(all.len(), 3, "alice's consent and both directions: {all:?}");
    let (_, staff_page) = page(&staff, &format!("{}/audit", pair.b.url)).await;
    assert!(
        staff_page.contains("Every grant decision at Tempo Music") && staff_page.contains(">alice<"),
        "{staff_page}"
    );

    let anonymous = http().get(format!("{}/audit/events", pair.b.url)).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    // Pages of at most `limit`, each naming the next.
    let first = staff.get(format!("{}/audit/events?limit=2", pair.b.url)).send().await.unwrap();
    let next = header(&first, "link").expect("a full page names the next");
    assert_eq!(next, "</audit/events?after=2&limit=2>; rel=\"next\"");
    assert_eq!(first.text().await.unwrap().lines().count(), 2);
    for bad in ["limit=many", "after=1&after=2", "after=%FF"] {
        let res = staff.get(format!("{}/audit/events?{bad}", pair.b.url)).send().await.unwrap();
        expect_error_page(res, 400).await;
    }
}

/// The log's rows, to put back after each tampering.
async fn rows(pool: &sqlx::AnyPool) -> Vec<(i64, String, String, String, String, i64, String)> {
    sqlx::query_as("SELECT seq, stream, prev, digest, kid, at, set_jwt FROM audit_events ORDER BY seq")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn restore(pool: &sqlx::AnyPool, original: &[(i64, String, String, String, String, i64, String)]) {
    sqlx::query("DELETE FROM audit_events").execute(pool).await.unwrap();
    for r in original {
        sqlx::query("INSERT INTO audit_events (seq, stream, prev, digest, kid, at, set_jwt) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(r.0)
            .bind(&r.1)
            .bind(&r.2)
            .bind(&r.3)
            .bind(&r.4)
            .bind(r.5)
            .bind(&r.6)
            .execute(pool)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_row_edited_deleted_or_reordered_in_the_database_is_named() {
    let pair = spawn_pair().await;
    let alice = linked_alice(&pair).await;
    let (_, home) = page(&alice, &format!("{}/", pair.a.url)).await;
    submit(&alice, &format!("{}/link/unlink", pair.a.url), &home, &[]).await;
    let cookie = session_cookie(&pair.a.url, "alice").await;
    let url = format!("{}/audit/events", pair.a.url);
    let pool = database(&pair.a).await;
    let original = rows(&pool).await;
    assert_eq!(original.len(), 5);
    let (ok, out) = verify("party-a", &[&url, "--cookie", &cookie]).await;
    assert!(ok, "{out}");
    // The database refuses changes itself; whoever tampers must drop its guard first.
    let refused = sqlx::query("DELETE FROM audit_events WHERE seq = 3").execute(&pool).await.unwrap_err();
    assert!(refused.to_string().contains("append-only"), "{refused}");
    for guard in ["audit_events_no_update", "audit_events_no_delete"] {
        sqlx::query(&format!("DROP TRIGGER {guard}")).execute(&pool).await.unwrap();
    }

    // Edited: the reciprocal consent's scope widened, its signature kept.
    let (_, _, _, _, _, _, jwt) = &original[1];
    let parts: Vec<&str> = jwt.split('.').collect();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = String::from_utf8(b64.decode(parts[1]).unwrap()).unwrap();
    let widened = claims.replace("assistant:announce", "assistant:admin");
    assert_ne!(claims, widened);
    let forged = format!("{}.{}.{}", parts[0], b64.encode(widened), parts[2]);
    sqlx::query("UPDATE audit_events SET set_jwt = $1 WHERE seq = 2").bind(&forged).execute(&pool).await.unwrap();
    let (ok, out) = verify("party-a", &[&url, "--cookie", &cookie]).await;
    assert!(!ok && out.contains("line 2 fails") && out.contains("signature"), "edited: {out}");

    // Deleted: the entry after it no longer names the one before.
    restore(&pool, &original).await;
    sqlx::query("DELETE FROM audit_events WHERE seq = 3").execute(&pool).await.unwrap();
    let (ok, out) = verify("party-a", &[&url, "--cookie", &cookie]).await;
    assert!(!ok && out.contains("entry seq 4 (line 3) fails") && out.contains("removed"), "deleted: {out}");

    // Reordered: two entries swap places.
    restore(&pool, &original).await;
    for (from, to) in [(2, -2), (3, 2), (-2, 3)] {
        sqlx::query("UPDATE audit_events SET seq = $2 WHERE seq = $1")
            .bind(from)
            .bind(to)
            .execute(&pool)
            .await
            .unwrap();
    }
    let (ok, out) = verify("party-a", &[&url, "--cookie", &cookie]).await;
    assert!(!ok && out.contains("entry seq 3 (line 2) fails") && out.contains("moved"), "reordered: {out}");

    // A saved copy verifies on its own, against the issuer named, or else the party's own.
    restore(&pool, &original).await;
    let (text, _) = entries(&alice, &pair.a.url).await;
    let file = scratch_dir().join("audit.jsonl");
    std::fs::write(&file, text).unwrap();
    let (ok, out) = verify("party-a", &[file.to_str().unwrap(), "--issuer", &pair.a.url]).await;
    assert!(ok && out.contains("head digest: "), "{out}");
    let (ok, out) = verify_as("party-a", Some(&pair.a.url), &[file.to_str().unwrap()]).await;
    assert!(ok && out.contains(&format!("from {}", pair.a.url)), "{out}");
    // Party B's verifier takes a file to be B's log: A's is refused at its first entry.
    let (ok, out) = verify_as("party-b", Some(&pair.b.url), &[file.to_str().unwrap()]).await;
    let named = format!("party-b audit verify: line 1 fails: names issuer \"{}\", not {}", pair.a.url, pair.b.url);
    assert!(!ok && out.contains(&named), "{out}");
    pool.close().await;
}
