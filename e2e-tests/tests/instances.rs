//! Several instances of one party behind one database (docs/architecture.md, "Several instances"): two of
//! each party on PostgreSQL, each pair behind a round-robin proxy that is its
//! public URL ([`common::spawn_cluster`]). They agree on keys from the first
//! start and through a rotation, refuse a revocation made at a sibling
//! within 100 ms, take turns on one user's refreshes and updates, and leave
//! no orphan grant when an instance dies mid-answer. The tests that need
//! PostgreSQL skip without `TEST_DATABASE_URL` (`scripts/test.sh` sets it).

mod common;

use std::time::{Duration, Instant};

use futures_util::FutureExt;

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

/// Two instances started at the same moment on an empty database
/// create one signing key between them and accept each other's tokens.
#[tokio::test]
async fn instances_started_together_on_an_empty_database_agree_on_keys() {
    // Several instances share PostgreSQL only; SQLite is one instance (its migrations take no lock).
    if std::env::var("TEST_DATABASE_URL").is_err() {
        eprintln!("skipped: several instances need TEST_DATABASE_URL (PostgreSQL); scripts/test.sh sets it");
        return;
    }
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
            // Fails unless the sibling finds the token active.
            issue_and_check(&issuer.url, &other.url).await.unwrap_or_else(|e| panic!("trial {trial}: {e}"));
        }
    }
}

/// A `client_credentials` token from `issuer`, introspected at `other`: whether both worked, and the token's `kid`.
async fn issue_and_check(issuer: &str, other: &str) -> Result<String, String> {
    let creds = (A_CLIENT, Some(A_SECRET));
    let res = http()
        .post(format!("{issuer}/token"))
        .basic_auth(creds.0, creds.1)
        .form(&[("grant_type", "client_credentials"), ("scope", "player:read")])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let token: serde_json::Value = res.json().await.map_err(|e| e.to_string())?;
    let access = token["access_token"].as_str().ok_or(format!("no token: {token}"))?.to_owned();
    let answer: serde_json::Value = http()
        .post(format!("{other}/introspect"))
        .basic_auth(creds.0, creds.1)
        .form(&[("token", access.as_str())])
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    if answer["active"] != true {
        return Err(format!("{other} refused a token of {issuer}: {answer}"));
    }
    Ok(jsonwebtoken::decode_header(&access).unwrap().kid.unwrap())
}

