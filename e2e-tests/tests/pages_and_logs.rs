//! What a person and an operator see: the account pages and their headers,
//! sessions, signup, the login throttle, taking consent back, discovery
//! documents, restarts, and a request log that never holds a secret.

mod common;

use common::*;

/// GETs `/login` and posts the form; returns the response to the POST.
async fn submit_login(browser: &reqwest::Client, base: &str, username: &str, password: &str) -> reqwest::Response {
    let page = browser.get(format!("{base}/login")).send().await.unwrap().text().await.unwrap();
    let csrf = input_value(&page, "csrf_token").expect("login form has a CSRF token");
    browser
        .post(format!("{base}/login"))
        .form(&[("csrf_token", csrf.as_str()), ("username", username), ("password", password), ("next", "/")])
        .send()
        .await
        .unwrap()
}

/// GETs `/signup` and posts the form; returns the response to the POST.
async fn submit_signup(browser: &reqwest::Client, base: &str, username: &str, password: &str) -> reqwest::Response {
    let page = browser.get(format!("{base}/signup")).send().await.unwrap().text().await.unwrap();
    assert_eq!(data_page(&page).as_deref(), Some("signup"));
    let csrf = input_value(&page, "csrf_token").expect("signup form has a CSRF token");
    browser
        .post(format!("{base}/signup"))
        .form(&[("csrf_token", csrf.as_str()), ("username", username), ("password", password), ("next", "/")])
        .send()
        .await
        .unwrap()
}

/// The home page of a signed-in `browser` (asserts it is the home page).
async fn home_page(browser: &reqwest::Client, base: &str) -> String {
    let res = browser.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(res.status(), 200, "home of a signed-in user");
    let html = res.text().await.unwrap();
    assert_eq!(data_page(&html).as_deref(), Some("home"), "{html}");
    html
}

/// The user-visible message of a page (`role="alert"`), if it shows one.
fn alert(html: &str) -> Option<&str> {
    let start = html.find("role=\"alert\">")? + "role=\"alert\">".len();
    let end = html[start..].find('<')? + start;
    Some(&html[start..end])
}

fn assert_not_framable(res: &reqwest::Response, what: &str) {
    let csp = header(res, "content-security-policy").unwrap_or_default();
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: CSP {csp:?}");
    assert_eq!(header(res, "x-frame-options").as_deref(), Some("DENY"), "{what}");
    assert_eq!(header(res, "x-content-type-options").as_deref(), Some("nosniff"), "{what}");
}

#[tokio::test]
async fn pages_cannot_be_framed_and_the_login_form_carries_a_csrf_token() {
    let pair = spawn_pair().await;
    for party in [&pair.a, &pair.b] {
        let res = browser().get(format!("{}/login", party.url)).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_not_framable(&res, "login page");
        let html = res.text().await.unwrap();
        assert_eq!(data_page(&html).as_deref(), Some("login"));
        assert!(html.contains("name=\"username\""), "{html}");
        assert!(html.contains("name=\"password\""), "{html}");
        let csrf = input_value(&html, "csrf_token").expect("a CSRF hidden field");
        assert!(csrf.len() >= 32, "CSRF token too short: {csrf:?}");
    }

    // The consent page and the error page too.
    let user = browser();
    login(&user, &pair.b.url, "alice", "wonderland").await;
    let (_, challenge) = pkce_pair();
    let consent = user.get(b_authorize_url(&pair, "player:read", &challenge, "s")).send().await.unwrap();
    assert_not_framable(&consent, "consent page");
    assert_eq!(data_page(&consent.text().await.unwrap()).as_deref(), Some("consent"));
    let error = user.get(format!("{}/nowhere", pair.b.url)).send().await.unwrap();
    assert_not_framable(&error, "error page");
}

#[tokio::test]
async fn each_party_has_its_own_httponly_samesite_lax_session_cookie() {
    let pair = spawn_pair().await;
    for (party, name) in [(&pair.a, "party_a_session"), (&pair.b, "party_b_session")] {
        let res = submit_login(&browser(), &party.url, "alice", "wonderland").await;
        assert_eq!(res.status(), 303);
        let cookies: Vec<String> =
            res.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
        let session = cookies
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{}: no {name} cookie in {cookies:?}", party.name));
        let attributes: Vec<String> = session.split(';').skip(1).map(|a| a.trim().to_ascii_lowercase()).collect();
        assert!(attributes.iter().any(|a| a == "httponly"), "{session}");
        assert!(attributes.iter().any(|a| a == "samesite=lax"), "{session}");
    }
}

