//! The reciprocal grant (draft-ietf-oauth-reciprocal 2.2, the receiver) and
//! its earlier form `mutual_authorization_code` (draft-hardt-oauth-mutual-00
//! 2), two more grants of the plain server's registry ([`grants`]).
//!
//! The peer (party A of the draft) pushes a code it minted for us, with the
//! access token we issued to it naming the user. We check that token, redeem
//! the code at the peer's token endpoint as an ordinary `authorization_code`
//! grant, keep the peer's tokens for that user, and only then answer `{}`.

use async_trait::async_trait;

use super::trace::{self, Attempt};
use crate::error::{ApiError, ErrorCode, OAuthError};
use crate::grant_type::GrantType;
use crate::metrics::LinkOutcome;
use crate::outbound::PeerError;
use crate::server::grants::{Empty, Grant, GrantRequest, GrantResponse};
use crate::store::Leg;
use crate::tokens::secrets::AuthorizationCode;

/// The grants the link adds to the token endpoint.
pub fn grants() -> Vec<Box<dyn Grant>> {
    vec![Box::new(Reciprocal), Box::new(LegacyMutual)]
}

/// `grant_type=urn:ietf:params:oauth:grant-type:reciprocal`, the token in `access_token`.
pub struct Reciprocal;

/// `grant_type=mutual_authorization_code`, the token in `Authorization: Bearer`.
pub struct LegacyMutual;

#[async_trait(?Send)]
impl Grant for Reciprocal {
    fn grant_type(&self) -> GrantType {
        GrantType::Reciprocal
    }

    async fn exchange(&self, req: GrantRequest<'_>) -> Result<GrantResponse, OAuthError> {
        let token = req.params.require("access_token")?;
        accept(&req, token).await
    }
}

#[async_trait(?Send)]
impl Grant for LegacyMutual {
    fn grant_type(&self) -> GrantType {
        GrantType::LegacyMutual
    }

    async fn exchange(&self, req: GrantRequest<'_>) -> Result<GrantResponse, OAuthError> {
        let token = req
            .bearer
            .ok_or_else(|| OAuthError::invalid_request("send the access token in the Authorization: Bearer header"))?;
        accept(&req, token).await
    }
}

/// Leg G at the receiver, counted whatever its end: ok once the peer's
/// tokens are kept; refused when the push or the peer's answer said no;
/// failed when the peer could not be asked or storage failed.
async fn accept(req: &GrantRequest<'_>, access_token: &str) -> Result<GrantResponse, OAuthError> {
    let result = accept_push(req, access_token).await;
    let outcome = match &result {
        Ok(_) => LinkOutcome::Ok,
        Err(e) if matches!(e.code, ErrorCode::TemporarilyUnavailable | ErrorCode::ServerError) => LinkOutcome::Failed,
        Err(_) => LinkOutcome::Refused,
    };
    req.app.metrics.link_outcome(Leg::G, outcome);
    result
}

