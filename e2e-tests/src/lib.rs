//! What a browser does on the two parties' pages, shared by the end-to-end
//! tests in `tests/` and the link benchmark (`src/bin/link-bench.rs`): follow
//! redirects with cookies, submit forms with their CSRF token, and walk the
//! reciprocal link (docs/protocol.md) from either party; and the
//! round-robin proxy that stands for a load balancer in front of several
//! instances.

pub mod proxy;

pub mod walk {
    use reqwest::redirect::Policy;

    /// A browser-like client: keeps cookies, does not follow redirects.
    pub fn browser() -> reqwest::Client {
        reqwest::Client::builder().cookie_store(true).redirect(Policy::none()).build().unwrap()
    }

    /// The value of a hidden or text input named `name` in `html`.
    pub fn input_value(html: &str, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = html.find(&marker)? + marker.len();
        let end = html[start..].find('"')? + start;
        Some(unescape_html(&html[start..end]))
    }

    /// Undoes HTML escaping of an attribute value (named and numeric entities).
    pub fn unescape_html(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(i) = rest.find('&') {
            out.push_str(&rest[..i]);
            rest = &rest[i..];
            let Some(end) = rest.find(';') else { break };
            let entity = &rest[1..end];
            let ch = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                e if e.starts_with("#x") || e.starts_with("#X") => {
                    u32::from_str_radix(&e[2..], 16).ok().and_then(char::from_u32)
                }
                e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
                _ => None,
            };
            match ch {
                Some(c) => {
                    out.push(c);
                    rest = &rest[end + 1..];
                }
                None => {
                    out.push('&');
                    rest = &rest[1..];
                }
            }
        }
        out.push_str(rest);
        out
    }

    pub fn data_page(html: &str) -> Option<String> {
        let marker = "data-page=\"";
        let start = html.find(marker)? + marker.len();
        let end = html[start..].find('"')? + start;
        Some(html[start..end].to_owned())
    }

    /// Signs `username` in at `base` through the login form.
    pub async fn login(browser: &reqwest::Client, base: &str, username: &str, password: &str) {
        let page = browser.get(format!("{base}/login")).send().await.unwrap().text().await.unwrap();
        let csrf = input_value(&page, "csrf_token").expect("login form has a CSRF token");
        let res = browser
            .post(format!("{base}/login"))
            .form(&[("csrf_token", csrf.as_str()), ("username", username), ("password", password), ("next", "/")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303, "login as {username} failed");
    }

    /// Submits the consent form in `html` with `decision`.
    pub async fn decide(browser: &reqwest::Client, base: &str, html: &str, decision: &str) -> reqwest::Response {
        browser.post(format!("{base}/authorize")).form(&consent_form(html, decision)).send().await.unwrap()
    }

    /// The fields the consent form in `html` submits with `decision`.
    pub fn consent_form(html: &str, decision: &str) -> Vec<(String, String)> {
        let mut fields: Vec<(String, String)> = Vec::new();
        for name in [
            "csrf_token",
            "client_id",
            "response_type",
            "scope",
            "code_challenge",
            "code_challenge_method",
            "resource",
            "redirect_uri",
            "state",
        ] {
            if let Some(v) = input_value(html, name) {
                fields.push((name.to_owned(), v));
            }
        }
        fields.push(("decision".into(), decision.into()));
        fields
    }

    /// Follows redirects from `res` as the `browser` (cookies kept); returns the
    /// final URL and page.
    pub async fn follow(browser: &reqwest::Client, mut res: reqwest::Response) -> (String, String) {
        for _ in 0..10 {
            if !res.status().is_redirection() {
                let url = res.url().to_string();
                return (url, res.text().await.unwrap());
            }
            let loc = res.headers()["location"].to_str().unwrap().to_owned();
            let next = res.url().join(&loc).unwrap();
            res = browser.get(next).send().await.unwrap();
        }
        panic!("too many redirects");
    }

    /// GETs a page and follows redirects.
    pub async fn page(browser: &reqwest::Client, url: &str) -> (String, String) {
        let res = browser.get(url).send().await.unwrap();
        follow(browser, res).await
    }

    /// POSTs a form carrying the CSRF token of `from_html`, and follows redirects.
    pub async fn submit(
        browser: &reqwest::Client,
        url: &str,
        from_html: &str,
        fields: &[(&str, &str)],
    ) -> (String, String) {
        let csrf = input_value(from_html, "csrf_token").expect("the page has a CSRF token");
        let mut form = vec![("csrf_token", csrf.as_str())];
        form.extend_from_slice(fields);
        let res = browser.post(url).form(&form).send().await.unwrap();
        follow(browser, res).await
    }

    /// Starts linking at `from` (already signed in there) and walks to the
    /// reciprocal consent page, signing in and approving at `to` on the way.
    /// Returns the last page (the reciprocal consent when all went well).
    pub async fn link_until_reciprocal(
        browser: &reqwest::Client,
        from: &str,
        to: &str,
        user: &str,
        password: &str,
    ) -> (String, String) {
        let (_, home) = page(browser, &format!("{}/", from)).await;
        let (mut url, mut html) = submit(browser, &format!("{}/link/start", from), &home, &[]).await;
        if data_page(&html).as_deref() == Some("login") {
            let next = input_value(&html, "next").unwrap();
            let login_url = format!("{}/login", to);
            (url, html) =
                submit(browser, &login_url, &html, &[("username", user), ("password", password), ("next", &next)])
                    .await;
        }
        if data_page(&html).as_deref() == Some("consent") {
            let res = decide(browser, to, &html, "approve").await;
            (url, html) = follow(browser, res).await;
        }
        (url, html)
    }

    /// The whole link from `from`, answering the reciprocal request with
    /// `decision`; returns the outcome page.
    pub async fn link(
        browser: &reqwest::Client,
        from: &str,
        to: &str,
        user: &str,
        password: &str,
        decision: &str,
    ) -> String {
        let (_, html) = link_until_reciprocal(browser, from, to, user, password).await;
        assert_eq!(data_page(&html).as_deref(), Some("reciprocal-consent"), "{html}");
        answer_reciprocal(browser, from, &html, decision).await
    }

    /// Answers the reciprocal consent page `html` at `party`; returns the outcome page.
    pub async fn answer_reciprocal(browser: &reqwest::Client, party: &str, html: &str, decision: &str) -> String {
        let flow = input_value(html, "flow").expect("the flow id");
        let url = format!("{party}/link/reciprocal");
        let (_, outcome) = submit(browser, &url, html, &[("flow", &flow), ("decision", decision)]).await;
        assert_eq!(data_page(&outcome).as_deref(), Some("link-outcome"), "{outcome}");
        outcome
    }

    /// `data-flow-step` of an outcome page.
    pub fn flow_step(html: &str) -> String {
        let marker = "data-flow-step=\"";
        let start = html.find(marker).unwrap_or_else(|| panic!("not an outcome page: {html}")) + marker.len();
        html[start..start + html[start..].find('"').unwrap()].to_owned()
    }

    /// Creates `username` at `base` through the signup form (which signs them in).
    pub async fn sign_up(user: &reqwest::Client, base: &str, username: &str, password: &str) {
        let (_, form) = page(user, &format!("{base}/signup")).await;
        let fields = [("username", username), ("password", password), ("next", "/")];
        let (_, home) = submit(user, &format!("{base}/signup"), &form, &fields).await;
        assert_eq!(data_page(&home).as_deref(), Some("home"), "{home}");
    }
}
