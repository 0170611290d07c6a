//! Start-up: from a [`Party`] profile and the command line to a running
//! server. [`build_state`] connects and seeds, [`app`] assembles the routes
//! and layers, [`serve`] binds them, [`run_party`] is a party's `main`.

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
use crate::config::{AuditCommand, Cli, Command, Config, Party};
use crate::error::{ApiError, ApiRejection};
use crate::grant_type::GrantType;
use crate::housekeeping;
use crate::outbound::http_client;
use crate::server::client_auth::{ClientDirectory, JwksCache};
use crate::server::client_metadata::ClientDocuments;
use crate::server::grants::GrantRegistry;
use crate::state::AppState;
use crate::store::{ClientRecord, Store, StoreError, UserRecord};
use crate::tokens::secrets::new_id;
use crate::tokens::{KeyPolicy, SigningKeys};
use crate::web::form::MAX_BODY;
use crate::web::middleware::{edge, not_found, pages_layer, protocol_not_found};
use crate::{accounts, audit, link, logs, memory, metrics, resource, server, web};

/// Builds the state of a party: connects and migrates the database, loads or
/// creates the signing keys, registers the clients and seeds the demo data.
pub async fn build_state(
    config: Config,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
) -> Result<AppState, StoreError> {
    let store = Store::connect(&config.database_url, config.database_max_connections).await?;
    let key_policy = KeyPolicy::new(config.key_rotation_days, config.lifetimes.access_token);
    let keys = SigningKeys::load_or_create(&store, clock.now(), key_policy).await?;
    // The plain server's grants, and what the draft adds (docs/architecture.md, "Where to add a grant").
    let grants = GrantRegistry::standard().with(link::grant::grants());
    register_clients(&config, &store, &grants).await?;
    let hasher = accounts::Hasher::new(config.hash_concurrency, config.hash_queue);
    if config.demo_data && !store.has_users().await? {
        seed_demo_users(&config, &store, &hasher, clock.now()).await?;
        // Three hashes' worth of memory, no longer needed.
        memory::give_back_freed_memory();
    }
    let http = http_client(config.peer_timeout);
    let client_documents = ClientDocuments::new(config.insecure_client_metadata);
    let limits = web::limits::Limits::new(&config.limits, clock.clone());
    Ok(AppState {
        config,
        store,
        keys,
        clock,
        entropy,
        grants,
        hooks: Box::new(link::hooks::LinkHooks),
        clients: ClientDirectory::default(),
        client_documents,
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
        metrics: Default::default(),
    })
}

