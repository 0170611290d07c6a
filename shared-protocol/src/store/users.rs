//! Accounts of this party's users.

use super::{Store, StoreResult};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRecord {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub role: String,
}

impl Store {
    pub async fn user_by_name(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        Ok(sqlx::query_as("SELECT id, username, password_hash, role FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn user_by_id(&self, id: &str) -> StoreResult<Option<UserRecord>> {
        Ok(sqlx::query_as("SELECT id, username, password_hash, role FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Inserts the user unless the name is taken; `Ok(false)` when taken.
    pub async fn insert_user(&self, user: &UserRecord, now: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO users (id, username, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (username) DO NOTHING",
        )
        .bind(&user.id)
        .bind(&user.username)
        .bind(&user.password_hash)
        .bind(&user.role)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Whether any account exists: one index probe, where a count would read them all.
    pub async fn has_users(&self) -> StoreResult<bool> {
        Ok(sqlx::query("SELECT 1 FROM users LIMIT 1").fetch_optional(&self.pool).await?.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::stores;

    #[tokio::test]
    async fn an_empty_database_has_no_users_and_a_populated_one_has() {
        for store in stores().await {
            assert!(!store.has_users().await.unwrap());
            let user =
                UserRecord { id: "u1".into(), username: "zoe".into(), password_hash: "h".into(), role: "user".into() };
            assert!(store.insert_user(&user, 1).await.unwrap());
            assert!(store.has_users().await.unwrap());
        }
    }
}
