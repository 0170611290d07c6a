//! Client authentication (RFC 6749 2.3): `client_secret_basic`,
//! `client_secret_post`, `private_key_jwt` (RFC 7523 2.2, 3) and public
//! clients identified by `client_id` alone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use actix_web::http::header::AUTHORIZATION;
use actix_web::HttpRequest;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde::Deserialize;

use crate::error::{ErrorCode, OAuthError};
use crate::grant_type::GrantType;
use crate::locks;
use crate::server::scope::Scope;
use crate::state::AppState;
use crate::store::{ClientRecord, Store, StoreResult};
use crate::tokens::secrets::ClientSecret;
use crate::web::form::{urldecode, Params};
use crate::web::limits::{ClientKey, LimitKind};

pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The longest an assertion may still have to live (RFC 7523 3, item 4), which
/// also bounds how long its `jti` must be remembered.
const MAX_ASSERTION_LIFETIME: i64 = 300;

/// A registered client, parsed once.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub name: String,
    secret_digest: Option<String>,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scope: Scope,
    pub jwks_uri: Option<String>,
    /// Keys registered inline (RFC 7591 2 `jwks`), for `private_key_jwt`.
    pub jwks: Option<JwkSet>,
    /// Registered itself (RFC 7591), rather than configured at start.
    pub registered: bool,
    /// The `token_endpoint_auth_method` a registered client chose.
    pub auth_method: Option<String>,
    /// When a registered (or metadata document) client was last used, as
    /// far as this instance knows; `None` for configured clients.
    last_used_at: Option<Arc<AtomicI64>>,
}

impl From<ClientRecord> for Client {
    fn from(r: ClientRecord) -> Self {
        let split = |s: &str| s.split(' ').filter(|t| !t.is_empty()).map(str::to_owned).collect();
        Self {
            redirect_uris: split(&r.redirect_uris),
            grant_types: split(&r.grant_types),
            scope: Scope::parse(&r.scope),
            id: r.client_id,
            name: r.name,
            secret_digest: r.secret_digest,
            jwks_uri: r.jwks_uri,
            // Validated at registration; a set that no longer parses authenticates nothing.
            jwks: r.jwks.and_then(|j| serde_json::from_str(&j).ok()),
            registered: r.registered_at.is_some(),
            auth_method: r.auth_method,
            last_used_at: r.last_used_at.map(|at| Arc::new(AtomicI64::new(at))),
        }
    }
}

impl Client {
    /// A public client has no credentials (RFC 6749 2.1).
    pub fn is_public(&self) -> bool {
        match self.auth_method.as_deref() {
            // A registered client is public only if it said so: keys that no longer read authenticate nothing.
            Some(method) => method == "none",
            None => self.secret_digest.is_none() && self.jwks_uri.is_none() && self.jwks.is_none(),
        }
    }
    pub fn allows_grant(&self, grant_type: GrantType) -> bool {
        self.grant_types.iter().any(|g| g == grant_type.as_str())
    }
    /// Exact string comparison (RFC 9700 2.1; no prefix or pattern matching).
    pub fn has_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|r| r == uri)
    }
}

/// Clients by id, cached briefly so the token endpoint's hot path does not
/// hit the database for every request.
#[derive(Default)]
pub struct ClientDirectory {
    cache: RwLock<HashMap<String, (Arc<Client>, i64)>>,
}

impl ClientDirectory {
    const TTL: i64 = 30;

    pub async fn get(&self, store: &Store, client_id: &str, now: i64) -> StoreResult<Option<Arc<Client>>> {
        if let Some((c, at)) = locks::read(&self.cache).get(client_id) {
            if now - at < Self::TTL {
                return Ok(Some(c.clone()));
            }
        }
        let Some(record) = store.client(client_id).await? else {
            return Ok(None);
        };
        let client = Arc::new(Client::from(record));
        // A registered client may be deleted at any instance (RFC 7592): read it every time.
        if !client.registered {
            locks::write(&self.cache).insert(client_id.to_owned(), (client.clone(), now));
        }
        Ok(Some(client))
    }
}