/// Waits up to 10 s for `check` to hold.
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A signing-key rotation while both instances issue and check
/// tokens fails no request. Time is moved by ageing the key rows in the
/// database, which is what the instances read every second.
#[tokio::test]
async fn a_key_rotation_under_traffic_on_two_instances_fails_no_request() {
    let dir = scratch_dir();
    let db = database_url(&dir, "party-b", true).await;
    let (p1, p2) = (free_port(), free_port());
    let first = start("party-b", p1, "http://127.0.0.1:9", &db, &dir, &[]).await;
    let pool = database(&first).await;
    let keys = || async {
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT kid, generation FROM signing_keys ORDER BY generation")
            .fetch_all(&pool)
            .await
            .unwrap();
        rows
    };
    let old_kid = keys().await[0].0.clone();
    // As if the party had run for 40 days: the next key is due.
    sqlx::query("UPDATE signing_keys SET created_at = created_at - 40 * 86400").execute(&pool).await.unwrap();
    let public = ["--public-url".to_owned(), first.url.clone()];
    let second = start("party-b", p2, "http://127.0.0.1:9", &db, &dir, &public).await;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (first, second, stop) = (first.url.clone(), second.url.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut done, mut kids) = (0, std::collections::BTreeSet::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for (issuer, other) in [(&first, &second), (&second, &first)] {
                    kids.insert(issue_and_check(issuer, other).await?);
                    done += 1;
                }
            }
            Ok::<_, String>((done, kids))
        })
    };

    eventually("one instance publishes the next key", || async { keys().await.len() == 2 }).await;
    let jwks = |p: String| async move {
        let v: serde_json::Value = http().get(format!("{p}/jwks.json")).send().await.unwrap().json().await.unwrap();
        v["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    let new_kid = keys().await[1].0.clone();
    let both = vec![old_kid.clone(), new_kid.clone()];
    for p in [&first, &second] {
        let url = p.url.clone();
        eventually("both instances publish both keys", || jwks(url.clone()).map(|k| k == both)).await;
    }
    assert_eq!(issue_and_check(&first.url, &second.url).await.unwrap(), old_kid, "the new key does not sign yet");

    // Ten minutes later (the new key's row aged by 601 s): both sign with it.
    sqlx::query("UPDATE signing_keys SET created_at = created_at - 601 WHERE generation = 1")
        .execute(&pool)
        .await
        .unwrap();
    for (issuer, other) in [(&first.url, &second.url), (&second.url, &first.url)] {
        eventually("both instances sign with the new key", || async {
            issue_and_check(issuer, other).await.unwrap() == new_kid
        })
        .await;
    }
    // Past the old key's last token (access tokens live 600 s, plus a minute): it is retired.
    sqlx::query("UPDATE signing_keys SET created_at = created_at - 700 WHERE generation = 1")
        .execute(&pool)
        .await
        .unwrap();
    for p in [&first, &second] {
        let url = p.url.clone();
        let only = vec![new_kid.clone()];
        eventually("the old key is retired", || jwks(url.clone()).map(|k| k == only)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (done, kids) = traffic.await.unwrap().expect("no request failed during the rotation");
    assert!(done >= 20, "traffic ran ({done} requests)");
    assert!(kids.contains(&new_kid), "traffic saw the new key: {kids:?}");
}

/// On PostgreSQL a revocation at one instance is refused by the
/// other within 100 ms (it is announced with `NOTIFY` as it commits), even
/// where the token was verified and cached a moment before.
#[tokio::test]
async fn a_revocation_at_one_instance_is_refused_by_the_other_within_100_ms() {
    if std::env::var("TEST_DATABASE_URL").is_err() {
        eprintln!("skipped: several instances need TEST_DATABASE_URL (PostgreSQL), as .ci/run sets it");
        return;
    }
    let pair = spawn_pair().await;
    let b = &pair.b;
    let second =
        start("party-b", free_port(), &pair.a.url, &b.database_url, &b.dir, &["--public-url".into(), b.url.clone()])
            .await;
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let (access, _) = token_for(&pair, "alice", "player:read").await;
        let at_second = || http().get(format!("{}/api/player", second.url)).bearer_auth(&access).send();
        assert_eq!(at_second().await.unwrap().status(), 200, "verified and cached at the second instance");
        assert_eq!(revoke_at_b(&pair, &access, None).await.status(), 200);
        let revoked = Instant::now();
        while at_second().await.unwrap().status() != 401 {
            assert!(revoked.elapsed() < Duration::from_secs(2), "the second instance still accepts a revoked token");
        }
        slowest = slowest.max(revoked.elapsed());
    }
    eprintln!("revocation reached the other instance within {slowest:?} (slowest of 5)");
    assert!(slowest < Duration::from_millis(100), "slowest of 5: {slowest:?}");
}

/// Two instances of A acting for one user at the same moment, each
/// needing to refresh the token A holds from B (whose two instances share
/// the refresh tokens behind the proxy), present each refresh token once
/// between them (a lock in the database), so B never sees a reuse and the
/// link survives: 20 rounds, 0 broken.
#[tokio::test]
async fn two_instances_refreshing_one_users_token_at_once_keep_the_link() {
    // Access tokens of 30 s are always within A's 60-s refresh margin: every use refreshes.
    let Some(cluster) = spawn_cluster(&[], &["--access-token-ttl", "30"]).await else { return };
    let (a, b) = (cluster.a_url(), cluster.b_url());
    let alice = roaming_browser();
    login(&alice, &a, "alice", "wonderland").await;
    assert_eq!(flow_step(&link(&alice, &a, &b, "alice", "wonderland", "approve").await), "done");
    let (_, home) = page(&alice, &format!("{a}/")).await;
    let csrf = input_value(&home, "csrf_token").unwrap();
    let play = |base: String| {
        let (alice, csrf) = (alice.clone(), csrf.clone());
        async move {
            let res = alice
                .post(format!("{base}/assistant/play"))
                .form(&[("csrf_token", csrf.as_str()), ("query", "jazz")])
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 303, "{base}");
        }
    };
    for round in 0..20 {
        tokio::join!(play(cluster.a[0].url.clone()), play(cluster.a[1].url.clone()));
        let held = held_token(&cluster.a[0], "alice").await.expect("A still holds a token");
        let at_b = http().get(format!("{b}/api/player")).bearer_auth(&held).send().await.unwrap();
        assert_eq!(at_b.status(), 200, "round {round}: the link survived both instances refreshing");
    }
    let states = [link_state(&alice, &cluster.a[0].url).await, link_state(&alice, &cluster.a[1].url).await];
    assert_eq!(states, ["mutual", "mutual"]);
    let pool = database(&cluster.a[0]).await;
    let broken: Option<(Option<String>,)> = sqlx::query_as(
        "SELECT p.broken FROM peer_tokens p JOIN users u ON u.id = p.user_id WHERE u.username = 'alice'",
    )
    .fetch_optional(&pool)
    .await
    .unwrap();
    assert_eq!(broken, Some((None,)), "A did not mark the link broken");
}

/// Two authorization updates for one user at once, one at each
/// instance of A, take turns: whichever lands last is what both parties
/// hold, with one live grant and a link that still works both ways.
#[tokio::test]
async fn two_updates_for_one_user_at_two_instances_take_turns() {
    let Some(cluster) = spawn_cluster(&[], &[]).await else { return };
    let (a, b) = (cluster.a_url(), cluster.b_url());
    let alice = roaming_browser();
    login(&alice, &a, "alice", "wonderland").await;
    assert_eq!(flow_step(&link(&alice, &a, &b, "alice", "wonderland", "approve").await), "done");
    let (_, home) = page(&alice, &format!("{a}/")).await;
    let csrf = input_value(&home, "csrf_token").unwrap();
    let update = |base: String, scope: &'static str| {
        let (alice, csrf) = (alice.clone(), csrf.clone());
        async move {
            let form = [("csrf_token", csrf.as_str()), ("scope", scope)];
            let res = alice.post(format!("{base}/link/settings")).form(&form).send().await.unwrap();
            let (_, outcome) = follow(&alice, res).await;
            assert_eq!(flow_step(&outcome), "done", "{outcome}");
        }
    };
    for round in 0..5 {
        tokio::join!(
            update(cluster.a[0].url.clone(), "assistant:announce"),
            update(cluster.a[1].url.clone(), "assistant:notify"),
        );
        assert_eq!(live_grants(&cluster.a[0], "alice", B_CLIENT).await, 1, "round {round}: one grant for B");
        let pool = database(&cluster.a[0]).await;
        let (granted,): (String,) = sqlx::query_as(
            "SELECT g.scope FROM grants g JOIN users u ON u.id = g.user_id
             WHERE u.username = 'alice' AND g.client_id = $1 AND g.revoked_at IS NULL",
        )
        .bind(B_CLIENT)
        .fetch_one(&pool)
        .await
        .unwrap();
        pool.close().await;
        let held = held_token(&cluster.b[0], "alice").await.expect("B holds a token from A");
        assert_eq!(jwt_claims(&held)["scope"], granted.as_str(), "round {round}: B holds what A granted last");
        let introspected = introspect_with(&a, B_CLIENT, B_SECRET, &held).await;
        assert_eq!(introspected["active"], true, "round {round}: B's token works at A");
    }
    assert_eq!((link_state(&alice, &a).await, link_state(&alice, &b).await), ("mutual".into(), "mutual".into()));
    // Both parties' audit logs, written by two instances each, verify, and
    // their last word on each direction is what holds now.
    let granted = jwt_claims(&held_token(&cluster.b[0], "alice").await.unwrap())["scope"].as_str().unwrap().to_owned();
    for (base, bin, direction) in [(&a, "party-a", "inbound"), (&b, "party-b", "outbound")] {
        let log = alice.get(format!("{base}/audit/events")).send().await.unwrap().text().await.unwrap();
        let file = scratch_dir().join(format!("{bin}-audit.jsonl"));
        std::fs::write(&file, &log).unwrap();
        let mut verify = std::process::Command::new(binary(bin));
        verify.args(["audit", "verify"]).arg(&file).arg("--issuer").arg(base);
        // The proxies answer the verifier's metadata and JWKS requests on this runtime.
        let out = tokio::task::spawn_blocking(move || verify.output().unwrap()).await.unwrap();
        assert!(out.status.success(), "{bin}: {}", String::from_utf8_lossy(&out.stderr));
        let last = log
            .lines()
            .map(|l| jwt_claims(&serde_json::from_str::<String>(l).unwrap())["events"].clone())
            .filter_map(|e| e.as_object().unwrap().values().next().cloned())
            .rfind(|p| p["direction"] == direction)
            .unwrap();
        assert_eq!(last["scope"], granted.as_str(), "{bin}: the last {direction} entry");
    }
}

