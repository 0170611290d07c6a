//! Checking an audit log (docs/audit.md, "Verifying"): every entry's
//! signature against the party's JWKS, or against a key an entry signed by a
//! newer key vouches for (a rotation); and every chain, entry by entry. The
//! first entry that fails is named with its line and why.

use std::collections::HashMap;
use std::time::Duration;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::{SetClaims, SET_TYP};
use crate::tokens::secrets::digest;

/// What a log that verified holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub issuer: String,
    pub entries: usize,
    /// Chains checked: one per user, and the party's own.
    pub chains: usize,
    /// The keys that signed entries, oldest first.
    pub keys: Vec<String>,
    /// The digest of the last entry: keep it to notice a log cut short later.
    pub head: Option<String>,
}

/// The first entry that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// 1-based line of the input.
    pub line: usize,
    /// The entry's `seq`, when it could be read.
    pub seq: Option<i64>,
    pub reason: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "entry seq {seq} (line {}) fails: {}", self.line, self.reason),
            None => write!(f, "line {} fails: {}", self.line, self.reason),
        }
    }
}

/// One entry read from a line.
struct Entry {
    line: usize,
    jwt: String,
    kid: String,
    claims: Option<SetClaims>,
}

/// Reads the log's lines: each a SET, bare or as a JSON string (JSON Lines).
fn entries(text: &str) -> Result<Vec<Entry>, Failure> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let jwt = match raw.starts_with('"') {
            true => serde_json::from_str::<String>(raw).map_err(|_| Failure {
                line,
                seq: None,
                reason: "not a JSON string".into(),
            })?,
            false => raw.to_owned(),
        };
        let header = jsonwebtoken::decode_header(&jwt).map_err(|_| Failure {
            line,
            seq: None,
            reason: "not a signed token (JWS compact form)".into(),
        })?;
        let typ_ok = header.typ.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(SET_TYP));
        if !typ_ok || header.alg != Algorithm::ES256 {
            return Err(Failure { line, seq: None, reason: format!("not an ES256 `{SET_TYP}` (RFC 8417 2.3)") });
        }
        let kid = header.kid.ok_or_else(|| Failure { line, seq: None, reason: "names no key (`kid`)".into() })?;
        out.push(Entry { line, jwt, kid, claims: None });
    }
    Ok(out)
}

fn validation() -> Validation {
    let mut v = Validation::new(Algorithm::ES256);
    // An audit entry does not expire; `iat` is checked for order, not age.
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    v
}

fn key_of(jwk: &Value) -> Option<DecodingKey> {
    let jwk: Jwk = serde_json::from_value(jwk.clone()).ok()?;
    DecodingKey::from_jwk(&jwk).ok()
}

/// Verifies the log in `text` against `jwks` (the party's JWKS, RFC 7517),
/// for `issuer` when given (else the issuer the first entry names).
pub fn verify_log(text: &str, jwks: &Value, issuer: Option<&str>) -> Result<Verified, Failure> {
    let mut entries = entries(text)?;
    let mut trusted: HashMap<String, DecodingKey> = HashMap::new();
    for jwk in jwks["keys"].as_array().into_iter().flatten() {
        if let (Some(kid), Some(key)) = (jwk["kid"].as_str(), key_of(jwk)) {
            trusted.insert(kid.to_owned(), key);
        }
    }
    let validation = validation();
    // Newest first: a key change signed by a trusted key vouches for the key before it.
    for entry in entries.iter_mut().rev() {
        let Some(key) = trusted.get(&entry.kid) else { continue };
        let Ok(data) = jsonwebtoken::decode::<SetClaims>(&entry.jwt, key, &validation) else { continue };
        if let Some(("key-changed", payload)) = data.claims.event() {
            let (Some(kid), Some(key)) = (payload["previous_kid"].as_str(), key_of(&payload["previous_key"])) else {
                continue;
            };
            if payload["previous_key"]["kid"].as_str().is_none_or(|k| k == kid) {
                trusted.entry(kid.to_owned()).or_insert(key);
            }
        }
        entry.claims = Some(data.claims);
    }
    let mut issuer = issuer.map(str::to_owned);
    let mut last_seq = 0;
    let mut heads: HashMap<String, String> = HashMap::new();
    let mut keys: Vec<String> = Vec::new();
    for entry in &entries {
        let fail = |seq, reason: String| Failure { line: entry.line, seq, reason };
        let Some(key) = trusted.get(&entry.kid) else {
            return Err(fail(
                None,
                format!("signed by key {}, which neither the JWKS nor a later key change vouches for", entry.kid),
            ));
        };
        let claims = match &entry.claims {
            Some(c) => c.clone(),
            None => match jsonwebtoken::decode::<SetClaims>(&entry.jwt, key, &validation) {
                Ok(data) => data.claims,
                Err(e) if *e.kind() == jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    return Err(fail(None, "its signature does not verify: the entry was changed after signing".into()))
                }
                Err(_) => return Err(fail(None, "its claims are not those of an audit entry".into())),
            },
        };
        let seq = Some(claims.seq);
        let expected = issuer.get_or_insert_with(|| claims.iss.clone());
        if claims.iss != *expected {
            return Err(fail(seq, format!("names issuer {}, not {expected}", claims.iss)));
        }
        if claims.seq <= last_seq {
            return Err(fail(seq, format!("comes after seq {last_seq}: entries were reordered")));
        }
        last_seq = claims.seq;
        if claims.event().is_none() {
            return Err(fail(seq, "does not carry exactly one event of this log's types".into()));
        }
        let chain = claims.sub.clone().unwrap_or_default();
        match (heads.get(&chain), &claims.prev) {
            (None, None) => {}
            (Some(head), Some(prev)) if head == prev => {}
            (None, Some(_)) => {
                return Err(fail(
                    seq,
                    "names an earlier entry the log does not hold: entries before it were removed".into(),
                ))
            }
            (Some(_), None) => {
                return Err(fail(seq, "starts its chain again: entries were removed or replaced".into()))
            }
            (Some(_), Some(_)) => {
                return Err(fail(
                    seq,
                    "does not name the entry before it in its chain: an entry between them was removed or moved".into(),
                ))
            }
        }
        heads.insert(chain, digest(&entry.jwt));
        if !keys.contains(&entry.kid) {
            keys.push(entry.kid.clone());
        }
    }
    Ok(Verified {
        issuer: issuer.unwrap_or_default(),
        entries: entries.len(),
        chains: heads.len(),
        keys,
        head: entries.last().map(|e| digest(&e.jwt)),
    })
}

