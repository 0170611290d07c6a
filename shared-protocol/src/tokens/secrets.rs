//! Opaque, high-entropy secrets: authorization codes, refresh tokens, CSRF
//! tokens and client secrets. Only SHA-256 digests are stored, and digests
//! are compared in constant time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use subtle::ConstantTimeEq;

use crate::clock::Entropy;

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
    fn a_digest_verifies_only_its_secret() {
        let d = digest("voice-assistant-dev-secret");
        assert!(verify_digest("voice-assistant-dev-secret", &d));
        assert!(!verify_digest("voice-assistant-dev-secreT", &d));
        assert!(!verify_digest("", &d));
    }
}
