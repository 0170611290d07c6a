//! Dynamic client registration (RFC 7591) at `POST /register`, and reading
//! and deleting a registration with its registration access token (RFC
//! 7592 2.1, 2.3) at `/register/{client_id}`.
//!
//! A client that registers itself gets what any client of this party may
//! have, and nothing of the link: only the plain grants (never the
//! reciprocal one), only scopes this party offers, only redirect URIs that
//! are `https` or loopback `http` (RFC 8252 7.3), keys only inline. It is
//! rate-limited per address (`--rate-registration`), capped in number
//! (`--max-registered-clients`), forgotten a day after registering if it
//! never got a grant and once unused for `--registered-client-idle-days`
//! ([`crate::store::Store::prune_unused_registrations`]).

use actix_web::http::header::{self, HeaderMap};
use actix_web::http::StatusCode;
use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use serde_json::{json, Value};
use url::{Host, Url};

use super::client_auth::Client;
use super::scope::Scope;
use super::token::no_store;
use crate::config::Config;
use crate::error::{Busy, ErrorCode, OAuthError};
use crate::grant_type::GrantType;
use crate::state::AppState;
use crate::store::ClientRecord;
use crate::tokens::secrets::{new_id, new_secret, ClientSecret};

pub const REGISTRATION_PATH: &str = "/register";

/// The grants a registered client may ask for: the plain server's, none of the link's.
const REGISTRABLE_GRANTS: [GrantType; 4] =
    [GrantType::AuthorizationCode, GrantType::RefreshToken, GrantType::ClientCredentials, GrantType::DeviceCode];

/// RFC 7591 2 `token_endpoint_auth_method` values this server honours.
const AUTH_METHODS: [&str; 4] = ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"];

const MAX_REDIRECT_URIS: usize = 10;
const MAX_URI_LENGTH: usize = 512;
const MAX_NAME_LENGTH: usize = 100;
const MAX_KEYS: usize = 5;
const MAX_JWKS_BYTES: usize = 8 * 1024;

/// The client metadata of RFC 7591 2 that this server uses; the rest
/// (`client_uri`, `logo_uri`, `contacts`, …) is ignored, as 2 allows.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Metadata {
    /// Only in a client metadata document, where it must be the document's URL.
    pub client_id: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    token_endpoint_auth_method: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    client_name: Option<String>,
    scope: Option<String>,
    jwks_uri: Option<String>,
    jwks: Option<Value>,
}

/// Metadata that passed every check, normalised.
#[derive(Debug, PartialEq)]
pub(crate) struct Checked {
    pub redirect_uris: Vec<String>,
    pub auth_method: &'static str,
    pub grant_types: Vec<GrantType>,
    pub name: String,
    pub scope: Scope,
    /// The inline JWKS, re-serialised.
    pub jwks: Option<String>,
}

fn metadata_error(why: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, why)
}