/// The most a log or a JWKS fetched for verification may weigh.
const MAX_FETCH: usize = 256 * 1024 * 1024;

/// `party audit verify SOURCE`: reads the log from a URL (following
/// `Link: <…>; rel="next"` pages) or a file, fetches the JWKS (from `jwks`,
/// else through the issuer's RFC 8414 metadata) and verifies.
pub async fn run(source: &str, jwks: Option<&str>, cookie: Option<&str>) -> Result<String, String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let text = match is_url(source) {
        true => fetch_log(&http, source, cookie).await?,
        false => std::fs::read_to_string(source).map_err(|e| format!("cannot read {source}: {e}"))?,
    };
    let jwks = match jwks {
        Some(j) if is_url(j) => fetch_json(&http, j).await?,
        Some(j) => {
            let file = std::fs::read_to_string(j).map_err(|e| format!("cannot read {j}: {e}"))?;
            serde_json::from_str(&file).map_err(|e| format!("{j} is not a JWKS: {e}"))?
        }
        None => {
            let issuer = first_issuer(&text).ok_or("the log holds no entry naming its issuer; pass --jwks")?;
            let metadata = fetch_json(&http, &format!("{issuer}/.well-known/oauth-authorization-server")).await?;
            let uri = metadata["jwks_uri"].as_str().ok_or(format!("{issuer}'s metadata names no jwks_uri"))?;
            fetch_json(&http, uri).await?
        }
    };
    let v = verify_log(&text, &jwks, None).map_err(|f| f.to_string())?;
    Ok(format!(
        "verified: {} entries in {} chains from {}, signed by {} key(s): {}\nhead digest: {}",
        v.entries,
        v.chains,
        v.issuer,
        v.keys.len(),
        v.keys.join(", "),
        v.head.as_deref().unwrap_or("(empty log)")
    ))
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// The `iss` the first entry claims (read without verifying: only to find the JWKS).
fn first_issuer(text: &str) -> Option<String> {
    let first = entries(text).ok()?.into_iter().next()?;
    let payload = first.jwt.split('.').nth(1)?;
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    Some(claims["iss"].as_str()?.trim_end_matches('/').to_owned())
}

async fn fetch_log(http: &reqwest::Client, url: &str, cookie: Option<&str>) -> Result<String, String> {
    let mut text = String::new();
    let mut next = Some(reqwest::Url::parse(url).map_err(|e| format!("{url}: {e}"))?);
    while let Some(url) = next.take() {
        let mut request = http.get(url.clone());
        if let Some(cookie) = cookie {
            request = request.header(reqwest::header::COOKIE, cookie);
        }
        let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
        match response.status().as_u16() {
            200 => {}
            401 | 303 => {
                return Err(format!("{url} needs a signed-in session: pass --cookie 'session=…' (see /audit)"))
            }
            status => return Err(format!("{url} answered {status}")),
        }
        next = next_page(&url, response.headers());
        text.push_str(&body(response).await?);
        text.push('\n');
        if text.len() > MAX_FETCH {
            return Err(format!("the log at {url} is larger than {MAX_FETCH} bytes"));
        }
    }
    Ok(text)
}

/// The `rel="next"` target of a `Link` header (RFC 8288), resolved against `url`.
fn next_page(url: &reqwest::Url, headers: &reqwest::header::HeaderMap) -> Option<reqwest::Url> {
    let link = headers.get(reqwest::header::LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params
            .contains("rel=\"next\"")
            .then(|| url.join(target.trim().trim_start_matches('<').trim_end_matches('>')).ok())?
    })
}

async fn fetch_json(http: &reqwest::Client, url: &str) -> Result<Value, String> {
    let response = http.get(url).send().await.map_err(|e| format!("{url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status().as_u16()));
    }
    serde_json::from_str(&body(response).await?).map_err(|e| format!("{url} is not JSON: {e}"))
}

/// The body, refused past [`MAX_FETCH`] while it arrives.
async fn body(mut response: reqwest::Response) -> Result<String, String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > MAX_FETCH {
            return Err(format!("an answer larger than {MAX_FETCH} bytes"));
        }
    }
    String::from_utf8(bytes).map_err(|_| "an answer that is not UTF-8".to_owned())
}
