//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document):
//! a client whose `client_id` is an `https` URL needs no registration; this
//! server fetches that URL and reads the client's metadata there.
//!
//! The fetch is the dangerous part, since anyone can name any URL: it
//! follows no redirect, takes at most 5 s and 5 KiB, and connects only to
//! public addresses (the resolver drops loopback, private, link-local and
//! other special ranges, so a name cannot be re-pointed between check and
//! connect) unless `--insecure-client-metadata`, for tests and development,
//! which also allows `http`. The fetches are bounded per instance and shared
//! per requesting address, so a slow or greedy requester holds up only
//! itself (see `Shares`). Documents are cached per their `Cache-Control`
//! within 1 minute and 1 day; failures for 30 s. The cache is per instance:
//! each instance fetches on its own, which is safe, since a document is the
//! client's own public statement.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

use super::client_auth::Client;
use super::register::{check, Metadata};
use crate::clock::Clock;
use crate::error::OAuthError;
use crate::locks;
use crate::state::AppState;
use crate::store::{ClientRecord, StoreResult};
use crate::web::limits::ClientKey;

const MAX_DOCUMENT: usize = 5 * 1024;
const MAX_URL: usize = 512;
const FAILURE_TTL: i64 = 30;
const DEFAULT_TTL: i64 = 300;
const TTL_RANGE: (i64, i64) = (60, 86_400);
const CAPACITY: usize = 1_000;

/// Whether `client_id` names a metadata document: an `https` URL with a
/// path and no fragment (`http` too, when insecure).
pub fn is_document_url(client_id: &str, insecure: bool) -> bool {
    client_id.len() <= MAX_URL
        && Url::parse(client_id).is_ok_and(|u| {
            let scheme_ok = u.scheme() == "https" || (insecure && u.scheme() == "http");
            scheme_ok && u.host().is_some() && u.path() != "/" && u.fragment().is_none() && u.username().is_empty()
        })
}

/// A fetched document's client (`None`: the fetch failed), and until when it stands.
type Cached = (Option<Arc<Client>>, i64);

/// Documents fetched, or failed, by URL.
pub struct ClientDocuments {
    http: reqwest::Client,
    insecure: bool,
    cache: Mutex<HashMap<String, Cached>>,
    /// Fetches at once: anyone can name a URL at `/authorize`, signed in or not.
    in_flight: tokio::sync::Semaphore,
    /// Who may start a fetch now.
    shares: Mutex<Shares>,
}

const MAX_IN_FLIGHT: usize = 16;
/// Fetches started a minute, by everyone together.
const FETCHES_PER_MINUTE: u32 = 120;
/// Fetches one requester may have in flight: a slow URL holds up its own requester only.
const IN_FLIGHT_PER_REQUESTER: u32 = 2;
/// Seconds of fetching one requester may use a minute (each fetch costs at
/// least one, and one more for every further second it takes): an eighth
/// of the minute's fetches, so no requester spends them all.
const SECONDS_PER_REQUESTER: i64 = FETCHES_PER_MINUTE as i64 / 8;

/// The fetch budget of the current minute, overall and per requester (the
/// client address as the rate limits see it).
#[derive(Default)]
struct Shares {
    minute: i64,
    fetches: u32,
    /// Requesters that fetched this minute or still are: at most
    /// [`FETCHES_PER_MINUTE`] plus those in flight.
    requesters: HashMap<ClientKey, Share>,
}

#[derive(Default)]
struct Share {
    in_flight: u32,
    /// Fetch-seconds used this minute.
    seconds: i64,
}

impl Shares {
    fn roll(&mut self, now: i64) {
        let minute = now.div_euclid(60);
        if self.minute != minute {
            self.minute = minute;
            self.fetches = 0;
            self.requesters.retain(|_, share| share.in_flight > 0);
            self.requesters.values_mut().for_each(|share| share.seconds = 0);
        }
    }

