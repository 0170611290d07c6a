//! Distributed OAuth from a bare API URL (draft-hardt-distributed-oauth,
//! RFC 9728): call the API, read the issuers from its 401, check the
//! resource's and the issuer's metadata, register at the issuer when no
//! credentials are given (RFC 7591), get a token bound to that API (RFC 8707
//! `resource`, the draft's `host`) and call the API with it, printing each step.
//!
//! ```sh
//! cargo run -p demo-clients --bin discover -- http://localhost:8002/api/whoami --trust http://localhost:8002
//! ```

use clap::Parser;
use shared_protocol::client::discovery::{access_for_api, register_client, TrustedIssuer};

#[derive(Parser)]
#[command(about = "From an API's URL alone to a call with a token bound to it")]
struct Args {
    /// The API to reach.
    api: String,
    /// An issuer this client trusts (draft section 5.3); credentials go nowhere else.
    #[arg(long, required = true)]
    trust: String,
    /// This client's id at that issuer; without one it registers itself (RFC 7591).
    #[arg(long, requires = "client_secret")]
    client_id: Option<String>,
    #[arg(long, env = "DISCOVER_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    #[arg(long, default_value = "player:read")]
    scope: String,
}

async fn run(args: Args) -> Result<(), String> {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let (client_id, client_secret) = match (args.client_id, args.client_secret) {
        (Some(id), Some(secret)) => (id, secret),
        _ => {
            let (id, secret) =
                register_client(&http, &args.trust, "discover", &args.scope).await.map_err(|e| e.to_string())?;
            println!("1. registered at {} as {id} (RFC 7591)", args.trust);
            (id, secret)
        }
    };
    let trusted = [TrustedIssuer { issuer: &args.trust, client_id: &client_id, client_secret: &client_secret }];
    let access = access_for_api(&http, &args.api, &args.scope, &trusted).await.map_err(|e| e.to_string())?;
    println!("2. {} answered 401 naming {}; its resource metadata names {}", args.api, access.issuer, access.resource);
    println!(
        "3. token from {} for resource {} and host {} (scope {})",
        access.issuer, access.resource, access.host, access.scope
    );
    let res = http.get(&args.api).bearer_auth(&access.access_token).send().await.map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    println!("4. GET {} -> {status} {}", args.api, res.text().await.unwrap_or_default());
    if status == 200 {
        Ok(())
    } else {
        Err(format!("the API answered {status}"))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("discover: {why}");
            std::process::ExitCode::FAILURE
        }
    }
}
