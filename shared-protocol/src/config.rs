//! Everything tunable, with the demo defaults: one [`Config`] per party,
//! built from its [`Party`] profile and the command line (`party-a --help`).

use actix_web::web::ServiceConfig;
use clap::{CommandFactory, FromArgMatches, Parser};

use crate::tokens::secrets::{ClientSecret, MetricsToken};
use crate::web::limits::{LimitRates, Rate};

/// Where a party's authorization responses arrive (`link::pages::callback`).
pub const CALLBACK_PATH: &str = "/link/callback";

/// A scope this party offers, with the words a user reads on the consent page.
#[derive(Debug, Clone, Copy)]
pub struct ScopeInfo {
    pub name: &'static str,
    pub description: &'static str,
}

#[derive(Debug, Clone, Copy)]
pub struct DemoUser {
    pub username: &'static str,
    pub password: &'static str,
    pub role: &'static str,
}

/// A public client (no secret) this party registers, e.g. a device.
#[derive(Debug, Clone, Copy)]
pub struct PublicClient {
    pub client_id: &'static str,
    pub name: &'static str,
    pub grant_types: &'static str,
    pub scope: &'static str,
}

/// What makes a party itself: its name, colour, scopes, peer, demo data and API.
/// Everything else is shared.
pub struct Party {
    /// `party-a` or `party-b`.
    pub id: &'static str,
    pub name: &'static str,
    /// One line under the name, so a user knows what this site is.
    pub tagline: &'static str,
    /// The brand colour (CSS colour).
    pub colour: &'static str,
    pub session_cookie: &'static str,
    /// What this party offers: its API's scopes and the clients registered here.
    pub offers: Offers,
    /// Its one peer, how each is registered at the other, and what this party wants from it.
    pub peer: PeerProfile,
    /// What the signed-in home page shows of the party's own product (the
    /// assistant's play box, say), rendered by the party.
    pub home_panel: Option<HomePanel>,
    /// What the peer writes here with its access (the assistant's
    /// now-playing card): forgotten when the peer no longer holds the scope
    /// it was written with.
    pub from_peer: &'static [FromPeer],
    pub demo_users: &'static [DemoUser],
    pub defaults: Defaults,
    /// The party's own routes (its resource API and pages).
    pub routes: fn(&mut ServiceConfig),
}

/// A kind of product state the peer writes here, and the scope it writes with.
pub struct FromPeer {
    /// The kind, as `Store::product_state` names it.
    pub kind: &'static str,
    pub scope: &'static str,
}

/// What a party offers, to its peer and to other clients.
#[derive(Debug, Clone, Copy)]
pub struct Offers {
    /// The scopes of this party's API, in the words a user reads on the consent page.
    pub scopes: &'static [ScopeInfo],
    /// The scope the peer's client may ask for here (also the reciprocal
    /// scope agreed beforehand, when the peer's request names none: draft section 2).
    pub to_peer: &'static str,
    /// Clients without a secret registered here, e.g. a device (RFC 8628).
    pub public_clients: &'static [PublicClient],
    /// The party's own APIs, each a protected resource of its own (RFC 9728 3.1).
    pub apis: &'static [ApiInfo],
}

/// One API of a party: every path at or under `path` belongs to it, and the
/// scopes it understands.
#[derive(Debug, Clone, Copy)]
pub struct ApiInfo {
    pub path: &'static str,
    pub scopes: &'static [&'static str],
}

/// The API every party serves beside its own: what a token allows here.
pub const WHOAMI_PATH: &str = "/api/whoami";

/// The one peer of a party: the two are registered at each other beforehand
/// (docs/architecture.md, "Why each party has exactly one peer").
#[derive(Debug, Clone, Copy)]
pub struct PeerProfile {
    pub name: &'static str,
    /// The peer's client id here.
    pub client_id: &'static str,
    /// This party's client id at the peer.
    pub our_client_id: &'static str,
    /// The peer's scopes this party asks for, in the words its users read.
    pub wants: &'static [ScopeInfo],
}

