//! The device authorization grant (RFC 8628) with a staffed kiosk (docs/choices.md, "Device flow and kiosk"):
//! the device authorization endpoint (3.1–3.2), the page where the account
//! holder enters the user code (3.3), and the kiosk where staff approve a
//! request for the account a person proves with an ID. The token always
//! belongs to the account the request names or the holder who approved it,
//! never to the staff member; every decision goes to an append-only audit log.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use askama::Template;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::client_auth::authenticate;
use super::scope::Scope;
use super::token::no_store;
use crate::accounts::valid_username;
use crate::audit::{self, Event};
use crate::clock::Entropy;
use crate::error::{Busy, ErrorCode, OAuthError, PageError};
use crate::grant_type::GrantType;
use crate::state::AppState;
use crate::store::{ActorRole, AuditEntry, DecidedVia, DeviceDecision, DeviceRequest, DeviceStatus, PendingRequest};
use crate::tokens::secrets::{digest, new_secret};
use crate::web::form::{urlencode, OAuthForm, PageForm, PageQuery};
use crate::web::limits::{ClientKey, LimitKind};
use crate::web::pages::{chrome, redirect, render, Chrome, ScopeLine};
use crate::web::session::SignedIn;

/// RFC 8628 6.1: consonants only, so no word can be spelled and nothing is confused.
const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
const USER_CODE_LEN: usize = 8;

/// Eight letters of the alphabet, each equally likely (rejection sampling).
pub fn new_user_code(entropy: &dyn Entropy) -> String {
    let mut code = String::with_capacity(USER_CODE_LEN);
    while code.len() < USER_CODE_LEN {
        let mut byte = [0u8; 1];
        entropy.fill(&mut byte);
        // 240 is the largest multiple of 20 below 256: larger bytes would bias the letters.
        if byte[0] < 240 {
            code.push(USER_CODE_ALPHABET[(byte[0] % 20) as usize] as char);
        }
    }
    code
}

/// `BCDFGHJK` → `BCDF-GHJK`, as the device shows it.
pub fn display_user_code(code: &str) -> String {
    format!("{}-{}", &code[..4.min(code.len())], &code[4.min(code.len())..])
}

/// What a person typed → the stored form: case, spaces and dashes do not matter.
pub fn normalize_user_code(typed: &str) -> Option<String> {
    let code: String = typed.chars().filter(|c| !matches!(c, '-' | ' ')).map(|c| c.to_ascii_uppercase()).collect();
    let valid = code.len() == USER_CODE_LEN && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b));
    valid.then_some(code)
}

/// RFC 8628 3.1–3.2, plus `login_hint` naming the account (as in RFC 8628 3.1's
/// OpenID-style hints: the kiosk approves for that account only).
#[post("/device_authorization")]
pub async fn device_authorization_endpoint(
    req: HttpRequest,
    app: web::Data<AppState>,
    OAuthForm(params): OAuthForm,
) -> Result<HttpResponse, OAuthError> {
    let client = authenticate(&app, &req, &params).await?;
    let now = app.now();
    // Bounded state: one address cannot fill the table, however slowly it asks.
    let address = app.limits.client(&req).to_string();
    if app.store.pending_from_address(&address, now).await? >= app.config.device_pending_per_address {
        let wait = app.config.lifetimes.device_code.min(600) as u64;
        app.metrics.rate_limited(LimitKind::DevicePendingPerAddress);
        return Err(OAuthError::busy(Busy::TooMany { retry_after: wait }));
    }
    if !client.allows_grant(GrantType::DeviceCode) {
        return Err(OAuthError::new(ErrorCode::UnauthorizedClient, "this client may not use the device flow"));
    }
    let scope = Scope::requested(params.get("scope"), &client.scope, |s| app.config.offers_scope(s))
        .map_err(|why| OAuthError::new(ErrorCode::InvalidScope, why))?;
    let no_account = || OAuthError::invalid_request("login_hint names no account here");
    let hint = match params.get("login_hint").map(|n| n.trim().to_lowercase()) {
        Some(name) if !valid_username(&name) => return Err(no_account()),
        Some(name) => Some(app.store.user_by_name(&name).await?.ok_or_else(no_account)?),
        None => None,
    };
    let lifetimes = app.config.lifetimes;
    let expires_in = if hint.is_some() { lifetimes.device_hinted } else { lifetimes.device_code };
    let device_code = new_secret(app.entropy.as_ref());
    let mut request = DeviceRequest {
        device_code_digest: digest(&device_code),
        user_code: String::new(),
        client_id: client.id.clone(),
        scope: scope.to_string(),
        hint_user_id: hint.map(|u| u.id),
        status: DeviceStatus::Pending,
        user_id: None,
        expires_at: now + expires_in,
        redeem_by: None,
        poll_interval: lifetimes.device_interval,
        last_poll_at: None,
        created_at: now,
        decided_at: None,
        client_address: Some(address),
    };
    // A user code is short: on the rare collision with a live one, draw again.
    for _ in 0..5 {
        request.user_code = new_user_code(app.entropy.as_ref());
        if app.store.insert_device_request(&request, app.trace_counter.seq(now)).await? {
            if let Some(account) = &request.hint_user_id {
                // An account has at most a few requests waiting; the newest win.
                app.store.supersede_pending(account, app.config.device_pending_per_account, now).await?;
            }
            let user_code = display_user_code(&request.user_code);
            let verification_uri = app.config.endpoint("/device");
            return Ok(no_store(HttpResponse::Ok()).json(json!({
                "device_code": device_code,
                "user_code": user_code,
                "verification_uri": verification_uri,
                "verification_uri_complete": format!("{verification_uri}?user_code={user_code}"),
                "expires_in": expires_in,
                "interval": lifetimes.device_interval,
            })));
        }
    }
    Err(OAuthError::new(ErrorCode::ServerError, "no free user code; try again"))
}

