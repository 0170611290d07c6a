//! The protocol both parties share: the authorization server, the client of
//! the peer, the reciprocal link, the resource server guard, storage,
//! sessions and pages. A party is a [`config::Party`] profile plus its own
//! API; [`run_party`] does the rest.
//!
//! Reading order for newcomers: `server/` (one file per endpoint, one per
//! grant under `server/grants/`), `client/` (this party calling the peer),
//! `link/` (the reciprocal link, its state machine, pages and trace),
//! `tokens/`, `resource/`, `store/`, `web/`.

pub mod accounts;
pub mod client;
pub mod clock;
pub mod config;
pub mod error;
pub mod grant_type;
pub mod link;
pub mod logs;
pub mod memory;
pub mod outbound;
pub mod resource;
pub mod server;
pub mod state;
pub mod store;
pub mod text_enum;
pub mod tokens;
pub mod web;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_session::config::CookieContentSecurity;
use actix_session::storage::CookieSessionStore;
use actix_session::SessionMiddleware;
use actix_web::body::MessageBody;
use actix_web::cookie::{Key, SameSite};
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{guard, web as aw, App, HttpServer};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::clock::{Clock, Entropy, OsEntropy, SystemClock};
use crate::config::{Cli, Config, Party};
use crate::error::{ApiError, ApiRejection};
use crate::grant_type::GrantType;
use crate::outbound::http_client;
use crate::server::client_auth::{ClientDirectory, JwksCache};
use crate::server::grants::GrantRegistry;
use crate::state::AppState;
use crate::store::{ClientRecord, Store, StoreError, UserRecord};
use crate::tokens::secrets::{digest, new_id};
use crate::tokens::{KeyPolicy, SigningKeys};
use crate::web::form::MAX_BODY;
use crate::web::middleware::{edge, not_found, pages_layer, protocol_not_found};

/// The grant types a party's peer client may use here: every one but the device flow's.
const PEER_GRANT_TYPES: [GrantType; 5] = [
    GrantType::AuthorizationCode,
    GrantType::RefreshToken,
    GrantType::ClientCredentials,
    GrantType::Reciprocal,
    GrantType::LegacyMutual,
];

/// Builds the state of a party: connects and migrates the database, loads or
/// creates the signing keys, registers the clients and seeds the demo data.
pub async fn build_state(
    config: Config,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
) -> Result<AppState, StoreError> {
    let store = Store::connect(&config.database_url, config.database_max_connections, config.party.migrations).await?;
    let key_policy = KeyPolicy::new(config.key_rotation_days, config.lifetimes.access_token);
    let keys = SigningKeys::load_or_create(&store, clock.now(), key_policy).await?;
    register_clients(&config, &store).await?;
    let hasher = accounts::Hasher::new(config.hash_concurrency, config.hash_queue);
    if config.demo_data && store.user_count().await? == 0 {
        seed_demo_users(&config, &store, &hasher, clock.now()).await?;
        // Three hashes' worth of memory, no longer needed.
        memory::give_back_freed_memory();
    }
    let http = http_client(config.peer_timeout);
    let limits = web::limits::Limits::new(&config.limits, clock.clone());
    Ok(AppState {
        config,
        store,
        keys,
        clock,
        entropy,
        grants: GrantRegistry::standard().with(link::grant::grants()),
        hooks: Box::new(link::hooks::LinkHooks),
        clients: ClientDirectory::default(),
        peer: Default::default(),
        trace_counter: Default::default(),
        client_keys: JwksCache::default(),
        revocations: Default::default(),
        verified: Default::default(),
        hasher,
        backoff: Default::default(),
        limits,
        http,
        db_seen_at: Default::default(),
    })
}

