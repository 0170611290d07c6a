//! The link between a user's account here and at the peer: the tokens held
//! from the peer (refreshed before they expire), the reciprocal sender
//! (legs E–F of docs/protocol.md, and the authorization update of
//! draft-ietf-oauth-reciprocal section 3), unlinking, and what the home page shows.
//!
//! A link attempt is a persisted state machine ([`crate::store::LinkFlow`]):
//!
//! ```text
//! authorizing ──callback──▶ sending ──code redeemed──▶ consent ──approve──▶ sending ──200──▶ done
//!      │         (redeeming)    │   └─nothing asked──▶ done        │             │
//!      └──error──▶ failed ◀─────┘error                └─deny──▶ done └──error──▶ failed ──retry──▶ sending
//! ```
//!
//! An authorization update (`/link/settings`) starts at `sending`; an unlink
//! is recorded as `done` with its message. A `sending` left far longer than
//! any call may take (a crash mid-call) becomes `failed`, so it can be retried.
//!
//! Each arrow is a compare-and-set on the stored step, so a double submit,
//! the back button or a replayed callback can never run a step twice, and a
//! restart between two steps leaves a state the user can continue from.

pub mod grant;
pub mod hooks;
pub mod pages;
pub mod trace;
pub mod trace_diagram;

use crate::audit::{self, Direction, EndCause};
use crate::client::IssuedTokens;
use crate::config::{ReciprocalForm, ScopeInfo};
use crate::metrics::{LinkOutcome, PeerCall};
use crate::outbound::PeerError;
use crate::server::grants::authorization_code::{mint_code, CodeBinding};
use crate::server::scope::Scope;
use crate::state::AppState;
use crate::store::{Leg, LockKind, PeerToken, StoreResult};
use trace::Attempt;

/// Refresh a held token this long before it expires.
const REFRESH_MARGIN: i64 = 60;

/// Why a held token cannot be used right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkProblem {
    /// This user has no link to the peer in this direction.
    NotLinked,
    /// The peer no longer accepts the link; it must be made again.
    Broken(String),
    /// The peer could not be asked; try again later.
    Unreachable(String),
    /// The peer's API answered with an error.
    Refused(String),
}

impl LinkProblem {
    pub fn describe(&self, peer: &str) -> String {
        match self {
            Self::NotLinked => format!("You have not linked with {peer} yet."),
            Self::Broken(why) => why.clone(),
            Self::Unreachable(why) => format!("{peer} gave {why}. Try again in a moment."),
            Self::Refused(why) => format!("{peer} refused: {why}."),
        }
    }
}

impl From<crate::store::StoreError> for LinkProblem {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::error!(error = %e, "storage failure reading a held token");
        Self::Unreachable("no answer (our storage failed)".into())
    }
}

/// Keeps the tokens the peer issued to us for a user. Older ones (a link
/// made again) are revoked at the peer, so no second refresh family lingers.
pub async fn keep_peer_tokens(app: &AppState, user_id: &str, t: &IssuedTokens) -> StoreResult<()> {
    let now = app.now();
    let older = app.store.peer_token(user_id).await?;
    app.store
        .save_peer_token(&PeerToken {
            user_id: user_id.to_owned(),
            access_token: t.access_token.clone(),
            refresh_token: t.refresh_token.clone(),
            scope: t.scope.clone(),
            expires_at: now + t.expires_in,
            broken: None,
            updated_at: now,
        })
        .await?;
    audit::link_direction(app, user_id, Direction::Outbound, Some(&t.scope), EndCause::User).await;
    let peer = app.config.party.peer.name;
    app.store.close_waiting_flows(user_id, &format!("Replaced by a newer link with {peer}.")).await?;
    if let Some(old) = older.filter(|o| !o.access_token.is(&t.access_token)) {
        if let Err(e) = revoke_at_peer(app, &old).await {
            tracing::warn!(error = %e, "the peer could not be asked to revoke replaced tokens");
        }
    }
    Ok(())
}

