//! What every request passes through, in two layers around the session
//! cookie: the edge (request log and metrics, head and body limits, rate limits, body
//! deadline, security headers) and the pages layer (session lifetime,
//! branded error pages). Each layer of middleware costs a boxed future and a
//! boxed body per request, so the edge's steps are plain functions called in
//! order by one layer, not a layer each.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_session::SessionExt;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{ConnectionType, StatusCode};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{web, Error, HttpRequest, HttpResponse, ResponseError};
use futures_util::Stream;

use crate::error::{ErrorCode, OAuthError, PageError};
use crate::state::AppState;
use crate::web::form::MAX_BODY;
use crate::web::pages;
use crate::web::session;

/// The most a request head may carry: the request line and every header.
pub const MAX_HEAD: usize = 16 * 1024;

/// The edge, outermost: refuses what is too large or over a rate limit
/// before anything reads it, gives the body a deadline, adds the security
/// headers to every answer, logs one line per request and counts it
/// ([`crate::metrics::Metrics::answered`], the one place requests are counted).
pub async fn edge(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.path().to_owned();
    let mut res = match too_large(&req).or_else(|| over_rate_limit(&req)) {
        Some(refusal) => req.into_response(refusal),
        None => {
            let deadline = body_deadline(&mut req);
            let res = next.call(req).await?.map_into_boxed_body();
            match deadline {
                Some((timeout, timed_out)) if timed_out.get() => too_slow(res, timeout),
                _ => res,
            }
        }
    };
    security_headers(res.headers_mut());
    let elapsed = started.elapsed();
    if let Some(app) = res.request().app_data::<web::Data<AppState>>() {
        app.metrics.answered(&res, elapsed);
    }
    // Method, path (never the query, which may carry a code), status and
    // latency; bodies and headers are never logged.
    tracing::info!(target: "http", "{method} {path} {} {}µs", res.status().as_u16(), elapsed.as_micros());
    Ok(res)
}

