//! Rate limits on the paths anyone may call without credentials (RFC 9700
//! 4.x asks servers to slow guessing down; RFC 6585 4 gives `429` and
//! `Retry-After`). Every limit is kept per client address and globally, with
//! [`governor`]'s GCRA on the party's own clock, so tests move time by hand.
//!
//! The state is per instance and in memory: with N instances behind a load
//! balancer a client gets up to N times its per-address allowance, and the
//! global ceilings add up the same way.

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::HeaderMap;
use actix_web::http::Method;
use actix_web::HttpRequest;
use dashmap::DashMap;
use governor::clock::Clock as _;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{NotUntil, Quota, RateLimiter};

use crate::clock::Clock;
use crate::error::Busy;
use crate::text_enum::text_enum;

text_enum! {
    /// Each way a request is turned away for asking too often, as
    /// `rate_limit_refusals_total` labels it.
    pub enum LimitKind {
        /// `--rate-sign-in`: sign-in and sign-up attempts.
        SignIn = "sign_in",
        /// `--rate-device-authorization`.
        DeviceAuthorization = "device_authorization",
        /// `--rate-user-code`: user codes typed at `/device`.
        UserCode = "user_code",
        /// `--rate-registration`: dynamic client registrations.
        Registration = "registration",
        /// `--rate-client-auth-failures`: a client address that failed authentication too often.
        ClientAuthFailures = "client_auth_failures",
        /// `--device-pending-per-address`: too many device requests waiting.
        DevicePendingPerAddress = "device_pending_per_address",
        /// The per-account back-off after wrong passwords.
        SignInBackoff = "sign_in_backoff",
        /// The per-account back-off after wrong user codes.
        UserCodeBackoff = "user_code_backoff",
    }
}

/// A rate as the flags write it: `20/min` is a burst of 20, refilled evenly
/// over a minute (one more every 3 seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: NonZeroU32,
    pub per: Duration,
}

impl FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (n, unit) = s.split_once('/').ok_or("write a rate as N/s, N/min or N/h")?;
        let count = n.trim().parse::<NonZeroU32>().map_err(|_| "the count must be a whole number above 0")?;
        let seconds = match unit.trim() {
            "s" => 1,
            "min" => 60,
            "h" => 3600,
            _ => return Err("the unit must be s, min or h".into()),
        };
        Ok(Self { count, per: Duration::from_secs(seconds) })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "min",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

impl Rate {
    fn quota(self) -> Quota {
        Quota::with_period(self.per / self.count.get())
            .map_or(Quota::per_second(self.count), |q| q.allow_burst(self.count))
    }
}

/// The party's [`Clock`] as governor reads it.
#[derive(Clone)]
pub struct LimitClock(pub Arc<dyn Clock>);

impl governor::clock::Clock for LimitClock {
    type Instant = Duration;
    fn now(&self) -> Duration {
        self.0.precise()
    }
}

/// Who is asking, as the limits count: an IPv4 address, or an IPv6 /64 (one
/// site's usual allocation, so nobody multiplies themselves by their prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    V4(u32),
    V6(u64),
    /// No socket address (in-process tests).
    Unknown,
}

impl ClientKey {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(v4.into()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4.into()),
                None => Self::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::V4(a) => write!(f, "{}", std::net::Ipv4Addr::from(a)),
            Self::V6(prefix) => write!(f, "{}/64", std::net::Ipv6Addr::from(u128::from(prefix) << 64)),
            Self::Unknown => f.write_str("unknown"),
        }
    }
}

/// The client's address: the socket's or, when the socket is one of the
/// `trusted` proxies, the nearest `X-Forwarded-For` hop that is not a trusted
/// proxy (proxies append; what lies left of that hop the client wrote itself).
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for hop in hops.iter().rev() {
        // Some proxies append the client's port too ("203.0.113.7:5555", "[2001:db8::1]:443").
        let address = hop.parse::<IpAddr>().or_else(|_| hop.parse::<std::net::SocketAddr>().map(|a| a.ip()));
        match address {
            Ok(ip) if trusted.contains(&ip) => continue,
            Ok(ip) => return Some(ip),
            // A hop that is not an address: count the proxy that sent it.
            Err(_) => return Some(peer),
        }
    }
    Some(peer)
}