/// Clients' public keys (their `jwks_uri`, for `private_key_jwt`), fetched on demand and cached;
/// a fetch that failed is remembered too, so a client whose keys cannot be
/// read does not make every assertion an outbound call.
#[derive(Default)]
pub struct JwksCache {
    sets: Mutex<HashMap<String, (JwkSet, i64)>>,
    failed: Mutex<HashMap<String, i64>>,
}

impl JwksCache {
    const TTL: i64 = 300;
    /// A missing `kid` triggers a refetch at most this often (key rotation without a fetch storm).
    const REFETCH_AFTER: i64 = 10;
    /// After a failed fetch, how long the next one waits.
    const RETRY_AFTER_FAILURE: i64 = 30;

    async fn fetch(&self, app: &AppState, uri: &str, now: i64) -> Result<JwkSet, OAuthError> {
        let unavailable = || OAuthError::invalid_client("the client's JWKS could not be fetched");
        if locks::lock(&self.failed).get(uri).is_some_and(|at| now - at < Self::RETRY_AFTER_FAILURE) {
            return Err(unavailable());
        }
        let fetched = fetch_jwks(app, uri).await;
        let mut failed = locks::lock(&self.failed);
        match fetched {
            Some(set) => {
                failed.remove(uri);
                Ok(set)
            }
            None => {
                failed.insert(uri.to_owned(), now);
                Err(unavailable())
            }
        }
    }

    async fn key(&self, app: &AppState, uri: &str, kid: Option<&str>) -> Result<DecodingKey, OAuthError> {
        let now = app.now();
        let cached = locks::lock(&self.sets).get(uri).cloned();
        let find = |set: &JwkSet| match kid {
            Some(kid) => set.find(kid).cloned(),
            None if set.keys.len() == 1 => set.keys.first().cloned(),
            None => None,
        };
        let jwk = match cached {
            Some((set, at)) if now - at < Self::TTL && find(&set).is_some() => find(&set),
            Some((set, at)) if now - at < Self::REFETCH_AFTER => find(&set),
            _ => {
                let set = self.fetch(app, uri, now).await?;
                let found = find(&set);
                locks::lock(&self.sets).insert(uri.to_owned(), (set, now));
                found
            }
        };
        let jwk = jwk.ok_or_else(|| OAuthError::invalid_client("the assertion's key is not in the client's JWKS"))?;
        DecodingKey::from_jwk(&jwk).map_err(|_| OAuthError::invalid_client("the client's JWKS holds an unusable key"))
    }
}

#[cfg(test)]
impl JwksCache {
    fn seed(&self, uri: &str, set: JwkSet, at: i64) {
        locks::lock(&self.sets).insert(uri.to_owned(), (set, at));
    }
}

/// The JWKS at `uri`, read with a size cap; `None` when it cannot be had.
async fn fetch_jwks(app: &AppState, uri: &str) -> Option<JwkSet> {
    let res = match app.http.get(uri).send().await {
        Ok(res) if res.status().is_success() => res,
        Ok(res) => {
            tracing::warn!(status = res.status().as_u16(), "a client's JWKS answered an error");
            return None;
        }
        Err(e) => {
            tracing::warn!(error = %e.without_url(), "fetching a client's JWKS failed");
            return None;
        }
    };
    crate::outbound::read_json::<JwkSet>(res).await.ok()
}

/// The key named by `kid` in a client's inline JWKS (the only key, when the assertion names none).
fn inline_key(set: &JwkSet, kid: Option<&str>) -> Result<DecodingKey, OAuthError> {
    let jwk = match kid {
        Some(kid) => set.find(kid),
        None if set.keys.len() == 1 => set.keys.first(),
        None => None,
    };
    let jwk = jwk.ok_or_else(|| OAuthError::invalid_client("the assertion's key is not in the client's JWKS"))?;
    DecodingKey::from_jwk(jwk).map_err(|_| OAuthError::invalid_client("the client's JWKS holds an unusable key"))
}

/// Which method the client used, for metadata and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
    None,
}

impl AuthMethod {
    /// The method's RFC 7591 2 `token_endpoint_auth_method` name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::None => "none",
        }
    }
}