/// The user's usable token at the peer, refreshed first when it is about to
/// expire (RFC 6749 6). A refused refresh marks the link broken.
pub async fn held_token(app: &AppState, user_id: &str) -> Result<PeerToken, LinkProblem> {
    let held = app.store.peer_token(user_id).await?.ok_or(LinkProblem::NotLinked)?;
    if let Some(why) = held.broken {
        return Err(LinkProblem::Broken(why));
    }
    if held.expires_at - app.now() > REFRESH_MARGIN {
        return Ok(held);
    }
    refresh(app, user_id).await
}

/// Refreshes the user's held token now, one refresh at a time per user
/// across every instance: the peer treats a refresh token presented twice as
/// stolen and ends the grant.
pub async fn refresh(app: &AppState, user_id: &str) -> Result<PeerToken, LinkProblem> {
    let lock = app.peer.refresh_locks.of(user_id);
    let _one_at_a_time_here = lock.lock().await;
    let everywhere = app.store.lock_user(LockKind::Refresh, user_id).await?;
    let outcome = refresh_held(app, user_id).await;
    everywhere.release().await?;
    outcome
}

/// [`refresh`] once the user's lock is held.
async fn refresh_held(app: &AppState, user_id: &str) -> Result<PeerToken, LinkProblem> {
    // Another request may have refreshed while we waited.
    let held = app.store.peer_token(user_id).await?.ok_or(LinkProblem::NotLinked)?;
    if let Some(why) = held.broken {
        return Err(LinkProblem::Broken(why));
    }
    let now = app.now();
    if held.expires_at - now > REFRESH_MARGIN {
        return Ok(held);
    }
    let peer = app.config.party.peer.name;
    let Some(refresh_token) = held.refresh_token.clone() else {
        let why = format!("The access {peer} gave has expired and cannot be renewed. Link again.");
        app.store.mark_peer_token_broken(user_id, &why, now).await?;
        return Err(LinkProblem::Broken(why));
    };
    match app.peer.refresh(app, &refresh_token, &held.scope).await {
        Ok(t) => {
            let next = PeerToken {
                user_id: user_id.to_owned(),
                access_token: t.access_token,
                // RFC 6749 6: without a new refresh token the old one stays valid.
                refresh_token: t.refresh_token.or(Some(refresh_token.clone())),
                scope: t.scope,
                expires_at: now + t.expires_in,
                broken: None,
                updated_at: now,
            };
            if app.store.replace_refreshed_token(&refresh_token, &next).await? {
                return Ok(next);
            }
            // Another instance refreshed first: what it stored is current.
            let current = app.store.peer_token(user_id).await?.ok_or(LinkProblem::NotLinked)?;
            match current.broken {
                Some(why) => Err(LinkProblem::Broken(why)),
                None => Ok(current),
            }
        }
        // Only invalid_grant says the authorization itself is gone (RFC 6749 5.2);
        // anything else may pass, so the link is kept.
        Err(e) if e.is_refusal("invalid_grant") => {
            let why = format!("{peer} no longer accepts this link (renewing the access was {e}). Link again.");
            app.store.mark_peer_token_broken(user_id, &why, now).await?;
            Err(LinkProblem::Broken(why))
        }
        Err(e) => Err(LinkProblem::Unreachable(e.to_string())),
    }
}

/// Leg D: what the peer asks for here. The token response's `reciprocal`
/// wins over the authorization response's; with neither, the scope the two
/// parties agreed beforehand (`agreed`) applies. Only scopes in `agreed` may
/// be granted, whatever the peer asks for.
pub fn reciprocal_request(
    in_token_response: Option<&str>,
    in_authorization_response: Option<&str>,
    agreed: &str,
) -> Scope {
    let agreed = Scope::parse(agreed);
    let asked = match in_token_response.or(in_authorization_response) {
        Some(s) if Scope::is_well_formed(s) => Scope::parse(s),
        Some(_) => Scope::default(),
        None => agreed.clone(),
    };
    asked.intersection(&agreed)
}

/// One scope with the words a user reads.
#[derive(Debug, Clone)]
pub struct ScopeWords {
    pub name: String,
    pub description: String,
}

impl ScopeWords {
    pub fn list(scope: &Scope, known: &[ScopeInfo]) -> Vec<Self> {
        scope
            .iter()
            .map(|s| Self {
                name: s.to_owned(),
                description: known.iter().find(|k| k.name == s).map_or(s, |k| k.description).to_owned(),
            })
            .collect()
    }
}

