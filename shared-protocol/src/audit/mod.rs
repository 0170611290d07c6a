//! A verifiable audit of grant decisions (docs/audit.md). Each decision is a
//! Security Event Token (RFC 8417) signed with the party's key. A user's
//! entries form one chain, each naming the SHA-256 digest of the one before
//! it (the party's own entries, key changes, form another), so an entry
//! edited, removed or moved in the database breaks a signature or a chain,
//! and [`verify`] names the first entry that does. When the signing key
//! rotates, an entry signed by the new key carries the old public key first,
//! so the log stays verifiable with the JWKS alone after the old key retires.

pub mod pages;
pub mod verify;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::state::AppState;
use crate::store::{AuditEntry, AuditLink, AuditRow, DeviceDecision, StoreError, StoreResult};
use crate::tokens::secrets::{digest, new_id};
use crate::tokens::KeyRing;

/// The JWS `typ` of a SET (RFC 8417 2.3).
pub const SET_TYP: &str = "secevent+jwt";

/// Where this project's event type URIs (RFC 8417 2.2) start. They are its
/// own, not registered: a deployment would use a domain it controls.
pub const EVENT_TYPE_BASE: &str = "https://schemas.reciprocal-oauth.example/audit/";

/// Attempts at appending before giving up: each lost race is another
/// instance's append, so this many in a row means the database is stuck.
const APPEND_ATTEMPTS: usize = 64;

/// Which way a direction of a link points, seen from the party recording it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The peer's access to this party (a grant this party issued).
    Inbound,
    /// This party's access to the peer (tokens the peer issued to us).
    Outbound,
}

/// Why a direction of a link ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndCause {
    /// The user unlinked, denied or withdrew it here.
    User,
    /// The peer revoked it (RFC 7009), or asked us to.
    Peer,
    /// A new link with the peer took its place.
    Replaced,
}

/// A grant decision, as recorded.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// The user allowed a client (RFC 6749 4.1.2), here or at the
    /// reciprocal request (draft section 2, leg E).
    ConsentGiven { client_id: &'a str, scope: &'a str },
    /// The user refused a client's request.
    ConsentDenied { client_id: &'a str, scope: &'a str },
    /// The user took a client's access back on the home page.
    ConsentWithdrawn { client_id: &'a str },
    /// A device authorization request (RFC 8628) was approved, denied or
    /// withdrawn, by the account holder or by staff for them: the entry the
    /// kiosk's list keeps too.
    Device(&'a AuditEntry),
    /// A direction of the link now holds `scope`; `changed` when it held another.
    Link { direction: Direction, scope: &'a str, changed: bool },
    /// A direction of the link ended.
    LinkEnded { direction: Direction, cause: EndCause },
    /// The party signs with a new key from here on; `previous_key` is the
    /// public JWK of the one before, vouched for by the new one.
    KeyChanged { previous_kid: &'a str, previous_key: Value },
}

impl Event<'_> {
    /// The event type's last path segment.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ConsentGiven { .. } => "consent-given",
            Self::ConsentDenied { .. } => "consent-denied",
            Self::ConsentWithdrawn { .. } => "consent-withdrawn",
            Self::Device(e) => match e.decision {
                DeviceDecision::Approve => "device-approved",
                DeviceDecision::Deny => "device-denied",
                DeviceDecision::Withdraw => "device-withdrawn",
            },
            Self::Link { changed: false, .. } => "link-made",
            Self::Link { changed: true, .. } => "link-changed",
            Self::LinkEnded { .. } => "link-ended",
            Self::KeyChanged { .. } => "key-changed",
        }
    }

    /// The event's payload (RFC 8417 2.2: the member of `events`).
    fn payload(&self) -> Value {
        match self {
            Self::ConsentGiven { client_id, scope } | Self::ConsentDenied { client_id, scope } => {
                json!({ "client_id": client_id, "scope": scope })
            }
            Self::ConsentWithdrawn { client_id } => json!({ "client_id": client_id }),
            // The request is named by its device code's digest, never by the user code.
            Self::Device(e) => json!({
                "client_id": e.client_id, "scope": e.scope, "request": e.request_id,
                "actor": e.actor_id, "actor_role": e.actor_role.as_str(), "via": e.via.as_str(),
            }),
            Self::Link { direction, scope, .. } => json!({ "direction": direction, "scope": scope }),
            Self::LinkEnded { direction, cause } => json!({ "direction": direction, "cause": cause }),
            Self::KeyChanged { previous_kid, previous_key } => {
                json!({ "previous_kid": previous_kid, "previous_key": previous_key })
            }
        }
    }
}

