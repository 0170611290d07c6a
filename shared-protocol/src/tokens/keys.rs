//! The party's ES256 signing keys: created on first start, kept in the
//! database so restarts and instances agree, published as a JWKS (RFC 7517).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::locks;
use crate::store::{KeyRecord, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    UnknownKey,
    BadSignature,
    WrongType,
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Malformed => "the token is not a well-formed JWT",
            Self::UnknownKey => "the token was not signed by a key of this issuer",
            Self::BadSignature => "the token's signature does not verify",
            Self::WrongType => "the token is not of the expected type",
        })
    }
}

/// When keys rotate: a new key is published `publish_ahead` seconds before it
/// signs, so every cached JWKS (ours are served with `max-age=300`) holds it
/// by then; a key that stopped signing stays published `retire_after` more
/// seconds, until the last token it signed has expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPolicy {
    pub rotate_every: i64,
    pub publish_ahead: i64,
    pub retire_after: i64,
}

impl KeyPolicy {
    /// Two JWKS cache lifetimes.
    pub const PUBLISH_AHEAD: i64 = 600;

    /// Rotating every `days`, with tokens that live at most `longest_token` seconds.
    pub fn new(days: u32, longest_token: i64) -> Self {
        // Client assertions live 60 s; a minute more covers clock skew.
        Self {
            rotate_every: i64::from(days.max(1)) * 86_400,
            publish_ahead: Self::PUBLISH_AHEAD,
            retire_after: longest_token.max(60) + 60,
        }
    }
}

/// The key ring as every instance of a party sees it: read from the
/// database at start, and read again when a token names a key this instance
/// does not know (a sibling's newer key), at most once every
/// [`SigningKeys::RELOAD_EVERY`] seconds so forged `kid`s cost one query per
/// interval at most.
pub struct SigningKeys {
    ring: RwLock<Arc<KeyRing>>,
    /// When the ring was last read from the database (seconds, the injected clock).
    read_at: AtomicI64,
    policy: KeyPolicy,
}

impl SigningKeys {
    pub const RELOAD_EVERY: i64 = 5;

    /// The ring from the store, creating the first key when there is none:
    /// instances starting together on an empty database each offer a key for
    /// generation 0, one insert wins, and all read back the winner.
    pub async fn load_or_create(store: &Store, now: i64, policy: KeyPolicy) -> Result<Self, StoreError> {
        let mut records = store.signing_keys().await?;
        if records.is_empty() {
            store.insert_signing_key(&generate_key(now, 0)).await?;
            records = store.signing_keys().await?;
        }
        let ring = KeyRing::from_records(&records, &[], now, policy.publish_ahead).ok_or_else(no_usable_key)?;
        Ok(Self { policy, ..Self::new(ring, now) })
    }

    /// Run every second by each instance: creates the next key when the
    /// newest is due for rotation (one insert per generation wins, so one
    /// instance rotates), forgets keys whose last token has expired, and
    /// rebuilds the ring if what it holds or signs with changed. Every
    /// instance picks the signing key from the same rows and the same time,
    /// so all switch within the second.
    pub async fn maintain(&self, store: &Store, now: i64) -> Result<(), StoreError> {
        let policy = self.policy;
        let mut records = store.signing_keys().await?;
        // Rotation counts every row, so a new generation never collides with an undecodable newest one.
        let Some(newest) = records.last() else { return Ok(()) };
        if now >= newest.created_at + policy.rotate_every - policy.publish_ahead {
            store.insert_signing_key(&generate_key(now, newest.generation + 1)).await?;
            records = store.signing_keys().await?;
        }
        let ring = self.current();
        let (mut keys, skipped) = decode_all(&records, &ring.skipped);
        if keys.is_empty() {
            return Err(no_usable_key());
        }
        let mut active = active_index(&keys, now, policy.publish_ahead);
        // The active key has signed since it was published `publish_ahead`; the older ones' tokens are gone `retire_after` later.
        if active > 0 && now >= keys[active].created_at + policy.publish_ahead + policy.retire_after {
            store.delete_signing_keys_before(keys[active].generation).await?;
            keys.drain(..active);
            active = 0;
        }
        let same = ring.kid == keys[active].kid
            && ring.skipped == skipped
            && ring.verifying.len() == keys.len()
            && keys.iter().all(|k| ring.verifying.contains_key(&k.kid));
        if !same {
            if let Some(ring) = KeyRing::from_decoded(keys, skipped, now, policy.publish_ahead) {
                self.install(ring, now);
            }
        }
        Ok(())
    }

