//! What an operator scrapes: `GET /metrics` in the Prometheus text format
//! (version 0.0.4), from one [`Metrics`] each instance owns in its
//! [`AppState`] (no global recorder, so tests read their own).
//!
//! Every label value is this code's own text, never a client's: the route is
//! actix's matched pattern (or `unmatched`), grant types, error codes, legs,
//! peer calls and limits are enums. An attacker can therefore add samples but
//! never series, and a scrape costs the same however much traffic there was.
//!
//! Counts are per instance and in memory: with several instances, scrape
//! each one (docs/architecture.md, "Several instances").
//!
//! Access ([`access`]): without `--metrics-token`, clients on this host only,
//! and only those that reached the party directly: a request naming a
//! forwarded client (`X-Forwarded-For`, `Forwarded`, `X-Real-IP`), trusted
//! proxy or not, is refused, so a reverse proxy on the same host never makes
//! `/metrics` public, whatever it writes in those headers. With the token,
//! `Authorization: Bearer <token>` from anyone.

use std::borrow::Cow;
use std::net::IpAddr;
use std::time::Duration;

use actix_web::body::BoxBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::error::ErrorCode;
use crate::grant_type::GrantType;
use crate::outbound::PeerError;
use crate::server::token::bearer_token;
use crate::state::AppState;
use crate::store::Leg;
use crate::text_enum::text_enum;
use crate::tokens::secrets::{digest, MetricsToken};
use crate::web::limits::LimitKind;

/// Where the metrics are served.
pub const PATH: &str = "/metrics";

/// The route label of a request no route matched (a 404): never its path.
pub const UNMATCHED: &str = "unmatched";

text_enum! {
    /// How one leg of a link ended, as `link_outcomes_total` counts it.
    pub enum LinkOutcome {
        Ok = "ok",
        /// The other party (or this one, of what the peer sent) said no.
        Refused = "refused",
        /// No usable answer: the peer unreachable, a malformed answer, or our storage.
        Failed = "failed",
    }
}

impl LinkOutcome {
    /// The outcome of a call to the peer.
    pub fn of<T>(result: &Result<T, PeerError>) -> Self {
        match result {
            Ok(_) => Self::Ok,
            Err(PeerError::Refused { .. }) => Self::Refused,
            Err(_) => Self::Failed,
        }
    }
}

