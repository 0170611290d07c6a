//! Token introspection (RFC 7662), for authenticated clients about the
//! tokens issued to them.

use actix_web::{post, web, HttpRequest, HttpResponse};
use serde_json::json;

use super::client_auth::authenticate;
use super::token::no_store;
use crate::error::OAuthError;
use crate::state::AppState;
use crate::tokens::access_token::{AccessClaims, ACCESS_TOKEN_TYP};
use crate::tokens::secrets::digest;
use crate::web::form::OAuthForm;

#[post("/introspect")]
pub async fn introspection_endpoint(
    req: HttpRequest,
    app: web::Data<AppState>,
    OAuthForm(params): OAuthForm,
) -> Result<HttpResponse, OAuthError> {
    let client = authenticate(&app, &req, &params).await?;
    let token = params.require("token")?;
    let now = app.now();
    let inactive = || no_store(HttpResponse::Ok()).json(json!({ "active": false }));

    if let Ok(c) = app.keys.verify::<AccessClaims>(&app.store, now, token, ACCESS_TOKEN_TYP).await {
        let live = c.iss == app.config.issuer() && c.exp > now && !app.store.is_grant_revoked(&c.gid).await?;
        // A client learns only about its own tokens (RFC 7662 2.2 leaves the policy to the server).
        if !live || c.client_id != client.id {
            return Ok(inactive());
        }
        let username = match app.store.user_by_id(&c.sub).await? {
            Some(u) => Some(u.username),
            None => None,
        };
        return Ok(no_store(HttpResponse::Ok()).json(json!({
            "active": true, "token_type": "Bearer", "scope": c.scope, "client_id": c.client_id,
            "username": username, "sub": c.sub, "aud": c.aud, "iss": c.iss, "exp": c.exp, "iat": c.iat, "jti": c.jti,
        })));
    }
    let Some((grant_id, expires_at, used)) = app.store.refresh_token_grant(&digest(token)).await? else {
        return Ok(inactive());
    };
    let Some(grant) = app.store.grant(&grant_id).await? else {
        return Ok(inactive());
    };
    if used || expires_at <= now || grant.revoked_at.is_some() || grant.client_id != client.id {
        return Ok(inactive());
    }
    Ok(no_store(HttpResponse::Ok()).json(json!({
        "active": true, "token_type": "refresh_token", "scope": grant.scope, "client_id": grant.client_id,
        "sub": grant.user_id, "iss": app.config.issuer(), "exp": expires_at,
    })))
}