/// How stale a client's recorded last use may get: it is written at most
/// this often per client and instance, not on every request.
const USE_RECORDED_EVERY: i64 = 3600;

impl AppState {
    /// Records that `client` was used (authenticated, or started an
    /// authorization), for the idle prune of registered clients; a write at
    /// most once an hour, and none for configured clients.
    pub(crate) async fn note_client_use(&self, client: &Client) {
        let Some(last) = &client.last_used_at else { return };
        let now = self.now();
        let seen = last.load(Ordering::Relaxed);
        if now - seen < USE_RECORDED_EVERY
            || last.compare_exchange(seen, now, Ordering::Relaxed, Ordering::Relaxed).is_err()
        {
            return;
        }
        if let Err(e) = self.store.note_client_used(&client.id, now).await {
            tracing::warn!(error = %e, "recording a client's use failed");
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuthenticatedClient {
    pub client: Arc<Client>,
    pub method: AuthMethod,
}

/// An authenticated client is its registration: `req.client.id`.
impl std::ops::Deref for AuthenticatedClient {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

/// Authenticates the client of a request to the token, revocation,
/// introspection or device authorization endpoint. A client address that
/// failed too often is turned away first (429), before any lookup or
/// signature check; only failures count, so working clients are never limited.
pub async fn authenticate(
    app: &AppState,
    req: &HttpRequest,
    params: &Params,
) -> Result<AuthenticatedClient, OAuthError> {
    let limit = &app.limits.client_auth;
    let address = app.limits.client(req);
    let refused = |busy| {
        app.metrics.rate_limited(LimitKind::ClientAuthFailures);
        OAuthError::busy(busy)
    };
    limit.admit(address).map_err(refused)?;
    let result = authenticate_unlimited(app, req, params, address).await.and_then(with_registered_method);
    match &result {
        Ok(authenticated) => app.note_client_use(&authenticated.client).await,
        Err(e) if e.code == ErrorCode::InvalidClient => limit.failed(address).map_err(refused)?,
        Err(_) => {}
    }
    result
}

/// RFC 7591 2: a client that registered a `token_endpoint_auth_method` uses
/// that one; a configured client (none recorded) any it holds credentials for.
fn with_registered_method(authenticated: AuthenticatedClient) -> Result<AuthenticatedClient, OAuthError> {
    match authenticated.auth_method.as_deref() {
        Some(registered) if registered != authenticated.method.as_str() => {
            Err(OAuthError::invalid_client(format!("this client is registered to authenticate with {registered}"))
                .with_basic_challenge(authenticated.method == AuthMethod::ClientSecretBasic))
        }
        _ => Ok(authenticated),
    }
}

async fn authenticate_unlimited(
    app: &AppState,
    req: &HttpRequest,
    params: &Params,
    address: ClientKey,
) -> Result<AuthenticatedClient, OAuthError> {
    let basic = basic_credentials(req)?;
    let assertion = params.get("client_assertion");
    let post_secret = params.get("client_secret").map(ClientSecret::from);
    let methods = [basic.is_some(), assertion.is_some(), post_secret.is_some()].iter().filter(|m| **m).count();
    if methods > 1 {
        return Err(OAuthError::invalid_request("use exactly one client authentication method"));
    }
    let lookup = |id: String| async move { app.client(&id, address).await.map_err(OAuthError::from) };

    if let Some((id, secret)) = basic {
        let fail = || OAuthError::invalid_client("client authentication failed").with_basic_challenge(true);
        if params.get("client_id").is_some_and(|p| p != id) {
            return Err(OAuthError::invalid_request("client_id does not match the authenticated client"));
        }
        let client = lookup(id).await?.ok_or_else(fail)?;
        return match &client.secret_digest {
            Some(d) if secret.matches_digest(d) => {
                Ok(AuthenticatedClient { client, method: AuthMethod::ClientSecretBasic })
            }
            _ => Err(fail()),
        };
    }
    if let Some(assertion) = assertion {
        if params.get("client_assertion_type") != Some(JWT_BEARER_ASSERTION) {
            return Err(OAuthError::invalid_request(format!("client_assertion_type must be {JWT_BEARER_ASSERTION}")));
        }
        let client = verify_assertion(app, assertion, params, address).await?;
        return Ok(AuthenticatedClient { client, method: AuthMethod::PrivateKeyJwt });
    }
    let id = params
        .get("client_id")
        .ok_or_else(|| OAuthError::invalid_client("client authentication is required"))?
        .to_owned();
    let fail = || OAuthError::invalid_client("client authentication failed");
    let client = lookup(id).await?.ok_or_else(fail)?;
    match (post_secret, &client.secret_digest) {
        (Some(secret), Some(d)) if secret.matches_digest(d) => {
            Ok(AuthenticatedClient { client, method: AuthMethod::ClientSecretPost })
        }
        (None, _) if client.is_public() => Ok(AuthenticatedClient { client, method: AuthMethod::None }),
        (None, _) => Err(OAuthError::invalid_client("this client must authenticate")),
        _ => Err(fail()),
    }
}

/// RFC 6749 2.3.1: `Basic base64(urlencode(id) ":" urlencode(secret))`.
/// `Ok(None)` when the request carries no Basic credentials.
fn basic_credentials(req: &HttpRequest) -> Result<Option<(String, ClientSecret)>, OAuthError> {
    let Some(value) = req.headers().get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().unwrap_or("");
    let Some((scheme, rest)) = value.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let bad = || OAuthError::invalid_client("malformed Basic credentials").with_basic_challenge(true);
    let decoded = STANDARD.decode(rest.trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    // RFC 6749 2.3.1: both parts are form-urlencoded before they are joined.
    let unescape = |s: &str| urldecode(s).map_err(|_| bad());
    Ok(Some((unescape(id)?, ClientSecret::new(unescape(secret)?))))
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    jti: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn is_exactly_one_of(&self, wanted: &[&str]) -> bool {
        match self {
            Self::One(a) => wanted.contains(&a.as_str()),
            Self::Many(v) => v.len() == 1 && wanted.contains(&v[0].as_str()),
        }
    }
}

/// RFC 7523 3: the JWT's `iss` and `sub` are the client, `aud` is this
/// server, it has not expired, and its `jti` has not been seen.
async fn verify_assertion(
    app: &AppState,
    assertion: &str,
    params: &Params,
    address: ClientKey,
) -> Result<Arc<Client>, OAuthError> {
    let bad = |why: &'static str| OAuthError::invalid_client(why);
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| bad("the client assertion is not a JWT"))?;
    // Read `sub` before verifying only to find whose keys verify it.
    let unverified: AssertionClaims = assertion
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad("the client assertion's claims are malformed"))?;
    if params.get("client_id").is_some_and(|id| id != unverified.sub) {
        return Err(OAuthError::invalid_request("client_id does not match the client assertion"));
    }
    let now = app.now();
    let client = app.client(&unverified.sub, address).await?.ok_or_else(|| bad("client authentication failed"))?;
    use jsonwebtoken::Algorithm::{EdDSA, ES256, ES384, PS256, RS256};
    if ![ES256, ES384, EdDSA, RS256, PS256].contains(&header.alg) {
        return Err(bad("the client assertion must use an asymmetric signature"));
    }
    let key = match (&client.jwks, client.jwks_uri.as_deref()) {
        (Some(set), _) => inline_key(set, header.kid.as_deref())?,
        (None, Some(uri)) => app.client_keys.key(app, uri, header.kid.as_deref()).await?,
        (None, None) => return Err(bad("this client has no registered keys")),
    };
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &validation)
        .map_err(|_| bad("the client assertion's signature does not verify"))?
        .claims;

    let skew = app.config.lifetimes.assertion_skew;
    if claims.iss != client.id || claims.sub != client.id {
        return Err(bad("the client assertion's iss and sub must be the client_id"));
    }
    // One audience, this server: an assertion that also names another server
    // could be replayed here by it (audience injection, RFC 7523bis).
    let token_endpoint = app.config.endpoint("/token");
    if !claims.aud.is_exactly_one_of(&[app.config.issuer(), &token_endpoint]) {
        return Err(bad("the client assertion's audience must be this server's issuer or token endpoint"));
    }
    if claims.exp - now > MAX_ASSERTION_LIFETIME + skew {
        return Err(bad("the client assertion lives too long"));
    }
    if claims.exp + skew < now {
        return Err(bad("the client assertion has expired"));
    }
    if claims.nbf.is_some_and(|nbf| nbf - skew > now) || claims.iat.is_some_and(|iat| iat - skew > now) {
        return Err(bad("the client assertion is not valid yet"));
    }
    let jti = claims.jti.ok_or_else(|| bad("the client assertion has no jti"))?;
    if !app.store.record_assertion_jti(&client.id, &jti, claims.exp + skew, now).await? {
        return Err(bad("the client assertion was already used"));
    }
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::test_support::unit::state;
    use actix_web::test::TestRequest;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use serde_json::json;

    async fn auth(app: &AppState, req: TestRequest, body: &str) -> Result<AuthenticatedClient, OAuthError> {
        let params = Params::parse(body.as_bytes()).unwrap();
        authenticate(app, &req.to_http_request(), &params).await
    }

    fn basic(id: &str, secret: &str) -> TestRequest {
        TestRequest::default()
            .insert_header((AUTHORIZATION, format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))))
    }

