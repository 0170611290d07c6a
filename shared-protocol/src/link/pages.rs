//! The link pages (legs A–F of docs/protocol.md): start, callback, the reciprocal
//! consent, the outcome, settings (authorization update), unlink and the trace.
//! Either party runs the same code; the one the user starts at is party A of
//! the draft.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpResponse};
use askama::Template;

use super::trace::{self, Attempt};
use super::trace_diagram;
use super::{LinkView, ScopeWords};
use crate::audit::{self, EndCause, Event};
use crate::error::PageError;
use crate::outbound::PeerError;
use crate::server::scope::Scope;
use crate::state::AppState;
use crate::store::{FlowStep, Leg, LinkFlow};
use crate::tokens::secrets::{digest, new_id, AuthorizationCode, PkceVerifier};
use crate::web::form::{PageForm, PageQuery, ScopeForm};
use crate::web::pages::{chrome, redirect, render, Action, Chrome, Notice};
use crate::web::session::SignedIn;

/// A flow of the signed-in user; someone else's is as good as unknown.
async fn own_flow(app: &AppState, user_id: &str, id: Option<&str>) -> Result<LinkFlow, PageError> {
    let flow = match id {
        Some(id) => app.store.flow(id).await?,
        None => app.store.latest_flow(user_id).await?,
    };
    flow.filter(|f| f.user_id == user_id).ok_or_else(|| {
        PageError::bad_request("This link attempt does not exist, or is not yours. Start linking from your home page.")
    })
}

/// The trace's name for the attempt `flow` is.
fn attempt(flow: &LinkFlow) -> Attempt<'_> {
    Attempt::new(&flow.user_id, &flow.id)
}

fn outcome(flow_id: &str) -> HttpResponse {
    redirect(&format!("/link/outcome?flow={flow_id}"))
}

fn new_flow(app: &AppState, user_id: &str, step: FlowStep) -> LinkFlow {
    let now = app.now();
    LinkFlow {
        id: new_id(app.entropy.as_ref()),
        user_id: user_id.to_owned(),
        step,
        state_digest: None,
        pkce_verifier: None,
        reciprocal_scope: None,
        message: None,
        created_at: now,
        updated_at: now,
    }
}

/// Ends a flow that could not go on, with the sentence the user reads.
async fn fail(app: &AppState, flow: &LinkFlow, from: FlowStep, message: &str) -> Result<HttpResponse, PageError> {
    app.store.advance_flow(&flow.id, from, FlowStep::Failed, Some(message), app.now()).await?;
    Ok(outcome(&flow.id))
}

/// Leg A: send the user to the peer's authorization endpoint.
#[post("/link/start")]
pub async fn start(
    app: web::Data<AppState>,
    SignedIn(user_id): SignedIn,
    PageForm(_): PageForm,
) -> Result<HttpResponse, PageError> {
    let party = app.config.party;
    let mut flow = new_flow(&app, &user_id, FlowStep::Authorizing);
    match app.peer.start_authorization(&app, &party.wants_from_peer()).await {
        Ok(start) => {
            flow.state_digest = Some(digest(&start.state));
            flow.pkce_verifier = Some(start.pkce_verifier);
            app.store.insert_flow(&flow).await?;
            let summary =
                format!("303 to {}/authorize: scope {}, PKCE S256, state", party.peer.name, party.wants_from_peer());
            trace::sent(&app, attempt(&flow), Leg::A, &summary).await;
            Ok(redirect(&start.url))
        }
        Err(e) => {
            flow.step = FlowStep::Failed;
            flow.message =
                Some(format!("{} gave {e}, so linking could not start. Try again in a moment.", party.peer.name));
            app.store.insert_flow(&flow).await?;
            Ok(outcome(&flow.id))
        }
    }
}

