//! Browser sessions (signed, encrypted cookies; the key is in the database so
//! instances agree) and the CSRF token every state-changing form carries.

use actix_session::Session;

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