/// A request as a person sees it before deciding.
struct RequestView {
    request: DeviceRequest,
    user_code: String,
    client_name: String,
    scopes: Vec<ScopeLine>,
}

#[derive(Template)]
#[template(path = "device.html")]
struct DevicePage {
    chrome: Chrome,
    typed: String,
    request: Option<RequestView>,
    message: Option<String>,
}

/// RFC 8628 3.3: the account holder enters the code the device shows.
#[get("/device")]
pub async fn device_page(
    req: HttpRequest,
    app: web::Data<AppState>,
    session: Session,
    SignedIn(user_id): SignedIn,
    PageQuery(q): PageQuery,
) -> Result<HttpResponse, PageError> {
    let typed = q.get("user_code").unwrap_or_default().to_owned();
    let (request, message) = match q.get("user_code") {
        None => (None, None),
        Some(t) => match find_for(&app, app.limits.client(&req), &user_id, t).await? {
            Ok(view) => (Some(view), None),
            Err(why) => (None, Some(why)),
        },
    };
    let chrome = chrome(&app, &session, "device", Some(user_id)).await?;
    render(StatusCode::OK, &DevicePage { chrome, typed, request, message })
}

/// The pending request with this code that `user_id` may decide, or why not.
async fn find_for(
    app: &AppState,
    client: ClientKey,
    user_id: &str,
    typed: &str,
) -> Result<Result<RequestView, String>, PageError> {
    // Guessing codes backs off like guessing passwords (RFC 8628 5.1); the
    // per-address rate limit stops guessing across many accounts.
    let key = format!("device:{user_id}");
    let now = app.now();
    if let Err(wait) = app.backoff.check(&key, client, now) {
        app.metrics.rate_limited(LimitKind::UserCodeBackoff);
        return Ok(Err(format!("Too many wrong codes. Try again in {wait} seconds.")));
    }
    let request = match normalize_user_code(typed) {
        Some(code) => app.store.device_request_by_user_code(&code).await?,
        None => None,
    };
    let Some(request) = request.filter(|r| r.status == DeviceStatus::Pending && r.expires_at > now) else {
        app.backoff.record_failure(&key, client, now);
        return Ok(Err("That code is not waiting for approval. Check it on the device.".into()));
    };
    if request.hint_user_id.as_deref().is_some_and(|hint| hint != user_id) {
        return Ok(Err(
            "That device asked for another account. Only that account, or staff at a kiosk, can approve it.".into(),
        ));
    }
    // Not reset on success: a code of one's own must not buy more guesses.
    let client_name = device_name(app, &request.client_id, client).await?;
    let scopes = Scope::parse(&request.scope).iter().map(|s| ScopeLine::describe(&app.config, s)).collect();
    Ok(Ok(RequestView { user_code: display_user_code(&request.user_code), request, client_name, scopes }))
}

/// The name a device is shown by. A name a device chose for itself is its
/// own claim: say so (RFC 7591 5), as the store's lists do.
async fn device_name(app: &AppState, client_id: &str, asking: ClientKey) -> Result<String, PageError> {
    Ok(match app.client(client_id, asking).await? {
        Some(c) if c.registered => format!("{} (registered itself)", c.name),
        Some(c) => c.name.clone(),
        None => client_id.to_owned(),
    })
}

