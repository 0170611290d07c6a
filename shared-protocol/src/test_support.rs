//! Support for tests and benchmarks of this crate and of the parties: a
//! small party profile, checks of a party binary's command line, and (for
//! this crate's unit tests) a whole party in process.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "support for tests and benchmarks, where a failure is a failed test"
)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::config::{Defaults, Offers, Party, PeerProfile, ScopeInfo};

pub static TEST_PARTY: Party = Party {
    id: "party-t",
    name: "Test Party",
    tagline: "for tests",
    colour: "#333",
    session_cookie: "party_t_session",
    offers: Offers {
        scopes: &[ScopeInfo { name: "player:read", description: "see what is playing" }],
        to_peer: "player:read",
        public_clients: &[],
        apis: &[],
    },
    peer: PeerProfile {
        name: "Peer",
        client_id: "peer",
        our_client_id: "me",
        wants: &[ScopeInfo { name: "assistant:notify", description: "show cards" }],
    },
    home_panel: None,
    from_peer: &[],
    demo_users: &[],
    defaults: Defaults {
        listen: "127.0.0.1:0",
        public_url: "http://localhost:9",
        peer_url: "http://localhost:10",
        database_url: "sqlite::memory:",
        peer_client_secret: "s",
        client_secret: "t",
    },
    routes: |_| {},
};

/// An address already taken stops the binary with a line naming the party,
/// the address and the cause, not a debug dump.
pub fn assert_taken_address_is_named(bin: &str, party: &Party) {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let address = taken.local_addr().expect("its address").to_string();
    let out = Command::new(bin)
        .args(["--listen", &address, "--database-url", "sqlite::memory:"])
        .output()
        .expect("run the party");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let named = format!("{} ({}) cannot listen on {address}: ", party.name, party.id);
    assert!(err.contains(&named), "{named:?} in {err}");
    assert!(!err.contains("Os {"), "words, not a debug dump: {err}");
}

/// A malformed `--public-url` stops the binary with a clear message, not a panic later.
pub fn assert_bad_url_is_refused(bin: &str) {
    let out = Command::new(bin).args(["--public-url", "localhost:8001"]).output().expect("run the party");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--public-url") && err.contains("https:// URL"), "{err}");
}

/// `--help` lists every flag of the README's command line with its env variable
/// and the party's default, and never the client secret.
pub fn assert_help_lists_flags(bin: &str, party: &Party) {
    let out = Command::new(bin).arg("--help").output().expect("run --help");
    let help = String::from_utf8(out.stdout).expect("UTF-8 help");
    let d = party.defaults;
    for (flag, env, default) in [
        ("--listen", "LISTEN", d.listen),
        ("--public-url", "PUBLIC_URL", d.public_url),
        ("--peer-url", "PEER_URL", d.peer_url),
        ("--database-url", "DATABASE_URL", d.database_url),
    ] {
        let listed = help.contains(flag) && help.contains(&format!("env: {env}")) && help.contains(default);
        assert!(listed, "{flag} with env {env} and default {default} in: {help}");
    }
    assert!(!help.contains(d.peer_client_secret), "--help must not print the client secret");
}

