//! One error type per layer, each mapped to HTTP in exactly one place:
//! [`OAuthError`] for protocol endpoints (RFC 6749 5.2 JSON),
//! [`ApiError`] for the resource server (RFC 6750 3 challenges),
//! [`PageError`] for browsers (a branded error page, never JSON or a trace).

use std::borrow::Cow;
use std::fmt;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::store::StoreError;

/// RFC 6749 5.2 and 4.1.2.1 error codes, plus those of RFC 8707, RFC 7009,
/// RFC 8628 and RFC 7591.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    InvalidTarget,
    AccessDenied,
    UnsupportedResponseType,
    UnsupportedTokenType,
    ServerError,
    TemporarilyUnavailable,
    AuthorizationPending,
    SlowDown,
    ExpiredToken,
    /// RFC 7591 3.2.2.
    InvalidRedirectUri,
    InvalidClientMetadata,
    /// RFC 6750 3.1, for the registration access token of RFC 7592.
    InvalidToken,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::ExpiredToken => "expired_token",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::InvalidToken => "invalid_token",
        }
    }
}

/// A request turned away before any work was done for it, with when to
/// come back (`Retry-After`, RFC 9110 10.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// This client (or everyone together) went over a rate limit: 429 (RFC 6585 4).
    TooMany { retry_after: u64 },
    /// The server is at capacity for this kind of work (password hashing): 503.
    AtCapacity { retry_after: u64 },
}