/// Renders a party's own part of the home page (HTML) for a signed-in user
/// from what the party keeps (its product state), given the user's id and
/// the session's CSRF token for its forms.
pub type HomePanel =
    for<'a> fn(&'a crate::store::Store, &'a str, &'a str) -> futures_util::future::LocalBoxFuture<'a, Option<String>>;

impl Party {
    /// What this party asks the peer for, in its authorization requests and
    /// in the `reciprocal` field of its token responses.
    pub fn wants_from_peer(&self) -> String {
        self.peer.wants.iter().map(|s| s.name).collect::<Vec<_>>().join(" ")
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    pub listen: &'static str,
    pub public_url: &'static str,
    pub peer_url: &'static str,
    pub database_url: &'static str,
    pub peer_client_secret: &'static str,
    pub client_secret: &'static str,
}

/// Lifetimes in seconds.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub access_token: i64,
    pub refresh_token: i64,
    pub authorization_code: i64,
    /// How far in the past or future a client assertion's times may be (clock skew).
    pub assertion_skew: i64,
    /// A device request without `login_hint` (RFC 8628 3.2 `expires_in`).
    pub device_code: i64,
    /// A device request naming an account waits this long for the kiosk, and
    /// once approved may be redeemed for this long again (`--device-hint-ttl`).
    pub device_hinted: i64,
    /// The polling interval a device is given (RFC 8628 3.2 `interval`).
    pub device_interval: i64,
    /// Seconds after a refresh in which the rotated-out token is honoured once more (0: never).
    pub refresh_reuse_grace: i64,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            access_token: 600,
            refresh_token: 30 * 24 * 3600,
            authorization_code: 60,
            assertion_skew: 30,
            device_code: 600,
            device_hinted: 7 * 24 * 3600,
            device_interval: 5,
            refresh_reuse_grace: 0,
        }
    }
}

/// What a party's binary can do besides serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// The audit log of grant decisions.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum AuditCommand {
    /// Checks every entry's signature against the issuer's JWKS and every
    /// chain, and names the first entry that fails (exit status 1).
    Verify(VerifyArgs),
}

/// `audit verify`: the log, and whom it must come from (docs/audit.md, "Verifying").
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// The log: a URL (`…/audit/events`, its `rel="next"` pages followed) or a file of JSON lines.
    pub source: String,
    /// The issuer every entry must name [default: the origin of a URL source; for a file, this party's --public-url].
    #[arg(long, value_parser = http_url)]
    pub issuer: Option<String>,
    /// The issuer's JWKS, as a URL or a file [default: found through the issuer's metadata].
    #[arg(long)]
    pub jwks: Option<String>,
    /// A session cookie (`NAME=VALUE`) to read a URL as that signed-in user; sent only to the URL's origin.
    #[arg(long)]
    pub cookie: Option<String>,
    /// The most pages of a URL source to read before giving up.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pages: u32,
}

