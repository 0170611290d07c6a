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
}

const COLUMNS: &str = "client_id, name, secret_digest, redirect_uris, grant_types, scope, jwks_uri, jwks, \
                       auth_method, registration_digest, registered_at";

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
                                  jwks, auth_method, registration_digest, registered_at)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11
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
    /// name the client like any other; refreshed at every fetch.
    pub async fn upsert_document_client(&self, c: &ClientRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO clients (client_id, name, redirect_uris, grant_types, scope, jwks, auth_method, registered_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (client_id) DO UPDATE SET name = $2, redirect_uris = $3, grant_types = $4, scope = $5,
                 jwks = $6, auth_method = $7
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

    /// Forgets registered clients that never got a grant within a day of
    /// registering (registered before `before`): a flood of registrations
    /// keeps no state past that.
    pub async fn prune_unused_registrations(&self, before: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM clients WHERE registered_at IS NOT NULL AND registered_at < $1
                 AND NOT EXISTS (SELECT 1 FROM grants g WHERE g.client_id = clients.client_id)",
        )
        .bind(before)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::stores;
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
            ..Default::default()
        }
    }

    #[actix_web::test]
    async fn registrations_are_capped_deleted_and_pruned_when_unused() {
        for store in stores().await {
            assert!(store.insert_registered_client(&registered("r1", 10), 2).await.unwrap());
            assert!(store.insert_registered_client(&registered("r2", 20), 2).await.unwrap());
            assert!(!store.insert_registered_client(&registered("r3", 30), 2).await.unwrap(), "at the cap");
            assert_eq!(store.client("r1").await.unwrap().unwrap().registered_at, Some(10));
            assert_eq!(store.prune_unused_registrations(15).await.unwrap(), 1, "r1 never got a grant");
            assert!(store.client("r1").await.unwrap().is_none());
            assert!(store.delete_registered_client("r2").await.unwrap());
            assert!(store.client("r2").await.unwrap().is_none());
            // A configured client cannot be deleted this way.
            store.upsert_client(&ClientRecord { client_id: "peer".into(), ..registered("peer", 0) }).await.unwrap();
            assert!(!store.delete_registered_client("peer").await.unwrap());
        }
    }
}