/// Legs B–D: the authorization response comes back; check `state` and
/// `iss` (RFC 9207 2.4, the mix-up defence), redeem the code, read the
/// peer's reciprocal request.
#[get("/link/callback")]
pub async fn callback(
    app: web::Data<AppState>,
    SignedIn(user_id): SignedIn,
    PageQuery(q): PageQuery,
) -> Result<HttpResponse, PageError> {
    let party = app.config.party;
    let peer = party.peer.name;
    let not_ours = || {
        PageError::bad_request(format!(
            "This page is where {peer} sends you back after you allow linking, and this visit does not belong to \
             a link you started here (it may have been started in another browser, or as another user). \
             Start linking from your home page."
        ))
    };
    let state = q.get("state").ok_or_else(not_ours)?;
    let flow = app.store.flow_by_state(&digest(state)).await?.filter(|f| f.user_id == user_id).ok_or_else(not_ours)?;
    // A replayed callback, or the back button: the step was taken already.
    if flow.step != FlowStep::Authorizing {
        return Ok(outcome(&flow.id));
    }
    if q.get("iss") != Some(app.config.peer_url.as_str()) {
        trace::received(&app, attempt(&flow), Leg::B, "authorization response with a wrong or missing iss").await;
        let why =
            format!("The answer did not come from {peer} (its issuer did not match), so it was ignored. Start again.");
        return fail(&app, &flow, FlowStep::Authorizing, &why).await;
    }
    if let Some(error) = q.get("error") {
        trace::received(&app, attempt(&flow), Leg::B, &format!("authorization response: error={error}")).await;
        if error == "access_denied" {
            // The user's own choice at the peer: an outcome, not a failure.
            let why = format!("You chose not to let {} use {peer}, so this attempt linked nothing.", party.name);
            app.store.advance_flow(&flow.id, FlowStep::Authorizing, FlowStep::Done, Some(&why), app.now()).await?;
            return Ok(outcome(&flow.id));
        }
        let why = format!(
            "{peer} refused the request ({error}: {}). Try again later; if it keeps happening, {peer} may be \
             misconfigured.",
            q.get("error_description").unwrap_or("no details")
        );
        return fail(&app, &flow, FlowStep::Authorizing, &why).await;
    }
    let Some(code) = q.get("code") else {
        let why = format!("{peer} sent you back without an answer. Start linking again.");
        return fail(&app, &flow, FlowStep::Authorizing, &why).await;
    };
    // Held while the flow is at `sending`, so one whose lock is free has no sender left.
    let held = super::UpdateLock::take(&app, &user_id).await?;
    let redeemed = redeem(&app, &flow, code, q.get("reciprocal")).await;
    held.release().await?;
    redeemed
}

/// Legs C–D of [`callback`], under the user's update lock.
async fn redeem(
    app: &AppState,
    flow: &LinkFlow,
    code: &str,
    in_authorization_response: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let (party, user_id) = (app.config.party, &flow.user_id);
    let peer = party.peer.name;
    // Take the step before redeeming, so a second callback cannot redeem twice.
    if !app.store.advance_flow(&flow.id, FlowStep::Authorizing, FlowStep::Sending, None, app.now()).await? {
        return Ok(outcome(&flow.id));
    }
    trace::received(app, attempt(flow), Leg::B, "authorization response: code (redacted), state, iss").await;
    trace::sent(app, attempt(flow), Leg::C, "POST /token authorization_code: code, code_verifier (redacted)").await;
    let verifier = flow.pkce_verifier.clone().unwrap_or_else(|| PkceVerifier::new(""));
    let tokens = match app.peer.exchange_code(app, &AuthorizationCode::new(code), &verifier).await {
        Ok(t) => t,
        Err(e) => {
            trace::received(app, attempt(flow), Leg::D, &e.to_string()).await;
            let why = match e {
                PeerError::Unreachable(_) => format!("{peer} gave {e} when asked for the access. Start again."),
                _ => format!("{peer} did not give the access: {e}. Start again."),
            };
            return fail(app, flow, FlowStep::Sending, &why).await;
        }
    };
    let asked = tokens.reciprocal.as_deref().or(in_authorization_response);
    let summary =
        format!("access and refresh token (scope {}), reciprocal: {}", tokens.scope, asked.unwrap_or("(none)"));
    trace::received(app, attempt(flow), Leg::D, &summary).await;
    // The link is named by this first token, which the peer issued and holds too.
    audit::link_began(app, user_id, tokens.access_token.secret()).await;
    super::keep_peer_tokens(app, user_id, &tokens).await?;

    let reciprocal =
        super::reciprocal_request(tokens.reciprocal.as_deref(), in_authorization_response, party.offers.to_peer);
    if reciprocal.is_empty() {
        let why = format!("Linked one way: {} may now use {peer}. {peer} asked for nothing in return.", party.name);
        app.store.advance_flow(&flow.id, FlowStep::Sending, FlowStep::Done, Some(&why), app.now()).await?;
        return Ok(outcome(&flow.id));
    }
    app.store.ask_consent(&flow.id, &reciprocal.to_string(), app.now()).await?;
    Ok(redirect(&format!("/link/reciprocal?flow={}", flow.id)))
}

