//! The application state every handler receives as `web::Data<AppState>`,
//! built once from the [`Config`]. No globals: tests build their own.

use std::sync::Arc;

use crate::accounts::{Hasher, SignInBackoff};
use crate::client::PeerClient;
use crate::clock::{Clock, Entropy};
use crate::config::Config;
use crate::resource::{RevocationList, VerifiedTokens};
use crate::server::client_auth::{ClientDirectory, JwksCache};
use crate::server::grants::GrantRegistry;
use crate::server::hooks::IssuanceHooks;
use crate::store::{Store, StoreResult};

/// A hash to verify against when the user does not exist, so timing does not
/// tell (argon2id with this crate's default cost, of no password anyone has).
pub const DUMMY_PASSWORD_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$QaAxDYfUa+udgjv86hdH9w$XtG43RVe6GwA5NCVMnit3X88QwRFTVSMfKG2pLHWL70";
use crate::tokens::SigningKeys;

pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub keys: SigningKeys,
    pub clock: Arc<dyn Clock>,
    pub entropy: Arc<dyn Entropy>,
    pub grants: GrantRegistry,
    /// What extensions (the link) add to issuance; see [`IssuanceHooks`].
    pub hooks: Box<dyn IssuanceHooks>,
    pub clients: ClientDirectory,
    /// Clients known by their metadata document's URL.
    pub client_documents: crate::server::client_metadata::ClientDocuments,
    /// This party as a client of the peer.
    pub peer: PeerClient,
    pub trace_counter: crate::link::trace::TraceCounter,
    pub client_keys: JwksCache,
    pub revocations: RevocationList,
    pub verified: VerifiedTokens,
    /// Password hashing, a bounded number at a time.
    pub hasher: Hasher,
    /// Failed sign-ins (and user codes) per account and address.
    pub backoff: SignInBackoff,
    /// Rate limits on the unauthenticated paths.
    pub limits: crate::web::limits::Limits,
    /// For every outbound call: bounded by a timeout, never following redirects.
    pub http: reqwest::Client,
    /// When the database last answered the health check.
    pub db_seen_at: std::sync::atomic::AtomicI64,
    /// What `/metrics` shows of this instance.
    pub metrics: crate::metrics::Metrics,
}

impl AppState {
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Revokes a grant and every token of its family, here and (through the
    /// database) at every other instance (RFC 7009 2.1, RFC 9700 4.14.2).
    pub async fn revoke_grant(&self, grant_id: &str) -> StoreResult<()> {
        let now = self.now();
        self.store.revoke_grant(grant_id, now).await?;
        self.revocations.note(grant_id, now);
        Ok(())
    }
}