async fn register_clients(config: &Config, store: &Store) -> Result<(), StoreError> {
    let party = config.party;
    store
        .upsert_client(&ClientRecord {
            client_id: party.peer_client_id.to_owned(),
            name: party.peer_name.to_owned(),
            secret_digest: Some(digest(&config.peer_client_secret)),
            redirect_uris: format!("{}/link/callback", config.peer_url),
            grant_types: PEER_GRANT_TYPES.map(GrantType::as_str).join(" "),
            scope: party.peer_scope.to_owned(),
            jwks_uri: Some(format!("{}{}", config.peer_url, server::metadata::JWKS_PATH)),
        })
        .await?;
    for c in party.public_clients {
        store
            .upsert_client(&ClientRecord {
                client_id: c.client_id.to_owned(),
                name: c.name.to_owned(),
                secret_digest: None,
                redirect_uris: String::new(),
                grant_types: c.grant_types.to_owned(),
                scope: c.scope.to_owned(),
                jwks_uri: None,
            })
            .await?;
    }
    Ok(())
}

async fn seed_demo_users(
    config: &Config,
    store: &Store,
    hasher: &accounts::Hasher,
    now: i64,
) -> Result<(), StoreError> {
    for u in config.party.demo_users {
        let Ok(Some(password_hash)) = hasher.hash(u.password.to_owned()).await else {
            continue;
        };
        let user = UserRecord {
            id: new_id(&OsEntropy),
            username: u.username.to_owned(),
            password_hash,
            role: u.role.to_owned(),
        };
        store.insert_user(&user, now).await?;
    }
    Ok(())
}

/// The session key is shared through the database so every instance can read every cookie.
async fn session_key(state: &AppState) -> Result<Key, StoreError> {
    let mut fresh = [0u8; 64];
    state.entropy.fill(&mut fresh);
    let stored = state.store.setting_or_insert("session_key", &STANDARD.encode(fresh)).await?;
    let bytes = STANDARD.decode(stored).ok().filter(|b| b.len() >= 64).unwrap_or(fresh.to_vec());
    Ok(Key::from(&bytes))
}

/// Starts serving `state` on `listener`; the server stops on Ctrl-C or SIGTERM.
pub async fn serve(state: AppState, listener: TcpListener) -> Result<Server, Box<dyn std::error::Error>> {
    let key = session_key(&state).await?;
    let workers = state.config.workers;
    let max_connections = state.config.max_connections;
    let state = aw::Data::new(state);
    spawn_housekeeping(state.clone());
    spawn_revocation_listener(state.clone());
    let mut server = HttpServer::new(move || app(state.clone(), key.clone()))
        // Explicit bounds on connections: how many, how fast they may open, how
        // long a head may take (a slow head is cut), how long idle keep-alive lasts.
        .max_connections(max_connections)
        .max_connection_rate(256)
        .backlog(1024)
        .client_request_timeout(Duration::from_secs(5))
        .client_disconnect_timeout(Duration::from_secs(1))
        .keep_alive(Duration::from_secs(15))
        .shutdown_timeout(10)
        .listen(listener)?;
    if let Some(n) = workers {
        server = server.workers(n);
    }
    Ok(server.run())
}

/// The whole application, in three parts tried in order: `/healthz` bare
/// (a load balancer's probe, unlogged); the protocol endpoints
/// ([`server::protocol_routes`]) behind the edge alone; everything else,
/// pages and APIs, behind three layers, outside in: the edge (log, head and
/// body limits, rate limits, body deadline, security headers), the session
/// cookie, and the pages layer (session lifetime, error pages).
pub fn app(
    state: aw::Data<AppState>,
    key: Key,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let party = state.config.party;
    let https = state.config.public_url.starts_with("https://");
    // RFC 6265bis 4.1.3.2: a `__Host-` cookie is Secure, host-only and for `/`, so no sibling can set it.
    let cookie_name = if https { format!("__Host-{}", party.session_cookie) } else { party.session_cookie.to_owned() };
    let sessions = SessionMiddleware::builder(CookieSessionStore::default(), key)
        .cookie_name(cookie_name)
        .cookie_http_only(true)
        .cookie_same_site(SameSite::Lax)
        .cookie_secure(https)
        .cookie_path("/".to_owned())
        .cookie_content_security(CookieContentSecurity::Private)
        .build();
    App::new()
        .app_data(state)
        .app_data(aw::PayloadConfig::new(MAX_BODY))
        .app_data(aw::JsonConfig::default().limit(MAX_BODY).error_handler(|err, req| {
            let app = req.app_data::<aw::Data<AppState>>().expect("AppState is registered");
            ApiRejection { error: ApiError::BadRequest(err.to_string().into()), challenge: app.challenge() }.into()
        }))
        // Routes are tried in order: the load balancer's probe first, bare.
        .service(web::pages::healthz)
        // Machines calling protocol endpoints carry no cookie and see no page:
        // the edge alone, so the hot path pays for no session or page layer.
        .service(
            aw::scope("")
                .guard(guard::fn_guard(|ctx| server::is_protocol_path(ctx.head().uri.path())))
                .wrap(from_fn(edge))
                .configure(server::protocol_routes)
                .default_service(aw::to(protocol_not_found)),
        )
        .service(
            aw::scope("")
                .wrap(from_fn(pages_layer))
                .wrap(sessions)
                .wrap(from_fn(edge))
                .configure(server::page_routes)
                .configure(resource::routes)
                .configure(web::pages::routes)
                .configure(link::pages::routes)
                .configure(party.routes)
                .default_service(aw::to(not_found)),
        )
}