    /// Starts a fetch for `requester` at `now`, if the minute's budget, its
    /// share of it and its fetches in flight allow.
    fn start(&mut self, requester: ClientKey, now: i64) -> bool {
        self.roll(now);
        let share = self.requesters.get(&requester);
        let busy = share.is_some_and(|s| s.in_flight >= IN_FLIGHT_PER_REQUESTER || s.seconds >= SECONDS_PER_REQUESTER);
        if busy || self.fetches >= FETCHES_PER_MINUTE {
            return false;
        }
        self.fetches += 1;
        let share = self.requesters.entry(requester).or_default();
        share.in_flight += 1;
        share.seconds += 1;
        true
    }

    /// Ends a fetch started at `started`: every second past the first it took is charged.
    fn finish(&mut self, requester: ClientKey, started: i64, now: i64) {
        self.roll(now);
        if let Some(share) = self.requesters.get_mut(&requester) {
            share.in_flight = share.in_flight.saturating_sub(1);
            share.seconds += (now - started - 1).max(0);
        }
    }
}

/// A started fetch; ends it when dropped, so a request abandoned mid-fetch frees its slot too.
struct Fetching<'a> {
    shares: &'a Mutex<Shares>,
    clock: &'a dyn Clock,
    requester: ClientKey,
    started: i64,
}

impl Drop for Fetching<'_> {
    fn drop(&mut self) {
        let now = self.clock.now();
        locks::lock(self.shares).finish(self.requester, self.started, now);
    }
}

impl ClientDocuments {
    #[allow(clippy::expect_used, reason = "the builder fails only if rustls cannot start, at start-up, before serving")]
    pub fn new(insecure: bool) -> Self {
        let builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(2))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("reciprocal-oauth/", env!("CARGO_PKG_VERSION")))
            // A proxy would resolve names itself, past the public-only resolver.
            .no_proxy();
        let builder = if insecure { builder } else { builder.dns_resolver(Arc::new(PublicOnly)) };
        Self {
            http: builder.build().expect("HTTP client with rustls"),
            insecure,
            cache: Mutex::default(),
            in_flight: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
            shares: Mutex::default(),
        }
    }

    /// The client `url` describes, fetched or from the cache; `None` when the
    /// document cannot be had or does not describe a client this server
    /// accepts. `requester` is who asks, whose share of the fetches a fetch uses.
    pub async fn get(&self, app: &AppState, url: &str, requester: ClientKey) -> StoreResult<Option<Arc<Client>>> {
        let now = app.now();
        if let Some((client, until)) = locks::lock(&self.cache).get(url) {
            if now < *until {
                return Ok(client.clone());
            }
        }
        // Bounded work for strangers, shared fairly: a few fetches at once, a
        // fixed number a minute, each requester a slice of both; beyond, the
        // client is unknown for now (and nothing is cached).
        let Ok(_permit) = self.in_flight.try_acquire() else { return Ok(None) };
        if !locks::lock(&self.shares).start(requester, now) {
            return Ok(None);
        }
        let fetching = Fetching { shares: &self.shares, clock: app.clock.as_ref(), requester, started: now };
        let fetched = self.fetch(app, url).await;
        drop(fetching);
        let (client, until) = match fetched {
            Ok((record, ttl)) => {
                app.store.upsert_document_client(&record).await?;
                (Some(Arc::new(Client::from(record))), now + ttl)
            }
            Err(why) => {
                tracing::info!(why = %why, "a client metadata document was refused");
                (None, now + FAILURE_TTL)
            }
        };
        let mut cache = locks::lock(&self.cache);
        if cache.len() >= CAPACITY {
            cache.retain(|_, (_, until)| *until > now);
            if cache.len() >= CAPACITY {
                cache.clear();
            }
        }
        cache.insert(url.to_owned(), (client.clone(), until));
        Ok(client)
    }

    async fn fetch(&self, app: &AppState, url: &str) -> Result<(ClientRecord, i64), String> {
        let parsed = Url::parse(url).map_err(|e| e.to_string())?;
        // The resolver sees names only: an address written in the URL is checked here.
        let literal = match parsed.host() {
            Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if !self.insecure && literal.is_some_and(|ip| !is_public(ip)) {
            return Err("the document's address is not public".into());
        }
        let res = self.http.get(url).header("accept", "application/json").send().await.map_err(|e| {
            if e.is_connect() {
                "it could not be reached (or resolves to no public address)".to_owned()
            } else {
                e.without_url().to_string()
            }
        })?;
        if res.status() != reqwest::StatusCode::OK {
            return Err(format!("it answered {}", res.status()));
        }
        let ttl = ttl_of(res.headers().get(reqwest::header::CACHE_CONTROL).and_then(|v| v.to_str().ok()));
        let body = read_capped(res).await?;
        let metadata: Metadata = serde_json::from_slice(&body).map_err(|e| format!("not client metadata: {e}"))?;
        // The document must name itself, or anyone could vouch for anyone.
        if metadata.client_id.as_deref() != Some(url) {
            return Err("its client_id is not its own URL".into());
        }
        let checked = check(&app.config, metadata).map_err(|e: OAuthError| e.to_string())?;
        if !matches!(checked.auth_method, "none" | "private_key_jwt") {
            return Err("a client without registration has no secret to share: none or private_key_jwt".into());
        }
        let record = ClientRecord {
            client_id: url.to_owned(),
            name: checked.name,
            secret_digest: None,
            redirect_uris: checked.redirect_uris.join(" "),
            grant_types: checked.grant_types.iter().copied().map(|g| g.as_str()).collect::<Vec<_>>().join(" "),
            scope: checked.scope.to_string(),
            jwks_uri: None,
            jwks: checked.jwks,
            auth_method: Some(checked.auth_method.to_owned()),
            registration_digest: None,
            registered_at: Some(app.now()),
            last_used_at: Some(app.now()),
        };
        Ok((record, ttl))
    }
}

