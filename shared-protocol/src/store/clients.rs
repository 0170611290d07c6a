//! Registered OAuth clients (RFC 6749 2).

use super::{Store, StoreResult};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClientRecord {
    pub client_id: String,
    pub name: String,
    pub secret_digest: Option<String>,
    pub redirect_uris: String,
    pub grant_types: String,
    pub scope: String,
    pub jwks_uri: Option<String>,
}

impl Store {
    pub async fn client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>> {
        Ok(sqlx::query_as(
            "SELECT client_id, name, secret_digest, redirect_uris, grant_types, scope, jwks_uri
             FROM clients WHERE client_id = $1",
        )
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
}
