//! `GET /metrics` as an operator scrapes it from the real binaries: after a
//! whole link each party shows what it did (tokens per grant, link legs,
//! peer calls), protocol errors and rate-limit refusals are counted under
//! this code's own labels, and the access rule holds behind a proxy and
//! with `--metrics-token`.

mod common;

use common::*;

const TOKEN: &str = "s3cret-metrics-token-for-e2e";

/// The value of the sample `name{labels…}` in an exposition: the first
/// line of that name whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix('{')?;
        let (set, value) = rest.rsplit_once("} ")?;
        let pairs: Vec<&str> = set.split(',').collect();
        let all = labels.iter().all(|(k, v)| pairs.contains(&format!("{k}=\"{v}\"").as_str()));
        all.then(|| value.parse().ok()).flatten()
    })
}

/// [`sample`], or 0 when the series is not there yet.
fn count(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(text, name, labels).unwrap_or(0.0)
}

/// Scrapes `party` from loopback, as Prometheus on the same host would.
async fn scrape(party: &Party) -> String {
    let res = http().get(format!("{}/metrics", party.url)).send().await.unwrap();
    let content_type = header(&res, "content-type").unwrap_or_default();
    let cache = header(&res, "cache-control");
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert_eq!(cache.as_deref(), Some("no-store"));
    res.text().await.unwrap()
}

#[tokio::test]
async fn after_a_link_each_party_shows_what_it_did() {
    let pair = spawn_pair().await;
    linked_alice(&pair).await;
    let (a, b) = (scrape(&pair.a).await, scrape(&pair.b).await);
    let issued = |text: &str, grant: &str| count(text, "oauth_tokens_issued_total", &[("grant_type", grant)]);
    let leg = |text: &str, leg: &str, outcome: &str| {
        count(text, "link_outcomes_total", &[("leg", leg), ("outcome", outcome)])
    };
    let calls = |text: &str, call: &str| count(text, "peer_call_duration_seconds_count", &[("call", call)]);

    // A started: it redeemed its code at B (leg C) and pushed its own (leg F).
    assert_eq!(leg(&a, "C", "ok"), 1.0, "{a}");
    assert_eq!(leg(&a, "F", "ok"), 1.0, "{a}");
    assert!(calls(&a, "code") >= 1.0 && calls(&a, "reciprocal") >= 1.0, "{a}");
    // B answered A's code, took the reciprocal grant, and redeemed A's code at A (leg G).
    assert_eq!(issued(&b, "authorization_code"), 1.0, "{b}");
    assert_eq!(issued(&b, "urn:ietf:params:oauth:grant-type:reciprocal"), 1.0, "{b}");
    assert_eq!(leg(&b, "G", "ok"), 1.0, "{b}");
    assert!(calls(&b, "pushed_code") >= 1.0, "{b}");
    // … which A answered as an ordinary authorization_code grant.
    assert_eq!(issued(&a, "authorization_code"), 1.0, "{a}");
    assert_eq!(issued(&a, "urn:ietf:params:oauth:grant-type:reciprocal"), 0.0, "{a}");
    assert_eq!(count(&a, "peer_call_failures_total", &[]), 0.0, "nothing failed: {a}");
    let token_ok = [("route", "/token"), ("method", "POST"), ("status", "200")];
    assert!(count(&b, "http_requests_total", &token_ok) >= 2.0, "{b}");
    assert!(count(&b, "http_request_duration_seconds_count", &[("route", "/token")]) >= 2.0, "{b}");

    // A replayed or made-up code is counted by its error code; a made-up
    // grant_type and a made-up path never become labels.
    let before = count(&b, "oauth_errors_total", &[("error", "invalid_grant")]);
    let bogus = token_request_at_b(&pair, &[("grant_type", "authorization_code"), ("code", "made-up")]).await;
    expect_oauth_error(bogus, 400, "invalid_grant").await;
    let odd = token_request_at_b(&pair, &[("grant_type", "urn:example:odd-grant-4f1b")]).await;
    expect_oauth_error(odd, 400, "unsupported_grant_type").await;
    let lost = http().get(format!("{}/nothing-here-93ad", pair.b.url)).send().await.unwrap();
    assert_eq!(lost.status(), 404);
    let b = scrape(&pair.b).await;
    assert_eq!(count(&b, "oauth_errors_total", &[("error", "invalid_grant")]), before + 1.0, "{b}");
    assert_eq!(count(&b, "oauth_errors_total", &[("error", "unsupported_grant_type")]), 1.0, "{b}");
    assert!(!b.contains("odd-grant") && !b.contains("nothing-here"), "{b}");
    let unmatched = [("route", "unmatched"), ("method", "GET"), ("status", "404")];
    assert!(count(&b, "http_requests_total", &unmatched) >= 1.0, "{b}");
}

#[tokio::test]
async fn metrics_are_for_this_host_or_the_token_holder_and_refusals_are_counted() {
    // A behind a proxy on its own host; B scraped with a token and a tight device limit.
    let a_args = ["--trusted-proxy", "127.0.0.1"];
    let b_args = ["--metrics-token", TOKEN, "--rate-device-authorization", "1/min"];
    let pair = spawn_pair_with(&a_args, &b_args).await;
    let metrics_at = |party: &Party| format!("{}/metrics", party.url);

    // Through the proxy, a client elsewhere is refused, however the proxy
    // writes it (some append a port, some "unknown"); the host itself is not.
    for hop in ["203.0.113.7", "203.0.113.7:5555", "[2001:db8::1]:443", "unknown", "127.0.0.1"] {
        let forwarded = http().get(metrics_at(&pair.a)).header("x-forwarded-for", hop).send().await.unwrap();
        assert_eq!(forwarded.status(), 403, "{hop}");
        assert!(forwarded.text().await.unwrap().contains("--metrics-token"));
    }
    let forwarded = http().get(metrics_at(&pair.a)).header("forwarded", "for=203.0.113.7").send().await.unwrap();
    assert_eq!(forwarded.status(), 403, "RFC 7239");
    scrape(&pair.a).await;

    // With a token, everyone needs it (loopback too), and it opens from anywhere.
    let missing = http().get(metrics_at(&pair.b)).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert!(www_authenticate(&missing).starts_with("Bearer"), "{missing:?}");
    let wrong = http().get(metrics_at(&pair.b)).bearer_auth("not-the-metrics-token").send().await.unwrap();
    assert_eq!(wrong.status(), 401);

    // One device request is allowed a minute here; the second is refused and counted.
    for expected in [200, 429] {
        let res = http()
            .post(format!("{}/device_authorization", pair.b.url))
            .form(&[("client_id", "speaker")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), expected);
    }
    let right = http().get(metrics_at(&pair.b)).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(right.status(), 200);
    let b = right.text().await.unwrap();
    assert_eq!(sample(&b, "rate_limit_refusals_total", &[("limit", "device_authorization")]), Some(1.0), "{b}");
    assert_eq!(sample(&b, "rate_limit_refusals_total", &[("limit", "sign_in")]), Some(0.0), "{b}");
    let refused = [("route", "/device_authorization"), ("status", "429")];
    assert_eq!(count(&b, "http_requests_total", &refused), 1.0, "{b}");
    assert_eq!(count(&b, "oauth_errors_total", &[("error", "temporarily_unavailable")]), 1.0, "{b}");
    let scrapes = [("route", "/metrics"), ("status", "401")];
    assert_eq!(count(&b, "http_requests_total", &scrapes), 2.0, "refused scrapes count too: {b}");
    assert!(!pair.b.log().contains(TOKEN), "the token is never logged");
}
