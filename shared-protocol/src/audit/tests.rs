use super::verify::{verify_log, Failure};
use super::*;
use crate::clock::ManualClock;
use crate::test_support::unit::{state, state_with};
use crate::tokens::KeyPolicy;
use std::collections::HashMap;

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

/// One answer of a [`Site`]: status line, header lines (each ending in CRLF), body.
type Page = (&'static str, String, String);
/// A request a [`Site`] received: path and query, and its `Cookie` header.
type Asked = (String, Option<String>);

/// A loopback site: answers each request with the page put at its path
/// and query, else what `fallback` makes of them, else 404; records every
/// request's path and `Cookie` header.
struct Site {
    url: String,
    pages: std::sync::Arc<std::sync::Mutex<HashMap<String, Page>>>,
    asked: std::sync::Arc<std::sync::Mutex<Vec<Asked>>>,
}

impl Site {
    fn serve(fallback: impl Fn(&str) -> Option<Page> + Send + 'static) -> Self {
        Self::on(loopback(), fallback)
    }

    fn on(listener: std::net::TcpListener, fallback: impl Fn(&str) -> Option<Page> + Send + 'static) -> Self {
        let url = format!("http://{}", listener.local_addr().unwrap());
        let pages = std::sync::Arc::new(std::sync::Mutex::new(HashMap::<String, Page>::new()));
        let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (served, log) = (pages.clone(), asked.clone());
        std::thread::spawn(move || {
            use std::io::{BufRead, Write};
            for conn in listener.incoming().flatten() {
                let mut reader = std::io::BufReader::new(conn);
                let (mut target, mut cookie, mut line) = (String::new(), None, String::new());
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    if target.is_empty() {
                        target = line.split(' ').nth(1).unwrap_or_default().to_owned();
                    } else if let Some((name, value)) = line.split_once(':') {
                        if name.eq_ignore_ascii_case("cookie") {
                            cookie = Some(value.trim().to_owned());
                        }
                    }
                    line.clear();
                }
                log.lock().unwrap().push((target.clone(), cookie));
                let page = served.lock().unwrap().get(&target).cloned().or_else(|| fallback(&target));
                let (status, headers, body) = page.unwrap_or(("404 Not Found", String::new(), String::new()));
                let length = body.len();
                let answer = format!(
                    "HTTP/1.1 {status}\r\n{headers}content-length: {length}\r\nconnection: close\r\n\r\n{body}"
                );
                let _ = reader.get_mut().write_all(answer.as_bytes());
            }
        });
        Site { url, pages, asked }
    }

    fn put(&self, target: &str, status: &'static str, headers: &str, body: &str) {
        self.pages.lock().unwrap().insert(target.to_owned(), (status, headers.to_owned(), body.to_owned()));
    }

    fn asked(&self) -> Vec<Asked> {
        self.asked.lock().unwrap().clone()
    }
}

fn loopback() -> std::net::TcpListener {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap()
}

/// A party whose public URL is a loopback site publishing RFC 8414 metadata
/// (naming `issuer` and `jwks_uri`, by default its own and its `/jwks.json`)
/// and its JWKS; five decisions logged.
async fn party_at(issuer: Option<&str>, jwks_uri: Option<&str>) -> (AppState, Site) {
    let listener = loopback();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = state_with(ManualClock::new(1_000), &["--public-url", &url]).await;
    decisions(&app).await;
    let site = Site::on(listener, |_| None);
    let jwks_uri = jwks_uri.map(str::to_owned).unwrap_or_else(|| format!("{url}/jwks.json"));
    let metadata = serde_json::json!({ "issuer": issuer.unwrap_or(&url), "jwks_uri": jwks_uri });
    site.put("/.well-known/oauth-authorization-server", "200 OK", "", &metadata.to_string());
    site.put("/jwks.json", "200 OK", "", &jwks(&app).to_string());
    (app, site)
}

