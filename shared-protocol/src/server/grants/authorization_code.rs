//! `authorization_code` (RFC 6749 4.1.3) with PKCE (RFC 7636 4.5–4.6).

use async_trait::async_trait;

use super::{issue_tokens, Grant, GrantRequest, GrantResponse};
use crate::error::OAuthError;
use crate::grant_type::GrantType;
use crate::server::pkce;
use crate::state::AppState;
use crate::store::{CodeRecord, GrantRecord, NewCode, RedeemOutcome, StoreResult};
use crate::tokens::secrets::{self, new_id, new_secret};

pub struct AuthorizationCode;

#[async_trait(?Send)]
impl Grant for AuthorizationCode {
    fn grant_type(&self) -> GrantType {
        GrantType::AuthorizationCode
    }

    async fn exchange(&self, req: GrantRequest<'_>) -> Result<GrantResponse, OAuthError> {
        let app = req.app;
        let code = secrets::AuthorizationCode::new(req.params.require("code")?);
        let now = app.now();
        let record = match app.store.redeem_code(&code.digest(), &req.client.id, now).await? {
            RedeemOutcome::Redeemed(record) => record,
            // RFC 6749 4.1.2 / RFC 9700 4.5: a replayed code revokes what it issued.
            RedeemOutcome::AlreadyUsed { grant_id } => {
                app.revoke_grant(&grant_id).await?;
                return Err(OAuthError::invalid_grant("the authorization code was already used"));
            }
            RedeemOutcome::OtherClient => {
                return Err(OAuthError::invalid_grant("the authorization code was issued to another client"))
            }
            RedeemOutcome::Unknown => return Err(OAuthError::invalid_grant("the authorization code is not valid")),
        };
        check_code(&record, &req, now)?;
        let grant = app
            .store
            .grant(&record.grant_id)
            .await?
            .filter(|g| g.revoked_at.is_none())
            .ok_or_else(|| OAuthError::invalid_grant("the authorization was withdrawn"))?;
        let refresh = req.client.allows_grant(GrantType::RefreshToken);
        let mut tokens = issue_tokens(app, &grant, None, refresh).await?;
        app.hooks.code_redeemed(app, &record, &grant, &mut tokens).await?;
        Ok(tokens.into())
    }
}

/// What a new code is bound to (RFC 6749 4.1.2, RFC 7636 4.4).
pub struct CodeBinding<'a> {
    pub client_id: &'a str,
    pub user_id: &'a str,
    pub scope: &'a str,
    pub audience: &'a str,
    /// Set when the authorization request named one; the token request must repeat it.
    pub redirect_uri: Option<&'a str>,
    pub code_challenge: Option<&'a str>,
}

/// Mints a single-use code (`--code-ttl`) and the grant it stands for; the
/// code itself is returned once and only its digest is stored.
pub async fn mint_code(app: &AppState, b: CodeBinding<'_>) -> StoreResult<(GrantRecord, secrets::AuthorizationCode)> {
    let now = app.now();
    let grant = GrantRecord {
        id: new_id(app.entropy.as_ref()),
        client_id: b.client_id.to_owned(),
        user_id: Some(b.user_id.to_owned()),
        scope: b.scope.to_owned(),
        audience: b.audience.to_owned(),
        created_at: now,
        revoked_at: None,
    };
    app.store.insert_grant(&grant).await?;
    let code = secrets::AuthorizationCode::new(new_secret(app.entropy.as_ref()));
    app.store
        .insert_code(&NewCode {
            digest: &code.digest(),
            grant_id: &grant.id,
            client_id: b.client_id,
            user_id: b.user_id,
            redirect_uri: b.redirect_uri,
            scope: b.scope,
            audience: b.audience,
            code_challenge: b.code_challenge,
            expires_at: now + app.config.lifetimes.authorization_code,
        })
        .await?;
    Ok((grant, code))
}

