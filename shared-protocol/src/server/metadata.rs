//! Discovery documents: RFC 8414 authorization server metadata, RFC 9728
//! protected resource metadata, and the JWKS (RFC 7517).

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{get, web, HttpResponse, ResponseError};
use serde_json::json;

use crate::error::{ErrorCode, OAuthError};
use crate::grant_type::GrantType;
use crate::state::AppState;

pub const JWKS_PATH: &str = "/jwks.json";
pub const RESOURCE_METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

#[get("/.well-known/oauth-authorization-server")]
pub async fn authorization_server_metadata(app: web::Data<AppState>) -> HttpResponse {
    let c = &app.config;
    let auth_methods = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"];
    // RFC 8414 2: required wherever private_key_jwt is listed.
    let signing_algs = ["ES256", "ES384", "EdDSA", "RS256", "PS256"];
    let grant_types: Vec<&str> = app.grants.grant_types().map(GrantType::as_str).collect();
    let scopes: Vec<&str> = c.scope_names().collect();
    cacheable(json!({
        "issuer": c.issuer(),
        "authorization_endpoint": c.endpoint("/authorize"),
        "token_endpoint": c.endpoint("/token"),
        "jwks_uri": c.endpoint(JWKS_PATH),
        "revocation_endpoint": c.endpoint("/revoke"),
        "introspection_endpoint": c.endpoint("/introspect"),
        "device_authorization_endpoint": c.endpoint("/device_authorization"),
        "registration_endpoint": c.endpoint(super::register::REGISTRATION_PATH),
        "client_id_metadata_document_supported": true,
        "scopes_supported": scopes,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": grant_types,
        "token_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": signing_algs,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_signing_alg_values_supported": signing_algs,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_signing_alg_values_supported": signing_algs,
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "protected_resources": [c.resource()],
    }))
}

/// RFC 9728 2 for the party as a whole: a token for it works at every API here.
#[get("/.well-known/oauth-protected-resource")]
pub async fn protected_resource_metadata(app: web::Data<AppState>) -> HttpResponse {
    let c = &app.config;
    cacheable(resource_document(&app, c.resource(), c.scope_names().collect(), c.party.name.to_owned()))
}

/// RFC 9728 3.1: the document of one API's URL, found by inserting the
/// well-known path before the URL's path; its `resource` is that URL (3.3).
#[get("/.well-known/oauth-protected-resource/{path:.*}")]
pub async fn api_resource_metadata(app: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let path = format!("/{}", path.into_inner());
    let c = &app.config;
    match (c.resource_of_path(&path), c.api_for(&path)) {
        (Some(resource), Some((api, scopes))) => {
            let name = format!("{} {api}", c.party.name);
            cacheable(resource_document(&app, &resource, scopes, name))
        }
        _ => {
            let mut res =
                OAuthError::new(ErrorCode::InvalidRequest, format!("{path} is not an API here")).error_response();
            *res.status_mut() = StatusCode::NOT_FOUND;
            res
        }
    }
}

fn resource_document(app: &AppState, resource: &str, scopes: Vec<&str>, name: String) -> serde_json::Value {
    json!({
        "resource": resource,
        "authorization_servers": [app.config.issuer()],
        "jwks_uri": app.config.endpoint(JWKS_PATH),
        "scopes_supported": scopes,
        "bearer_methods_supported": ["header"],
        "resource_signing_alg_values_supported": ["ES256"],
        "resource_name": name,
    })
}

#[get("/jwks.json")]
pub async fn jwks_endpoint(app: web::Data<AppState>) -> HttpResponse {
    cacheable(app.keys.current().jwks().clone())
}

fn cacheable(body: serde_json::Value) -> HttpResponse {
    HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "public, max-age=300")).json(body)
}