    #[actix_web::test]
    async fn secrets_by_basic_or_post_and_nothing_else() {
        let app = state(ManualClock::new(1_000)).await;
        let ok = auth(&app, basic("peer", "s"), "").await.unwrap();
        assert_eq!((ok.client.id.as_str(), ok.method), ("peer", AuthMethod::ClientSecretBasic));
        let bad = auth(&app, basic("peer", "S"), "").await.unwrap_err();
        assert_eq!(bad.code, ErrorCode::InvalidClient);
        assert!(bad.basic_challenge, "a failed Basic attempt gets the Basic challenge");
        assert_eq!(auth(&app, basic("nobody", "s"), "").await.unwrap_err().code, ErrorCode::InvalidClient);

        let post = auth(&app, TestRequest::default(), "client_id=peer&client_secret=s").await.unwrap();
        assert_eq!(post.method, AuthMethod::ClientSecretPost);
        let wrong = auth(&app, TestRequest::default(), "client_id=peer&client_secret=x").await.unwrap_err();
        assert!(!wrong.basic_challenge);

        let none = auth(&app, TestRequest::default(), "client_id=peer").await.unwrap_err();
        assert_eq!(none.code, ErrorCode::InvalidClient, "a confidential client must authenticate");
        let two = auth(&app, basic("peer", "s"), "client_id=peer&client_secret=s").await.unwrap_err();
        assert_eq!(two.code, ErrorCode::InvalidRequest, "only one method per request");
    }

