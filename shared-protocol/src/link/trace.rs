//! The protocol trace: each party records the messages of each link attempt
//! it takes part in (legs A–G of draft-ietf-oauth-reciprocal Figure 1, as
//! this project maps them below), never a secret; `/link/trace` draws
//! them as a sequence diagram ([`super::trace_diagram`]).
//!
//! | leg | message |
//! |---|---|
//! | A | authorization request (browser to the peer's `/authorize`) |
//! | B | authorization response: code, state, iss (back through the browser) |
//! | C | access token request: the code, PKCE verifier, client authentication |
//! | D | access token response, with `reciprocal` |
//! | E | the user's consent to the reciprocal request |
//! | F | the reciprocal grant: the minted code and the access token; `{}` back |
//! | G | the peer redeems that code as an `authorization_code` grant |

use std::sync::atomic::{AtomicI64, Ordering};

use crate::state::AppState;
use crate::store::{FlowStep, GrantRecord, Leg, TraceEvent};

/// Orders the events this instance records within one second.
#[derive(Default)]
pub struct TraceCounter(AtomicI64);

impl TraceCounter {
    /// An ordering key for an event at `now` (seconds): later seconds sort
    /// later, and events of one second in the order this instance saw them.
    pub fn seq(&self, now: i64) -> i64 {
        now * 1_000_000 + self.0.fetch_add(1, Ordering::Relaxed).rem_euclid(1_000_000)
    }
}

/// The link attempt of a user that a message belongs to: at the party that
/// started it, its flow id; at the other, the id of the grant it made.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub user_id: &'a str,
    pub id: &'a str,
}

impl<'a> Attempt<'a> {
    pub fn new(user_id: &'a str, id: &'a str) -> Self {
        Self { user_id, id }
    }
}

/// A message this party sent to the peer.
pub async fn sent(app: &AppState, attempt: Attempt<'_>, leg: Leg, summary: &str) {
    let party = app.config.party;
    record(app, attempt, leg, (party.name, party.peer.name), summary).await
}

/// A message this party received from the peer.
pub async fn received(app: &AppState, attempt: Attempt<'_>, leg: Leg, summary: &str) {
    let party = app.config.party;
    record(app, attempt, leg, (party.peer.name, party.name), summary).await
}

/// Something the user told this party (a consent, a settings change).
pub async fn from_user(app: &AppState, attempt: Attempt<'_>, leg: Leg, summary: &str) {
    record(app, attempt, leg, (USER, app.config.party.name), summary).await
}

/// The user's lane on the diagram.
pub const USER: &str = "You";

/// Stores one message of an attempt. A trace is a debugging aid: failing to
/// store it is logged and never fails the protocol step itself.
async fn record(app: &AppState, attempt: Attempt<'_>, leg: Leg, (from, to): (&str, &str), summary: &str) {
    let at = app.now();
    let seq = app.trace_counter.seq(at);
    let event = TraceEvent {
        seq,
        user_id: attempt.user_id.to_owned(),
        attempt: attempt.id.to_owned(),
        leg,
        sender: from.to_owned(),
        receiver: to.to_owned(),
        summary: summary.to_owned(),
        at,
    };
    if let Err(e) = app.store.insert_trace(&event).await {
        tracing::warn!(error = %e, "a trace event was not stored");
    }
}

/// Legs A and B at the authorization server: a code issued to the peer's client.
pub async fn record_authorization(app: &AppState, grant: &GrantRecord) {
    let Some(user) = grant.user_id.as_deref() else { return };
    let asked = format!("GET /authorize: client_id={}, scope {}, PKCE S256, state", grant.client_id, grant.scope);
    let attempt = Attempt::new(user, &grant.id);
    received(app, attempt, Leg::A, &asked).await;
    sent(app, attempt, Leg::B, "redirect to /link/callback: code (redacted), state, iss").await;
}

/// Tokens issued to the peer's client: legs C and D for a code of the
/// browser flow, leg G for a code this party pushed with the reciprocal grant.
pub async fn record_issued(app: &AppState, grant: &GrantRecord, pushed: bool) {
    let Some(user) = grant.user_id.as_deref() else { return };
    let (ask, answer) = if pushed { (Leg::G, Leg::G) } else { (Leg::C, Leg::D) };
    // A pushed code belongs to the link attempt now sending it, when there is one.
    let sending = match pushed {
        true => app.store.latest_flow(user).await.ok().flatten().filter(|f| f.step == FlowStep::Sending),
        false => None,
    };
    let attempt = Attempt::new(user, sending.as_ref().map_or(grant.id.as_str(), |f| f.id.as_str()));
    received(app, attempt, ask, "POST /token authorization_code: code (redacted)").await;
    let tokens =
        format!("access and refresh token (scope {}), reciprocal: {}", grant.scope, app.config.party.wants_from_peer());
    sent(app, attempt, answer, &tokens).await;
}
