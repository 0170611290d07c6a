//! The token endpoint (RFC 6749 3.2): parse (duplicates refused) →
//! authenticate the client → find the grant → let the grant answer.

use actix_web::http::header;
use actix_web::{post, web, HttpRequest, HttpResponse};

use super::client_auth::authenticate;
use super::grants::GrantRequest;
use crate::error::{ErrorCode, OAuthError};
use crate::grant_type::GrantType;
use crate::state::AppState;
use crate::web::form::OAuthForm;

#[post("/token")]
pub async fn token_endpoint(
    req: HttpRequest,
    app: web::Data<AppState>,
    OAuthForm(params): OAuthForm,
) -> Result<HttpResponse, OAuthError> {
    let grant_type = params.require("grant_type")?;
    let client = authenticate(&app, &req, &params).await?;
    let grant = GrantType::parse(grant_type).and_then(|g| app.grants.get(g)).ok_or_else(|| {
        OAuthError::new(ErrorCode::UnsupportedGrantType, "this server does not support that grant_type")
    })?;
    let grant_type = grant.grant_type();
    if !client.allows_grant(grant_type) {
        return Err(OAuthError::new(ErrorCode::UnauthorizedClient, "this client may not use that grant_type"));
    }
    let bearer = bearer_token(&req);
    let response = grant.exchange(GrantRequest { app: &app, client: &client, params: &params, bearer }).await?;
    app.metrics.token_issued(grant_type);
    Ok(no_store(HttpResponse::Ok()).json(response))
}

/// RFC 6749 5.1: responses with tokens or credentials must not be cached.
pub fn no_store(mut res: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    res.insert_header((header::CACHE_CONTROL, "no-store")).insert_header((header::PRAGMA, "no-cache"));
    res
}

/// The token of an `Authorization: Bearer` header (RFC 6750 2.1), if any.
pub(crate) fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}
