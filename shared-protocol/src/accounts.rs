//! The party's own user accounts: argon2id password hashes (a bounded number
//! at a time, off the async workers) and a backoff against password guessing.

use std::collections::HashMap;
use std::sync::Mutex;

use argon2::password_hash::PasswordHasher;
use argon2::{Argon2, PasswordVerifier};
use tokio::sync::Semaphore;

use crate::clock::UnixTime;
use crate::error::Busy;
use crate::locks;
use crate::web::limits::ClientKey;

/// Password hashing with a bound: at most `concurrency` argon2id
/// computations at a time (each holds 19 MiB while it runs) and at most
/// `queue` more waiting for one. Anyone beyond that is told to come back
/// ([`Busy::AtCapacity`], a 503: the server is full, whoever asks) rather
/// than queued without end, so a flood of logins costs bounded memory.
pub struct Hasher {
    running: Semaphore,
    admitted: Semaphore,
}

impl Hasher {
    pub fn new(concurrency: usize, queue: usize) -> Self {
        let concurrency = concurrency.max(1);
        Self { running: Semaphore::new(concurrency), admitted: Semaphore::new(concurrency + queue) }
    }

    /// A PHC string for `password` (argon2id, a fresh salt).
    pub async fn hash(&self, password: String) -> Result<Option<String>, Busy> {
        self.run(move || Argon2::default().hash_password(password.as_bytes()).ok().map(|h| h.to_string())).await
    }

    /// Whether `password` matches the PHC string `hash`.
    pub async fn verify(&self, password: String, hash: String) -> Result<bool, Busy> {
        self.run(move || Argon2::default().verify_password(password.as_bytes(), hash.as_str()).is_ok()).await
    }

    async fn run<T: Default + Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, Busy> {
        let _admitted = self.admitted.try_acquire().map_err(|_| Busy::AtCapacity { retry_after: 1 })?;
        let _running = self.running.acquire().await.map_err(|_| Busy::AtCapacity { retry_after: 1 })?;
        // Off the async workers; a panic in argon2 counts as a failed check.
        Ok(tokio::task::spawn_blocking(work).await.unwrap_or_default())
    }
}

