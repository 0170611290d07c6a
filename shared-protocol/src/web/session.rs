//! Browser sessions (signed, encrypted cookies; the key is in the database so
//! instances agree) and the CSRF token every state-changing form carries.

use actix_session::{Session, SessionExt};
use actix_web::dev::Payload;
use actix_web::http::{header, Method, StatusCode};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError};

use crate::clock::Entropy;
use crate::error::PageError;
use crate::tokens::secrets::{constant_time_eq, new_secret};
use crate::web::form::Params;

const USER: &str = "uid";
const CSRF: &str = "csrf";
const NOTICE: &str = "notice";

/// The form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "csrf_token";

pub fn user_id(session: &Session) -> Option<String> {
    session.get::<String>(USER).ok().flatten()
}

/// Signs the user in with a fresh session id and a fresh CSRF token (no fixation).
pub fn sign_in(session: &Session, user_id: &str) -> Result<(), PageError> {
    session.renew();
    session.remove(CSRF);
    session.insert(USER, user_id).map_err(|_| PageError::internal())
}

pub fn sign_out(session: &Session) {
    session.purge();
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
        let to = format!("/login?next={}", crate::server::authorize::urlencode(&self.next));
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