/// RFC 7591 2 and 3.2.2: every rule a registration must meet here.
pub(crate) fn check(config: &Config, m: Metadata) -> Result<Checked, OAuthError> {
    let auth_method = match m.token_endpoint_auth_method.as_deref() {
        None => "client_secret_basic",
        Some(method) => AUTH_METHODS.into_iter().find(|a| *a == method).ok_or_else(|| {
            metadata_error(format!("token_endpoint_auth_method must be one of {}", AUTH_METHODS.join(", ")))
        })?,
    };
    let mut grant_types = Vec::new();
    for g in m.grant_types.unwrap_or_else(|| vec![GrantType::AuthorizationCode.to_string()]) {
        let grant = GrantType::parse(&g)
            .filter(|g| REGISTRABLE_GRANTS.contains(g))
            .ok_or_else(|| metadata_error(format!("grant_types: {g} is not offered to registered clients")))?;
        if !grant_types.contains(&grant) {
            grant_types.push(grant);
        }
    }
    if grant_types.is_empty() {
        return Err(metadata_error("grant_types must name at least one grant"));
    }
    let code_flow = grant_types.contains(&GrantType::AuthorizationCode);
    // RFC 7591 2.1: response_types and grant_types must agree.
    let response_types = m.response_types.unwrap_or_else(|| if code_flow { vec!["code".into()] } else { vec![] });
    if response_types.iter().any(|r| r != "code") || code_flow == response_types.is_empty() {
        return Err(metadata_error(
            "response_types must be [\"code\"] exactly when grant_types has authorization_code",
        ));
    }
    if grant_types.contains(&GrantType::ClientCredentials) && auth_method == "none" {
        return Err(metadata_error("client_credentials needs a client that authenticates"));
    }
    let redirect_uris = m.redirect_uris;
    if code_flow && redirect_uris.is_empty() {
        return Err(OAuthError::new(ErrorCode::InvalidRedirectUri, "authorization_code needs redirect_uris"));
    }
    if redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(OAuthError::new(ErrorCode::InvalidRedirectUri, "at most 10 redirect_uris"));
    }
    for uri in &redirect_uris {
        check_redirect_uri(uri)?;
    }
    let name = match m.client_name.as_deref().map(str::trim) {
        None | Some("") => "Unnamed application".to_owned(),
        Some(n) if n.chars().count() > MAX_NAME_LENGTH || !n.chars().all(shows_plainly) => {
            return Err(metadata_error(
                "client_name must be at most 100 characters, without control, format or invisible characters",
            ))
        }
        Some(n) => n.to_owned(),
    };
    let scope = match m.scope.as_deref() {
        None => Scope::parse(&config.scope_names().collect::<Vec<_>>().join(" ")),
        Some(s) if Scope::is_well_formed(s) && !Scope::parse(s).is_empty() => Scope::parse(s),
        Some(_) => return Err(metadata_error("scope is malformed")),
    };
    if let Some(unknown) = scope.iter().find(|s| !config.offers_scope(s)) {
        return Err(metadata_error(format!("scope: {unknown} is not offered here")));
    }
    if m.jwks_uri.is_some() {
        // Fetching a URL a stranger names is a request forgery waiting to happen: keys come inline.
        return Err(metadata_error("register keys inline (jwks); jwks_uri is not accepted"));
    }
    let jwks = match (m.jwks, auth_method) {
        (Some(set), "private_key_jwt") => Some(check_jwks(set)?),
        (None, "private_key_jwt") => return Err(metadata_error("private_key_jwt needs jwks")),
        (Some(_), _) => return Err(metadata_error("jwks is only for private_key_jwt")),
        (None, _) => None,
    };
    Ok(Checked { redirect_uris, auth_method, grant_types, name, scope, jwks })
}

/// Whether `c` may appear in a client name shown on the consent page: no
/// character that is invisible or changes how its neighbours read (Unicode
/// general categories Cc, Cf (bidirectional marks and overrides, zero-width
/// joiners, soft hyphen, tags), Zl, Zp), none without an agreed look
/// (unassigned, private use), and not the Hangul fillers, letters (Lo) that
/// render as blank space.
fn shows_plainly(c: char) -> bool {
    use unicode_properties::general_category::{GeneralCategory as G, UnicodeGeneralCategory};
    let hidden = matches!(
        c.general_category(),
        G::Control
            | G::Format
            | G::LineSeparator
            | G::ParagraphSeparator
            | G::Unassigned
            | G::PrivateUse
            | G::Surrogate
    );
    !hidden && !matches!(c, '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}')
}

/// Exact URIs only (RFC 9700 2.1): `https`, or `http` on a loopback address
/// for a native app (RFC 8252 7.3); absolute, without fragment or credentials.
fn check_redirect_uri(uri: &str) -> Result<(), OAuthError> {
    let bad = |why: &str| OAuthError::new(ErrorCode::InvalidRedirectUri, format!("{uri}: {why}"));
    if uri.len() > MAX_URI_LENGTH {
        return Err(bad("longer than 512 characters"));
    }
    // URIs are stored space-separated, and a parser would quietly encode a space.
    if uri.bytes().any(|b| b <= 0x20 || b == 0x7f) {
        return Err(bad("no spaces or control characters in a redirect URI"));
    }
    let url = Url::parse(uri).map_err(|_| bad("not an absolute URI"))?;
    if url.fragment().is_some() || uri.contains('#') {
        return Err(bad("a redirect URI has no fragment (RFC 6749 3.1.2)"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("no credentials in a redirect URI"));
    }
    let loopback = match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(bad("must be https, or http on a loopback address (RFC 8252 7.3)")),
    }
}

