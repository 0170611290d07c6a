//! `authorization_code` (RFC 6749 4.1.3) with PKCE (RFC 7636 4.5–4.6).

use async_trait::async_trait;

use super::{issue_tokens, Grant, GrantRequest, TokenResponse};
use crate::error::OAuthError;
use crate::server::pkce;
use crate::store::{CodeRecord, RedeemOutcome};
use crate::tokens::secrets::digest;

pub struct AuthorizationCode;

#[async_trait(?Send)]
impl Grant for AuthorizationCode {
    fn grant_type(&self) -> &'static str {
        "authorization_code"
    }

    async fn exchange(&self, req: GrantRequest<'_>) -> Result<TokenResponse, OAuthError> {
        let state = req.state;
        let code = req.params.require("code")?;
        let now = state.now();
        let record = match state.store.redeem_code(&digest(code), now).await? {
            RedeemOutcome::Redeemed(record) => record,
            // RFC 6749 4.1.2 / RFC 9700 4.5: a replayed code revokes what it issued.
            RedeemOutcome::AlreadyUsed { grant_id } => {
                state.revoke_grant(&grant_id).await?;
                return Err(OAuthError::invalid_grant(
                    "the authorization code was already used",
                ));
            }
            RedeemOutcome::Unknown => {
                return Err(OAuthError::invalid_grant(
                    "the authorization code is not valid",
                ))
            }
        };
        check_code(&record, &req, now)?;
        let grant = state
            .store
            .grant(&record.grant_id)
            .await?
            .filter(|g| g.revoked_at.is_none())
            .ok_or_else(|| OAuthError::invalid_grant("the authorization was withdrawn"))?;
        let refresh = req.client.client.allows_grant("refresh_token");
        issue_tokens(state, &grant, None, refresh).await
    }
}

/// RFC 6749 4.1.3: the code is live, was issued to this client, and the
/// redirect URI and PKCE verifier match the authorization request.
pub fn check_code(record: &CodeRecord, req: &GrantRequest<'_>, now: i64) -> Result<(), OAuthError> {
    if record.expires_at <= now {
        return Err(OAuthError::invalid_grant(
            "the authorization code has expired",
        ));
    }
    if record.client_id != req.client.client.id {
        return Err(OAuthError::invalid_grant(
            "the authorization code was issued to another client",
        ));
    }
    if record.redirect_uri.as_deref() != req.params.get("redirect_uri") {
        return Err(OAuthError::invalid_grant(
            "redirect_uri does not match the authorization request",
        ));
    }
    match (&record.code_challenge, req.params.get("code_verifier")) {
        (Some(challenge), Some(verifier)) => {
            if !pkce::is_valid_verifier(verifier) {
                return Err(OAuthError::invalid_request(
                    "code_verifier is malformed (RFC 7636 4.1)",
                ));
            }
            if !pkce::verify_s256(verifier, challenge) {
                return Err(OAuthError::invalid_grant(
                    "code_verifier does not match the code challenge",
                ));
            }
        }
        (Some(_), None) => return Err(OAuthError::invalid_grant("code_verifier is required")),
        (None, Some(_)) => {
            return Err(OAuthError::invalid_grant(
                "no code challenge was sent for this code",
            ))
        }
        (None, None) => {}
    }
    Ok(())
}
