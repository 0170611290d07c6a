//! This party as a client of its peer: metadata discovery (RFC 8414), the
//! authorization code flow with PKCE through the `oauth2` crate, refresh,
//! redeeming a reciprocal code, pushing the reciprocal grant, revocation
//! (RFC 7009), introspection (RFC 7662) and calls to the peer's API.
//!
//! Every call goes through [`AppState::http`], which has a timeout and never
//! follows redirects; every failure becomes a [`PeerError`] the user can read;
//! every call is timed and its failures counted ([`timed`]).

pub mod discovery;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, ClientId, CsrfToken, EndpointNotSet, EndpointSet, ExtraTokenFields, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, StandardRevocableToken, StandardTokenResponse,
    TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};

use crate::config::ClientAuth;
use crate::grant_type::GrantType;
use crate::locks;
use crate::metrics::{LinkOutcome, PeerCall};
use crate::outbound::{read_body, read_json, PeerError};
use crate::state::AppState;
use crate::store::Leg;
use crate::tokens::secrets::{AccessToken, AuthorizationCode, PkceVerifier, RefreshToken};
use crate::web::form::urlencode;

/// The peer's authorization server metadata (RFC 8414 2), the fields this client uses.
#[derive(Debug, Clone, Deserialize)]
pub struct PeerMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    #[serde(default)]
    pub introspection_endpoint: Option<String>,
}

/// The extension field of the peer's token response (leg D; draft-ietf-oauth-reciprocal).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReciprocalField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reciprocal: Option<String>,
}
impl ExtraTokenFields for ReciprocalField {}

type PeerTokenResponse = StandardTokenResponse<ReciprocalField, BasicTokenType>;

type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    PeerTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Tokens the peer issued, as this party keeps them.
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    pub access_token: AccessToken,
    pub refresh_token: Option<RefreshToken>,
    pub expires_in: i64,
    pub scope: String,
    /// What the peer asks for in return (the `reciprocal` field), if anything.
    pub reciprocal: Option<String>,
}

impl IssuedTokens {
    /// `requested` stands in for an omitted `scope` (RFC 6749 5.1: then it is the one requested).
    fn from_response(r: PeerTokenResponse, requested: &str) -> Self {
        let scope = r.scopes().map(|s| s.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "));
        Self {
            access_token: AccessToken::new(r.access_token().secret().as_str()),
            refresh_token: r.refresh_token().map(|t| RefreshToken::new(t.secret().as_str())),
            // Bounded, so a strange answer neither overflows nor forces a refresh on every use.
            expires_in: r.expires_in().map_or(300, |d| d.as_secs().clamp(1, 366 * 24 * 3600) as i64),
            scope: scope.unwrap_or_else(|| requested.to_owned()),
            reciprocal: r.extra_fields().reciprocal.clone(),
        }
    }
}

/// The start of an authorization request: where to send the user, and what to remember.
pub struct AuthorizationStart {
    pub url: String,
    pub state: String,
    pub pkce_verifier: PkceVerifier,
}

/// One async lock per user, created on demand.
#[derive(Default)]
pub struct UserLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl UserLocks {
    pub fn of(&self, user_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = locks::lock(&self.0);
        if locks.len() > 10_000 {
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        locks.entry(user_id.to_owned()).or_default().clone()
    }
}

/// This party's client of the peer: cached metadata, per-user locks and
/// recent confirmations that a held token is still active.
#[derive(Default)]
pub struct PeerClient {
    metadata: RwLock<Option<(Arc<PeerMetadata>, i64)>>,
    /// One refresh at a time per user, so concurrent requests never present
    /// the same refresh token twice (which the peer would treat as theft).
    pub refresh_locks: UserLocks,
    /// One change of what the peer may do here at a time per user (link,
    /// retry, settings), so two pushes never race over the same grants.
    pub update_locks: UserLocks,
    /// user → (access token digest, when the peer last said it is active).
    confirmed: Mutex<HashMap<String, (String, i64)>>,
}

impl PeerClient {
    const METADATA_TTL: i64 = 300;