/// `party-t --public-url PUBLIC_URL audit verify ARGS`, as the binary runs it.
async fn verify_cli(public_url: &str, args: &[&str]) -> Result<String, String> {
    use crate::config::{AuditCommand, Cli, Command};
    let head = ["party-t", "--public-url", public_url, "audit", "verify"];
    let cli = Cli::parse_from_for(crate::test_support::unit::party(), head.iter().chain(args));
    let Some(Command::Audit(AuditCommand::Verify(verify))) = &cli.command else { panic!("not audit verify: {cli:?}") };
    super::verify::run(verify, &cli.public_url).await
}

/// Serves `log` at `site`'s `/audit/events` as two pages, the first naming the second; returns its URL.
fn in_two_pages(site: &Site, log: &str) -> String {
    let all = lines(log);
    let (first, rest) = all.split_at(3);
    site.put("/audit/events", "200 OK", "link: </audit/events?after=3>; rel=\"next\"\r\n", &first.join("\n"));
    site.put("/audit/events?after=3", "200 OK", "", &rest.join("\n"));
    format!("{}/audit/events", site.url)
}

fn saved(log: &str) -> String {
    let file = std::env::temp_dir().join(format!("audit-{}.jsonl", uuid::Uuid::new_v4().simple()));
    std::fs::write(&file, log).unwrap();
    file.to_str().unwrap().to_owned()
}

#[actix_web::test]
async fn a_log_of_another_issuer_is_refused_naming_its_entry() {
    let (ours, at_ours) = party_at(None, None).await;
    let (theirs, at_theirs) = party_at(None, None).await;
    let (own_log, foreign_log) = (log_of(&ours).await, log_of(&theirs).await);
    let out = verify_cli(&at_ours.url, &[&saved(&own_log)]).await.unwrap();
    assert!(out.starts_with(&format!("verified: 5 entries in 2 chains from {}", at_ours.url)), "{out}");

    // A file is this party's log: the foreign one names its own issuer, whose metadata is never asked.
    let foreign = saved(&foreign_log);
    let named = format!("line 1 fails: names issuer \"{}\", not {}", at_theirs.url, at_ours.url);
    assert_eq!(verify_cli(&at_ours.url, &[&foreign]).await.unwrap_err(), named);
    assert_eq!(at_theirs.asked(), []);
    // Handed the foreign keys, it still wants this party's issuer.
    let their_keys = format!("{}/jwks.json", at_theirs.url);
    assert_eq!(verify_cli(&at_ours.url, &[&foreign, "--jwks", &their_keys]).await.unwrap_err(), named);
    // Named, the other issuer is trusted.
    let out = verify_cli(&at_ours.url, &[&foreign, "--issuer", &at_theirs.url]).await.unwrap();
    assert!(out.contains(&format!("from {}", at_theirs.url)), "{out}");

    // A URL's origin is the issuer: a foreign log served there is refused the same way.
    at_ours.put("/audit/events", "200 OK", "", &foreign_log);
    let url = format!("{}/audit/events", at_ours.url);
    assert_eq!(verify_cli("http://localhost:9", &[&url]).await.unwrap_err(), named);
}

#[actix_web::test]
async fn metadata_naming_another_issuer_or_keys_elsewhere_is_refused() {
    let (liar, at_liar) = party_at(Some("http://elsewhere.example"), None).await;
    let err = verify_cli(&at_liar.url, &[&saved(&log_of(&liar).await)]).await.unwrap_err();
    assert!(err.contains("metadata names issuer \"http://elsewhere.example\""), "{err}");

    let keys = Site::serve(|_| None);
    let (moved, at_moved) = party_at(None, Some(&format!("{}/jwks.json", keys.url))).await;
    keys.put("/jwks.json", "200 OK", "", &jwks(&moved).to_string());
    let err = verify_cli(&at_moved.url, &[&saved(&log_of(&moved).await)]).await.unwrap_err();
    assert!(err.contains("not on its own origin"), "{err}");
    assert_eq!(keys.asked(), []);
}

