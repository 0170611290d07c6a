//! The authorization endpoint: RFC 6749 4.1.1–4.1.2 with PKCE S256 required
//! (RFC 7636, RFC 9700 2.1.1) and `iss` in every response (RFC 9207).
//!
//! Until the client and its redirect URI are known to be valid, errors are
//! shown to the user; only after that do they go back to the client
//! (RFC 6749 4.1.2.1), so this endpoint is never an open redirector.

use std::sync::Arc;

use actix_session::Session;
use actix_web::http::{header, StatusCode};
use actix_web::{get, post, web, FromRequest, HttpRequest, HttpResponse};
use url::Url;

use super::client_metadata::is_document_url;

use super::client_auth::Client;
use super::grants::authorization_code::{mint_code, CodeBinding};
use super::grants::client_credentials::target;
use super::pkce;
use super::scope::Scope;
use crate::audit::{self, Event};
use crate::error::{ErrorCode, OAuthError, PageError};
use crate::grant_type::GrantType;
use crate::state::AppState;
use crate::web::form::{urlencode, PageForm, PageQuery, Params};
use crate::web::limits::ClientKey;
use crate::web::pages::{self, ConsentPage, ScopeLine};
use crate::web::session;

/// A validated authorization request.
pub struct AuthorizationRequest {
    pub client: Arc<Client>,
    pub redirect_uri: String,
    /// The request named its redirect URI, so the token request must too (RFC 6749 4.1.3).
    pub redirect_uri_sent: bool,
    pub scope: Scope,
    pub state: Option<String>,
    pub code_challenge: String,
    pub audience: String,
    pub force_consent: bool,
}

/// Why a request was refused, and where the user learns of it.
pub enum Rejection {
    /// The client or redirect URI is unknown: tell the user, never redirect.
    Page(PageError),
    /// The client is known: send the error back to it.
    Client { redirect_uri: String, state: Option<String>, error: OAuthError },
}

impl From<crate::store::StoreError> for Rejection {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Page(e.into())
    }
}

impl From<PageError> for Rejection {
    fn from(e: PageError) -> Self {
        Self::Page(e)
    }
}

/// RFC 6749 4.1.1 and RFC 7636 4.3, as a decision without I/O beyond the client lookup.
pub async fn validate(app: &AppState, p: &Params, requester: ClientKey) -> Result<AuthorizationRequest, Rejection> {
    let refuse = |msg: &'static str| Rejection::Page(PageError::bad_request(msg));
    let client_id =
        p.get("client_id").ok_or_else(|| refuse("The application that sent you here did not say who it is."))?;
    let client = app.client(client_id, requester).await?.ok_or_else(|| {
        refuse(
            "The application that sent you here is not registered with us, or its client metadata could not be used.",
        )
    })?;
    let (redirect_uri, redirect_uri_sent) = match p.get("redirect_uri") {
        Some(uri) if client.has_redirect_uri(uri) => (uri.to_owned(), true),
        Some(_) => return Err(refuse("The application asked to send you to an address it has not registered.")),
        None if client.redirect_uris.len() == 1 => (client.redirect_uris[0].clone(), false),
        None => return Err(refuse("The application did not say where to send you back.")),
    };
    // Registration checks every URI; this guards what storage could still hold.
    if Url::parse(&redirect_uri).is_err() {
        return Err(refuse("The application registered an address we cannot send you to."));
    }

    // From here on the client is trusted with its own errors.
    let state = p.get("state").map(str::to_owned);
    let to_client =
        |error: OAuthError| Rejection::Client { redirect_uri: redirect_uri.clone(), state: state.clone(), error };
    let back = |code: ErrorCode, why: &'static str| to_client(OAuthError::new(code, why));
    if p.get("response_type") != Some("code") {
        return Err(back(ErrorCode::UnsupportedResponseType, "only response_type=code is supported"));
    }
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return Err(back(ErrorCode::UnauthorizedClient, "this client may not use the authorization code flow"));
    }
    let challenge = p.get("code_challenge").ok_or_else(|| {
        back(ErrorCode::InvalidRequest, "PKCE is required: send code_challenge with code_challenge_method=S256")
    })?;
    // A missing method means `plain` (RFC 7636 4.3), which is refused like an explicit one.
    if p.get("code_challenge_method") != Some("S256") {
        return Err(back(ErrorCode::InvalidRequest, "code_challenge_method must be S256"));
    }
    if !pkce::is_valid_s256_challenge(challenge) {
        return Err(back(ErrorCode::InvalidRequest, "code_challenge is not a base64url SHA-256 value"));
    }
    let scope = Scope::requested(p.get("scope"), &client.scope, |s| app.config.offers_scope(s))
        .map_err(|why| back(ErrorCode::InvalidScope, why))?;
    let (audience, _) = target(&app.config, p.get("resource"), None).map_err(to_client)?;
    Ok(AuthorizationRequest {
        client,
        redirect_uri,
        redirect_uri_sent,
        scope,
        state,
        code_challenge: challenge.to_owned(),
        audience,
        force_consent: p.get("prompt") == Some("consent"),
    })
}