/// RFC 7662 introspection at `base` as `client`.
async fn introspect_with(base: &str, client: &str, secret: &str, token: &str) -> serde_json::Value {
    let res = http().post(format!("{base}/introspect")).basic_auth(client, Some(secret)).form(&[("token", token)]);
    res.send().await.unwrap().json().await.unwrap()
}

/// What the user was doing when an instance died.
#[derive(Clone, Copy, PartialEq)]
enum Doing {
    /// Linking from A, approving both requests.
    Linking,
    /// Changing in A's settings what B may do (the authorization update).
    Updating,
    /// Unlinking at A.
    Unlinking,
}

/// Which instance is killed once the trapped request's answer is lost or held.
#[derive(Clone, Copy, PartialEq)]
enum Victim {
    /// The one that served the trapped request; the other carries on.
    Served,
    /// A's only running instance (the other stopped before), which both
    /// sent the push and served whatever it led to: it dies mid-call.
    LoneA,
}

/// A kill point: between which legs, the proxy (`on_b` or A's) that
/// traps the first request containing `marker`, whether its answer is
/// held (the caller left waiting) rather than lost, and who dies.
struct KillPoint {
    between: &'static str,
    doing: Doing,
    on_b: bool,
    marker: &'static str,
    hold: bool,
    victim: Victim,
    /// The issuer's grant of the broken attempt is gone before the user does anything.
    nothing_left: bool,
}