text_enum! {
    /// The calls this party makes to its peer, as `peer_call_*` label them.
    pub enum PeerCall {
        /// RFC 8414 metadata (fetched when the cached copy is older than five minutes).
        Metadata = "metadata",
        /// Leg C: redeeming the code of our own authorization request.
        Code = "code",
        /// Leg G: redeeming the code the peer pushed with the reciprocal grant.
        PushedCode = "pushed_code",
        /// RFC 6749 6: refreshing a held token.
        Refresh = "refresh",
        /// Leg F: pushing our code with the reciprocal grant.
        Reciprocal = "reciprocal",
        /// RFC 7009: revoking a token the peer gave us.
        Revoke = "revoke",
        /// RFC 7662: asking whether a held token is still active.
        Introspect = "introspect",
        /// The peer's own API, with a held token.
        Api = "api",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: Cow<'static, str>,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: Cow<'static, str>,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrantLabels {
    grant_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LinkLabels {
    leg: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    call: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallFailureLabels {
    call: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Request latencies: from a millisecond (a cached metadata document) to ten
/// seconds (a password hash under load).
fn request_histogram() -> Histogram {
    Histogram::new([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
}

/// Peer-call latencies: up to the reciprocal push, which waits for the peer's own calls back.
fn peer_histogram() -> Histogram {
    Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0])
}

/// Every metric family of one instance, and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: Histograms<RouteLabels>,
    tokens_issued: Family<GrantLabels, Counter>,
    oauth_errors: Family<ErrorLabels, Counter>,
    link_outcomes: Family<LinkLabels, Counter>,
    peer_call_duration: Histograms<CallLabels>,
    peer_call_failures: Family<CallFailureLabels, Counter>,
    rate_limit_refusals: Family<LimitLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let m = Self {
            registry: Registry::default(),
            requests: Family::default(),
            request_duration: Family::new_with_constructor(request_histogram),
            tokens_issued: Family::default(),
            oauth_errors: Family::default(),
            link_outcomes: Family::default(),
            peer_call_duration: Family::new_with_constructor(peer_histogram),
            peer_call_failures: Family::default(),
            rate_limit_refusals: Family::default(),
        };
        // Series a dashboard rates from zero exist before their first event.
        for g in GrantType::ALL {
            m.tokens_issued.get_or_create_owned(&GrantLabels { grant_type: g.as_str() });
        }
        for l in LimitKind::ALL {
            m.rate_limit_refusals.get_or_create_owned(&LimitLabels { limit: l.as_str() });
        }
        let mut registry = Registry::default();
        // Counter names without `_total`: the encoder adds it.
        registry.register(
            "http_requests",
            "HTTP requests answered, by route pattern, method and status (/healthz excluded)",
            m.requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request, by route pattern and method",
            Unit::Seconds,
            m.request_duration.clone(),
        );
        registry.register(
            "oauth_tokens_issued",
            "Successful token endpoint answers, by grant_type (the reciprocal grants answer {} once the pushed code is redeemed)",
            m.tokens_issued.clone(),
        );
        registry.register(
            "oauth_errors",
            "OAuth error responses (RFC 6749 5.2 and its extensions), by error code",
            m.oauth_errors.clone(),
        );
        registry.register(
            "link_outcomes",
            "Legs of the reciprocal link that ended, by leg (C: our code redeemed at the peer, F: our reciprocal push, G: a pushed code received and redeemed) and outcome",
            m.link_outcomes.clone(),
        );
        registry.register_with_unit(
            "peer_call_duration",
            "Time of each call to the peer, answered or not, by call",
            Unit::Seconds,
            m.peer_call_duration.clone(),
        );
        registry.register(
            "peer_call_failures",
            "Calls to the peer that failed, by call and reason (unreachable, refused, malformed)",
            m.peer_call_failures.clone(),
        );
        registry.register(
            "rate_limit_refusals",
            "Requests turned away by a rate limit or back-off, by limit",
            m.rate_limit_refusals.clone(),
        );
        Self { registry, ..m }
    }

    /// One answered request: counted by route pattern, method and status,
    /// timed by route and method, and its OAuth error code (which the error
    /// put on the response, [`crate::error::OAuthError`]) counted. Called by the edge.
    pub fn answered(&self, res: &ServiceResponse<BoxBody>, elapsed: Duration) {
        let (route, method) = (route(res.request()), method(res.request().method()));
        let status = res.status().as_u16();
        self.requests.get_or_create(&RequestLabels { route: route.clone(), method, status }).inc();
        self.request_duration.get_or_create(&RouteLabels { route, method }).observe(elapsed.as_secs_f64());
        if let Some(code) = res.response().extensions().get::<ErrorCode>() {
            self.oauth_errors.get_or_create(&ErrorLabels { error: code.as_str() }).inc();
        }
    }

    /// The token endpoint answered a `grant_type` successfully.
    pub fn token_issued(&self, grant_type: GrantType) {
        self.tokens_issued.get_or_create(&GrantLabels { grant_type: grant_type.as_str() }).inc();
    }

    /// A leg of a link ended.
    pub fn link_outcome(&self, leg: Leg, outcome: LinkOutcome) {
        self.link_outcomes.get_or_create(&LinkLabels { leg: leg.as_str(), outcome: outcome.as_str() }).inc();
    }

    /// A call to the peer took `elapsed` and ended with `failure`, if it failed.
    pub fn peer_call(&self, call: PeerCall, elapsed: Duration, failure: Option<&PeerError>) {
        self.peer_call_duration.get_or_create(&CallLabels { call: call.as_str() }).observe(elapsed.as_secs_f64());
        if let Some(e) = failure {
            self.peer_call_failed(call, e.kind());
        }
    }

    /// A call to the peer failed for `reason` (a [`PeerError::kind`]) after it was timed.
    pub fn peer_call_failed(&self, call: PeerCall, reason: &'static str) {
        self.peer_call_failures.get_or_create(&CallFailureLabels { call: call.as_str(), reason }).inc();
    }

    /// A request was turned away by `limit`.
    pub fn rate_limited(&self, limit: LimitKind) {
        self.rate_limit_refusals.get_or_create(&LimitLabels { limit: limit.as_str() }).inc();
    }

    /// Every family in the Prometheus text format, [`prometheus_text::CONTENT_TYPE`].
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(16 * 1024);
        prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// The route label: the pattern that matched (`/register/{client_id}`), or
/// [`UNMATCHED`]; never the path, which the client chooses.
fn route(req: &HttpRequest) -> Cow<'static, str> {
    // The hot protocol endpoints are fixed paths: their own static text, no allocation.
    if let Some(path) = crate::server::PROTOCOL_PATHS.iter().find(|p| **p == req.path()) {
        return Cow::Borrowed(path);
    }
    req.match_pattern().map_or(Cow::Borrowed(UNMATCHED), Cow::Owned)
}

/// The method label: the standard methods by name, anything else `other`
/// (a client may send any token as a method).
fn method(m: &Method) -> &'static str {
    const KNOWN: [&str; 7] = ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"];
    KNOWN.iter().find(|k| **k == m.as_str()).copied().unwrap_or("other")
}

/// Who may read the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Granted,
    /// A token is configured and the request carries none: 401.
    TokenMissing,
    /// A token is configured and the request carries another: 401.
    TokenWrong,
    /// No token is configured and the client is not on this host: 403.
    NotLoopback,
}

/// The access rule: with `configured`, the bearer token must be it, whoever
/// asks; without, the client that reached this party directly
/// (`direct_client`) must be loopback. No such client: refused.
pub fn access(configured: Option<&MetricsToken>, bearer: Option<&str>, client: Option<IpAddr>) -> Access {
    match (configured, bearer) {
        (Some(token), Some(presented)) => {
            // Digests have one length, so the comparison tells nothing of the token's.
            match token.matches_digest(&digest(presented)) {
                true => Access::Granted,
                false => Access::TokenWrong,
            }
        }
        (Some(_), None) => Access::TokenMissing,
        (None, _) if client.is_some_and(is_loopback) => Access::Granted,
        (None, _) => Access::NotLoopback,
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

/// The socket's address, for a request that came straight to this party.
/// One that names a forwarded client came through a proxy, whose own
/// (perhaps loopback) address says nothing of who is asking: none.
fn direct_client(req: &HttpRequest) -> Option<IpAddr> {
    const FORWARDING: [&str; 3] = ["x-forwarded-for", "forwarded", "x-real-ip"];
    if FORWARDING.iter().any(|name| req.headers().contains_key(*name)) {
        return None;
    }
    req.peer_addr().map(|a| a.ip())
}

/// `GET /metrics`: the text format to those [`access`] admits; a short
/// plain-text refusal saying what to do to everyone else.
pub async fn endpoint(req: HttpRequest, app: web::Data<AppState>) -> HttpResponse {
    let configured = app.config.metrics_token.as_ref();
    let refusal = |status: StatusCode, challenge: Option<&'static str>, body: &'static str| {
        let mut res = HttpResponse::build(status);
        res.insert_header((header::CACHE_CONTROL, "no-store")).content_type("text/plain; charset=utf-8");
        if let Some(c) = challenge {
            res.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static(c)));
        }
        res.body(body)
    };
    match access(configured, bearer_token(&req), direct_client(&req)) {
        Access::Granted => {}
        Access::TokenMissing => {
            return refusal(
                StatusCode::UNAUTHORIZED,
                Some(r#"Bearer realm="metrics""#),
                "Send the token set by --metrics-token as Authorization: Bearer <token>.\n",
            )
        }
        Access::TokenWrong => {
            return refusal(
                StatusCode::UNAUTHORIZED,
                Some(r#"Bearer realm="metrics", error="invalid_token""#),
                "That is not the token set by --metrics-token.\n",
            )
        }
        Access::NotLoopback => {
            return refusal(
                StatusCode::FORBIDDEN,
                None,
                "Metrics are served to this host only: scrape from loopback, or start the party with \
                 --metrics-token and send it as Authorization: Bearer <token>.\n",
            )
        }
    }
    match app.metrics.render() {
        Ok(text) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(text),
        Err(e) => {
            tracing::error!(error = %e, "metrics could not be rendered");
            refusal(StatusCode::INTERNAL_SERVER_ERROR, None, "The metrics could not be rendered.\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::test_support::unit::{form, send, service, state, state_with};
    use actix_web::test::TestRequest;
    use actix_web::web::Data;

    /// The value of the sample `name{labels}` in `text`, when present.
    fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
        let series = format!("{name}{{{labels}}} ");
        text.lines().find_map(|l| l.strip_prefix(&series)).and_then(|v| v.parse().ok())
    }

    fn loopback() -> std::net::SocketAddr {
        "127.0.0.1:50000".parse().unwrap()
    }

    #[test]
    fn counted_families_render_with_their_labels() {
        let m = Metrics::new();
        m.token_issued(GrantType::AuthorizationCode);
        m.token_issued(GrantType::AuthorizationCode);
        m.link_outcome(Leg::F, LinkOutcome::Ok);
        m.peer_call(PeerCall::Reciprocal, Duration::from_millis(30), None);
        m.peer_call(PeerCall::Code, Duration::from_millis(5), Some(&PeerError::Unreachable("down".into())));
        m.rate_limited(LimitKind::SignIn);
        let text = m.render().unwrap();
        assert_eq!(sample(&text, "oauth_tokens_issued_total", r#"grant_type="authorization_code""#), Some(2.0));
        assert_eq!(sample(&text, "oauth_tokens_issued_total", r#"grant_type="refresh_token""#), Some(0.0));
        assert_eq!(sample(&text, "link_outcomes_total", r#"leg="F",outcome="ok""#), Some(1.0));
        assert_eq!(sample(&text, "peer_call_duration_seconds_count", r#"call="reciprocal""#), Some(1.0));
        assert_eq!(sample(&text, "peer_call_duration_seconds_bucket", r#"call="reciprocal",le="0.05""#), Some(1.0));
        assert_eq!(sample(&text, "peer_call_duration_seconds_bucket", r#"call="reciprocal",le="0.025""#), Some(0.0));
        assert_eq!(sample(&text, "peer_call_failures_total", r#"call="code",reason="unreachable""#), Some(1.0));
        assert_eq!(sample(&text, "rate_limit_refusals_total", r#"limit="sign_in""#), Some(1.0));
        assert_eq!(sample(&text, "rate_limit_refusals_total", r#"limit="registration""#), Some(0.0));
        assert!(text.contains("# TYPE peer_call_duration_seconds histogram"), "{text}");
        assert!(!text.contains("http_requests_total"), "a family without series is left out: {text}");
    }

    #[test]
    fn the_access_rule() {
        let token = MetricsToken::new("a-long-enough-metrics-token");
        let (home, away): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "203.0.113.7".parse().unwrap());
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(access(None, None, Some(home)), Access::Granted);
        assert_eq!(access(None, None, Some("::1".parse().unwrap())), Access::Granted);
        assert_eq!(access(None, None, Some(mapped)), Access::Granted);
        assert_eq!(access(None, None, Some(away)), Access::NotLoopback);
        assert_eq!(access(None, Some("anything"), Some(away)), Access::NotLoopback, "no token is configured");
        assert_eq!(access(None, None, None), Access::NotLoopback, "an unknown address is not loopback");
        assert_eq!(access(Some(&token), None, Some(home)), Access::TokenMissing, "loopback needs it too");
        assert_eq!(access(Some(&token), Some("a-long-enough-metrics-tokeN"), Some(home)), Access::TokenWrong);
        assert_eq!(access(Some(&token), Some("a-long-enough-metrics-token"), Some(away)), Access::Granted);
    }

    #[test]
    fn only_a_request_straight_from_this_host_is_local() {
        use actix_web::test::TestRequest;
        let local = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(direct_client(&TestRequest::default().peer_addr(local).to_http_request()), Some(local.ip()));
        for (name, value) in [
            ("X-Forwarded-For", "127.0.0.1"),
            ("x-forwarded-for", "203.0.113.7:5555"),
            ("Forwarded", "for=127.0.0.1"),
            ("X-Real-IP", "unknown"),
        ] {
            let req = TestRequest::default().peer_addr(local).insert_header((name, value)).to_http_request();
            assert_eq!(direct_client(&req), None, "{name}: {value}");
        }
        assert_eq!(direct_client(&TestRequest::default().to_http_request()), None, "no socket address");
    }

    #[actix_web::test]
    async fn labels_come_from_this_code_never_from_the_request() {
        let app = Data::new(state(ManualClock::new(1_000)).await);
        let svc = service(&app).await;
        let evil = "grant_type=evil-grant-9f2c&client_id=peer&client_secret=s";
        assert_eq!(send(&svc, form("/token", None, evil)).await.status, 400);
        let bogus = "grant_type=authorization_code&code=nope&client_id=peer&client_secret=s";
        assert_eq!(send(&svc, form("/token", None, bogus)).await.status, 400);
        let good = "grant_type=client_credentials&client_id=peer&client_secret=s";
        assert_eq!(send(&svc, form("/token", None, good)).await.status, 200);
        assert_eq!(send(&svc, TestRequest::get().uri("/no-such-page-7d1e")).await.status, 404);
        assert_eq!(send(&svc, TestRequest::put().uri("/token")).await.status, 405);
        let res = send(&svc, TestRequest::get().uri(PATH).peer_addr(loopback())).await;
        assert_eq!(res.status, 200, "{}", res.body);
        assert_eq!(res.header("content-type"), Some(prometheus_text::CONTENT_TYPE));
        assert_eq!(res.header("cache-control"), Some("no-store"));
        let text = res.body;
        assert!(!text.contains("evil-grant") && !text.contains("no-such-page"), "{text}");
        assert_eq!(sample(&text, "oauth_errors_total", r#"error="unsupported_grant_type""#), Some(1.0));
        assert_eq!(sample(&text, "oauth_errors_total", r#"error="invalid_grant""#), Some(1.0));
        assert_eq!(sample(&text, "oauth_tokens_issued_total", r#"grant_type="client_credentials""#), Some(1.0));
        let token_ok = r#"route="/token",method="POST",status="200""#;
        assert_eq!(sample(&text, "http_requests_total", token_ok), Some(1.0));
        assert_eq!(sample(&text, "http_requests_total", r#"route="/token",method="PUT",status="405""#), Some(1.0));
        assert_eq!(sample(&text, "http_requests_total", r#"route="unmatched",method="GET",status="404""#), Some(1.0));
        assert_eq!(sample(&text, "http_request_duration_seconds_count", r#"route="/token",method="POST""#), Some(3.0));
    }

    #[actix_web::test]
    async fn only_loopback_reads_the_metrics_without_a_token() {
        let app = Data::new(state(ManualClock::new(1_000)).await);
        let svc = service(&app).await;
        let away = send(&svc, TestRequest::get().uri(PATH).peer_addr("203.0.113.7:40000".parse().unwrap())).await;
        assert_eq!(away.status, 403);
        assert!(away.body.contains("--metrics-token"), "{}", away.body);
        assert_eq!(send(&svc, TestRequest::get().uri(PATH)).await.status, 403, "no address, no metrics");
        // A request that came through a proxy is not this host's, whatever the proxy wrote.
        let proxied = TestRequest::get().uri(PATH).peer_addr(loopback()).insert_header(("x-forwarded-for", "1.2.3.4"));
        assert_eq!(send(&svc, proxied).await.status, 403);
        assert_eq!(send(&svc, TestRequest::get().uri(PATH).peer_addr(loopback())).await.status, 200);
    }

    #[actix_web::test]
    async fn with_a_token_everyone_needs_it() {
        let token = "s3cret-metrics-token-for-tests";
        let app = Data::new(state_with(ManualClock::new(1_000), &["--metrics-token", token]).await);
        let svc = service(&app).await;
        let missing = send(&svc, TestRequest::get().uri(PATH).peer_addr(loopback())).await;
        assert_eq!(missing.status, 401);
        assert_eq!(missing.header("www-authenticate"), Some(r#"Bearer realm="metrics""#));
        let wrong = TestRequest::get().uri(PATH).peer_addr(loopback()).insert_header(("authorization", "Bearer nope"));
        let wrong = send(&svc, wrong).await;
        assert_eq!(wrong.status, 401);
        assert!(wrong.header("www-authenticate").is_some_and(|c| c.contains("invalid_token")));
        let right = TestRequest::get()
            .uri(PATH)
            .peer_addr("203.0.113.7:40000".parse().unwrap())
            .insert_header(("authorization", format!("Bearer {token}")));
        let right = send(&svc, right).await;
        assert_eq!(right.status, 200);
        assert!(right.body.contains("# TYPE http_requests_total counter"), "{}", right.body);
    }
}
