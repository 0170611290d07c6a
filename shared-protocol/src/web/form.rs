//! Strict `application/x-www-form-urlencoded` parsing (RFC 6749 Appendix B):
//! a parameter may appear once (RFC 6749 3.1, 3.2), the body must be UTF-8,
//! and a parameter sent without a value counts as omitted.

use std::collections::HashMap;

use actix_web::dev::Payload;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use percent_encoding::percent_decode;

use actix_session::SessionExt;

use crate::error::{OAuthError, PageError};
use crate::web::session::check_csrf;

/// The most a request body may carry (docs/choices.md, "Limits").
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    Duplicate(String),
    NotUtf8,
    /// A NUL character: never meaningful in OAuth (RFC 6749 Appendix A
    /// allows none), and PostgreSQL cannot store one.
    Nul,
    WrongContentType,
    TooLarge,
    Unreadable,
}

impl ParseError {
    pub fn describe(&self) -> String {
        match self {
            Self::Duplicate(name) => format!("the parameter `{name}` appears more than once"),
            Self::NotUtf8 => "the request is not valid UTF-8".into(),
            Self::Nul => "the request contains a NUL character".into(),
            Self::WrongContentType => "the body must be application/x-www-form-urlencoded".into(),
            Self::TooLarge => format!("the body is larger than {} KiB", MAX_BODY / 1024),
            Self::Unreadable => "the request body could not be read".into(),
        }
    }
}

/// Parameters of one request, each at most once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn parse(input: &[u8]) -> Result<Self, ParseError> {
        Self::parse_with_list(input, None).map(|(p, _)| p)
    }

    /// Like [`Params::parse`], but the parameter `list` may repeat (a group
    /// of checkboxes); its values are returned apart, in order.
    pub fn parse_with_list(input: &[u8], list: Option<&str>) -> Result<(Self, Vec<String>), ParseError> {
        let mut map = HashMap::new();
        let mut values = Vec::new();
        for pair in input.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            let name = decode(name)?;
            let value = decode(value)?;
            if list == Some(name.as_str()) {
                values.push(value);
            } else if map.insert(name.clone(), value).is_some() {
                return Err(ParseError::Duplicate(name));
            }
        }
        Ok((Self(map), values))
    }

    /// A parameter's value; empty values count as omitted (RFC 6749 3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name).ok_or_else(|| OAuthError::invalid_request(format!("the parameter `{name}` is required")))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// `application/x-www-form-urlencoded` encoding of one value (the WHATWG URL
/// standard's, as RFC 6749 appendix B asks for client credentials too).
pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The inverse of [`urlencode`]: `+` is a space, no NUL, UTF-8 only.
pub fn urldecode(s: &str) -> Result<String, ParseError> {
    decode(s.as_bytes())
}

fn decode(raw: &[u8]) -> Result<String, ParseError> {
    let plus_as_space: Vec<u8> = raw.iter().map(|b| if *b == b'+' { b' ' } else { *b }).collect();
    let decoded = percent_decode(&plus_as_space).decode_utf8().map_err(|_| ParseError::NotUtf8)?;
    if decoded.contains('\0') {
        return Err(ParseError::Nul);
    }
    Ok(decoded.into_owned())
}

fn read_form(req: &HttpRequest, payload: &mut Payload) -> LocalBoxFuture<'static, Result<Params, ParseError>> {
    let fut = read_form_with_list(req, payload, None);
    Box::pin(async move { fut.await.map(|(p, _)| p) })
}

fn read_form_with_list(
    req: &HttpRequest,
    payload: &mut Payload,
    list: Option<&'static str>,
) -> LocalBoxFuture<'static, Result<(Params, Vec<String>), ParseError>> {
    let is_form = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    let body = web::Bytes::from_request(req, payload);
    Box::pin(async move {
        if !is_form {
            return Err(ParseError::WrongContentType);
        }
        let bytes = body.await.map_err(|e| match e.as_error::<actix_web::error::PayloadError>() {
            Some(actix_web::error::PayloadError::Overflow) => ParseError::TooLarge,
            _ => ParseError::Unreadable,
        })?;
        Params::parse_with_list(&bytes, list)
    })
}