#[tokio::test]
async fn home_needs_a_session_and_then_shows_the_link_state() {
    let pair = spawn_pair().await;
    let user = browser();
    let res = user.get(format!("{}/", pair.b.url)).send().await.unwrap();
    assert!([302, 303].contains(&res.status().as_u16()), "{}", res.status());
    assert_eq!(header(&res, "location").as_deref(), Some("/login"));

    login(&user, &pair.b.url, "alice", "wonderland").await;
    let html = home_page(&user, &pair.b.url).await;
    assert!(html.contains("data-link-state=\"none\""), "{html}");
    assert!(html.contains("alice"), "home names the signed-in user");
}

#[tokio::test]
async fn signup_creates_an_account_that_can_sign_in() {
    let pair = spawn_pair().await;
    let res = submit_signup(&browser(), &pair.b.url, "carol", "correct horse battery").await;
    assert_eq!(res.status(), 303);

    let user = browser();
    login(&user, &pair.b.url, "carol", "correct horse battery").await;
    assert!(home_page(&user, &pair.b.url).await.contains("carol"));
    // The account is party B's only.
    assert_eq!(submit_login(&browser(), &pair.a.url, "carol", "correct horse battery").await.status(), 401);
}

#[tokio::test]
async fn signup_refuses_a_taken_username_and_a_short_password() {
    let pair = spawn_pair().await;

    let res = submit_signup(&browser(), &pair.b.url, "alice", "a brand new password").await;
    assert!(res.status().is_client_error(), "{}", res.status());
    let html = res.text().await.unwrap();
    assert_eq!(data_page(&html).as_deref(), Some("signup"));
    assert!(alert(&html).is_some_and(|m| !m.trim().is_empty()), "the page says why: {html}");
    // Alice's account is untouched.
    assert_eq!(submit_login(&browser(), &pair.b.url, "alice", "a brand new password").await.status(), 401);
    assert_eq!(submit_login(&browser(), &pair.b.url, "alice", "wonderland").await.status(), 303);

    let res = submit_signup(&browser(), &pair.b.url, "dave", "short").await;
    assert!(res.status().is_client_error(), "{}", res.status());
    let html = res.text().await.unwrap();
    assert_eq!(data_page(&html).as_deref(), Some("signup"));
    assert!(alert(&html).is_some_and(|m| !m.trim().is_empty()), "the page says why: {html}");
    assert_eq!(submit_login(&browser(), &pair.b.url, "dave", "short").await.status(), 401, "no account was made");
}

#[tokio::test]
async fn repeated_wrong_passwords_lock_the_account_for_a_while() {
    let pair = spawn_pair().await;
    let user = browser();
    for attempt in 1..=5 {
        let res = submit_login(&user, &pair.b.url, "bob", &format!("wrong-{attempt}")).await;
        assert_eq!(res.status(), 401, "attempt {attempt}");
        assert!(alert(&res.text().await.unwrap()).is_some(), "a failed sign-in says so");
    }
    // Two more failures, waiting out each wait (1 s, then 2 s; time is counted
    // in whole seconds, so a wait of 1 s may end at once): now the wait is 4 s.
    let mut failures = 5;
    while failures < 7 {
        let res = submit_login(&user, &pair.b.url, "bob", "wrong-again").await;
        match res.status().as_u16() {
            401 => failures += 1,
            429 => {
                let wait: u64 = header(&res, "retry-after").and_then(|s| s.parse().ok()).unwrap_or(1);
                tokio::time::sleep(std::time::Duration::from_millis(wait * 1000 + 100)).await;
            }
            other => panic!("unexpected {other}"),
        }
    }
    let res = submit_login(&user, &pair.b.url, "bob", "builder").await;
    assert_eq!(res.status(), 429, "within the wait even the right password is refused");
    let html = res.text().await.unwrap();
    assert_eq!(data_page(&html).as_deref(), Some("login"));
    assert!(alert(&html).is_some_and(|m| !m.trim().is_empty()), "the page says why: {html}");
    let home = user.get(format!("{}/", pair.b.url)).send().await.unwrap();
    assert_eq!(header(&home, "location").as_deref(), Some("/login"), "no session came of it");

    // Only bob's account is locked.
    assert_eq!(submit_login(&browser(), &pair.b.url, "alice", "wonderland").await.status(), 303);
}