/// RFC 6749 4.1.3: the code is live, was issued to this client, and the
/// redirect URI and PKCE verifier match the authorization request.
pub fn check_code(record: &CodeRecord, req: &GrantRequest<'_>, now: i64) -> Result<(), OAuthError> {
    if record.expires_at <= now {
        return Err(OAuthError::invalid_grant("the authorization code has expired"));
    }
    if record.client_id != req.client.id {
        return Err(OAuthError::invalid_grant("the authorization code was issued to another client"));
    }
    if record.redirect_uri.as_deref() != req.params.get("redirect_uri") {
        return Err(OAuthError::invalid_grant("redirect_uri does not match the authorization request"));
    }
    match (&record.code_challenge, req.params.get("code_verifier").map(secrets::PkceVerifier::from)) {
        (Some(challenge), Some(verifier)) => {
            if !pkce::is_valid_verifier(&verifier) {
                return Err(OAuthError::invalid_request("code_verifier is malformed (RFC 7636 4.1)"));
            }
            if !pkce::verify_s256(&verifier, challenge) {
                return Err(OAuthError::invalid_grant("code_verifier does not match the code challenge"));
            }
        }
        (Some(_), None) => return Err(OAuthError::invalid_grant("code_verifier is required")),
        (None, Some(_)) => return Err(OAuthError::invalid_grant("no code challenge was sent for this code")),
        (None, None) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::test_support::unit::{exchange, state, user_grant};

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    const REDIRECT: &str = "http://localhost:10/link/callback";

    async fn mint(app: &crate::state::AppState, code: &str) {
        let grant = user_grant(app, &format!("g-{code}")).await;
        let new = NewCode {
            digest: &secrets::AuthorizationCode::new(code).digest(),
            grant_id: &grant.id,
            client_id: "peer",
            user_id: "user-1",
            redirect_uri: Some(REDIRECT),
            scope: "player:read",
            audience: &grant.audience,
            code_challenge: Some(CHALLENGE),
            expires_at: app.now() + app.config.lifetimes.authorization_code,
        };
        app.store.insert_code(&new).await.unwrap();
    }

    async fn redeem(app: &crate::state::AppState, body: &str) -> Result<super::super::TokenResponse, OAuthError> {
        exchange(&AuthorizationCode, app, body).await
    }

    fn body(code: &str, verifier: &str) -> String {
        format!("code={code}&redirect_uri={}&code_verifier={verifier}", crate::web::form::urlencode(REDIRECT))
    }

    #[actix_web::test]
    async fn a_code_yields_tokens_once_and_a_replay_revokes_them() {
        let app = state(ManualClock::new(1_000)).await;
        mint(&app, "c1").await;
        let tokens = redeem(&app, &body("c1", VERIFIER)).await.unwrap();
        assert_eq!(tokens.scope, "player:read");
        assert!(tokens.refresh_token.is_some());
        assert!(app.verify_access_token(tokens.access_token.secret()).await.is_ok());

        let replay = redeem(&app, &body("c1", VERIFIER)).await.unwrap_err();
        assert_eq!(replay.code, crate::error::ErrorCode::InvalidGrant);
        assert!(
            app.verify_access_token(tokens.access_token.secret()).await.is_err(),
            "replay revokes the first tokens"
        );
    }

    #[actix_web::test]
    async fn a_replay_after_the_hourly_prune_still_revokes_while_the_code_is_kept() {
        let clock = ManualClock::new(1_000);
        let app = state(clock.clone()).await;
        mint(&app, "c6").await;
        redeem(&app, &body("c6", VERIFIER)).await.unwrap();
        let peer = app.config.party.peer.client_id;
        // Past the code's life, within the day pruning waits after it.
        clock.advance(app.config.lifetimes.authorization_code + 3_600);
        crate::housekeeping::prune(&app, app.now()).await;
        assert_eq!(app.store.redeemed_grants("user-1", peer).await.unwrap().len(), 1);
        let replay = redeem(&app, &body("c6", VERIFIER)).await.unwrap_err();
        assert_eq!(replay.code, crate::error::ErrorCode::InvalidGrant);
        let grant = app.store.grant("g-c6").await.unwrap().unwrap();
        assert_eq!(grant.revoked_at, Some(app.now()), "the replay revokes what the code issued");
        assert!(app.store.redeemed_grants("user-1", peer).await.unwrap().is_empty());
    }

    #[actix_web::test]
    async fn what_the_home_page_shows_survives_the_pruning_of_the_code() {
        let clock = ManualClock::new(1_000);
        let app = state(clock.clone()).await;
        mint(&app, "c7").await;
        redeem(&app, &body("c7", VERIFIER)).await.unwrap();
        // What the home and link pages show the peer may do here (`link::peer_scope_here`).
        let peer = app.config.party.peer.client_id;
        let shown =
            |grants: Vec<crate::store::GrantRecord>| grants.into_iter().map(|g| (g.id, g.scope)).collect::<Vec<_>>();
        let before = shown(app.store.redeemed_grants("user-1", peer).await.unwrap());
        assert_eq!(before, [("g-c7".to_owned(), "player:read".to_owned())]);
        clock.advance(app.config.lifetimes.authorization_code + 2 * 86_400);
        crate::housekeeping::prune(&app, app.now()).await;
        let replay = redeem(&app, &body("c7", VERIFIER)).await.unwrap_err();
        assert_eq!(replay.description, "the authorization code is not valid", "the code itself is gone");
        assert_eq!(shown(app.store.redeemed_grants("user-1", peer).await.unwrap()), before);
    }

    #[actix_web::test]
    async fn a_code_expires_after_its_lifetime() {
        let clock = ManualClock::new(1_000);
        let app = state(clock.clone()).await;
        mint(&app, "c2").await;
        clock.advance(app.config.lifetimes.authorization_code);
        let err = redeem(&app, &body("c2", VERIFIER)).await.unwrap_err();
        assert_eq!(err.description, "the authorization code has expired");
    }

    #[actix_web::test]
    async fn the_verifier_and_redirect_uri_must_match() {
        let app = state(ManualClock::new(1_000)).await;
        mint(&app, "c3").await;
        let wrong = body("c3", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK");
        assert_eq!(redeem(&app, &wrong).await.unwrap_err().code, crate::error::ErrorCode::InvalidGrant);
        mint(&app, "c4").await;
        let no_redirect = format!("code=c4&code_verifier={VERIFIER}");
        assert_eq!(redeem(&app, &no_redirect).await.unwrap_err().code, crate::error::ErrorCode::InvalidGrant);
        mint(&app, "c5").await;
        let no_verifier = format!("code=c5&redirect_uri={}", crate::web::form::urlencode(REDIRECT));
        assert_eq!(redeem(&app, &no_verifier).await.unwrap_err().description, "code_verifier is required");
    }
}
