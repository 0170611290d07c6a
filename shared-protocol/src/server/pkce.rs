//! PKCE (RFC 7636), S256 only: `plain` offers no protection once the
//! authorization request leaks (RFC 9700 2.1.1).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::tokens::secrets::PkceVerifier;

/// RFC 7636 4.1: 43–128 characters of `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
pub fn is_valid_verifier(v: &PkceVerifier) -> bool {
    let v = v.secret();
    (43..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// An S256 challenge is a base64url SHA-256: exactly 43 characters.
pub fn is_valid_s256_challenge(c: &str) -> bool {
    c.len() == 43 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// RFC 7636 4.6: BASE64URL(SHA256(verifier)) == challenge, in constant time.
pub fn verify_s256(verifier: &PkceVerifier, challenge: &str) -> bool {
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.secret().as_bytes()));
    computed.as_bytes().ct_eq(challenge.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_example() {
        let verifier = &PkceVerifier::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(is_valid_verifier(verifier));
        assert!(is_valid_s256_challenge(challenge));
        assert!(verify_s256(verifier, challenge));
        assert!(!verify_s256(&"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK".into(), challenge));
    }

    #[test]
    fn short_or_odd_verifiers_are_malformed() {
        assert!(!is_valid_verifier(&"short".into()));
        assert!(!is_valid_verifier(&"a".repeat(129).into()));
        assert!(!is_valid_verifier(&format!("{}!", "a".repeat(43)).into()));
    }
}