/// How long a document may be kept (RFC 9111 5.2.2), within bounds.
fn ttl_of(cache_control: Option<&str>) -> i64 {
    let Some(value) = cache_control else { return DEFAULT_TTL };
    let directives: Vec<&str> = value.split(',').map(str::trim).collect();
    if directives.iter().any(|d| d.eq_ignore_ascii_case("no-store") || d.eq_ignore_ascii_case("no-cache")) {
        return TTL_RANGE.0;
    }
    directives
        .iter()
        .find_map(|d| d.strip_prefix("max-age=").and_then(|n| n.parse::<i64>().ok()))
        .unwrap_or(DEFAULT_TTL)
        .clamp(TTL_RANGE.0, TTL_RANGE.1)
}

async fn read_capped(mut res: reqwest::Response) -> Result<Vec<u8>, String> {
    let too_large = || format!("the document is larger than {} KiB", MAX_DOCUMENT / 1024);
    if res.content_length().is_some_and(|n| n > MAX_DOCUMENT as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| e.without_url().to_string())? {
        if body.len() + chunk.len() > MAX_DOCUMENT {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// IPv4 ranges that are not globally reachable, from the IANA IPv4
/// Special-Purpose Address Registry (RFC 6890) and the multicast and
/// reserved blocks: (network, prefix length).
const V4_NOT_PUBLIC: [(Ipv4Addr, u8); 16] = [
    (Ipv4Addr::new(0, 0, 0, 0), 8),          // "this network" (RFC 791)
    (Ipv4Addr::new(10, 0, 0, 0), 8),         // private (RFC 1918)
    (Ipv4Addr::new(100, 64, 0, 0), 10),      // shared address space (RFC 6598)
    (Ipv4Addr::new(127, 0, 0, 0), 8),        // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),     // link-local (RFC 3927)
    (Ipv4Addr::new(172, 16, 0, 0), 12),      // private
    (Ipv4Addr::new(192, 0, 0, 0), 24),       // IETF protocol assignments (RFC 6890)
    (Ipv4Addr::new(192, 0, 2, 0), 24),       // documentation (RFC 5737)
    (Ipv4Addr::new(192, 88, 99, 0), 24),     // 6to4 relay anycast (RFC 7526, deprecated)
    (Ipv4Addr::new(192, 168, 0, 0), 16),     // private
    (Ipv4Addr::new(198, 18, 0, 0), 15),      // benchmarking (RFC 2544)
    (Ipv4Addr::new(198, 51, 100, 0), 24),    // documentation
    (Ipv4Addr::new(203, 0, 113, 0), 24),     // documentation
    (Ipv4Addr::new(224, 0, 0, 0), 4),        // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),        // reserved (RFC 1112), 255.255.255.255 included
    (Ipv4Addr::new(255, 255, 255, 255), 32), // limited broadcast (RFC 919), named for the reader
];

/// Parts of global unicast `2000::/3` that are not globally reachable, from
/// the IANA IPv6 Special-Purpose Address Registry (RFC 6890): (network,
/// prefix length). Everything outside `2000::/3` (loopback, unspecified,
/// `::/96` IPv4-compatible, `::ffff:0:0:0/96` IPv4-translated,
/// `64:ff9b:1::/48` local NAT64, `100::/64` discard, `5f00::/16` SRv6,
/// `fc00::/7` unique local, `fe80::/10` link-local, `ff00::/8` multicast, …)
/// is not public either.
const V6_GLOBAL_NOT_PUBLIC: [(Ipv6Addr, u8); 4] = [
    // IETF protocol assignments (RFC 2928): Teredo 2001::/32 (which reaches
    // an IPv4 address through a relay), benchmarking, ORCHID, AMT, AS112.
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation (RFC 3849)
    (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16),     // 6to4, reaches an IPv4 address (RFC 7526)
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20),     // documentation (RFC 9637)
];

/// The well-known NAT64 prefix `64:ff9b::/96` (RFC 6052 2.1).
const NAT64: (Ipv6Addr, u8) = (Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96);

fn in_v4(ip: Ipv4Addr, (net, len): (Ipv4Addr, u8)) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

fn in_v6(ip: Ipv6Addr, (net, len): (Ipv6Addr, u8)) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

/// An address on the public internet, safe to fetch a stranger's URL from.
/// IPv4 outside every special-purpose range; IPv6 in global unicast
/// `2000::/3` outside its special-purpose parts, or an IPv4-mapped
/// (`::ffff:0:0/96`) or NAT64 (`64:ff9b::/96`) address whose IPv4 address is
/// public, since a connection there reaches that IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !V4_NOT_PUBLIC.iter().any(|range| in_v4(v4, *range)),
        IpAddr::V6(v6) => {
            let embedded = Ipv4Addr::from((u128::from(v6) & 0xffff_ffff) as u32);
            if v6.to_ipv4_mapped().is_some() || in_v6(v6, NAT64) {
                return is_public(IpAddr::V4(embedded));
            }
            v6.segments()[0] & 0xe000 == 0x2000 && !V6_GLOBAL_NOT_PUBLIC.iter().any(|range| in_v6(v6, *range))
        }
    }
}

