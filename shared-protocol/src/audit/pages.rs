//! `GET /audit`, the log in sentences, and `GET /audit/events`, the same
//! entries as JSON Lines (one JSON string, a signed SET, per line) for
//! `audit verify`. A user sees their own entries and the party's key
//! changes; staff see every entry.

use std::collections::HashMap;

use actix_session::Session;
use actix_web::http::{header, StatusCode};
use actix_web::{get, web, HttpResponse};
use askama::Template;
use serde_json::Value;

use super::SetClaims;
use crate::error::PageError;
use crate::state::AppState;
use crate::store::AuditRow;
use crate::web::form::PageQuery;
use crate::web::pages::{chrome, redirect, render, Chrome};
use crate::web::session;

/// The most entries one answer of `/audit/events` carries; the rest follow `rel="next"`.
pub const MAX_PAGE: i64 = 5000;
/// Entries the page shows, newest first.
const PAGE_ROWS: i64 = 200;

/// One entry in words.
pub struct EventLine {
    pub seq: i64,
    pub when: String,
    pub kind: String,
    /// Whose entry it is, on the staff view.
    pub account: Option<String>,
    pub sentence: String,
    pub link: Option<String>,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    chrome: Chrome,
    staff: bool,
    events: Vec<EventLine>,
    total_shown: usize,
    binary: &'static str,
    events_url: String,
    /// The issuer the verifier is told to trust, so a log of anyone else is refused.
    issuer: String,
    cookie_name: String,
}

/// Who may read which entries: `None` is everyone's (staff).
async fn reader(app: &AppState, session: &Session) -> Result<Option<(String, Option<String>)>, PageError> {
    let Some(user_id) = session::user_id(session) else { return Ok(None) };
    let Some(user) = app.store.user_by_id(&user_id).await? else { return Ok(None) };
    let scope = (user.role != "staff").then(|| user_id.clone());
    Ok(Some((user_id, scope)))
}

#[get("/audit")]
pub async fn audit_page(app: web::Data<AppState>, session: Session) -> Result<HttpResponse, PageError> {
    let Some((user_id, only)) = reader(&app, &session).await? else {
        return Ok(redirect("/login?next=/audit"));
    };
    let rows = app.store.audit_recent(only.as_deref(), PAGE_ROWS).await?;
    let mut names: HashMap<String, String> = HashMap::new();
    let mut events = Vec::with_capacity(rows.len());
    for row in &rows {
        let account = match only.is_none() && !row.stream.is_empty() {
            true => Some(account_name(&app, &mut names, &row.stream).await?),
            false => None,
        };
        events.push(describe(&app, row, account).await?);
    }
    let chrome = chrome(&app, &session, "audit", Some(user_id)).await?;
    render(
        StatusCode::OK,
        &AuditPage {
            chrome,
            staff: only.is_none(),
            total_shown: events.len(),
            events,
            binary: app.config.party.id,
            events_url: format!("{}/audit/events", app.config.public_url),
            issuer: app.config.issuer().to_owned(),
            cookie_name: crate::startup::session_cookie_name(&app.config),
        },
    )
}

/// The entries after `after`, oldest first, as JSON Lines, at most `limit`
/// (and [`MAX_PAGE`]) per answer; a full page names the next in `Link`
/// (RFC 8288).
#[get("/audit/events")]
pub async fn audit_events(
    app: web::Data<AppState>,
    session: Session,
    PageQuery(query): PageQuery,
) -> Result<HttpResponse, PageError> {
    let Some((_, only)) = reader(&app, &session).await? else {
        return Err(PageError::new(
            StatusCode::UNAUTHORIZED,
            "Sign in first",
            "The audit log is for signed-in accounts: sign in, then open /audit.",
        ));
    };
    let number = |name: &str, default: i64| match query.get(name) {
        None => Ok(default),
        Some(n) => n.parse::<i64>().map_err(|_| PageError::bad_request(format!("`{name}` is a whole number."))),
    };
    let after = number("after", 0)?.max(0);
    let limit = number("limit", MAX_PAGE)?.clamp(1, MAX_PAGE);
    let rows = app.store.audit_events(only.as_deref(), after, limit).await?;
    let mut body = String::with_capacity(rows.iter().map(|r| r.set_jwt.len() + 3).sum());
    for row in &rows {
        // A compact JWS holds no character JSON escapes, so quoting is enough.
        body.push('"');
        body.push_str(&row.set_jwt);
        body.push_str("\"\n");
    }
    let mut response = HttpResponse::Ok();
    response.content_type("application/jsonl").insert_header((header::CACHE_CONTROL, "no-store"));
    if let Some(last) = rows.last().filter(|_| rows.len() as i64 == limit) {
        response
            .insert_header((header::LINK, format!("</audit/events?after={}&limit={limit}>; rel=\"next\"", last.seq)));
    }
    Ok(response.body(body))
}