    /// RFC 8414 3: the peer's metadata, whose `issuer` must be the configured peer URL.
    pub async fn metadata(&self, app: &AppState) -> Result<Arc<PeerMetadata>, PeerError> {
        let now = app.now();
        if let Some((m, at)) = locks::read(&self.metadata).as_ref() {
            if now - at < Self::METADATA_TTL {
                return Ok(m.clone());
            }
        }
        let url = format!("{}/.well-known/oauth-authorization-server", app.config.peer_url);
        let m: PeerMetadata = timed(app, PeerCall::Metadata, async {
            let res = app.http.get(&url).send().await.map_err(PeerError::from_reqwest)?;
            if !res.status().is_success() {
                return Err(PeerError::Malformed(format!("its metadata answered {}", res.status())));
            }
            read_json(res).await
        })
        .await?;
        // RFC 8414 3.3: a document naming another issuer must not be used.
        if m.issuer != app.config.peer_url {
            return Err(PeerError::Malformed(format!("its metadata names the issuer {}", m.issuer)));
        }
        // Our credentials go to these endpoints: they must be the peer's own.
        let endpoints = [Some(&m.authorization_endpoint), Some(&m.token_endpoint)]
            .into_iter()
            .chain([m.revocation_endpoint.as_ref(), m.introspection_endpoint.as_ref()])
            .flatten();
        for e in endpoints {
            if !same_origin(e, &app.config.peer_url) {
                return Err(PeerError::Malformed(format!("its metadata points elsewhere ({e})")));
            }
        }
        let m = Arc::new(m);
        *locks::write(&self.metadata) = Some((m.clone(), now));
        Ok(m)
    }

    fn oauth(&self, app: &AppState, m: &PeerMetadata, with_redirect: bool) -> Result<OAuthClient, PeerError> {
        let bad = |what: &str| PeerError::Malformed(format!("its {what} is not a URL"));
        let client = oauth2::Client::new(ClientId::new(app.config.party.peer.our_client_id.to_owned()));
        let client = match app.config.client_auth {
            ClientAuth::ClientSecretBasic => {
                client.set_client_secret(oauth2::ClientSecret::new(app.config.client_secret.secret().to_owned()))
            }
            // client_id goes in the body; the assertion is added to each request.
            ClientAuth::PrivateKeyJwt => client.set_auth_type(AuthType::RequestBody),
        };
        let client = client
            .set_auth_uri(AuthUrl::new(m.authorization_endpoint.clone()).map_err(|_| bad("authorization endpoint"))?)
            .set_token_uri(TokenUrl::new(m.token_endpoint.clone()).map_err(|_| bad("token endpoint"))?);
        Ok(if with_redirect {
            client.set_redirect_uri(RedirectUrl::new(app.config.redirect_uri()).map_err(|_| bad("redirect URI"))?)
        } else {
            client
        })
    }

    /// RFC 6749 4.1.1 with PKCE S256 (RFC 7636 4.1–4.3) and a fresh `state`.
    pub async fn start_authorization(&self, app: &AppState, scope: &str) -> Result<AuthorizationStart, PeerError> {
        let m = self.metadata(app).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let client = self.oauth(app, &m, true)?;
        let mut request = client.authorize_url(CsrfToken::new_random).set_pkce_challenge(challenge);
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            request = request.add_scope(Scope::new(s.to_owned()));
        }
        let (url, state) = request.url();
        Ok(AuthorizationStart {
            url: url.to_string(),
            state: state.secret().clone(),
            pkce_verifier: PkceVerifier::new(verifier.into_secret()),
        })
    }

    /// RFC 6749 4.1.3: redeems the code of our own authorization request
    /// (legs C and D, counted as leg C's outcome).
    pub async fn exchange_code(
        &self,
        app: &AppState,
        code: &AuthorizationCode,
        verifier: &PkceVerifier,
    ) -> Result<IssuedTokens, PeerError> {
        let mut result = self.exchange_code_once(app, code, verifier).await;
        if let Err(lost @ PeerError::Unreachable(_)) = result {
            // The answer, not the request, may be what was lost (RFC 6749 4.1.2):
            // presented again, the code either is redeemed now or is refused
            // as a replay, and the issuer revokes what its first redemption
            // issued, so no grant is left whose tokens nobody holds.
            result = self.exchange_code_once(app, code, verifier).await.map_err(|_| lost);
        }
        app.metrics.link_outcome(Leg::C, LinkOutcome::of(&result));
        result
    }