#[derive(Template)]
#[template(path = "reciprocal_consent.html")]
struct ReciprocalConsentPage {
    chrome: Chrome,
    peer_name: &'static str,
    flow_id: String,
    scopes: Vec<ScopeWords>,
}

/// Leg E: ask the same user, still here, to let the peer in too.
#[get("/link/reciprocal")]
pub async fn reciprocal_page(
    app: web::Data<AppState>,
    session: Session,
    SignedIn(user_id): SignedIn,
    PageQuery(q): PageQuery,
) -> Result<HttpResponse, PageError> {
    let flow = own_flow(&app, &user_id, q.get("flow")).await?;
    if flow.step != FlowStep::Consent {
        return Ok(outcome(&flow.id));
    }
    let scope = Scope::parse(flow.reciprocal_scope.as_deref().unwrap_or_default());
    let chrome = chrome(&app, &session, "reciprocal-consent", Some(user_id)).await?;
    let page = ReciprocalConsentPage {
        chrome,
        peer_name: app.config.party.peer.name,
        flow_id: flow.id,
        scopes: ScopeWords::list(&scope, app.config.party.offers.scopes),
    };
    render(StatusCode::OK, &page)
}

/// Legs E–F: the user's answer; on approval mint the code and push it.
/// `decision=retry` sends again after a failure.
#[post("/link/reciprocal")]
pub async fn reciprocal_decision(
    app: web::Data<AppState>,
    SignedIn(user_id): SignedIn,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let flow = own_flow(&app, &user_id, Some(form.get("flow").unwrap_or_default())).await?;
    let party = app.config.party;
    let peer = party.peer.name;
    let now = app.now();
    interrupt_if_abandoned(&app, &flow).await?;
    let from = match form.get("decision") {
        Some("approve") => FlowStep::Consent,
        Some("retry") => FlowStep::Failed,
        Some("deny") => {
            let why = format!(
                "You chose not to let {peer} use {party}: {party} may use {peer}, but not the other way round. \
                 You can change this in link settings.",
                party = party.name
            );
            if app.store.advance_flow(&flow.id, FlowStep::Consent, FlowStep::Done, Some(&why), now).await? {
                record_reciprocal_answer(&app, &user_id, &flow, false).await;
                // No means no: access the peer kept from an earlier link ends too.
                super::withdraw_peer_access(&app, &user_id, EndCause::User).await?;
                trace::from_user(&app, attempt(&flow), Leg::E, "denied the reciprocal request").await;
            }
            return Ok(outcome(&flow.id));
        }
        _ => return Err(PageError::bad_request("Choose Allow or Deny.")),
    };
    let Some(scope) = flow.reciprocal_scope.as_deref().map(Scope::parse).filter(|s| !s.is_empty()) else {
        return Ok(outcome(&flow.id));
    };
    // Held from before the flow is at `sending`, so a `sending` flow whose lock is free has no sender.
    let held = super::UpdateLock::take(&app, &user_id).await?;
    // A double submit or the back button finds the step already taken.
    if !app.store.advance_flow(&flow.id, from, FlowStep::Sending, None, now).await? {
        held.release().await?;
        return Ok(outcome(&flow.id));
    }
    if from == FlowStep::Consent {
        record_reciprocal_answer(&app, &user_id, &flow, true).await;
        trace::from_user(&app, attempt(&flow), Leg::E, &format!("approved: {scope}")).await;
    }
    push(&app, held, &flow, &scope).await
}

