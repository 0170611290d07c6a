//! What Reciprocal OAuth adds to the plain server's issuance, through its
//! [`IssuanceHooks`]: for the peer's client only, the `reciprocal` member of
//! the token response (draft-ietf-oauth-reciprocal 2.1; with
//! `--reciprocal-in-authorization-response` in the authorization response
//! too), one live grant per user (a newer link supersedes the older), the
//! trace, and a revocation by the peer read as the user unlinking.

use async_trait::async_trait;

use super::trace;
use crate::audit::{self, Direction, EndCause};
use crate::error::OAuthError;
use crate::server::grants::TokenResponse;
use crate::server::hooks::IssuanceHooks;
use crate::state::AppState;
use crate::store::{CodeRecord, GrantRecord, Leg};

pub struct LinkHooks;

fn is_peer(app: &AppState, client_id: &str) -> bool {
    client_id == app.config.party.peer.client_id
}

#[async_trait(?Send)]
impl IssuanceHooks for LinkHooks {
    fn links_accounts(&self, app: &AppState, client_id: &str) -> bool {
        is_peer(app, client_id)
    }

    async fn authorized(&self, app: &AppState, grant: &GrantRecord) -> Vec<(&'static str, String)> {
        if !is_peer(app, &grant.client_id) {
            return Vec::new();
        }
        trace::record_authorization(app, grant).await;
        match app.config.reciprocal_in_authorization_response {
            true => vec![("reciprocal", app.config.party.wants_from_peer())],
            false => Vec::new(),
        }
    }

    async fn code_redeemed(
        &self,
        app: &AppState,
        code: &CodeRecord,
        grant: &GrantRecord,
        tokens: &mut TokenResponse,
    ) -> Result<(), OAuthError> {
        if !is_peer(app, &grant.client_id) {
            return Ok(());
        }
        // The peer holds one token per user: a newer link supersedes every
        // older grant, so one whose answer was lost (a crash between this
        // redemption and the reply) cannot linger as an orphan.
        for older in app.store.live_grants_before(grant).await? {
            app.revoke_grant(&older).await?;
        }
        // A code without redirect URI or PKCE never went through a browser: it
        // was pushed (leg G), and the peer's request was what it answered, so
        // only a code from this party's own consent asks back (leg D).
        let pushed = code.redirect_uri.is_none() && code.code_challenge.is_none();
        if let Some(user_id) = &grant.user_id {
            if !pushed {
                // A link begins, named by the token the peer receives now.
                audit::link_began(app, user_id, tokens.access_token.secret()).await;
            }
            audit::link_direction(app, user_id, Direction::Inbound, Some(&grant.scope), EndCause::Replaced).await;
        }
        if !pushed {
            tokens.extra.insert("reciprocal", app.config.party.wants_from_peer());
        }
        trace::record_issued(app, grant, pushed).await;
        Ok(())
    }