    /// Makes `ring`, as read at `now`, the one this instance signs and verifies with.
    fn install(&self, ring: KeyRing, now: i64) -> Arc<KeyRing> {
        let ring = Arc::new(ring);
        *locks::write(&self.ring) = ring.clone();
        self.read_at.store(now, Ordering::Relaxed);
        ring
    }

    /// A ring that is not kept in a store (benchmarks, tests): it never rotates.
    pub fn new(ring: KeyRing, now: i64) -> Self {
        let policy = KeyPolicy::new(u32::MAX, 0);
        Self { ring: RwLock::new(Arc::new(ring)), read_at: AtomicI64::new(now), policy }
    }

    /// The ring as this instance knows it now.
    pub fn current(&self) -> Arc<KeyRing> {
        locks::read(&self.ring).clone()
    }

    pub fn sign<T: Serialize>(&self, typ: &'static str, claims: &T) -> String {
        self.current().sign(typ, claims)
    }

    /// [`KeyRing::verify`], reading the ring again first if the token names
    /// an unknown key and the last read is [`Self::RELOAD_EVERY`] old.
    pub async fn verify<T: DeserializeOwned>(
        &self,
        store: &Store,
        now: i64,
        token: &str,
        typ: &str,
    ) -> Result<T, TokenError> {
        match self.current().verify(token, typ) {
            Err(TokenError::UnknownKey) if self.may_read(now) => {
                let records = store.signing_keys().await.map_err(|_| TokenError::UnknownKey)?;
                let ring = KeyRing::from_records(&records, &self.current().skipped, now, self.policy.publish_ahead)
                    .ok_or(TokenError::UnknownKey)?;
                self.install(ring, now).verify(token, typ)
            }
            outcome => outcome,
        }
    }

    /// Claims the next read if the last one is old enough (one caller wins).
    fn may_read(&self, now: i64) -> bool {
        let last = self.read_at.load(Ordering::Relaxed);
        now - last >= Self::RELOAD_EVERY
            && self.read_at.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }
}

/// The keys this party signs with and accepts.
pub struct KeyRing {
    kid: String,
    /// Parsed once: jsonwebtoken's `encode` re-parses the PKCS#8 document (and
    /// recomputes the public key) on every call, which doubles the cost of a token.
    signing: EcdsaKeyPair,
    rng: SystemRandom,
    verifying: HashMap<String, DecodingKey>,
    jwks: Value,
    validation: Validation,
    /// The `kid`s of stored rows that did not decode, warned about once.
    skipped: Vec<String>,
}

impl KeyRing {
    /// A ring with one fresh key that is not stored anywhere (benchmarks, tests).
    #[allow(clippy::expect_used, reason = "a key this process has just generated decodes")]
    pub fn ephemeral(now: i64) -> Self {
        Self::from_records(&[generate_key(now, 0)], &[], now, 0).expect("a fresh key decodes")
    }

    /// The ring of the rows of `records` that decode (see [`decode_all`]);
    /// `None` when none does.
    fn from_records(records: &[KeyRecord], known_bad: &[String], now: i64, publish_ahead: i64) -> Option<Self> {
        let (keys, skipped) = decode_all(records, known_bad);
        Self::from_decoded(keys, skipped, now, publish_ahead)
    }