/// The user's answer to the peer's request for access back, in the audit
/// log, naming the link it belongs to.
async fn record_reciprocal_answer(app: &AppState, user_id: &str, flow: &LinkFlow, given: bool) {
    let client_id = app.config.party.peer.client_id;
    let scope = flow.reciprocal_scope.as_deref().unwrap_or_default();
    let event = match given {
        true => Event::ConsentGiven { client_id, scope },
        false => Event::ConsentDenied { client_id, scope },
    };
    let link = audit::current_link(app, user_id).await;
    audit::record(app, Some(user_id), link.as_deref(), event).await;
}

/// Leg F and the outcome, for consent, retry and settings alike; `held`
/// is released once the flow has left `sending`.
async fn push(
    app: &AppState,
    held: super::UpdateLock,
    flow: &LinkFlow,
    scope: &Scope,
) -> Result<HttpResponse, PageError> {
    let peer = app.config.party.peer.name;
    // A flow with a state went through the peer's /authorize: a new link; one without is a settings change.
    let what = match flow.state_digest {
        Some(_) => "Both ways: you allowed",
        None => "Saved: you allowed",
    };
    let (to, message) = match super::send_reciprocal(app, &held, attempt(flow), scope).await {
        Ok(()) => (FlowStep::Done, format!("{what} {peer} to {}.", sentence(scope, app))),
        Err(e) => (FlowStep::Failed, e.describe(peer)),
    };
    app.store.advance_flow(&flow.id, FlowStep::Sending, to, Some(&message), app.now()).await?;
    held.release().await?;
    Ok(outcome(&flow.id))
}

fn sentence(scope: &Scope, app: &AppState) -> String {
    ScopeWords::list(scope, app.config.party.offers.scopes)
        .iter()
        .map(|s| s.description.to_lowercase())
        .collect::<Vec<_>>()
        .join(" and ")
}

#[derive(Template)]
#[template(path = "outcome.html")]
struct OutcomePage {
    chrome: Chrome,
    peer_name: &'static str,
    flow_id: String,
    step: FlowStep,
    /// The result in words: the link as it now stands, or what is still to happen.
    heading: String,
    message: String,
    /// Both directions as they stand, once the attempt is over.
    link: Option<LinkView>,
    can_retry: bool,
}

/// The user's latest link attempt, when it waits for them: the peer's
/// request not yet answered, or a second direction that may be sent again.
/// Anything else was said on its outcome page and is not repeated.
pub async fn waiting_for_user(app: &AppState, user_id: &str) -> Result<Option<Notice>, PageError> {
    let Some(mut flow) = app.store.latest_flow(user_id).await? else { return Ok(None) };
    // An attempt whose instance died mid-call waits for the user too: to try again.
    if interrupt_if_abandoned(app, &flow).await? {
        flow = own_flow(app, user_id, Some(&flow.id)).await?;
    }
    let peer = app.config.party.peer.name;
    Ok(match flow.step {
        FlowStep::Consent => Some(Notice {
            text: asks_back(app),
            action: Some(Action {
                href: format!("/link/reciprocal?flow={}", flow.id),
                label: format!("Answer {peer}'s request"),
            }),
        }),
        FlowStep::Failed if flow.can_retry() => Some(Notice {
            text: flow.message.unwrap_or_default(),
            action: Some(Action { href: format!("/link/outcome?flow={}", flow.id), label: "Try again".to_owned() }),
        }),
        _ => None,
    })
}

/// A reciprocal request that waits for the user's answer, in words.
fn asks_back(app: &AppState) -> String {
    let party = app.config.party;
    format!("{} asked to use your {} account too, and waits for your answer.", party.peer.name, party.name)
}

