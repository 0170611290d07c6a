//! JWT access tokens per RFC 9068.

use serde::{Deserialize, Serialize};

/// The RFC 9068 2.2 claims, plus `gid`: the grant the token belongs to, so
/// revoking a grant revokes its tokens with one cheap lookup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    /// The user's id, or the client's id for `client_credentials` (RFC 9068 2.2).
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    pub scope: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub gid: String,
    /// The Distributed OAuth `host` the token is bound to, when one was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// The RFC 9068 `typ` header value.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

impl AccessClaims {
    /// The user the token acts for; `client_credentials` tokens act for none
    /// (their `sub` is the client).
    pub fn user_id(&self) -> Option<&str> {
        (self.sub != self.client_id).then_some(self.sub.as_str())
    }

    pub fn has_scope(&self, wanted: &str) -> bool {
        self.scope.split(' ').any(|s| s == wanted)
    }

    /// RFC 9068 4: issuer, audience (one that `is_ours`) and expiry (the
    /// signature is checked by [`super::KeyRing`]).
    pub fn check(&self, issuer: &str, is_ours: impl Fn(&str) -> bool, now: i64) -> Result<(), &'static str> {
        if self.iss != issuer {
            return Err("the token was issued by another authorization server");
        }
        if !is_ours(&self.aud) {
            return Err("the token is meant for another resource");
        }
        if self.exp <= now {
            return Err("the token has expired");
        }
        Ok(())
    }

    /// Seconds this token still has to live.
    pub fn remaining(&self, now: i64) -> i64 {
        self.exp - now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> AccessClaims {
        AccessClaims {
            iss: "http://as".into(),
            sub: "u".into(),
            aud: "http://rs".into(),
            client_id: "c".into(),
            scope: "player:read player:control".into(),
            exp: 100,
            iat: 40,
            jti: "j".into(),
            gid: "g".into(),
            host: None,
        }
    }

    #[test]
    fn checks_issuer_audience_and_expiry() {
        let c = claims();
        let rs = |aud: &str| aud == "http://rs";
        assert!(c.check("http://as", rs, 99).is_ok());
        assert!(c.check("http://as", rs, 100).is_err());
        assert!(c.check("http://other", rs, 50).is_err());
        assert!(c.check("http://as", |aud| aud == "http://rs/", 50).is_err());
    }

    #[test]
    fn scope_matching_is_by_whole_token() {
        let c = claims();
        assert!(c.has_scope("player:read"));
        assert!(!c.has_scope("player"));
        assert!(!c.has_scope("player:read player:control"));
    }
}