/// The command line of each party; defaults come from its [`Party`] profile.
#[derive(Debug, Clone, Parser)]
#[command(about = "A Reciprocal OAuth party: authorization server, client and resource server")]
pub struct Cli {
    /// What to do instead of serving (none: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Address to listen on.
    #[arg(long, env = "LISTEN")]
    pub listen: String,
    /// This party's public URL, also its issuer identifier.
    #[arg(long, env = "PUBLIC_URL", value_parser = http_url)]
    pub public_url: String,
    /// The other party's public URL.
    #[arg(long, env = "PEER_URL", value_parser = http_url)]
    pub peer_url: String,
    /// sqlite://path (created on first start) or postgres://…
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// Database connections this instance opens at most [default: 4 on SQLite, 10 on PostgreSQL].
    /// N instances open up to N times this; PostgreSQL allows 100 by default.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..))]
    pub database_max_connections: Option<u32>,
    /// The secret the peer's client authenticates with here.
    #[arg(long, env = "PEER_CLIENT_SECRET")]
    pub peer_client_secret: ClientSecret,
    /// This party's client secret at the peer.
    #[arg(long, env = "CLIENT_SECRET")]
    pub client_secret: ClientSecret,
    /// Days a signing key signs before the next one takes over (it is published 10 minutes ahead).
    #[arg(long, env = "KEY_ROTATION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    pub key_rotation_days: u32,
    /// Access token lifetime in seconds.
    #[arg(long, env = "ACCESS_TOKEN_TTL", default_value_t = 600)]
    pub access_token_ttl: i64,
    /// Refresh token lifetime in seconds.
    #[arg(long, env = "REFRESH_TOKEN_TTL", default_value_t = 2_592_000)]
    pub refresh_token_ttl: i64,
    /// Seconds after a refresh in which the refresh token it replaced is
    /// honoured once more instead of revoking the family (0: strict reuse detection).
    #[arg(long, env = "REFRESH_REUSE_GRACE", default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..=600))]
    pub refresh_reuse_grace: i64,
    /// Authorization code lifetime in seconds.
    #[arg(long, env = "CODE_TTL", default_value_t = 60)]
    pub code_ttl: i64,
    /// Lifetime in seconds of a device request without login_hint.
    #[arg(long, env = "DEVICE_CODE_TTL", default_value_t = 600)]
    pub device_code_ttl: i64,
    /// Seconds a device request naming an account waits for approval, and then for redemption.
    #[arg(long, env = "DEVICE_HINT_TTL", default_value_t = 604_800)]
    pub device_hint_ttl: i64,
    /// Seconds a device must wait between polls of the token endpoint.
    #[arg(long, env = "DEVICE_INTERVAL", default_value_t = 5)]
    pub device_interval: i64,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "WORKERS")]
    pub workers: Option<usize>,
    /// Do not create the demo users on an empty database.
    #[arg(long, env = "NO_DEMO_DATA")]
    pub no_demo_data: bool,
    /// Seconds any call to the peer may take before the user is told it failed.
    #[arg(long, env = "PEER_TIMEOUT", default_value_t = 5)]
    pub peer_timeout: u64,
    /// Also put `reciprocal` in the authorization response to the peer (not only the token response).
    #[arg(long, env = "RECIPROCAL_IN_AUTHORIZATION_RESPONSE")]
    pub reciprocal_in_authorization_response: bool,
    /// How to push the reciprocal code to the peer: the draft's grant, or the
    /// 2017 `mutual_authorization_code` form for peers that only know that.
    #[arg(long, env = "RECIPROCAL_FORM", value_enum, default_value_t = ReciprocalForm::Reciprocal)]
    pub reciprocal_form: ReciprocalForm,
    /// How this party authenticates to the peer: its client secret, or a JWT
    /// signed with its own key, which the peer reads from this party's JWKS.
    #[arg(long, env = "CLIENT_AUTH", value_enum, default_value_t = ClientAuth::ClientSecretBasic)]
    pub client_auth: ClientAuth,

    /// Sign-in and sign-up attempts per client address (each costs a password hash): N/s, N/min or N/h.
    #[arg(long, env = "RATE_SIGN_IN", default_value = "60/min", help_heading = "Limits")]
    pub rate_sign_in: Rate,
    /// Sign-in and sign-up attempts of all clients together.
    #[arg(long, env = "RATE_SIGN_IN_GLOBAL", default_value = "100/s", help_heading = "Limits")]
    pub rate_sign_in_global: Rate,
    /// Device authorization requests per client address.
    #[arg(long, env = "RATE_DEVICE_AUTHORIZATION", default_value = "30/min", help_heading = "Limits")]
    pub rate_device_authorization: Rate,
    /// Device authorization requests of all clients together.
    #[arg(long, env = "RATE_DEVICE_AUTHORIZATION_GLOBAL", default_value = "20/s", help_heading = "Limits")]
    pub rate_device_authorization_global: Rate,
    /// User codes typed at /device per client address.
    #[arg(long, env = "RATE_USER_CODE", default_value = "30/min", help_heading = "Limits")]
    pub rate_user_code: Rate,
    /// User codes typed at /device by all clients together.
    #[arg(long, env = "RATE_USER_CODE_GLOBAL", default_value = "20/s", help_heading = "Limits")]
    pub rate_user_code_global: Rate,
    /// Failed client authentications per client address (/token, /revoke, /introspect).
    #[arg(long, env = "RATE_CLIENT_AUTH_FAILURES", default_value = "30/min", help_heading = "Limits")]
    pub rate_client_auth_failures: Rate,
    /// Failed client authentications of all clients together.
    #[arg(long, env = "RATE_CLIENT_AUTH_FAILURES_GLOBAL", default_value = "100/s", help_heading = "Limits")]
    pub rate_client_auth_failures_global: Rate,
    /// Fetch client metadata documents from any address, loopback and private ones included, and over
    /// http: for tests and development only.
    #[arg(long, env = "INSECURE_CLIENT_METADATA", help_heading = "Limits")]
    pub insecure_client_metadata: bool,
    /// Dynamic client registrations (POST /register) per client address.
    #[arg(long, env = "RATE_REGISTRATION", default_value = "10/min", help_heading = "Limits")]
    pub rate_registration: Rate,
    /// Dynamic client registrations of all clients together.
    #[arg(long, env = "RATE_REGISTRATION_GLOBAL", default_value = "5/s", help_heading = "Limits")]
    pub rate_registration_global: Rate,
    /// Clients registered at once; beyond, 503 until unused ones are pruned (see
    /// --registered-client-idle-days; one that never got a grant goes a day after registering).
    #[arg(long, env = "MAX_REGISTERED_CLIENTS", default_value_t = 10_000, help_heading = "Limits")]
    pub max_registered_clients: i64,
    /// Days a registered client may go unused (no token request, no authorization) before it is
    /// forgotten with its grants and tokens (at least 1).
    #[arg(long, env = "REGISTERED_CLIENT_IDLE_DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(i64).range(1..=3650), help_heading = "Limits")]
    pub registered_client_idle_days: i64,
    /// Proxies whose X-Forwarded-For names the client (comma-separated addresses); others are the client.
    #[arg(long, env = "TRUSTED_PROXY", value_delimiter = ',', help_heading = "Limits")]
    pub trusted_proxy: Vec<std::net::IpAddr>,
    /// Password hashes computed at once (each holds 19 MiB); default: one per core.
    #[arg(long, env = "HASH_CONCURRENCY", help_heading = "Limits")]
    pub hash_concurrency: Option<usize>,
    /// Password hashes that may wait for one of those; beyond, 503 with Retry-After.
    #[arg(long, env = "HASH_QUEUE", default_value_t = 64, help_heading = "Limits")]
    pub hash_queue: usize,
    /// Device requests waiting for approval per account; a new one ends the oldest.
    #[arg(long, env = "DEVICE_PENDING_PER_ACCOUNT", default_value_t = 5, help_heading = "Limits")]
    pub device_pending_per_account: i64,
    /// Device requests waiting for approval per client address; beyond, new ones are refused.
    #[arg(long, env = "DEVICE_PENDING_PER_ADDRESS", default_value_t = 20, help_heading = "Limits")]
    pub device_pending_per_address: i64,
    /// Connections each worker serves at once; more wait in the listen backlog.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 2048, help_heading = "Limits")]
    pub max_connections: usize,
    /// Seconds a request body may take to arrive; a stalled one is answered 408 and the connection closed.
    #[arg(long, env = "BODY_TIMEOUT", default_value_t = 10, help_heading = "Limits")]
    pub body_timeout: u64,
    /// Seconds a stop (SIGTERM or Ctrl-C) waits for requests in flight to finish before it cuts
    /// their connections; then background work ends and the database is closed.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value_t = 5, help_heading = "Limits")]
    pub shutdown_grace: u64,

    /// The token a scraper must send to read /metrics (Authorization: Bearer TOKEN, at least 16
    /// characters); without it, /metrics answers requests straight from this host (loopback, no proxy) only.
    #[arg(long, env = "METRICS_TOKEN", value_parser = metrics_token, hide_env_values = true, help_heading = "Metrics")]
    pub metrics_token: Option<MetricsToken>,

    /// Seconds a session may go unused before it ends (at least 60, at most a year).
    #[arg(long, env = "SESSION_IDLE_TIMEOUT", default_value_t = 7_200,
          value_parser = clap::value_parser!(i64).range(60..=31_536_000), help_heading = "Sessions")]
    pub session_idle_timeout: i64,
    /// Seconds a session lasts at most, however busy (at least 60, at most a year).
    #[arg(long, env = "SESSION_LIFETIME", default_value_t = 43_200,
          value_parser = clap::value_parser!(i64).range(60..=31_536_000), help_heading = "Sessions")]
    pub session_lifetime: i64,
}