/// On PostgreSQL, learns of another instance's revocation as it commits
/// (`LISTEN`), so a revoked token stops working everywhere within
/// milliseconds; the once-a-second pull stays for notices missed while the
/// listener reconnects.
fn spawn_revocation_listener(state: aw::Data<AppState>) {
    actix_web::rt::spawn(async move {
        let mut listener = match state.store.revocation_listener().await {
            Ok(Some(listener)) => listener,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for revocations; relying on the once-a-second pull");
                return;
            }
        };
        loop {
            // `recv` reconnects after a lost connection; what was sent meanwhile the pull finds.
            match listener.recv().await {
                Ok(notice) => state.revocations.note(notice.payload(), state.now()),
                Err(e) => {
                    tracing::warn!(error = %e, "revocation listener");
                    actix_web::rt::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
}

/// The party's background work: every second, learn of revocations made by
/// other instances sharing the database and keep the signing keys in step
/// (rotation, retirement); every ten, forget rate-limit state
/// nobody needs; every ten minutes, forget device requests past their use;
/// every hour, prune the rest that has passed its use (expired codes, refresh
/// tokens, grants never redeemed, sessions, and link history past its retention).
fn spawn_housekeeping(state: aw::Data<AppState>) {
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(Duration::from_secs(1));
        let mut ticks: u64 = 0;
        loop {
            tick.tick().await;
            let now = state.now();
            if ticks.is_multiple_of(3600) {
                prune(&state, now).await;
            }
            if ticks.is_multiple_of(600) {
                // A flood naming one account leaves superseded requests: gone within 20 minutes.
                if let Err(e) = state.store.prune_device_requests(now - 86_400, now - 600).await {
                    tracing::warn!(error = %e, "pruning device requests failed");
                }
            }
            if ticks.is_multiple_of(10) {
                state.limits.housekeeping();
            }
            ticks += 1;
            memory::give_back_freed_memory();
            let forget_before = now - state.config.lifetimes.access_token - 60;
            if let Err(e) = state.revocations.sync(&state.store, now, forget_before).await {
                tracing::warn!(error = %e, "revocation sync failed");
            }
            if let Err(e) = state.keys.maintain(&state.store, now).await {
                tracing::warn!(error = %e, "signing key rotation failed");
            }
        }
    });
}

/// Deletes rows past their use (the hourly part of the housekeeping loop).
pub async fn prune(state: &AppState, now: i64) {
    let sessions = state.config.sessions;
    let results = [
        ("link history", state.store.prune_link_history(now - 7 * 86_400, now - 30 * 86_400).await),
        ("sessions", state.store.prune_sessions(now - sessions.absolute, now - sessions.idle).await.map(drop)),
        ("codes and refresh tokens", state.store.prune_authorizations(now).await.map(drop)),
    ];
    for (what, result) in results {
        if let Err(e) = result {
            tracing::warn!(error = %e, "pruning {what} failed");
        }
    }
}

/// The whole life of a party's binary: flags → Config → state → serve.
pub async fn run_party(party: &'static Party) -> std::io::Result<()> {
    memory::return_freed_memory_promptly();
    let cli = Cli::parse_for(party);
    let _flush_logs_at_exit = logs::init_tracing();
    let config = Config::from_cli(party, cli);
    let listener = TcpListener::bind(&config.listen)?;
    let banner = banner(&config, listener.local_addr()?);
    let state = build_state(config, Arc::new(SystemClock), Arc::new(OsEntropy))
        .await
        .map_err(|e| std::io::Error::other(format!("cannot start: {e}")))?;
    let server = serve(state, listener).await.map_err(|e| std::io::Error::other(e.to_string()))?;
    // The banner is for the person at the terminal (stdout); logs go to stderr.
    println!("{banner}");
    server.await
}

fn banner(config: &Config, addr: std::net::SocketAddr) -> String {
    let p = config.party;
    let mut out = format!("{} ({}) listening on {addr}, public URL {}\n", p.name, p.id, config.public_url);
    let secret = if config.peer_client_secret == p.defaults.peer_client_secret {
        config.peer_client_secret.clone()
    } else {
        "(set by --peer-client-secret, not shown)".to_owned()
    };
    out.push_str(&format!("dev client: id={} secret={secret}\n", p.peer_client_id));
    for c in p.public_clients {
        out.push_str(&format!("public client: id={} (no secret)\n", c.client_id));
    }
    if config.demo_data {
        let logins: Vec<String> = p.demo_users.iter().map(|u| format!("{} / {}", u.username, u.password)).collect();
        out.push_str(&format!("demo logins (dev only): {}", logins.join(", ")));
    }
    out
}

/// Support for tests and benchmarks of this crate and of the parties: a
/// small party profile, and checks of a party binary's command line.
#[doc(hidden)]
pub mod test_support {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    use crate::config::{Defaults, Party, ScopeInfo};

    pub static TEST_PARTY: Party = Party {
        id: "party-t",
        name: "Test Party",
        tagline: "for tests",
        colour: "#333",
        session_cookie: "party_t_session",
        scopes: &[ScopeInfo { name: "player:read", description: "see what is playing" }],
        peer_client_id: "peer",
        peer_name: "Peer",
        own_client_id: "me",
        peer_scope: "player:read",
        peer_scopes: &[ScopeInfo { name: "assistant:notify", description: "show cards" }],
        home_panel: None,
        public_clients: &[],
        demo_users: &[],
        defaults: Defaults {
            listen: "127.0.0.1:0",
            public_url: "http://localhost:9",
            peer_url: "http://localhost:10",
            database_url: "sqlite::memory:",
            peer_client_secret: "s",
            client_secret: "t",
        },
        migrations: &[],
        routes: |_| {},
    };

    /// A malformed `--public-url` stops the binary with a clear message, not a panic later.
    pub fn assert_bad_url_is_refused(bin: &str) {
        let out = Command::new(bin).args(["--public-url", "localhost:8001"]).output().expect("run the party");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("--public-url") && err.contains("https:// URL"), "{err}");
    }

    /// `--help` lists every flag of CONTRACT section 1 with its env variable
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
    /// confidential client it registered, and the demo logins (CONTRACT section 2).
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
        let client = format!("dev client: id={} secret={}", party.peer_client_id, party.defaults.peer_client_secret);
        assert!(banner.contains(&client), "{banner}");
        for u in party.demo_users {
            assert!(banner.contains(&format!("{} / {}", u.username, u.password)), "{banner}");
        }
    }
}

/// Unit-test helpers: a whole party's state on an in-memory database.
#[cfg(test)]
pub(crate) mod testing {
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
        crate::build_state(config, std::sync::Arc::new(clock), entropy).await.expect("test state")
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
        match grant.exchange(GrantRequest { state: app, client: &client, params: &params, bearer: None }).await? {
            GrantResponse::Tokens(t) => Ok(t),
            GrantResponse::Accepted(_) => panic!("this grant answers with tokens"),
        }
    }
}
