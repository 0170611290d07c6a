//! Clients (RFC 6749 2): those configured at start (the peer's, the
//! profile's public ones) and those that registered themselves (RFC 7591).

use super::{Store, StoreResult};

#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct ClientRecord {
    pub client_id: String,
    pub name: String,
    pub secret_digest: Option<String>,
    pub redirect_uris: String,
    pub grant_types: String,
    pub scope: String,
    pub jwks_uri: Option<String>,
    /// An inline JWKS (JSON) for `private_key_jwt`, from registration.
    pub jwks: Option<String>,
    /// The RFC 7591 `token_endpoint_auth_method` a registered client chose.
    pub auth_method: Option<String>,
    /// The digest of the RFC 7592 registration access token; `None` for configured clients.
    pub registration_digest: Option<String>,
    pub registered_at: Option<i64>,
    /// When a registered client was last used (within an hour); `None` for configured clients.
    pub last_used_at: Option<i64>,
}

const COLUMNS: &str = "client_id, name, secret_digest, redirect_uris, grant_types, scope, jwks_uri, jwks, \
                       auth_method, registration_digest, registered_at, last_used_at";

impl Store {
    pub async fn client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>> {
        Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM clients WHERE client_id = $1"))
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Registers or updates a client from configuration (secrets are flags, so they may change).
    pub async fn upsert_client(&self, c: &ClientRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO clients (client_id, name, secret_digest, redirect_uris, grant_types, scope, jwks_uri)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (client_id) DO UPDATE SET name = $2, secret_digest = $3, redirect_uris = $4,
                 grant_types = $5, scope = $6, jwks_uri = $7",
        )
        .bind(&c.client_id)
        .bind(&c.name)
        .bind(&c.secret_digest)
        .bind(&c.redirect_uris)
        .bind(&c.grant_types)
        .bind(&c.scope)
        .bind(&c.jwks_uri)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stores a client that registered itself (RFC 7591 3.1), unless
    /// `max_registered` are registered already: false then.
    pub async fn insert_registered_client(&self, c: &ClientRecord, max_registered: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO clients (client_id, name, secret_digest, redirect_uris, grant_types, scope, jwks_uri,
                                  jwks, auth_method, registration_digest, registered_at, last_used_at)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11
             WHERE (SELECT COUNT(*) FROM clients WHERE registration_digest IS NOT NULL) < $12",
        )
        .bind(&c.client_id)
        .bind(&c.name)
        .bind(&c.secret_digest)
        .bind(&c.redirect_uris)
        .bind(&c.grant_types)
        .bind(&c.scope)
        .bind(&c.jwks_uri)
        .bind(&c.jwks)
        .bind(&c.auth_method)
        .bind(&c.registration_digest)
        .bind(c.registered_at)
        .bind(max_registered)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Keeps what a client metadata document said, so consents and grants
    /// name the client like any other; refreshed at every fetch (a use of the client).
    pub async fn upsert_document_client(&self, c: &ClientRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO clients (client_id, name, redirect_uris, grant_types, scope, jwks, auth_method, registered_at,
                                  last_used_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
             ON CONFLICT (client_id) DO UPDATE SET name = $2, redirect_uris = $3, grant_types = $4, scope = $5,
                 jwks = $6, auth_method = $7, last_used_at = $8
             WHERE clients.registration_digest IS NULL AND clients.secret_digest IS NULL AND clients.jwks_uri IS NULL",
        )
        .bind(&c.client_id)
        .bind(&c.name)
        .bind(&c.redirect_uris)
        .bind(&c.grant_types)
        .bind(&c.scope)
        .bind(&c.jwks)
        .bind(&c.auth_method)
        .bind(c.registered_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes a registered client (RFC 7592 2.3) with its consents; its
    /// grants are revoked by the caller first. Configured clients stay.
    pub async fn delete_registered_client(&self, client_id: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM consents WHERE client_id = $1").bind(client_id).execute(&mut *tx).await?;
        let done = sqlx::query("DELETE FROM clients WHERE client_id = $1 AND registered_at IS NOT NULL")
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// The live grants of one client, for revoking them all.
    pub async fn live_grants_of_client(&self, client_id: &str) -> StoreResult<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT id FROM grants WHERE client_id = $1 AND revoked_at IS NULL")
            .bind(client_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// Records a registered client's use at `now` (the caller writes at most once an hour).
    pub async fn note_client_used(&self, client_id: &str, now: i64) -> StoreResult<()> {
        sqlx::query("UPDATE clients SET last_used_at = $2 WHERE client_id = $1 AND last_used_at < $2")
            .bind(client_id)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets registered (and metadata document) clients unused since
    /// `idle_before`, and those that never got a grant and registered before
    /// `unused_before`, so neither a flood of registrations nor clients that
    /// stopped coming hold `--max-registered-clients` for good. Their grants
    /// are revoked (an access token still out stops working) and deleted with
    /// their refresh tokens, codes, consents, device requests and assertion
    /// ids. Configured clients stay. Returns how many clients went.
    pub async fn prune_unused_registrations(&self, idle_before: i64, unused_before: i64, now: i64) -> StoreResult<u64> {
        const GONE: &str = "SELECT client_id FROM clients WHERE registered_at IS NOT NULL
            AND (last_used_at < $1
                 OR (registered_at < $2 AND NOT EXISTS (SELECT 1 FROM grants g WHERE g.client_id = clients.client_id)))";
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO revoked_grants (grant_id, revoked_at)
             SELECT id, $3 FROM grants WHERE revoked_at IS NULL AND client_id IN ({GONE})
             ON CONFLICT (grant_id) DO NOTHING"
        ))
        .bind(idle_before)
        .bind(unused_before)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let mut statements = vec![format!(
            "DELETE FROM refresh_tokens WHERE grant_id IN (SELECT id FROM grants WHERE client_id IN ({GONE}))"
        )];
        // Clients last: deleting the rest leaves the set GONE names as it was.
        let tables = ["authorization_codes", "grants", "consents", "device_requests", "assertion_jtis", "clients"];
        statements.extend(tables.map(|t| format!("DELETE FROM {t} WHERE client_id IN ({GONE})")));
        let mut gone = 0;
        for sql in &statements {
            gone = sqlx::query(sql).bind(idle_before).bind(unused_before).execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(gone)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::stores;
    use super::super::{GrantRecord, NewCode, RedeemOutcome};
    use super::*;

    fn registered(id: &str, at: i64) -> ClientRecord {
        ClientRecord {
            client_id: id.into(),
            name: "App".into(),
            redirect_uris: "http://127.0.0.1/cb".into(),
            grant_types: "authorization_code".into(),
            scope: "a".into(),
            auth_method: Some("none".into()),
            registration_digest: Some("d".into()),
            registered_at: Some(at),
            last_used_at: Some(at),
            ..Default::default()
        }
    }

    /// A grant of `client` with a redeemed code, a refresh token and the user's consent.
    async fn granted(store: &Store, client: &str, at: i64) {
        let grant = format!("g-{client}");
        let record = GrantRecord {
            id: grant.clone(),
            client_id: client.into(),
            user_id: Some("u".into()),
            scope: "a".into(),
            audience: "x".into(),
            created_at: at,
            revoked_at: None,
        };
        store.insert_grant(&record).await.unwrap();
        let code = NewCode {
            digest: &format!("c-{client}"),
            grant_id: &grant,
            client_id: client,
            user_id: "u",
            redirect_uri: None,
            scope: "a",
            audience: "x",
            code_challenge: None,
            expires_at: at + 60,
        };
        store.insert_code(&code).await.unwrap();
        store.insert_refresh_token(&format!("r-{client}"), &grant, at + 90 * 86_400).await.unwrap();
        store.save_consent("u", client, "a", at).await.unwrap();
    }

    #[actix_web::test]
    async fn registrations_are_capped_deleted_and_pruned_when_unused() {
        for store in stores().await {
            assert!(store.insert_registered_client(&registered("r1", 10), 2).await.unwrap());
            assert!(store.insert_registered_client(&registered("r2", 20), 2).await.unwrap());
            assert!(!store.insert_registered_client(&registered("r3", 30), 2).await.unwrap(), "at the cap");
            assert_eq!(store.client("r1").await.unwrap().unwrap().registered_at, Some(10));
            assert_eq!(store.prune_unused_registrations(0, 15, 100).await.unwrap(), 1, "r1 never got a grant");
            assert!(store.client("r1").await.unwrap().is_none());
            assert!(store.delete_registered_client("r2").await.unwrap());
            assert!(store.client("r2").await.unwrap().is_none());
            // A configured client cannot be deleted this way.
            store.upsert_client(&ClientRecord { client_id: "peer".into(), ..registered("peer", 0) }).await.unwrap();
            assert!(!store.delete_registered_client("peer").await.unwrap());
        }
    }

    #[actix_web::test]
    async fn a_registered_client_unused_for_the_idle_time_goes_with_its_grants() {
        const DAY: i64 = 86_400;
        for store in stores().await {
            // Three clients granted on day 0; "used" comes back on day 20.
            for id in ["idle", "used", "old"] {
                store.insert_registered_client(&registered(id, 0), 10).await.unwrap();
                granted(&store, id, 0).await;
            }
            store.note_client_used("used", 20 * DAY).await.unwrap();
            store.note_client_used("used", 19 * DAY).await.unwrap();
            assert_eq!(store.client("used").await.unwrap().unwrap().last_used_at, Some(20 * DAY), "never backwards");
            // The peer (configured) has a grant and no recorded use: it is never pruned.
            store.upsert_client(&ClientRecord { client_id: "peer".into(), ..Default::default() }).await.unwrap();
            granted(&store, "peer", 0).await;

            let now = 31 * DAY;
            assert_eq!(store.prune_unused_registrations(now - 30 * DAY, now - DAY, now).await.unwrap(), 2);
            for gone in ["idle", "old"] {
                assert!(store.client(gone).await.unwrap().is_none(), "{gone} was unused for 30 days");
                assert!(store.grant(&format!("g-{gone}")).await.unwrap().is_none(), "{gone}'s grant went too");
                assert!(store.is_grant_revoked(&format!("g-{gone}")).await.unwrap(), "its access tokens stop");
                assert!(store.refresh_token_grant(&format!("r-{gone}")).await.unwrap().is_none());
                assert!(store.consent("u", gone).await.unwrap().is_none());
                assert!(matches!(
                    store.redeem_code(&format!("c-{gone}"), gone, 0).await.unwrap(),
                    RedeemOutcome::Unknown
                ));
            }
            for kept in ["used", "peer"] {
                assert!(store.client(kept).await.unwrap().is_some(), "{kept} stays");
                assert!(store.grant(&format!("g-{kept}")).await.unwrap().is_some_and(|g| g.revoked_at.is_none()));
                assert!(store.refresh_token_grant(&format!("r-{kept}")).await.unwrap().is_some());
                assert!(store.consent("u", kept).await.unwrap().is_some());
            }
            // Room again under the cap.
            assert!(store.insert_registered_client(&registered("new", now), 2).await.unwrap());
        }
    }
}