type Keyed = RateLimiter<ClientKey, DashMapStateStore<ClientKey>, LimitClock, NoOpMiddleware<Duration>>;
type Direct = RateLimiter<NotKeyed, InMemoryState, LimitClock, NoOpMiddleware<Duration>>;

/// One limit: a rate per client address and a ceiling for everyone together.
pub struct Limit {
    per_client: Keyed,
    global: Direct,
    clock: LimitClock,
}

impl Limit {
    /// Client addresses remembered at once. Past it, new addresses meet the
    /// global ceiling only until housekeeping forgets idle ones: memory stays
    /// bounded however many addresses an attacker has.
    const MAX_CLIENTS: usize = 65_536;

    pub fn new(per_client: Rate, global: Rate, clock: LimitClock) -> Self {
        Self {
            per_client: RateLimiter::dashmap_with_clock(per_client.quota(), clock.clone()),
            global: RateLimiter::direct_with_clock(global.quota(), clock.clone()),
            clock,
        }
    }

    /// Counts one request of `client`; `Err` says how long to wait.
    pub fn check(&self, client: ClientKey) -> Result<(), Busy> {
        if self.per_client.len() < Self::MAX_CLIENTS {
            self.per_client.check_key(&client).map_err(|n| self.busy(&n))?;
        }
        self.global.check().map_err(|n| self.busy(&n))
    }

    fn busy(&self, not_until: &NotUntil<Duration>) -> Busy {
        let wait = not_until.wait_time_from(self.clock.now());
        Busy::TooMany { retry_after: wait.as_secs_f64().ceil() as u64 }
    }

    /// Forgets clients whose allowance is full again.
    fn housekeeping(&self) {
        self.per_client.retain_recent();
        self.per_client.shrink_to_fit();
    }
}

/// A limit on failures only (client authentication): a client that fails
/// too often is turned away before any work, even with the right
/// credentials, until its allowance refills; clients that authenticate are
/// never counted, so the token endpoint's hot path costs one map lookup.
pub struct FailureLimit {
    limit: Limit,
    /// Clients over their allowance, and until when.
    blocked: DashMap<ClientKey, Duration>,
}

impl FailureLimit {
    pub fn new(per_client: Rate, global: Rate, clock: LimitClock) -> Self {
        Self { limit: Limit::new(per_client, global, clock), blocked: DashMap::new() }
    }

    /// `Err` while `client` is turned away.
    pub fn admit(&self, client: ClientKey) -> Result<(), Busy> {
        let Some(until) = self.blocked.get(&client).map(|u| *u) else {
            return Ok(());
        };
        let now = self.limit.clock.now();
        if until > now {
            return Err(Busy::TooMany { retry_after: (until - now).as_secs_f64().ceil() as u64 });
        }
        self.blocked.remove(&client);
        Ok(())
    }

    /// Counts a failure; `Err` when it was one too many.
    pub fn failed(&self, client: ClientKey) -> Result<(), Busy> {
        if let Err(not_until) = self.limit.per_client.check_key(&client) {
            self.blocked.insert(client, not_until.earliest_possible());
            return Err(self.limit.busy(&not_until));
        }
        self.limit.global.check().map_err(|n| self.limit.busy(&n))
    }

    fn housekeeping(&self) {
        self.limit.housekeeping();
        let now = self.limit.clock.now();
        self.blocked.retain(|_, until| *until > now);
    }
}

/// The rates of every limit, from the flags.
#[derive(Debug, Clone)]
pub struct LimitRates {
    pub sign_in: (Rate, Rate),
    pub device_authorization: (Rate, Rate),
    pub user_code: (Rate, Rate),
    pub client_auth_failures: (Rate, Rate),
    pub registration: (Rate, Rate),
    pub trusted_proxies: Vec<IpAddr>,
}