    async fn exchange_code_once(
        &self,
        app: &AppState,
        code: &AuthorizationCode,
        verifier: &PkceVerifier,
    ) -> Result<IssuedTokens, PeerError> {
        let m = self.metadata(app).await?;
        let client = self.oauth(app, &m, true)?;
        let mut request = client
            .exchange_code(oauth2::AuthorizationCode::new(code.secret().to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.secret().to_owned()));
        for (name, value) in self.assertion_params(app, &m) {
            request = request.add_extra_param(name, value);
        }
        let response = timed(app, PeerCall::Code, async {
            request.request_async(&|r| oauth_http(&app.http, r)).await.map_err(token_error)
        })
        .await?;
        Ok(IssuedTokens::from_response(response, &app.config.party.wants_from_peer()))
    }

    /// Leg G: redeems a code the peer minted for us and pushed with the
    /// reciprocal grant, as an ordinary `authorization_code` grant (no redirect URI, no PKCE).
    pub async fn redeem_pushed_code(
        &self,
        app: &AppState,
        code: &AuthorizationCode,
    ) -> Result<IssuedTokens, PeerError> {
        let m = self.metadata(app).await?;
        let client = self.oauth(app, &m, false)?;
        let mut request = client.exchange_code(oauth2::AuthorizationCode::new(code.secret().to_owned()));
        for (name, value) in self.assertion_params(app, &m) {
            request = request.add_extra_param(name, value);
        }
        let response = timed(app, PeerCall::PushedCode, async {
            request.request_async(&|r| oauth_http(&app.http, r)).await.map_err(token_error)
        })
        .await?;
        Ok(IssuedTokens::from_response(response, ""))
    }

    /// RFC 6749 6, with rotation: the answer carries the next refresh token.
    pub async fn refresh(
        &self,
        app: &AppState,
        refresh_token: &RefreshToken,
        scope: &str,
    ) -> Result<IssuedTokens, PeerError> {
        let m = self.metadata(app).await?;
        let client = self.oauth(app, &m, false)?;
        let refresh_token = oauth2::RefreshToken::new(refresh_token.secret().to_owned());
        let mut request = client.exchange_refresh_token(&refresh_token);
        for (name, value) in self.assertion_params(app, &m) {
            request = request.add_extra_param(name, value);
        }
        let response = timed(app, PeerCall::Refresh, async {
            request.request_async(&|r| oauth_http(&app.http, r)).await.map_err(token_error)
        })
        .await?;
        Ok(IssuedTokens::from_response(response, scope))
    }

    /// Leg F: pushes the code we minted for the peer, with the access token
    /// the peer issued to us naming the user. `legacy` sends the
    /// draft-hardt-oauth-mutual-00 form (token in `Authorization: Bearer`).
    pub async fn push_reciprocal(
        &self,
        app: &AppState,
        code: &AuthorizationCode,
        access_token: &AccessToken,
        legacy: bool,
    ) -> Result<(), PeerError> {
        let m = self.metadata(app).await?;
        let client_id = app.config.party.peer.our_client_id;
        let mut form = vec![("code", code.secret().to_owned()), ("client_id", client_id.to_owned())];
        let request = if legacy {
            // The Authorization header carries the token, so the client authenticates in the body.
            form.push(("grant_type", GrantType::LegacyMutual.to_string()));
            match app.config.client_auth {
                ClientAuth::ClientSecretBasic => {
                    form.push(("client_secret", app.config.client_secret.secret().to_owned()))
                }
                ClientAuth::PrivateKeyJwt => form.extend(self.assertion_params(app, &m)),
            }
            app.http.post(&m.token_endpoint).bearer_auth(access_token.secret()).form(&form)
        } else {
            form.push(("grant_type", GrantType::Reciprocal.to_string()));
            form.push(("access_token", access_token.secret().to_owned()));
            self.authenticated(app, &m, &m.token_endpoint, form)
        };
        // The peer redeems the code at our token endpoint (and may fetch our
        // metadata) before it answers: allow for those calls of its own.
        timed(app, PeerCall::Reciprocal, succeeds(request.timeout(app.config.peer_timeout * 3))).await
    }

