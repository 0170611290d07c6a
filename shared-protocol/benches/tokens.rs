//! Access-token signing and verification (ES256, RFC 9068), the crypto on
//! the token endpoint's and the API's hot paths.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a benchmark that fails has nothing to measure")]

use criterion::{criterion_group, criterion_main, Criterion};
use shared_protocol::config::{Cli, Config};
use shared_protocol::test_support::TEST_PARTY;
use shared_protocol::tokens::access_token::{AccessClaims, ACCESS_TOKEN_TYP};
use shared_protocol::tokens::KeyRing;
use shared_protocol::{build_state, clock::OsEntropy, clock::SystemClock};
use std::sync::Arc;

fn claims() -> AccessClaims {
    AccessClaims {
        iss: "http://localhost:8002".into(),
        sub: "6f1c1f4e-2b7a-4f7e-9a55-0d9c1f0b8a11".into(),
        aud: "http://localhost:8002".into(),
        client_id: "voice-assistant".into(),
        scope: "player:control player:read".into(),
        exp: 4_000_000_000,
        iat: 3_999_999_400,
        jti: "0b6f0f5e-7d0c-4d9b-8f7e-2b1c3d4e5f60".into(),
        gid: "3c2b1a09-8f7e-4d6c-b5a4-938271605f4e".into(),
        host: None,
    }
}

fn tokens(c: &mut Criterion) {
    let ring = KeyRing::ephemeral(0);
    let claims = claims();
    c.bench_function("sign ES256 access token", |b| b.iter(|| ring.sign(ACCESS_TOKEN_TYP, &claims)));
    let token = ring.sign(ACCESS_TOKEN_TYP, &claims);
    c.bench_function("verify ES256 access token", |b| {
        b.iter(|| ring.verify::<AccessClaims>(&token, ACCESS_TOKEN_TYP).expect("valid"))
    });
}

/// The resource server's hot path for a token it has seen before: cache hit,
/// expiry and revocation check (no signature verification, no I/O).
fn guard(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let state = rt.block_on(async {
        let config = Config::from_cli(&TEST_PARTY, Cli::parse_from_for(&TEST_PARTY, ["bench"]));
        build_state(config, Arc::new(SystemClock), Arc::new(OsEntropy)).await.unwrap()
    });
    let now = state.now();
    let token = state.keys.sign(
        ACCESS_TOKEN_TYP,
        &AccessClaims {
            iss: state.config.issuer().into(),
            aud: state.config.resource().into(),
            exp: now + 3600,
            iat: now,
            ..claims()
        },
    );
    rt.block_on(state.verify_access_token(&token)).expect("first verification");
    c.bench_function("guard: verified token (cache hit + revocation check)", |b| {
        b.iter(|| rt.block_on(state.verify_access_token(&token)).expect("valid"))
    });
}

criterion_group!(benches, tokens, guard);
criterion_main!(benches);