/// The account holder's decision.
#[post("/device")]
pub async fn device_decision(
    req: HttpRequest,
    app: web::Data<AppState>,
    session: Session,
    SignedIn(user_id): SignedIn,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let typed = form.get("user_code").unwrap_or_default().to_owned();
    let decision = decision(form.get("decision"))?;
    let message = match find_for(&app, app.limits.client(&req), &user_id, &typed).await? {
        Err(why) => why,
        Ok(view) => {
            let by =
                DecidedBy { account_id: &user_id, actor_id: &user_id, role: ActorRole::User, via: DecidedVia::Device };
            decide(&app, &view.request, &view.client_name, by, decision).await?.text
        }
    };
    let chrome = chrome(&app, &session, "device", Some(user_id)).await?;
    render(StatusCode::OK, &DevicePage { chrome, typed: String::new(), request: None, message: Some(message) })
}

fn decision(value: Option<&str>) -> Result<DeviceDecision, PageError> {
    match value.and_then(DeviceDecision::parse) {
        Some(d @ (DeviceDecision::Approve | DeviceDecision::Deny)) => Ok(d),
        _ => Err(PageError::bad_request("Choose Approve or Deny.")),
    }
}

/// Who decides, for which account, and where: the audit entry's parties.
struct DecidedBy<'a> {
    account_id: &'a str,
    actor_id: &'a str,
    role: ActorRole,
    via: DecidedVia,
}

/// What the person deciding reads next: a confirmation, or what to check.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Notice {
    done: bool,
    text: String,
}

impl Notice {
    fn done(text: String) -> Self {
        Self { done: true, text }
    }
    fn problem(text: impl Into<String>) -> Self {
        Self { done: false, text: text.into() }
    }
}

/// Records a decision on `request` (from the device `name`), with its audit
/// entry in the same transaction.
async fn decide(
    app: &AppState,
    request: &DeviceRequest,
    name: &str,
    by: DecidedBy<'_>,
    decision: DeviceDecision,
) -> Result<Notice, PageError> {
    let account_id = by.account_id;
    let now = app.now();
    let code = request.user_code.as_str();
    // A named account's approval may be redeemed for another hint lifetime (`--device-hint-ttl`).
    let redeem_by = match &request.hint_user_id {
        Some(_) => now + app.config.lifetimes.device_hinted,
        None => request.expires_at,
    };
    let approved = decision == DeviceDecision::Approve;
    let status = if approved { DeviceStatus::Approved } else { DeviceStatus::Denied };
    let entry = AuditEntry {
        seq: app.trace_counter.seq(now),
        at: now,
        request_id: request.device_code_digest.clone(),
        client_id: request.client_id.clone(),
        scope: request.scope.clone(),
        user_code: code.to_owned(),
        account_id: account_id.to_owned(),
        actor_id: by.actor_id.to_owned(),
        actor_role: by.role,
        via: by.via,
        decision,
    };
    if !app.store.decide_device_request(&entry, status, redeem_by).await? {
        return Ok(Notice::problem("That request was already decided, or has expired. Ask the device for a new code."));
    }
    audit::record(app, Some(account_id), None, Event::Device(&entry)).await;
    if approved {
        // Listed on the account's home page, where its access can be taken back.
        let previous = app.store.consent(account_id, &request.client_id).await?;
        let scope = previous.map(|p| Scope::parse(&p)).unwrap_or_default().union(&Scope::parse(&request.scope));
        app.store.save_consent(account_id, &request.client_id, &scope.to_string(), now).await?;
    }
    let shown = display_user_code(code);
    Ok(Notice::done(match approved {
        true => format!("Approved: {name}, the device showing {shown}, can now finish signing in."),
        false => format!("Denied: {name}, the device showing {shown}, will not get access."),
    }))
}

/// One line of the kiosk's audit list.
struct AuditLine {
    at: i64,
    device: String,
    user_code: String,
    account: String,
    actor: String,
    via: DecidedVia,
    decision: DeviceDecision,
}

#[derive(Template)]
#[template(path = "kiosk.html")]
struct KioskPage {
    chrome: Chrome,
    /// The account staff looked up, as typed.
    account: String,
    /// The code staff typed, kept when it did not work so it can be corrected.
    user_code: String,
    /// Its waiting requests, newest first (`None`: no such account).
    pending: Option<Vec<PendingRequest>>,
    audit: Vec<AuditLine>,
    notice: Option<Notice>,
}

/// What a kiosk decision leaves for the page it redirects to (post/redirect/get,
/// so reloading the page never decides twice).
#[derive(Serialize, Deserialize)]
struct KioskFlash {
    notice: Notice,
    /// The code as typed, when it did not work.
    user_code: String,
}

const KIOSK_FLASH: &str = "kiosk";

