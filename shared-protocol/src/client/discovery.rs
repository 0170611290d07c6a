//! Distributed OAuth (draft-hardt-distributed-oauth) with RFC 9728
//! protected resource metadata: a client that knows only an API's URL learns
//! which issuer to ask, and gets a `client_credentials` token bound to that
//! API, which no other API accepts.
//!
//! The threats of the draft's section 5 shape the checks: the client takes
//! `host` from the URL it called, never from the resource server (5.2); it
//! sends its credentials only to issuers it already trusts (5.3); and the
//! token is bound to the API (`resource`, RFC 8707, and `host`), so a
//! resource server cannot reuse it elsewhere (5.1).

use serde::Deserialize;
use url::Url;

use crate::outbound::read_json;
use crate::web::form::urlencode;

/// Why discovery did not end with a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoveryError {
    /// The API or a server it named could not be reached or read.
    Unreachable(String),
    /// The API did not answer with a Bearer challenge naming an issuer (steps A–B).
    NoChallenge(String),
    /// None of the issuers the API named is one this client trusts (section 5.3).
    UntrustedIssuer(Vec<String>),
    /// A metadata document did not describe what it claims to (RFC 8414 3.3, RFC 9728 3.3).
    Mismatch(String),
    /// The issuer refused the token request (RFC 6749 5.2).
    Refused(String),
}

impl std::fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable(why) => write!(f, "unreachable: {why}"),
            Self::NoChallenge(why) => write!(f, "no Bearer challenge naming an issuer: {why}"),
            Self::UntrustedIssuer(named) => write!(f, "no trusted issuer among {}", named.join(", ")),
            Self::Mismatch(why) => write!(f, "metadata mismatch: {why}"),
            Self::Refused(why) => write!(f, "the issuer refused: {why}"),
        }
    }
}

/// This client's registration at one issuer it trusts.
pub struct TrustedIssuer<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a str,
}

/// What discovery found, and the token it got.
#[derive(Debug, Clone)]
pub struct DiscoveredAccess {
    pub issuer: String,
    /// The API's resource identifier (RFC 8707, RFC 9728 3.1): the URL called.
    pub resource: String,
    /// The API's host as this client called it (the draft's `host`).
    pub host: String,
    pub access_token: String,
    pub scope: String,
}

/// Steps A–D of the draft's Figure 1 for `api_url`, asking for `scope`. A
/// challenge may name several issuers; the trusted ones are tried in order.
pub async fn access_for_api(
    http: &reqwest::Client,
    api_url: &str,
    scope: &str,
    trusted: &[TrustedIssuer<'_>],
) -> Result<DiscoveredAccess, DiscoveryError> {
    let url = Url::parse(api_url).map_err(|e| DiscoveryError::Unreachable(format!("{api_url}: {e}")))?;
    // Section 5.2: the host is the one this client called, not one the server names.
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        _ => return Err(DiscoveryError::Unreachable(format!("{api_url} has no host"))),
    };
    // RFC 9728 3.1: a protected resource is named by its URL, without query or fragment.
    let mut resource_url = url.clone();
    resource_url.set_query(None);
    resource_url.set_fragment(None);
    let resource = resource_url.as_str().trim_end_matches('/').to_owned();

    // A–B: call without credentials; the challenge names the issuer(s).
    let res = http.get(url.as_str()).send().await.map_err(unreachable)?;
    if res.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Err(DiscoveryError::NoChallenge(format!("the API answered {}", res.status())));
    }
    let challenge = res
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| DiscoveryError::NoChallenge("no WWW-Authenticate header".into()))?
        .to_owned();
    let named: Vec<String> = challenge_param(&challenge, "iss")
        .ok_or_else(|| DiscoveryError::NoChallenge(challenge.clone()))?
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    // Section 5.3: credentials go only to an issuer this client already trusts;
    // of several, in the order the API named them.
    let candidates: Vec<&TrustedIssuer> = named.iter().filter_map(|n| trusted.iter().find(|t| t.issuer == n)).collect();
    if candidates.is_empty() {
        return Err(DiscoveryError::UntrustedIssuer(named));
    }
    let resource_metadata = match challenge_param(&challenge, "resource_metadata") {
        Some(url) => Some(resource_metadata(http, url, &resource).await?),
        None => None,
    };
    // Only issuers the resource's metadata lists (RFC 9728 2), if it has metadata.
    let listed: Vec<&TrustedIssuer> = candidates
        .into_iter()
        .filter(|t| resource_metadata.as_ref().is_none_or(|servers| servers.iter().any(|a| a == t.issuer)))
        .collect();
    if listed.is_empty() {
        return Err(DiscoveryError::Mismatch("the resource metadata lists none of those issuers".into()));
    }
    let api = &Api { resource: &resource, host: &host, scope };
    first_reachable(&listed, |trust| token_from(http, trust, api)).await
}