    /// The ring of `keys` (oldest generation first), signing with the newest
    /// published at least `publish_ahead` seconds ago; `None` when `keys` is empty.
    fn from_decoded(keys: Vec<DecodedKey>, skipped: Vec<String>, now: i64, publish_ahead: i64) -> Option<Self> {
        let active = active_index(&keys, now, publish_ahead);
        let mut verifying = HashMap::new();
        let mut jwks = Vec::new();
        let mut current = None;
        for (i, k) in keys.into_iter().enumerate() {
            jwks.push(
                json!({"kty": "EC", "crv": "P-256", "x": k.x, "y": k.y, "kid": k.kid, "use": "sig", "alg": "ES256"}),
            );
            verifying.insert(k.kid.clone(), k.verifying);
            if i == active {
                current = Some((k.kid, k.pair));
            }
        }
        let (kid, signing) = current?;
        let mut validation = Validation::new(Algorithm::ES256);
        // Time, audience and issuer are checked by the caller against the injected clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        Some(Self {
            kid,
            signing,
            rng: SystemRandom::new(),
            verifying,
            jwks: json!({ "keys": jwks }),
            validation,
            skipped,
        })
    }

    pub fn jwks(&self) -> &Value {
        &self.jwks
    }

    /// The `kid` of the key this ring signs with.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public JWK of `kid`, while this ring holds it.
    pub fn public_jwk(&self, kid: &str) -> Option<Value> {
        self.jwks["keys"].as_array()?.iter().find(|k| k["kid"] == kid).cloned()
    }

    /// Signs `claims` as a compact JWS (RFC 7515 7.1) with header `typ`
    /// (e.g. `at+jwt`, RFC 9068 2.1), ES256 with the fixed `r || s` encoding (RFC 7518 3.4).
    #[allow(
        clippy::expect_used,
        reason = "claims are this crate's plain structs, which serialize; ES256 fails only without the system RNG"
    )]
    pub fn sign<T: Serialize>(&self, typ: &'static str, claims: &T) -> String {
        // `typ` is one of this crate's constants and `kid` a base64url thumbprint: nothing to escape.
        let header = format!(r#"{{"typ":"{typ}","alg":"ES256","kid":"{}"}}"#, self.kid);
        let mut jws = URL_SAFE_NO_PAD.encode(header);
        jws.push('.');
        jws.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize")));
        let signature =
            self.signing.sign(&self.rng, jws.as_bytes()).expect("ES256 signing with a valid key cannot fail");
        jws.push('.');
        jws.push_str(&URL_SAFE_NO_PAD.encode(signature.as_ref()));
        jws
    }

    /// Verifies the signature and `typ`; claims are checked by the caller.
    pub fn verify<T: DeserializeOwned>(&self, token: &str, typ: &str) -> Result<T, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = self.verifying.get(&kid).ok_or(TokenError::UnknownKey)?;
        if !header
            .typ
            .is_some_and(|t| t.eq_ignore_ascii_case(typ) || t.eq_ignore_ascii_case(&format!("application/{typ}")))
        {
            return Err(TokenError::WrongType);
        }
        jsonwebtoken::decode::<T>(token, key, &self.validation).map(|data| data.claims).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature,
            _ => TokenError::Malformed,
        })
    }
}

/// The key to sign with: the newest published at least `publish_ahead` ago,
/// or the oldest if none is (the first key signs at once: nobody cached a JWKS before it).
fn active_index(keys: &[DecodedKey], now: i64, publish_ahead: i64) -> usize {
    keys.iter().rposition(|k| k.created_at + publish_ahead <= now).unwrap_or(0)
}

/// A stored key, parsed.
struct DecodedKey {
    kid: String,
    created_at: i64,
    generation: i64,
    pair: EcdsaKeyPair,
    /// The public point's coordinates, base64url (RFC 7518 6.2.1.2, 6.2.1.3).
    x: String,
    y: String,
    verifying: DecodingKey,
}

/// Parses a stored row: an ES256 key as a base64 PKCS#8 document holding a P-256 key.
fn decode(r: &KeyRecord) -> Result<DecodedKey, &'static str> {
    if r.alg != "ES256" {
        return Err("the algorithm is not ES256");
    }
    let der = STANDARD.decode(&r.pkcs8).map_err(|_| "the PKCS#8 document is not base64")?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
        .map_err(|_| "the PKCS#8 document is not a P-256 private key")?;
    let (x, y) = xy(&pair);
    let verifying = DecodingKey::from_ec_components(&x, &y).map_err(|_| "the public key does not decode")?;
    Ok(DecodedKey { kid: r.kid.clone(), created_at: r.created_at, generation: r.generation, pair, x, y, verifying })
}