const fn kill(between: &'static str, doing: Doing, on_b: bool, marker: &'static str) -> KillPoint {
    KillPoint { between, doing, on_b, marker, hold: false, victim: Victim::Served, nothing_left: false }
}

/// Where an instance of either party can die in a link (legs A–G of
/// docs/protocol.md), an authorization update and an unlink.
const KILL_POINTS: &[KillPoint] = &[
    kill("A–B: A sent the user to B", Doing::Linking, false, "POST /link/start"),
    kill("B–C: B minted the code for A", Doing::Linking, true, "decision=approve"),
    KillPoint {
        nothing_left: true,
        ..kill("C–D: B issued A's tokens", Doing::Linking, true, "grant_type=authorization_code")
    },
    kill("D–E: A kept B's tokens, the consent not shown", Doing::Linking, false, "GET /link/callback"),
    KillPoint {
        hold: true,
        victim: Victim::LoneA,
        ..kill("F–G: A pushed, then died waiting for B", Doing::Linking, true, "grant-type%3Areciprocal")
    },
    KillPoint {
        hold: true,
        victim: Victim::LoneA,
        ..kill(
            "G: A issued B's tokens for the pushed code, then died",
            Doing::Linking,
            false,
            "grant_type=authorization_code",
        )
    },
    kill("G–F: B kept A's tokens, its answer to the push lost", Doing::Linking, true, "grant-type%3Areciprocal"),
    kill("F: A finished, its answer to the user lost", Doing::Linking, false, "decision=approve"),
    kill("update F–G: B kept the new tokens, its answer lost", Doing::Updating, true, "grant-type%3Areciprocal"),
    KillPoint {
        hold: true,
        victim: Victim::LoneA,
        ..kill("update G: A issued the new tokens, then died", Doing::Updating, false, "grant_type=authorization_code")
    },
    kill("unlink: B ended the link, its answer to A's revocation lost", Doing::Unlinking, true, "POST /revoke"),
    kill("unlink: A ended the link, its answer to the user lost", Doing::Unlinking, false, "POST /link/unlink"),
];