/// What became of a link attempt, with a retry where one makes sense.
#[get("/link/outcome")]
pub async fn outcome_page(
    app: web::Data<AppState>,
    session: Session,
    SignedIn(user_id): SignedIn,
    PageQuery(q): PageQuery,
) -> Result<HttpResponse, PageError> {
    let flow = own_flow(&app, &user_id, q.get("flow")).await?;
    let flow = match interrupt_if_abandoned(&app, &flow).await? {
        true => own_flow(&app, &user_id, Some(&flow.id)).await?,
        false => flow,
    };
    let (party, peer) = (app.config.party.name, app.config.party.peer.name);
    let link = match flow.step {
        FlowStep::Done | FlowStep::Failed => Some(super::view_here(&app, &user_id).await?),
        _ => None,
    };
    let heading = match (&link, flow.step) {
        (Some(link), _) => link.state.heading().to_owned(),
        (None, FlowStep::Authorizing) => format!("Waiting for you at {peer}"),
        (None, FlowStep::Consent) => "One more question".to_owned(),
        (None, _) => format!("Talking to {peer}…"),
    };
    let message = flow.message.clone().unwrap_or_else(|| match flow.step {
        FlowStep::Authorizing => {
            format!("You have not come back from {peer} yet. If you closed that page, start linking again.")
        }
        FlowStep::Consent => asks_back(&app),
        _ => format!("{party} is talking to {peer}. This page checks again every two seconds."),
    });
    let can_retry = flow.can_retry();
    let chrome = chrome(&app, &session, "link-outcome", Some(user_id)).await?;
    let page =
        OutcomePage { chrome, peer_name: peer, flow_id: flow.id, step: flow.step, heading, message, link, can_retry };
    render(StatusCode::OK, &page)
}

/// A checkbox on the settings page.
struct ScopeChoice {
    name: String,
    description: String,
    granted: bool,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    chrome: Chrome,
    peer_name: &'static str,
    choices: Vec<ScopeChoice>,
    /// This party holds a working token at the peer, so it can give scopes.
    can_push: bool,
    /// Either direction holds: there is something to set.
    linked: bool,
}

/// This party holds a working token from the peer, so it can send the
/// peer a code (leg F): give scopes, not only take them away.
async fn can_push(app: &AppState, user_id: &str) -> Result<bool, PageError> {
    Ok(app.store.peer_token(user_id).await?.is_some_and(|t| t.broken.is_none()))
}

/// What the peer may do here, one checkbox per scope (draft section 3).
#[get("/link/settings")]
pub async fn settings_page(
    app: web::Data<AppState>,
    session: Session,
    SignedIn(user_id): SignedIn,
) -> Result<HttpResponse, PageError> {
    let party = app.config.party;
    let granted = super::peer_scope_here(&app, &user_id).await?;
    let can_push = can_push(&app, &user_id).await?;
    let choices = Scope::parse(party.offers.to_peer)
        .iter()
        .map(|s| ScopeChoice {
            name: s.to_owned(),
            description: ScopeWords::list(&Scope::parse(s), party.offers.scopes).remove(0).description,
            granted: granted.iter().any(|g| g == s),
        })
        .collect();
    let linked = can_push || !granted.is_empty();
    let chrome = chrome(&app, &session, "settings", Some(user_id)).await?;
    render(StatusCode::OK, &SettingsPage { chrome, peer_name: party.peer.name, choices, can_push, linked })
}

/// Authorization update: a new code for exactly the chosen scopes, pushed
/// the same way; no scope left withdraws the peer's access here.
#[post("/link/settings")]
pub async fn settings_save(
    app: web::Data<AppState>,
    SignedIn(user_id): SignedIn,
    form: ScopeForm,
) -> Result<HttpResponse, PageError> {
    let party = app.config.party;
    let offered = Scope::parse(party.offers.to_peer);
    let chosen = Scope::parse(&form.scopes.join(" "));
    if !chosen.is_subset(&offered) {
        return Err(PageError::bad_request("Choose among the listed permissions."));
    }
    let mut flow = new_flow(&app, &user_id, FlowStep::Sending);
    flow.reciprocal_scope = Some(chosen.to_string());
    let current = super::peer_scope_here(&app, &user_id).await?;
    let peer = party.peer.name;
    if current.is_empty() && !can_push(&app, &user_id).await? {
        return Err(PageError::bad_request(format!(
            "You are not linked with {peer}, so there is nothing to change. Link from your home page first."
        )));
    }
    if chosen == current {
        flow.step = FlowStep::Done;
        flow.message = Some(format!("Nothing changed: {peer} keeps what it had."));
        app.store.insert_flow(&flow).await?;
        return Ok(outcome(&flow.id));
    }
    if chosen.is_empty() {
        super::withdraw_peer_access(&app, &user_id, EndCause::User).await?;
        flow.step = FlowStep::Done;
        flow.message = Some(format!("Saved: {peer} may no longer do anything on your {} account.", party.name));
        app.store.insert_flow(&flow).await?;
        trace::from_user(&app, attempt(&flow), Leg::E, "withdrew every scope").await;
        return Ok(outcome(&flow.id));
    }
    let held = super::UpdateLock::take(&app, &user_id).await?;
    app.store.insert_flow(&flow).await?;
    trace::from_user(&app, attempt(&flow), Leg::E, &format!("changed to: {chosen}")).await;
    push(&app, held, &flow, &chosen).await
}

