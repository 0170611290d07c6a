//! Browser sessions the server knows (the cookie holds the id; only its
//! digest is stored), so a session can end wherever its cookie went.

use super::{Store, StoreResult};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRecord {
    pub user_id: String,
    pub created_at: i64,
    pub last_seen_at: i64,
}

impl Store {
    pub async fn insert_session(&self, id_digest: &str, user_id: &str, now: i64) -> StoreResult<()> {
        sqlx::query("INSERT INTO sessions (id_digest, user_id, created_at, last_seen_at) VALUES ($1, $2, $3, $3)")
            .bind(id_digest)
            .bind(user_id)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn session(&self, id_digest: &str) -> StoreResult<Option<SessionRecord>> {
        Ok(sqlx::query_as("SELECT user_id, created_at, last_seen_at FROM sessions WHERE id_digest = $1")
            .bind(id_digest)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn touch_session(&self, id_digest: &str, now: i64) -> StoreResult<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id_digest = $1")
            .bind(id_digest)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_session(&self, id_digest: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE id_digest = $1").bind(id_digest).execute(&self.pool).await?;
        Ok(())
    }

    /// Forgets sessions created before `created_before` or idle since
    /// `idle_before`, in batches (each condition through its own index).
    pub async fn prune_sessions(&self, created_before: i64, idle_before: i64) -> StoreResult<u64> {
        let old =
            self.delete_in_batches("sessions", "id_digest", "created_at < $1", "created_at", created_before).await?;
        let idle =
            self.delete_in_batches("sessions", "id_digest", "last_seen_at < $1", "last_seen_at", idle_before).await?;
        Ok(old + idle)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::testing::stores;

    #[tokio::test]
    async fn sessions_are_pruned_when_old_or_idle() {
        for store in stores().await {
            store.insert_session("old", "u", 100).await.unwrap();
            store.insert_session("idle", "u", 1_000).await.unwrap();
            store.insert_session("busy", "u", 1_000).await.unwrap();
            store.touch_session("busy", 5_000).await.unwrap();
            // More than a batch of each kind.
            let batch = crate::store::PRUNE_BATCH as i64;
            for i in 0..2 * batch {
                store.insert_session(&format!("old-{i}"), "u", 100 + i).await.unwrap();
                store.insert_session(&format!("idle-{i}"), "u", 1_000 + i).await.unwrap();
            }
            assert_eq!(store.prune_sessions(500, 4_000).await.unwrap(), 2 + 4 * batch as u64);
            assert!(store.session("old").await.unwrap().is_none());
            assert!(store.session("idle").await.unwrap().is_none());
            assert_eq!(store.session("busy").await.unwrap().unwrap().last_seen_at, 5_000);
        }
    }
}
