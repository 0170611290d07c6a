//! The protocol both parties share: a plain OAuth 2.0 authorization server,
//! the client of the peer, what Reciprocal OAuth adds on top (the link), the
//! resource server guard, storage, sessions and pages. A party is a
//! [`config::Party`] profile plus its own API; [`run_party`] does the rest.
//!
//! Reading order (docs/architecture.md draws the layers, docs/protocol.md
//! maps each leg of the draft to its code):
//!
//! 1. [`server`]: the authorization server of RFC 6749, one file per
//!    endpoint and one per grant under `server/grants/`, knowing nothing of
//!    the link; [`server::hooks`] is where an extension plugs in.
//! 2. [`link`]: what draft-ietf-oauth-reciprocal adds: the reciprocal
//!    grant (receiver), the sender, the authorization update, unlink, the
//!    pages and the trace.
//! 3. [`client`]: this party calling its peer (RFC 8414 metadata, the code
//!    flow, refresh, revocation, introspection) and Distributed OAuth discovery.
//! 4. [`tokens`], [`resource`]: keys and JWT access tokens, and their check at the APIs.
//! 5. [`audit`]: every grant decision as a signed, chained Security Event
//!    Token (RFC 8417), its pages and its verifier.
//! 6. [`store`], [`web`], [`startup`], [`housekeeping`], [`metrics`]: storage, pages and
//!    sessions, start-up, the background loop, what `/metrics` shows.

pub mod accounts;
pub mod audit;
pub mod client;
pub mod clock;
pub mod config;
pub mod error;
pub mod grant_type;
pub mod housekeeping;
pub mod link;
mod locks;
pub mod logs;
pub mod memory;
pub mod metrics;
pub mod outbound;
pub mod resource;
pub mod server;
pub mod startup;
pub mod state;
pub mod store;
#[doc(hidden)]
pub mod test_support;
pub mod text_enum;
pub mod tokens;
pub mod web;

pub use startup::{app, build_state, run_party, serve};