/// At every kill point an instance dies (SIGKILL) mid-way, and the
/// user's next step on the pages (the outcome page's "Try again", the
/// waiting reciprocal request, or else a new link; unlinking again) ends
/// with both homes `mutual` (or `none` for an unlink), one live grant per
/// direction, each the one whose token the other party holds; an unlink
/// then leaves no live grant on either side. The repetitions under load are
/// `crash::links_survive_an_instance_killed_at_a_random_moment` (`scripts/crash.sh`).
#[tokio::test]
async fn every_kill_point_mid_link_is_recovered_by_the_users_retry() {
    let Some(mut cluster) = spawn_cluster(&[], &[]).await else { return };
    let (a, b) = (cluster.a_url(), cluster.b_url());
    let password = "correct horse battery";
    for (i, point) in KILL_POINTS.iter().enumerate() {
        let (name, user) = (format!("crash{i}"), roaming_browser());
        sign_up(&user, &b, &name, password).await;
        sign_up(&user, &a, &name, password).await;
        if point.doing != Doing::Linking {
            assert_eq!(flow_step(&link(&user, &a, &b, &name, password, "approve").await), "done");
        }
        if point.victim == Victim::LoneA {
            cluster.a[1].stop();
        }
        let proxy = if point.on_b { &cluster.b_proxy } else { &cluster.a_proxy };
        let trapped = match point.hold {
            true => proxy.hold_answer_to(point.marker),
            false => proxy.lose_answer_to(point.marker),
        };
        let broken = {
            let (user, name, a, b, doing) = (user.clone(), name.clone(), a.clone(), b.clone(), point.doing);
            tokio::spawn(async move {
                match doing {
                    Doing::Linking => drop(link(&user, &a, &b, &name, password, "approve").await),
                    Doing::Updating => {
                        let (_, settings) = page(&user, &format!("{a}/link/settings")).await;
                        let fields = [("scope", "assistant:notify")];
                        submit(&user, &format!("{a}/link/settings"), &settings, &fields).await;
                    }
                    Doing::Unlinking => {
                        let (_, home) = page(&user, &format!("{a}/")).await;
                        submit(&user, &format!("{a}/link/unlink"), &home, &[]).await;
                    }
                }
            })
        };
        let served = tokio::time::timeout(Duration::from_secs(30), trapped)
            .await
            .unwrap_or_else(|_| panic!("{}: the trapped request never came", point.between))
            .expect("the trap sprang");
        let killed = match (point.victim, point.on_b) {
            (Victim::LoneA, _) => &mut cluster.a[0],
            (Victim::Served, true) => &mut cluster.b[served],
            (Victim::Served, false) => &mut cluster.a[served],
        };
        killed.stop();
        let _ = broken.await; // the user saw an error, or a page from before the crash
        if point.victim == Victim::LoneA {
            // Both instances of A were down; they come back for the user's next step.
            cluster.a[0].restart().await;
            cluster.a[1].restart().await;
        }

        let (live_a, live_b) = (running(&mut cluster.a), running(&mut cluster.b));
        if point.nothing_left {
            // A presented the code again: a replay, so B revoked what it had issued for it.
            let orphans = live_grants(&cluster.b[live_b], &name, A_CLIENT).await;
            assert_eq!(orphans, 0, "{}: B's grant for the lost answer", point.between);
            assert_eq!(link_state(&user, &b).await, "none", "{}: B's home", point.between);
        }
        if point.doing == Doing::Unlinking {
            unlink_and_expect_none(&user, &a, &b).await;
        } else {
            let outcome = retry_link(&user, &a, &b, &name, password).await;
            assert_eq!(flow_step(&outcome), "done", "{}: {outcome}", point.between);
            let states = (link_state(&user, &a).await, link_state(&user, &b).await);
            assert_eq!(states, ("mutual".into(), "mutual".into()), "{}", point.between);
            let whole = link_is_whole(&cluster.a[live_a], &cluster.b[live_b], &name).await;
            whole.unwrap_or_else(|e| panic!("{}: {e}", point.between));
            unlink_and_expect_none(&user, &a, &b).await;
        }
        let left = live_grants(&cluster.a[live_a], &name, B_CLIENT).await
            + live_grants(&cluster.b[live_b], &name, A_CLIENT).await;
        assert_eq!(left, 0, "{}: live grants after unlinking", point.between);
        for party in cluster.a.iter_mut().chain(cluster.b.iter_mut()) {
            if !party.is_running() {
                party.restart().await;
            }
        }
    }
}

/// The index of an instance still running among `instances`.
fn running(instances: &mut [Party]) -> usize {
    instances.iter_mut().position(|p| p.is_running()).expect("an instance still runs")
}

/// Unlinks at `a` and expects both homes to say `none`.
async fn unlink_and_expect_none(user: &reqwest::Client, a: &str, b: &str) {
    let (_, home) = page(user, &format!("{a}/")).await;
    let (_, outcome) = submit(user, &format!("{a}/link/unlink"), &home, &[]).await;
    assert!(!outcome.contains("did not reach"), "{outcome}");
    assert_eq!((link_state(user, a).await, link_state(user, b).await), ("none".into(), "none".into()));
}
