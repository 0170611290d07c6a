//! The account pages every party has (login, signup, logout, home) and the
//! shared page chrome: the party's name and colour on every page, so a user
//! always knows which site they are on.

use actix_session::Session;
use actix_web::http::{header, StatusCode};
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use askama::Template;

use crate::accounts::{valid_username, MIN_PASSWORD_LEN};
use crate::audit::{self, Event};
use crate::config::Config;
use crate::error::{Busy, PageError};
use crate::link::{LinkState, LinkView};
use crate::state::{AppState, DUMMY_PASSWORD_HASH};
use crate::store::UserRecord;
use crate::tokens::secrets::new_id;
use crate::web::form::{PageForm, PageQuery};
use crate::web::limits::LimitKind;
use crate::web::session::{self, CSRF_FIELD};

/// What every page shows: whose site this is, who is signed in, and the CSRF token.
pub struct Chrome {
    pub party_name: &'static str,
    pub tagline: &'static str,
    pub page: &'static str,
    pub username: Option<String>,
    pub csrf: String,
    pub csrf_field: &'static str,
}

pub async fn chrome(
    app: &AppState,
    session: &Session,
    page: &'static str,
    user_id: Option<String>,
) -> Result<Chrome, PageError> {
    let username = match user_id {
        Some(id) => app.store.user_by_id(&id).await?.map(|u| u.username),
        None => None,
    };
    let csrf = session::csrf_token(session, app.entropy.as_ref())?;
    Ok(Chrome { username, csrf, ..Chrome::anonymous(app, page) })
}

impl Chrome {
    /// For a page answered before any session is read (a refusal at the
    /// edge): the party's name, nobody signed in.
    pub fn anonymous(app: &AppState, page: &'static str) -> Self {
        Chrome {
            party_name: app.config.party.name,
            tagline: app.config.party.tagline,
            page,
            username: None,
            csrf: String::new(),
            csrf_field: CSRF_FIELD,
        }
    }
}

pub fn render(status: StatusCode, page: &impl Template) -> Result<HttpResponse, PageError> {
    let body = page.render().map_err(|e| {
        tracing::error!(error = %e, "template rendering failed");
        PageError::internal()
    })?;
    Ok(HttpResponse::build(status).content_type("text/html; charset=utf-8").body(body))
}

pub fn redirect(to: &str) -> HttpResponse {
    // A value that cannot be a header would make actix answer 500: go home instead.
    let to = header::HeaderValue::from_str(to).unwrap_or(header::HeaderValue::from_static("/"));
    HttpResponse::SeeOther().insert_header((header::LOCATION, to)).finish()
}

/// Only same-site paths may be returned to after login (no open redirect).
/// Browsers drop tabs and newlines and read `\\` as `/`, so any of those could
/// turn a path into `//elsewhere`: only plain printable paths are kept.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/') && !n.starts_with("//") && n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// One scope as the user reads it on a consent page.
pub struct ScopeLine {
    pub name: String,
    pub description: String,
}

