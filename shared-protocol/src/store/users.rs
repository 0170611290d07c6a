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

    pub async fn user_count(&self) -> StoreResult<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users").fetch_one(&self.pool).await?;
        Ok(n)
    }
}
