//! A bench-only ceiling for the token endpoint: a bare actix-web server whose
//! `POST /token` does only what every token response must do (parse the form,
//! see an `Authorization: Basic` header, sign an RFC 9068 ES256 access token
//! with one key parsed once, answer JSON with `Cache-Control: no-store`) and
//! whose `GET /healthz` is a bare route. No client lookup, no sessions, no
//! logging, no database. Signing is the same as `shared_protocol::tokens::KeyRing::sign`
//! (aws-lc-rs directly, fixed `r || s` encoding), so `scripts/bench.sh` can
//! compare the real endpoint with "the same ES256 JWT, key reused".
//!
//!   bare-token --listen 127.0.0.1:PORT [--workers 1]

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::header;
use actix_web::{get, post, web, App, HttpRequest, HttpResponse, HttpServer};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::json;

const TTL: i64 = 600;

struct Signer {
    kid: String,
    key: EcdsaKeyPair,
    rng: SystemRandom,
    issuer: String,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    client_id: &'a str,
    scope: &'a str,
    exp: i64,
    iat: i64,
    jti: String,
    gid: String,
}

#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    scope: &'a str,
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    scope: Option<String>,
}

impl Signer {
    fn new(issuer: String) -> Self {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("P-256 key generation");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).expect("fresh key parses");
        // As long as the real server's (an RFC 7638 thumbprint: 43 characters), so the JWTs are the same size.
        let kid =
            URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.public_key().as_ref()));
        Self { kid, key, rng, issuer }
    }

    /// The compact JWS, built as `KeyRing::sign` builds it (the header
    /// written directly, the claims with serde_json, aws-lc-rs's fixed-size signature).
    fn sign<T: Serialize>(&self, typ: &'static str, claims: &T) -> String {
        // `typ` is a constant and `kid` base64url: nothing to escape.
        let header = format!(r#"{{"typ":"{typ}","alg":"ES256","kid":"{}"}}"#, self.kid);
        let mut jws = URL_SAFE_NO_PAD.encode(header);
        jws.push('.');
        jws.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize")));
        let signature = self.key.sign(&self.rng, jws.as_bytes()).expect("ES256 signing with a valid key cannot fail");
        jws.push('.');
        jws.push_str(&URL_SAFE_NO_PAD.encode(signature.as_ref()));
        jws
    }
}

#[get("/healthz")]
async fn healthz() -> &'static str {
    "ok"
}

#[post("/token")]
async fn token(req: HttpRequest, signer: web::Data<Signer>, form: web::Form<TokenForm>) -> HttpResponse {
    let basic = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.len() > 6 && v[..6].eq_ignore_ascii_case("basic "));
    if !basic {
        return HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Basic"))
            .json(json!({"error": "invalid_client"}));
    }
    if form.grant_type != "client_credentials" {
        return HttpResponse::BadRequest().json(json!({"error": "unsupported_grant_type"}));
    }
    let scope = form.scope.as_deref().unwrap_or("player:read");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let claims = Claims {
        iss: &signer.issuer,
        sub: "voice-assistant",
        aud: &signer.issuer,
        client_id: "voice-assistant",
        scope,
        exp: now + TTL,
        iat: now,
        jti: uuid::Uuid::new_v4().to_string(),
        gid: uuid::Uuid::new_v4().to_string(),
    };
    let access_token = signer.sign("at+jwt", &claims);
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(TokenResponse { access_token, token_type: "Bearer", expires_in: TTL, scope })
}

fn usage() -> ! {
    eprintln!("usage: bare-token --listen 127.0.0.1:PORT [--workers N]");
    std::process::exit(2);
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut listen = None;
    let mut workers = 1usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = Some(args.next().unwrap_or_else(|| usage())),
            "--workers" => workers = args.next().and_then(|n| n.parse().ok()).unwrap_or_else(|| usage()),
            _ => usage(),
        }
    }
    let listen = listen.unwrap_or_else(|| usage());
    let signer = web::Data::new(Signer::new(format!("http://{listen}")));
    println!("bare-token listening on {listen} with {workers} worker(s)");
    HttpServer::new(move || App::new().app_data(signer.clone()).service(healthz).service(token))
        .workers(workers)
        .bind(&listen)?
        .run()
        .await
}