    /// A client registered (RFC 7591) at `at` for `method`, with secret "s2".
    async fn registered(app: &AppState, id: &str, method: &str, at: i64) {
        let record = ClientRecord {
            client_id: id.into(),
            name: "App".into(),
            secret_digest: Some(ClientSecret::new("s2").digest()),
            grant_types: "client_credentials".into(),
            scope: "player:read".into(),
            auth_method: Some(method.into()),
            registration_digest: Some("d".into()),
            registered_at: Some(at),
            last_used_at: Some(at),
            ..Default::default()
        };
        assert!(app.store.insert_registered_client(&record, 10).await.unwrap());
    }

    #[actix_web::test]
    async fn a_registered_client_authenticates_with_its_registered_method_only() {
        let app = state(ManualClock::new(1_000)).await;
        registered(&app, "dyn-basic", "client_secret_basic", 1_000).await;
        registered(&app, "dyn-post", "client_secret_post", 1_000).await;
        assert!(auth(&app, basic("dyn-basic", "s2"), "").await.is_ok());
        let post = auth(&app, TestRequest::default(), "client_id=dyn-basic&client_secret=s2").await.unwrap_err();
        assert_eq!(post.code, ErrorCode::InvalidClient);
        assert_eq!(post.description, "this client is registered to authenticate with client_secret_basic");

        assert!(auth(&app, TestRequest::default(), "client_id=dyn-post&client_secret=s2").await.is_ok());
        let by_basic = auth(&app, basic("dyn-post", "s2"), "").await.unwrap_err();
        assert_eq!(by_basic.code, ErrorCode::InvalidClient);
        assert!(by_basic.basic_challenge, "a refused Basic attempt gets the Basic challenge");
        // A wrong secret says nothing of the method.
        let wrong = auth(&app, basic("dyn-post", "x"), "").await.unwrap_err();
        assert_eq!(wrong.description, "client authentication failed");
    }

