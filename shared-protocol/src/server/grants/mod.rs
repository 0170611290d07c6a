//! The token endpoint's grants, one module each behind one trait, as
//! node-oidc-provider keeps one file per grant: `authorization_code`,
//! `refresh_token`, `client_credentials`, `device_code`. A new grant is one
//! module implementing [`Grant`], one [`GrantType`] variant and one line in
//! [`GrantRegistry::standard`] (or, for an extension, in its own list, as
//! `link::grant::grants` adds the reciprocal grant).

pub mod authorization_code;
pub mod client_credentials;
pub mod device_code;
pub mod refresh_token;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;

use super::client_auth::AuthenticatedClient;
use crate::error::OAuthError;
use crate::grant_type::GrantType;
use crate::state::AppState;
use crate::store::GrantRecord;
use crate::tokens::access_token::{AccessClaims, ACCESS_TOKEN_TYP};
use crate::tokens::secrets::{new_id, new_secret, AccessToken, RefreshToken};
use crate::web::form::Params;

/// Everything a grant may look at: the authenticated client and the request.
pub struct GrantRequest<'a> {
    pub app: &'a AppState,
    pub client: &'a AuthenticatedClient,
    pub params: &'a Params,
    /// The `Authorization: Bearer` token, which the legacy mutual grant carries.
    pub bearer: Option<&'a str>,
}

/// What a grant answers: tokens (RFC 6749 5.1), or for the reciprocal grant
/// an empty object once the code was redeemed.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum GrantResponse {
    Tokens(TokenResponse),
    Accepted(Empty),
}

/// Serialises as `{}`.
#[derive(Debug, Serialize)]
pub struct Empty {}

impl From<TokenResponse> for GrantResponse {
    fn from(t: TokenResponse) -> Self {
        Self::Tokens(t)
    }
}

/// RFC 6749 5.1 successful response.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: AccessToken,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<RefreshToken>,
    pub scope: String,
    /// Extension parameters (e.g. `reciprocal`).
    #[serde(flatten)]
    pub extra: BTreeMap<&'static str, String>,
}

#[async_trait(?Send)]
pub trait Grant: Send + Sync {
    /// The `grant_type` this grant answers to.
    fn grant_type(&self) -> GrantType;
    /// RFC 6749 4.x.3 / 5: the access token request, after client authentication.
    async fn exchange(&self, req: GrantRequest<'_>) -> Result<GrantResponse, OAuthError>;
}

/// The grants this server supports, looked up by `grant_type`.
pub struct GrantRegistry {
    grants: Vec<Box<dyn Grant>>,
}

impl GrantRegistry {
    pub fn new(grants: Vec<Box<dyn Grant>>) -> Self {
        Self { grants }
    }

    /// The grants of plain OAuth (RFC 6749, RFC 8628).
    pub fn standard() -> Self {
        Self::new(vec![
            Box::new(authorization_code::AuthorizationCode),
            Box::new(refresh_token::RefreshToken),
            Box::new(client_credentials::ClientCredentials),
            Box::new(device_code::DeviceCode),
        ])
    }

    /// These grants and an extension's.
    pub fn with(mut self, more: Vec<Box<dyn Grant>>) -> Self {
        self.grants.extend(more);
        self
    }

    pub fn get(&self, grant_type: GrantType) -> Option<&dyn Grant> {
        self.grants.iter().find(|g| g.grant_type() == grant_type).map(|g| g.as_ref())
    }

    pub fn grant_types(&self) -> impl Iterator<Item = GrantType> + '_ {
        self.grants.iter().map(|g| g.grant_type())
    }
}

/// Signs an RFC 9068 access token for `grant`, and with `refresh` a new
/// refresh token of the same family.
pub async fn issue_tokens(
    app: &AppState,
    grant: &GrantRecord,
    host: Option<String>,
    refresh: bool,
) -> Result<TokenResponse, OAuthError> {
    let now = app.now();
    let ttl = app.config.lifetimes.access_token;
    let claims = AccessClaims {
        iss: app.config.issuer().to_owned(),
        sub: grant.user_id.clone().unwrap_or_else(|| grant.client_id.clone()),
        aud: grant.audience.clone(),
        client_id: grant.client_id.clone(),
        scope: grant.scope.clone(),
        exp: now + ttl,
        iat: now,
        jti: new_id(app.entropy.as_ref()),
        gid: grant.id.clone(),
        host,
    };
    let refresh_token = if refresh {
        let token = RefreshToken::new(new_secret(app.entropy.as_ref()));
        let expires = now + app.config.lifetimes.refresh_token;
        app.store.insert_refresh_token(&token.digest(), &grant.id, expires).await?;
        Some(token)
    } else {
        None
    };
    Ok(TokenResponse {
        access_token: AccessToken::new(app.keys.sign(ACCESS_TOKEN_TYP, &claims)),
        token_type: "Bearer",
        expires_in: ttl,
        refresh_token,
        scope: grant.scope.clone(),
        extra: BTreeMap::new(),
    })
}
