//! Token revocation (RFC 7009). Revoking any token revokes its grant, so the
//! access and refresh tokens of one authorization go together (RFC 7009 2.1).

use actix_web::{post, web, HttpRequest, HttpResponse};

use super::client_auth::authenticate;
use super::token::no_store;
use crate::error::{ErrorCode, OAuthError};
use crate::state::AppState;
use crate::tokens::access_token::{AccessClaims, ACCESS_TOKEN_TYP};
use crate::tokens::secrets::digest;
use crate::web::form::OAuthForm;

#[post("/revoke")]
pub async fn revocation_endpoint(
    req: HttpRequest,
    state: web::Data<AppState>,
    OAuthForm(params): OAuthForm,
) -> Result<HttpResponse, OAuthError> {
    let client = authenticate(&state, &req, &params).await?;
    let token = params.require("token")?;
    if let Some(hint) = params.get("token_type_hint") {
        if hint != "access_token" && hint != "refresh_token" {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedTokenType,
                "token_type_hint must be access_token or refresh_token",
            ));
        }
    }
    if let Some((grant_id, client_id)) = find_grant(&state, token).await? {
        // RFC 7009 2.1: only the client the token was issued to may revoke it.
        if client_id != client.client.id {
            return Err(OAuthError::new(ErrorCode::UnauthorizedClient, "the token was issued to another client"));
        }
        let grant = state.store.grant(&grant_id).await?;
        state.revoke_grant(&grant_id).await?;
        // CONTRACT 4: the peer revoking the live grant of its link is the peer
        // unlinking; this party ends every grant of that user's link and drops
        // its own side too. (Revoking a grant a newer link already superseded
        // is housekeeping, not unlinking.)
        if client.client.id == state.config.party.peer_client_id {
            if let Some(user_id) = grant.filter(|g| g.revoked_at.is_none()).and_then(|g| g.user_id) {
                crate::link::peer_unlinked(&state, &user_id).await;
            }
        }
    }
    // RFC 7009 2.2: an unknown or already invalid token is answered 200 too.
    Ok(no_store(HttpResponse::Ok()).finish())
}

/// The grant a token belongs to and the client it was issued to.
async fn find_grant(state: &AppState, token: &str) -> Result<Option<(String, String)>, OAuthError> {
    if let Ok(claims) = state.keys.verify::<AccessClaims>(&state.store, state.now(), token, ACCESS_TOKEN_TYP).await {
        return Ok(Some((claims.gid, claims.client_id)));
    }
    let Some((grant_id, _, _)) = state.store.refresh_token_grant(&digest(token)).await? else {
        return Ok(None);
    };
    Ok(state.store.grant(&grant_id).await?.map(|g| (g.id, g.client_id)))
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use crate::clock::ManualClock;
    use crate::server::grants::issue_tokens;
    use crate::testing::{form, send, service, state, user_grant};

    /// A grant of `user-1` to `peer` whose code was redeemed: access the peer holds.
    async fn redeemed(app: &crate::state::AppState, id: &str) -> crate::store::GrantRecord {
        let grant = user_grant(app, id).await;
        let code = crate::store::NewCode {
            digest: id,
            grant_id: id,
            client_id: "peer",
            user_id: "user-1",
            redirect_uri: None,
            scope: &grant.scope,
            audience: &grant.audience,
            code_challenge: None,
            expires_at: app.now() + 60,
        };
        app.store.insert_code(&code).await.unwrap();
        app.store.redeem_code(id, "peer", app.now()).await.unwrap();
        grant
    }

    fn revoke_as_peer(token: &str) -> actix_web::test::TestRequest {
        let basic = base64::engine::general_purpose::STANDARD.encode("peer:s");
        form("/revoke", None, &format!("token={token}")).insert_header(("authorization", format!("Basic {basic}")))
    }

    /// Issue 9: the peer revoking its link's live grant is an unlink, which
    /// ends every grant of that user's link, an orphan left by a crash too;
    /// revoking a grant already superseded is housekeeping and ends nothing.
    #[actix_web::test]
    async fn the_peer_revoking_its_live_grant_ends_every_grant_of_the_link() {
        let app = actix_web::web::Data::new(state(ManualClock::new(1_000)).await);
        let svc = service(&app).await;
        let orphan = redeemed(&app, "g-orphan").await;
        let live = redeemed(&app, "g-live").await;
        let superseded = redeemed(&app, "g-superseded").await;
        app.revoke_grant(&superseded.id).await.unwrap();
        let old = issue_tokens(&app, &superseded, None, true).await.unwrap();
        assert_eq!(send(&svc, revoke_as_peer(old.refresh_token.as_deref().unwrap())).await.status, 200);
        assert_eq!(app.store.live_grants("user-1", "peer").await.unwrap().len(), 2, "housekeeping ends nothing");

        let tokens = issue_tokens(&app, &live, None, true).await.unwrap();
        assert_eq!(send(&svc, revoke_as_peer(tokens.refresh_token.as_deref().unwrap())).await.status, 200);
        assert!(app.store.live_grants("user-1", "peer").await.unwrap().is_empty());
        assert!(app.store.is_grant_revoked(&orphan.id).await.unwrap());
    }
}