/// Client authentication towards the peer (RFC 6749 2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientAuth {
    /// RFC 6749 2.3.1 with `--client-secret`.
    ClientSecretBasic,
    /// RFC 7523 2.2: no shared secret on the wire.
    PrivateKeyJwt,
}

/// The two wire forms of the reciprocal request (docs/protocol.md, "The legacy form").
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReciprocalForm {
    /// `urn:ietf:params:oauth:grant-type:reciprocal` with `access_token` in the body.
    Reciprocal,
    /// `mutual_authorization_code` with the token in `Authorization: Bearer`.
    Legacy,
}

/// A metrics token long enough not to be guessed over HTTP (nothing limits tries at /metrics).
fn metrics_token(s: &str) -> Result<MetricsToken, String> {
    match s.chars().count() {
        16.. => Ok(MetricsToken::new(s)),
        _ => Err("must be at least 16 characters".into()),
    }
}

/// An absolute http(s) URL without query or fragment (RFC 8414 2: the issuer identifier).
fn http_url(s: &str) -> Result<String, String> {
    let url = url::Url::parse(s).map_err(|e| format!("not an absolute URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an http:// or https:// URL with a host".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    Ok(s.to_owned())
}

impl Cli {
    /// Parses the process arguments with the party's defaults filled in.
    pub fn parse_for(party: &Party) -> Self {
        Self::parse_from_for(party, std::env::args_os())
    }

    pub fn parse_from_for<I, T>(party: &Party, args: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let d = party.defaults;
        let command = Self::command()
            .name(party.id)
            .mut_arg("listen", |a| a.default_value(d.listen).required(false))
            .mut_arg("public_url", |a| a.default_value(d.public_url).required(false))
            .mut_arg("peer_url", |a| a.default_value(d.peer_url).required(false))
            .mut_arg("database_url", |a| a.default_value(d.database_url).required(false))
            .mut_arg("peer_client_secret", |a| {
                a.default_value(d.peer_client_secret).required(false).hide_default_value(true)
            })
            .mut_arg("client_secret", |a| a.default_value(d.client_secret).required(false).hide_default_value(true));
        let matches = command.get_matches_from(args);
        Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

/// The whole configuration of one running party.
pub struct Config {
    pub party: &'static Party,
    pub listen: String,
    /// Issuer identifier and resource identifier, without a trailing slash.
    pub public_url: String,
    pub peer_url: String,
    pub database_url: String,
    pub database_max_connections: Option<u32>,
    pub key_rotation_days: u32,
    pub peer_client_secret: ClientSecret,
    pub client_secret: ClientSecret,
    pub lifetimes: Lifetimes,
    pub workers: Option<usize>,
    pub demo_data: bool,
    pub peer_timeout: std::time::Duration,
    pub reciprocal_in_authorization_response: bool,
    pub reciprocal_form: ReciprocalForm,
    pub client_auth: ClientAuth,
    pub limits: LimitRates,
    pub hash_concurrency: usize,
    pub hash_queue: usize,
    pub device_pending_per_account: i64,
    pub device_pending_per_address: i64,
    pub insecure_client_metadata: bool,
    pub max_registered_clients: i64,
    /// Seconds a registered client may go unused before it is pruned.
    pub registered_client_idle: i64,
    pub max_connections: usize,
    pub body_timeout: std::time::Duration,
    /// How long a stop waits for requests in flight (`--shutdown-grace`).
    pub shutdown_grace: std::time::Duration,
    pub sessions: SessionLifetimes,
    /// Who may read `/metrics` ([`crate::metrics::access`]): loopback only when `None`.
    pub metrics_token: Option<MetricsToken>,
}

/// How long a browser session lasts, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct SessionLifetimes {
    pub idle: i64,
    pub absolute: i64,
}

impl Config {
    pub fn from_cli(party: &'static Party, cli: Cli) -> Self {
        Self {
            party,
            listen: cli.listen,
            public_url: cli.public_url.trim_end_matches('/').to_owned(),
            peer_url: cli.peer_url.trim_end_matches('/').to_owned(),
            database_url: cli.database_url,
            database_max_connections: cli.database_max_connections,
            key_rotation_days: cli.key_rotation_days,
            peer_client_secret: cli.peer_client_secret,
            client_secret: cli.client_secret,
            lifetimes: Lifetimes {
                access_token: cli.access_token_ttl,
                refresh_token: cli.refresh_token_ttl,
                authorization_code: cli.code_ttl,
                device_code: cli.device_code_ttl.max(1),
                device_hinted: cli.device_hint_ttl.max(1),
                device_interval: cli.device_interval.max(1),
                refresh_reuse_grace: cli.refresh_reuse_grace,
                ..Lifetimes::default()
            },
            workers: cli.workers,
            demo_data: !cli.no_demo_data,
            peer_timeout: std::time::Duration::from_secs(cli.peer_timeout.max(1)),
            reciprocal_in_authorization_response: cli.reciprocal_in_authorization_response,
            reciprocal_form: cli.reciprocal_form,
            client_auth: cli.client_auth,
            limits: LimitRates {
                sign_in: (cli.rate_sign_in, cli.rate_sign_in_global),
                device_authorization: (cli.rate_device_authorization, cli.rate_device_authorization_global),
                user_code: (cli.rate_user_code, cli.rate_user_code_global),
                client_auth_failures: (cli.rate_client_auth_failures, cli.rate_client_auth_failures_global),
                registration: (cli.rate_registration, cli.rate_registration_global),
                trusted_proxies: cli.trusted_proxy,
            },
            hash_concurrency: cli
                .hash_concurrency
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
                .max(1),
            hash_queue: cli.hash_queue,
            device_pending_per_account: cli.device_pending_per_account.max(1),
            device_pending_per_address: cli.device_pending_per_address.max(1),
            max_registered_clients: cli.max_registered_clients.max(0),
            registered_client_idle: cli.registered_client_idle_days * 86_400,
            insecure_client_metadata: cli.insecure_client_metadata,
            max_connections: cli.max_connections.max(1),
            body_timeout: std::time::Duration::from_secs(cli.body_timeout.max(1)),
            shutdown_grace: std::time::Duration::from_secs(cli.shutdown_grace),
            sessions: SessionLifetimes { idle: cli.session_idle_timeout, absolute: cli.session_lifetime },
            metrics_token: cli.metrics_token,
        }
    }

    pub fn issuer(&self) -> &str {
        &self.public_url
    }
    /// The resource that stands for the party as a whole (RFC 9728 `resource`, the tokens' `aud`).
    pub fn resource(&self) -> &str {
        &self.public_url
    }
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{}", self.public_url, path)
    }
    /// Where this party's authorization requests to the peer send the user back (RFC 6749 3.1.2).
    pub fn redirect_uri(&self) -> String {
        self.endpoint(CALLBACK_PATH)
    }
    /// The one redirect URI registered here for the peer's client: the peer's [`CALLBACK_PATH`].
    pub fn peer_redirect_uri(&self) -> String {
        format!("{}{CALLBACK_PATH}", self.peer_url)
    }
    /// The API `path` belongs to, with the scopes it understands: one of the
    /// profile's, or [`WHOAMI_PATH`] (every scope of this party).
    pub fn api_for(&self, path: &str) -> Option<(&'static str, Vec<&'static str>)> {
        let under = |api: &str| path == api || path.strip_prefix(api).is_some_and(|rest| rest.starts_with('/'));
        if under(WHOAMI_PATH) {
            return Some((WHOAMI_PATH, self.scope_names().collect()));
        }
        self.party.offers.apis.iter().find(|a| under(a.path)).map(|a| (a.path, a.scopes.to_vec()))
    }

    /// The resource identifier of a URL path called here (RFC 9728 3.1: the
    /// URL itself), when the path belongs to one of this party's APIs and is
    /// plain enough to be asked for as `resource` ([`Config::audience_for`]).
    pub fn resource_of_path(&self, path: &str) -> Option<String> {
        let plain = path.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-_".contains(&b));
        (plain && path.len() <= 200 && !path.contains("//") && !path.ends_with('/'))
            .then(|| self.api_for(path).map(|_| self.endpoint(path)))
            .flatten()
    }

    /// The audience a token for `resource` carries (RFC 8707 2): this
    /// party's origin, for every API here, or the URL of (a path in) one
    /// API, for that API only. `None` for anything else.
    pub fn audience_for(&self, resource: &str) -> Option<String> {
        if resource.trim_end_matches('/') == self.resource() {
            return Some(self.resource().to_owned());
        }
        let path = resource.strip_prefix(self.resource())?.trim_end_matches('/');
        // Only a plain path: no query, fragment, dot segment or encoded character to disagree about.
        self.resource_of_path(path)
    }

    /// Whether a token with audience `aud` may be used at `path` here: a
    /// party-wide token anywhere, an API's token at or under its URL.
    pub fn audience_admits(&self, aud: &str, path: &str) -> bool {
        if aud == self.resource() {
            return true;
        }
        let Some(api_path) = aud.strip_prefix(self.resource()) else { return false };
        path == api_path || path.strip_prefix(api_path).is_some_and(|rest| rest.starts_with('/'))
    }

    pub fn scope_names(&self) -> impl Iterator<Item = &'static str> {
        self.party.offers.scopes.iter().map(|s| s.name)
    }
    pub fn offers_scope(&self, scope: &str) -> bool {
        self.party.offers.scopes.iter().any(|s| s.name == scope)
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::Cli;

    fn parse(extra: [&str; 2]) -> Result<Cli, clap::Error> {
        let required = ["p", "--listen", "x", "--public-url", "http://localhost:1", "--peer-url", "http://localhost:2"];
        let secrets = ["--database-url", "sqlite::memory:", "--peer-client-secret", "s", "--client-secret", "t"];
        Cli::try_parse_from(required.into_iter().chain(secrets).chain(extra))
    }

    #[test]
    fn session_lifetimes_under_a_minute_are_refused_and_the_minimum_is_documented() {
        for flag in ["--session-idle-timeout", "--session-lifetime"] {
            let err = parse([flag, "59"]).err().unwrap_or_else(|| panic!("{flag} 59 is refused"));
            assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
            assert!(err.to_string().contains("60..=31536000") && err.to_string().contains(flag), "{err}");
            assert!(parse([flag, "60"]).is_ok(), "{flag} 60 is the minimum");
        }
        let help = Cli::command().render_long_help().to_string();
        assert_eq!(help.matches("(at least 60, at most a year)").count(), 2, "{help}");
    }

    #[test]
    fn the_registered_client_idle_time_is_days_of_at_least_one() {
        let cli = parse(["--registered-client-idle-days", "2"]).unwrap();
        assert_eq!(cli.registered_client_idle_days, 2);
        assert!(parse(["--registered-client-idle-days", "0"]).is_err());
        assert_eq!(parse(["--session-lifetime", "60"]).unwrap().registered_client_idle_days, 30, "the default");
    }
}
