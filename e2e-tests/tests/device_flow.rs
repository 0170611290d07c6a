//! The device flow with a staffed kiosk (RFC 8628; docs/choices.md, "Device
//! flow and kiosk"), over HTTP against the real party B.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const SPEAKER: &str = "speaker";

async fn device_authorization(pair: &Pair, form: &[(&str, &str)]) -> reqwest::Response {
    let mut body = vec![("client_id", SPEAKER)];
    body.extend_from_slice(form);
    http().post(format!("{}/device_authorization", pair.b.url)).form(&body).send().await.unwrap()
}

async fn poll(pair: &Pair, device_code: &str) -> reqwest::Response {
    http()
        .post(format!("{}/token", pair.b.url))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", device_code),
            ("client_id", SPEAKER),
        ])
        .send()
        .await
        .unwrap()
}

/// Waits out the polling interval B was started with (`--device-interval 1`).
async fn next_poll() {
    tokio::time::sleep(Duration::from_millis(1_100)).await;
}

async fn spawn_b_for_devices() -> Pair {
    spawn_pair_with(&[], &["--device-interval", "1"]).await
}

/// Submits the kiosk form as the signed-in staff `browser`; returns the page.
async fn kiosk_decides(staff: &reqwest::Client, pair: &Pair, account: &str, user_code: &str, decision: &str) -> String {
    let (_, kiosk) = page(staff, &format!("{}/kiosk", pair.b.url)).await;
    assert_eq!(data_page(&kiosk).as_deref(), Some("kiosk"), "{kiosk}");
    let fields = [("account", account), ("user_code", user_code), ("decision", decision)];
    submit(staff, &format!("{}/kiosk", pair.b.url), &kiosk, &fields).await.1
}