/// Unlink at this party removes both directions (docs/protocol.md, "Unlink").
#[post("/link/unlink")]
pub async fn unlink(
    app: web::Data<AppState>,
    SignedIn(user_id): SignedIn,
    PageForm(_): PageForm,
) -> Result<HttpResponse, PageError> {
    let peer = app.config.party.peer.name;
    let problem = super::unlink(&app, &user_id).await?;
    let mut flow = new_flow(&app, &user_id, FlowStep::Done);
    flow.message = Some(match problem {
        None => format!("Unlinked: {peer} can no longer use your account here, and this site no longer uses {peer}."),
        Some(e) => format!(
            "Unlinked here: {peer} can no longer use your account here. But {peer} gave {e} when asked to revoke \
             the access it gave this site, so it may still show the link. Unlink again once it is back."
        ),
    });
    app.store.insert_flow(&flow).await?;
    trace::sent(&app, attempt(&flow), Leg::Revocation, "POST /revoke (RFC 7009): refresh token (redacted)").await;
    Ok(outcome(&flow.id))
}

/// A flow left at `sending` with nobody sending any more (its instance
/// died mid-call, or restarted) becomes failed, so the user can go on: at
/// once, since every sender holds the user's update lock while its flow is
/// at `sending` and a dead instance's lock is free; and, should a sender
/// hang while holding it, once the flow is far older than any call may take.
async fn interrupt_if_abandoned(app: &AppState, flow: &LinkFlow) -> Result<bool, PageError> {
    if flow.step != FlowStep::Sending {
        return Ok(false);
    }
    // The longest a send may take: metadata, a refresh, then the push (allowed three timeouts).
    let stale = app.now() - flow.updated_at > 6 * app.config.peer_timeout.as_secs() as i64;
    let idle = super::UpdateLock::try_take(app, &flow.user_id).await?;
    if idle.is_none() && !stale {
        return Ok(false);
    }
    let why = format!("Talking to {} was interrupted. Try again.", app.config.party.peer.name);
    let moved = app.store.advance_flow(&flow.id, FlowStep::Sending, FlowStep::Failed, Some(&why), app.now()).await?;
    if let Some(idle) = idle {
        idle.release().await?;
    }
    Ok(moved)
}

#[derive(Template)]
#[template(path = "trace.html")]
struct TracePage {
    chrome: Chrome,
    peer_name: &'static str,
    lanes: Vec<trace_diagram::Lane>,
    attempts: Vec<trace_diagram::AttemptDiagram>,
    width: i64,
    font_size: i64,
}

/// The protocol as it happened for this user: each attempt titled, drawn
/// as an SVG sequence diagram and listed.
#[get("/link/trace")]
pub async fn trace_page(
    app: web::Data<AppState>,
    session: Session,
    SignedIn(user_id): SignedIn,
) -> Result<HttpResponse, PageError> {
    let party = app.config.party;
    let events = app.store.trace_of(&user_id, 200).await?;
    let attempts = trace_diagram::diagram(&events, party.name, party.peer.name);
    let chrome = chrome(&app, &session, "trace", Some(user_id)).await?;
    let page = TracePage {
        chrome,
        peer_name: party.peer.name,
        lanes: trace_diagram::lanes(party.name, party.peer.name),
        attempts,
        width: trace_diagram::WIDTH,
        font_size: trace_diagram::FONT_SIZE,
    };
    render(StatusCode::OK, &page)
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(start)
        .service(callback)
        .service(reciprocal_page)
        .service(reciprocal_decision)
        .service(outcome_page)
        .service(settings_page)
        .service(settings_save)
        .service(unlink)
        .service(trace_page);
}
