//! Checking an audit log (docs/audit.md, "Verifying"): every entry names
//! the issuer the caller trusts; every entry's signature checks against that
//! issuer's JWKS, or against a key an entry signed by a newer key vouches for
//! (a rotation); and every chain, entry by entry. The first entry that fails
//! is named with its line and why.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::{SetClaims, SET_TYP};
use crate::config::VerifyArgs;
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
    /// The `iss` it claims, read before its key is known so a foreign entry is named as such.
    iss: Option<String>,
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
        let iss = claimed_issuer(&jwt);
        out.push(Entry { line, jwt, kid, iss, claims: None });
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
        // Checked before the key: a foreign issuer's entry is named as foreign, whatever signed it.
        let Some(claimed) = entry.iss.as_deref() else {
            return Err(fail(None, "names no issuer (`iss`)".into()));
        };
        let expected = issuer.get_or_insert_with(|| claimed.to_owned());
        if claimed != expected {
            return Err(fail(None, format!("names issuer {claimed:?}, not {expected}")));
        }
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
/// `Link: <…>; rel="next"` pages on its origin) or a file, takes the keys of
/// the issuer the caller trusts (`--jwks`, else that issuer's RFC 8414
/// metadata) and verifies that every entry is that issuer's.
///
/// The issuer is `--issuer`, else the origin of a URL source (a party's
/// public URL is its origin), else `public_url`: a file handed to
/// `party-b audit verify` is party B's log unless said otherwise.
pub async fn run(args: &VerifyArgs, public_url: &str) -> Result<String, String> {
    let http = crate::outbound::http_client(Duration::from_secs(30));
    let source = match is_url(&args.source) {
        true => Some(reqwest::Url::parse(&args.source).map_err(|e| format!("{}: {e}", args.source))?),
        false => None,
    };
    let issuer = match (&args.issuer, &source) {
        (Some(issuer), _) => issuer.trim_end_matches('/').to_owned(),
        (None, Some(url)) => url.origin().ascii_serialization(),
        (None, None) => public_url.trim_end_matches('/').to_owned(),
    };
    let text = match &source {
        Some(url) => fetch_log(&http, url, args.cookie.as_deref(), args.max_pages).await?,
        None => std::fs::read_to_string(&args.source).map_err(|e| format!("cannot read {}: {e}", args.source))?,
    };
    let jwks = match args.jwks.as_deref() {
        Some(j) if is_url(j) => fetch_json(&http, j).await?,
        Some(j) => {
            let file = std::fs::read_to_string(j).map_err(|e| format!("cannot read {j}: {e}"))?;
            serde_json::from_str(&file).map_err(|e| format!("{j} is not a JWKS: {e}"))?
        }
        None => issuer_jwks(&http, &issuer).await?,
    };
    let v = verify_log(&text, &jwks, Some(&issuer)).map_err(|f| f.to_string())?;
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

/// The `iss` a SET claims, read without verifying it.
fn claimed_issuer(jwt: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    Some(claims["iss"].as_str()?.to_owned())
}

/// The JWKS of `issuer`, through its metadata only: the metadata must name
/// the same issuer (RFC 8414 3.3) and a `jwks_uri` on the issuer's origin.
async fn issuer_jwks(http: &reqwest::Client, issuer: &str) -> Result<Value, String> {
    let origin = reqwest::Url::parse(issuer).map_err(|e| format!("the issuer {issuer}: {e}"))?.origin();
    let metadata = fetch_json(http, &format!("{issuer}/.well-known/oauth-authorization-server")).await?;
    let named = metadata["issuer"].as_str().unwrap_or_default();
    if named.trim_end_matches('/') != issuer {
        return Err(format!("{issuer}'s metadata names issuer {named:?}, not {issuer} (RFC 8414 3.3): refused"));
    }
    let uri = metadata["jwks_uri"].as_str().ok_or(format!("{issuer}'s metadata names no jwks_uri"))?;
    match reqwest::Url::parse(uri) {
        Ok(url) if url.origin() == origin => fetch_json(http, uri).await,
        _ => Err(format!("{issuer}'s metadata names its keys at {uri}, not on its own origin: refused")),
    }
}

/// The log's pages from `first` on: `rel="next"` is followed only on
/// `first`'s origin (the only one `cookie` goes to), never to a page already
/// read, and for at most `max_pages` pages.
async fn fetch_log(
    http: &reqwest::Client,
    first: &reqwest::Url,
    cookie: Option<&str>,
    max_pages: u32,
) -> Result<String, String> {
    let mut text = String::new();
    let mut read = HashSet::new();
    let mut next = Some(first.clone());
    while let Some(url) = next.take() {
        if read.len() >= max_pages as usize {
            return Err(format!(
                "{first} has more pages than the limit (--max-pages {max_pages}): stopped before {url}"
            ));
        }
        if !read.insert(url.clone()) {
            return Err(format!("{url} is named as the next page but was read before: stopped"));
        }
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
        if let Some(other) = next.as_ref().filter(|n| n.origin() != first.origin()) {
            return Err(format!("{url} names its next page on another origin ({other}): not followed"));
        }
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