/// The claims of an audit SET (RFC 8417 2.2). `seq` and `prev` are this
/// log's own: the entry's place in the log, and the digest of the entry
/// before it in the same chain (absent for a chain's first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetClaims {
    pub iss: String,
    pub iat: i64,
    pub jti: String,
    /// The user whose decision it is; absent for the party's own entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The link (RFC 8417 2.2 `txn`): the same at both parties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txn: Option<String>,
    pub seq: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<String>,
    pub events: Map<String, Value>,
}

impl SetClaims {
    /// The one event of this SET: its kind (the URI's last segment) and payload.
    pub fn event(&self) -> Option<(&str, &Value)> {
        let mut events = self.events.iter();
        let (uri, payload) = events.next()?;
        let kind = uri.strip_prefix(EVENT_TYPE_BASE)?;
        events.next().is_none().then_some((kind, payload))
    }
}

/// Records `event` as `user`'s decision (`None`: the party's own), naming
/// the link `txn` when it is about one. The decision has been taken and
/// stands: a failure to record it is logged for the operator, not shown to
/// the user (docs/audit.md, "Limits").
pub async fn record(app: &AppState, user: Option<&str>, txn: Option<&str>, event: Event<'_>) {
    if let Err(e) = append(app, user, txn, &event).await {
        tracing::error!(error = %e, kind = event.kind(), "the audit log could not record a decision");
    }
}

async fn append(app: &AppState, user: Option<&str>, txn: Option<&str>, event: &Event<'_>) -> StoreResult<()> {
    let stream = user.unwrap_or("");
    for _ in 0..APPEND_ATTEMPTS {
        let ring = app.keys.current();
        let tail = app.store.audit_tail().await?;
        if let Some(tail) = tail.as_ref().filter(|t| t.kid != ring.kid()) {
            // The key changed since the last entry: vouch for the old one first.
            let previous_key = ring.public_jwk(&tail.kid).unwrap_or(Value::Null);
            let change = Event::KeyChanged { previous_kid: &tail.kid, previous_key };
            try_append(app, &ring, Some(tail), "", None, &change).await?;
            continue;
        }
        if try_append(app, &ring, tail.as_ref(), stream, txn, event).await? {
            return Ok(());
        }
    }
    Err(StoreError(sqlx::Error::Protocol("the audit log stayed contended; the entry was not appended".into())))
}

/// One attempt at appending `event` to `stream` after `tail`.
async fn try_append(
    app: &AppState,
    ring: &KeyRing,
    tail: Option<&AuditRow>,
    stream: &str,
    txn: Option<&str>,
    event: &Event<'_>,
) -> StoreResult<bool> {
    let seq = tail.map_or(1, |t| t.seq + 1);
    let prev = app.store.audit_head(stream).await?;
    let now = app.now();
    let claims = SetClaims {
        iss: app.config.issuer().to_owned(),
        iat: now,
        jti: new_id(app.entropy.as_ref()),
        sub: (!stream.is_empty()).then(|| stream.to_owned()),
        txn: txn.map(str::to_owned),
        seq,
        prev: prev.clone(),
        events: Map::from_iter([(format!("{EVENT_TYPE_BASE}{}", event.kind()), event.payload())]),
    };
    let set_jwt = ring.sign(SET_TYP, &claims);
    let row = AuditRow {
        seq,
        stream: stream.to_owned(),
        prev: prev.unwrap_or_default(),
        digest: digest(&set_jwt),
        kid: ring.kid().to_owned(),
        at: now,
        set_jwt,
    };
    app.store.insert_audit_event(&row).await
}

