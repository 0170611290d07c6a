//! `refresh_token` (RFC 6749 6) with rotation and reuse detection (RFC 9700 4.14.2).

use async_trait::async_trait;

use super::{issue_tokens, Grant, GrantRequest, GrantResponse};
use crate::error::OAuthError;
use crate::grant_type::GrantType;
use crate::server::scope::Scope;
use crate::store::RefreshOutcome;
use crate::tokens::secrets;

pub struct RefreshToken;

#[async_trait(?Send)]
impl Grant for RefreshToken {
    fn grant_type(&self) -> GrantType {
        GrantType::RefreshToken
    }

    async fn exchange(&self, req: GrantRequest<'_>) -> Result<GrantResponse, OAuthError> {
        let app = req.app;
        let token_digest = secrets::RefreshToken::new(req.params.require("refresh_token")?).digest();
        let now = app.now();
        let unknown = || OAuthError::invalid_grant("the refresh token is not valid");
        // Check everything that does not burn the token first, so a bad request
        // (a wider scope, say) does not turn the client's next try into a "reuse".
        let (grant_id, expires_at, _) = app.store.refresh_token_grant(&token_digest).await?.ok_or_else(unknown)?;
        let mut grant = app.store.grant(&grant_id).await?.ok_or_else(unknown)?;
        if grant.client_id != req.client.id {
            return Err(OAuthError::invalid_grant("the refresh token was issued to another client"));
        }
        if grant.revoked_at.is_some() {
            return Err(OAuthError::invalid_grant("the refresh token was revoked"));
        }
        if expires_at <= now {
            return Err(OAuthError::invalid_grant("the refresh token has expired"));
        }
        // RFC 6749 6: a narrower scope may be asked for, never a wider one.
        if let Some(asked) = req.params.get("scope") {
            let asked = Scope::parse(asked);
            if asked.is_empty() || !asked.is_subset(&Scope::parse(&grant.scope)) {
                return Err(OAuthError::invalid_scope("the scope exceeds what was granted"));
            }
            grant.scope = asked.to_string();
        }
        let grace = app.config.lifetimes.refresh_reuse_grace;
        match app.store.use_refresh_token(&token_digest, now, grace).await? {
            // Within the grace (RFC 9700 4.14.2 leaves the policy to the server):
            // a client that lost the answer, or a sibling instance racing it, gets tokens too.
            RefreshOutcome::Fresh | RefreshOutcome::WithinGrace => {
                Ok(issue_tokens(app, &grant, None, true).await?.into())
            }
            // A rotated-out token is back: someone holds a copy. Revoke the family.
            RefreshOutcome::Reused { grant_id } => {
                app.revoke_grant(&grant_id).await?;
                Err(OAuthError::invalid_grant("the refresh token was already used; the grant is revoked"))
            }
            RefreshOutcome::Unknown => Err(unknown()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::error::ErrorCode;
    use crate::server::grants::{issue_tokens, TokenResponse};
    use crate::state::AppState;
    use crate::test_support::unit::{exchange, state, user_grant};

    async fn first_tokens(app: &AppState) -> TokenResponse {
        let grant = user_grant(app, "family").await;
        issue_tokens(app, &grant, None, true).await.unwrap()
    }

    async fn refresh(app: &AppState, body: &str) -> Result<TokenResponse, OAuthError> {
        exchange(&RefreshToken, app, body).await
    }

    #[actix_web::test]
    async fn each_refresh_rotates_and_a_reuse_revokes_the_family() {
        let app = state(ManualClock::new(5_000)).await;
        let first = first_tokens(&app).await;
        let r1 = first.refresh_token.unwrap().secret().to_owned();
        let second = refresh(&app, &format!("refresh_token={r1}")).await.unwrap();
        let r2 = second.refresh_token.clone().unwrap().secret().to_owned();
        assert_ne!(r1, r2);

        let reuse = refresh(&app, &format!("refresh_token={r1}")).await.unwrap_err();
        assert_eq!(reuse.code, ErrorCode::InvalidGrant);
        assert!(
            app.verify_access_token(second.access_token.secret()).await.is_err(),
            "the family's access token is revoked"
        );
        assert_eq!(refresh(&app, &format!("refresh_token={r2}")).await.unwrap_err().code, ErrorCode::InvalidGrant);
    }

    #[actix_web::test]
    async fn within_the_reuse_grace_the_replaced_token_is_honoured_once_and_the_family_kept() {
        let clock = ManualClock::new(5_000);
        let app = crate::test_support::unit::state_with(clock.clone(), &["--refresh-reuse-grace", "30"]).await;
        let r1 = first_tokens(&app).await.refresh_token.unwrap().secret().to_owned();
        let second = refresh(&app, &format!("refresh_token={r1}")).await.unwrap();
        clock.advance(30);
        let again = refresh(&app, &format!("refresh_token={r1}")).await.expect("honoured within 30 s");
        assert!(app.verify_access_token(second.access_token.secret()).await.is_ok(), "the family is kept");
        for next in [second.refresh_token.unwrap(), again.refresh_token.unwrap()].map(|r| r.secret().to_owned()) {
            assert!(refresh(&app, &format!("refresh_token={next}")).await.is_ok(), "both successors work");
        }
        // Only once: the next return of r1 is reuse, and ends the family.
        let reuse = refresh(&app, &format!("refresh_token={r1}")).await.unwrap_err();
        assert_eq!(reuse.code, ErrorCode::InvalidGrant);
        assert!(app.verify_access_token(again.access_token.secret()).await.is_err(), "the family is revoked");

        // Past the grace, the first return is reuse.
        let grant = user_grant(&app, "another").await;
        let r1 = issue_tokens(&app, &grant, None, true).await.unwrap().refresh_token.unwrap().secret().to_owned();
        let second = refresh(&app, &format!("refresh_token={r1}")).await.unwrap();
        clock.advance(31);
        assert_eq!(refresh(&app, &format!("refresh_token={r1}")).await.unwrap_err().code, ErrorCode::InvalidGrant);
        assert!(app.verify_access_token(second.access_token.secret()).await.is_err());
    }

    #[actix_web::test]
    async fn a_refresh_token_expires_after_its_lifetime() {
        let clock = ManualClock::new(5_000);
        let app = state(clock.clone()).await;
        let r1 = first_tokens(&app).await.refresh_token.unwrap().secret().to_owned();
        clock.advance(app.config.lifetimes.refresh_token);
        let err = refresh(&app, &format!("refresh_token={r1}")).await.unwrap_err();
        assert_eq!(err.description, "the refresh token has expired");
    }

    #[actix_web::test]
    async fn the_scope_may_narrow_but_not_widen() {
        let app = state(ManualClock::new(5_000)).await;
        let r1 = first_tokens(&app).await.refresh_token.unwrap().secret().to_owned();
        let err = refresh(&app, &format!("refresh_token={r1}&scope=player%3Aread+player%3Acontrol")).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidScope);
        // The refused request did not use the token up.
        assert!(refresh(&app, &format!("refresh_token={r1}&scope=player%3Aread")).await.is_ok());
    }
}
