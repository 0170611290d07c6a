//! Instances killed (SIGKILL) at random moments while many users link, as
//! `scripts/crash.sh` runs it: two instances of each party on PostgreSQL
//! behind round-robin proxies ([`common::spawn_cluster`]), `CRASH_LINKS`
//! users linking at once (half from A, half from B), one instance killed mid-way (of B in even
//! runs, of A in odd ones), then each user whose link is not whole does what
//! the pages offer once ([`common::retry_link`]), and every link must be
//! whole: both homes `mutual`, one live grant per direction, each held token
//! of a live grant. An unlink then leaves no live grant. `CRASH_RUNS` runs,
//! each on a new cluster. The deterministic pass over every kill point is
//! `instances::every_kill_point_mid_link_is_recovered_by_the_users_retry`.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// A number from the environment, or `default`.
fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A random number below `n` (the kill's moment and instance).
fn random_below(n: u64) -> u64 {
    (uuid::Uuid::new_v4().as_u128() % u128::from(n.max(1))) as u64
}

#[tokio::test]
#[ignore = "repetitions belong to scripts/crash.sh"]
async fn links_survive_an_instance_killed_at_a_random_moment() {
    let (runs, links, window) =
        (setting("CRASH_RUNS", 1), setting("CRASH_LINKS", 20), setting("CRASH_WINDOW_MS", 3000));
    let mut failures = Vec::new();
    for run in 0..runs {
        let Some(mut cluster) = spawn_cluster(&[], &[]).await else { return };
        let (a, b) = (cluster.a_url(), cluster.b_url());
        let users: Vec<(String, reqwest::Client)> =
            (0..links).map(|i| (format!("user{i}"), roaming_browser())).collect();
        let password = "correct horse battery";
        futures_util::future::join_all(users.iter().map(|(name, user)| async {
            sign_up(user, &b, name, password).await;
            sign_up(user, &a, name, password).await;
        }))
        .await;

        let started = Instant::now();
        // Half the users start at A, half at B.
        let sides = |i: usize| if i.is_multiple_of(2) { (a.clone(), b.clone()) } else { (b.clone(), a.clone()) };
        let attempts: Vec<_> = users
            .iter()
            .enumerate()
            .map(|(i, (name, user))| {
                let ((from, to), user, name) = (sides(i), user.clone(), name.clone());
                tokio::spawn(async move { flow_step(&link(&user, &from, &to, &name, password, "approve").await) })
            })
            .collect();
        let (at, victim) = (random_below(window), random_below(2) as usize);
        tokio::time::sleep(Duration::from_millis(at)).await;
        let party = if run.is_multiple_of(2) { "B" } else { "A" };
        match party {
            "B" => cluster.b[victim].stop(),
            _ => cluster.a[victim].stop(),
        }
        let mut broken = 0;
        for attempt in attempts {
            if !matches!(attempt.await.as_deref(), Ok("done")) {
                broken += 1;
            }
        }
        let all_done = started.elapsed();

        // The databases are read through instances still running.
        let live_a = if party == "A" { &cluster.a[1 - victim] } else { &cluster.a[0] };
        let live_b = if party == "B" { &cluster.b[1 - victim] } else { &cluster.b[0] };
        let mut retried = 0;
        let mut stranded = Vec::new();
        for (i, (name, user)) in users.iter().enumerate() {
            if link_is_whole(live_a, live_b, name).await.is_err() {
                retried += 1;
                let retry = {
                    let ((from, to), user, name) = (sides(i), user.clone(), name.clone());
                    tokio::spawn(async move { retry_link(&user, &from, &to, &name, password).await })
                };
                if let Err(e) = retry.await {
                    stranded.push(format!("{name}: the retry broke: {e}"));
                    continue;
                }
            }
            let states = (link_state(user, &a).await, link_state(user, &b).await);
            if states != ("mutual".into(), "mutual".into()) {
                stranded.push(format!("{name}: homes say {states:?}"));
            } else if let Err(e) = link_is_whole(live_a, live_b, name).await {
                stranded.push(format!("{name}: {e}"));
            }
        }
        for (name, user) in &users {
            let (_, home) = page(user, &format!("{a}/")).await;
            submit(user, &format!("{a}/link/unlink"), &home, &[]).await;
            let left = live_grants(live_a, name, B_CLIENT).await + live_grants(live_b, name, A_CLIENT).await;
            if left != 0 {
                stranded.push(format!("{name}: {left} live grants after unlinking"));
            }
        }
        eprintln!(
            "run {}: {links} links, instance {victim} of {party} killed at {at} ms (links ended after {} ms); \
             {broken} links broke off, {retried} retried once, stranded: {}",
            run + 1,
            all_done.as_millis(),
            if stranded.is_empty() { "none".to_owned() } else { stranded.join("; ") }
        );
        if !stranded.is_empty() {
            failures.push(run + 1);
        }
    }
    assert!(failures.is_empty(), "runs with a stranded user: {failures:?}");
}
