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
    app: web::Data<AppState>,
    OAuthForm(params): OAuthForm,
) -> Result<HttpResponse, OAuthError> {
    let client = authenticate(&app, &req, &params).await?;
    let token = params.require("token")?;
    if let Some(hint) = params.get("token_type_hint") {
        if hint != "access_token" && hint != "refresh_token" {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedTokenType,
                "token_type_hint must be access_token or refresh_token",
            ));
        }
    }
    if let Some((grant_id, client_id)) = find_grant(&app, token).await? {
        // RFC 7009 2.1: only the client the token was issued to may revoke it.
        if client_id != client.id {
            return Err(OAuthError::new(ErrorCode::UnauthorizedClient, "the token was issued to another client"));
        }
        let grant = app.store.grant(&grant_id).await?;
        app.revoke_grant(&grant_id).await?;
        if let Some(live) = grant.filter(|g| g.revoked_at.is_none()) {
            app.hooks.revoked_by_client(&app, &live).await;
        }
    }
    // RFC 7009 2.2: an unknown or already invalid token is answered 200 too.
    Ok(no_store(HttpResponse::Ok()).finish())
}

/// The grant a token belongs to and the client it was issued to.
async fn find_grant(app: &AppState, token: &str) -> Result<Option<(String, String)>, OAuthError> {
    if let Ok(claims) = app.keys.verify::<AccessClaims>(&app.store, app.now(), token, ACCESS_TOKEN_TYP).await {
        return Ok(Some((claims.gid, claims.client_id)));
    }
    let Some((grant_id, _, _)) = app.store.refresh_token_grant(&digest(token)).await? else {
        return Ok(None);
    };
    Ok(app.store.grant(&grant_id).await?.map(|g| (g.id, g.client_id)))
}