impl ScopeLine {
    pub fn describe(config: &Config, scope: &str) -> Self {
        let description = config
            .party
            .offers
            .scopes
            .iter()
            .find(|s| s.name == scope)
            .map(|s| s.description.to_owned())
            .unwrap_or_else(|| scope.to_owned());
        Self { name: scope.to_owned(), description }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub chrome: Chrome,
    pub title: &'a str,
    pub message: &'a str,
}

/// The branded error page, with the header of the page it stands for
/// (who is signed in, the way to sign out) when `chrome` has them.
pub fn error_page(chrome: Chrome, err: &PageError) -> HttpResponse {
    let page = ErrorPage { chrome, title: &err.title, message: &err.message };
    let body = page.render().unwrap_or_else(|_| "Something went wrong.".to_owned());
    let mut res = HttpResponse::build(err.status);
    if let Some(busy) = err.busy {
        res.insert_header(busy.header());
    }
    res.content_type("text/html; charset=utf-8").body(body)
}

#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage {
    pub chrome: Chrome,
    pub client_name: String,
    /// The client is the peer: this is the first direction of a link.
    pub linking: bool,
    /// For a client that registered itself (RFC 7591) or is known by its
    /// metadata document, the host the answer goes to: its name is its own
    /// claim, the host is not (RFC 7591 5).
    pub answer_host: Option<String>,
    /// For a client known by its metadata document, where that is published.
    pub document_host: Option<String>,
    pub scopes: Vec<ScopeLine>,
    pub hidden: Vec<(&'static str, String)>,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    next: String,
    error: Option<String>,
    username: String,
}

#[derive(Template)]
#[template(path = "signup.html")]
struct SignupPage {
    chrome: Chrome,
    next: String,
    error: Option<String>,
    username: String,
}

/// An application the user has let in, on the home page.
pub struct AccessLine {
    pub client_id: String,
    pub client_name: String,
    pub scopes: Vec<ScopeLine>,
}

/// A message on the home page, with the way forward when there is one.
pub struct Notice {
    pub text: String,
    pub action: Option<Action>,
}

/// A link that moves something on, drawn as a button.
pub struct Action {
    pub href: String,
    pub label: String,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    chrome: Chrome,
    peer_name: &'static str,
    peer_url: String,
    link: LinkView,
    /// A message for this visit only, or a link attempt that waits for the user.
    notice: Option<Notice>,
    /// The party's own part of the page (e.g. the assistant's play box).
    panel: Option<String>,
    access: Vec<AccessLine>,
    /// Staff see the way to the kiosk.
    staff: bool,
}

#[get("/login")]
pub async fn login_page(
    app: web::Data<AppState>,
    session: Session,
    PageQuery(query): PageQuery,
) -> Result<HttpResponse, PageError> {
    let next = safe_next(query.get("next"));
    let chrome = chrome(&app, &session, "login", None).await?;
    render(StatusCode::OK, &LoginPage { chrome, next, error: None, username: String::new() })
}

#[post("/login")]
pub async fn login_submit(
    req: HttpRequest,
    app: web::Data<AppState>,
    session: Session,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let next = safe_next(form.get("next"));
    let username = form.get("username").unwrap_or("").trim().to_lowercase();
    let password = form.get("password").unwrap_or("").to_owned();
    let now = app.now();
    let client = app.limits.client(&req);
    let wrong = || ("Wrong username or password.".to_owned(), StatusCode::UNAUTHORIZED, None);
    // A name that cannot exist costs no hash, no lookup and no memory.
    let failure = if !valid_username(&username) {
        wrong()
    } else if let Err(wait) = app.backoff.check(&username, client, now) {
        app.metrics.rate_limited(LimitKind::SignInBackoff);
        let why = format!("Too many failed attempts. Try again in {wait} seconds.");
        (why, StatusCode::TOO_MANY_REQUESTS, Some(Busy::TooMany { retry_after: wait as u64 }))
    } else {
        let user = app.store.user_by_name(&username).await?;
        // Hash something even for unknown users so timing does not reveal who exists.
        let hash = user.as_ref().map_or(DUMMY_PASSWORD_HASH, |u| u.password_hash.as_str()).to_owned();
        let verified = app.hasher.verify(password, hash).await.map_err(PageError::busy)?;
        match user.filter(|_| verified) {
            Some(user) => {
                app.backoff.record_success(&username, client, now);
                session::sign_in(&app, &session, &user.id).await?;
                return Ok(redirect(&next));
            }
            None => {
                app.backoff.record_failure(&username, client, now);
                wrong()
            }
        }
    };
    let (error, status, busy) = failure;
    let chrome = chrome(&app, &session, "login", None).await?;
    let mut res = render(status, &LoginPage { chrome, next, error: Some(error), username })?;
    if let Some(busy) = busy {
        let (name, value) = busy.header();
        res.headers_mut().insert(name, value);
    }
    Ok(res)
}

#[get("/signup")]
pub async fn signup_page(
    app: web::Data<AppState>,
    session: Session,
    PageQuery(query): PageQuery,
) -> Result<HttpResponse, PageError> {
    let next = safe_next(query.get("next"));
    let chrome = chrome(&app, &session, "signup", None).await?;
    render(StatusCode::OK, &SignupPage { chrome, next, error: None, username: String::new() })
}

#[post("/signup")]
pub async fn signup_submit(
    app: web::Data<AppState>,
    session: Session,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let next = safe_next(form.get("next"));
    let username = form.get("username").unwrap_or("").trim().to_lowercase();
    let password = form.get("password").unwrap_or("").to_owned();
    let problem = if !valid_username(&username) {
        Some("Usernames are 3 to 32 characters: lowercase letters, digits, dot, dash or underscore.".to_owned())
    } else if password.chars().count() < MIN_PASSWORD_LEN {
        Some(format!("Passwords need at least {MIN_PASSWORD_LEN} characters."))
    } else {
        None
    };
    if let Some(error) = problem {
        let chrome = chrome(&app, &session, "signup", None).await?;
        return render(StatusCode::BAD_REQUEST, &SignupPage { chrome, next, error: Some(error), username });
    }
    let password_hash = app.hasher.hash(password).await.map_err(PageError::busy)?.ok_or_else(PageError::internal)?;
    let user = UserRecord { id: new_id(app.entropy.as_ref()), username, password_hash, role: "user".into() };
    if !app.store.insert_user(&user, app.now()).await? {
        let chrome = chrome(&app, &session, "signup", None).await?;
        let error = Some("That username is taken.".to_owned());
        return render(StatusCode::CONFLICT, &SignupPage { chrome, next, error, username: user.username });
    }
    session::sign_in(&app, &session, &user.id).await?;
    Ok(redirect(&next))
}

#[post("/logout")]
pub async fn logout(
    app: web::Data<AppState>,
    session: Session,
    PageForm(_): PageForm,
) -> Result<HttpResponse, PageError> {
    session::sign_out(&app, &session).await?;
    Ok(redirect("/login"))
}

#[get("/")]
pub async fn home(app: web::Data<AppState>, session: Session) -> Result<HttpResponse, PageError> {
    let Some(user_id) = session::user_id(&session) else {
        return Ok(redirect("/login"));
    };
    let peer_client = app.config.party.peer.client_id;
    let access = app
        .store
        .consents_of(&user_id)
        .await?
        .into_iter()
        // The peer's access is shown with the link.
        .filter(|(client_id, _, _)| client_id != peer_client)
        .map(|(client_id, client_name, scope)| AccessLine {
            client_id,
            client_name,
            scopes: scope.split(' ').map(|s| ScopeLine::describe(&app.config, s)).collect(),
        })
        .collect();
    let chrome = chrome(&app, &session, "home", Some(user_id.clone())).await?;
    if chrome.username.is_none() {
        // The account is gone (e.g. a fresh database): start over.
        session::sign_out(&app, &session).await?;
        return Ok(redirect("/login"));
    }
    let link = crate::link::view(&app, &user_id).await?;
    // A message is said once; a link attempt is mentioned only while it waits for the user.
    let notice = match session::take_notice(&session) {
        Some(text) => Some(Notice { text, action: None }),
        None => crate::link::pages::waiting_for_user(&app, &user_id).await?,
    };
    let panel = match app.config.party.home_panel {
        Some(render_panel) => render_panel(&app.store, &user_id, &chrome.csrf).await,
        None => None,
    };
    let peer_name = app.config.party.peer.name;
    let peer_url = app.config.peer_url.clone();
    let staff = app.store.user_by_id(&user_id).await?.is_some_and(|u| u.role == "staff");
    render(StatusCode::OK, &HomePage { chrome, peer_name, peer_url, link, notice, panel, access, staff })
}

/// Withdraws consent for a client and revokes everything it holds for this user.
#[post("/consents/revoke")]
pub async fn revoke_consent(
    app: web::Data<AppState>,
    session: Session,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let user_id = session::user_id(&session).ok_or_else(|| {
        PageError::bad_request("You are signed out. Sign in, then remove the access from your home page.")
    })?;
    let client_id = form.get("client_id").ok_or_else(|| {
        PageError::bad_request("The form did not say which application. Use the button on your home page.")
    })?;
    app.store.delete_consent(&user_id, client_id).await?;
    audit::record(&app, Some(&user_id), None, Event::ConsentWithdrawn { client_id }).await;
    for grant_id in app.store.live_grants(&user_id, client_id).await? {
        app.revoke_grant(&grant_id).await?;
    }
    // A device approved but not yet signed in must not get in afterwards.
    let now = app.now();
    for withdrawn in app.store.withdraw_device_requests(&user_id, client_id, now, app.trace_counter.seq(now)).await? {
        audit::record(&app, Some(&user_id), None, Event::Device(&withdrawn)).await;
    }
    Ok(redirect("/"))
}

#[get("/static/style.css")]
pub async fn stylesheet(app: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(format!(
            ":root {{ --brand: {}; }}\n{}",
            app.config.party.colour,
            include_str!("../../templates/style.css")
        ))
}

/// 200 when the party can serve: the database answered within the last
/// second. Served outside every layer (a probe every second would fill the
/// log), so it sets its own `Cache-Control`.
#[get("/healthz")]
pub async fn healthz(app: web::Data<AppState>) -> HttpResponse {
    use std::sync::atomic::Ordering;
    let now = app.now();
    let fresh = now - app.db_seen_at.load(Ordering::Relaxed) < 1;
    let (mut res, body) = match if fresh { Ok(()) } else { app.store.ping().await } {
        Ok(()) => {
            if !fresh {
                app.db_seen_at.store(now, Ordering::Relaxed);
            }
            (HttpResponse::Ok(), "ok")
        }
        Err(e) => {
            tracing::error!(error = %e, "health check: database unreachable");
            (HttpResponse::ServiceUnavailable(), "database unreachable")
        }
    };
    res.insert_header((header::CACHE_CONTROL, "no-store")).content_type("text/plain").body(body)
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(login_page)
        .service(login_submit)
        .service(signup_page)
        .service(signup_submit)
        .service(logout)
        .service(home)
        .service(revoke_consent)
        .service(stylesheet);
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_keeps_local_paths_only() {
        assert_eq!(safe_next(Some("/authorize?client_id=a&scope=b")), "/authorize?client_id=a&scope=b");
        for evil in ["//evil.example", "/\t/evil.example", "/\\evil.example", "https://evil.example", "/\n", "/ x", ""]
        {
            assert_eq!(safe_next(Some(evil)), "/", "{evil:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