/// The rows of `records` that decode, in order, and the `kid`s of those that
/// do not. A row that does not decode is skipped, not fatal: the party keeps
/// signing with the others. It is logged once: a `kid` in `known_bad` (rows
/// are never rewritten) is skipped without parsing or logging it again.
fn decode_all(records: &[KeyRecord], known_bad: &[String]) -> (Vec<DecodedKey>, Vec<String>) {
    let mut keys = Vec::with_capacity(records.len());
    let mut skipped = Vec::new();
    for r in records {
        if known_bad.contains(&r.kid) {
            skipped.push(r.kid.clone());
            continue;
        }
        match decode(r) {
            Ok(key) => keys.push(key),
            Err(reason) => {
                tracing::warn!(kid = %r.kid, generation = r.generation, reason, "a stored signing key does not decode; it is skipped");
                skipped.push(r.kid.clone());
            }
        }
    }
    (keys, skipped)
}

/// The error when no stored key decodes: the party has nothing to sign with.
fn no_usable_key() -> StoreError {
    StoreError(sqlx::Error::Decode("no stored signing key decodes (each one skipped is logged with its kid)".into()))
}

fn xy(pair: &EcdsaKeyPair) -> (String, String) {
    // Uncompressed SEC1 point: 0x04 || x (32 bytes) || y (32 bytes).
    let point = pair.public_key().as_ref();
    (URL_SAFE_NO_PAD.encode(&point[1..33]), URL_SAFE_NO_PAD.encode(&point[33..65]))
}

