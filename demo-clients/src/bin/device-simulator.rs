//! A device as the staffed-kiosk flow expects one: it makes its own key,
//! registers itself (RFC 7591, `private_key_jwt` with its `jwks`), asks for
//! a user code for an account (RFC 8628 3.1 with `login_hint`), prints it,
//! polls while staff approve at the kiosk, authenticating every request with
//! a fresh assertion of its own (RFC 7523), then calls the API.
//!
//! ```sh
//! cargo run -p demo-clients --bin device-simulator -- --issuer http://localhost:8002 --account alice
//! ```

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use clap::Parser;
use serde_json::{json, Value};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";

#[derive(Parser)]
#[command(about = "A device that registers itself and asks staff at the kiosk for access")]
struct Args {
    /// The authorization server (its issuer URL).
    #[arg(long, default_value = "http://localhost:8002")]
    issuer: String,
    /// The account the device is for (`login_hint`); staff check the person's ID.
    #[arg(long)]
    account: String,
    /// The name the kiosk shows.
    #[arg(long, default_value = "Simulated speaker")]
    name: String,
    #[arg(long, default_value = "player:read player:control")]
    scope: String,
    /// The API to call once approved.
    #[arg(long, default_value = "/api/player")]
    api: String,
    /// Give up after this many seconds without approval.
    #[arg(long, default_value_t = 600)]
    max_wait: u64,
    /// After the first call, call the API again for every line read on stdin, until it closes.
    #[arg(long)]
    again_on_enter: bool,
}

/// The device's own signing key and its public JWK.
struct DeviceKey {
    pkcs8: Vec<u8>,
    jwk: Value,
}

impl DeviceKey {
    fn generate() -> Result<Self, String> {
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map_err(|_| "cannot make a key")?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).map_err(|_| "bad key")?;
        let point = pair.public_key().as_ref();
        let jwk = json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "device-1",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..])});
        Ok(Self { pkcs8: doc.as_ref().to_vec(), jwk })
    }

    /// A one-minute RFC 7523 assertion for `audience`, with a fresh `jti`.
    fn assertion(&self, client_id: &str, audience: &str) -> Result<String, String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("device-1".into());
        let claims = json!({"iss": client_id, "sub": client_id, "aud": audience, "iat": now, "exp": now + 60,
            "jti": uuid::Uuid::new_v4().to_string()});
        jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ec_der(&self.pkcs8))
            .map_err(|e| format!("cannot sign a client assertion: {e}"))
    }
}

async fn json_of(res: reqwest::Response) -> Result<(u16, Value), String> {
    let status = res.status().as_u16();
    let body = res.json::<Value>().await.map_err(|e| format!("not JSON ({status}): {e}"))?;
    Ok((status, body))
}

fn field<'a>(v: &'a Value, name: &str) -> Result<&'a str, String> {
    v[name].as_str().ok_or_else(|| format!("no {name} in {v}"))
}

async fn run(args: Args) -> Result<(), String> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(|e| e.to_string())?;
    let get = |url: String| {
        let http = http.clone();
        async move { json_of(http.get(&url).send().await.map_err(|e| format!("{url}: {e}"))?).await }
    };
    let (_, meta) = get(format!("{}/.well-known/oauth-authorization-server", args.issuer)).await?;
    let (registration, device, token) = (
        field(&meta, "registration_endpoint")?,
        field(&meta, "device_authorization_endpoint")?,
        field(&meta, "token_endpoint")?,
    );
    let issuer = field(&meta, "issuer")?;

    let key = DeviceKey::generate()?;
    let metadata = json!({"client_name": args.name, "grant_types": [DEVICE_CODE, "refresh_token"],
        "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [key.jwk]}, "scope": args.scope});
    let (status, client) =
        json_of(http.post(registration).json(&metadata).send().await.map_err(|e| e.to_string())?).await?;
    if status != 201 {
        return Err(format!("registration refused ({status}): {client}"));
    }
    let client_id = field(&client, "client_id")?.to_owned();
    println!("registered as {client_id} (\"{}\")", args.name);

    let form = |extra: Vec<(&'static str, String)>| -> Result<_, String> {
        let mut f = vec![
            ("client_assertion_type", JWT_BEARER.to_owned()),
            ("client_assertion", key.assertion(&client_id, issuer)?),
        ];
        f.extend(extra);
        Ok(f)
    };
    let request = form(vec![("login_hint", args.account.clone()), ("scope", args.scope.clone())])?;
    let (status, started) = json_of(http.post(device).form(&request).send().await.map_err(|e| e.to_string())?).await?;
    if status != 200 {
        return Err(format!("device authorization refused ({status}): {started}"));
    }
    let device_code = field(&started, "device_code")?.to_owned();
    println!("user_code {}", field(&started, "user_code")?);
    println!("ask staff at {}/kiosk to approve it for {}", args.issuer, args.account);

    let mut interval = started["interval"].as_u64().unwrap_or(5);
    let deadline = Instant::now() + Duration::from_secs(args.max_wait);
    let access = loop {
        // A little past the interval: polling early is answered slow_down (RFC 8628 3.5).
        tokio::time::sleep(Duration::from_millis(interval * 1000 + 200)).await;
        if Instant::now() > deadline {
            return Err("no approval in time".into());
        }
        let poll = form(vec![("grant_type", DEVICE_CODE.to_owned()), ("device_code", device_code.clone())])?;
        let (status, answer) = json_of(http.post(token).form(&poll).send().await.map_err(|e| e.to_string())?).await?;
        match (status, answer["error"].as_str()) {
            (200, _) => break field(&answer, "access_token")?.to_owned(),
            (_, Some("authorization_pending")) => println!("waiting for approval"),
            // RFC 8628 3.5: every slow_down adds 5 s.
            (_, Some("slow_down")) => interval += 5,
            _ => return Err(format!("not approved ({status}): {answer}")),
        }
    };
    println!("approved");
    let call = || async {
        let res = http.get(format!("{}{}", args.issuer, args.api)).bearer_auth(&access).send().await;
        let status = res.map_err(|e| e.to_string())?.status().as_u16();
        println!("GET {} -> {status}", args.api);
        Ok::<u16, String>(status)
    };
    let first = call().await?;
    if args.again_on_enter {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).map_err(|e| e.to_string())? > 0 {
            call().await?;
            line.clear();
        }
    }
    if first == 200 {
        Ok(())
    } else {
        Err(format!("the API answered {first}"))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("device-simulator: {why}");
            std::process::ExitCode::FAILURE
        }
    }
}