/// How far the user's link with the peer reaches (docs/choices.md, "Link state").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Neither party may use the other.
    None,
    /// One direction holds, either one.
    OneWay,
    /// Each party may use the other.
    Mutual,
}

impl LinkState {
    /// As pages mark it for tests and tools: `data-link-state`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::OneWay => "one-way",
            Self::Mutual => "mutual",
        }
    }

    /// The result in words, as an outcome page's heading states it.
    pub fn heading(self) -> &'static str {
        match self {
            Self::None => "Not linked",
            Self::OneWay => "Linked one way",
            Self::Mutual => "Linked both ways",
        }
    }
}

/// The link as the home and outcome pages show it: both directions.
#[derive(Debug, Clone)]
pub struct LinkView {
    pub state: LinkState,
    /// What this party may do at the peer, for this user.
    pub here_at_peer: Vec<ScopeWords>,
    /// Why this party's access at the peer does not work, if it does not.
    pub here_at_peer_problem: Option<String>,
    /// What the peer may do here, for this user.
    pub peer_here: Vec<ScopeWords>,
}

/// What the peer may do here for the user: the scopes of its live grants.
pub async fn peer_scope_here(app: &AppState, user_id: &str) -> StoreResult<Scope> {
    let grants = app.store.redeemed_grants(user_id, app.config.party.peer.client_id).await?;
    Ok(grants.iter().fold(Scope::default(), |acc, g| acc.union(&Scope::parse(&g.scope))))
}

/// Both directions of the user's link, checking with the peer (RFC 7662)
/// that the access it gave us still stands, since it can withdraw it at its end.
pub async fn view(app: &AppState, user_id: &str) -> StoreResult<LinkView> {
    view_checked(app, user_id, true).await
}

/// Both directions as this party knows them, without asking the peer: right
/// after a link attempt, when what it holds was just settled with the peer.
pub async fn view_here(app: &AppState, user_id: &str) -> StoreResult<LinkView> {
    view_checked(app, user_id, false).await
}

async fn view_checked(app: &AppState, user_id: &str, ask_peer: bool) -> StoreResult<LinkView> {
    let party = app.config.party;
    let (mut here_at_peer, mut problem) = (Scope::default(), None);
    if let Some(held) = app.store.peer_token(user_id).await? {
        match held.broken {
            Some(why) => problem = Some(why),
            None if !ask_peer => here_at_peer = Scope::parse(&held.scope),
            None => match page_view_check(app, app.peer.is_active_cached(app, user_id, &held.access_token)).await {
                Ok(true) => here_at_peer = Scope::parse(&held.scope),
                // Expired, or withdrawn at the peer: a refresh tells which.
                Ok(false) => match refresh_now(app, user_id).await {
                    Ok(t) => here_at_peer = Scope::parse(&t.scope),
                    Err(p) => problem = Some(p.describe(party.peer.name)),
                },
                Err(e) => {
                    here_at_peer = Scope::parse(&held.scope);
                    problem = Some(format!("{} could not be asked whether this still works: {e}.", party.peer.name));
                }
            },
        }
    }
    let peer_here = peer_scope_here(app, user_id).await?;
    let state = match (here_at_peer.is_empty(), peer_here.is_empty()) {
        (false, false) => LinkState::Mutual,
        (true, true) => LinkState::None,
        _ => LinkState::OneWay,
    };
    Ok(LinkView {
        state,
        here_at_peer: ScopeWords::list(&here_at_peer, party.peer.wants),
        here_at_peer_problem: problem,
        peer_here: ScopeWords::list(&peer_here, party.offers.scopes),
    })
}

/// A page waits at most two seconds for the peer; a slow peer is said, not waited out.
async fn page_view_check<T>(
    app: &AppState,
    call: impl std::future::Future<Output = Result<T, PeerError>>,
) -> Result<T, PeerError> {
    let budget = app.config.peer_timeout.min(std::time::Duration::from_secs(2));
    actix_web::rt::time::timeout(budget, call)
        .await
        .unwrap_or_else(|_| Err(PeerError::Unreachable("no answer in time".into())))
}