/// RFC 9700 4.16 (clickjacking) and the usual hardening headers, unless the
/// handler set its own. No `form-action`: browsers apply it to the redirect
/// after the consent form, which must reach the client's origin. JSON answers
/// get the short set OWASP's REST cheat sheet gives for APIs (a JSON body
/// loads no script, style or image, and has no link to leak a referrer).
fn security_headers(headers: &mut HeaderMap) {
    const PAGE: [(HeaderName, &str); 5] = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    const JSON: [(HeaderName, &str); 4] = [
        (header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    let json = headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    for (name, value) in if json { &JSON[..] } else { &PAGE[..] } {
        if !headers.contains_key(name) {
            headers.insert(name.clone(), HeaderValue::from_static(value));
        }
    }
}

/// A head over [`MAX_HEAD`] (431, RFC 6585 5) or a declared body over
/// [`MAX_BODY`] (413); bodies without a length are cut off by the extractors
/// at the same size.
fn too_large(req: &ServiceRequest) -> Option<HttpResponse> {
    let uri = req.uri();
    let head = uri.path_and_query().map_or(0, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len())
        + req.headers().iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum::<usize>();
    if head > MAX_HEAD {
        let why = format!("the request head is larger than {} KiB", MAX_HEAD / 1024);
        return Some(refusal(
            req.request(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "This request is too large",
            why,
        ));
    }
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        let why = format!("the body is larger than {} KiB", MAX_BODY / 1024);
        return Some(refusal(req.request(), StatusCode::PAYLOAD_TOO_LARGE, "This form is too large", why));
    }
    None
}

/// A request refused before its handler: an error page or `invalid_request`
/// JSON with `status`, and the connection closed (its body is not read).
fn refusal(req: &HttpRequest, status: StatusCode, title: &'static str, why: String) -> HttpResponse {
    let mut res =
        error_for(req, PageError::new(status, title, why.clone()), OAuthError::new(ErrorCode::InvalidRequest, why));
    *res.status_mut() = status;
    res.head_mut().set_connection_type(ConnectionType::Close);
    res
}

/// The rate limit this request counts against, if it is over it (429).
fn over_rate_limit(req: &ServiceRequest) -> Option<HttpResponse> {
    let app = req.app_data::<web::Data<AppState>>()?;
    let (kind, limit) = app.limits.for_request(req.method(), req.path(), req.query_string())?;
    let busy = limit.check(app.limits.client(req.request())).err()?;
    app.metrics.rate_limited(kind);
    Some(error_for(req.request(), PageError::busy(busy), OAuthError::busy(busy)))
}

/// A browser page gets the branded error page; protocol endpoints and APIs get JSON.
fn error_for(req: &HttpRequest, page: PageError, protocol: OAuthError) -> HttpResponse {
    match req.app_data::<web::Data<AppState>>().filter(|_| is_page(req.path())) {
        Some(app) => pages::error_page(pages::Chrome::anonymous(app, "error"), &page),
        None => protocol.error_response(),
    }
}

/// A request body must arrive within `--body-timeout`: a stalled one (a
/// slow-body attack holds a connection and a buffer) is answered 408 and its
/// connection closed, whichever extractor was reading it. Returns the
/// deadline and the flag that says it passed, for requests with a body.
fn body_deadline(req: &mut ServiceRequest) -> Option<(Duration, Rc<Cell<bool>>)> {
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req.headers().get(header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() != b"0");
    let timeout = req.app_data::<web::Data<AppState>>().map(|app| app.config.body_timeout).filter(|_| has_body)?;
    let timed_out = Rc::new(Cell::new(false));
    let body = DeadlineBody {
        inner: std::mem::replace(req.parts_mut().1, Payload::None),
        deadline: Box::pin(actix_web::rt::time::sleep(timeout)),
        timed_out: timed_out.clone(),
    };
    req.set_payload(Payload::Stream { payload: Box::pin(body) });
    Some((timeout, timed_out))
}

/// The answer to a request whose body missed its deadline: 408, connection closed.
fn too_slow(res: ServiceResponse<BoxBody>, timeout: Duration) -> ServiceResponse<BoxBody> {
    let (req, _) = res.into_parts();
    let why = format!("the request body did not arrive within {} seconds", timeout.as_secs());
    let res = refusal(&req, StatusCode::REQUEST_TIMEOUT, "This took too long", why);
    ServiceResponse::new(req, res)
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
    !(crate::server::is_protocol_path(path) || path.starts_with("/api/"))
}

/// The pages layer, inside the session cookie: a signed-in session must
/// still be valid ([`session::check_lifetime`]) before a handler reads it,
/// and a [`PageError`] becomes the party's branded page, the one place a
/// browser error gets its body.
pub async fn pages_layer(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let app = req.app_data::<web::Data<AppState>>().cloned();
    if let Some(app) = &app {
        session::check_lifetime(app, &req).await;
    }
    let res = next.call(req).await?;
    let page_error = res.response().error().and_then(|e| e.as_error::<PageError>()).cloned();
    match (page_error, app) {
        (Some(err), Some(app)) => {
            let (req, old) = res.into_parts();
            let session = req.get_session();
            let user_id = session::user_id(&session);
            // Nobody signed in: nothing to look up, and no CSRF token to mint (no form is drawn).
            // A page that failed on storage may fail to name the user too: then it names nobody.
            let chrome = match user_id {
                Some(id) => pages::chrome(&app, &session, "error", Some(id)).await.ok(),
                None => None,
            }
            .unwrap_or_else(|| pages::Chrome::anonymous(&app, "error"));
            let mut page = pages::error_page(chrome, &err);
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

/// A protocol path asked with a method it does not answer (say `GET /token`): 405 and JSON.
pub async fn protocol_not_found(req: HttpRequest) -> HttpResponse {
    let (status, why) = if crate::server::PROTOCOL_PATHS.contains(&req.path()) {
        (StatusCode::METHOD_NOT_ALLOWED, format!("{} does not answer {}", req.path(), req.method()))
    } else {
        (StatusCode::NOT_FOUND, format!("there is no {} here", req.path()))
    };
    let mut res = OAuthError::new(ErrorCode::InvalidRequest, why).error_response();
    *res.status_mut() = status;
    res
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
    use crate::test_support::unit::{send, service, state};

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
    async fn every_protocol_path_reaches_its_endpoint_and_a_wrong_method_gets_json() {
        let app = Data::new(state(ManualClock::new(1_000)).await);
        let svc = service(&app).await;
        for &path in crate::server::PROTOCOL_PATHS {
            let get = send(&svc, TestRequest::get().uri(path)).await;
            let post = send(&svc, TestRequest::post().uri(path)).await;
            assert!(get.status != 405 || post.status != 405, "{path}: served by neither GET nor POST");
            for res in [get, post] {
                assert!(res.header("content-type").is_some_and(|t| t.starts_with("application/json")), "{path}");
                assert_eq!(res.header("content-security-policy"), Some("frame-ancestors 'none'"), "{path}");
                assert_eq!(res.header("x-content-type-options"), Some("nosniff"), "{path}");
                assert!(res.cookie.is_none(), "{path}: a protocol answer sets no cookie");
            }
        }
        let res = send(&svc, TestRequest::get().uri("/token")).await;
        assert_eq!(res.status, 405);
        assert!(res.body.contains(r#""error":"invalid_request""#), "{}", res.body);
        // An unknown document under /.well-known/ is not there, whatever the method.
        let res = send(&svc, TestRequest::get().uri("/.well-known/openid-configuration")).await;
        assert_eq!(res.status, 404);
        assert!(res.body.contains(r#""error":"invalid_request""#), "{}", res.body);
        // Pages still get the page layers and the full policy.
        let page = send(&svc, TestRequest::get().uri("/nowhere")).await;
        assert_eq!(page.status, 404);
        assert!(page.body.contains(r#"data-page="error""#), "{}", page.body);
        assert!(page.header("content-security-policy").is_some_and(|p| p.contains("default-src 'none'")));
        let probe = send(&svc, TestRequest::get().uri("/healthz")).await;
        assert_eq!((probe.status, probe.body.as_str(), probe.header("cache-control")), (200, "ok", Some("no-store")));
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