#[tokio::test]
async fn withdrawing_consent_revokes_the_tokens_and_asks_again() {
    let pair = spawn_pair().await;
    let user = browser();
    login(&user, &pair.b.url, "alice", "wonderland").await;
    let (code, verifier) = code_at_b(&pair, &user, "player:read").await;
    let (access, refresh) = token_pair(redeem_code_at_b(&pair, &code, &verifier).await).await;
    assert_eq!(player_at_b(&pair, &access).await.status(), 200);

    // The peer's access is shown with the link, and taken back in the link settings.
    let home = home_page(&user, &pair.b.url).await;
    assert!(home.contains("data-link-state=\"one-way\"") && home.contains("Aria Assistant may:"), "{home}");
    let settings = user.get(format!("{}/link/settings", pair.b.url)).send().await.unwrap().text().await.unwrap();
    let csrf = input_value(&settings, "csrf_token").unwrap();
    let res =
        user.post(format!("{}/link/settings", pair.b.url)).form(&[("csrf_token", csrf.as_str())]).send().await.unwrap();
    assert_eq!(res.status(), 303);

    expect_api_error(player_at_b(&pair, &access).await, 401, "invalid_token").await;
    expect_oauth_error(refresh_at_b(&pair, &refresh).await, 400, "invalid_grant").await;
    let home = home_page(&user, &pair.b.url).await;
    assert!(home.contains("data-link-state=\"none\""), "the application is gone from home: {home}");

    let (_, challenge) = pkce_pair();
    let again = user.get(b_authorize_url(&pair, "player:read", &challenge, "s")).send().await.unwrap();
    assert_eq!(again.status(), 200, "consent is asked for again");
    assert_eq!(data_page(&again.text().await.unwrap()).as_deref(), Some("consent"));
}

#[tokio::test]
async fn the_discovery_documents_describe_each_party() {
    let pair = spawn_pair().await;
    let tokens = [
        (&pair.a, client_credentials(&pair.a.url, B_CLIENT, B_SECRET, &[]).await),
        (&pair.b, client_credentials(&pair.b.url, A_CLIENT, A_SECRET, &[]).await),
    ];
    for (party, token) in tokens {
        let token = json_ok(token).await["access_token"].as_str().unwrap().to_owned();
        let get = |path: &str| http().get(format!("{}{path}", party.url)).send();

        let server = json_ok(get("/.well-known/oauth-authorization-server").await.unwrap()).await;
        assert_eq!(server["issuer"], party.url.as_str());
        assert_eq!(server["token_endpoint"], format!("{}/token", party.url));
        assert_eq!(server["code_challenge_methods_supported"], serde_json::json!(["S256"]));
        assert_eq!(server["authorization_response_iss_parameter_supported"], true);
        let grants = server["grant_types_supported"].as_array().unwrap();
        for g in ["authorization_code", "refresh_token", "client_credentials"] {
            assert!(grants.iter().any(|x| x == g), "{}: {g} missing from {grants:?}", party.name);
        }

        let resource = json_ok(get("/.well-known/oauth-protected-resource").await.unwrap()).await;
        assert_eq!(resource["resource"], party.url.as_str());
        assert_eq!(resource["authorization_servers"], serde_json::json!([party.url]));

        let jwks_uri = server["jwks_uri"].as_str().unwrap().to_owned();
        let jwks = json_ok(http().get(&jwks_uri).send().await.unwrap()).await;
        let header = jwt_header(&token);
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["typ"], "at+jwt", "RFC 9068 2.1");
        let key = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == header["kid"])
            .unwrap_or_else(|| panic!("{}: the token's kid is not in {jwks}", party.name));
        assert_eq!(key["kty"], "EC");
        assert_eq!(key["crv"], "P-256");
        assert!(key.get("d").is_none(), "the JWKS must not publish the private key");
    }
}

#[tokio::test]
async fn tokens_and_sessions_survive_a_restart() {
    let mut pair = spawn_pair().await;
    let user = browser();
    login(&user, &pair.b.url, "alice", "wonderland").await;
    let (code, verifier) = code_at_b(&pair, &user, "player:read player:control").await;
    let (access, refresh) = token_pair(redeem_code_at_b(&pair, &code, &verifier).await).await;
    assert_eq!(player_at_b(&pair, &access).await.status(), 200);

    pair.b.restart().await;

    assert_eq!(player_at_b(&pair, &access).await.status(), 200, "signing keys are kept in the database");
    home_page(&user, &pair.b.url).await;
    token_pair(refresh_at_b(&pair, &refresh).await).await;
}

/// A browser that remembers every request it made to one party and every
/// cookie value it was given.
struct Recorder {
    client: reqwest::Client,
    requests: Vec<(String, String, u16)>,
    cookies: Vec<String>,
}

