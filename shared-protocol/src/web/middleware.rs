//! Middleware every response passes through: security headers, the body
//! limit, one log line per request, and branded error pages.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::{DefaultHeaders, Next};
use actix_web::{web, Error, HttpResponse};

use crate::error::{ErrorCode, OAuthError, PageError};
use crate::state::AppState;
use crate::web::form::MAX_BODY;
use crate::web::pages;

/// RFC 9700 4.16 (clickjacking) and the usual hardening headers. No
/// `form-action`: browsers apply it to the redirect after the consent form,
/// which must reach the client's origin.
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::CACHE_CONTROL, "no-store"))
}

/// One line per request: method, path (never the query, which may carry a
/// code), status and latency. Request bodies and headers are never logged.
pub async fn request_log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.path().to_owned();
    let res = next.call(req).await?;
    tracing::info!(
        target: "http",
        "{} {} {} {}µs",
        method,
        path,
        res.status().as_u16(),
        started.elapsed().as_micros()
    );
    Ok(res)
}

/// Refuses a declared body over [`MAX_BODY`] before reading it (bodies without
/// a length are cut off by the extractors at the same size).
pub async fn body_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        let why = format!("the body is larger than {} KiB", MAX_BODY / 1024);
        let app = req.app_data::<web::Data<AppState>>();
        let mut res = match app.filter(|_| is_page(req.path())) {
            Some(app) => {
                pages::error_page(app, &PageError::new(StatusCode::PAYLOAD_TOO_LARGE, "This form is too large", why))
            }
            None => actix_web::ResponseError::error_response(&OAuthError::new(ErrorCode::InvalidRequest, why)),
        };
        *res.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
        res.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return Ok(req.into_response(res));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// Browser pages get an error page; protocol endpoints and APIs get JSON.
fn is_page(path: &str) -> bool {
    const MACHINE: &[&str] = &["/token", "/revoke", "/introspect", "/device_authorization"];
    !(MACHINE.contains(&path) || path.starts_with("/api/"))
}

/// Renders a [`PageError`] as the party's branded page: the one place a
/// browser error gets its body.
pub async fn render_error_pages(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let app = req.app_data::<web::Data<AppState>>().cloned();
    let res = next.call(req).await?;
    let page_error = res.response().error().and_then(|e| e.as_error::<PageError>()).cloned();
    match (page_error, app) {
        (Some(err), Some(app)) => {
            let (req, old) = res.into_parts();
            let mut page = pages::error_page(&app, &err);
            // Keep headers the handler set (e.g. Set-Cookie from the session).
            for (name, value) in old.headers() {
                if !page.headers().contains_key(name) {
                    page.headers_mut().append(name.clone(), value.clone());
                }
            }
            Ok(ServiceResponse::new(req, page))
        }
        _ => Ok(res.map_into_boxed_body()),
    }
}

/// Unknown paths: an error page for people.
pub async fn not_found() -> Result<HttpResponse, PageError> {
    Err(PageError::new(StatusCode::NOT_FOUND, "Page not found", "There is nothing at this address."))
}