    /// RFC 7009 2.1: asks the peer to revoke a token it issued to us.
    pub async fn revoke(&self, app: &AppState, token: &str, hint: &str) -> Result<(), PeerError> {
        let m = self.metadata(app).await?;
        let endpoint =
            m.revocation_endpoint.clone().ok_or_else(|| PeerError::Malformed("no revocation endpoint".into()))?;
        let form = vec![("token", token.to_owned()), ("token_type_hint", hint.to_owned())];
        // The peer may revoke its side with us before it answers.
        let request = self.authenticated(app, &m, &endpoint, form).timeout(app.config.peer_timeout * 3);
        timed(app, PeerCall::Revoke, succeeds(request)).await
    }

    /// RFC 7662 2: whether the peer still honours a token it issued to us.
    pub async fn is_active(&self, app: &AppState, token: &str) -> Result<bool, PeerError> {
        let m = self.metadata(app).await?;
        let endpoint =
            m.introspection_endpoint.clone().ok_or_else(|| PeerError::Malformed("no introspection endpoint".into()))?;
        let request = self.authenticated(app, &m, &endpoint, vec![("token", token.to_owned())]);
        #[derive(Deserialize)]
        struct Introspection {
            active: bool,
        }
        timed(app, PeerCall::Introspect, async {
            let res = request.send().await.map_err(PeerError::from_reqwest)?;
            if !res.status().is_success() {
                return Err(oauth_error_body(res).await);
            }
            let body: Introspection = read_json(res).await?;
            Ok(body.active)
        })
        .await
    }