#[get("/authorize")]
pub async fn authorize_endpoint(
    req: HttpRequest,
    app: web::Data<AppState>,
    session: Session,
) -> Result<HttpResponse, PageError> {
    let PageQuery(params) = PageQuery::extract(&req).await?;
    let request = match validate(&app, &params, app.limits.client(&req)).await {
        Ok(r) => r,
        Err(rejection) => return reject(&app, rejection, StatusCode::FOUND),
    };
    app.note_client_use(&request.client).await;
    let Some(user_id) = session::user_id(&session) else {
        let here = format!("/authorize?{}", req.query_string());
        return Ok(pages::redirect(&format!("/login?next={}", urlencode(&here))));
    };
    let remembered = app.store.consent(&user_id, &request.client.id).await?;
    if !request.force_consent && remembered.is_some_and(|s| request.scope.is_subset(&Scope::parse(&s))) {
        return issue_code(&app, &request, &user_id, StatusCode::FOUND).await;
    }
    let chrome = pages::chrome(&app, &session, "consent", Some(user_id)).await?;
    let scopes = request.scope.iter().map(|s| ScopeLine::describe(&app.config, s)).collect();
    let hidden = consent_fields(&request);
    let linking = app.hooks.links_accounts(&app, &request.client.id);
    let client_name = request.client.name.clone();
    // A registered client's name is its own claim; the hosts are not (RFC 7591 5).
    let host = |url: &str| Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_owned));
    let answer_host = request.client.registered.then(|| host(&request.redirect_uri)).flatten();
    let document_host = is_document_url(&request.client.id, app.config.insecure_client_metadata)
        .then(|| host(&request.client.id))
        .flatten();
    let page = ConsentPage { chrome, client_name, linking, answer_host, document_host, scopes, hidden };
    pages::render(StatusCode::OK, &page)
}

/// The user's answer on the consent page.
#[post("/authorize")]
pub async fn consent_decision(
    req: HttpRequest,
    app: web::Data<AppState>,
    session: Session,
    PageForm(params): PageForm,
) -> Result<HttpResponse, PageError> {
    let user_id = session::user_id(&session).ok_or_else(|| {
        PageError::new(
            StatusCode::UNAUTHORIZED,
            "You are signed out",
            "Your session ended before you answered. Start again from the application.",
        )
    })?;
    let request = match validate(&app, &params, app.limits.client(&req)).await {
        Ok(r) => r,
        Err(rejection) => return reject(&app, rejection, StatusCode::SEE_OTHER),
    };
    match params.get("decision") {
        Some("approve") => {
            let previous = app.store.consent(&user_id, &request.client.id).await?;
            let remembered = previous.map(|s| Scope::parse(&s)).unwrap_or_default().union(&request.scope);
            app.store.save_consent(&user_id, &request.client.id, &remembered.to_string(), app.now()).await?;
            let given = Event::ConsentGiven { client_id: &request.client.id, scope: &request.scope.to_string() };
            audit::record(&app, Some(&user_id), None, given).await;
            issue_code(&app, &request, &user_id, StatusCode::SEE_OTHER).await
        }
        Some("deny") => {
            let denied = Event::ConsentDenied { client_id: &request.client.id, scope: &request.scope.to_string() };
            audit::record(&app, Some(&user_id), None, denied).await;
            Ok(to_client(
                &app,
                &request.redirect_uri,
                request.state.as_deref(),
                &[("error", "access_denied"), ("error_description", "the user denied the request")],
                StatusCode::SEE_OTHER,
            ))
        }
        _ => Err(PageError::bad_request("Choose Allow or Deny.")),
    }
}

/// RFC 6749 4.1.2: mint a single-use code bound to the client, the redirect
/// URI, the PKCE challenge, the user and the scope.
async fn issue_code(
    app: &AppState,
    request: &AuthorizationRequest,
    user_id: &str,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let (grant, code) = mint_code(
        app,
        CodeBinding {
            client_id: &request.client.id,
            user_id,
            scope: &request.scope.to_string(),
            audience: &request.audience,
            redirect_uri: request.redirect_uri_sent.then_some(request.redirect_uri.as_str()),
            code_challenge: Some(&request.code_challenge),
        },
    )
    .await?;
    let mut params = vec![("code", code.secret().to_owned())];
    params.extend(app.hooks.authorized(app, &grant).await);
    let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Ok(to_client(app, &request.redirect_uri, request.state.as_deref(), &params, status))
}

fn reject(app: &AppState, rejection: Rejection, status: StatusCode) -> Result<HttpResponse, PageError> {
    match rejection {
        Rejection::Page(e) => Err(e),
        Rejection::Client { redirect_uri, state, error } => Ok(to_client(
            app,
            &redirect_uri,
            state.as_deref(),
            &[("error", error.code.as_str()), ("error_description", &error.description)],
            status,
        )),
    }
}

/// A redirect to the client's registered URI with `params`, `state` and `iss` (RFC 9207 2).
fn to_client(
    app: &AppState,
    redirect_uri: &str,
    state: Option<&str>,
    params: &[(&str, &str)],
    status: StatusCode,
) -> HttpResponse {
    #[allow(
        clippy::expect_used,
        reason = "it equals a registered URI, each parsed as absolute when registered (config.rs, register.rs)"
    )]
    let mut url = Url::parse(redirect_uri).expect("registered redirect URIs are absolute URLs");
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
        if let Some(s) = state {
            q.append_pair("state", s);
        }
        q.append_pair("iss", app.config.issuer());
    }
    HttpResponse::build(status).insert_header((header::LOCATION, url.as_str())).finish()
}

fn consent_fields(r: &AuthorizationRequest) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("client_id", r.client.id.clone()),
        ("response_type", "code".to_owned()),
        ("scope", r.scope.to_string()),
        ("code_challenge", r.code_challenge.clone()),
        ("code_challenge_method", "S256".to_owned()),
        ("resource", r.audience.clone()),
    ];
    if r.redirect_uri_sent {
        fields.push(("redirect_uri", r.redirect_uri.clone()));
    }
    if let Some(s) = &r.state {
        fields.push(("state", s.clone()));
    }
    fields
}