/// Every rate limit of a party.
pub struct Limits {
    /// `POST /login` and `POST /signup`: each costs a password hash.
    pub sign_in: Limit,
    /// `POST /device_authorization`: public clients, so anyone.
    pub device_authorization: Limit,
    /// `/device` with a user code: guessing codes.
    pub user_code: Limit,
    /// `POST /register`: dynamic client registration (RFC 7591), open to anyone.
    pub registration: Limit,
    /// Failed client authentication at `/token`, `/revoke`, `/introspect`, `/device_authorization`.
    pub client_auth: FailureLimit,
    trusted_proxies: Vec<IpAddr>,
}

impl Limits {
    pub fn new(rates: &LimitRates, clock: Arc<dyn Clock>) -> Self {
        let clock = LimitClock(clock);
        let limit = |(per, all): (Rate, Rate)| Limit::new(per, all, clock.clone());
        Self {
            sign_in: limit(rates.sign_in),
            device_authorization: limit(rates.device_authorization),
            user_code: limit(rates.user_code),
            registration: limit(rates.registration),
            client_auth: FailureLimit::new(rates.client_auth_failures.0, rates.client_auth_failures.1, clock.clone()),
            trusted_proxies: rates.trusted_proxies.clone(),
        }
    }

    /// The client of `req`, as the limits count it.
    pub fn client(&self, req: &HttpRequest) -> ClientKey {
        client_ip(req.peer_addr().map(|a| a.ip()), req.headers(), &self.trusted_proxies)
            .map_or(ClientKey::Unknown, ClientKey::of)
    }

    /// The limit a request counts against, if any: every request that costs
    /// a password hash, a device request, a user-code lookup or a registration.
    pub(crate) fn for_request(&self, method: &Method, path: &str, query: &str) -> Option<(LimitKind, &Limit)> {
        match (path, method == Method::POST) {
            ("/login" | "/signup", true) => Some((LimitKind::SignIn, &self.sign_in)),
            ("/device_authorization", true) => Some((LimitKind::DeviceAuthorization, &self.device_authorization)),
            ("/register", true) => Some((LimitKind::Registration, &self.registration)),
            ("/device", true) => Some((LimitKind::UserCode, &self.user_code)),
            ("/device", false) if query.contains("user_code=") => Some((LimitKind::UserCode, &self.user_code)),
            _ => None,
        }
    }

