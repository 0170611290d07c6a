//! Browser sessions (signed, encrypted cookies; the key is in the database so
//! instances agree) and the CSRF token every state-changing form carries.
//!
//! A signed-in session also names a session id the database knows: signing
//! out deletes it, so a copied cookie stops working, and
//! [`check_lifetime`] ends a session idle or old past its lifetimes
//! (OWASP session management: idle and absolute timeouts).

use actix_session::{Session, SessionExt};
use actix_web::dev::{Payload, ServiceRequest};
use actix_web::http::{header, Method, StatusCode};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError};

use crate::clock::Entropy;
use crate::error::PageError;
use crate::state::AppState;
use crate::tokens::secrets::{constant_time_eq, digest, new_secret};
use crate::web::form::Params;

const USER: &str = "uid";
const SESSION_ID: &str = "sid";
const CSRF: &str = "csrf";
const NOTICE: &str = "notice";

/// The form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "csrf_token";

pub fn user_id(session: &Session) -> Option<String> {
    session.get::<String>(USER).ok().flatten()
}

/// Signs the user in with a fresh session id and a fresh CSRF token (no fixation).
pub async fn sign_in(app: &AppState, session: &Session, user_id: &str) -> Result<(), PageError> {
    if let Ok(Some(previous)) = session.get::<String>(SESSION_ID) {
        app.store.delete_session(&digest(&previous)).await?;
    }
    let id = new_secret(app.entropy.as_ref());
    app.store.insert_session(&digest(&id), user_id, app.now()).await?;
    session.renew();
    session.remove(CSRF);
    session.insert(SESSION_ID, &id).map_err(|_| PageError::internal())?;
    session.insert(USER, user_id).map_err(|_| PageError::internal())
}

/// Ends the session here and wherever its cookie was copied.
pub async fn sign_out(app: &AppState, session: &Session) -> Result<(), PageError> {
    if let Ok(Some(id)) = session.get::<String>(SESSION_ID) {
        app.store.delete_session(&digest(&id)).await?;
    }
    session.purge();
    Ok(())
}

/// Before any handler reads a signed-in session: the database must still know
/// it, for this user, within its idle and absolute lifetimes; otherwise the
/// request goes on signed out. Requests without a signed-in session cost nothing.
pub async fn check_lifetime(app: &AppState, req: &ServiceRequest) {
    let session = req.get_session();
    let Some(user_id) = user_id(&session) else {
        return;
    };
    let id = session.get::<String>(SESSION_ID).ok().flatten().map(|id| digest(&id));
    if !still_valid(app, id.as_deref(), &user_id).await {
        // Cleared, not purged: the page may still put a CSRF token in a fresh session.
        session.clear();
        session.renew();
    }
}

async fn still_valid(app: &AppState, id_digest: Option<&str>, user_id: &str) -> bool {
    let Some(id_digest) = id_digest else {
        return false;
    };
    let now = app.now();
    let lifetimes = app.config.sessions;
    match app.store.session(id_digest).await {
        Ok(Some(s)) if s.user_id == user_id => {
            if now - s.created_at >= lifetimes.absolute || now - s.last_seen_at >= lifetimes.idle {
                let _ = app.store.delete_session(id_digest).await;
                return false;
            }
            // Written at most once a minute per session: idle time is known to that precision.
            if now - s.last_seen_at >= 60 {
                if let Err(e) = app.store.touch_session(id_digest, now).await {
                    tracing::warn!(error = %e, "could not record a session's use");
                }
            }
            true
        }
        Ok(_) => false,
        Err(e) => {
            // Fail closed: without the database nobody is signed in.
            tracing::warn!(error = %e, "could not check a session");
            false
        }
    }
}

/// The session's CSRF token, created on first use.
pub fn csrf_token(session: &Session, entropy: &dyn Entropy) -> Result<String, PageError> {
    if let Ok(Some(t)) = session.get::<String>(CSRF) {
        return Ok(t);
    }
    let t = new_secret(entropy);
    session.insert(CSRF, &t).map_err(|_| PageError::internal())?;
    Ok(t)
}

/// The synchronizer-token check (double submit into the encrypted session).
pub fn check_csrf(session: &Session, params: &Params) -> Result<(), PageError> {
    let expected = session.get::<String>(CSRF).ok().flatten().ok_or_else(PageError::csrf)?;
    let presented = params.get(CSRF_FIELD).ok_or_else(PageError::csrf)?;
    if constant_time_eq(&expected, presented) {
        Ok(())
    } else {
        Err(PageError::csrf())
    }
}

/// A message for the next page the user sees (once).
pub fn set_notice(session: &Session, message: &str) {
    let _ = session.insert(NOTICE, message);
}

pub fn take_notice(session: &Session) -> Option<String> {
    session.remove_as::<String>(NOTICE).and_then(Result::ok)
}

/// The signed-in user of a page; anyone else is sent to sign in and, for a
/// page they were reading, brought back to it.
pub struct SignedIn(pub String);