async fn register_clients(config: &Config, store: &Store, grants: &GrantRegistry) -> Result<(), StoreError> {
    // The peer's client may use every registered grant but the device flow's (it is no device).
    let peer_grants: Vec<&str> =
        grants.grant_types().filter(|g| *g != GrantType::DeviceCode).map(GrantType::as_str).collect();
    let party = config.party;
    store
        .upsert_client(&ClientRecord {
            client_id: party.peer.client_id.to_owned(),
            name: party.peer.name.to_owned(),
            secret_digest: Some(config.peer_client_secret.digest()),
            redirect_uris: config.peer_redirect_uri(),
            grant_types: peer_grants.join(" "),
            scope: party.offers.to_peer.to_owned(),
            jwks_uri: Some(format!("{}{}", config.peer_url, server::metadata::JWKS_PATH)),
            ..Default::default()
        })
        .await?;
    for c in party.offers.public_clients {
        store
            .upsert_client(&ClientRecord {
                client_id: c.client_id.to_owned(),
                name: c.name.to_owned(),
                secret_digest: None,
                redirect_uris: String::new(),
                grant_types: c.grant_types.to_owned(),
                scope: c.scope.to_owned(),
                jwks_uri: None,
                ..Default::default()
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
async fn session_key(app: &AppState) -> Result<Key, StoreError> {
    let mut fresh = [0u8; 64];
    app.entropy.fill(&mut fresh);
    let stored = app.store.setting_or_insert("session_key", &STANDARD.encode(fresh)).await?;
    let bytes = STANDARD.decode(stored).ok().filter(|b| b.len() >= 64).unwrap_or(fresh.to_vec());
    Ok(Key::from(&bytes))
}

/// Starts serving `state` on `listener`, with the background work beside it;
/// [`Serving::until_stopped`] serves until SIGTERM or Ctrl-C.
pub async fn serve(app: AppState, listener: TcpListener) -> Result<Serving, Box<dyn std::error::Error>> {
    let key = session_key(&app).await?;
    let workers = app.config.workers;
    let max_connections = app.config.max_connections;
    let grace = app.config.shutdown_grace;
    // Listening from here on: a signal that comes before the server runs still stops it in order.
    let stop = StopSignals::listen()?;
    let app = aw::Data::new(app);
    let housekeeping = housekeeping::start(app.clone());
    let data = app.clone();
    let mut server = HttpServer::new(move || self::app(app.clone(), key.clone()))
        // Explicit bounds on connections: how many, how fast they may open, how
        // long a head may take (a slow head is cut), how long idle keep-alive lasts.
        .max_connections(max_connections)
        .max_connection_rate(256)
        .backlog(1024)
        .client_request_timeout(Duration::from_secs(5))
        .client_disconnect_timeout(Duration::from_secs(1))
        .keep_alive(Duration::from_secs(15))
        // The signals are ours: actix-web would cut requests at once on Ctrl-C, and stop before the background work.
        .disable_signals()
        .shutdown_timeout(grace.as_secs())
        .listen(listener)?;
    if let Some(n) = workers {
        server = server.workers(n);
    }
    Ok(Serving { server: server.run(), stop, housekeeping, app: data })
}

/// A party serving, with its background work ([`serve`]).
pub struct Serving {
    server: Server,
    stop: StopSignals,
    housekeeping: housekeeping::Housekeeping,
    app: aw::Data<AppState>,
}

impl Serving {
    /// Serves until SIGTERM or SIGINT (Ctrl-C), then stops in order: no new
    /// connections; requests in flight finish (up to `--shutdown-grace`);
    /// the background tasks end; the database is closed (on SQLite after a
    /// checkpoint); the log says the party stopped. Each step waits for the
    /// one before, so nothing holding a connection outlives the runtime.
    pub async fn until_stopped(self) -> std::io::Result<()> {
        let Self { server, mut stop, housekeeping, app } = self;
        let id = app.config.party.id;
        let handle = server.handle();
        let mut server = std::pin::pin!(server);
        let served = tokio::select! {
            served = &mut server => served,
            signal = stop.next() => {
                let grace = app.config.shutdown_grace.as_secs();
                tracing::info!("{id} stopping ({signal}): finishing the requests in flight (at most {grace} s)");
                // Sent now; the server carries it out as it is awaited.
                drop(handle.stop(true));
                server.await
            }
        };
        housekeeping.stop().await;
        if let Err(e) = app.store.close().await {
            tracing::warn!(error = %e, "closing the database");
        }
        tracing::info!("{id} stopped");
        served
    }
}

/// SIGTERM and SIGINT, listened for from [`StopSignals::listen`] on.
struct StopSignals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn listen() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self { terminate: signal(SignalKind::terminate())?, interrupt: signal(SignalKind::interrupt())? })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// The name of the next signal to arrive.
    async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.terminate.recv() => "SIGTERM",
                _ = self.interrupt.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}

/// The whole application, in four parts tried in order: `/healthz` bare
/// (a load balancer's probe, unlogged and uncounted); `/metrics` behind the
/// edge alone ([`metrics::endpoint`]); the protocol endpoints
/// ([`server::protocol_routes`]) behind the edge alone; everything else,
/// pages and APIs, behind three layers, outside in: the edge (log, head and
/// body limits, rate limits, body deadline, security headers), the session
/// cookie, and the pages layer (session lifetime, error pages).
pub fn app(
    app: aw::Data<AppState>,
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
    let party = app.config.party;
    let https = app.config.public_url.starts_with("https://");
    let cookie_name = session_cookie_name(&app.config);
    let sessions = SessionMiddleware::builder(CookieSessionStore::default(), key)
        .cookie_name(cookie_name)
        .cookie_http_only(true)
        .cookie_same_site(SameSite::Lax)
        .cookie_secure(https)
        .cookie_path("/".to_owned())
        .cookie_content_security(CookieContentSecurity::Private)
        .build();
    App::new()
        .app_data(app)
        .app_data(aw::PayloadConfig::new(MAX_BODY))
        .app_data(aw::JsonConfig::default().limit(MAX_BODY).error_handler(|err, req| {
            #[allow(clippy::expect_used, reason = "registered on the line above")]
            let app = req.app_data::<aw::Data<AppState>>().expect("AppState is registered");
            ApiRejection { error: ApiError::BadRequest(err.to_string().into()), challenge: app.challenge(req.path()) }
                .into()
        }))
        // Routes are tried in order: the load balancer's probe first, bare
        // (and uncounted: probes would swamp the request metrics, and it stays cheap).
        .service(web::pages::healthz)
        // A scraper carries no cookie and sees no page: the edge alone, which counts it too.
        .service(aw::resource(metrics::PATH).wrap(from_fn(edge)).route(aw::get().to(metrics::endpoint)))
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
                .configure(audit::pages::routes)
                .configure(party.routes)
                .default_service(aw::to(not_found)),
        )
}

/// The session cookie's name. RFC 6265bis 4.1.3.2: a `__Host-` cookie is
/// Secure, host-only and for `/`, so no sibling can set it.
pub fn session_cookie_name(config: &Config) -> String {
    match config.public_url.starts_with("https://") {
        true => format!("__Host-{}", config.party.session_cookie),
        false => config.party.session_cookie.to_owned(),
    }
}

/// The whole life of a party's binary: flags → Config → state → serve.
pub async fn run_party(party: &'static Party) -> std::io::Result<()> {
    memory::return_freed_memory_promptly();
    let cli = Cli::parse_for(party);
    if let Some(Command::Audit(AuditCommand::Verify(args))) = &cli.command {
        return match audit::verify::run(args, &cli.public_url).await {
            Ok(report) => {
                println!("{report}");
                Ok(())
            }
            Err(failure) => {
                eprintln!("{} audit verify: {failure}", party.id);
                std::process::exit(1)
            }
        };
    }
    let _flush_logs_at_exit = logs::init_tracing();
    let config = Config::from_cli(party, cli);
    let listener = TcpListener::bind(&config.listen).map_err(|e| {
        std::io::Error::new(e.kind(), format!("{} ({}) cannot listen on {}: {e}", party.name, party.id, config.listen))
    })?;
    let banner = banner(&config, listener.local_addr()?);
    let app = build_state(config, Arc::new(SystemClock), Arc::new(OsEntropy))
        .await
        .map_err(|e| std::io::Error::other(format!("{} ({}) cannot start: {e}", party.name, party.id)))?;
    let serving = serve(app, listener).await.map_err(|e| std::io::Error::other(e.to_string()))?;
    // The banner is for the person at the terminal (stdout); logs go to stderr.
    println!("{banner}");
    serving.until_stopped().await
}

fn banner(config: &Config, addr: std::net::SocketAddr) -> String {
    let p = config.party;
    let mut out = format!("{} ({}) listening on {addr}, public URL {}\n", p.name, p.id, config.public_url);
    let secret = if config.peer_client_secret.secret() == p.defaults.peer_client_secret {
        p.defaults.peer_client_secret.to_owned()
    } else {
        "(set by --peer-client-secret, not shown)".to_owned()
    };
    out.push_str(&format!("dev client: id={} secret={secret}\n", p.peer.client_id));
    for c in p.offers.public_clients {
        out.push_str(&format!("public client: id={} (no secret)\n", c.client_id));
    }
    if config.demo_data {
        let logins: Vec<String> = p.demo_users.iter().map(|u| format!("{} / {}", u.username, u.password)).collect();
        out.push_str(&format!("demo logins (dev only): {}", logins.join(", ")));
    }
    out
}