#[actix_web::test]
async fn pages_are_read_on_the_first_origin_only_and_the_cookie_goes_nowhere_else() {
    let (app, site) = party_at(None, None).await;
    let log = log_of(&app).await;
    let elsewhere = Site::serve(|_| Some(("200 OK", String::new(), String::new())));
    let (url, cookie) = (format!("{}/audit/events", site.url), "party_t_session=secret");

    let first_page = lines(&log)[..3].join("\n");
    site.put("/audit/events", "200 OK", &format!("link: <{}/more>; rel=\"next\"\r\n", elsewhere.url), &first_page);
    let err = verify_cli("http://localhost:9", &[&url, "--cookie", cookie]).await.unwrap_err();
    assert!(err.contains("on another origin") && err.contains(&elsewhere.url), "{err}");
    site.put("/audit/moved", "302 Found", &format!("location: {}/more\r\n", elsewhere.url), "");
    let moved = format!("{}/audit/moved", site.url);
    let err = verify_cli("http://localhost:9", &[&moved, "--cookie", cookie]).await.unwrap_err();
    assert!(err.contains("answered 302"), "{err}");
    assert_eq!(elsewhere.asked(), [], "neither a next page nor a redirect reaches another origin");
    let to_site = [("/audit/events".to_owned(), Some(cookie.to_owned())), ("/audit/moved".into(), Some(cookie.into()))];
    assert_eq!(site.asked(), to_site);

    // On the same origin, the pages make one log.
    in_two_pages(&site, &log);
    let out = verify_cli("http://localhost:9", &[&url, "--cookie", cookie]).await.unwrap();
    assert!(out.starts_with(&format!("verified: 5 entries in 2 chains from {}", site.url)), "{out}");
    let asked = site.asked();
    let after = &asked[2..];
    assert_eq!(
        after[..2],
        [("/audit/events".to_owned(), Some(cookie.to_owned())), ("/audit/events?after=3".into(), Some(cookie.into()))]
    );
    assert!(after[2..].iter().all(|(_, c)| c.is_none()), "metadata and keys are read without the cookie: {after:?}");
}

#[actix_web::test]
async fn paging_stops_at_a_page_read_before_and_at_the_page_limit() {
    let looping = Site::serve(|_| Some(("200 OK", "link: </audit/events>; rel=\"next\"\r\n".into(), String::new())));
    let err = verify_cli("http://localhost:9", &[&format!("{}/audit/events", looping.url)]).await.unwrap_err();
    assert!(err.contains("was read before"), "{err}");
    assert_eq!(looping.asked().len(), 1);

    // Empty pages, each naming a new next one, count toward the limit.
    let endless = Site::serve(|target| {
        let n: u64 = target.rsplit('=').next().and_then(|n| n.parse().ok()).unwrap_or(0);
        Some(("200 OK", format!("link: </audit/events?page={}>; rel=\"next\"\r\n", n + 1), String::new()))
    });
    let url = format!("{}/audit/events", endless.url);
    let err = verify_cli("http://localhost:9", &[&url, "--max-pages", "50"]).await.unwrap_err();
    assert!(err.contains("--max-pages 50"), "{err}");
    assert_eq!(endless.asked().len(), 50);

    // A log of two pages needs a limit of two.
    let (app, site) = party_at(None, None).await;
    let url = in_two_pages(&site, &log_of(&app).await);
    assert!(verify_cli("http://localhost:9", &[&url, "--max-pages", "1"]).await.unwrap_err().contains("--max-pages 1"));
    assert!(verify_cli("http://localhost:9", &[&url, "--max-pages", "2"]).await.is_ok());
}

#[test]
fn the_page_limit_defaults_to_ten_thousand() {
    use crate::config::{AuditCommand, Cli, Command};
    let cli = Cli::parse_from_for(crate::test_support::unit::party(), ["party-t", "audit", "verify", "log.jsonl"]);
    let Some(Command::Audit(AuditCommand::Verify(verify))) = cli.command else { panic!("not audit verify") };
    assert_eq!((verify.max_pages, verify.issuer), (10_000, None));
}