#[tokio::test]
async fn staff_at_the_kiosk_approve_for_the_named_account_and_the_token_is_the_accounts() {
    let pair = spawn_b_for_devices().await;
    let res = device_authorization(&pair, &[("login_hint", "alice"), ("scope", "player:read")]).await;
    assert_eq!(header(&res, "cache-control").as_deref(), Some("no-store"));
    let started: Value = json_ok(res).await;
    let user_code = started["user_code"].as_str().unwrap().to_owned();
    assert_eq!(user_code.len(), 9);
    assert!(user_code.chars().enumerate().all(|(i, c)| if i == 4 {
        c == '-'
    } else {
        "BCDFGHJKLMNPQRSTVWXZ".contains(c)
    }));
    assert_eq!(started["verification_uri"], format!("{}/device", pair.b.url));
    assert_eq!(started["expires_in"], 7 * 24 * 3600, "a named account may take a week to reach the kiosk");
    assert_eq!(started["interval"], 1);
    let device_code = started["device_code"].as_str().unwrap().to_owned();
    // (Polling too fast, slow_down, is timed by the unit tests beside the grant.)
    expect_oauth_error(poll(&pair, &device_code).await, 400, "authorization_pending").await;

    let staff = browser();
    login(&staff, &pair.b.url, "kiosk", "staff-only").await;
    let (_, staff_home) = page(&staff, &format!("{}/", pair.b.url)).await;
    assert!(staff_home.contains("href=\"/kiosk\""), "staff find the kiosk from home");
    let (_, kiosk) = page(&staff, &format!("{}/kiosk?account=alice", pair.b.url)).await;
    assert!(
        kiosk.contains(r#"data-account="alice""#) && kiosk.contains("<td>Kitchen Speaker</td>"),
        "alice's: {kiosk}"
    );
    assert!(!kiosk.contains(&user_code), "the code is typed from the device, never shown: {kiosk}");
    // The wrong account for that code is refused.
    // The wrong account for that code is refused: said as an error, with what was typed kept to correct.
    let wrong = kiosk_decides(&staff, &pair, "bob", &user_code, "approve").await;
    assert!(wrong.contains(r#"<p class="error" role="alert">No device is waiting with that code"#), "{wrong}");
    assert_eq!(input_value(&wrong, "account").as_deref(), Some("bob"), "{wrong}");
    assert_eq!(input_value(&wrong, "user_code").as_deref(), Some(user_code.as_str()), "{wrong}");
    let done = kiosk_decides(&staff, &pair, "alice", &user_code.to_lowercase(), "approve").await;
    assert!(
        done.contains(&format!(
            "Approved: Kitchen Speaker, the device showing {user_code}, can now finish signing in."
        )),
        "the device is named: {done}"
    );
    assert_eq!(input_value(&done, "user_code").as_deref(), Some(""), "a used code is not kept: {done}");
    assert!(
        done.contains(&format!(
            "approve</strong> Kitchen Speaker ({user_code}) for <strong>alice</strong> by kiosk (staff)"
        )),
        "{done}"
    );
    // Post/redirect/get: reloading the page shows it afresh and decides nothing.
    let (url, reloaded) = page(&staff, &format!("{}/kiosk?account=alice", pair.b.url)).await;
    assert!(url.ends_with("/kiosk?account=alice"), "{url}");
    assert!(!reloaded.contains("Approved:"), "the outcome is said once: {reloaded}");

    next_poll().await;
    let tokens = json_ok(poll(&pair, &device_code).await).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(jwt_claims(access)["sub"], user_id_at(&pair.b, "alice").await, "the account's, not the staff's");
    assert_eq!(jwt_claims(access)["client_id"], SPEAKER);
    assert_eq!(player_at_b(&pair, access).await.status(), 200);
    expect_oauth_error(poll(&pair, &device_code).await, 400, "invalid_grant").await;

    // Alice sees the speaker on her home page and can take its access back.
    let alice = browser();
    login(&alice, &pair.b.url, "alice", "wonderland").await;
    let (_, home) = page(&alice, &format!("{}/", pair.b.url)).await;
    assert!(home.contains("Kitchen Speaker"), "{home}");
    let (_, _) = submit(&alice, &format!("{}/consents/revoke", pair.b.url), &home, &[("client_id", SPEAKER)]).await;
    expect_api_error(player_at_b(&pair, access).await, 401, "invalid_token").await;

    // Her signed audit log holds staff's approval and her withdrawal, and no user code.
    let log = alice.get(format!("{}/audit/events", pair.b.url)).send().await.unwrap().text().await.unwrap();
    assert!(!log.contains(&user_code));
    let events: Vec<serde_json::Value> =
        log.lines().map(|l| jwt_claims(&serde_json::from_str::<String>(l).unwrap())["events"].clone()).collect();
    let approved = &events[0]["https://schemas.reciprocal-oauth.example/audit/device-approved"];
    assert_eq!((approved["actor_role"].as_str(), approved["via"].as_str()), (Some("staff"), Some("kiosk")));
    assert_eq!(approved["client_id"], SPEAKER);
    let withdrawn = events.iter().map(|e| e.as_object().unwrap().keys().next().unwrap().rsplit('/').next().unwrap());
    assert_eq!(withdrawn.collect::<Vec<_>>(), ["device-approved", "consent-withdrawn"]);
    let (_, words) = page(&alice, &format!("{}/audit", pair.b.url)).await;
    assert!(words.contains("Approved the device Kitchen Speaker (player:read), by staff at the kiosk."), "{words}");
}

#[tokio::test]
async fn an_unknown_account_is_refused_and_the_metadata_lists_the_flow() {
    let pair = spawn_pair().await;
    expect_oauth_error(device_authorization(&pair, &[("login_hint", "nobody")]).await, 400, "invalid_request").await;
    let meta =
        json_ok(http().get(format!("{}/.well-known/oauth-authorization-server", pair.b.url)).send().await.unwrap())
            .await;
    assert!(meta["grant_types_supported"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g == "urn:ietf:params:oauth:grant-type:device_code"));
    assert_eq!(meta["device_authorization_endpoint"], format!("{}/device_authorization", pair.b.url));
    let plain = json_ok(device_authorization(&pair, &[]).await).await;
    assert_eq!(plain["expires_in"], 600, "a request naming no account lives ten minutes");
}

/// The account holder's `/device` page for `user_code`, then `decision`; returns the result page.
async fn holder_decides(user: &reqwest::Client, pair: &Pair, user_code: &str, decision: &str) -> String {
    let url = url_with(&format!("{}/device", pair.b.url), &[("user_code", user_code)]);
    let (_, confirm) = page(user, &url).await;
    assert_eq!(data_page(&confirm).as_deref(), Some("device"));
    if input_value(&confirm, "user_code").is_none() {
        return confirm;
    }
    let fields = [("user_code", user_code), ("decision", decision)];
    submit(user, &format!("{}/device", pair.b.url), &confirm, &fields).await.1
}

#[tokio::test]
async fn the_account_holder_may_approve_at_device_but_nobody_else() {
    let pair = spawn_b_for_devices().await;
    let started = json_ok(device_authorization(&pair, &[("login_hint", "alice")]).await).await;
    let user_code = started["user_code"].as_str().unwrap();
    let device_code = started["device_code"].as_str().unwrap();

    let bob = browser();
    login(&bob, &pair.b.url, "bob", "builder").await;
    let refused = holder_decides(&bob, &pair, user_code, "approve").await;
    assert!(refused.contains("That device asked for another account"), "{refused}");

    let alice = browser();
    login(&alice, &pair.b.url, "alice", "wonderland").await;
    let done = holder_decides(&alice, &pair, user_code, "approve").await;
    assert!(done.contains("Approved"), "{done}");
    next_poll().await;
    let tokens = json_ok(poll(&pair, device_code).await).await;
    assert_eq!(jwt_claims(tokens["access_token"].as_str().unwrap())["sub"], user_id_at(&pair.b, "alice").await);

    // A request naming no account belongs to whoever approves it.
    let plain = json_ok(device_authorization(&pair, &[]).await).await;
    holder_decides(&bob, &pair, plain["user_code"].as_str().unwrap(), "approve").await;
    let tokens = json_ok(poll(&pair, plain["device_code"].as_str().unwrap()).await).await;
    assert_eq!(jwt_claims(tokens["access_token"].as_str().unwrap())["sub"], user_id_at(&pair.b, "bob").await);
}

#[tokio::test]
async fn a_denial_is_final_and_the_kiosk_is_for_staff_only() {
    let pair = spawn_b_for_devices().await;
    let started = json_ok(device_authorization(&pair, &[("login_hint", "bob")]).await).await;
    let staff = browser();
    login(&staff, &pair.b.url, "kiosk", "staff-only").await;
    let page_after = kiosk_decides(&staff, &pair, "bob", started["user_code"].as_str().unwrap(), "deny").await;
    assert!(page_after.contains("Denied"), "{page_after}");
    expect_oauth_error(poll(&pair, started["device_code"].as_str().unwrap()).await, 400, "access_denied").await;

    let alice = browser();
    login(&alice, &pair.b.url, "alice", "wonderland").await;
    expect_error_page(alice.get(format!("{}/kiosk", pair.b.url)).send().await.unwrap(), 403).await;
}

#[tokio::test]
async fn taking_access_back_at_home_also_stops_an_approval_not_yet_redeemed() {
    let pair = spawn_b_for_devices().await;
    let started = json_ok(device_authorization(&pair, &[("login_hint", "alice")]).await).await;
    let staff = browser();
    login(&staff, &pair.b.url, "kiosk", "staff-only").await;
    let done = kiosk_decides(&staff, &pair, "alice", started["user_code"].as_str().unwrap(), "approve").await;
    assert!(done.contains("Approved"), "{done}");

    // Before the device comes back online, alice removes it from her home page.
    let alice = browser();
    login(&alice, &pair.b.url, "alice", "wonderland").await;
    let (_, home) = page(&alice, &format!("{}/", pair.b.url)).await;
    assert!(home.contains("Kitchen Speaker"), "{home}");
    submit(&alice, &format!("{}/consents/revoke", pair.b.url), &home, &[("client_id", SPEAKER)]).await;
    let (error, why) = oauth_error_parts(poll(&pair, started["device_code"].as_str().unwrap()).await, 400).await;
    assert_eq!(error, "access_denied", "{why}");
    let (_, kiosk) = page(&staff, &format!("{}/kiosk", pair.b.url)).await;
    assert!(kiosk.contains("withdraw</strong>"), "the audit log says so: {kiosk}");
}

#[tokio::test]
async fn guessing_user_codes_is_throttled_and_a_code_of_ones_own_does_not_reset_it() {
    let pair = spawn_pair().await;
    let mallory = browser();
    login(&mallory, &pair.b.url, "bob", "builder").await;
    let own = json_ok(device_authorization(&pair, &[]).await).await;
    let own_code = own["user_code"].as_str().unwrap();
    for guess in ["BBBB-BBBB", "CCCC-CCCC", "DDDD-DDDD", "FFFF-FFFF"] {
        let (_, page_html) =
            page(&mallory, &url_with(&format!("{}/device", pair.b.url), &[("user_code", guess)])).await;
        assert!(page_html.contains("That code is not waiting for approval"), "{page_html}");
    }
    // Looking up a real code of one's own between guesses does not clear the count.
    let (_, mine) = page(&mallory, &url_with(&format!("{}/device", pair.b.url), &[("user_code", own_code)])).await;
    assert!(input_value(&mine, "user_code").is_some(), "{mine}");
    let (_, fifth) = page(&mallory, &url_with(&format!("{}/device", pair.b.url), &[("user_code", "GGGG-GGGG")])).await;
    assert!(fifth.contains("That code is not waiting"), "{fifth}");
    let (_, locked) = page(&mallory, &url_with(&format!("{}/device", pair.b.url), &[("user_code", own_code)])).await;
    assert!(locked.contains("Too many wrong codes"), "{locked}");
}

/// Starts `device-simulator` for `account`; its stdout, line by line.
fn simulated_device(
    pair: &Pair,
    account: &str,
    name: &str,
) -> (std::process::Child, std::io::Lines<std::io::BufReader<std::process::ChildStdout>>) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(binary("device-simulator"))
        .args(["--issuer", &pair.b.url, "--account", account, "--name", name, "--max-wait", "30", "--again-on-enter"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the device simulator");
    let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// The first line of `lines` that starts with `prefix`, without it.
fn line_after(lines: &mut impl Iterator<Item = std::io::Result<String>>, prefix: &str) -> String {
    lines
        .map(Result::unwrap)
        .find_map(|l| l.strip_prefix(prefix).map(str::to_owned))
        .unwrap_or_else(|| panic!("no line starting {prefix:?}"))
}

#[tokio::test]
async fn devices_register_themselves_and_staff_approve_each_by_its_name() {
    let pair = spawn_b_for_devices().await;
    let (mut kitchen, mut kitchen_out) = simulated_device(&pair, "alice", "Kitchen radio");
    let (mut bedroom, mut bedroom_out) = simulated_device(&pair, "alice", "Bedroom radio");
    let kitchen_id = line_after(&mut kitchen_out, "registered as ").split(' ').next().unwrap().to_owned();
    let kitchen_code = line_after(&mut kitchen_out, "user_code ");
    let bedroom_code = line_after(&mut bedroom_out, "user_code ");

    let staff = browser();
    login(&staff, &pair.b.url, "kiosk", "staff-only").await;
    let (_, kiosk) = page(&staff, &format!("{}/kiosk?account=alice", pair.b.url)).await;
    assert!(
        kiosk.contains("Kitchen radio (registered itself)") && kiosk.contains("Bedroom radio (registered itself)"),
        "each by its registered name, marked as its own claim: {kiosk}"
    );
    kiosk_decides(&staff, &pair, "alice", &kitchen_code, "approve").await;
    kiosk_decides(&staff, &pair, "alice", &bedroom_code, "approve").await;

    // Each polls with its own assertions, gets alice's token and calls the player.
    for out in [&mut kitchen_out, &mut bedroom_out] {
        assert_eq!(line_after(out, "GET /api/player -> "), "200");
    }

    // Removing one device at alice's home leaves the other working.
    let alice = browser();
    login(&alice, &pair.b.url, "alice", demo_password("alice")).await;
    let (_, home) = page(&alice, &format!("{}/", pair.b.url)).await;
    assert!(home.contains("Kitchen radio") && home.contains("Bedroom radio"), "{home}");
    let (_, home) =
        submit(&alice, &format!("{}/consents/revoke", pair.b.url), &home, &[("client_id", &kitchen_id)]).await;
    assert!(!home.contains("Kitchen radio") && home.contains("Bedroom radio"), "{home}");
    for (device, out, expected) in [(&mut kitchen, &mut kitchen_out, "401"), (&mut bedroom, &mut bedroom_out, "200")] {
        use std::io::Write;
        let mut stdin = device.stdin.take().unwrap();
        writeln!(stdin).unwrap();
        drop(stdin);
        assert_eq!(line_after(out, "GET /api/player -> "), expected);
        assert!(device.wait().unwrap().success());
    }
}
