//! A real browser (Debian's Chromium through chromedriver) clicks through
//! every consent flow against the two real binaries, as a person would:
//! typing into fields, pressing buttons, following redirects. Each step
//! saves a screenshot under `target/e2e-artifacts/<scenario>/`; a failing
//! step saves one too and names it in the failure message.
//!
//! `scripts/test.sh` (through `scripts/with-chromedriver.sh`) installs
//! Chromium and chromedriver, starts chromedriver and passes its URL in
//! `WEBDRIVER_URL` and the browser in `CHROME_BIN`; without them, a
//! chromedriver on the PATH is started (and left running) and
//! `/usr/bin/chromium` is used.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// Chromium is heavy on two cores: at most two browsers at a time.
static BROWSERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// The chromedriver this run started, when `scripts/test.sh` did not start one.
struct OwnDriver {
    url: String,
    _child: Child,
}

fn webdriver_url() -> String {
    if let Ok(url) = std::env::var("WEBDRIVER_URL") {
        return url;
    }
    static OWN: OnceLock<OwnDriver> = OnceLock::new();
    let own = OWN.get_or_init(|| {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is not installed: run scripts/test.sh, which installs chromium and chromium-driver");
        OwnDriver { url: format!("http://127.0.0.1:{port}"), _child: child }
    });
    own.url.clone()
}

/// One browser session of one scenario, with its screenshots.
struct Browser {
    client: Client,
    scenario: &'static str,
    dir: PathBuf,
    step: std::sync::atomic::AtomicUsize,
    _slot: tokio::sync::SemaphorePermit<'static>,
    profile: PathBuf,
    /// Phone-sized: every page is checked for sideways scrolling.
    phone: bool,
}

