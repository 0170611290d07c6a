//! Signing keys and their private PKCS#8 documents.

use super::{Store, StoreResult};

#[derive(Clone, sqlx::FromRow)]
pub struct KeyRecord {
    pub kid: String,
    pub alg: String,
    pub pkcs8: String,
    pub created_at: i64,
    /// 0 for the first key, then one more per rotation; unique, so of two
    /// instances inserting the same generation at once exactly one wins.
    pub generation: i64,
}

impl std::fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRecord")
            .field("kid", &self.kid)
            .field("generation", &self.generation)
            .field("pkcs8", &"[redacted]")
            .finish()
    }
}

impl Store {
    /// Oldest generation first, so every instance reads the same ring.
    pub async fn signing_keys(&self) -> StoreResult<Vec<KeyRecord>> {
        Ok(sqlx::query_as(
            "SELECT kid, alg, pkcs8, created_at, generation FROM signing_keys ORDER BY generation, created_at, kid",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Forgets the keys of generations before `generation` (retired).
    pub async fn delete_signing_keys_before(&self, generation: i64) -> StoreResult<()> {
        sqlx::query("DELETE FROM signing_keys WHERE generation < $1").bind(generation).execute(&self.pool).await?;
        Ok(())
    }

    /// Inserts `key` unless its generation (or kid) is already taken; read
    /// the keys back to learn which one won.
    pub async fn insert_signing_key(&self, key: &KeyRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, pkcs8, created_at, generation) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT DO NOTHING",
        )
        .bind(&key.kid)
        .bind(&key.alg)
        .bind(&key.pkcs8)
        .bind(key.created_at)
        .bind(key.generation)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
