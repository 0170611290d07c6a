//! The audit log's rows (migration 9). Append-only: this module has no way
//! to change or delete an entry. What the rows mean is in `crate::audit`.

use super::{Store, StoreResult};

/// One entry as stored: the signed event and what its chain needs.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditRow {
    pub seq: i64,
    /// The user whose decision it is, or `""` for the party's own entries.
    pub stream: String,
    /// The digest of the chain's previous entry, `""` for its first.
    pub prev: String,
    pub digest: String,
    pub kid: String,
    pub at: i64,
    pub set_jwt: String,
}

/// The link a user's entries name, and what each direction holds now.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditLink {
    pub user_id: String,
    pub link_id: String,
    pub inbound: Option<String>,
    pub outbound: Option<String>,
}

const COLUMNS: &str = "seq, stream, prev, digest, kid, at, set_jwt";

impl Store {
    /// The newest entry of the whole log (its `seq` and signing key).
    pub async fn audit_tail(&self) -> StoreResult<Option<AuditRow>> {
        Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM audit_events ORDER BY seq DESC LIMIT 1"))
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The digest of `stream`'s newest entry, which the next one names.
    pub async fn audit_head(&self, stream: &str) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar("SELECT digest FROM audit_events WHERE stream = $1 ORDER BY seq DESC LIMIT 1")
            .bind(stream)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Appends `row` unless its `seq`, or its place in its chain, is taken
    /// (another instance appended first): `false` then, read the tail again.
    pub async fn insert_audit_event(&self, row: &AuditRow) -> StoreResult<bool> {
        let done = sqlx::query(&format!(
            "INSERT INTO audit_events ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING"
        ))
        .bind(row.seq)
        .bind(&row.stream)
        .bind(&row.prev)
        .bind(&row.digest)
        .bind(&row.kid)
        .bind(row.at)
        .bind(&row.set_jwt)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Entries after `after`, oldest first, at most `limit`: the user's own
    /// and the party's (key changes), or every entry when `user` is `None`.
    pub async fn audit_events(&self, user: Option<&str>, after: i64, limit: i64) -> StoreResult<Vec<AuditRow>> {
        let rows = match user {
            Some(user) => {
                sqlx::query_as(&format!(
                    "SELECT {COLUMNS} FROM audit_events WHERE seq > $1 AND stream IN ($2, '') ORDER BY seq LIMIT $3"
                ))
                .bind(after)
                .bind(user)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query_as(&format!("SELECT {COLUMNS} FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2"))
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        Ok(rows)
    }

    /// The newest `limit` entries, newest first, of `user` (and the
    /// party's) or of everyone when `user` is `None`: what the page shows.
    pub async fn audit_recent(&self, user: Option<&str>, limit: i64) -> StoreResult<Vec<AuditRow>> {
        let rows = match user {
            Some(user) => {
                sqlx::query_as(&format!(
                    "SELECT {COLUMNS} FROM audit_events WHERE stream IN ($1, '') ORDER BY seq DESC LIMIT $2"
                ))
                .bind(user)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query_as(&format!("SELECT {COLUMNS} FROM audit_events ORDER BY seq DESC LIMIT $1"))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        Ok(rows)
    }

    pub async fn audit_link(&self, user_id: &str) -> StoreResult<Option<AuditLink>> {
        Ok(sqlx::query_as("SELECT user_id, link_id, inbound, outbound FROM audit_links WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn put_audit_link(&self, link: &AuditLink) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_links (user_id, link_id, inbound, outbound) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id) DO UPDATE SET link_id = $2, inbound = $3, outbound = $4",
        )
        .bind(&link.user_id)
        .bind(&link.link_id)
        .bind(&link.inbound)
        .bind(&link.outbound)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::stores;

    #[actix_web::test]
    async fn the_database_refuses_to_change_or_remove_an_entry() {
        for store in stores().await {
            let row = AuditRow {
                seq: 1,
                stream: "u".into(),
                prev: String::new(),
                digest: "d".into(),
                kid: "k".into(),
                at: 1,
                set_jwt: "x.y.z".into(),
            };
            assert!(store.insert_audit_event(&row).await.unwrap());
            assert!(!store.insert_audit_event(&row).await.unwrap(), "a taken place is not taken twice");
            for change in ["UPDATE audit_events SET set_jwt = 'a.b.c'", "DELETE FROM audit_events"] {
                let refused = sqlx::query(change).execute(&store.pool).await.unwrap_err();
                assert!(refused.to_string().contains("append-only"), "{change}: {refused}");
            }
            if store.postgres_url.is_none() {
                // SQLite's REPLACE removes the row in its way without a DELETE trigger.
                let replace = "INSERT OR REPLACE INTO audit_events (seq, stream, prev, digest, kid, at, set_jwt) \
                               VALUES (1, 'u', '', 'forged', 'k', 1, 'a.b.c')";
                sqlx::query(replace).execute(&store.pool).await.unwrap();
            }
            assert_eq!(store.audit_events(None, 0, 10).await.unwrap(), vec![row]);
        }
    }
}