impl Recorder {
    fn new() -> Self {
        Self { client: browser(), requests: Vec::new(), cookies: Vec::new() }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> reqwest::Response {
        let (client, request) = request.build_split();
        let request = request.unwrap();
        let (method, path) = (request.method().to_string(), request.url().path().to_owned());
        let res = client.execute(request).await.unwrap();
        self.requests.push((method, path, res.status().as_u16()));
        for cookie in res.headers().get_all("set-cookie") {
            let cookie = cookie.to_str().unwrap();
            let value = cookie.split(';').next().and_then(|c| c.split_once('=')).map(|(_, v)| v).unwrap_or_default();
            if !value.is_empty() {
                self.cookies.push(value.to_owned());
            }
        }
        res
    }
}

#[tokio::test]
async fn the_log_has_one_line_per_request_and_no_secrets() {
    let pair = spawn_pair().await;
    let b = &pair.b.url;
    let mut user = Recorder::new();
    let mut secrets: Vec<(&str, String)> = vec![
        ("password", "wonderland".into()),
        ("wrong password", "Wr0ng-passw0rd-for-the-log".into()),
        ("client secret", A_SECRET.into()),
        ("wrong client secret", "wrong-secret-for-the-log".into()),
        (
            "Basic credentials",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("{A_CLIENT}:{A_SECRET}")),
        ),
    ];

    // Sign in, failing once.
    let html = user.send(user.client.get(format!("{b}/login"))).await.text().await.unwrap();
    let csrf = input_value(&html, "csrf_token").unwrap();
    for (password, status) in [(secrets[1].1.clone(), 401), ("wonderland".to_owned(), 303)] {
        let form = [("csrf_token", csrf.as_str()), ("username", "alice"), ("password", &password), ("next", "/")];
        let res = user.send(user.client.post(format!("{b}/login")).form(&form)).await;
        assert_eq!(res.status(), status);
    }
    secrets.push(("login CSRF token", csrf));

    // Consent and the code.
    let (verifier, challenge) = pkce_pair();
    let state = format!("state-{}", uuid::Uuid::new_v4().simple());
    let consent =
        user.send(user.client.get(b_authorize_url(&pair, "player:read player:control", &challenge, &state))).await;
    let html = consent.text().await.unwrap();
    assert_eq!(data_page(&html).as_deref(), Some("consent"));
    secrets.push(("consent CSRF token", input_value(&html, "csrf_token").unwrap()));
    let back = user.send(user.client.post(format!("{b}/authorize")).form(&consent_form(&html, "approve"))).await;
    let location = header(&back, "location").unwrap();
    let code = location_params(&back)["code"].clone();
    secrets.extend([
        ("code", code.clone()),
        ("code_verifier", verifier.clone()),
        ("code_challenge", challenge),
        ("state", state),
    ]);
    // The browser then lands on A's callback with the code in the query.
    let _ = http().get(&location).send().await.unwrap();

    // The client's side: a failed and a good code exchange, a refresh, an API call, a revocation.
    let token = format!("{b}/token");
    let redirect_uri = a_callback(&pair);
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", verifier.as_str()),
        ("redirect_uri", redirect_uri.as_str()),
    ];
    let mut wrong = exchange.to_vec();
    wrong.extend([("client_id", A_CLIENT), ("client_secret", "wrong-secret-for-the-log")]);
    assert_eq!(user.send(http().post(&token).form(&wrong)).await.status(), 401);
    let (access, refresh) =
        token_pair(user.send(http().post(&token).basic_auth(A_CLIENT, Some(A_SECRET)).form(&exchange)).await).await;
    let refreshing = [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())];
    let (new_access, new_refresh) =
        token_pair(user.send(http().post(&token).basic_auth(A_CLIENT, Some(A_SECRET)).form(&refreshing)).await).await;
    let res = user.send(http().get(format!("{b}/api/player")).bearer_auth(&new_access)).await;
    assert_eq!(res.status(), 200);
    let res = user
        .send(
            http()
                .post(format!("{b}/revoke"))
                .basic_auth(A_CLIENT, Some(A_SECRET))
                .form(&[("token", new_refresh.as_str())]),
        )
        .await;
    assert_eq!(res.status(), 200);
    secrets.extend([
        ("access token", access),
        ("refresh token", refresh),
        ("new access token", new_access),
        ("new refresh token", new_refresh),
    ]);
    for (i, cookie) in user.cookies.iter().enumerate() {
        secrets.push((["session cookie", "later session cookie"][i.min(1)], cookie.clone()));
    }

    let log = pair.b.log();
    for (what, secret) in &secrets {
        assert!(secret.len() >= 8, "{what} is too short to search for: {secret:?}");
        assert!(!log.contains(secret.as_str()), "party B logged the {what}:\n{log}");
    }
    assert!(!pair.a.log().contains(&code), "party A logged the code from its callback URL:\n{}", pair.a.log());

    let logged: Vec<(String, String, u16)> =
        request_lines(&log).into_iter().filter(|(_, path, _)| path != "/healthz").collect();
    assert_eq!(logged, user.requests, "one log line per request, in order:\n{log}");
    assert!(logged.iter().all(|(_, path, _)| !path.contains('?')), "no query strings in the log");
    assert!(log.contains("POST /token 200"), "{log}");
    assert!(log.contains("POST /login 401"), "{log}");
}