async fn accept_push(req: &GrantRequest<'_>, access_token: &str) -> Result<GrantResponse, OAuthError> {
    let app = req.app;
    let code = AuthorizationCode::new(req.params.require("code")?);
    // Leg F at the receiver: the access token must be one we issued, still live, to this very client.
    let claims = app.verify_access_token(access_token).await.map_err(|e| match e {
        ApiError::Internal => OAuthError::new(ErrorCode::ServerError, "the access_token could not be checked"),
        e => OAuthError::invalid_grant(format!("the access_token is not valid here: {}", e.describe())),
    })?;
    if claims.client_id != req.client.id {
        return Err(OAuthError::invalid_grant("the access_token was issued to another client"));
    }
    let Some(user_id) = claims.user_id().map(str::to_owned) else {
        return Err(OAuthError::invalid_grant("the access_token does not name a user"));
    };
    let peer = app.config.party.peer.name;
    // At this end the attempt is named by the grant the peer's token belongs to.
    let attempt = Attempt::new(&user_id, &claims.gid);
    trace::received(app, attempt, Leg::F, "reciprocal grant: code + access_token (redacted)").await;
    trace::sent(app, attempt, Leg::G, "authorization_code grant: the pushed code").await;
    let tokens = app.peer.redeem_pushed_code(app, &code).await.map_err(|e| {
        let outcome = format!("{peer} answered: {e}");
        let error = match e {
            PeerError::Refused { .. } => OAuthError::invalid_grant(format!("{peer} refused the code: {e}")),
            PeerError::Unreachable(_) | PeerError::Malformed(_) => {
                OAuthError::new(ErrorCode::TemporarilyUnavailable, format!("the code could not be redeemed now: {e}"))
            }
        };
        (error, outcome)
    });
    let tokens = match tokens {
        Ok(t) => t,
        Err((error, outcome)) => {
            trace::received(app, attempt, Leg::G, &outcome).await;
            return Err(error);
        }
    };
    let summary = format!("access token (scope {}), refresh token", tokens.scope);
    trace::received(app, attempt, Leg::G, &summary).await;
    super::keep_peer_tokens(app, &user_id, &tokens).await?;
    trace::sent(app, attempt, Leg::F, "200 {}").await;
    Ok(GrantResponse::Accepted(Empty {}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::server::grants::issue_tokens;
    use crate::state::AppState;
    use crate::store::GrantRecord;
    use crate::test_support::unit::{exchange, state, user_grant};

    async fn token_of(app: &AppState, client_id: &str, id: &str) -> String {
        let grant = GrantRecord { client_id: client_id.into(), ..user_grant(app, id).await };
        let grant = GrantRecord { id: format!("{id}-{client_id}"), ..grant };
        app.store.insert_grant(&grant).await.unwrap();
        issue_tokens(app, &grant, None, false).await.unwrap().access_token.secret().to_owned()
    }

    async fn push(app: &AppState, token: &str) -> OAuthError {
        exchange(&Reciprocal, app, &format!("code=c1&access_token={token}")).await.unwrap_err()
    }

    #[actix_web::test]
    async fn a_token_issued_to_another_client_is_foreign() {
        let app = state(ManualClock::new(1_000)).await;
        let token = token_of(&app, "speaker", "g1").await;
        let err = push(&app, &token).await;
        assert_eq!(
            (err.code, err.description.as_ref()),
            (ErrorCode::InvalidGrant, "the access_token was issued to another client")
        );
    }

    #[actix_web::test]
    async fn an_expired_or_revoked_or_unknown_token_is_refused() {
        let clock = ManualClock::new(1_000);
        let app = state(clock.clone()).await;
        let expiring = token_of(&app, "peer", "g2").await;
        let revoked = token_of(&app, "peer", "g3").await;
        app.revoke_grant("g3-peer").await.unwrap();
        assert!(push(&app, &revoked).await.description.contains("revoked"));
        assert_eq!(push(&app, "not-a-token").await.code, ErrorCode::InvalidGrant);
        clock.advance(app.config.lifetimes.access_token);
        assert!(push(&app, &expiring).await.description.contains("expired"));
    }

    #[actix_web::test]
    async fn the_code_and_token_are_required() {
        let app = state(ManualClock::new(1_000)).await;
        let err = exchange(&Reciprocal, &app, "access_token=x").await.unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        let err = exchange(&Reciprocal, &app, "code=c").await.unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        // The legacy form wants the token in the Authorization header.
        let err = exchange(&LegacyMutual, &app, "code=c").await.unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
    }

    #[actix_web::test]
    async fn a_peer_that_cannot_be_reached_is_a_temporary_failure() {
        let app = state(ManualClock::new(1_000)).await;
        let token = token_of(&app, "peer", "g4").await;
        let err = push(&app, &token).await;
        assert_eq!(err.code, ErrorCode::TemporarilyUnavailable, "{}", err.description);
    }
}
