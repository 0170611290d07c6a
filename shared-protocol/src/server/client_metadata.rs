//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document):
//! a client whose `client_id` is an `https` URL needs no registration; this
//! server fetches that URL and reads the client's metadata there.
//!
//! The fetch is the dangerous part, since anyone can name any URL: it
//! follows no redirect, takes at most 5 s and 5 KiB, and connects only to
//! public addresses (the resolver drops loopback, private, link-local and
//! other special ranges, so a name cannot be re-pointed between check and
//! connect) unless `--insecure-client-metadata`, for tests and development,
//! which also allows `http`. Documents are cached per their `Cache-Control`
//! within 1 minute and 1 day; failures for 30 s. The cache is per instance:
//! each instance fetches on its own, which is safe, since a document is the
//! client's own public statement.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

use super::client_auth::Client;
use super::register::{check, Metadata};
use crate::error::OAuthError;
use crate::state::AppState;
use crate::store::{ClientRecord, StoreResult};

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
    /// Fetches started in the current minute (minute, count), at most [`FETCHES_PER_MINUTE`].
    budget: Mutex<(i64, u32)>,
}

const MAX_IN_FLIGHT: usize = 8;
const FETCHES_PER_MINUTE: u32 = 120;

impl ClientDocuments {
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
            budget: Mutex::default(),
        }
    }

    /// The client `url` describes, fetched or from the cache; `None` when the
    /// document cannot be had or does not describe a client this server accepts.
    pub async fn get(&self, app: &AppState, url: &str) -> StoreResult<Option<Arc<Client>>> {
        let now = app.now();
        if let Some((client, until)) = self.cache.lock().expect("document cache").get(url) {
            if now < *until {
                return Ok(client.clone());
            }
        }
        // Bounded work for strangers: a few fetches at once, a fixed number a minute;
        // beyond, the client is unknown for now (and nothing is cached).
        let Ok(_permit) = self.in_flight.try_acquire() else { return Ok(None) };
        {
            let mut budget = self.budget.lock().expect("fetch budget");
            let minute = now.div_euclid(60);
            if budget.0 != minute {
                *budget = (minute, 0);
            }
            if budget.1 >= FETCHES_PER_MINUTE {
                return Ok(None);
            }
            budget.1 += 1;
        }
        let (client, until) = match self.fetch(app, url).await {
            Ok((record, ttl)) => {
                app.store.upsert_document_client(&record).await?;
                (Some(Arc::new(Client::from(record))), now + ttl)
            }
            Err(why) => {
                tracing::info!(why = %why, "a client metadata document was refused");
                (None, now + FAILURE_TTL)
            }
        };
        let mut cache = self.cache.lock().expect("document cache");
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

/// An address on the public internet: none of loopback, private, link-local,
/// shared, documentation, multicast or unspecified (RFC 6890).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (18..20).contains(&b))
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || (a == 192 && b == 88 && v4.octets()[2] == 99)
                || a >= 240)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                let seg = v6.segments();
                let embedded = |hi: u16, lo: u16| IpAddr::V4(std::net::Ipv4Addr::from(((hi as u32) << 16) | lo as u32));
                // Forms that carry an IPv4 address reach it: judge that address.
                let nat64 = seg[0] == 0x64 && seg[1] == 0xff9b;
                let compatible = seg[..6].iter().all(|s| *s == 0);
                if nat64 || compatible {
                    return is_public(embedded(seg[6], seg[7]));
                }
                if seg[0] == 0x2002 {
                    return is_public(embedded(seg[1], seg[2]));
                }
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (seg[0] & 0xfe00) == 0xfc00
                    || (seg[0] & 0xffc0) == 0xfe80
                    || (seg[0] & 0xffc0) == 0xfec0
                    || (seg[0] == 0x100 && seg[1..4].iter().all(|s| *s == 0))
                    || (seg[0] == 0x2001 && seg[1] == 0x0db8))
            }
        },
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
    /// URL), else a registered or configured one.
    pub async fn client(&self, client_id: &str) -> StoreResult<Option<Arc<Client>>> {
        if is_document_url(client_id, self.config.insecure_client_metadata) {
            return self.client_documents.get(self, client_id).await;
        }
        self.clients.get(&self.store, client_id, self.now()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_fetched() {
        for private in
            ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0"]
        {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for private in [
            "::1",
            "fd00::1",
            "fe80::1",
            "fec0::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a00:5",
            "2002:a00:1::1",
            "100::1",
            "2001:db8::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.215.14", "1.1.1.1", "2606:4700::1111", "64:ff9b::101:101"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
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