/// A few public signing keys, each usable, none private.
fn check_jwks(set: Value) -> Result<String, OAuthError> {
    let text = set.to_string();
    if text.len() > MAX_JWKS_BYTES {
        return Err(metadata_error("jwks is larger than 8 KiB"));
    }
    let parsed: JwkSet =
        serde_json::from_value(set).map_err(|e| metadata_error(format!("jwks is not a JWK set: {e}")))?;
    if parsed.keys.is_empty() || parsed.keys.len() > MAX_KEYS {
        return Err(metadata_error("jwks must hold one to five keys"));
    }
    // Structurally, so a `kid` of "d" is no private key: no private member in any key.
    let private = ["d", "p", "q", "dp", "dq", "qi", "k"];
    let keys = set_value_keys(&text);
    if keys.iter().any(|k| private.iter().any(|p| k.get(*p).is_some())) {
        return Err(metadata_error("jwks must hold public keys only"));
    }
    if keys.iter().any(|k| !matches!(k.get("kty").and_then(Value::as_str), Some("EC" | "RSA" | "OKP"))) {
        return Err(metadata_error("jwks keys must be EC, RSA or OKP (asymmetric)"));
    }
    if parsed.keys.iter().any(|k| DecodingKey::from_jwk(k).is_err()) {
        return Err(metadata_error("jwks holds a key that cannot verify signatures"));
    }
    Ok(text)
}

fn set_value_keys(text: &str) -> Vec<Value> {
    serde_json::from_str::<Value>(text).ok().and_then(|v| v["keys"].as_array().cloned()).unwrap_or_default()
}

/// RFC 7591 3.1: register a client from its JSON metadata.
#[post("/register")]
pub async fn registration_endpoint(
    req: HttpRequest,
    app: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthError> {
    if !is_json(req.headers()) {
        return Err(metadata_error("send the client metadata as application/json (RFC 7591 3.1)"));
    }
    let metadata: Metadata =
        serde_json::from_slice(&body).map_err(|e| metadata_error(format!("the metadata is not valid: {e}")))?;
    if metadata.client_id.is_some() {
        return Err(metadata_error("the server chooses the client_id (RFC 7591 3.2.1)"));
    }
    let checked = check(&app.config, metadata)?;
    let now = app.now();
    let client_id = format!("dyn-{}", new_id(app.entropy.as_ref()));
    let secret =
        checked.auth_method.starts_with("client_secret").then(|| ClientSecret::new(new_secret(app.entropy.as_ref())));
    let registration_token = ClientSecret::new(new_secret(app.entropy.as_ref()));
    let record = ClientRecord {
        client_id: client_id.clone(),
        name: checked.name,
        secret_digest: secret.as_ref().map(ClientSecret::digest),
        redirect_uris: checked.redirect_uris.join(" "),
        grant_types: checked.grant_types.iter().copied().map(GrantType::as_str).collect::<Vec<_>>().join(" "),
        scope: checked.scope.to_string(),
        jwks_uri: None,
        jwks: checked.jwks,
        auth_method: Some(checked.auth_method.to_owned()),
        registration_digest: Some(registration_token.digest()),
        registered_at: Some(now),
        last_used_at: Some(now),
    };
    if !app.store.insert_registered_client(&record, app.config.max_registered_clients).await? {
        return Err(OAuthError::busy(Busy::AtCapacity { retry_after: 3600 }));
    }
    tracing::info!(client_id = %client_id, "client registered");
    let mut answer = describe(&app, &record);
    answer["client_id_issued_at"] = json!(now);
    answer["registration_access_token"] = json!(registration_token.secret());
    if let Some(secret) = &secret {
        answer["client_secret"] = json!(secret.secret());
        answer["client_secret_expires_at"] = json!(0);
    }
    Ok(no_store(HttpResponse::Created()).json(answer))
}

/// RFC 7592 2.1: what is registered, for the holder of the registration access token.
#[get("/register/{client_id}")]
pub async fn read_registration(
    req: HttpRequest,
    app: web::Data<AppState>,
    client_id: web::Path<String>,
) -> Result<HttpResponse, OAuthError> {
    let record = registration_of(&app, &req, &client_id).await?;
    Ok(no_store(HttpResponse::Ok()).json(describe(&app, &record)))
}

/// RFC 7592 2.3: the client is forgotten and every grant it holds is revoked.
#[delete("/register/{client_id}")]
pub async fn delete_registration(
    req: HttpRequest,
    app: web::Data<AppState>,
    client_id: web::Path<String>,
) -> Result<HttpResponse, OAuthError> {
    let record = registration_of(&app, &req, &client_id).await?;
    // The client first, so no token is issued to it between the two steps.
    app.store.delete_registered_client(&record.client_id).await?;
    for grant in app.store.live_grants_of_client(&record.client_id).await? {
        app.revoke_grant(&grant).await?;
    }
    tracing::info!(client_id = %record.client_id, "client registration deleted");
    Ok(no_store(HttpResponse::build(StatusCode::NO_CONTENT)).finish())
}

/// The registration `client_id` names, if the request's Bearer token is its
/// registration access token; 401 `invalid_token` for anything else, an
/// unknown client included (RFC 7592 2.1).
async fn registration_of(app: &AppState, req: &HttpRequest, client_id: &str) -> Result<ClientRecord, OAuthError> {
    let invalid = || OAuthError::new(ErrorCode::InvalidToken, "the registration access token is not valid");
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| ClientSecret::new(token.trim()))
        .ok_or_else(invalid)?;
    let record = app.store.client(client_id).await?.ok_or_else(invalid)?;
    match &record.registration_digest {
        Some(d) if token.matches_digest(d) => Ok(record),
        _ => Err(invalid()),
    }
}

