//! The reciprocal grant (draft-ietf-oauth-reciprocal 2; CONTRACT section 4,
//! steps 7–8) and its earlier form `mutual_authorization_code`
//! (draft-hardt-oauth-mutual-00 2).
//!
//! The peer (party A of the draft) pushes a code it minted for us, with the
//! access token we issued to it naming the user. We check that token, redeem
//! the code at the peer's token endpoint as an ordinary `authorization_code`
//! grant, keep the peer's tokens for that user, and only then answer `{}`.

use async_trait::async_trait;

use super::{Empty, Grant, GrantRequest, GrantResponse};
use crate::client::{PeerError, MUTUAL_GRANT, RECIPROCAL_GRANT};
use crate::error::{ErrorCode, OAuthError};
use crate::link::{self, trace};

/// `grant_type=urn:ietf:params:oauth:grant-type:reciprocal`, the token in `access_token`.
pub struct Reciprocal;

/// `grant_type=mutual_authorization_code`, the token in `Authorization: Bearer`.
pub struct LegacyMutual;

#[async_trait(?Send)]
impl Grant for Reciprocal {
    fn grant_type(&self) -> &'static str {
        RECIPROCAL_GRANT
    }

    async fn exchange(&self, req: GrantRequest<'_>) -> Result<GrantResponse, OAuthError> {
        let token = req.params.require("access_token")?;
        accept(&req, token).await
    }
}

#[async_trait(?Send)]
impl Grant for LegacyMutual {
    fn grant_type(&self) -> &'static str {
        MUTUAL_GRANT
    }

    async fn exchange(&self, req: GrantRequest<'_>) -> Result<GrantResponse, OAuthError> {
        let token = req
            .bearer
            .ok_or_else(|| OAuthError::invalid_request("send the access token in the Authorization: Bearer header"))?;
        accept(&req, token).await
    }
}

async fn accept(req: &GrantRequest<'_>, access_token: &str) -> Result<GrantResponse, OAuthError> {
    let app = req.state;
    let code = req.params.require("code")?;
    // Step 7: the access token must be one we issued, still live, to this very client.
    let claims = app
        .verify_access_token(access_token)
        .await
        .map_err(|e| OAuthError::invalid_grant(format!("the access_token is not valid here: {}", e.describe())))?;
    if claims.client_id != req.client.client.id {
        return Err(OAuthError::invalid_grant("the access_token was issued to another client"));
    }
    let grant = app.store.grant(&claims.gid).await?;
    let Some(user_id) = grant.and_then(|g| g.user_id) else {
        return Err(OAuthError::invalid_grant("the access_token does not name a user"));
    };
    let peer = app.config.party.peer_name;
    let me = app.config.party.name;
    trace::record(app, &user_id, &claims.gid, "F", peer, me, "reciprocal grant: code + access_token (redacted)")
        .await;

    trace::record(app, &user_id, &claims.gid, "G", me, peer, "authorization_code grant: the pushed code").await;
    let tokens = app.peer.redeem_pushed_code(app, code).await.map_err(|e| {
        let outcome = format!("{peer} answered: {e}");
        let error = match e {
            PeerError::Refused { .. } => OAuthError::invalid_grant(format!("{peer} refused the code: {e}")),
            PeerError::Unreachable(_) | PeerError::Malformed(_) => {
                OAuthError::new(ErrorCode::TemporarilyUnavailable, format!("the code could not be redeemed: {e}"))
            }
        };
        (error, outcome)
    });
    let tokens = match tokens {
        Ok(t) => t,
        Err((error, outcome)) => {
            trace::record(app, &user_id, &claims.gid, "G", peer, me, &outcome).await;
            return Err(error);
        }
    };
    let summary = format!("access token (scope {}), refresh token", tokens.scope);
    trace::record(app, &user_id, &claims.gid, "G", peer, me, &summary).await;
    link::keep_peer_tokens(app, &user_id, &tokens).await?;
    trace::record(app, &user_id, &claims.gid, "F", me, peer, "200 {}").await;
    Ok(GrantResponse::Accepted(Empty {}))
}
