//! Calls this server makes to other servers (the peer's endpoints, a
//! client's `jwks_uri`): one HTTP client with a timeout that never follows
//! redirects, answers read under a size cap, and failures in words a user
//! can act on.

use std::time::Duration;

/// The client for every outbound call; `timeout` bounds each whole call.
#[allow(clippy::expect_used, reason = "the builder fails only if rustls cannot start, at start-up, before serving")]
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(2))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("reciprocal-oauth/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("HTTP client with rustls")
}

/// What went wrong talking to the peer, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerError {
    /// No answer (down, refused the connection, or too slow).
    Unreachable(String),
    /// The peer answered with an OAuth error (RFC 6749 5.2).
    Refused { error: String, description: String },
    /// The peer answered something this party cannot use.
    Malformed(String),
}

impl std::fmt::Display for PeerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable(why) => write!(f, "no answer ({why})"),
            Self::Refused { error, description } => write!(f, "refused: {error} ({description})"),
            Self::Malformed(why) => write!(f, "an unusable answer ({why})"),
        }
    }
}

impl PeerError {
    /// The kind of failure, as metrics label it: `unreachable`, `refused` or `malformed`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unreachable(_) => "unreachable",
            Self::Refused { .. } => "refused",
            Self::Malformed(_) => "malformed",
        }
    }

    pub fn is_refusal(&self, code: &str) -> bool {
        matches!(self, Self::Refused { error, .. } if error == code)
    }

    pub fn from_reqwest(e: reqwest::Error) -> Self {
        let why = if e.is_timeout() {
            "it did not answer in time"
        } else if e.is_connect() {
            "it could not be reached"
        } else {
            "the connection failed"
        };
        Self::Unreachable(why.to_owned())
    }
}

impl std::error::Error for PeerError {}

impl From<reqwest::Error> for PeerError {
    fn from(e: reqwest::Error) -> Self {
        Self::from_reqwest(e)
    }
}

/// The most an answer from another server may carry; more is refused.
pub const MAX_ANSWER: usize = 256 * 1024;

/// An answer's body, refused past [`MAX_ANSWER`] whether declared or as it streams in.
pub async fn read_body(mut res: reqwest::Response) -> Result<Vec<u8>, PeerError> {
    let too_large = || PeerError::Malformed(format!("its answer is larger than {} KiB", MAX_ANSWER / 1024));
    if res.content_length().is_some_and(|n| n > MAX_ANSWER as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(PeerError::from_reqwest)? {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An answer's JSON body, read under [`MAX_ANSWER`].
pub async fn read_json<T: serde::de::DeserializeOwned>(res: reqwest::Response) -> Result<T, PeerError> {
    let body = read_body(res).await?;
    serde_json::from_slice(&body).map_err(|_| PeerError::Malformed("its answer is not valid JSON".into()))
}
