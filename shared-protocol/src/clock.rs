//! Time and randomness, injected so lifetimes and replays are testable
//! without sleeping and token values are reproducible in unit tests.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

/// Seconds since the Unix epoch, the unit of every `exp`/`iat` (RFC 7519 2).
pub type UnixTime = i64;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> UnixTime;
    /// The same time with sub-second precision, for rate limits.
    fn precise(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.now().max(0) as u64)
    }
}

/// `at` for people: "2 Dec 2026, 18:50 UTC" (the civil calendar from days
/// since the epoch, after Hinnant's `civil_from_days`).
pub fn format_utc(at: UnixTime) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (days, secs) = (at.div_euclid(86_400), at.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{day} {} {year}, {:02}:{:02} UTC", MONTHS[(month - 1) as usize], secs / 3_600, secs % 3_600 / 60)
}

/// The wall clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        self.precise().as_secs() as i64
    }
    fn precise(&self) -> std::time::Duration {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default()
    }
}

/// A clock tests move by hand.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start: UnixTime) -> Self {
        Self(Arc::new(AtomicI64::new(start)))
    }
    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        self.0.load(Ordering::SeqCst)
    }
}

/// Source of the random bytes behind codes, tokens, salts and ids.
pub trait Entropy: Send + Sync + 'static {
    fn fill(&self, buf: &mut [u8]);
}

/// The operating system's CSPRNG (through aws-lc-rs), drawn a kilobyte at a
/// time per thread: each call into the generator costs more than the bytes,
/// and a token needs several small draws.
#[derive(Debug, Default)]
pub struct OsEntropy;

thread_local! {
    /// Random bytes drawn ahead, and how many of them are used up.
    static AHEAD: std::cell::RefCell<([u8; 1024], usize)> = const { std::cell::RefCell::new(([0; 1024], 1024)) };
}

impl Entropy for OsEntropy {
    fn fill(&self, buf: &mut [u8]) {
        use aws_lc_rs::rand::SecureRandom;
        // The system RNG failing is unrecoverable: nothing secure can be minted.
        #[allow(clippy::expect_used, reason = "no secret can be minted without the system RNG")]
        let draw = |into: &mut [u8]| {
            aws_lc_rs::rand::SystemRandom::new()
                .fill(into)
                .expect("the operating system's random number generator failed")
        };
        if buf.len() > 256 {
            return draw(buf);
        }
        AHEAD.with_borrow_mut(|(ahead, used)| {
            if *used + buf.len() > ahead.len() {
                draw(ahead);
                *used = 0;
            }
            buf.copy_from_slice(&ahead[*used..*used + buf.len()]);
            // Bytes handed out are wiped from the buffer: no copy of a secret lingers.
            ahead[*used..*used + buf.len()].fill(0);
            *used += buf.len();
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_dates() {
        assert_eq!(format_utc(0), "1 Jan 1970, 00:00 UTC");
        assert_eq!(format_utc(951_782_400), "29 Feb 2000, 00:00 UTC");
        assert_eq!(format_utc(1_796_150_700), "1 Dec 2026, 18:45 UTC");
        assert_eq!(format_utc(-60), "31 Dec 1969, 23:59 UTC");
    }

    #[test]
    fn os_entropy_never_repeats_itself_across_refills() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let mut b = [0u8; 16];
            OsEntropy.fill(&mut b);
            assert!(seen.insert(b), "a repeated draw");
        }
        let mut big = [0u8; 4096];
        OsEntropy.fill(&mut big);
        assert!(big.iter().any(|b| *b != 0));
    }
}

/// Deterministic bytes for unit tests: a counter, never for production.
#[derive(Debug, Default)]
pub struct CountingEntropy(AtomicU64);

impl Entropy for CountingEntropy {
    fn fill(&self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let n = self.0.fetch_add(1, Ordering::SeqCst).to_be_bytes();
            chunk.copy_from_slice(&n[..chunk.len()]);
        }
    }
}
