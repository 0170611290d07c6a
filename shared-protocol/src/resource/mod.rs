//! The resource-server side: the bearer guard every API handler takes
//! (RFC 6750, RFC 9068 4), its verified-token cache and the revocation list.
//!
//! The hot path is a hash lookup of an already verified token plus a check
//! that its grant is not revoked; the ES256 signature is verified once per
//! distinct token.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{get, web, FromRequest, HttpRequest, HttpResponse};
use futures_util::future::LocalBoxFuture;
use serde_json::json;

use crate::error::{ApiError, ApiRejection, Challenge};
use crate::locks;
use crate::server::metadata::RESOURCE_METADATA_PATH;
use crate::state::AppState;
use crate::store::{Store, StoreResult};
use crate::tokens::access_token::{AccessClaims, ACCESS_TOKEN_TYP};

/// Revoked grants, kept in memory for the access-token lifetime and synced
/// from the database so instances learn of each other's revocations.
#[derive(Default)]
pub struct RevocationList {
    revoked: RwLock<HashMap<String, i64>>,
    synced_to: AtomicI64,
}

impl RevocationList {
    /// How far instances' clocks may disagree without a revocation being missed.
    const CLOCK_SLACK: i64 = 120;

    pub fn is_revoked(&self, grant_id: &str) -> bool {
        locks::read(&self.revoked).contains_key(grant_id)
    }

    pub fn note(&self, grant_id: &str, at: i64) {
        locks::write(&self.revoked).insert(grant_id.to_owned(), at);
    }

    /// Pulls revocations made since the last sync (by any instance) and
    /// forgets those older than any token that could still be alive.
    pub async fn sync(&self, store: &Store, now: i64, forget_before: i64) -> StoreResult<()> {
        // Overlap generously: another instance's clock may trail ours.
        let since = self.synced_to.load(Ordering::Relaxed).min(now) - Self::CLOCK_SLACK;
        let rows = store.revoked_since(since.max(forget_before)).await?;
        let mut map = locks::write(&self.revoked);
        for (grant_id, at) in rows {
            map.insert(grant_id, at);
        }
        map.retain(|_, at| *at >= forget_before);
        self.synced_to.store(now, Ordering::Relaxed);
        Ok(())
    }
}

/// Access tokens whose signature and claims were verified, until they expire.
#[derive(Default)]
pub struct VerifiedTokens {
    map: RwLock<HashMap<String, Arc<AccessClaims>>>,
}

impl VerifiedTokens {
    const CAPACITY: usize = 100_000;

    fn get(&self, token: &str) -> Option<Arc<AccessClaims>> {
        locks::read(&self.map).get(token).cloned()
    }

    fn insert(&self, token: &str, claims: Arc<AccessClaims>, now: i64) {
        let mut map = locks::write(&self.map);
        if map.len() >= Self::CAPACITY {
            map.retain(|_, c| c.exp > now);
            if map.len() >= Self::CAPACITY {
                map.clear();
            }
        }
        map.insert(token.to_owned(), claims);
    }
}

impl AppState {
    /// RFC 9068 4: signature, `typ`, `iss`, `aud`, `exp`, then revocation.
    pub async fn verify_access_token(&self, token: &str) -> Result<Arc<AccessClaims>, ApiError> {
        let now = self.now();
        let claims = match self.verified.get(token) {
            Some(c) => c,
            None => {
                let c: AccessClaims = self
                    .keys
                    .verify(&self.store, now, token, ACCESS_TOKEN_TYP)
                    .await
                    .map_err(|e| ApiError::InvalidToken(e.to_string().into()))?;
                let ours = |aud: &str| self.config.audience_for(aud).is_some_and(|a| a == aud);
                c.check(self.config.issuer(), ours, now).map_err(|e| ApiError::InvalidToken(e.into()))?;
                // First sight of this token: ask the database, so a revocation made by
                // another instance a moment ago is honoured even before the next sync.
                if self.store.is_grant_revoked(&c.gid).await.map_err(|_| ApiError::Internal)? {
                    self.revocations.note(&c.gid, now);
                }
                let c = Arc::new(c);
                self.verified.insert(token, c.clone(), now);
                c
            }
        };
        if claims.exp <= now {
            return Err(ApiError::InvalidToken("the token has expired".into()));
        }
        if self.revocations.is_revoked(&claims.gid) {
            return Err(ApiError::InvalidToken("the token was revoked".into()));
        }
        Ok(claims)
    }

