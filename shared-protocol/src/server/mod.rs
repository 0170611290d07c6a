//! The authorization server: metadata, the authorization and token
//! endpoints, client authentication, revocation and introspection.

pub mod authorize;
pub mod client_auth;
pub mod client_metadata;
pub mod device;
pub mod grants;
pub mod hooks;
pub mod introspect;
pub mod metadata;
pub mod pkce;
pub mod register;
pub mod revoke;
pub mod scope;
pub mod token;

use actix_web::web;

/// The endpoints machines call (RFC 8414 metadata, RFC 9728 resource
/// metadata, the JWKS, token, revocation, introspection, device
/// authorization): no cookie, no page, so they are served without the session
/// and pages layers. Every path here must be in [`PROTOCOL_PATHS`].
pub fn protocol_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(metadata::authorization_server_metadata)
        .service(metadata::protected_resource_metadata)
        .service(metadata::api_resource_metadata)
        .service(metadata::jwks_endpoint)
        .service(token::token_endpoint)
        .service(revoke::revocation_endpoint)
        .service(introspect::introspection_endpoint)
        .service(device::device_authorization_endpoint)
        .service(register::registration_endpoint)
        .service(register::read_registration)
        .service(register::delete_registration);
}

/// The paths [`protocol_routes`] serves: a request for one of them, or for
/// anything under `/.well-known/` or `/register/`, is routed to the protocol scope.
pub const PROTOCOL_PATHS: &[&str] = &[
    "/token",
    "/revoke",
    "/introspect",
    "/device_authorization",
    "/jwks.json",
    register::REGISTRATION_PATH,
    "/.well-known/oauth-authorization-server",
    metadata::RESOURCE_METADATA_PATH,
];

/// Whether `path` belongs to the protocol scope (see [`protocol_routes`]).
pub fn is_protocol_path(path: &str) -> bool {
    PROTOCOL_PATHS.contains(&path) || path.starts_with("/.well-known/") || path.starts_with("/register/")
}

/// The pages of the authorization server a person sees: the consent page
/// (RFC 6749 4.1.1), the device verification page (RFC 8628 3.3) and the kiosk.
pub fn page_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(authorize::authorize_endpoint)
        .service(authorize::consent_decision)
        .service(device::device_page)
        .service(device::device_decision)
        .service(device::kiosk)
        .service(device::kiosk_decision);
}

#[cfg(test)]
mod tests {
    /// The plain server knows nothing of the link or of this party
    /// as a client; the draft reaches it only through the grant registry and
    /// [`super::hooks::IssuanceHooks`].
    #[test]
    fn the_plain_server_does_not_reach_into_the_link_or_the_client() {
        fn sources(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
                match entry.path() {
                    p if p.is_dir() => sources(&p, found),
                    p if p.extension().is_some_and(|e| e == "rs") => found.push(p),
                    _ => {}
                }
            }
        }
        let mut files = Vec::new();
        sources(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/server"), &mut files);
        assert!(files.len() > 10, "found the server's modules");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim_start().starts_with("//")) {
                for layer in [concat!("crate::", "link"), concat!("crate::", "client")] {
                    assert!(!line.contains(layer), "{}:{}: {line}", file.display(), n + 1);
                }
            }
        }
    }
}