impl Busy {
    pub fn status(self) -> StatusCode {
        match self {
            Self::TooMany { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::AtCapacity { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
    pub fn retry_after(self) -> u64 {
        match self {
            Self::TooMany { retry_after } | Self::AtCapacity { retry_after } => retry_after.max(1),
        }
    }
    pub fn describe(self) -> String {
        match self {
            Self::TooMany { .. } => format!("too many requests; try again in {} seconds", self.retry_after()),
            Self::AtCapacity { .. } => format!("the server is busy; try again in {} seconds", self.retry_after()),
        }
    }
    pub(crate) fn header(self) -> (header::HeaderName, HeaderValue) {
        (header::RETRY_AFTER, HeaderValue::from(self.retry_after()))
    }
}

/// A protocol error (RFC 6749 5.2): always with an `error_description`.
#[derive(Debug, Clone)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: Cow<'static, str>,
    /// Set when the client tried HTTP Basic, so the 401 carries the challenge (RFC 6749 5.2).
    pub basic_challenge: bool,
    /// Set when the request was turned away by a limit: 429 or 503 with `Retry-After`.
    pub busy: Option<Busy>,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self { code, description: description.into(), basic_challenge: false, busy: None }
    }
    /// RFC 6749 has no code for "slow down" outside RFC 8628's polling;
    /// `temporarily_unavailable` (4.1.2.1) says what the client should do: wait.
    pub fn busy(busy: Busy) -> Self {
        Self { busy: Some(busy), ..Self::new(ErrorCode::TemporarilyUnavailable, busy.describe()) }
    }
    pub fn invalid_request(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, d)
    }
    pub fn invalid_client(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidClient, d)
    }
    pub fn invalid_grant(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidGrant, d)
    }
    pub fn invalid_scope(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidScope, d)
    }
    pub fn server_error() -> Self {
        Self::new(ErrorCode::ServerError, "the server could not complete the request; try again")
    }
    pub fn with_basic_challenge(mut self, tried_basic: bool) -> Self {
        self.basic_challenge = tried_basic;
        self
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "storage failure on a protocol endpoint");
        Self::server_error()
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'static str,
    error_description: &'a str,
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        if let Some(busy) = self.busy {
            return busy.status();
        }
        match self.code {
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            // temporarily_unavailable included: RFC 6749 5.2 answers 400 to all but invalid_client.
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CACHE_CONTROL, "no-store")).insert_header((header::PRAGMA, "no-cache"));
        if self.code == ErrorCode::InvalidClient && self.basic_challenge {
            res.insert_header((header::WWW_AUTHENTICATE, r#"Basic realm="token", charset="UTF-8""#));
        }
        if self.code == ErrorCode::InvalidToken {
            res.insert_header((header::WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#));
        }
        if let Some(busy) = self.busy {
            res.insert_header(busy.header());
        }
        let mut res = res.json(ErrorBody { error: self.code.as_str(), error_description: &self.description });
        // The edge counts it (`oauth_errors_total`): this is the one place it becomes HTTP, and has no state.
        res.extensions_mut().insert(self.code);
        res
    }
}

/// Why a bearer token was not accepted (RFC 6750 3.1).
#[derive(Debug, Clone)]
pub enum ApiError {
    /// No credentials at all: the challenge without an error code (RFC 6750 3.1).
    MissingToken,
    InvalidToken(Cow<'static, str>),
    InsufficientScope {
        required: &'static str,
    },
    /// A valid token that acts for no user (`client_credentials`) at an API
    /// that acts for one: 403, since no other token of that client would do.
    NoUser,
    BadRequest(Cow<'static, str>),
    Internal,
}

impl ApiError {
    /// The error in words, for logs and for errors of another layer.
    pub fn describe(&self) -> String {
        match self {
            Self::MissingToken => "no token".into(),
            Self::InvalidToken(d) | Self::BadRequest(d) => d.to_string(),
            Self::InsufficientScope { required } => format!("the token lacks the scope {required}"),
            Self::NoUser => "this API acts for a user and the token names none".into(),
            Self::Internal => "an internal error".into(),
        }
    }
}

/// What the resource server puts in its challenges; attached by the guard.
#[derive(Debug, Clone)]
pub struct Challenge {
    pub realm: String,
    pub issuer: String,
    pub resource_metadata: String,
}

/// An [`ApiError`] together with the challenge parameters of the API that raised it.
#[derive(Debug)]
pub struct ApiRejection {
    pub error: ApiError,
    pub challenge: Challenge,
}

impl fmt::Display for ApiRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.error)
    }
}

impl ResponseError for ApiRejection {
    fn status_code(&self) -> StatusCode {
        match self.error {
            ApiError::MissingToken | ApiError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            ApiError::InsufficientScope { .. } | ApiError::NoUser => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let c = &self.challenge;
        let base =
            format!(r#"Bearer realm="{}", iss="{}", resource_metadata="{}""#, c.realm, c.issuer, c.resource_metadata);
        let (challenge, body) = match &self.error {
            // RFC 6750 3.1: no error code when the request carried no credentials.
            ApiError::MissingToken => {
                let mut res = HttpResponse::build(self.status_code());
                if let Ok(v) = HeaderValue::from_str(&base) {
                    res.insert_header((header::WWW_AUTHENTICATE, v));
                }
                return res.insert_header((header::CACHE_CONTROL, "no-store")).finish();
            }
            ApiError::InvalidToken(d) => (
                format!(r#"{base}, error="invalid_token", error_description="{d}""#),
                ErrorBody { error: "invalid_token", error_description: d },
            ),
            ApiError::InsufficientScope { required } => (
                format!(r#"{base}, error="insufficient_scope", scope="{required}""#),
                ErrorBody {
                    error: "insufficient_scope",
                    error_description: "the token lacks the scope this call needs",
                },
            ),
            ApiError::NoUser => (
                format!(r#"{base}, error="insufficient_scope", error_description="the token names no user""#),
                ErrorBody {
                    error: "insufficient_scope",
                    error_description: "this API acts for a user: use a token from the authorization code flow",
                },
            ),
            ApiError::BadRequest(d) => (
                format!(r#"{base}, error="invalid_request""#),
                ErrorBody { error: "invalid_request", error_description: d },
            ),
            ApiError::Internal => (base, ErrorBody { error: "server_error", error_description: "try again later" }),
        };
        let mut res = HttpResponse::build(self.status_code());
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            res.insert_header((header::WWW_AUTHENTICATE, v));
        }
        res.insert_header((header::CACHE_CONTROL, "no-store")).json(body)
    }
}

/// An error a browser sees: rendered as the party's branded error page by
/// [`crate::web::middleware::pages_layer`], the one place pages get their chrome.
#[derive(Debug, Clone)]
pub struct PageError {
    pub status: StatusCode,
    pub title: Cow<'static, str>,
    pub message: Cow<'static, str>,
    pub busy: Option<Busy>,
}

impl PageError {
    pub fn new(status: StatusCode, title: impl Into<Cow<'static, str>>, message: impl Into<Cow<'static, str>>) -> Self {
        Self { status, title: title.into(), message: message.into(), busy: None }
    }
    pub fn busy(busy: Busy) -> Self {
        let title = match busy {
            Busy::TooMany { .. } => "Too many attempts",
            Busy::AtCapacity { .. } => "We are busy",
        };
        let message = format!("Please wait {} seconds, then try again.", busy.retry_after());
        Self { busy: Some(busy), ..Self::new(busy.status(), title, message) }
    }
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "This request cannot be used", message)
    }
    pub fn csrf() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "This form has expired",
            "The page you submitted was stale or did not come from this site. Go back, reload it and try again.",
        )
    }
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong", "Please try again in a moment.")
    }
}

impl fmt::Display for PageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.title, self.message)
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "storage failure on a page");
        Self::internal()
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        // The body is filled in by the error-page middleware, which knows the party's branding.
        let mut res = HttpResponse::build(self.status);
        if let Some(busy) = self.busy {
            res.insert_header(busy.header());
        }
        let mut res = res.finish();
        res.extensions_mut().insert(self.clone());
        res
    }
}