/// What the token is for.
#[derive(Clone, Copy)]
struct Api<'a> {
    resource: &'a str,
    host: &'a str,
    scope: &'a str,
}

/// Draft section 3: when one of the issuers cannot be reached, try the next;
/// any other failure (a mismatch, a refusal) ends discovery, since it says
/// something is wrong rather than down.
async fn first_reachable<'a, T, F, Fut>(
    candidates: &[&'a T],
    mut attempt: F,
) -> Result<DiscoveredAccess, DiscoveryError>
where
    F: FnMut(&'a T) -> Fut,
    Fut: std::future::Future<Output = Result<DiscoveredAccess, DiscoveryError>>,
{
    let mut down = Vec::new();
    for candidate in candidates {
        match attempt(candidate).await {
            Err(DiscoveryError::Unreachable(why)) => down.push(why),
            outcome => return outcome,
        }
    }
    Err(DiscoveryError::Unreachable(down.join("; ")))
}

/// RFC 9728 3.3: the resource's metadata must name exactly the URL called;
/// returns the authorization servers it lists.
async fn resource_metadata(http: &reqwest::Client, url: &str, resource: &str) -> Result<Vec<String>, DiscoveryError> {
    #[derive(Deserialize)]
    struct ResourceMetadata {
        resource: String,
        #[serde(default)]
        authorization_servers: Vec<String>,
    }
    let res = http.get(url).send().await.map_err(unreachable)?;
    let meta: ResourceMetadata = read_json(res)
        .await
        .map_err(|e| DiscoveryError::Mismatch(format!("the resource metadata is unusable: {e}")))?;
    if meta.resource != resource {
        return Err(DiscoveryError::Mismatch(format!("the resource metadata names {}", meta.resource)));
    }
    Ok(meta.authorization_servers)
}

/// A server that answers 5xx or 429 is down for now, not wrong: the next issuer may serve.
fn answering(res: reqwest::Response) -> Result<reqwest::Response, DiscoveryError> {
    let status = res.status();
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(DiscoveryError::Unreachable(format!("it answered {status}")));
    }
    Ok(res)
}

fn unreachable(e: reqwest::Error) -> DiscoveryError {
    DiscoveryError::Unreachable(e.without_url().to_string())
}

/// Steps C–D at one issuer: its RFC 8414 metadata, then `client_credentials`
/// bound to the API by `resource` and `host`.
async fn token_from(
    http: &reqwest::Client,
    trust: &TrustedIssuer<'_>,
    api: &Api<'_>,
) -> Result<DiscoveredAccess, DiscoveryError> {
    let meta = issuer_metadata(http, trust.issuer).await?;
    let res = http
        .post(&meta.token_endpoint)
        .basic_auth(urlencode(trust.client_id), Some(urlencode(trust.client_secret)))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", api.scope),
            ("resource", api.resource),
            ("host", api.host),
        ])
        .send()
        .await
        .map_err(unreachable)?;
    let res = answering(res)?;
    #[derive(Deserialize)]
    struct TokenAnswer {
        access_token: Option<String>,
        #[serde(default)]
        scope: Option<String>,
        #[serde(default)]
        error: Option<String>,
        #[serde(default)]
        error_description: Option<String>,
    }
    let answer: TokenAnswer =
        read_json(res).await.map_err(|e| DiscoveryError::Refused(format!("the token response is unusable: {e}")))?;
    match answer.access_token {
        Some(access_token) => Ok(DiscoveredAccess {
            issuer: trust.issuer.to_owned(),
            resource: api.resource.to_owned(),
            host: api.host.to_owned(),
            access_token,
            scope: answer.scope.unwrap_or_else(|| api.scope.to_owned()),
        }),
        None => Err(DiscoveryError::Refused(format!(
            "{} ({})",
            answer.error.unwrap_or_default(),
            answer.error_description.unwrap_or_default()
        ))),
    }
}

/// An issuer's RFC 8414 metadata, as much as discovery uses.
#[derive(Debug, Deserialize)]
pub struct IssuerMetadata {
    pub issuer: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub registration_endpoint: Option<String>,
}

