//! `urn:ietf:params:oauth:grant-type:device_code` (RFC 8628 3.4–3.5): the
//! device polls with its device code until the account holder, or a staff
//! member at the kiosk, has decided.

use async_trait::async_trait;

use super::{issue_tokens, Grant, GrantRequest, GrantResponse};
use crate::error::{ErrorCode, OAuthError};
use crate::grant_type::GrantType;
use crate::store::{DeviceStatus, GrantRecord};
use crate::tokens::secrets::{digest, new_id};

/// RFC 8628 3.5: how much longer to wait after polling too fast.
const SLOW_DOWN_STEP: i64 = 5;

pub struct DeviceCode;

#[async_trait(?Send)]
impl Grant for DeviceCode {
    fn grant_type(&self) -> GrantType {
        GrantType::DeviceCode
    }

    async fn exchange(&self, req: GrantRequest<'_>) -> Result<GrantResponse, OAuthError> {
        let app = req.app;
        let device_code = digest(req.params.require("device_code")?);
        let now = app.now();
        let request = app
            .store
            .device_request(&device_code)
            .await?
            .filter(|r| r.client_id == req.client.id)
            .ok_or_else(|| OAuthError::invalid_grant("the device_code is not valid for this client"))?;
        let refuse = |code: ErrorCode, why: &'static str| Err(OAuthError::new(code, why));
        match request.status {
            DeviceStatus::Pending if request.expires_at <= now => {
                refuse(ErrorCode::ExpiredToken, "the device code has expired")
            }
            DeviceStatus::Pending => {
                let too_soon = request.last_poll_at.is_some_and(|last| now - last < request.poll_interval);
                let interval = request.poll_interval + if too_soon { SLOW_DOWN_STEP } else { 0 };
                app.store.record_device_poll(&device_code, now, interval).await?;
                if too_soon {
                    refuse(ErrorCode::SlowDown, "polling too fast: wait longer between requests")
                } else {
                    refuse(ErrorCode::AuthorizationPending, "the request has not been approved yet")
                }
            }
            DeviceStatus::Denied => refuse(ErrorCode::AccessDenied, "the request was denied"),
            DeviceStatus::Withdrawn => {
                refuse(ErrorCode::AccessDenied, "the account holder took this device's access back")
            }
            DeviceStatus::Superseded => {
                refuse(ErrorCode::ExpiredToken, "newer requests for this account replaced this one")
            }
            DeviceStatus::Approved if request.redeem_by.is_some_and(|by| by <= now) => {
                refuse(ErrorCode::ExpiredToken, "the approval was not redeemed in time")
            }
            DeviceStatus::Approved => {
                // Single use: of two polls racing, one gets the tokens.
                if !app.store.redeem_device_request(&device_code).await? {
                    return refuse(ErrorCode::InvalidGrant, "the device code was already used");
                }
                let grant = GrantRecord {
                    id: new_id(app.entropy.as_ref()),
                    client_id: request.client_id,
                    // The account that was approved, not whoever approved it.
                    user_id: request.user_id,
                    scope: request.scope,
                    audience: app.config.resource().to_owned(),
                    created_at: now,
                    revoked_at: None,
                };
                app.store.insert_grant(&grant).await?;
                let refresh = req.client.allows_grant(GrantType::RefreshToken);
                Ok(issue_tokens(app, &grant, None, refresh).await?.into())
            }
            DeviceStatus::Redeemed => refuse(ErrorCode::InvalidGrant, "the device code was already used"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::{ActorRole, DecidedVia, DeviceDecision, DeviceRequest};
    use crate::test_support::unit::{exchange, state};

    async fn request(app: &crate::state::AppState, code: &str, user_code: &str) {
        let r = DeviceRequest {
            device_code_digest: digest(code),
            user_code: user_code.into(),
            client_id: "peer".into(),
            scope: "player:read".into(),
            hint_user_id: None,
            status: DeviceStatus::Pending,
            user_id: None,
            expires_at: app.now() + app.config.lifetimes.device_code,
            redeem_by: None,
            poll_interval: app.config.lifetimes.device_interval,
            last_poll_at: None,
            created_at: app.now(),
            decided_at: None,
            client_address: None,
        };
        assert!(app.store.insert_device_request(&r, 1).await.unwrap());
    }

    /// Decides the request with `user_code` for `user-9`, as the kiosk would.
    async fn decide(app: &crate::state::AppState, user_code: &str, status: DeviceStatus, redeem_by: i64) -> bool {
        let r = app.store.device_request_by_user_code(user_code).await.unwrap().unwrap();
        let entry = crate::store::AuditEntry {
            seq: 1,
            at: app.now(),
            request_id: r.device_code_digest,
            client_id: r.client_id,
            scope: r.scope,
            user_code: user_code.into(),
            account_id: "user-9".into(),
            actor_id: "staff-1".into(),
            actor_role: ActorRole::Staff,
            via: DecidedVia::Kiosk,
            decision: if status == DeviceStatus::Approved { DeviceDecision::Approve } else { DeviceDecision::Deny },
        };
        app.store.decide_device_request(&entry, status, redeem_by).await.unwrap()
    }

    async fn poll(app: &crate::state::AppState, code: &str) -> Result<super::super::TokenResponse, OAuthError> {
        exchange(&DeviceCode, app, &format!("device_code={code}")).await
    }

    #[actix_web::test]
    async fn pending_then_slow_down_then_tokens_for_the_approved_account_once() {
        let clock = ManualClock::new(1_000);
        let app = state(clock.clone()).await;
        request(&app, "dc1", "BCDFGHJK").await;
        assert_eq!(poll(&app, "dc1").await.unwrap_err().code, ErrorCode::AuthorizationPending);
        assert_eq!(poll(&app, "dc1").await.unwrap_err().code, ErrorCode::SlowDown, "polled at once");
        clock.advance(app.config.lifetimes.device_interval + SLOW_DOWN_STEP);
        assert_eq!(poll(&app, "dc1").await.unwrap_err().code, ErrorCode::AuthorizationPending);

        let by = app.now() + 60;
        assert!(decide(&app, "BCDFGHJK", DeviceStatus::Approved, by).await);
        let tokens = poll(&app, "dc1").await.unwrap();
        let claims = app.verify_access_token(tokens.access_token.secret()).await.unwrap();
        assert_eq!(claims.sub, "user-9");
        assert_eq!(poll(&app, "dc1").await.unwrap_err().code, ErrorCode::InvalidGrant, "single use");
    }

    #[actix_web::test]
    async fn requests_expire_and_denials_are_final() {
        let clock = ManualClock::new(1_000);
        let app = state(clock.clone()).await;
        request(&app, "dc2", "BCDFGHJL").await;
        request(&app, "dc3", "BCDFGHJM").await;
        assert!(decide(&app, "BCDFGHJM", DeviceStatus::Denied, 0).await);
        assert_eq!(poll(&app, "dc3").await.unwrap_err().code, ErrorCode::AccessDenied);
        clock.advance(app.config.lifetimes.device_code);
        assert_eq!(poll(&app, "dc2").await.unwrap_err().code, ErrorCode::ExpiredToken);
        let late = decide(&app, "BCDFGHJL", DeviceStatus::Approved, 0).await;
        assert!(!late, "an expired request cannot be approved");
    }

    #[actix_web::test]
    async fn finished_requests_are_forgotten_and_live_ones_kept() {
        let clock = ManualClock::new(1_000);
        let app = state(clock.clone()).await;
        request(&app, "dc5", "BCDFGHJP").await;
        request(&app, "dc6", "BCDFGHJQ").await;
        request(&app, "dc7", "BCDFGHJR").await;
        let by = app.now() + 10_000;
        assert!(decide(&app, "BCDFGHJQ", DeviceStatus::Approved, by).await);
        assert!(decide(&app, "BCDFGHJR", DeviceStatus::Superseded, by).await);
        clock.advance(app.config.lifetimes.device_code + 1);
        app.store.prune_device_requests(app.now(), app.now()).await.unwrap();
        assert!(app.store.device_request(&digest("dc5")).await.unwrap().is_none(), "expired pending request");
        assert!(app.store.device_request(&digest("dc6")).await.unwrap().is_some(), "approved, still redeemable");
        assert!(app.store.device_request(&digest("dc7")).await.unwrap().is_none(), "replaced by newer ones");
    }

    #[actix_web::test]
    async fn an_approval_must_be_redeemed_in_time() {
        let clock = ManualClock::new(1_000);
        let app = state(clock.clone()).await;
        request(&app, "dc4", "BCDFGHJN").await;
        let by = app.now() + 30;
        assert!(decide(&app, "BCDFGHJN", DeviceStatus::Approved, by).await);
        clock.advance(30);
        assert_eq!(poll(&app, "dc4").await.unwrap_err().code, ErrorCode::ExpiredToken);
    }
}