/// The client's metadata as RFC 7591 3.2.1 returns it (no secrets).
fn describe(app: &AppState, record: &ClientRecord) -> Value {
    let client = Client::from(record.clone());
    let mut answer = json!({
        "client_id": client.id,
        "client_name": client.name,
        "redirect_uris": client.redirect_uris,
        "grant_types": client.grant_types,
        "response_types": if client.allows_grant(GrantType::AuthorizationCode) { vec!["code"] } else { vec![] },
        "token_endpoint_auth_method": record.auth_method,
        "scope": client.scope.to_string(),
        "registration_client_uri": app.config.endpoint(&format!("{REGISTRATION_PATH}/{}", client.id)),
    });
    if let Some(jwks) = record.jwks.as_deref().and_then(|j| serde_json::from_str::<Value>(j).ok()) {
        answer["jwks"] = jwks;
    }
    answer
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::test_support::unit::state;

    fn metadata(value: Value) -> Metadata {
        serde_json::from_value(value).unwrap()
    }

    fn code(e: OAuthError) -> ErrorCode {
        e.code
    }

    #[actix_web::test]
    async fn a_native_app_registers_with_the_defaults() {
        let app = state(ManualClock::new(1_000)).await;
        let checked = check(&app.config, metadata(json!({"redirect_uris": ["http://127.0.0.1:5555/cb"]}))).unwrap();
        assert_eq!(checked.auth_method, "client_secret_basic");
        assert_eq!(checked.grant_types, vec![GrantType::AuthorizationCode]);
        assert_eq!(checked.scope.to_string(), "player:read", "everything the party offers");
        assert_eq!(checked.name, "Unnamed application");
    }

    #[actix_web::test]
    async fn redirect_uris_must_be_https_or_loopback_http_without_fragment() {
        let app = state(ManualClock::new(1_000)).await;
        for ok in ["https://app.example/cb", "http://localhost:1/cb", "http://[::1]:2/cb", "http://127.0.0.1/cb"] {
            assert!(check(&app.config, metadata(json!({"redirect_uris": [ok]}))).is_ok(), "{ok}");
        }
        for bad in [
            "http://app.example/cb",
            "https://app.example/cb#frag",
            "https://user:pw@app.example/cb",
            "/cb",
            "javascript:alert(1)",
            "com.example.app:/cb",
            "https://app.example/cb http://evil.example/cb",
            "https://app.example/a\tb",
        ] {
            let err = check(&app.config, metadata(json!({"redirect_uris": [bad]}))).unwrap_err();
            assert_eq!(code(err), ErrorCode::InvalidRedirectUri, "{bad}");
        }
        let none = check(&app.config, metadata(json!({}))).unwrap_err();
        assert_eq!(code(none), ErrorCode::InvalidRedirectUri, "the code flow needs a redirect URI");
    }

    #[actix_web::test]
    async fn the_links_grants_foreign_scopes_and_inconsistent_metadata_are_refused() {
        let app = state(ManualClock::new(1_000)).await;
        let cb = json!(["https://app.example/cb"]);
        for bad in [
            json!({"redirect_uris": cb, "grant_types": ["urn:ietf:params:oauth:grant-type:reciprocal"]}),
            json!({"redirect_uris": cb, "grant_types": ["mutual_authorization_code"]}),
            json!({"redirect_uris": cb, "scope": "assistant:notify"}),
            json!({"redirect_uris": cb, "scope": "bad\"scope"}),
            json!({"redirect_uris": cb, "token_endpoint_auth_method": "client_secret_jwt"}),
            json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}),
            json!({"redirect_uris": cb, "response_types": ["token"]}),
            json!({"grant_types": ["client_credentials"], "response_types": ["code"]}),
            json!({"redirect_uris": cb, "token_endpoint_auth_method": "private_key_jwt"}),
            json!({"redirect_uris": cb, "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://x/j"}),
            json!({"redirect_uris": cb, "jwks": {"keys": []}}),
            json!({"redirect_uris": cb, "client_name": "x".repeat(101)}),
            json!({"redirect_uris": cb, "client_name": "a\u{0}b"}),
            json!({"redirect_uris": cb, "client_name": "Tempo\u{202E}cisuM"}),
        ] {
            let err = check(&app.config, metadata(bad.clone())).unwrap_err();
            assert_eq!(code(err), ErrorCode::InvalidClientMetadata, "{bad}");
        }
    }

    #[actix_web::test]
    async fn a_client_name_holds_only_characters_that_show() {
        let app = state(ManualClock::new(1_000)).await;
        let named = |name: &str| {
            check(&app.config, metadata(json!({"redirect_uris": ["https://a.example/cb"], "client_name": name})))
        };
        for hidden in [
            '\u{061C}',
            '\u{00AD}',
            '\u{E0001}',
            '\u{E0041}',
            '\u{180E}',
            '\u{FFF9}',
            '\u{FFFB}',
            '\u{2028}',
            '\u{2029}',
            '\u{200E}',
            '\u{202E}',
            '\u{2066}',
            '\u{FEFF}',
            '\u{0085}',
            '\u{3164}',
            '\u{115F}',
            '\u{FFA0}',
            '\u{E000}',
        ] {
            let err = named(&format!("Tempo{hidden}Music")).unwrap_err();
            assert_eq!(code(err), ErrorCode::InvalidClientMetadata, "U+{:04X}", hidden as u32);
        }
        for shown in ["Café Müller", "音楽プレーヤー", "Tempo — Music 🎵", "موسيقى", "Zoë & Co."] {
            assert_eq!(named(shown).unwrap().name, shown);
        }
    }

    #[actix_web::test]
    async fn private_key_jwt_takes_public_keys_inline() {
        let app = state(ManualClock::new(1_000)).await;
        let key = json!({"kty": "EC", "crv": "P-256", "kid": "k1",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
        let register = |jwks: Value| {
            check(
                &app.config,
                metadata(
                    json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks}),
                ),
            )
        };
        let checked = register(json!({"keys": [key]})).unwrap();
        assert!(checked.jwks.unwrap().contains("\"k1\""));
        let mut private = key.clone();
        private["d"] = json!("jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI");
        assert_eq!(code(register(json!({"keys": [private]})).unwrap_err()), ErrorCode::InvalidClientMetadata);
        let mut named_d = key.clone();
        named_d["kid"] = json!("d");
        assert!(register(json!({"keys": [named_d]})).is_ok(), "a kid of \"d\" is no private key");
        let secret = json!({"kty": "oct", "k": "c2VjcmV0", "kid": "s"});
        assert_eq!(code(register(json!({"keys": [secret]})).unwrap_err()), ErrorCode::InvalidClientMetadata);
    }
}