    #[actix_web::test]
    async fn a_registered_clients_use_is_recorded_at_most_hourly() {
        let clock = ManualClock::new(1_000);
        let app = state(clock.clone()).await;
        registered(&app, "dyn-1", "client_secret_basic", 1_000).await;
        let last_used = || async { app.store.client("dyn-1").await.unwrap().unwrap().last_used_at };
        clock.advance(USE_RECORDED_EVERY - 1);
        auth(&app, basic("dyn-1", "s2"), "").await.unwrap();
        assert_eq!(last_used().await, Some(1_000), "not written within the hour");
        clock.advance(1);
        auth(&app, basic("dyn-1", "s2"), "").await.unwrap();
        assert_eq!(last_used().await, Some(1_000 + USE_RECORDED_EVERY));
        // A failed attempt is no use.
        clock.advance(2 * USE_RECORDED_EVERY);
        auth(&app, basic("dyn-1", "x"), "").await.unwrap_err();
        assert_eq!(last_used().await, Some(1_000 + USE_RECORDED_EVERY));
        // The configured peer has nothing to record.
        auth(&app, basic("peer", "s"), "").await.unwrap();
        assert_eq!(app.store.client("peer").await.unwrap().unwrap().last_used_at, None);
    }

    #[actix_web::test]
    async fn a_registered_client_goes_once_unused_for_the_idle_days_and_use_keeps_it() {
        const DAY: i64 = 86_400;
        let clock = ManualClock::new(DAY);
        let app = crate::test_support::unit::state_with(clock.clone(), &["--registered-client-idle-days", "2"]).await;
        registered(&app, "dyn-1", "client_secret_basic", DAY).await;
        let grant = crate::test_support::unit::user_grant(&app, "g1").await;
        let theirs = crate::store::GrantRecord { id: "g2".into(), client_id: "dyn-1".into(), ..grant };
        app.store.insert_grant(&theirs).await.unwrap();
        let exists = || async { app.store.client("dyn-1").await.unwrap().is_some() };
        clock.advance(DAY + DAY / 2);
        auth(&app, basic("dyn-1", "s2"), "").await.unwrap();
        clock.advance(DAY + DAY / 2);
        crate::housekeeping::prune(&app, app.now()).await;
        assert!(exists().await, "used a day and a half ago");
        clock.advance(DAY / 2 + 1);
        crate::housekeeping::prune(&app, app.now()).await;
        assert!(!exists().await, "unused for two days");
        assert!(app.store.grant("g2").await.unwrap().is_none(), "with its grant");
        assert!(app.store.grant("g1").await.unwrap().is_some(), "another client's grant stays");
    }

    struct Signer {
        key: EncodingKey,
        kid: &'static str,
    }

