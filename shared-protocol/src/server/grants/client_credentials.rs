//! `client_credentials` (RFC 6749 4.4), with the token bound to one resource:
//! RFC 8707 `resource` or Distributed OAuth's `host`.

use async_trait::async_trait;
use url::Url;

use super::{issue_tokens, Grant, GrantRequest, GrantResponse};
use crate::config::Config;
use crate::error::{ErrorCode, OAuthError};
use crate::grant_type::GrantType;
use crate::server::scope::Scope;
use crate::store::GrantRecord;
use crate::tokens::secrets::new_id;

pub struct ClientCredentials;

#[async_trait(?Send)]
impl Grant for ClientCredentials {
    fn grant_type(&self) -> GrantType {
        GrantType::ClientCredentials
    }

    async fn exchange(&self, req: GrantRequest<'_>) -> Result<GrantResponse, OAuthError> {
        let app = req.app;
        let client = &req.client.client;
        if client.is_public() {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "a public client cannot use client_credentials",
            ));
        }
        let scope = match req.params.get("scope") {
            Some(s) => Scope::parse(s),
            None => client.scope.clone(),
        };
        if scope.is_empty() || !scope.is_subset(&client.scope) {
            return Err(OAuthError::invalid_scope("the scope exceeds what this client may ask for"));
        }
        let (audience, host) = target(&app.config, req.params.get("resource"), req.params.get("host"))?;
        // No row is written for a configured client: the token is self-contained,
        // and revoking it records its grant id. A registered client's grants are
        // kept, so deleting its registration (RFC 7592 2.3) can revoke them.
        // One grant per registered client, so its rows stay one however often it asks.
        let id = if client.registered { format!("cc-{}", client.id) } else { new_id(app.entropy.as_ref()) };
        let grant = GrantRecord {
            id,
            client_id: client.id.clone(),
            user_id: None,
            scope: scope.to_string(),
            audience,
            created_at: app.now(),
            revoked_at: None,
        };
        if client.registered {
            app.store.ensure_grant(&grant).await?;
        }
        Ok(issue_tokens(app, &grant, host, false).await?.into())
    }
}

/// The audience a token is bound to: this party as a whole or one of its
/// APIs, named by `resource` (RFC 8707 2; [`Config::audience_for`]), or this
/// party by `host` (Distributed OAuth 3); both, if given, must agree.
/// Anything else is `invalid_target`.
pub fn target(
    config: &Config,
    resource: Option<&str>,
    host: Option<&str>,
) -> Result<(String, Option<String>), OAuthError> {
    let ours = config.resource();
    let invalid = |why: &'static str| OAuthError::new(ErrorCode::InvalidTarget, why);
    if let Some(r) = resource {
        let url = Url::parse(r).map_err(|_| invalid("resource must be an absolute URI"))?;
        if url.fragment().is_some() {
            return Err(invalid("resource must not contain a fragment (RFC 8707 2)"));
        }
    }
    let audience = match resource {
        Some(r) => {
            config.audience_for(r).ok_or_else(|| invalid("this server does not issue tokens for that resource"))?
        }
        None => ours.to_owned(),
    };
    if let Some(h) = host {
        let our_host = Url::parse(ours).ok().and_then(|u| {
            u.host_str().map(|hs| match u.port() {
                Some(p) => format!("{hs}:{p}"),
                None => hs.to_owned(),
            })
        });
        if our_host.as_deref() != Some(h) {
            return Err(invalid("this server does not issue tokens for that host"));
        }
    }
    Ok((audience, host.map(str::to_owned)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Cli, Config};

    fn config() -> Config {
        let cli = <Cli as clap::Parser>::parse_from([
            "p",
            "--listen",
            "x",
            "--public-url",
            "http://localhost:8002",
            "--peer-url",
            "http://localhost:8001",
            "--database-url",
            "sqlite::memory:",
            "--peer-client-secret",
            "s",
            "--client-secret",
            "t",
        ]);
        Config::from_cli(crate::test_support::unit::party(), cli)
    }

    #[test]
    fn binds_to_our_resource_by_resource_or_host() {
        let c = config();
        assert_eq!(target(&c, None, None).unwrap().0, "http://localhost:8002");
        assert_eq!(target(&c, Some("http://localhost:8002/"), None).unwrap().0, "http://localhost:8002");
        // One API's URL, or a path in it, binds the token to that API (RFC 9728 3.1).
        let api = "http://localhost:8002/api/whoami";
        assert_eq!(target(&c, Some(api), None).unwrap().0, api);
        assert_eq!(target(&c, Some(&format!("{api}/me")), None).unwrap().0, format!("{api}/me"));
        assert_eq!(target(&c, Some(&format!("{api}/")), None).unwrap().0, api, "a trailing slash names the same API");
        let (aud, host) = target(&c, None, Some("localhost:8002")).unwrap();
        assert_eq!((aud.as_str(), host.as_deref()), ("http://localhost:8002", Some("localhost:8002")));
    }

    #[test]
    fn refuses_other_targets() {
        let c = config();
        for (r, h) in [
            (Some("http://localhost:8001"), None),
            (Some("not a uri"), None),
            (Some("http://localhost:8002#x"), None),
            (None, Some("localhost:8001")),
            (Some("http://localhost:8002"), Some("evil.example")),
            (Some("http://localhost:8002/login"), None),
            (Some("http://localhost:8002/api/whoamix"), None),
            (Some("http://localhost:8002/api/whoami?x=1"), None),
            (Some("http://localhost:8002/api/whoami/../../login"), None),
            (Some("http://localhost:80021/api/whoami"), None),
        ] {
            assert_eq!(target(&c, r, h).unwrap_err().code, ErrorCode::InvalidTarget, "{r:?} {h:?}");
        }
    }
}