/// Appends a key change if the signing key changed since the last entry, so
/// a quiet log stays verifiable after the key that signed it retires. Run by
/// housekeeping; safe on every instance at once.
pub async fn vouch_for_new_key(app: &AppState) -> StoreResult<()> {
    let Some(tail) = app.store.audit_tail().await? else { return Ok(()) };
    let ring = app.keys.current();
    if tail.kid == ring.kid() {
        return Ok(());
    }
    let previous_key = ring.public_jwk(&tail.kid).unwrap_or(Value::Null);
    try_append(app, &ring, Some(&tail), "", None, &Event::KeyChanged { previous_kid: &tail.kid, previous_key })
        .await
        .map(drop)
}

/// Records what a direction of the user's link holds now (`None`: nothing),
/// as made, changed or ended, once per change: every path that touches a
/// direction may call this, and calls that change nothing record nothing.
pub async fn link_direction(app: &AppState, user_id: &str, direction: Direction, scope: Option<&str>, cause: EndCause) {
    if let Err(e) = track_direction(app, user_id, direction, scope, cause).await {
        tracing::error!(error = %e, "the audit log could not record a link's change");
    }
}

async fn track_direction(
    app: &AppState,
    user_id: &str,
    direction: Direction,
    scope: Option<&str>,
    cause: EndCause,
) -> StoreResult<()> {
    let mut link = match app.store.audit_link(user_id).await? {
        Some(link) => link,
        // A direction seen before its link began (a restart mid-link): a link of its own.
        None => AuditLink {
            user_id: user_id.to_owned(),
            link_id: new_id(app.entropy.as_ref()),
            inbound: None,
            outbound: None,
        },
    };
    let held = match direction {
        Direction::Inbound => &mut link.inbound,
        Direction::Outbound => &mut link.outbound,
    };
    let event = match (held.as_deref(), scope) {
        (None, None) => return Ok(()),
        (Some(old), Some(new)) if old == new => return Ok(()),
        (old, Some(scope)) => Event::Link { direction, scope, changed: old.is_some() },
        (Some(_), None) => Event::LinkEnded { direction, cause },
    };
    *held = scope.map(str::to_owned);
    app.store.put_audit_link(&link).await?;
    record(app, Some(user_id), Some(&link.link_id), event).await;
    Ok(())
}

/// The link the user's entries name now, if any.
pub async fn current_link(app: &AppState, user_id: &str) -> Option<String> {
    app.store.audit_link(user_id).await.ok().flatten().map(|l| l.link_id)
}

/// A new link begins for the user, named by the digest of the first access
/// token of its first direction, which both parties hold (the peer issued
/// it, or received it back in the reciprocal grant). Directions the
/// previous link still held end as replaced.
pub async fn link_began(app: &AppState, user_id: &str, first_access_token: &str) {
    if let Err(e) = begin_link(app, user_id, first_access_token).await {
        tracing::error!(error = %e, "the audit log could not record a new link");
    }
}

async fn begin_link(app: &AppState, user_id: &str, first_access_token: &str) -> StoreResult<()> {
    let link_id = digest(first_access_token);
    if let Some(old) = app.store.audit_link(user_id).await? {
        if old.link_id == link_id {
            return Ok(());
        }
        for (direction, held) in [(Direction::Outbound, &old.outbound), (Direction::Inbound, &old.inbound)] {
            if held.is_some() {
                let ended = Event::LinkEnded { direction, cause: EndCause::Replaced };
                record(app, Some(user_id), Some(&old.link_id), ended).await;
            }
        }
    }
    app.store.put_audit_link(&AuditLink { user_id: user_id.to_owned(), link_id, inbound: None, outbound: None }).await
}

#[cfg(test)]
mod tests;