    /// A client key pair, with its public half seeded into the JWKS cache.
    fn client_key(app: &AppState, kid: &'static str) -> Signer {
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).unwrap();
        let point = pair.public_key().as_ref();
        let set: JwkSet = serde_json::from_value(json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }]}))
        .unwrap();
        app.client_keys.seed("http://localhost:10/jwks.json", set, app.now());
        Signer { key: EncodingKey::from_ec_der(doc.as_ref()), kid }
    }

    fn assertion(signer: &Signer, aud: &str, exp: i64, jti: &str) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(signer.kid.into());
        let claims = json!({"iss": "peer", "sub": "peer", "aud": aud, "exp": exp, "iat": exp - 60, "jti": jti});
        let jwt = jsonwebtoken::encode(&header, &claims, &signer.key).unwrap();
        format!("client_assertion_type={}&client_assertion={jwt}", JWT_BEARER_ASSERTION.replace(':', "%3A"))
    }

    #[actix_web::test]
    async fn private_key_jwt_checks_audience_expiry_and_replay() {
        let clock = ManualClock::new(1_000);
        let app = state(clock.clone()).await;
        let signer = client_key(&app, "k1");
        let token_endpoint = app.config.endpoint("/token");

        let ok = auth(&app, TestRequest::default(), &assertion(&signer, &token_endpoint, 1_060, "j1")).await.unwrap();
        assert_eq!(ok.method, AuthMethod::PrivateKeyJwt);
        let replay =
            auth(&app, TestRequest::default(), &assertion(&signer, &token_endpoint, 1_060, "j1")).await.unwrap_err();
        assert_eq!(replay.description, "the client assertion was already used");

        let issuer = app.config.issuer().to_owned();
        assert!(auth(&app, TestRequest::default(), &assertion(&signer, &issuer, 1_060, "j2")).await.is_ok());
        let foreign = assertion(&signer, "http://elsewhere/token", 1_060, "j3");
        assert_eq!(auth(&app, TestRequest::default(), &foreign).await.unwrap_err().code, ErrorCode::InvalidClient);

        let far = assertion(&signer, &token_endpoint, 1_000 + MAX_ASSERTION_LIFETIME + 120, "j5");
        assert_eq!(
            auth(&app, TestRequest::default(), &far).await.unwrap_err().description,
            "the client assertion lives too long"
        );

        clock.advance(60 + app.config.lifetimes.assertion_skew + 1);
        let late =
            auth(&app, TestRequest::default(), &assertion(&signer, &token_endpoint, 1_060, "j4")).await.unwrap_err();
        assert_eq!(late.description, "the client assertion has expired");
    }

    #[actix_web::test]
    async fn an_assertion_from_another_key_is_refused() {
        let app = state(ManualClock::new(1_000)).await;
        let _registered = client_key(&app, "k1");
        let impostor = Signer { kid: "k1", ..client_key_unregistered() };
        let err = auth(&app, TestRequest::default(), &assertion(&impostor, app.config.issuer(), 1_060, "j"))
            .await
            .unwrap_err();
        assert_eq!(err.description, "the client assertion's signature does not verify");
    }

    #[actix_web::test]
    async fn an_assertion_for_several_audiences_is_refused() {
        let app = state(ManualClock::new(1_000)).await;
        let signer = client_key(&app, "k1");
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(signer.kid.into());
        let aud = json!([app.config.issuer(), "https://attacker.example"]);
        let claims = json!({"iss": "peer", "sub": "peer", "aud": aud, "exp": 1_060, "jti": "multi"});
        let jwt = jsonwebtoken::encode(&header, &claims, &signer.key).unwrap();
        let body = format!("client_assertion_type={}&client_assertion={jwt}", JWT_BEARER_ASSERTION.replace(':', "%3A"));
        assert_eq!(auth(&app, TestRequest::default(), &body).await.unwrap_err().code, ErrorCode::InvalidClient);
    }

    #[actix_web::test]
    async fn a_failed_jwks_fetch_is_remembered_briefly() {
        let clock = ManualClock::new(1_000);
        let app = state(clock.clone()).await;
        // A "JWKS server" that answers 500 and counts how often it is asked.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let uri = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = asked.clone();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for mut conn in listener.incoming().flatten() {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = conn.read(&mut [0u8; 1024]);
                let _ = conn
                    .write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            }
        });
        let count = || asked.load(std::sync::atomic::Ordering::SeqCst);
        for _ in 0..3 {
            assert!(app.client_keys.key(&app, &uri, Some("k")).await.is_err());
        }
        assert_eq!(count(), 1, "one fetch, then the failure is remembered");
        clock.advance(JwksCache::RETRY_AFTER_FAILURE);
        assert!(app.client_keys.key(&app, &uri, Some("k")).await.is_err());
        assert_eq!(count(), 2, "tried again once the failure is old");
    }

    fn client_key_unregistered() -> Signer {
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()).unwrap();
        Signer { key: EncodingKey::from_ec_der(doc.as_ref()), kid: "other" }
    }
}