/// A resolver that answers only public addresses, so the address connected
/// to is the address checked.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err("the name resolves to no public address".into());
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

impl AppState {
    /// The client `client_id` names: a metadata document's (when it is a
    /// URL), else a registered or configured one. `requester` is the client
    /// address asking, which a document fetch is counted against.
    pub async fn client(&self, client_id: &str, requester: ClientKey) -> StoreResult<Option<Arc<Client>>> {
        if is_document_url(client_id, self.config.insecure_client_metadata) {
            return self.client_documents.get(self, client_id, requester).await;
        }
        self.clients.get(&self.store, client_id, self.now()).await
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;
    use crate::clock::ManualClock;
    use crate::test_support::unit::state_with;

    /// A server of metadata documents on loopback: each path is a client naming itself.
    fn document_server() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let base = origin.clone();
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let mut request = [0u8; 2048];
                let n = conn.read(&mut request).unwrap_or(0);
                let head = String::from_utf8_lossy(&request[..n]);
                let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                let doc = serde_json::json!({"client_id": format!("{base}{path}"), "client_name": "Doc",
                    "redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "none"})
                .to_string();
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{doc}",
                    doc.len()
                );
                let _ = conn.write_all(answer.as_bytes());
            }
        });
        origin
    }

    /// A server that accepts and never answers until `release` is sent;
    /// each connection it holds is reported on the returned channel.
    fn stalling_server() -> (String, tokio::sync::mpsc::UnboundedReceiver<()>, std::sync::mpsc::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let (held_tx, held) = tokio::sync::mpsc::unbounded_channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            let mut open = Vec::new();
            listener.set_nonblocking(true).unwrap();
            while released.try_recv().is_err() {
                match listener.accept() {
                    Ok((conn, _)) => {
                        open.push(conn);
                        let _ = held_tx.send(());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        (origin, held, release)
    }

    #[actix_web::test]
    async fn one_address_spending_its_share_of_fetches_leaves_the_others_theirs() {
        let app = state_with(ManualClock::new(6_000), &["--insecure-client-metadata"]).await;
        let (greedy, other) = (ClientKey::V4(1), ClientKey::V4(2));
        // Distinct URLs on a closed port: each one a fetch that fails at once.
        let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        for i in 0..FETCHES_PER_MINUTE {
            let url = format!("http://{closed}/c{i}.json");
            assert!(app.client_documents.get(&app, &url, greedy).await.unwrap().is_none());
        }
        let good = format!("{}/app.json", document_server());
        let client = app.client_documents.get(&app, &good, other).await.unwrap();
        assert_eq!(client.expect("another address still has fetches").name, "Doc");
        let again = format!("{}/again.json", document_server());
        assert!(app.client_documents.get(&app, &again, greedy).await.unwrap().is_none(), "spent for this minute");
    }

    #[actix_web::test]
    async fn slow_fetches_hold_up_their_own_address_only_and_their_time_is_charged() {
        let clock = ManualClock::new(6_000);
        let app = Arc::new(state_with(clock.clone(), &["--insecure-client-metadata"]).await);
        let (slow, other) = (ClientKey::V4(1), ClientKey::V4(2));
        let (stalling, mut held, release) = stalling_server();
        let fetches: Vec<_> = (0..MAX_IN_FLIGHT)
            .map(|i| {
                let (app, url) = (app.clone(), format!("{stalling}/slow{i}.json"));
                actix_web::rt::spawn(async move { app.client_documents.get(&app, &url, slow).await })
            })
            .collect();
        for _ in 0..IN_FLIGHT_PER_REQUESTER {
            held.recv().await.unwrap();
        }
        let good = format!("{}/app.json", document_server());
        let client = app.client_documents.get(&app, &good, other).await.unwrap();
        assert_eq!(client.expect("a slow address does not block another").name, "Doc");

        clock.advance(5);
        release.send(()).unwrap();
        for fetch in fetches {
            assert!(fetch.await.unwrap().unwrap().is_none());
        }
        assert!(held.try_recv().is_err(), "only {IN_FLIGHT_PER_REQUESTER} of its fetches started");
        let shares = app.client_documents.shares.lock().unwrap();
        let charged = shares.requesters[&slow].seconds;
        assert_eq!(charged, IN_FLIGHT_PER_REQUESTER as i64 * 5, "each 5 s fetch costs 5 of its seconds");
    }

    #[test]
    fn only_public_addresses_are_fetched() {
        // One address inside (and, where it matters, at the edge of) every range that is not public.
        let not_public = [
            ("0.0.0.0", "this network"),
            ("0.255.255.255", "this network"),
            ("10.1.2.3", "private"),
            ("100.64.0.1", "shared"),
            ("100.127.255.255", "shared"),
            ("127.0.0.1", "loopback"),
            ("169.254.169.254", "link-local (cloud metadata)"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.0.0.8", "IETF protocol assignments"),
            ("192.0.2.1", "documentation"),
            ("192.88.99.1", "6to4 relay anycast"),
            ("192.168.1.1", "private"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("224.0.0.1", "multicast"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.255", "broadcast"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::127.0.0.1", "IPv4-compatible (deprecated)"),
            ("::8.8.8.8", "IPv4-compatible (deprecated)"),
            ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
            ("::ffff:10.0.0.1", "IPv4-mapped private"),
            ("::ffff:0:8.8.8.8", "IPv4-translated"),
            ("::ffff:0:127.0.0.1", "IPv4-translated"),
            ("64:ff9b::a00:5", "NAT64 of a private address"),
            ("64:ff9b::7f00:1", "NAT64 of loopback"),
            ("64:ff9b:1::808:808", "local-use NAT64 (RFC 8215)"),
            ("100::1", "discard-only"),
            ("100:0:0:1::1", "dummy prefix"),
            ("2001::1", "Teredo"),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
            ("2001:2::1", "benchmarking"),
            ("2001:10::1", "ORCHID"),
            ("2001:20::1", "ORCHIDv2"),
            ("2001:1ff:ffff::1", "IETF protocol assignments"),
            ("2001:db8::1", "documentation"),
            ("2002:a00:1::1", "6to4 of a private address"),
            ("2002:808:808::1", "6to4"),
            ("3fff::1", "documentation (RFC 9637)"),
            ("3fff:fff:ffff::1", "documentation (RFC 9637)"),
            ("5f00::1", "SRv6 SIDs"),
            ("fc00::1", "unique local"),
            ("fd00::1", "unique local"),
            ("fe80::1", "link-local"),
            ("fec0::1", "site-local (deprecated)"),
            ("ff02::1", "multicast"),
            ("4000::1", "unallocated"),
        ];
        for (ip, range) in not_public {
            assert!(!is_public(ip.parse().unwrap()), "{ip} ({range}) is not public");
        }
        let public = [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.215.14",
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
            "192.0.1.1",
            "198.17.255.255",
            "198.20.0.1",
            "223.255.255.254",
            "::ffff:8.8.8.8",
            "64:ff9b::101:101",
            "2001:200::1",
            "2001:4860:4860::8888",
            "2606:4700::1111",
            "2a00:1450:4001::1",
            "3ffe::1",
            "3fff:1000::1",
        ];
        for ip in public {
            assert!(is_public(ip.parse().unwrap()), "{ip} is public");
        }
    }

    #[test]
    fn a_client_id_names_a_document_when_it_is_an_https_url_with_a_path() {
        assert!(is_document_url("https://app.example/oauth/client.json", false));
        for not in ["https://app.example/", "https://app.example", "http://app.example/c.json", "dyn-1", "peer"] {
            assert!(!is_document_url(not, false), "{not}");
        }
        assert!(is_document_url("http://127.0.0.1:8/c.json", true), "insecure allows http");
        assert!(!is_document_url("https://app.example/c.json#x", false));
    }

    #[test]
    fn documents_are_kept_as_their_cache_headers_say_within_bounds() {
        assert_eq!(ttl_of(None), DEFAULT_TTL);
        assert_eq!(ttl_of(Some("public, max-age=3600")), 3600);
        assert_eq!(ttl_of(Some("max-age=5")), 60);
        assert_eq!(ttl_of(Some("max-age=99999999")), 86_400);
        assert_eq!(ttl_of(Some("no-store")), 60);
    }
}