/// Refreshes regardless of the stored expiry (the peer said the token is no longer active).
async fn refresh_now(app: &AppState, user_id: &str) -> Result<PeerToken, LinkProblem> {
    app.store.mark_peer_token_expired(user_id).await.map_err(LinkProblem::from)?;
    refresh(app, user_id).await
}

/// The user's update lock: one change of what the peer may do here at a
/// time (link, retry, settings, withdrawal), in this process and, on
/// PostgreSQL, across instances. A flow at `sending` whose lock is free has
/// no sender left: its instance died mid-call.
pub(crate) struct UpdateLock {
    _here: tokio::sync::OwnedMutexGuard<()>,
    everywhere: crate::store::UserLock,
}

impl UpdateLock {
    /// Waits for the user's update lock.
    pub(crate) async fn take(app: &AppState, user_id: &str) -> StoreResult<Self> {
        let here = app.peer.update_locks.of(user_id).lock_owned().await;
        let everywhere = app.store.lock_user(LockKind::Update, user_id).await?;
        Ok(Self { _here: here, everywhere })
    }

    /// The user's update lock if nobody holds it now.
    pub(crate) async fn try_take(app: &AppState, user_id: &str) -> StoreResult<Option<Self>> {
        let Ok(here) = app.peer.update_locks.of(user_id).try_lock_owned() else { return Ok(None) };
        let everywhere = app.store.try_lock_user(LockKind::Update, user_id).await?;
        Ok(everywhere.map(|everywhere| Self { _here: here, everywhere }))
    }

    pub(crate) async fn release(self) -> StoreResult<()> {
        self.everywhere.release().await
    }
}

/// Leg F (and the authorization update): mints a code for the peer's
/// client, for this user and exactly `scope`, and pushes it to the peer with
/// the access token the peer issued to us. On success the peer holds a token
/// for exactly `scope` and every older grant of the peer here is revoked; on
/// failure nothing the peer could use is left behind. The caller holds the
/// user's [`UpdateLock`] from before its flow moved to `sending`.
pub(crate) async fn send_reciprocal(
    app: &AppState,
    _held: &UpdateLock,
    attempt: Attempt<'_>,
    scope: &Scope,
) -> Result<(), LinkError> {
    let user_id = attempt.user_id;
    let party = app.config.party;
    let storage = LinkError::Storage;
    let previous = app.store.live_grants(user_id, party.peer.client_id).await.map_err(storage)?;
    let before = peer_scope_here(app, user_id).await.map_err(storage)?;
    // A removed scope must stop working at once, not when (or if) the peer answers.
    let narrows = !before.is_subset(scope);
    if narrows {
        for id in &previous {
            app.revoke_grant(id).await.map_err(storage)?;
        }
        app.store.save_consent(user_id, party.peer.client_id, &scope.to_string(), app.now()).await.map_err(storage)?;
        forget_what_the_peer_no_longer_may_write(app, user_id, scope).await.map_err(storage)?;
    }
    let withdrew_earlier = narrows && !before.is_empty();
    let held = held_token(app, user_id).await.map_err(|problem| LinkError::Held { problem, withdrew_earlier })?;

    // Bound to the peer's client and this user; no redirect URI or PKCE, since
    // it never travels through a browser.
    let (grant, code) = mint_code(
        app,
        CodeBinding {
            client_id: party.peer.client_id,
            user_id,
            scope: &scope.to_string(),
            audience: app.config.resource(),
            redirect_uri: None,
            code_challenge: None,
        },
    )
    .await
    .map_err(storage)?;
    let now = app.now();

    let legacy = app.config.reciprocal_form == ReciprocalForm::Legacy;
    let form = if legacy { "mutual_authorization_code" } else { "reciprocal grant" };
    trace::sent(app, attempt, Leg::F, &format!("{form}: code (scope {scope}), access_token (redacted)")).await;
    let pushed = app.peer.push_reciprocal(app, &code, &held.access_token, legacy).await;
    app.metrics.link_outcome(Leg::F, LinkOutcome::of(&pushed));
    match pushed {
        Ok(()) => {
            trace::received(app, attempt, Leg::F, "200 {}").await;
            if !narrows {
                for id in &previous {
                    app.revoke_grant(id).await.map_err(storage)?;
                }
            }
            app.store.save_consent(user_id, party.peer.client_id, &scope.to_string(), now).await.map_err(storage)?;
            Ok(())
        }
        Err(e) => {
            trace::received(app, attempt, Leg::F, &e.to_string()).await;
            // Whatever the peer did with the code, it is not part of the link.
            app.revoke_grant(&grant.id).await.map_err(storage)?;
            Err(LinkError::Push { error: e, withdrew_earlier })
        }
    }
}