impl Browser {
    async fn open(scenario: &'static str) -> Self {
        let slot = BROWSERS.acquire().await.expect("browser slots");
        let profile = scratch_dir().join("chromium-profile");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": std::env::var("CHROME_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                    "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-extensions",
                    "--window-size=1280,1000", format!("--user-data-dir={}", profile.display()),
                ]
            }
        });
        let caps = caps.as_object().expect("capabilities object").clone();
        let url = webdriver_url();
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector).capabilities(caps.clone()).connect(&url).await {
                Ok(c) => break c,
                // chromedriver may still be starting.
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("no browser session from {url}: {e}"),
            }
        };
        let dir = artifacts_dir().join(scenario);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("artifacts folder");
        Self { client, scenario, dir, step: Default::default(), _slot: slot, profile, phone: false }
    }

    /// A session in a phone-sized window (390 × 844 CSS pixels).
    async fn open_phone(scenario: &'static str) -> Self {
        let mut b = Self::open(scenario).await;
        b.client.set_window_size(390, 844).await.expect("phone-sized window");
        b.phone = true;
        b
    }

    /// Saves a screenshot named after the step; returns its path.
    async fn shot(&self, name: &str) -> PathBuf {
        let n = self.step.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let path = self.dir.join(format!("{n:02}-{name}.png"));
        if let Ok(png) = self.client.screenshot().await {
            let _ = std::fs::write(&path, png);
        }
        path
    }

    /// Fails the scenario with a screenshot of where it stood.
    async fn fail(&self, what: &str) -> ! {
        let path = self.shot(&format!("FAILED-{}", what.replace(|c: char| !c.is_alphanumeric(), "-"))).await;
        let url = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
        panic!("[{}] {what} (at {url}); screenshot: {}", self.scenario, path.display());
    }

    async fn goto(&self, url: &str) {
        if let Err(e) = self.client.goto(url).await {
            self.fail(&format!("could not open {url}: {e}")).await;
        }
    }

    async fn find(&self, css: &str) -> Element {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.client.find(Locator::Css(css)).await {
                Ok(e) => return e,
                Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(e) => self.fail(&format!("no element {css}: {e}")).await,
            }
        }
    }

    async fn type_into(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        if let Err(e) = field.send_keys(text).await {
            self.fail(&format!("could not type into {css}: {e}")).await;
        }
    }

    async fn click(&self, css: &str) {
        let button = self.find(css).await;
        if let Err(e) = button.click().await {
            self.fail(&format!("could not click {css}: {e}")).await;
        }
    }

    /// Waits until the page is the one marked `data-page="<page>"`, then screenshots it.
    async fn expect_page(&self, page: &str, step: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let current = self.body_attr("data-page").await;
            if current.as_deref() == Some(page) {
                self.shot(step).await;
                if self.phone {
                    self.expect_fits(page).await;
                }
                return;
            }
            if Instant::now() > deadline {
                self.fail(&format!("expected the {page} page, found {current:?}")).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Nothing wider than the window: no sideways scrolling.
    async fn expect_fits(&self, page: &str) {
        let script = "return document.documentElement.scrollWidth <= window.innerWidth;";
        if self.client.execute(script, vec![]).await.ok() != Some(json!(true)) {
            self.fail(&format!("the {page} page scrolls sideways")).await;
        }
    }

    async fn body_attr(&self, name: &str) -> Option<String> {
        let body = self.client.find(Locator::Css("body")).await.ok()?;
        body.attr(name).await.ok().flatten()
    }

    async fn text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(b) => b.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// The page's `<h1>` says exactly `words`.
    async fn expect_heading(&self, words: &str) {
        let heading = self.find("main h1").await.text().await.unwrap_or_default();
        if heading != words {
            self.fail(&format!("the heading is {heading:?}, not {words:?}")).await;
        }
    }

    async fn expect_text(&self, needle: &str) {
        let text = self.text().await;
        if !text.contains(needle) {
            self.fail(&format!("the page does not say {needle:?}: {text}")).await;
        }
    }

    /// Opens `base`'s home page and checks its link state.
    async fn expect_home(&self, base: &str, state: &str, step: &str) {
        self.goto(&format!("{base}/")).await;
        self.expect_page("home", step).await;
        let found = self.body_attr("data-link-state").await;
        if found.as_deref() != Some(state) {
            self.fail(&format!("expected link state {state}, found {found:?}")).await;
        }
    }

    async fn sign_in(&self, base: &str, user: &str, password: &str) {
        self.goto(&format!("{base}/login")).await;
        self.expect_page("login", "sign-in-page").await;
        self.type_into("#username", user).await;
        self.type_into("#password", password).await;
        self.click("form[action='/login'] button[type=submit]").await;
        self.expect_page("home", "signed-in").await;
    }

    /// Starts linking at `from` (signed in there), signs in and approves at
    /// `to`, and answers the reciprocal request at `from` with `decision`.
    async fn link(&self, from: &str, to: &str, decision: &str) {
        self.goto(&format!("{from}/")).await;
        self.click("form[action='/link/start'] button").await;
        self.expect_page("login", "peer-sign-in").await;
        let here = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
        if !here.starts_with(to) {
            self.fail(&format!("expected to be at the peer {to}")).await;
        }
        self.type_into("#username", "alice").await;
        self.type_into("#password", "wonderland").await;
        self.click("form[action='/login'] button[type=submit]").await;
        self.expect_page("consent", "peer-consent").await;
        self.click("button[name=decision][value=approve]").await;
        self.expect_page("reciprocal-consent", "reciprocal-consent").await;
        self.click(&format!("button[name=decision][value={decision}]")).await;
        self.expect_page("link-outcome", "outcome").await;
    }

    async fn close(self) {
        let _ = self.client.close().await;
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn artifacts_dir() -> PathBuf {
    // target/debug/deps/<test> → target/e2e-artifacts
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors().nth(3).expect("target folder").join("e2e-artifacts")
}

#[tokio::test]
async fn linking_initiated_at_a_is_mutual_on_both_homes() {
    let pair = spawn_pair().await;
    let b = Browser::open("link-from-a").await;
    b.sign_in(&pair.a.url, "alice", "wonderland").await;
    b.expect_text("Not linked with Tempo Music").await;
    // Before the button, the home says what will happen.
    let explain = b.find("[data-explain]").await.text().await.unwrap_or_default();
    if !explain.contains("answer one more question") || !explain.contains("no second round") {
        b.fail(&format!("the explanation reads {explain:?}")).await;
    }
    b.link(&pair.a.url, &pair.b.url, "approve").await;
    b.expect_heading("Linked both ways").await;
    b.expect_text("Both ways: you allowed Tempo Music to").await;
    b.expect_home(&pair.a.url, "mutual", "home-a-mutual").await;
    b.expect_text("Linked both ways with Tempo Music").await;
    b.expect_home(&pair.b.url, "mutual", "home-b-mutual").await;
    b.expect_text("Aria Assistant may:").await;
    b.goto(&format!("{}/link/trace", pair.a.url)).await;
    b.expect_page("trace", "trace-a").await;
    b.expect_text("reciprocal grant: code").await;
    b.close().await;
}

#[tokio::test]
async fn linking_initiated_at_b_is_mutual_on_both_homes() {
    let pair = spawn_pair().await;
    let b = Browser::open("link-from-b").await;
    b.sign_in(&pair.b.url, "alice", "wonderland").await;
    b.link(&pair.b.url, &pair.a.url, "approve").await;
    b.expect_home(&pair.b.url, "mutual", "home-b-mutual").await;
    b.expect_home(&pair.a.url, "mutual", "home-a-mutual").await;
    b.close().await;
}

#[tokio::test]
async fn denying_the_reciprocal_request_is_one_way_on_both_homes() {
    let pair = spawn_pair().await;
    let b = Browser::open("deny").await;
    b.sign_in(&pair.a.url, "alice", "wonderland").await;
    b.link(&pair.a.url, &pair.b.url, "deny").await;
    b.expect_heading("Linked one way").await;
    b.expect_text("You chose not to let Tempo Music use Aria Assistant").await;
    b.expect_home(&pair.a.url, "one-way", "home-a-one-way").await;
    b.expect_text("Tempo Music cannot use your Aria Assistant account.").await;
    b.expect_home(&pair.b.url, "one-way", "home-b-one-way").await;
    b.expect_text("Tempo Music cannot use Aria Assistant.").await;
    b.close().await;
}

#[tokio::test]
async fn playing_from_a_shows_the_card_without_a_reload() {
    let pair = spawn_pair().await;
    let b = Browser::open("play").await;
    b.sign_in(&pair.a.url, "alice", "wonderland").await;
    b.link(&pair.a.url, &pair.b.url, "approve").await;
    b.expect_home(&pair.a.url, "mutual", "home-before").await;
    b.type_into("#query", "some jazz").await;
    b.click("form[action='/assistant/play'] button").await;
    b.expect_page("home", "played").await;
    b.expect_text("Tempo Music is playing So What by Miles Davis.").await;
    let card = b.find("#now-playing").await.text().await.unwrap_or_default();
    if !card.contains("So What") {
        b.fail(&format!("the card shows {card:?}")).await;
    }

    // Music started elsewhere (the music service's own app, say) reaches this
    // open page by itself: mark the page, start playback, watch the card.
    b.client.execute("window.stillTheSamePage = true;", vec![]).await.expect("script");
    let token = held_token(&pair.a, "alice").await.expect("A holds B's token");
    let res = http()
        .post(format!("{}/api/player/play", pair.b.url))
        .bearer_auth(token)
        .json(&json!({"query": "queen"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let card = b.find("#now-playing").await.text().await.unwrap_or_default();
        if card.contains("Bohemian Rhapsody") {
            break;
        }
        if Instant::now() > deadline {
            b.fail(&format!("the card did not update by itself: {card}")).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let same = b.client.execute("return window.stillTheSamePage === true;", vec![]).await.expect("script");
    if same != json!(true) {
        b.fail("the page was reloaded").await;
    }
    b.client.execute("document.getElementById('now-playing').scrollIntoView();", vec![]).await.expect("script");
    b.shot("card-updated-live").await;
    b.close().await;
}

#[tokio::test]
async fn changing_the_peers_scopes_in_settings_takes_effect() {
    let pair = spawn_pair().await;
    let b = Browser::open("settings").await;
    b.sign_in(&pair.a.url, "alice", "wonderland").await;
    b.link(&pair.a.url, &pair.b.url, "approve").await;
    b.goto(&format!("{}/link/settings", pair.a.url)).await;
    b.expect_page("settings", "settings-before").await;
    // Untick "announce": Tempo Music keeps only now-playing cards.
    b.click("input[name=scope][value='assistant:announce']").await;
    b.shot("announce-unticked").await;
    b.click("form[action='/link/settings'] button[type=submit]").await;
    b.expect_page("link-outcome", "saved").await;
    b.expect_text("Saved: you allowed Tempo Music to show now-playing cards on your assistant.").await;
    b.expect_home(&pair.a.url, "mutual", "home-a-after").await;
    let a_home = b.text().await;
    if a_home.contains("assistant:announce") {
        b.fail("A still lists announce for Tempo Music").await;
    }
    b.expect_home(&pair.b.url, "mutual", "home-b-after").await;
    let b_home = b.text().await;
    if !b_home.contains("assistant:notify") || b_home.contains("assistant:announce") {
        b.fail("B's token should carry exactly assistant:notify").await;
    }
    b.close().await;
}

#[tokio::test]
async fn unlinking_shows_no_link_on_both_homes() {
    let pair = spawn_pair().await;
    let b = Browser::open("unlink").await;
    b.sign_in(&pair.a.url, "alice", "wonderland").await;
    b.link(&pair.a.url, &pair.b.url, "approve").await;
    b.expect_home(&pair.b.url, "mutual", "home-b-linked").await;
    b.click("form[action='/link/unlink'] button").await;
    b.expect_page("link-outcome", "unlinked").await;
    b.expect_text("Unlinked:").await;
    b.expect_home(&pair.b.url, "none", "home-b-none").await;
    b.expect_home(&pair.a.url, "none", "home-a-none").await;
    b.close().await;
}

/// Presses Tab until the focused element matches `css` (at most 30 times);
/// every element focused on the way must have a name a screen reader reads.
async fn tab_to(b: &Browser, css: &str) -> Element {
    for _ in 0..30 {
        let active = b.client.active_element().await.expect("a focused element");
        let name = accessible_name(b, &active).await;
        let matches = b
            .client
            .execute("return arguments[0].matches(arguments[1]);", vec![json!(active), json!(css)])
            .await
            .expect("script");
        if matches == json!(true) {
            if name.trim().is_empty() {
                b.fail(&format!("{css} has no accessible name")).await;
            }
            return active;
        }
        let tag = active.tag_name().await.unwrap_or_default();
        if tag != "body" && name.trim().is_empty() {
            let html = active.html(false).await.unwrap_or_default();
            b.fail(&format!("a focusable control without a label: {html}")).await;
        }
        active.send_keys(&Key::Tab.to_string()).await.expect("Tab");
    }
    b.fail(&format!("Tab never reached {css}")).await;
}

/// The text a screen reader would announce: aria-label, a `<label for>`,
/// the enclosing label, or (for buttons and links) the element's own text.
async fn accessible_name(b: &Browser, element: &Element) -> String {
    let script = "const e = arguments[0];
        if (e.getAttribute('aria-label')) return e.getAttribute('aria-label');
        if (e.id) { const l = document.querySelector('label[for=\"' + e.id + '\"]'); if (l) return l.textContent; }
        const wrap = e.closest('label'); if (wrap) return wrap.textContent;
        if (e.matches('input, select, textarea')) return '';
        return e.textContent || '';";
    let name = b.client.execute(script, vec![json!(element)]).await.expect("script");
    name.as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn the_whole_link_works_with_the_keyboard_alone() {
    let pair = spawn_pair().await;
    let b = Browser::open("keyboard").await;
    let (enter, space, tab) = (Key::Enter.to_string(), " ".to_owned(), Key::Tab.to_string());

    b.goto(&format!("{}/login", pair.a.url)).await;
    b.expect_page("login", "a-sign-in").await;
    let user = tab_to(&b, "#username").await;
    user.send_keys(&format!("alice{tab}wonderland{enter}")).await.expect("typing");
    b.expect_page("home", "a-home").await;

    tab_to(&b, "form[action='/link/start'] button").await.send_keys(&enter).await.expect("Enter");
    b.expect_page("login", "b-sign-in").await;
    let user = tab_to(&b, "#username").await;
    user.send_keys(&format!("alice{tab}wonderland{enter}")).await.expect("typing");
    b.expect_page("consent", "b-consent").await;
    tab_to(&b, "button[value=approve]").await.send_keys(&space).await.expect("Space");
    b.expect_page("reciprocal-consent", "a-reciprocal-consent").await;
    tab_to(&b, "button[value=approve]").await.send_keys(&enter).await.expect("Enter");
    b.expect_page("link-outcome", "a-outcome").await;
    tab_to(&b, "main a[href='/']").await.send_keys(&enter).await.expect("Enter");
    b.expect_page("home", "a-home-linked").await;
    if b.body_attr("data-link-state").await.as_deref() != Some("mutual") {
        b.fail("not linked both ways").await;
    }
    b.close().await;
}

#[tokio::test]
async fn every_page_of_the_link_reads_well_on_a_phone() {
    let pair = spawn_pair().await;
    let b = Browser::open_phone("phone").await;
    b.sign_in(&pair.a.url, "alice", "wonderland").await;
    b.link(&pair.a.url, &pair.b.url, "approve").await;
    b.expect_home(&pair.a.url, "mutual", "home-phone").await;
    for (path, page) in [("/link/settings", "settings"), ("/link/trace", "trace"), ("/audit", "audit")] {
        b.goto(&format!("{}{path}", pair.a.url)).await;
        b.expect_page(page, page).await;
    }
    // The device pages at B: the account holder's, and the staff's kiosk with a request waiting.
    let res = http()
        .post(format!("{}/device_authorization", pair.b.url))
        .form(&[("client_id", "speaker"), ("login_hint", "alice")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    b.goto(&format!("{}/device", pair.b.url)).await;
    b.expect_page("device", "device").await;
    b.sign_in(&pair.b.url, "kiosk", "staff-only").await;
    b.goto(&format!("{}/kiosk?account=alice", pair.b.url)).await;
    b.expect_page("kiosk", "kiosk").await;
    b.close().await;
}

#[tokio::test]
async fn the_audit_log_tells_each_decision_and_how_to_check_it() {
    let pair = spawn_pair().await;
    let b = Browser::open("audit").await;
    b.sign_in(&pair.a.url, "alice", "wonderland").await;
    b.link(&pair.a.url, &pair.b.url, "approve").await;
    b.goto(&format!("{}/", pair.a.url)).await;
    b.click("header a[href='/audit']").await;
    b.expect_page("audit", "audit-a").await;
    for words in [
        "Your grant decisions at Aria Assistant",
        "Link Aria Assistant → Tempo Music made",
        "Allowed Tempo Music to use: assistant:announce assistant:notify.",
        "Link Tempo Music → Aria Assistant made",
        "party-a audit verify party-a-audit.jsonl",
    ] {
        b.expect_text(words).await;
    }
    let download = b.find("a[download]").await;
    if download.attr("href").await.ok().flatten().as_deref() != Some("/audit/events") {
        b.fail("the download link is not the log").await;
    }
    // Staff at B see alice's entries under her name.
    b.sign_in(&pair.b.url, "kiosk", "staff-only").await;
    b.goto(&format!("{}/audit", pair.b.url)).await;
    b.expect_page("audit", "audit-b-staff").await;
    b.expect_text("Every grant decision at Tempo Music").await;
    let account = b.find("ol.audit li .audit-account").await;
    if account.text().await.unwrap_or_default() != "alice" {
        b.fail("staff do not see whose entry it is").await;
    }
    b.close().await;
}

/// What the trace page draws, measured in the browser: per attempt its
/// title and time; per SVG text its rendered font size (CSS px) and whether
/// it stays inside the diagram; the arrows touching the user's lane.
const TRACE_MEASURE: &str = "
    const attempts = [...document.querySelectorAll('.trace-attempt')].map(a => ({
        kind: a.dataset.kind,
        title: a.querySelector('h2').textContent.trim(),
        when: a.querySelector('.audit-when') ? a.querySelector('.audit-when').textContent.trim() : '',
    }));
    const texts = [];
    for (const svg of document.querySelectorAll('figure.trace svg')) {
        const view = svg.viewBox.baseVal;
        const scale = svg.getBoundingClientRect().width / view.width;
        for (const t of svg.querySelectorAll('text')) {
            const box = t.getBBox();
            texts.push({
                text: t.textContent,
                px: parseFloat(getComputedStyle(t).fontSize) * scale,
                inside: box.x >= 0 && box.x + box.width <= view.width,
                shown: svg.getClientRects().length > 0,
            });
        }
    }
    const arrows = [...document.querySelectorAll('g.trace-arrow')];
    const items = [...document.querySelectorAll('ol.trace-list li')].map(li => ({
        // checkVisibility: a closed <details> keeps its content laid out but not rendered.
        visible: li.offsetParent !== null && li.checkVisibility(),
        px: parseFloat(getComputedStyle(li).fontSize),
    }));
    return {
        attempts, texts, items,
        to_you: arrows.filter(g => g.dataset.to === 'You').length,
        from_you: arrows.filter(g => g.dataset.from === 'You').length,
        svg_shown: [...document.querySelectorAll('figure.trace')].some(f => f.getClientRects().length > 0),
    };";

async fn measure_trace(b: &Browser) -> serde_json::Value {
    match b.client.execute(TRACE_MEASURE, vec![]).await {
        Ok(v) => v,
        Err(e) => b.fail(&format!("could not measure the trace: {e}")).await,
    }
}

/// A time as the audit page writes it: "2 Dec 2026, 18:50 UTC".
fn reads_as_a_time(when: &str) -> bool {
    when.ends_with(" UTC") && when.contains(", ") && when.chars().any(|c| c.is_ascii_digit())
}

#[tokio::test]
async fn the_trace_teaches_at_desktop_and_phone_size() {
    let pair = spawn_pair().await;
    let b = Browser::open("trace").await;
    b.sign_in(&pair.a.url, "alice", "wonderland").await;
    b.link(&pair.a.url, &pair.b.url, "approve").await;
    b.goto(&format!("{}/link/trace", pair.a.url)).await;
    b.expect_page("trace", "trace-desktop").await;
    let m = measure_trace(&b).await;
    let first = &m["attempts"][0];
    if first["title"] != "Linking, started here" || !reads_as_a_time(first["when"].as_str().unwrap_or_default()) {
        b.fail(&format!("the attempt is not titled with a time: {first}")).await;
    }
    let texts = m["texts"].as_array().cloned().unwrap_or_default();
    if texts.len() < 12 {
        b.fail(&format!("too few texts drawn: {}", texts.len())).await;
    }
    for t in &texts {
        let px = t["px"].as_f64().unwrap_or(0.0);
        if t["shown"] != true || px < 12.0 {
            b.fail(&format!("diagram text at {px:.1}px (shown: {}): {}", t["shown"], t["text"])).await;
        }
        if t["inside"] != true || t["text"].as_str().unwrap_or_default().contains('…') {
            b.fail(&format!("a label is cut or leaves the diagram: {}", t["text"])).await;
        }
    }
    // Legs A and B arrive at and leave the browser twice; E is the user's answer.
    let (to_you, from_you) = (m["to_you"].as_u64().unwrap_or(0), m["from_you"].as_u64().unwrap_or(0));
    if to_you < 2 || from_you < 3 {
        b.fail(&format!("the You lane has {to_you} arrows in and {from_you} out")).await;
    }
    // On a desktop the list waits behind its summary.
    if m["items"].as_array().is_none_or(|items| items.iter().any(|i| i["visible"] == true)) {
        b.fail("the list is open on a desktop").await;
    }

    // The peer's view of the same link (alice signed in there while linking).
    b.goto(&format!("{}/link/trace", pair.b.url)).await;
    b.expect_page("trace", "trace-b").await;
    let m = measure_trace(&b).await;
    let first = &m["attempts"][0];
    if first["title"] != "Linking, started at Aria Assistant" || first["kind"] != "link-there" {
        b.fail(&format!("B does not say the link started at Aria Assistant: {}", m["attempts"])).await;
    }
    b.close().await;

    let phone = Browser::open_phone("trace-phone").await;
    phone.sign_in(&pair.a.url, "alice", "wonderland").await;
    phone.goto(&format!("{}/link/trace", pair.a.url)).await;
    phone.expect_page("trace", "trace-phone").await;
    let m = measure_trace(&phone).await;
    if m["svg_shown"] != false {
        phone.fail("the diagram is drawn too small for a phone").await;
    }
    let items = m["items"].as_array().cloned().unwrap_or_default();
    if items.len() < 9 {
        phone.fail(&format!("the list has {} messages", items.len())).await;
    }
    for i in &items {
        if i["visible"] != true || i["px"].as_f64().unwrap_or(0.0) < 12.0 {
            phone.fail(&format!("a message of the list is hidden or small on a phone: {i}")).await;
        }
    }
    phone.expect_text("Linking, started here").await;
    phone.close().await;
}

#[tokio::test]
async fn a_kiosk_staff_can_trust() {
    let pair = spawn_pair().await;
    let res = http()
        .post(format!("{}/device_authorization", pair.b.url))
        .form(&[("client_id", "speaker"), ("login_hint", "alice")])
        .send()
        .await
        .unwrap();
    let started: serde_json::Value = res.json().await.unwrap();
    let user_code = started["user_code"].as_str().expect("a user code").to_owned();
    let b = Browser::open("kiosk").await;
    b.sign_in(&pair.b.url, "kiosk", "staff-only").await;
    b.goto(&format!("{}/kiosk?account=alice", pair.b.url)).await;
    b.expect_page("kiosk", "kiosk-waiting").await;
    let waiting = b.find("table.pending").await.text().await.unwrap_or_default();
    if !waiting.contains("Kitchen Speaker") || waiting.contains(&user_code) {
        b.fail(&format!("the waiting list shows the device, not its code: {waiting:?}")).await;
    }
    // A typo in the code: an error that looks like one, with both fields kept to correct.
    b.type_into("#user_code", "BCDF-GHJK").await;
    b.click("button[name=decision][value=approve]").await;
    b.expect_page("kiosk", "kiosk-wrong-code").await;
    let error = b.find("p.error[role=alert]").await.text().await.unwrap_or_default();
    if !error.contains("No device is waiting with that code") {
        b.fail(&format!("the error reads {error:?}")).await;
    }
    for (field, typed) in [("#account", "alice"), ("#user_code", "BCDF-GHJK")] {
        let kept = b.find(field).await.prop("value").await.ok().flatten().unwrap_or_default();
        if kept != typed {
            b.fail(&format!("{field} holds {kept:?}, not what was typed")).await;
        }
    }
    let field = b.find("#user_code").await;
    field.clear().await.expect("clear the code");
    field.send_keys(&user_code).await.expect("type the code");
    b.click("button[name=decision][value=approve]").await;
    b.expect_page("kiosk", "kiosk-approved").await;
    b.expect_text(&format!("Approved: Kitchen Speaker, the device showing {user_code}, can now finish signing in."))
        .await;
    // Reloading shows the page afresh: the decision is not sent again, its message not repeated.
    b.client.refresh().await.expect("reload");
    b.expect_page("kiosk", "kiosk-reloaded").await;
    if b.text().await.contains("Approved:") {
        b.fail("the outcome was shown twice").await;
    }
    b.close().await;
}