    /// The challenge parameters for a call to `path`: its API's own resource
    /// metadata (RFC 9728 3.1 path insertion, 5.1), or the party's.
    pub fn challenge(&self, path: &str) -> Challenge {
        let document = match self.config.resource_of_path(path) {
            Some(_) => format!("{RESOURCE_METADATA_PATH}{path}"),
            None => RESOURCE_METADATA_PATH.to_owned(),
        };
        Challenge {
            realm: self.config.party.name.to_owned(),
            issuer: self.config.issuer().to_owned(),
            resource_metadata: self.config.endpoint(&document),
        }
    }
}

/// A request authorized by a valid bearer access token for this party's API.
pub struct Bearer {
    pub claims: Arc<AccessClaims>,
    app: web::Data<AppState>,
    /// The path called, for the challenge of a rejection.
    path: String,
}

impl Bearer {
    /// 403 `insufficient_scope` unless the token carries `scope` (RFC 6750 3.1).
    pub fn require_scope(&self, scope: &'static str) -> Result<(), ApiRejection> {
        if self.claims.has_scope(scope) {
            Ok(())
        } else {
            Err(self.reject(ApiError::InsufficientScope { required: scope }))
        }
    }

    /// The user the token acts for; tokens of `client_credentials` act for no one.
    pub fn user_id(&self) -> Result<&str, ApiRejection> {
        // A valid token, only not one for this API: 403, so a client does not re-authorise in a loop.
        self.claims.user_id().ok_or_else(|| self.reject(ApiError::NoUser))
    }

    pub fn reject(&self, error: ApiError) -> ApiRejection {
        ApiRejection { error, challenge: self.app.challenge(&self.path) }
    }
}

impl FromRequest for Bearer {
    type Error = ApiRejection;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        #[allow(clippy::expect_used, reason = "startup::app registers the AppState every route runs with")]
        let app = req.app_data::<web::Data<AppState>>().cloned().expect("AppState is registered");
        // RFC 6750 2.1 only: tokens in query strings or bodies leak into logs and history.
        let header = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let path = req.path().to_owned();
        Box::pin(async move {
            let token = header.as_deref().and_then(|h| {
                let (scheme, rest) = h.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim().to_owned())
            });
            let Some(token) = token.filter(|t| !t.is_empty()) else {
                return Err(ApiRejection { error: ApiError::MissingToken, challenge: app.challenge(&path) });
            };
            match app.verify_access_token(&token).await {
                // RFC 8707: a token for one API here is refused by the others.
                Ok(claims) if !app.config.audience_admits(&claims.aud, &path) => {
                    let error = ApiError::InvalidToken("the token is meant for another API".into());
                    Err(ApiRejection { error, challenge: app.challenge(&path) })
                }
                Ok(claims) => Ok(Bearer { claims, app, path }),
                Err(error) => Err(ApiRejection { error, challenge: app.challenge(&path) }),
            }
        })
    }
}

/// `GET /api/whoami`: what the presented token lets its holder do here (any
/// valid token). Lets a client developer check a token against this API
/// without side effects; it touches no storage, so it is also the guard's
/// own cost in the benchmark.
#[get("/api/whoami")]
pub async fn whoami(bearer: Bearer) -> HttpResponse {
    let c = &bearer.claims;
    HttpResponse::Ok().json(json!({ "sub": c.sub, "client_id": c.client_id, "scope": c.scope, "exp": c.exp }))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(whoami);
}