/// Why a change of what the peer may do here did not go through.
#[derive(Debug)]
pub enum LinkError {
    /// This party holds no usable token from the peer to push with.
    Held {
        problem: LinkProblem,
        withdrew_earlier: bool,
    },
    /// The peer could not be reached, or refused the pushed code.
    Push {
        error: PeerError,
        withdrew_earlier: bool,
    },
    Storage(crate::store::StoreError),
}

impl LinkError {
    /// The sentence the user reads on the outcome page.
    pub fn describe(&self, peer: &str) -> String {
        let lost = |withdrew: bool| match withdrew {
            true => format!(" {peer}'s earlier access here was withdrawn as you asked."),
            false => String::new(),
        };
        match self {
            Self::Held { problem, withdrew_earlier } => {
                format!("{}{}", problem.describe(peer), lost(*withdrew_earlier))
            }
            Self::Push { error: e @ PeerError::Unreachable(_), withdrew_earlier } => {
                format!("{peer} gave {e}, so it did not get its access.{} Try again.", lost(*withdrew_earlier))
            }
            Self::Push { error, withdrew_earlier } => {
                format!("{peer} did not accept its access: {error}.{}", lost(*withdrew_earlier))
            }
            Self::Storage(e) => {
                tracing::error!(error = %e, "storage failure sending a reciprocal code");
                "Something went wrong on our side. Try again.".to_owned()
            }
        }
    }
}

/// Withdraws everything the peer may do here for the user (authorization
/// update to no scope, deny, or unlink), in turn with any other change.
pub async fn withdraw_peer_access(app: &AppState, user_id: &str, cause: EndCause) -> StoreResult<()> {
    let held = UpdateLock::take(app, user_id).await?;
    let client = app.config.party.peer.client_id;
    for id in app.store.live_grants(user_id, client).await? {
        app.revoke_grant(&id).await?;
    }
    app.store.delete_consent(user_id, client).await?;
    forget_what_the_peer_no_longer_may_write(app, user_id, &Scope::default()).await?;
    audit::link_direction(app, user_id, Direction::Inbound, None, cause).await;
    held.release().await
}

/// Forgets what the peer wrote here with a scope it no longer holds
/// (`Party::from_peer`): the card it posted with `assistant:notify` goes
/// with that scope.
async fn forget_what_the_peer_no_longer_may_write(app: &AppState, user_id: &str, holds: &Scope) -> StoreResult<()> {
    for written in app.config.party.from_peer {
        if !Scope::parse(written.scope).is_subset(holds) {
            app.store.clear_product_state(written.kind, user_id).await?;
        }
    }
    Ok(())
}

/// Drops the tokens held from the peer for the user and asks the peer to
/// revoke them (RFC 7009). When the peer could not be told, returns the
/// tokens taken and why.
async fn drop_held_tokens(
    app: &AppState,
    user_id: &str,
    cause: EndCause,
) -> StoreResult<Option<(PeerToken, PeerError)>> {
    let Some(held) = app.store.take_peer_token(user_id).await? else {
        return Ok(None);
    };
    audit::link_direction(app, user_id, Direction::Outbound, None, cause).await;
    Ok(revoke_at_peer(app, &held).await.err().map(|e| (held, e)))
}

/// Asks the peer to end a grant it gave us: revoking the refresh token
/// revokes the whole grant (RFC 7009 2.1).
async fn revoke_at_peer(app: &AppState, held: &PeerToken) -> Result<(), PeerError> {
    match &held.refresh_token {
        Some(r) => app.peer.revoke(app, r.secret(), "refresh_token").await,
        None => app.peer.revoke(app, held.access_token.secret(), "access_token").await,
    }
}

