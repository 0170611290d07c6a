//! Middleware every response passes through: security headers, the head and
//! body limits, the body deadline, one log line per request, and branded
//! error pages.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::http::ConnectionType;
use actix_web::http::StatusCode;
use actix_web::middleware::{DefaultHeaders, Next};
use actix_web::web::Bytes;
use actix_web::{web, Error, HttpResponse};
use futures_util::Stream;

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

/// The most a request head may carry: the request line and every header.
pub const MAX_HEAD: usize = 16 * 1024;

/// Refuses a request head over [`MAX_HEAD`] (431, RFC 6585 5) and a declared
/// body over [`MAX_BODY`] (413) before reading the body; bodies without a
/// length are cut off by the extractors at the same size.
pub async fn request_limits(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let head = req.uri().to_string().len()
        + req.headers().iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum::<usize>();
    if head > MAX_HEAD {
        let why = format!("the request head is larger than {} KiB", MAX_HEAD / 1024);
        let res = refusal(&req, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "This request is too large", why);
        return Ok(req.into_response(res));
    }
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        let why = format!("the body is larger than {} KiB", MAX_BODY / 1024);
        let res = refusal(&req, StatusCode::PAYLOAD_TOO_LARGE, "This form is too large", why);
        return Ok(req.into_response(res));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// A request refused before its handler: an error page or `invalid_request`
/// JSON with `status`, and the connection closed (its body is not read).
fn refusal(req: &ServiceRequest, status: StatusCode, title: &'static str, why: String) -> HttpResponse {
    let app = req.app_data::<web::Data<AppState>>();
    let mut res = match app.filter(|_| is_page(req.path())) {
        Some(app) => pages::error_page(app, &PageError::new(status, title, why)),
        None => actix_web::ResponseError::error_response(&OAuthError::new(ErrorCode::InvalidRequest, why)),
    };
    *res.status_mut() = status;
    res.head_mut().set_connection_type(ConnectionType::Close);
    res
}

/// A request body must arrive within `--body-timeout`: a stalled one (a
/// slow-body attack holds a connection and a worker's buffer) is answered
/// 408 and its connection closed, whichever extractor was reading it.
pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req.headers().get(header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() != b"0");
    let Some(timeout) = req.app_data::<web::Data<AppState>>().map(|app| app.config.body_timeout).filter(|_| has_body)
    else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let timed_out = Rc::new(Cell::new(false));
    let body = DeadlineBody {
        inner: std::mem::replace(req.parts_mut().1, Payload::None),
        deadline: Box::pin(actix_web::rt::time::sleep(timeout)),
        timed_out: timed_out.clone(),
    };
    req.set_payload(Payload::Stream { payload: Box::pin(body) });
    let res = next.call(req).await?;
    if !timed_out.get() {
        return Ok(res.map_into_boxed_body());
    }
    let (req, _) = res.into_parts();
    let why = format!("the request body did not arrive within {} seconds", timeout.as_secs());
    let page = is_page(req.path());
    let mut res = match req.app_data::<web::Data<AppState>>().filter(|_| page) {
        Some(app) => pages::error_page(app, &PageError::new(StatusCode::REQUEST_TIMEOUT, "This took too long", why)),
        None => actix_web::ResponseError::error_response(&OAuthError::new(ErrorCode::InvalidRequest, why)),
    };
    *res.status_mut() = StatusCode::REQUEST_TIMEOUT;
    res.head_mut().set_connection_type(ConnectionType::Close);
    Ok(ServiceResponse::new(req, res))
}

/// A request body that fails once its deadline passes.
struct DeadlineBody {
    inner: Payload,
    deadline: Pin<Box<actix_web::rt::time::Sleep>>,
    timed_out: Rc<Cell<bool>>,
}

impl Stream for DeadlineBody {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.timed_out.set(true);
            let late = std::io::Error::new(std::io::ErrorKind::TimedOut, "request body deadline");
            return Poll::Ready(Some(Err(PayloadError::Io(late))));
        }
        Poll::Pending
    }
}

/// Browser pages get an error page; protocol endpoints and APIs get JSON.
pub(crate) fn is_page(path: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use actix_web::dev::{Payload, Service};
    use actix_web::test::TestRequest;
    use actix_web::web::Data;
    use futures_util::StreamExt;

    use crate::clock::ManualClock;
    use crate::testing::{send, service, state};

    #[actix_web::test]
    async fn a_stalled_body_is_answered_408_and_its_connection_closed() {
        let app = Data::new(state(ManualClock::new(1_000)).await);
        let svc = service(&app).await;
        // Virtual time: the runtime jumps to the deadline once nothing else can run.
        tokio::time::pause();
        let req = TestRequest::post()
            .uri("/token")
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .insert_header(("content-length", "60000"))
            .to_request();
        let stalled = futures_util::stream::once(async { Ok(actix_web::web::Bytes::from_static(b"grant_type=")) })
            .chain(futures_util::stream::pending());
        let (req, _) =
            req.replace_payload(Payload::Stream { payload: Box::pin(stalled) as actix_http::BoxedPayloadStream });
        let started = tokio::time::Instant::now();
        let res = svc.call(req).await.unwrap();
        assert_eq!(res.status(), 408);
        assert_eq!(res.response().head().connection_type(), actix_web::http::ConnectionType::Close);
        assert_eq!(started.elapsed().as_secs(), app.config.body_timeout.as_secs(), "cut at the deadline");
        let body = actix_web::test::read_body(res).await;
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "invalid_request");
    }

    #[actix_web::test]
    async fn a_huge_request_head_is_refused_with_431() {
        let app = Data::new(state(ManualClock::new(1_000)).await);
        let svc = service(&app).await;
        let big = "x".repeat(super::MAX_HEAD);
        let res = send(&svc, TestRequest::get().uri("/login").insert_header(("x-filler", big))).await;
        assert_eq!(res.status, 431);
        assert!(res.body.contains(r#"data-page="error""#), "an error page for a page: {}", res.body);
        let small = send(&svc, TestRequest::get().uri("/login").insert_header(("x-filler", "x".repeat(1000)))).await;
        assert_eq!(small.status, 200);
    }
}
