//! `refresh_token` (RFC 6749 6) with rotation and reuse detection (RFC 9700 4.14.2).

use async_trait::async_trait;

use super::{issue_tokens, Grant, GrantRequest, TokenResponse};
use crate::error::OAuthError;
use crate::server::scope::Scope;
use crate::store::RefreshOutcome;
use crate::tokens::secrets::digest;

pub struct RefreshToken;

#[async_trait(?Send)]
impl Grant for RefreshToken {
    fn grant_type(&self) -> &'static str {
        "refresh_token"
    }

    async fn exchange(&self, req: GrantRequest<'_>) -> Result<TokenResponse, OAuthError> {
        let state = req.state;
        let presented = req.params.require("refresh_token")?;
        let now = state.now();
        let (grant_id, expires_at) = match state
            .store
            .use_refresh_token(&digest(presented), now)
            .await?
        {
            RefreshOutcome::Fresh {
                grant_id,
                expires_at,
            } => (grant_id, expires_at),
            // A rotated-out token is back: someone holds a copy. Revoke the family.
            RefreshOutcome::Reused { grant_id } => {
                state.revoke_grant(&grant_id).await?;
                return Err(OAuthError::invalid_grant(
                    "the refresh token was already used; the grant is revoked",
                ));
            }
            RefreshOutcome::Unknown => {
                return Err(OAuthError::invalid_grant("the refresh token is not valid"))
            }
        };
        let mut grant = state
            .store
            .grant(&grant_id)
            .await?
            .filter(|g| g.revoked_at.is_none())
            .ok_or_else(|| OAuthError::invalid_grant("the refresh token was revoked"))?;
        if grant.client_id != req.client.client.id {
            return Err(OAuthError::invalid_grant(
                "the refresh token was issued to another client",
            ));
        }
        if expires_at <= now {
            return Err(OAuthError::invalid_grant("the refresh token has expired"));
        }
        // RFC 6749 6: a narrower scope may be asked for, never a wider one.
        if let Some(asked) = req.params.get("scope") {
            let asked = Scope::parse(asked);
            if !asked.is_subset(&Scope::parse(&grant.scope)) || asked.is_empty() {
                return Err(OAuthError::invalid_scope(
                    "the scope exceeds what was granted",
                ));
            }
            grant.scope = asked.to_string();
        }
        issue_tokens(state, &grant, None, true).await
    }
}
