//! How an extension of this plain authorization server learns of what it
//! issues and adds to it, in the spirit of node-oidc-provider's events and
//! `registerGrantType`. New grants go into the
//! [`GrantRegistry`](super::grants::GrantRegistry); these hooks run where
//! RFC 6749 leaves room for extensions (extra parameters of the
//! authorization and token responses, 4.1.2 and 5.1) and when a client ends
//! a grant (RFC 7009 2.1). `link/` implements them to add Reciprocal OAuth;
//! a server without extensions uses [`NoHooks`].

use async_trait::async_trait;

use super::grants::TokenResponse;
use crate::error::OAuthError;
use crate::state::AppState;
use crate::store::{CodeRecord, GrantRecord};

#[async_trait(?Send)]
pub trait IssuanceHooks: Send + Sync {
    /// Whether the consent page presents `client_id`'s request as linking
    /// the user's two accounts rather than as an ordinary application.
    fn links_accounts(&self, _app: &AppState, _client_id: &str) -> bool {
        false
    }

    /// A user authorized a client (RFC 6749 4.1.2): `grant` and its code
    /// exist. Returns extra parameters for the authorization response.
    async fn authorized(&self, _app: &AppState, _grant: &GrantRecord) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    /// `code` of `grant` was redeemed and `tokens` are about to be sent
    /// (RFC 6749 4.1.4); an extension may add members (RFC 6749 5.1).
    async fn code_redeemed(
        &self,
        _app: &AppState,
        _code: &CodeRecord,
        _grant: &GrantRecord,
        _tokens: &mut TokenResponse,
    ) -> Result<(), OAuthError> {
        Ok(())
    }

    /// The client `grant` was issued to revoked it while it was live (RFC 7009 2.1).
    async fn revoked_by_client(&self, _app: &AppState, _grant: &GrantRecord) {}
}

/// A plain RFC 6749 server: nothing added.
pub struct NoHooks;

impl IssuanceHooks for NoHooks {}