async fn account_name(app: &AppState, names: &mut HashMap<String, String>, user_id: &str) -> Result<String, PageError> {
    if let Some(name) = names.get(user_id) {
        return Ok(name.clone());
    }
    let name = app.store.user_by_id(user_id).await?.map_or_else(|| "(a deleted account)".to_owned(), |u| u.username);
    names.insert(user_id.to_owned(), name.clone());
    Ok(name)
}

/// The entry's claims, read without checking the signature: the page shows
/// what this party wrote; `audit verify` is what checks it.
fn claims_of(set_jwt: &str) -> Option<SetClaims> {
    use base64::Engine;
    let payload = set_jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

async fn client_name(app: &AppState, client_id: &str) -> Result<String, PageError> {
    if client_id == app.config.party.peer.client_id {
        return Ok(app.config.party.peer.name.to_owned());
    }
    Ok(app.store.client(client_id).await?.map_or_else(|| client_id.to_owned(), |c| c.name))
}

async fn describe(app: &AppState, row: &AuditRow, account: Option<String>) -> Result<EventLine, PageError> {
    // Staff read other people's entries: name the account instead of "you".
    let (your, you) = match &account {
        Some(name) => (format!("{name}'s"), name.clone()),
        None => ("your".to_owned(), "you".to_owned()),
    };
    let claims = claims_of(&row.set_jwt);
    let (kind, payload) = claims.as_ref().and_then(SetClaims::event).unwrap_or(("unreadable", &Value::Null));
    let text = |key: &str| payload[key].as_str().unwrap_or("").to_owned();
    let here = app.config.party.name;
    let peer = app.config.party.peer.name;
    let (towards, from) = match payload["direction"].as_str() {
        Some("inbound") => (format!("{peer} → {here}"), format!("{peer}'s access to {your} {here} account")),
        _ => (format!("{here} → {peer}"), format!("{here}'s access to {your} {peer} account")),
    };
    let sentence = match kind {
        "consent-given" => {
            format!("Allowed {} to use: {}.", client_name(app, &text("client_id")).await?, text("scope"))
        }
        "consent-denied" => {
            format!("Refused {} access to: {}.", client_name(app, &text("client_id")).await?, text("scope"))
        }
        "consent-withdrawn" => format!("Took back {}'s access.", client_name(app, &text("client_id")).await?),
        "device-approved" | "device-denied" | "device-withdrawn" => {
            let verb = match kind {
                "device-approved" => "Approved",
                "device-denied" => "Denied",
                _ => "Withdrew",
            };
            let by = match (text("actor_role").as_str(), text("via").as_str()) {
                ("staff", _) => "staff at the kiosk".to_owned(),
                (_, "home") => format!("{you}, on the home page"),
                _ => format!("{you}, on the device page"),
            };
            let device = client_name(app, &text("client_id")).await?;
            format!("{verb} the device {device} ({}), by {by}.", text("scope"))
        }
        "link-made" => format!("Link {towards} made: {from} holds {}.", text("scope")),
        "link-changed" => format!("Link {towards} changed: {from} now holds {}.", text("scope")),
        "link-ended" => {
            let why = match payload["cause"].as_str() {
                Some("peer") => format!("{peer} revoked it"),
                Some("replaced") => "a new link took its place".to_owned(),
                _ => format!("{you} ended it"),
            };
            format!("Link {towards} ended: {why}.")
        }
        "key-changed" => format!("{here} began signing with a new key; this entry vouches for the previous one."),
        _ => "An entry this page cannot read (audit verify says why).".to_owned(),
    };
    Ok(EventLine {
        seq: row.seq,
        when: crate::clock::format_utc(row.at),
        kind: kind.to_owned(),
        account,
        sentence,
        link: claims.and_then(|c| c.txn).map(|t| t.chars().take(12).collect()),
    })
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(audit_page).service(audit_events);
}
