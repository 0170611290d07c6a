//! A party's own per-user state: one JSON document per kind and user, so a
//! party's API reaches storage through these two methods and writes no SQL.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Store, StoreError, StoreResult};

impl Store {
    /// The user's document of `kind`, if one was stored.
    pub async fn product_state<T: DeserializeOwned>(&self, kind: &str, user_id: &str) -> StoreResult<Option<T>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT body FROM product_state WHERE kind = $1 AND user_id = $2")
            .bind(kind)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|(body,)| serde_json::from_str(&body).map_err(|e| StoreError(sqlx::Error::Decode(e.into()))))
            .transpose()
    }

    /// Stores `value` as the user's document of `kind`, replacing the last.
    pub async fn put_product_state<T: Serialize>(
        &self,
        kind: &str,
        user_id: &str,
        value: &T,
        now: i64,
    ) -> StoreResult<()> {
        let body = serde_json::to_string(value).map_err(|e| StoreError(sqlx::Error::Decode(e.into())))?;
        sqlx::query(
            "INSERT INTO product_state (kind, user_id, body, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (kind, user_id) DO UPDATE SET body = $3, updated_at = $4",
        )
        .bind(kind)
        .bind(user_id)
        .bind(body)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets the user's document of `kind`.
    pub async fn clear_product_state(&self, kind: &str, user_id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM product_state WHERE kind = $1 AND user_id = $2")
            .bind(kind)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Card {
        title: String,
    }

    #[actix_web::test]
    async fn a_document_is_kept_per_kind_and_user_and_replaced_whole() {
        for store in super::super::testing::stores().await {
            let card = |t: &str| Card { title: t.into() };
            assert_eq!(store.product_state::<Card>("card", "u1").await.unwrap(), None);
            store.put_product_state("card", "u1", &card("one"), 1).await.unwrap();
            store.put_product_state("card", "u1", &card("two"), 2).await.unwrap();
            store.put_product_state("other", "u1", &card("three"), 2).await.unwrap();
            assert_eq!(store.product_state("card", "u1").await.unwrap(), Some(card("two")));
            assert_eq!(store.product_state::<Card>("card", "u2").await.unwrap(), None);
            store.clear_product_state("card", "u1").await.unwrap();
            assert_eq!(store.product_state::<Card>("card", "u1").await.unwrap(), None);
            assert_eq!(store.product_state("other", "u1").await.unwrap(), Some(card("three")));
        }
    }
}