async fn staff(app: &AppState, user_id: &str) -> Result<(), PageError> {
    match app.store.user_by_id(user_id).await? {
        Some(u) if u.role == "staff" => Ok(()),
        _ => Err(PageError::new(StatusCode::FORBIDDEN, "Staff only", "The kiosk is for staff accounts.")),
    }
}

/// Staff look up an account's waiting requests (`?account=`); after a
/// decision, the page shows its outcome once.
#[get("/kiosk")]
pub async fn kiosk(
    app: web::Data<AppState>,
    session: Session,
    SignedIn(user_id): SignedIn,
    PageQuery(q): PageQuery,
) -> Result<HttpResponse, PageError> {
    staff(&app, &user_id).await?;
    let account = q.get("account").map(|a| a.trim().to_lowercase()).unwrap_or_default();
    let flash = session.remove_as::<KioskFlash>(KIOSK_FLASH).and_then(Result::ok);
    let now = app.now();
    // Looked up by the account on the ID, newest first: a flood naming other
    // accounts cannot push this one's request out of sight. No codes are
    // shown: staff type the one the device shows.
    let pending = match valid_username(&account) {
        true => match app.store.user_by_name(&account).await? {
            Some(u) => Some(app.store.pending_for_account(&u.id, now, app.config.device_pending_per_account).await?),
            None => None,
        },
        false => None,
    };
    let audit = app
        .store
        .recent_device_audit(20)
        .await?
        .into_iter()
        .map(|e| AuditLine {
            at: e.at,
            device: e.device,
            user_code: display_user_code(&e.user_code),
            account: e.account,
            actor: format!("{} ({})", e.actor, e.actor_role),
            via: e.via,
            decision: e.decision,
        })
        .collect();
    let (notice, user_code) = match flash {
        Some(f) => (Some(f.notice), f.user_code),
        None => (None, String::new()),
    };
    let chrome = chrome(&app, &session, "kiosk", Some(user_id)).await?;
    render(StatusCode::OK, &KioskPage { chrome, account, user_code, pending, audit, notice })
}

/// After checking the person's ID, staff approve or deny for that account.
#[post("/kiosk")]
pub async fn kiosk_decision(
    req: HttpRequest,
    app: web::Data<AppState>,
    session: Session,
    SignedIn(user_id): SignedIn,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    staff(&app, &user_id).await?;
    let decision = decision(form.get("decision"))?;
    let typed_account = form.get("account").map(|a| a.trim().to_lowercase()).unwrap_or_default();
    let code = form.get("user_code").and_then(normalize_user_code);
    let account = match valid_username(&typed_account) {
        true => app.store.user_by_name(&typed_account).await?,
        false => None,
    };
    let request = match &code {
        Some(c) => app.store.device_request_by_user_code(c).await?,
        None => None,
    };
    let now = app.now();
    let notice = match (account, request) {
        (Some(account), Some(r))
            if r.status == DeviceStatus::Pending
                && r.expires_at > now
                && r.hint_user_id.as_deref() == Some(account.id.as_str()) =>
        {
            let by = DecidedBy {
                account_id: &account.id,
                actor_id: &user_id,
                role: ActorRole::Staff,
                via: DecidedVia::Kiosk,
            };
            let name = device_name(&app, &r.client_id, app.limits.client(&req)).await?;
            decide(&app, &r, &name, by, decision).await?
        }
        _ => Notice::problem(
            "No device is waiting with that code for that account. Check the account name against the ID, \
             and the code against the device's screen.",
        ),
    };
    let user_code = match notice.done {
        true => String::new(),
        false => form.get("user_code").unwrap_or_default().chars().take(32).collect(),
    };
    // A cookie cannot take the flash when the session failed; the page still works without it.
    let _ = session.insert(KIOSK_FLASH, KioskFlash { notice, user_code });
    Ok(redirect(&format!("/kiosk?account={}", urlencode(&typed_account))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::CountingEntropy;

    #[test]
    fn user_codes_are_eight_consonants_shown_with_a_dash() {
        let entropy = CountingEntropy::default();
        let code = new_user_code(&entropy);
        assert_eq!(code.len(), 8);
        assert!(code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)), "{code}");
        let shown = display_user_code(&code);
        assert_eq!(shown.len(), 9);
        assert_eq!(&shown[4..5], "-");
        assert_eq!(normalize_user_code(&shown.to_lowercase()).as_deref(), Some(code.as_str()));
        assert_eq!(normalize_user_code(" bcdf ghjk "), Some("BCDFGHJK".into()));
        assert_eq!(normalize_user_code("BCDF-GHJA"), None, "A is not in the alphabet");
        assert_eq!(normalize_user_code("BCDF"), None);
    }
}
