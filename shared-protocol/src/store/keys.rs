//! Signing keys and their private PKCS#8 documents.

use super::{Store, StoreResult};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyRecord {
    pub kid: String,
    pub alg: String,
    pub pkcs8: String,
    pub created_at: i64,
}

impl Store {
    /// Oldest first, so every instance picks the same current key.
    pub async fn signing_keys(&self) -> StoreResult<Vec<KeyRecord>> {
        Ok(sqlx::query_as("SELECT kid, alg, pkcs8, created_at FROM signing_keys ORDER BY created_at, kid")
            .fetch_all(self.pool())
            .await?)
    }

    pub async fn insert_signing_key(&self, key: &KeyRecord) -> StoreResult<()> {
        sqlx::query("INSERT INTO signing_keys (kid, alg, pkcs8, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (kid) DO NOTHING")
            .bind(&key.kid)
            .bind(&key.alg)
            .bind(&key.pkcs8)
            .bind(key.created_at)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