/// At start the binary prints its name, one `dev client:` line per
/// confidential client it registered, and the demo logins (the README's first lines).
pub fn assert_banner(bin: &str, party: &Party) {
    let dir = std::env::temp_dir().join(format!("{}-banner-{}", party.id, std::process::id()));
    let db = format!("sqlite://{}/db.sqlite", dir.display());
    let mut child = Command::new(bin)
        .args(["--listen", "127.0.0.1:0", "--database-url", &db])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the party");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut banner = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("banner line");
        let last = line.starts_with("demo logins");
        banner.push(line);
        if last {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let banner = banner.join("\n");
    assert!(banner.starts_with(&format!("{} ({}) listening on 127.0.0.1:", party.name, party.id)), "{banner}");
    let client = format!("dev client: id={} secret={}", party.peer.client_id, party.defaults.peer_client_secret);
    assert!(banner.contains(&client), "{banner}");
    for u in party.demo_users {
        assert!(banner.contains(&format!("{} / {}", u.username, u.password)), "{banner}");
    }
}

/// Unit-test helpers: a whole party's state on an in-memory database.
#[cfg(test)]
pub(crate) mod unit {
    use crate::config::Party;
    use crate::server::client_auth::{AuthMethod, AuthenticatedClient};
    use crate::server::grants::{Grant, GrantRequest, GrantResponse, TokenResponse};
    use crate::state::AppState;
    use crate::store::GrantRecord;
    use crate::web::form::Params;

    pub fn party() -> &'static Party {
        &crate::test_support::TEST_PARTY
    }

    /// A party's state with the given clock and deterministic entropy.
    pub async fn state(clock: crate::clock::ManualClock) -> AppState {
        state_with(clock, &[]).await
    }

    /// Like [`state`], with command-line flags.
    pub async fn state_with(clock: crate::clock::ManualClock, flags: &[&str]) -> AppState {
        let cli = crate::config::Cli::parse_from_for(party(), std::iter::once("party-t").chain(flags.iter().copied()));
        let config = crate::config::Config::from_cli(party(), cli);
        let entropy = std::sync::Arc::new(crate::clock::CountingEntropy::default());
        crate::build_state(config, std::sync::Arc::new(clock), entropy).await.expect("test app")
    }

    /// The whole application over `app`, in process, for `actix_web::test` calls.
    pub async fn service(
        app: &actix_web::web::Data<AppState>,
    ) -> impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
    > {
        actix_web::test::init_service(crate::app(app.clone(), actix_web::cookie::Key::generate())).await
    }

    /// What a test sees of a response: status, headers, body and the session cookie set.
    pub struct Answer {
        pub status: u16,
        pub headers: actix_web::http::header::HeaderMap,
        pub body: String,
        pub cookie: Option<String>,
    }

    impl Answer {
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers.get(name).and_then(|v| v.to_str().ok())
        }
    }

    /// The application as [`service`] builds it, for helpers that take one.
    pub trait TestService:
        actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<Self::Body>,
        Error = actix_web::Error,
    >
    {
        type Body: actix_web::body::MessageBody;
    }

    impl<S, B> TestService for S
    where
        S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
        B: actix_web::body::MessageBody,
    {
        type Body = B;
    }

    /// Sends `req` through `svc` and reads the whole answer.
    pub async fn send(svc: &impl TestService, req: actix_web::test::TestRequest) -> Answer {
        let res = actix_web::test::call_service(svc, req.to_request()).await;
        let (status, headers, cookie) = (res.status().as_u16(), res.headers().clone(), session_cookie(&res));
        let body = String::from_utf8(actix_web::test::read_body(res).await.to_vec()).unwrap();
        Answer { status, headers, body, cookie }
    }

    /// A form POST of `body` to `uri` with `cookie`.
    pub fn form(uri: &str, cookie: Option<&str>, body: &str) -> actix_web::test::TestRequest {
        let req = actix_web::test::TestRequest::post()
            .uri(uri)
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(body.to_owned());
        match cookie {
            Some(c) => req.insert_header(("cookie", c.to_owned())),
            None => req,
        }
    }

    /// A user `name` with `password`, stored directly.
    pub async fn user(app: &AppState, name: &str, password: &str) -> String {
        let hash = app.hasher.hash(password.into()).await.unwrap().unwrap();
        let id = format!("id-{name}");
        let user = crate::store::UserRecord {
            id: id.clone(),
            username: name.into(),
            password_hash: hash,
            role: "user".into(),
        };
        assert!(app.store.insert_user(&user, app.now()).await.unwrap());
        id
    }

    /// The value of the hidden `csrf_token` field of a page.
    pub fn csrf_of(html: &str) -> String {
        let marker = "name=\"csrf_token\" value=\"";
        let at = html.find(marker).expect("a form with a CSRF token") + marker.len();
        html[at..at + html[at..].find('"').unwrap()].to_owned()
    }

    /// The `name=value` of the session cookie a response sets, if any.
    pub fn session_cookie<B>(res: &actix_web::dev::ServiceResponse<B>) -> Option<String> {
        res.response()
            .cookies()
            .find(|c| c.name() == party().session_cookie)
            .map(|c| format!("{}={}", c.name(), c.value()))
    }

    /// A stored grant of `user-1` to the test party's client `peer`.
    pub async fn user_grant(app: &AppState, id: &str) -> GrantRecord {
        let grant = GrantRecord {
            id: id.into(),
            client_id: "peer".into(),
            user_id: Some("user-1".into()),
            scope: "player:read".into(),
            audience: app.config.resource().into(),
            created_at: app.now(),
            revoked_at: None,
        };
        app.store.insert_grant(&grant).await.unwrap();
        grant
    }

    /// Runs `grant` for the client `peer` (already authenticated) with a form `body`.
    pub async fn exchange(
        grant: &dyn Grant,
        app: &AppState,
        body: &str,
    ) -> Result<TokenResponse, crate::error::OAuthError> {
        let params = Params::parse(body.as_bytes()).unwrap();
        let client = app.clients.get(&app.store, "peer", app.now()).await.unwrap().unwrap();
        let client = AuthenticatedClient { client, method: AuthMethod::ClientSecretBasic };
        match grant.exchange(GrantRequest { app, client: &client, params: &params, bearer: None }).await? {
            GrantResponse::Tokens(t) => Ok(t),
            GrantResponse::Accepted(_) => panic!("this grant answers with tokens"),
        }
    }
}
