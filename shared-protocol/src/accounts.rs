//! The party's own user accounts: argon2id password hashes (hashed off the
//! async workers) and a throttle against password guessing.

use std::collections::HashMap;
use std::sync::Mutex;

use argon2::password_hash::PasswordHasher;
use argon2::{Argon2, PasswordVerifier};

use crate::clock::UnixTime;

/// Hashes a password with argon2id on the blocking pool.
pub async fn hash_password(password: String) -> Option<String> {
    actix_web::web::block(move || Argon2::default().hash_password(password.as_bytes()).ok().map(|h| h.to_string()))
        .await
        .ok()
        .flatten()
}

/// Checks a password against a PHC string on the blocking pool.
pub async fn verify_password(password: String, hash: String) -> bool {
    actix_web::web::block(move || Argon2::default().verify_password(password.as_bytes(), hash.as_str()).is_ok())
        .await
        .unwrap_or(false)
}

/// Usernames: 3–32 of `a-z 0-9 . _ -`, so they read unambiguously on the kiosk and in logs.
pub fn valid_username(name: &str) -> bool {
    (3..=32).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

pub const MIN_PASSWORD_LEN: usize = 8;

/// Failed sign-ins per account: after [`LoginThrottle::MAX_FAILURES`] in a row the
/// account refuses attempts for [`LoginThrottle::LOCKOUT`] seconds.
#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, (u32, UnixTime)>>,
}

impl LoginThrottle {
    pub const MAX_FAILURES: u32 = 5;
    pub const LOCKOUT: i64 = 60;
    /// Failures older than this are forgotten.
    const WINDOW: i64 = 15 * 60;

    /// `Err(seconds to wait)` while the account is locked.
    pub fn check(&self, username: &str, now: UnixTime) -> Result<(), i64> {
        let map = self.failures.lock().expect("throttle lock");
        match map.get(username) {
            Some(&(n, last)) if n >= Self::MAX_FAILURES && now - last < Self::LOCKOUT => {
                Err(Self::LOCKOUT - (now - last))
            }
            _ => Ok(()),
        }
    }

    pub fn record_failure(&self, username: &str, now: UnixTime) {
        let mut map = self.failures.lock().expect("throttle lock");
        map.retain(|_, (_, last)| now - *last < Self::WINDOW);
        let entry = map.entry(username.to_owned()).or_insert((0, now));
        entry.0 += 1;
        entry.1 = now;
    }

    pub fn record_success(&self, username: &str) {
        self.failures.lock().expect("throttle lock").remove(username);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_repeated_failures_and_unlocks_later() {
        let t = LoginThrottle::default();
        for i in 0..LoginThrottle::MAX_FAILURES {
            assert!(t.check("alice", 100 + i as i64).is_ok());
            t.record_failure("alice", 100 + i as i64);
        }
        assert!(t.check("alice", 105).is_err());
        assert!(t.check("bob", 105).is_ok());
        assert!(t.check("alice", 104 + LoginThrottle::LOCKOUT).is_ok());
    }

    #[test]
    fn success_clears_the_count() {
        let t = LoginThrottle::default();
        for _ in 0..LoginThrottle::MAX_FAILURES {
            t.record_failure("alice", 1);
        }
        t.record_success("alice");
        assert!(t.check("alice", 2).is_ok());
    }

    #[test]
    fn usernames_are_plain() {
        assert!(valid_username("alice"));
        assert!(!valid_username("Al"));
        assert!(!valid_username("alice smith"));
        assert!(!valid_username("<script>"));
    }

    #[actix_web::test]
    async fn a_password_verifies_only_against_its_hash() {
        let h = hash_password("wonderland".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("wonderland".into(), h.clone()).await);
        assert!(!verify_password("wonderlanD".into(), h).await);
    }
}