/// The way to the login page, for a request without a signed-in user.
#[derive(Debug)]
pub struct SignInFirst {
    next: String,
}

impl std::fmt::Display for SignInFirst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sign in first, then {}", self.next)
    }
}

impl ResponseError for SignInFirst {
    fn status_code(&self) -> StatusCode {
        StatusCode::SEE_OTHER
    }
    fn error_response(&self) -> HttpResponse {
        let to = format!("/login?next={}", crate::web::form::urlencode(&self.next));
        HttpResponse::SeeOther().insert_header((header::LOCATION, to)).finish()
    }
}

impl FromRequest for SignedIn {
    type Error = SignInFirst;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let next = match (req.method(), req.query_string()) {
            (&Method::GET, "") => req.path().to_owned(),
            (&Method::GET, q) => format!("{}?{q}", req.path()),
            // A form cannot be replayed after signing in: start from home.
            _ => "/".to_owned(),
        };
        std::future::ready(user_id(&req.get_session()).map(SignedIn).ok_or(SignInFirst { next }))
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::COOKIE;
    use actix_web::test::{call_service, TestRequest};
    use actix_web::web::Data;

    use crate::clock::ManualClock;
    use crate::test_support::unit::{csrf_of, form, send, service, state, user, TestService};

    /// Signs `name` in through the login form; returns the session cookie.
    async fn sign_in(svc: &impl TestService, name: &str, password: &str) -> String {
        let page = send(svc, TestRequest::get().uri("/login")).await;
        let (cookie, csrf) = (page.cookie.expect("a session for the form"), csrf_of(&page.body));
        let body = format!("csrf_token={csrf}&username={name}&password={password}");
        let res = send(svc, form("/login", Some(&cookie), &body)).await;
        assert_eq!(res.status, 303, "signed in");
        res.cookie.expect("a signed-in session")
    }

    /// Where `GET /` sends the browser with `cookie`: `None` is the home page itself.
    async fn home(svc: &impl TestService, cookie: &str) -> Option<String> {
        let res = send(svc, TestRequest::get().uri("/").insert_header((COOKIE, cookie.to_owned()))).await;
        res.header("location").map(str::to_owned)
    }

    #[actix_web::test]
    async fn a_copied_cookie_stops_working_at_logout() {
        let app = Data::new(state(ManualClock::new(1_000)).await);
        user(&app, "alice", "wonderland").await;
        let svc = service(&app).await;
        let cookie = sign_in(&svc, "alice", "wonderland").await;
        let copy = cookie.clone();
        assert_eq!(home(&svc, &cookie).await, None, "signed in");

        let page = send(&svc, TestRequest::get().uri("/").insert_header((COOKIE, cookie.clone()))).await;
        let cookie = page.cookie.unwrap_or(cookie);
        let logout = form("/logout", Some(&cookie), &format!("csrf_token={}", csrf_of(&page.body)));
        assert_eq!(send(&svc, logout).await.status, 303);
        assert_eq!(home(&svc, &copy).await.as_deref(), Some("/login"), "the copy is signed out too");
    }

    #[actix_web::test]
    async fn sessions_end_when_idle_and_at_their_absolute_lifetime() {
        let clock = ManualClock::new(1_000);
        let app = Data::new(state(clock.clone()).await);
        user(&app, "alice", "wonderland").await;
        let lifetimes = app.config.sessions;
        let svc = service(&app).await;

        let idle = sign_in(&svc, "alice", "wonderland").await;
        clock.advance(lifetimes.idle - 1);
        assert_eq!(home(&svc, &idle).await, None, "used just in time: its idle time starts again");
        clock.advance(lifetimes.idle - 1);
        assert_eq!(home(&svc, &idle).await, None);
        clock.advance(lifetimes.idle);
        assert_eq!(home(&svc, &idle).await.as_deref(), Some("/login"), "idle too long");

        let busy = sign_in(&svc, "alice", "wonderland").await;
        let mut used = 0;
        while used + lifetimes.idle / 2 < lifetimes.absolute {
            clock.advance(lifetimes.idle / 2);
            used += lifetimes.idle / 2;
            assert_eq!(home(&svc, &busy).await, None, "in use at {used} s");
        }
        clock.advance(lifetimes.absolute - used);
        assert_eq!(home(&svc, &busy).await.as_deref(), Some("/login"), "however busy, it ends");
    }

    #[actix_web::test]
    async fn under_https_the_cookie_is_host_only_and_secure() {
        let app = Data::new(
            crate::test_support::unit::state_with(ManualClock::new(1_000), &["--public-url", "https://a.example"])
                .await,
        );
        let svc = service(&app).await;
        let res = call_service(&svc, TestRequest::get().uri("/login").to_request()).await;
        let cookie = res.response().cookies().next().expect("a session cookie");
        assert_eq!(cookie.name(), "__Host-party_t_session");
        assert_eq!((cookie.secure(), cookie.http_only(), cookie.path()), (Some(true), Some(true), Some("/")));
        assert_eq!(cookie.domain(), None, "host-only");
    }
}