/// A protocol endpoint's form body; any fault is an RFC 6749 `invalid_request`.
pub struct OAuthForm(pub Params);

impl FromRequest for OAuthForm {
    type Error = OAuthError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let fut = read_form(req, payload);
        Box::pin(async move { fut.await.map(OAuthForm).map_err(|e| OAuthError::invalid_request(e.describe())) })
    }
}

/// A browser form's body whose CSRF token matched the session's (every
/// state-changing form); any fault is an error page.
pub struct PageForm(pub Params);

impl FromRequest for PageForm {
    type Error = PageError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let fut = read_form(req, payload);
        let session = req.get_session();
        Box::pin(async move {
            let params = fut.await.map_err(|e| unreadable_form(&e))?;
            check_csrf(&session, &params)?;
            Ok(PageForm(params))
        })
    }
}

/// A browser form with one checkbox `scope` per scope (the link settings),
/// CSRF-checked like [`PageForm`].
pub struct ScopeForm {
    pub params: Params,
    pub scopes: Vec<String>,
}

impl FromRequest for ScopeForm {
    type Error = PageError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let fut = read_form_with_list(req, payload, Some("scope"));
        let session = req.get_session();
        Box::pin(async move {
            let (params, scopes) = fut.await.map_err(|e| unreadable_form(&e))?;
            check_csrf(&session, &params)?;
            Ok(ScopeForm { params, scopes })
        })
    }
}

/// A browser page's query string, parsed as strictly as a form.
pub struct PageQuery(pub Params);

impl FromRequest for PageQuery {
    type Error = PageError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Params::parse(req.query_string().as_bytes()).map(PageQuery).map_err(|e| {
            PageError::bad_request(format!(
                "This address cannot be read ({}). Check the link, or start again from the home page.",
                e.describe()
            ))
        }))
    }
}

/// What a browser user reads when a form's body cannot be used: what is
/// wrong, and what to do about it.
fn unreadable_form(e: &ParseError) -> PageError {
    PageError::bad_request(format!(
        "This form could not be read ({}). Go back, reload the page and try again.",
        e.describe()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plus_and_percent_escapes() {
        let p = Params::parse(b"scope=player%3Aread+player%3Acontrol&state=a%20b").unwrap();
        assert_eq!(p.get("scope"), Some("player:read player:control"));
        assert_eq!(p.get("state"), Some("a b"));
    }

    #[test]
    fn refuses_a_repeated_parameter() {
        assert_eq!(Params::parse(b"code=a&code=b"), Err(ParseError::Duplicate("code".into())));
    }

    #[test]
    fn a_checkbox_group_may_repeat_but_nothing_else() {
        let (p, scopes) = Params::parse_with_list(b"scope=a&csrf_token=t&scope=b", Some("scope")).unwrap();
        assert_eq!(scopes, ["a", "b"]);
        assert_eq!(p.get("csrf_token"), Some("t"));
        let twice = Params::parse_with_list(b"scope=a&x=1&x=2", Some("scope"));
        assert_eq!(twice, Err(ParseError::Duplicate("x".into())));
    }

    #[test]
    fn refuses_bytes_that_are_not_utf8() {
        assert_eq!(Params::parse(b"code=%FF%FE"), Err(ParseError::NotUtf8));
    }

    #[test]
    fn refuses_a_nul_character() {
        assert_eq!(Params::parse(b"client_id=a%00b"), Err(ParseError::Nul));
        assert_eq!(Params::parse(b"a%00=b"), Err(ParseError::Nul));
    }

    #[test]
    fn treats_an_empty_value_as_omitted() {
        let p = Params::parse(b"state=&flag").unwrap();
        assert_eq!(p.get("state"), None);
        assert_eq!(p.get("flag"), None);
        assert!(p.require("state").is_err());
    }
}
