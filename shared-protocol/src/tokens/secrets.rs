//! Opaque, high-entropy secrets: authorization codes, refresh tokens, CSRF
//! tokens and client secrets. Only SHA-256 digests are stored, and digests
//! are compared in constant time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use subtle::ConstantTimeEq;

use crate::clock::Entropy;

/// Declares a secret: a string that only [`secret`](AccessToken::secret)
/// reads and whose `Debug` prints `[redacted]`, so no derive, log or panic
/// message can show it (oauth2-rs's `new_secret_type!` does the same). It
/// crosses the wire as a plain string and is stored as TEXT where it must be
/// kept in clear (tokens held from the peer); everything issued here is
/// stored by [`digest`] only.
macro_rules! secret_type {
    ($($(#[$meta:meta])* $name:ident;)+) => {$(
        $(#[$meta])*
        #[derive(Clone, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(secret: impl Into<String>) -> Self {
                Self(secret.into())
            }
            /// The secret itself: for the wire or a digest, never for a log.
            pub fn secret(&self) -> &str {
                &self.0
            }
            /// What is stored of it: SHA-256, base64url.
            pub fn digest(&self) -> String {
                digest(&self.0)
            }
            /// Does it hash to `stored_digest`? ([`verify_digest`], constant time.)
            pub fn matches_digest(&self, stored_digest: &str) -> bool {
                verify_digest(&self.0, stored_digest)
            }
            /// Constant-time equality, as for every secret.
            pub fn is(&self, other: &Self) -> bool {
                constant_time_eq(&self.0, &other.0)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }

        impl From<String> for $name {
            fn from(secret: String) -> Self {
                Self(secret)
            }
        }

        impl From<&str> for $name {
            fn from(secret: &str) -> Self {
                Self(secret.to_owned())
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::convert::Infallible;
            fn from_str(secret: &str) -> Result<Self, Self::Err> {
                Ok(Self(secret.to_owned()))
            }
        }

        impl sqlx::Type<sqlx::Any> for $name {
            fn type_info() -> sqlx::any::AnyTypeInfo {
                <String as sqlx::Type<sqlx::Any>>::type_info()
            }
            fn compatible(ty: &sqlx::any::AnyTypeInfo) -> bool {
                <String as sqlx::Type<sqlx::Any>>::compatible(ty)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Any> for $name {
            fn decode(value: sqlx::any::AnyValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                Ok(Self(<String as sqlx::Decode<'r, sqlx::Any>>::decode(value)?))
            }
        }

        impl<'q> sqlx::Encode<'q, sqlx::Any> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut <sqlx::Any as sqlx::Database>::ArgumentBuffer<'q>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <String as sqlx::Encode<'q, sqlx::Any>>::encode_by_ref(&self.0, buf)
            }
        }
    )+};
}

secret_type! {
    /// An access token (RFC 6749 1.4): a signed RFC 9068 JWT, issued here or by the peer.
    AccessToken;
    /// A refresh token (RFC 6749 1.5), rotated on every use (RFC 9700 4.14.2).
    RefreshToken;
    /// An authorization code (RFC 6749 4.1.2), single use.
    AuthorizationCode;
    /// A client secret (RFC 6749 2.3.1): this party's at the peer, or the peer's here.
    ClientSecret;
    /// A PKCE code verifier (RFC 7636 4.1), kept until the code is redeemed.
    PkceVerifier;
    /// The bearer token a scraper sends to read `/metrics` (`--metrics-token`).
    MetricsToken;
}

/// 256 bits of entropy, base64url: 43 characters (RFC 6749 10.10 asks for at least 128).
pub fn new_secret(entropy: &dyn Entropy) -> String {
    let mut bytes = [0u8; 32];
    entropy.fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A random identifier (UUID v4 layout) from the injected entropy.
pub fn new_id(entropy: &dyn Entropy) -> String {
    let mut bytes = [0u8; 16];
    entropy.fill(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
}

/// SHA-256, base64url: how codes, refresh tokens and client secrets are stored.
/// A fast hash suffices because every such secret carries 256 bits of entropy.
pub fn digest(secret: &str) -> String {
    // aws-lc-rs: the CPU's SHA extensions where it has them (the `sha2` crate's portable code costs ~4x).
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes()))
}

/// Does `presented` hash to `stored_digest`? Constant time in the digest bytes.
pub fn verify_digest(presented: &str, stored_digest: &str) -> bool {
    digest(presented).as_bytes().ct_eq(stored_digest.as_bytes()).into()
}

/// Constant-time string equality (CSRF tokens).
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::CountingEntropy;

    #[test]
    fn secrets_are_43_url_safe_characters_and_differ() {
        let e = CountingEntropy::default();
        let (a, b) = (new_secret(&e), new_secret(&e));
        assert_eq!(a.len(), 43);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(a, b);
    }

    #[test]
    fn a_secret_never_shows_in_debug_output() {
        let token = AccessToken::new("eyJ-very-secret");
        let held = Some(RefreshToken::new("r-very-secret"));
        let shown = format!("{token:?} {held:?} {:?}", ClientSecret::new("s3cr3t"));
        assert_eq!(shown, "AccessToken([redacted]) Some(RefreshToken([redacted])) ClientSecret([redacted])");
        assert_eq!(serde_json::to_string(&token).unwrap(), r#""eyJ-very-secret""#, "the wire gets the value");
        assert!(token.is(&AccessToken::new("eyJ-very-secret")) && !token.is(&AccessToken::new("eyJ")));
    }

    #[test]
    fn a_digest_verifies_only_its_secret() {
        let d = digest("voice-assistant-dev-secret");
        assert!(verify_digest("voice-assistant-dev-secret", &d));
        assert!(!verify_digest("voice-assistant-dev-secreT", &d));
        assert!(!verify_digest("", &d));
    }
}