/// A new P-256 key of `generation` whose `kid` is its JWK thumbprint (RFC 7638).
#[allow(clippy::expect_used, reason = "generation fails only without the system RNG; a fresh key parses")]
fn generate_key(now: i64, generation: i64) -> KeyRecord {
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .expect("P-256 key generation");
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).expect("fresh key parses");
    let (x, y) = xy(&pair);
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    KeyRecord {
        kid: URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())),
        alg: "ES256".into(),
        pkcs8: STANDARD.encode(doc.as_ref()),
        created_at: now,
        generation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, serde::Deserialize, PartialEq, Debug)]
    struct C {
        sub: String,
    }

    fn ring() -> KeyRing {
        KeyRing::ephemeral(1)
    }

    /// Rotating every 1,000 s, published 100 s ahead, retired 50 s after.
    const POLICY: KeyPolicy = KeyPolicy { rotate_every: 1_000, publish_ahead: 100, retire_after: 50 };

    fn kid_of(token: &str) -> String {
        jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
    }

    fn published(keys: &SigningKeys) -> Vec<String> {
        let jwks = keys.current().jwks().clone();
        jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
    }

    #[actix_web::test]
    async fn a_rotation_publishes_ahead_signs_on_time_and_retires_after_the_last_token() {
        for stores in instances(2).await {
            let (one, two) = (&stores[0], &stores[1]);
            let a = SigningKeys::load_or_create(one, 0, POLICY).await.unwrap();
            let b = SigningKeys::load_or_create(two, 0, POLICY).await.unwrap();
            let first = kid_of(&a.sign("at+jwt", &C { sub: "u".into() }));
            for keys in [&a, &b] {
                keys.maintain(one, 899).await.unwrap();
            }
            assert_eq!(published(&a), std::slice::from_ref(&first), "not due before 900 = 1000 - 100");
            // Both instances are due at the same second: one new key between them.
            let (ra, rb) = futures_util::join!(a.maintain(one, 900), b.maintain(two, 900));
            ra.unwrap();
            rb.unwrap();
            assert_eq!(one.signing_keys().await.unwrap().len(), 2);
            assert_eq!(published(&a), published(&b));
            assert_eq!(published(&a).len(), 2, "the next key is published at once");
            let old_token = a.sign("at+jwt", &C { sub: "old".into() });
            assert_eq!(kid_of(&old_token), first, "…but does not sign before it is 100 s old");
            for keys in [&a, &b] {
                keys.maintain(one, 999).await.unwrap();
                assert_eq!(kid_of(&keys.sign("at+jwt", &C { sub: "u".into() })), first);
                keys.maintain(one, 1_000).await.unwrap();
            }
            let second = published(&a)[1].clone();
            for keys in [&a, &b] {
                assert_eq!(kid_of(&keys.sign("at+jwt", &C { sub: "u".into() })), second, "both switch at 1000");
                assert_eq!(keys.verify::<C>(one, 1_000, &old_token, "at+jwt").await.unwrap().sub, "old");
                keys.maintain(one, 1_049).await.unwrap();
                assert_eq!(published(keys).len(), 2, "the old key stays while its tokens may live");
            }
            a.maintain(one, 1_050).await.unwrap();
            b.maintain(two, 1_050).await.unwrap();
            for keys in [&a, &b] {
                assert_eq!(published(keys), std::slice::from_ref(&second), "retired at 1000 + 50");
            }
        }
    }

    #[test]
    fn signs_and_verifies_with_type_and_kid() {
        let r = ring();
        let t = r.sign("at+jwt", &C { sub: "u".into() });
        assert_eq!(r.verify::<C>(&t, "at+jwt").unwrap(), C { sub: "u".into() });
        assert_eq!(r.verify::<C>(&t, "JWT"), Err(TokenError::WrongType));
        let kid = r.jwks()["keys"][0]["kid"].as_str().unwrap();
        assert_eq!(jsonwebtoken::decode_header(&t).unwrap().kid.as_deref(), Some(kid));
    }

    #[test]
    fn another_rings_token_is_refused() {
        let t = ring().sign("at+jwt", &C { sub: "u".into() });
        assert_eq!(ring().verify::<C>(&t, "at+jwt"), Err(TokenError::UnknownKey));
        assert_eq!(ring().verify::<C>("not.a.jwt", "at+jwt"), Err(TokenError::Malformed));
    }

    /// The same database through `n` separate stores (pools), as `n` instances see it.
    async fn instances(n: usize) -> Vec<Vec<Store>> {
        let file = std::env::temp_dir().join(format!("keys-{}.db", uuid::Uuid::new_v4().simple()));
        let mut urls = vec![format!("sqlite://{}", file.display())];
        urls.extend(crate::store::testing::postgres_schema_url().await);
        let mut out = Vec::new();
        for url in urls {
            let mut stores = Vec::new();
            for _ in 0..n {
                stores.push(Store::connect(&url, None).await.expect("store"));
            }
            out.push(stores);
        }
        out
    }

    #[actix_web::test]
    async fn instances_starting_together_on_an_empty_database_agree_on_one_key() {
        for stores in instances(6).await {
            let rings =
                futures_util::future::join_all(stores.iter().map(|s| SigningKeys::load_or_create(s, 100, POLICY)))
                    .await
                    .into_iter()
                    .map(|r| r.expect("ring"))
                    .collect::<Vec<_>>();
            assert_eq!(stores[0].signing_keys().await.unwrap().len(), 1, "one key was created");
            let token = rings[0].sign("at+jwt", &C { sub: "u".into() });
            for ring in &rings {
                assert_eq!(ring.current().jwks(), rings[0].current().jwks());
                assert_eq!(ring.current().verify::<C>(&token, "at+jwt").unwrap().sub, "u");
            }
        }
    }

    #[actix_web::test]
    async fn an_unknown_kid_reads_the_ring_again_at_most_every_five_seconds() {
        for stores in instances(1).await {
            let store = &stores[0];
            let keys = SigningKeys::load_or_create(store, 100, POLICY).await.unwrap();
            // A sibling adds a key (as a rotation will) and signs with it.
            let sibling_token = |generation| {
                let record = generate_key(100, generation);
                let token = KeyRing::from_records(std::slice::from_ref(&record), &[], 100, 0)
                    .unwrap()
                    .sign("at+jwt", &C { sub: "s".into() });
                (record, token)
            };
            let (k1, t1) = sibling_token(1);
            store.insert_signing_key(&k1).await.unwrap();
            assert_eq!(keys.verify::<C>(store, 104, &t1, "at+jwt").await, Err(TokenError::UnknownKey), "read 4 s ago");
            assert_eq!(keys.verify::<C>(store, 105, &t1, "at+jwt").await.unwrap().sub, "s", "read again at 5 s");
            let (k2, t2) = sibling_token(2);
            store.insert_signing_key(&k2).await.unwrap();
            for now in 105..110 {
                assert_eq!(keys.verify::<C>(store, now, &t2, "at+jwt").await, Err(TokenError::UnknownKey), "at {now}");
            }
            assert!(keys.verify::<C>(store, 110, &t2, "at+jwt").await.is_ok());
            // The ring that was read signs with the oldest key still, like every sibling's.
            let own = keys.sign("at+jwt", &C { sub: "u".into() });
            let kid = jsonwebtoken::decode_header(&own).unwrap().kid.unwrap();
            assert_eq!(kid, store.signing_keys().await.unwrap()[0].kid);
        }
    }

    /// A row no instance can use: its PKCS#8 document is not a key.
    fn corrupt_key(generation: i64, created_at: i64) -> KeyRecord {
        let pkcs8 = STANDARD.encode(b"not a PKCS#8 document");
        KeyRecord { kid: format!("corrupt-{generation}"), alg: "ES256".into(), pkcs8, created_at, generation }
    }

    #[actix_web::test]
    async fn a_stored_key_that_does_not_decode_is_skipped_and_the_good_one_signs() {
        for stores in instances(1).await {
            let store = &stores[0];
            let keys = SigningKeys::load_or_create(store, 0, POLICY).await.unwrap();
            let token = keys.sign("at+jwt", &C { sub: "u".into() });
            let good = kid_of(&token);
            // The newest row, published long enough ago that it would sign were it a key.
            store.insert_signing_key(&corrupt_key(1, 0)).await.unwrap();
            keys.maintain(store, 200).await.unwrap();
            assert_eq!(published(&keys), std::slice::from_ref(&good));
            assert_eq!(kid_of(&keys.sign("at+jwt", &C { sub: "u".into() })), good);
            // A token naming an unknown key reads the rows again, the corrupt one among them.
            let stranger = ring().sign("at+jwt", &C { sub: "u".into() });
            assert_eq!(keys.verify::<C>(store, 300, &stranger, "at+jwt").await, Err(TokenError::UnknownKey));
            assert_eq!(kid_of(&keys.sign("at+jwt", &C { sub: "u".into() })), good);
            let restarted = SigningKeys::load_or_create(store, 300, POLICY).await.unwrap();
            assert_eq!(published(&restarted), std::slice::from_ref(&good));
            assert_eq!(restarted.verify::<C>(store, 300, &token, "at+jwt").await.unwrap().sub, "u");
            // Rotation numbers past it (due at 0 + 1000 - 100), and retires it with the key it outlived.
            keys.maintain(store, 900).await.unwrap();
            let generations = |rows: Vec<KeyRecord>| rows.iter().map(|r| r.generation).collect::<Vec<_>>();
            assert_eq!(generations(store.signing_keys().await.unwrap()), [0, 1, 2]);
            keys.maintain(store, 1_000).await.unwrap();
            let third = published(&keys)[1].clone();
            assert_eq!(kid_of(&keys.sign("at+jwt", &C { sub: "u".into() })), third);
            keys.maintain(store, 1_050).await.unwrap();
            assert_eq!(generations(store.signing_keys().await.unwrap()), [2]);
            assert_eq!(published(&keys), std::slice::from_ref(&third));
        }
    }

    #[actix_web::test]
    async fn when_no_stored_key_decodes_start_up_fails_and_a_running_party_keeps_its_ring() {
        for stores in instances(1).await {
            let store = &stores[0];
            let keys = SigningKeys::load_or_create(store, 0, POLICY).await.unwrap();
            let good = kid_of(&keys.sign("at+jwt", &C { sub: "u".into() }));
            store.insert_signing_key(&corrupt_key(1, 0)).await.unwrap();
            store.delete_signing_keys_before(1).await.unwrap();
            let refresh = keys.maintain(store, 200).await.expect_err("nothing to sign with");
            assert!(refresh.to_string().contains("no stored signing key decodes"), "{refresh}");
            assert_eq!(published(&keys), std::slice::from_ref(&good), "the ring it had");
            assert_eq!(kid_of(&keys.sign("at+jwt", &C { sub: "u".into() })), good);
            let start = SigningKeys::load_or_create(store, 200, POLICY).await.err().expect("start-up fails");
            assert!(start.to_string().contains("no stored signing key decodes"), "{start}");
        }
    }

    #[test]
    fn a_tampered_payload_fails_the_signature() {
        let r = ring();
        let t = r.sign("at+jwt", &C { sub: "u".into() });
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"sub":"admin"}"#);
        parts[1] = &forged;
        assert_eq!(r.verify::<C>(&parts.join("."), "at+jwt"), Err(TokenError::BadSignature));
    }
}
