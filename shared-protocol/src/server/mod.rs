//! The authorization server: metadata, the authorization and token
//! endpoints, client authentication, revocation and introspection.

pub mod authorize;
pub mod client_auth;
pub mod device;
pub mod grants;
pub mod introspect;
pub mod metadata;
pub mod pkce;
pub mod revoke;
pub mod scope;
pub mod token;

use actix_web::web;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(metadata::authorization_server_metadata)
        .service(metadata::protected_resource_metadata)
        .service(metadata::jwks_endpoint)
        .service(authorize::authorize_endpoint)
        .service(authorize::consent_decision)
        .service(token::token_endpoint)
        .service(revoke::revocation_endpoint)
        .service(introspect::introspection_endpoint)
        .service(device::device_authorization_endpoint)
        .service(device::device_page)
        .service(device::device_decision)
        .service(device::kiosk)
        .service(device::kiosk_decision);
}
