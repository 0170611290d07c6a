//! Tokens and keys: signing keys and the JWKS (RFC 7517), RFC 9068 access
//! tokens, and the opaque secrets (codes, refresh tokens) kept as digests.

pub mod access_token;
pub mod keys;
pub mod secrets;

pub use access_token::AccessClaims;
pub use keys::{KeyPolicy, KeyRing, SigningKeys, TokenError};