    /// A form POST to one of the peer's endpoints, authenticated as this
    /// party's client (RFC 6749 2.3): `client_secret_basic` (id and secret
    /// form-encoded first, 2.3.1) or `private_key_jwt` (RFC 7523 2.2).
    fn authenticated(
        &self,
        app: &AppState,
        m: &PeerMetadata,
        url: &str,
        mut form: Vec<(&'static str, String)>,
    ) -> reqwest::RequestBuilder {
        let request = app.http.post(url);
        match app.config.client_auth {
            ClientAuth::ClientSecretBasic => request
                .basic_auth(
                    urlencode(app.config.party.peer.our_client_id),
                    Some(urlencode(app.config.client_secret.secret())),
                )
                .form(&form),
            ClientAuth::PrivateKeyJwt => {
                if !form.iter().any(|(k, _)| *k == "client_id") {
                    form.push(("client_id", app.config.party.peer.our_client_id.to_owned()));
                }
                form.extend(self.assertion_params(app, m));
                request.form(&form)
            }
        }
    }

    /// RFC 7523 2.2 and 3: with `private_key_jwt`, a fresh assertion for one
    /// request: signed with this party's key (published in its JWKS), naming
    /// the peer's issuer as its only audience, living one minute, never reused.
    fn assertion_params(&self, app: &AppState, m: &PeerMetadata) -> Vec<(&'static str, String)> {
        if app.config.client_auth != ClientAuth::PrivateKeyJwt {
            return Vec::new();
        }
        let now = app.now();
        let me = app.config.party.peer.our_client_id;
        let claims = serde_json::json!({
            "iss": me, "sub": me, "aud": m.issuer, "iat": now, "exp": now + 60,
            "jti": crate::tokens::secrets::new_id(app.entropy.as_ref()),
        });
        vec![
            ("client_assertion_type", crate::server::client_auth::JWT_BEARER_ASSERTION.to_owned()),
            ("client_assertion", app.keys.sign("JWT", &claims)),
        ]
    }

    /// RFC 7662, remembered for a few seconds: whether the peer still
    /// honours the token, without asking on every page view.
    pub async fn is_active_cached(
        &self,
        app: &AppState,
        user_id: &str,
        token: &AccessToken,
    ) -> Result<bool, PeerError> {
        const FRESH_FOR: i64 = 5;
        let now = app.now();
        let key = token.digest();
        if let Some((k, at)) = locks::lock(&self.confirmed).get(user_id) {
            if *k == key && now - at < FRESH_FOR {
                return Ok(true);
            }
        }
        let active = self.is_active(app, token.secret()).await?;
        let mut confirmed = locks::lock(&self.confirmed);
        if confirmed.len() > 100_000 {
            confirmed.clear();
        }
        if active {
            confirmed.insert(user_id.to_owned(), (key, now));
        } else {
            confirmed.remove(user_id);
        }
        Ok(active)
    }
}

/// Sends `request`: any 2xx answer is success, anything else the peer's
/// RFC 6749 5.2 error.
async fn succeeds(request: reqwest::RequestBuilder) -> Result<(), PeerError> {
    let res = request.send().await.map_err(PeerError::from_reqwest)?;
    if res.status().is_success() {
        return Ok(());
    }
    Err(oauth_error_body(res).await)
}

/// Times one call to the peer and counts its failure by kind
/// (`peer_call_duration_seconds`, `peer_call_failures_total`).
pub async fn timed<T>(
    app: &AppState,
    call: PeerCall,
    request: impl std::future::Future<Output = Result<T, PeerError>>,
) -> Result<T, PeerError> {
    let started = std::time::Instant::now();
    let result = request.await;
    app.metrics.peer_call(call, started.elapsed(), result.as_ref().err());
    result
}

/// The `oauth2` crate's HTTP client: [`AppState::http`] (timeouts, no
/// redirects), with the answer read under [`MAX_ANSWER`].
async fn oauth_http(http: &reqwest::Client, request: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, PeerError> {
    let (parts, body) = request.into_parts();
    let res = http
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(PeerError::from_reqwest)?;
    let (status, headers) = (res.status(), res.headers().clone());
    let mut answer = oauth2::HttpResponse::new(read_body(res).await?);
    *answer.status_mut() = status;
    *answer.headers_mut() = headers;
    Ok(answer)
}

fn same_origin(a: &str, b: &str) -> bool {
    match (url::Url::parse(a), url::Url::parse(b)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

fn token_error(e: RequestTokenError<PeerError, BasicErrorResponse>) -> PeerError {
    match e {
        RequestTokenError::ServerResponse(r) => PeerError::Refused {
            error: r.error().as_ref().to_owned(),
            description: r.error_description().cloned().unwrap_or_default(),
        },
        RequestTokenError::Request(e) => e,
        RequestTokenError::Parse(_, _) => PeerError::Malformed("its token response is not valid".into()),
        RequestTokenError::Other(why) => PeerError::Malformed(why),
    }
}

/// An RFC 6749 5.2 error body, or a description of what came instead.
async fn oauth_error_body(res: reqwest::Response) -> PeerError {
    #[derive(Deserialize)]
    struct Body {
        error: String,
        #[serde(default)]
        error_description: Option<String>,
    }
    let status = res.status();
    match read_json::<Body>(res).await {
        Ok(b) if b.error == "temporarily_unavailable" || status.is_server_error() => {
            PeerError::Unreachable(format!("a temporary failure ({})", b.error_description.unwrap_or(b.error)))
        }
        Ok(b) => PeerError::Refused { error: b.error, description: b.error_description.unwrap_or_default() },
        Err(_) => PeerError::Malformed(format!("HTTP {status} without an OAuth error")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that answers every connection with `head` and then `body_len` bytes.
    fn answering(head: &'static str, body_len: usize) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for mut conn in listener.incoming().flatten() {
                let _ = conn.read(&mut [0u8; 1024]);
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&vec![b'a'; body_len]);
            }
        });
        url
    }

    #[actix_web::test]
    async fn answers_over_the_cap_are_refused_declared_or_not() {
        let http = crate::outbound::http_client(std::time::Duration::from_secs(5));
        let declared = answering("HTTP/1.1 200 OK\r\ncontent-length: 1048576\r\n\r\n", 1 << 20);
        let streamed = answering("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n", 1 << 20);
        for url in [declared, streamed] {
            let err = read_body(http.get(&url).send().await.unwrap()).await.unwrap_err();
            assert_eq!(err, PeerError::Malformed("its answer is larger than 256 KiB".into()), "{url}");
        }
        let small = answering("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n", 10);
        assert_eq!(read_body(http.get(&small).send().await.unwrap()).await.unwrap().len(), 10);
    }
}