/// Unlink (docs/protocol.md, "Unlink"): both directions, here and at the peer. When
/// the peer cannot be told, the tokens it gave are kept (unused) so that
/// unlinking again can still revoke them there.
pub async fn unlink(app: &AppState, user_id: &str) -> StoreResult<Option<PeerError>> {
    app.store.close_waiting_flows(user_id, "You unlinked before this was finished.").await?;
    withdraw_peer_access(app, user_id, EndCause::User).await?;
    let Some((held, e)) = drop_held_tokens(app, user_id, EndCause::User).await? else {
        return Ok(None);
    };
    app.store.save_peer_token(&held).await?;
    let why = format!("Unlinking did not reach {} ({e}). Unlink again.", app.config.party.peer.name);
    app.store.mark_peer_token_broken(user_id, &why, app.now()).await?;
    Ok(Some(e))
}

/// The peer revoked (RFC 7009) a token of its link for this user: it is
/// unlinking, so this party drops its side too.
pub async fn peer_unlinked(app: &AppState, user_id: &str) {
    let ended = format!("{} ended the link before this was finished.", app.config.party.peer.name);
    if let Err(e) = app.store.close_waiting_flows(user_id, &ended).await {
        tracing::error!(error = %e, "storage failure following the peer's unlink");
    }
    if let Err(e) = withdraw_peer_access(app, user_id, EndCause::Peer).await {
        tracing::error!(error = %e, "storage failure following the peer's unlink");
    }
    match drop_held_tokens(app, user_id, EndCause::Peer).await {
        Ok(Some((_, e))) => tracing::warn!(error = %e, "the peer could not be told to revoke our tokens"),
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "storage failure following the peer's unlink"),
    }
}

/// Calls the peer's API for the user with the token it gave us (RFC 6750 2.1),
/// POSTing `body` as JSON. A 401 `invalid_token` gets one refresh and one retry.
pub async fn call_peer_api(
    app: &AppState,
    user_id: &str,
    path: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, LinkProblem> {
    let url = format!("{}{path}", app.config.peer_url);
    let post = |token: PeerToken| {
        let request = app.http.post(&url).bearer_auth(token.access_token.secret()).json(body);
        async move {
            let sent = crate::client::timed(app, PeerCall::Api, async { Ok(request.send().await?) }).await;
            sent.map_err(|e| LinkProblem::Unreachable(e.to_string()))
        }
    };
    let mut res = post(held_token(app, user_id).await?).await?;
    if res.status() == reqwest::StatusCode::UNAUTHORIZED {
        // Revoked or expired early: renew once, then the peer's answer stands.
        res = post(refresh_now(app, user_id).await?).await?;
    }
    let status = res.status();
    if status.is_success() {
        return crate::outbound::read_json(res).await.map_err(|e| LinkProblem::Refused(e.to_string()));
    }
    // The call was answered (and timed); that it refused counts as its failure.
    app.metrics.peer_call_failed(PeerCall::Api, "refused");
    let why = match crate::outbound::read_json::<serde_json::Value>(res).await {
        Ok(v) => v["error_description"].as_str().or(v["error"].as_str()).unwrap_or("no details").to_owned(),
        Err(_) => format!("HTTP {status}"),
    };
    Err(LinkProblem::Refused(why))
}

#[cfg(test)]
mod tests {
    use super::reciprocal_request;

    const AGREED: &str = "assistant:announce assistant:notify";

    #[test]
    fn the_token_response_wins_then_the_authorization_response_then_the_agreed_scope() {
        assert_eq!(reciprocal_request(Some("assistant:notify"), Some(AGREED), AGREED).to_string(), "assistant:notify");
        assert_eq!(reciprocal_request(None, Some("assistant:announce"), AGREED).to_string(), "assistant:announce");
        assert_eq!(reciprocal_request(None, None, AGREED).to_string(), AGREED);
    }

    #[test]
    fn the_peer_gets_no_more_than_was_agreed() {
        let asked = "assistant:notify admin:everything";
        assert_eq!(reciprocal_request(Some(asked), None, AGREED).to_string(), "assistant:notify");
        assert!(reciprocal_request(Some("admin"), None, AGREED).is_empty());
        assert!(reciprocal_request(Some("bad\"quote"), None, AGREED).is_empty());
    }
}