    /// Forgets what no longer matters (run every few seconds).
    pub fn housekeeping(&self) {
        self.sign_in.housekeeping();
        self.device_authorization.housekeeping();
        self.user_code.housekeeping();
        self.registration.housekeeping();
        self.client_auth.housekeeping();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn rate(s: &str) -> Rate {
        s.parse().unwrap()
    }

    #[test]
    fn rates_read_as_written() {
        assert_eq!(rate("20/min"), Rate { count: NonZeroU32::new(20).unwrap(), per: Duration::from_secs(60) });
        assert_eq!(rate("5/s").to_string(), "5/s");
        for bad in ["0/min", "20", "20/day", "x/s"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_client_over_its_rate_waits_and_others_do_not() {
        let clock = ManualClock::new(1_000);
        let limit = Limit::new(rate("3/min"), rate("100/s"), LimitClock(Arc::new(clock.clone())));
        let (a, b) = (ClientKey::V4(1), ClientKey::V4(2));
        for _ in 0..3 {
            limit.check(a).unwrap();
        }
        let Busy::TooMany { retry_after } = limit.check(a).unwrap_err() else { panic!("429, not 503") };
        assert_eq!(retry_after, 20, "one more every 20 s");
        limit.check(b).expect("another address has its own allowance");
        clock.advance(20);
        limit.check(a).expect("the allowance refills");
        assert!(limit.check(a).is_err());
    }

    #[test]
    fn the_global_ceiling_holds_across_addresses() {
        let clock = ManualClock::new(1_000);
        let limit = Limit::new(rate("10/min"), rate("2/s"), LimitClock(Arc::new(clock.clone())));
        limit.check(ClientKey::V4(1)).unwrap();
        limit.check(ClientKey::V4(2)).unwrap();
        assert!(limit.check(ClientKey::V4(3)).is_err());
        clock.advance(1);
        limit.check(ClientKey::V4(3)).unwrap();
    }

    #[test]
    fn failures_block_a_client_until_its_allowance_refills() {
        let clock = ManualClock::new(1_000);
        let limit = FailureLimit::new(rate("2/min"), rate("100/s"), LimitClock(Arc::new(clock.clone())));
        let a = ClientKey::V4(1);
        limit.admit(a).unwrap();
        limit.failed(a).unwrap();
        limit.failed(a).unwrap();
        assert_eq!(limit.failed(a), Err(Busy::TooMany { retry_after: 30 }));
        assert_eq!(limit.admit(a), Err(Busy::TooMany { retry_after: 30 }), "turned away before any work");
        limit.admit(ClientKey::V4(2)).expect("others are not");
        clock.advance(30);
        limit.admit(a).expect("admitted again");
        limit.housekeeping();
        assert!(limit.blocked.is_empty());
    }

    #[test]
    fn idle_clients_are_forgotten() {
        let clock = ManualClock::new(1_000);
        let limits = Limits::new(
            &LimitRates {
                sign_in: (rate("2/min"), rate("100/s")),
                device_authorization: (rate("2/min"), rate("100/s")),
                user_code: (rate("2/min"), rate("100/s")),
                client_auth_failures: (rate("2/min"), rate("100/s")),
                registration: (rate("2/min"), rate("100/s")),
                trusted_proxies: vec![],
            },
            Arc::new(clock.clone()),
        );
        for i in 0..100 {
            limits.sign_in.check(ClientKey::V4(i)).unwrap();
        }
        assert_eq!(limits.sign_in.per_client.len(), 100);
        clock.advance(60);
        limits.housekeeping();
        assert_eq!(limits.sign_in.per_client.len(), 0);
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(HeaderName::from_static("x-forwarded-for"), HeaderValue::from_static("6.6.6.6, 1.2.3.4"));
        let client = "1.2.3.4".parse().ok();
        assert_eq!(client_ip(Some(proxy), &headers, &[proxy]), client, "the hop the proxy saw");
        assert_eq!(client_ip(Some(proxy), &headers, &[]), Some(proxy), "an untrusted socket is the client");
        let other: IpAddr = "9.9.9.9".parse().unwrap();
        assert_eq!(client_ip(Some(other), &headers, &[proxy]), Some(other), "anyone can write the header");
        headers.insert(HeaderName::from_static("x-forwarded-for"), HeaderValue::from_static("1.2.3.4, 10.0.0.1"));
        assert_eq!(client_ip(Some(proxy), &headers, &[proxy]), client, "chained trusted proxies are skipped");
        headers.insert(HeaderName::from_static("x-forwarded-for"), HeaderValue::from_static("1.2.3.4:5555"));
        assert_eq!(client_ip(Some(proxy), &headers, &[proxy]), client, "a hop with its port");
        headers.insert(HeaderName::from_static("x-forwarded-for"), HeaderValue::from_static("[2001:db8::1]:443"));
        assert_eq!(client_ip(Some(proxy), &headers, &[proxy]), "2001:db8::1".parse().ok(), "an IPv6 hop with its port");
        headers.insert(HeaderName::from_static("x-forwarded-for"), HeaderValue::from_static("unknown"));
        assert_eq!(client_ip(Some(proxy), &headers, &[proxy]), Some(proxy), "no address: the proxy counts");
    }

    #[test]
    fn an_ipv6_site_is_one_client() {
        let a = ClientKey::of("2001:db8:1:2::1".parse().unwrap());
        let b = ClientKey::of("2001:db8:1:2:ffff::9".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, ClientKey::of("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(ClientKey::of("::ffff:1.2.3.4".parse().unwrap()), ClientKey::of("1.2.3.4".parse().unwrap()));
    }
}

/// The limits as a client meets them: through the whole application.
#[cfg(test)]
mod app_tests {
    use actix_web::test::TestRequest;
    use actix_web::web::Data;

    use crate::clock::ManualClock;
    use crate::test_support::unit::{csrf_of, form, send, service, state_with, user};

    #[actix_web::test]
    async fn sign_ins_over_the_rate_get_429_with_retry_after_until_it_refills() {
        let clock = ManualClock::new(1_000);
        let app = Data::new(state_with(clock.clone(), &["--rate-sign-in", "2/min"]).await);
        user(&app, "alice", "wonderland").await;
        let svc = service(&app).await;
        let page = send(&svc, TestRequest::get().uri("/login")).await;
        let (cookie, csrf) = (page.cookie.unwrap(), csrf_of(&page.body));
        let attempt = format!("csrf_token={csrf}&username=alice&password=wrong-password");

        for _ in 0..2 {
            assert_eq!(send(&svc, form("/login", Some(&cookie), &attempt)).await.status, 401);
        }
        let limited = send(&svc, form("/login", Some(&cookie), &attempt)).await;
        assert_eq!(limited.status, 429);
        assert_eq!(limited.header("retry-after"), Some("30"));
        assert!(limited.body.contains(r#"data-page="error""#), "the error page: {}", limited.body);
        assert!(limited.body.contains("wait 30 seconds"), "{}", limited.body);
        let signup = send(&svc, form("/signup", Some(&cookie), &format!("csrf_token={csrf}"))).await;
        assert_eq!(signup.status, 429, "sign-up shares the allowance: each costs a hash");

        clock.advance(30);
        let ok = format!("csrf_token={csrf}&username=alice&password=wonderland");
        assert_eq!(send(&svc, form("/login", Some(&cookie), &ok)).await.status, 303, "the allowance refilled");
    }

    #[actix_web::test]
    async fn protocol_endpoints_answer_429_in_rfc_6749_json() {
        let clock = ManualClock::new(1_000);
        let flags = ["--rate-device-authorization", "1/min", "--rate-client-auth-failures", "3/min"];
        let app = Data::new(state_with(clock.clone(), &flags).await);
        let svc = service(&app).await;

        let ask = || form("/device_authorization", None, "client_id=nobody");
        assert_eq!(send(&svc, ask()).await.status, 401, "counted before the client is even known");
        let limited = send(&svc, ask()).await;
        assert_eq!((limited.status, limited.header("retry-after")), (429, Some("60")));
        let body: serde_json::Value = serde_json::from_str(&limited.body).unwrap();
        assert_eq!(body["error"], "temporarily_unavailable");
        assert!(body["error_description"].as_str().unwrap().contains("60 seconds"));

        let bad_secret = || form("/token", None, "grant_type=client_credentials&client_id=peer&client_secret=wrong");
        assert_eq!(send(&svc, bad_secret()).await.status, 401, "the second failure (the device's was the first)");
        assert_eq!(send(&svc, bad_secret()).await.status, 401);
        let limited = send(&svc, bad_secret()).await;
        assert_eq!(limited.status, 429, "{}", limited.body);
        let good = form("/token", None, "grant_type=client_credentials&client_id=peer&client_secret=s");
        assert_eq!(send(&svc, good).await.status, 429, "turned away before any check, even with the right secret");
        for path in ["/revoke", "/introspect"] {
            let res = send(&svc, form(path, None, "token=x&client_id=peer&client_secret=wrong")).await;
            assert_eq!(res.status, 429, "{path} shares the failure allowance");
        }
        clock.advance(20);
        let good = form("/token", None, "grant_type=client_credentials&client_id=peer&client_secret=s");
        assert_eq!(send(&svc, good).await.status, 200, "admitted again");
    }
}