/// RFC 8414 3: the issuer's metadata; 3.3: its `issuer` must be exactly the one asked.
pub async fn issuer_metadata(http: &reqwest::Client, issuer: &str) -> Result<IssuerMetadata, DiscoveryError> {
    let res = http.get(format!("{issuer}/.well-known/oauth-authorization-server")).send().await.map_err(unreachable)?;
    let meta: IssuerMetadata = read_json(res)
        .await
        .map_err(|e| DiscoveryError::Mismatch(format!("the issuer's metadata is unusable: {e}")))?;
    if meta.issuer != issuer {
        return Err(DiscoveryError::Mismatch(format!("the issuer's metadata names {}", meta.issuer)));
    }
    Ok(meta)
}

/// RFC 7591 3.1: registers a `client_credentials` client named `name` at
/// `issuer`; returns its `(client_id, client_secret)`.
pub async fn register_client(
    http: &reqwest::Client,
    issuer: &str,
    name: &str,
    scope: &str,
) -> Result<(String, String), DiscoveryError> {
    let meta = issuer_metadata(http, issuer).await?;
    let endpoint = meta
        .registration_endpoint
        .ok_or_else(|| DiscoveryError::Refused("the issuer offers no dynamic registration".into()))?;
    let body = serde_json::json!({"client_name": name, "grant_types": ["client_credentials"], "scope": scope});
    let res = http.post(endpoint).json(&body).send().await.map_err(unreachable)?;
    let answer: serde_json::Value = read_json(res)
        .await
        .map_err(|e| DiscoveryError::Refused(format!("the registration answer is unusable: {e}")))?;
    match (answer["client_id"].as_str(), answer["client_secret"].as_str()) {
        (Some(id), Some(secret)) => Ok((id.to_owned(), secret.to_owned())),
        _ => Err(DiscoveryError::Refused(format!("registration refused: {answer}"))),
    }
}

/// The value of `name="…"` in a `WWW-Authenticate: Bearer …` challenge (RFC 6750 3).
fn challenge_param<'a>(challenge: &'a str, name: &str) -> Option<&'a str> {
    let rest = challenge.trim_start().strip_prefix("Bearer")?;
    let key = format!("{name}=\"");
    let mut search = rest;
    loop {
        let at = search.find(&key)?;
        // Only a whole parameter name: `iss` must not match inside `xiss`.
        let before = search[..at].chars().last();
        let value = &search[at + key.len()..];
        if before.is_none_or(|c| c == ' ' || c == ',') {
            return value.find('"').map(|end| &value[..end]);
        }
        search = value;
    }
}

#[cfg(test)]
mod tests {
    use super::{challenge_param, first_reachable, DiscoveredAccess, DiscoveryError};

    fn access(issuer: &str) -> DiscoveredAccess {
        let s = String::new;
        DiscoveredAccess { issuer: issuer.into(), resource: s(), host: s(), access_token: s(), scope: s() }
    }

    #[actix_web::test]
    async fn an_unreachable_issuer_gives_way_to_the_next_and_any_other_failure_stops() {
        let attempt = |issuer: &'static &str| async move {
            match *issuer {
                "down" => Err(DiscoveryError::Unreachable("refused".into())),
                "liar" => Err(DiscoveryError::Mismatch("wrong issuer".into())),
                up => Ok(access(up)),
            }
        };
        let got = first_reachable(&[&"down", &"up"], attempt).await.unwrap();
        assert_eq!(got.issuer, "up");
        let stop = first_reachable(&[&"liar", &"up"], attempt).await.unwrap_err();
        assert_eq!(stop, DiscoveryError::Mismatch("wrong issuer".into()), "a mismatch is not skipped");
        let none = first_reachable(&[&"down", &"down"], attempt).await.unwrap_err();
        assert_eq!(none, DiscoveryError::Unreachable("refused; refused".into()));
    }

    #[test]
    fn reads_parameters_of_a_bearer_challenge() {
        let c = r#"Bearer realm="Tempo Music", iss="http://b.example", resource_metadata="http://b.example/.well-known/oauth-protected-resource""#;
        assert_eq!(challenge_param(c, "iss"), Some("http://b.example"));
        assert_eq!(challenge_param(c, "realm"), Some("Tempo Music"));
        assert_eq!(challenge_param(c, "error"), None);
        assert_eq!(challenge_param(r#"Bearer xiss="a", iss="b""#, "iss"), Some("b"));
        assert_eq!(challenge_param(r#"Basic iss="a""#, "iss"), None, "only Bearer challenges");
    }
}