    async fn revoked_by_client(&self, app: &AppState, grant: &GrantRecord) {
        if let (true, Some(user_id)) = (is_peer(app, &grant.client_id), &grant.user_id) {
            // An attempt of its own, not the grant's link: the trace titles it "… ended the link".
            let attempt = format!("revoked {}", grant.id);
            let summary = "POST /revoke (RFC 7009): token (redacted)";
            trace::received(app, trace::Attempt::new(user_id, &attempt), Leg::Revocation, summary).await;
            super::peer_unlinked(app, user_id).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use crate::clock::ManualClock;
    use crate::server::grants::authorization_code::{mint_code, AuthorizationCode, CodeBinding};
    use crate::server::grants::issue_tokens;
    use crate::state::AppState;
    use crate::store::GrantRecord;
    use crate::test_support::unit::{exchange, form, send, service, state};

    /// A code for the test party's peer client `peer` and `user-1`: pushed
    /// without a challenge, from the consent page with one.
    fn peer_code<'a>(app: &'a AppState, code_challenge: Option<&'a str>) -> CodeBinding<'a> {
        CodeBinding {
            client_id: "peer",
            user_id: "user-1",
            scope: "player:read",
            audience: app.config.resource(),
            redirect_uri: None,
            code_challenge,
        }
    }

    /// A code pushed to the test party's peer client `peer` for `user-1` (leg
    /// F), redeemed (leg G): access the peer holds.
    async fn redeemed(app: &AppState) -> (GrantRecord, String) {
        let (grant, code) = mint_code(app, peer_code(app, None)).await.unwrap();
        let tokens = exchange(&AuthorizationCode, app, &format!("code={}", code.secret())).await.unwrap();
        assert_eq!(tokens.extra.get("reciprocal"), None, "the answer to a push asks nothing back");
        (grant, tokens.access_token.secret().to_owned())
    }

    /// Leg D: the peer redeeming a code from this party's consent page is asked for access back.
    #[actix_web::test]
    async fn a_code_from_the_consent_page_asks_the_peer_for_access_back() {
        let app = state(ManualClock::new(1_000)).await;
        let (verifier, challenge) =
            ("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        let (_, code) = mint_code(&app, peer_code(&app, Some(challenge))).await.unwrap();
        let tokens = exchange(&AuthorizationCode, &app, &format!("code={}&code_verifier={verifier}", code.secret()))
            .await
            .unwrap();
        assert_eq!(tokens.extra.get("reciprocal").map(String::as_str), Some("assistant:notify"));
    }

    /// A link made again (or retried after a lost answer) leaves the
    /// peer one live grant per user, so no orphan outlives an unlink.
    #[actix_web::test]
    async fn the_peers_newer_code_supersedes_its_older_grants_for_the_user() {
        let clock = ManualClock::new(1_000);
        let app = state(clock.clone()).await;
        let (_, orphan) = redeemed(&app).await;
        clock.advance(5);
        let (kept, token) = redeemed(&app).await;
        assert!(app.verify_access_token(&orphan).await.is_err(), "the older grant is revoked");
        assert!(app.verify_access_token(&token).await.is_ok());
        assert_eq!(app.store.live_grants("user-1", "peer").await.unwrap(), vec![kept.id]);
    }

    fn revoke_as_peer(token: &str) -> actix_web::test::TestRequest {
        let basic = base64::engine::general_purpose::STANDARD.encode("peer:s");
        form("/revoke", None, &format!("token={token}")).insert_header(("authorization", format!("Basic {basic}")))
    }

    /// The peer revoking its link's live grant is an unlink, which
    /// ends every grant of that user's link, an orphan left by a crash too;
    /// revoking a grant already superseded is housekeeping and ends nothing.
    #[actix_web::test]
    async fn the_peer_revoking_its_live_grant_ends_every_grant_of_the_link() {
        let app = actix_web::web::Data::new(state(ManualClock::new(1_000)).await);
        let svc = service(&app).await;
        let (superseded, _) = redeemed(&app).await;
        app.revoke_grant(&superseded.id).await.unwrap();
        // Two live grants of the peer for one user, as a crash could leave them.
        let orphan = GrantRecord { id: "g-orphan".into(), revoked_at: None, ..superseded.clone() };
        let live = GrantRecord { id: "g-live".into(), ..orphan.clone() };
        for g in [&orphan, &live] {
            app.store.insert_grant(g).await.unwrap();
        }
        let old = issue_tokens(&app, &superseded, None, true).await.unwrap();
        assert_eq!(
            send(&svc, revoke_as_peer(old.refresh_token.as_ref().map(|r| r.secret()).unwrap())).await.status,
            200
        );
        let live_ones = app.store.live_grants("user-1", "peer").await.unwrap().len();
        assert_eq!(live_ones, 2, "housekeeping ends nothing");

        let tokens = issue_tokens(&app, &live, None, true).await.unwrap();
        assert_eq!(
            send(&svc, revoke_as_peer(tokens.refresh_token.as_ref().map(|r| r.secret()).unwrap())).await.status,
            200
        );
        assert!(app.store.live_grants("user-1", "peer").await.unwrap().is_empty());
        assert!(app.store.is_grant_revoked(&orphan.id).await.unwrap());
    }
}