/// Usernames: 3–32 of `a-z 0-9 . _ -`, so they read unambiguously on the kiosk and in logs.
pub fn valid_username(name: &str) -> bool {
    (3..=32).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

pub const MIN_PASSWORD_LEN: usize = 8;

/// Failed sign-ins, remembered per (account, client address) pair and per
/// account, in memory of this instance.
///
/// A pair gets [`SignInBackoff::FREE_FAILURES`] failures, then waits
/// 2^(n − free) seconds (at most [`SignInBackoff::MAX_WAIT`]) before each
/// next try: whoever guesses from one address slows only themselves. Across
/// addresses an account takes at most [`SignInBackoff::ACCOUNT_FAILURES`]
/// failures per [`SignInBackoff::WINDOW`] from addresses it has not been
/// signed in from; addresses it was recently signed in from skip that
/// budget, so guessers elsewhere cannot lock its owner out where they sign in.
/// Every map is bounded ([`SignInBackoff::MAX_ENTRIES`]).
#[derive(Default)]
pub struct SignInBackoff {
    inner: Mutex<Backoffs>,
}

#[derive(Default)]
struct Backoffs {
    pairs: HashMap<(String, ClientKey), Failures>,
    accounts: HashMap<String, Failures>,
    /// Addresses an account signed in from, with when.
    known: HashMap<String, Vec<(ClientKey, UnixTime)>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    first: UnixTime,
    last: UnixTime,
}

impl SignInBackoff {
    pub const FREE_FAILURES: u32 = 5;
    pub const MAX_WAIT: i64 = 15 * 60;
    pub const ACCOUNT_FAILURES: u32 = 20;
    /// Failures idle this long are forgotten; the account budget's window.
    pub const WINDOW: i64 = 15 * 60;
    /// How long a successful sign-in makes an address known to its account.
    const KNOWN_FOR: i64 = 30 * 86_400;
    const KNOWN_PER_ACCOUNT: usize = 8;
    pub const MAX_ENTRIES: usize = 20_000;

    /// `Err(seconds to wait)` while `account` may not be tried from `client`.
    pub fn check(&self, account: &str, client: ClientKey, now: UnixTime) -> Result<(), i64> {
        let map = locks::lock(&self.inner);
        if let Some(f) = map.pairs.get(&(account.to_owned(), client)) {
            if f.count >= Self::FREE_FAILURES {
                let wait = (1i64 << (f.count - Self::FREE_FAILURES).min(20)).min(Self::MAX_WAIT);
                if now - f.last < wait {
                    return Err(wait - (now - f.last));
                }
            }
        }
        if !map.is_known(account, client, now) {
            if let Some(f) = map.accounts.get(account) {
                if f.count >= Self::ACCOUNT_FAILURES && now - f.first < Self::WINDOW {
                    return Err(Self::WINDOW - (now - f.first));
                }
            }
        }
        Ok(())
    }

    pub fn record_failure(&self, account: &str, client: ClientKey, now: UnixTime) {
        let mut map = locks::lock(&self.inner);
        let known = map.is_known(account, client, now);
        bump(&mut map.pairs, (account.to_owned(), client), now);
        if !known {
            bump(&mut map.accounts, account.to_owned(), now);
        }
    }

    pub fn record_success(&self, account: &str, client: ClientKey, now: UnixTime) {
        let mut map = locks::lock(&self.inner);
        map.pairs.remove(&(account.to_owned(), client));
        if !map.known.contains_key(account) && map.known.len() >= Self::MAX_ENTRIES {
            map.known.retain(|_, seen| seen.iter().any(|(_, at)| now - at < Self::KNOWN_FOR));
            if map.known.len() >= Self::MAX_ENTRIES {
                return;
            }
        }
        let seen = map.known.entry(account.to_owned()).or_default();
        seen.retain(|(c, at)| *c != client && now - at < Self::KNOWN_FOR);
        if seen.len() >= Self::KNOWN_PER_ACCOUNT {
            seen.remove(0);
        }
        seen.push((client, now));
    }

    #[cfg(test)]
    fn entries(&self) -> usize {
        let map = locks::lock(&self.inner);
        map.pairs.len() + map.accounts.len()
    }
}

impl Backoffs {
    fn is_known(&self, account: &str, client: ClientKey, now: UnixTime) -> bool {
        self.known
            .get(account)
            .is_some_and(|seen| seen.iter().any(|(c, at)| *c == client && now - at < SignInBackoff::KNOWN_FOR))
    }
}

/// One more failure under `key`; a full map first forgets idle entries, then its oldest.
fn bump<K: std::hash::Hash + Eq + Clone>(map: &mut HashMap<K, Failures>, key: K, now: UnixTime) {
    if !map.contains_key(&key) && map.len() >= SignInBackoff::MAX_ENTRIES {
        map.retain(|_, f| now - f.last < SignInBackoff::WINDOW);
        if map.len() >= SignInBackoff::MAX_ENTRIES {
            if let Some(oldest) = map.iter().min_by_key(|(_, f)| f.last).map(|(k, _)| k.clone()) {
                map.remove(&oldest);
            }
        }
    }
    let f = map.entry(key).or_insert(Failures { count: 0, first: now, last: now });
    if now - f.last >= SignInBackoff::WINDOW {
        *f = Failures { count: 0, first: now, last: now };
    }
    f.count += 1;
    f.last = now;
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: ClientKey = ClientKey::V4(1);
    const ELSEWHERE: ClientKey = ClientKey::V4(2);

    #[test]
    fn a_guessing_address_backs_off_and_only_it() {
        let t = SignInBackoff::default();
        for i in 0..SignInBackoff::FREE_FAILURES {
            assert!(t.check("alice", ELSEWHERE, 100 + i as i64).is_ok());
            t.record_failure("alice", ELSEWHERE, 100 + i as i64);
        }
        assert_eq!(t.check("alice", ELSEWHERE, 104), Err(1), "1 s after the fifth failure");
        assert!(t.check("alice", HOME, 104).is_ok(), "the owner's address is not locked out");
        assert!(t.check("alice", ELSEWHERE, 105).is_ok());
        t.record_failure("alice", ELSEWHERE, 105);
        assert_eq!(t.check("alice", ELSEWHERE, 105), Err(2), "the wait doubles");
        for n in 0..20 {
            t.record_failure("alice", ELSEWHERE, 200 + n);
        }
        assert_eq!(t.check("alice", ELSEWHERE, 220), Err(SignInBackoff::MAX_WAIT - 1), "capped");
    }

    #[test]
    fn many_addresses_share_one_account_budget_but_known_addresses_skip_it() {
        let t = SignInBackoff::default();
        t.record_success("alice", HOME, 10);
        for i in 0..SignInBackoff::ACCOUNT_FAILURES {
            t.record_failure("alice", ClientKey::V4(100 + i), 100);
        }
        let wait = t.check("alice", ClientKey::V4(999), 100).unwrap_err();
        assert_eq!(wait, SignInBackoff::WINDOW);
        assert!(t.check("alice", HOME, 100).is_ok(), "where alice signs in, she still can");
        assert!(t.check("bob", ClientKey::V4(999), 100).is_ok());
        assert!(t.check("alice", ClientKey::V4(999), 100 + SignInBackoff::WINDOW).is_ok(), "the window ends");
    }

    #[test]
    fn success_clears_the_pair() {
        let t = SignInBackoff::default();
        for _ in 0..SignInBackoff::FREE_FAILURES + 3 {
            t.record_failure("alice", HOME, 1);
        }
        assert!(t.check("alice", HOME, 2).is_err());
        t.record_success("alice", HOME, 2);
        assert!(t.check("alice", HOME, 2).is_ok());
    }

    #[test]
    fn the_maps_stay_bounded() {
        let t = SignInBackoff::default();
        for i in 0..(SignInBackoff::MAX_ENTRIES as u32 + 500) {
            t.record_failure(&format!("user{i}"), ClientKey::V4(i), 1);
        }
        assert!(t.entries() <= 2 * SignInBackoff::MAX_ENTRIES, "{}", t.entries());
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
        let hasher = Hasher::new(1, 0);
        let h = hasher.hash("wonderland".into()).await.unwrap().unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(hasher.verify("wonderland".into(), h.clone()).await.unwrap());
        assert!(!hasher.verify("wonderlanD".into(), h).await.unwrap());
    }

    #[actix_web::test]
    async fn hashing_beyond_the_queue_is_turned_away() {
        let hasher = std::sync::Arc::new(Hasher::new(1, 1));
        let hash = hasher.hash("wonderland".into()).await.unwrap().unwrap();
        let (a, b, c) = futures_util::join!(
            hasher.verify("x".into(), hash.clone()),
            hasher.verify("y".into(), hash.clone()),
            hasher.verify("z".into(), hash.clone()),
        );
        let busy: Vec<_> = [a, b, c].into_iter().filter(|r| r.is_err()).collect();
        assert_eq!(busy, [Err(Busy::AtCapacity { retry_after: 1 })], "one runs, one waits, one is told to come back");
    }
}
