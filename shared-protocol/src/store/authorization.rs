//! Grants, authorization codes, refresh tokens, consents, revocations and
//! assertion replay records: the state behind the token endpoint.

use sqlx::Row;

use super::{Store, StoreResult};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GrantRecord {
    pub id: String,
    pub client_id: String,
    pub user_id: Option<String>,
    pub scope: String,
    pub audience: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A code to store; only its digest is kept.
#[derive(Debug, Clone)]
pub struct NewCode<'a> {
    pub digest: &'a str,
    pub grant_id: &'a str,
    pub client_id: &'a str,
    pub user_id: &'a str,
    pub redirect_uri: Option<&'a str>,
    pub scope: &'a str,
    pub audience: &'a str,
    pub code_challenge: Option<&'a str>,
    pub expires_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CodeRecord {
    pub grant_id: String,
    pub client_id: String,
    pub user_id: String,
    pub redirect_uri: Option<String>,
    pub scope: String,
    pub audience: String,
    pub code_challenge: Option<String>,
    pub expires_at: i64,
}

/// What presenting a code found (RFC 6749 4.1.2: single use).
#[derive(Debug)]
pub enum RedeemOutcome {
    Redeemed(CodeRecord),
    /// Presented before: the caller revokes what the first redemption issued (RFC 6749 10.5).
    AlreadyUsed {
        grant_id: String,
    },
    /// A live code presented by a client it was not issued to: refused, and left usable.
    OtherClient,
    Unknown,
}

/// What presenting a refresh token found (RFC 9700 4.14.2: rotation).
#[derive(Debug)]
pub enum RefreshOutcome {
    /// Used up now by this caller: it may issue the next token of the family.
    Fresh,
    /// A rotated-out token came back within the reuse grace, for the first
    /// time: honoured like [`RefreshOutcome::Fresh`], the family kept.
    WithinGrace,
    /// A rotated-out token came back: the family is compromised.
    Reused {
        grant_id: String,
    },
    Unknown,
}

impl Store {
    pub async fn insert_grant(&self, g: &GrantRecord) -> StoreResult<()> {
        self.write_grant(g, "").await
    }

    /// Stores `g` unless a grant of that id exists already.
    pub async fn ensure_grant(&self, g: &GrantRecord) -> StoreResult<()> {
        self.write_grant(g, " ON CONFLICT (id) DO NOTHING").await
    }

    async fn write_grant(&self, g: &GrantRecord, on_conflict: &'static str) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO grants (id, client_id, user_id, scope, audience, created_at) VALUES ($1, $2, $3, $4, $5, $6){on_conflict}"
        );
        sqlx::query(&sql)
            .bind(&g.id)
            .bind(&g.client_id)
            .bind(&g.user_id)
            .bind(&g.scope)
            .bind(&g.audience)
            .bind(g.created_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn grant(&self, id: &str) -> StoreResult<Option<GrantRecord>> {
        Ok(sqlx::query_as(
            "SELECT id, client_id, user_id, scope, audience, created_at, revoked_at FROM grants WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Revokes a grant and so every token of its family. Idempotent.
    pub async fn revoke_grant(&self, grant_id: &str, now: i64) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE grants SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(grant_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO revoked_grants (grant_id, revoked_at) VALUES ($1, $2) ON CONFLICT (grant_id) DO NOTHING",
        )
        .bind(grant_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if self.postgres_url.is_some() {
            // Delivered to every listening instance when the transaction commits.
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(super::REVOCATIONS_CHANNEL)
                .bind(grant_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Live grants of a user to a client (for withdrawing consent).
    pub async fn live_grants(&self, user_id: &str, client_id: &str) -> StoreResult<Vec<String>> {
        let rows = sqlx::query("SELECT id FROM grants WHERE user_id = $1 AND client_id = $2 AND revoked_at IS NULL")
            .bind(user_id)
            .bind(client_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| r.try_get::<String, _>(0).map_err(Into::into)).collect()
    }

    /// Live grants of a user to a client made no later than `grant` (other
    /// than it): the ones a newer authorization of a one-grant client replaces.
    pub async fn live_grants_before(&self, grant: &GrantRecord) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT id FROM grants
             WHERE user_id = $1 AND client_id = $2 AND revoked_at IS NULL AND id <> $3 AND created_at <= $4",
        )
        .bind(&grant.user_id)
        .bind(&grant.client_id)
        .bind(&grant.id)
        .bind(grant.created_at)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| r.try_get::<String, _>(0).map_err(Into::into)).collect()
    }

    /// Live grants of a user to a client that produced tokens (a code of
    /// theirs was redeemed): what that client may do for the user right now.
    /// Read from the grants alone, so pruning redeemed codes changes nothing here.
    pub async fn redeemed_grants(&self, user_id: &str, client_id: &str) -> StoreResult<Vec<GrantRecord>> {
        Ok(sqlx::query_as(
            "SELECT id, client_id, user_id, scope, audience, created_at, revoked_at FROM grants
             WHERE user_id = $1 AND client_id = $2 AND revoked_at IS NULL AND redeemed_at IS NOT NULL
             ORDER BY created_at",
        )
        .bind(user_id)
        .bind(client_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Grants revoked at or after `since`, for instances to learn of each other's revocations.
    pub async fn revoked_since(&self, since: i64) -> StoreResult<Vec<(String, i64)>> {
        Ok(sqlx::query_as("SELECT grant_id, revoked_at FROM revoked_grants WHERE revoked_at >= $1")
            .bind(since)
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn is_grant_revoked(&self, grant_id: &str) -> StoreResult<bool> {
        let row = sqlx::query("SELECT 1 FROM revoked_grants WHERE grant_id = $1")
            .bind(grant_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Forgets what can no longer be used or matter, a day past its end, in
    /// batches each driven by an expiry index: codes (a redeemed one is kept
    /// until then, so a replay within its life still revokes what it issued,
    /// RFC 6749 4.1.2), with the grants of those never redeemed (unless they
    /// hold a refresh token), and refresh tokens.
    pub async fn prune_authorizations(&self, now: i64) -> StoreResult<u64> {
        let before = now - 86_400;
        let mut pruned = 0;
        loop {
            let batch: Vec<(String, String)> = sqlx::query_as(&format!(
                "SELECT digest, grant_id FROM authorization_codes WHERE expires_at < $1
                 ORDER BY expires_at LIMIT {}",
                super::PRUNE_BATCH
            ))
            .bind(before)
            .fetch_all(&self.pool)
            .await?;
            if batch.is_empty() {
                break;
            }
            pruned += self.forget_codes(&batch, before).await?;
            if (batch.len() as u64) < super::PRUNE_BATCH {
                break;
            }
        }
        let expired = "expires_at < $1";
        Ok(pruned + self.delete_in_batches("refresh_tokens", "digest", expired, "expires_at", before).await?)
    }

    /// Deletes the codes `(digest, grant id)` and, in the same transaction,
    /// those of their grants that never produced tokens and have no code left
    /// alive (a second instance pruning the same batch finds nothing to do).
    async fn forget_codes(&self, codes: &[(String, String)], before: i64) -> StoreResult<u64> {
        let list = |from: usize| (from..from + codes.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        let grants = format!(
            "DELETE FROM grants WHERE id IN ({}) AND redeemed_at IS NULL AND revoked_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.grant_id = grants.id)
               AND NOT EXISTS (SELECT 1 FROM authorization_codes c WHERE c.grant_id = grants.id AND c.expires_at >= $1)",
            list(2)
        );
        let digests = format!("DELETE FROM authorization_codes WHERE digest IN ({})", list(1));
        let mut tx = self.pool.begin().await?;
        let mut query = sqlx::query(&grants).bind(before);
        for (_, grant_id) in codes {
            query = query.bind(grant_id);
        }
        let mut deleted = query.execute(&mut *tx).await?.rows_affected();
        let mut query = sqlx::query(&digests);
        for (digest, _) in codes {
            query = query.bind(digest);
        }
        deleted += query.execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(deleted)
    }

    pub async fn insert_code(&self, c: &NewCode<'_>) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO authorization_codes
               (digest, grant_id, client_id, user_id, redirect_uri, scope, audience, code_challenge, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(c.digest)
        .bind(c.grant_id)
        .bind(c.client_id)
        .bind(c.user_id)
        .bind(c.redirect_uri)
        .bind(c.scope)
        .bind(c.audience)
        .bind(c.code_challenge)
        .bind(c.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks the code consumed, and its grant redeemed, in one atomic step,
    /// so two concurrent redemptions cannot both succeed.
    pub async fn redeem_code(&self, digest: &str, client_id: &str, now: i64) -> StoreResult<RedeemOutcome> {
        let mut tx = self.pool.begin().await?;
        let fresh: Option<CodeRecord> = sqlx::query_as(
            "UPDATE authorization_codes SET consumed_at = $2 WHERE digest = $1 AND consumed_at IS NULL AND client_id = $3
             RETURNING grant_id, client_id, user_id, redirect_uri, scope, audience, code_challenge, expires_at",
        )
        .bind(digest)
        .bind(now)
        .bind(client_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(code) = fresh {
            sqlx::query("UPDATE grants SET redeemed_at = $2 WHERE id = $1 AND redeemed_at IS NULL")
                .bind(&code.grant_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(RedeemOutcome::Redeemed(code));
        }
        tx.rollback().await?;
        let seen: Option<(String, String, Option<i64>)> =
            sqlx::query_as("SELECT grant_id, client_id, consumed_at FROM authorization_codes WHERE digest = $1")
                .bind(digest)
                .fetch_optional(&self.pool)
                .await?;
        Ok(match seen {
            // Only the code's own client can trigger the replay defence; anyone else holding
            // a leaked code must not be able to revoke the grant it produced.
            Some((grant_id, owner, Some(_))) if owner == client_id => RedeemOutcome::AlreadyUsed { grant_id },
            Some(_) => RedeemOutcome::OtherClient,
            None => RedeemOutcome::Unknown,
        })
    }

    pub async fn insert_refresh_token(&self, digest: &str, grant_id: &str, expires_at: i64) -> StoreResult<()> {
        sqlx::query("INSERT INTO refresh_tokens (digest, grant_id, expires_at) VALUES ($1, $2, $3)")
            .bind(digest)
            .bind(grant_id)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Uses a refresh token up in one atomic step: of two concurrent
    /// refreshes with the same token exactly one gets `Fresh`.
    /// Uses a refresh token up: [`RefreshOutcome::Fresh`] for exactly one
    /// caller; a token used up at most `grace` seconds ago is honoured once
    /// more ([`RefreshOutcome::WithinGrace`]), and any other return is reuse.
    pub async fn use_refresh_token(&self, digest: &str, now: i64, grace: i64) -> StoreResult<RefreshOutcome> {
        let done = sqlx::query("UPDATE refresh_tokens SET used_at = $2 WHERE digest = $1 AND used_at IS NULL")
            .bind(digest)
            .bind(now)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 1 {
            return Ok(RefreshOutcome::Fresh);
        }
        if grace > 0 {
            let again = sqlx::query(
                "UPDATE refresh_tokens SET regranted_at = $2
                 WHERE digest = $1 AND used_at >= $3 AND regranted_at IS NULL",
            )
            .bind(digest)
            .bind(now)
            .bind(now - grace)
            .execute(&self.pool)
            .await?;
            if again.rows_affected() == 1 {
                return Ok(RefreshOutcome::WithinGrace);
            }
        }
        let used: Option<(String,)> = sqlx::query_as("SELECT grant_id FROM refresh_tokens WHERE digest = $1")
            .bind(digest)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match used {
            Some((grant_id,)) => RefreshOutcome::Reused { grant_id },
            None => RefreshOutcome::Unknown,
        })
    }

    /// The refresh token's grant, without using it (revocation, introspection).
    pub async fn refresh_token_grant(&self, digest: &str) -> StoreResult<Option<(String, i64, bool)>> {
        let row: Option<(String, i64, Option<i64>)> =
            sqlx::query_as("SELECT grant_id, expires_at, used_at FROM refresh_tokens WHERE digest = $1")
                .bind(digest)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(g, exp, used)| (g, exp, used.is_some())))
    }

    pub async fn consent(&self, user_id: &str, client_id: &str) -> StoreResult<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT scope FROM consents WHERE user_id = $1 AND client_id = $2")
            .bind(user_id)
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(s,)| s))
    }

    pub async fn save_consent(&self, user_id: &str, client_id: &str, scope: &str, now: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO consents (user_id, client_id, scope, granted_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, client_id) DO UPDATE SET scope = $3, granted_at = $4",
        )
        .bind(user_id)
        .bind(client_id)
        .bind(scope)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn delete_consent(&self, user_id: &str, client_id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM consents WHERE user_id = $1 AND client_id = $2")
            .bind(user_id)
            .bind(client_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// (client_id, client name, scope) for each client the user has consented to.
    pub async fn consents_of(&self, user_id: &str) -> StoreResult<Vec<(String, String, String)>> {
        Ok(sqlx::query_as(
            "SELECT c.client_id, cl.name, c.scope FROM consents c JOIN clients cl ON cl.client_id = c.client_id
             WHERE c.user_id = $1 ORDER BY cl.name",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records an assertion's `jti`; `false` when it was seen before (a replay).
    pub async fn record_assertion_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> StoreResult<bool> {
        sqlx::query("DELETE FROM assertion_jtis WHERE expires_at < $1").bind(now).execute(&self.pool).await?;
        let done = sqlx::query(
            "INSERT INTO assertion_jtis (client_id, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT (client_id, jti) DO NOTHING",
        )
        .bind(client_id)
        .bind(jti)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::stores;

    fn grant(id: &str) -> GrantRecord {
        GrantRecord {
            id: id.into(),
            client_id: "c".into(),
            user_id: Some("u".into()),
            scope: "s".into(),
            audience: "http://rs".into(),
            created_at: 1,
            revoked_at: None,
        }
    }

    /// A code of grant `grant_id` for client `c` and user `u`, expiring at `expires_at`.
    fn new_code<'a>(digest: &'a str, grant_id: &'a str, expires_at: i64) -> NewCode<'a> {
        NewCode {
            digest,
            grant_id,
            client_id: "c",
            user_id: "u",
            redirect_uri: None,
            scope: "s",
            audience: "http://rs",
            code_challenge: None,
            expires_at,
        }
    }

    #[tokio::test]
    async fn a_code_is_redeemed_once_then_reported_used() {
        for store in stores().await {
            store.insert_grant(&grant("g1")).await.unwrap();
            let code = NewCode {
                digest: "d1",
                grant_id: "g1",
                client_id: "c",
                user_id: "u",
                redirect_uri: None,
                scope: "s",
                audience: "http://rs",
                code_challenge: Some("x"),
                expires_at: 100,
            };
            store.insert_code(&code).await.unwrap();
            let other = store.redeem_code("d1", "other", 9).await.unwrap();
            assert!(matches!(other, RedeemOutcome::OtherClient), "another client's attempt does not burn it");
            let first = store.redeem_code("d1", "c", 10).await.unwrap();
            assert!(matches!(first, RedeemOutcome::Redeemed(c) if c.grant_id == "g1"));
            assert!(
                matches!(store.redeem_code("d1", "c", 11).await.unwrap(), RedeemOutcome::AlreadyUsed { grant_id } if grant_id == "g1")
            );
            let leaked = store.redeem_code("d1", "other", 12).await.unwrap();
            assert!(matches!(leaked, RedeemOutcome::OtherClient), "another client cannot trigger the replay defence");
            assert!(matches!(store.redeem_code("nope", "c", 11).await.unwrap(), RedeemOutcome::Unknown));
        }
    }

    #[tokio::test]
    async fn concurrent_refreshes_of_one_token_yield_exactly_one_fresh() {
        for store in stores().await {
            store.insert_refresh_token("r1", "g1", 1000).await.unwrap();
            let (a, b) = tokio::join!(store.use_refresh_token("r1", 5, 0), store.use_refresh_token("r1", 5, 0));
            let fresh = [a.unwrap(), b.unwrap()].iter().filter(|o| matches!(o, RefreshOutcome::Fresh)).count();
            assert_eq!(fresh, 1);
            assert!(matches!(store.use_refresh_token("r1", 6, 0).await.unwrap(), RefreshOutcome::Reused { .. }));
        }
    }

    #[tokio::test]
    async fn revoking_is_idempotent_and_visible_to_other_instances() {
        for store in stores().await {
            store.insert_grant(&grant("g2")).await.unwrap();
            store.revoke_grant("g2", 50).await.unwrap();
            store.revoke_grant("g2", 60).await.unwrap();
            assert!(store.is_grant_revoked("g2").await.unwrap());
            assert_eq!(store.revoked_since(40).await.unwrap(), vec![("g2".to_string(), 50)]);
            assert!(store.revoked_since(51).await.unwrap().is_empty());
            assert_eq!(store.grant("g2").await.unwrap().unwrap().revoked_at, Some(50));
        }
    }

    #[tokio::test]
    async fn an_assertion_jti_is_accepted_once() {
        for store in stores().await {
            assert!(store.record_assertion_jti("c", "j", 100, 1).await.unwrap());
            assert!(!store.record_assertion_jti("c", "j", 100, 2).await.unwrap());
            assert!(store.record_assertion_jti("other", "j", 100, 2).await.unwrap());
        }
    }

    #[tokio::test]
    async fn pruning_forgets_unredeemed_grants_expired_codes_and_refresh_tokens_and_keeps_the_rest() {
        for store in stores().await {
            let code = |digest, grant_id| new_code(digest, grant_id, 100);
            // g1 never redeemed; g2 redeemed (tokens issued); g3 holds a live refresh token.
            for (g, d) in [("g1", "d1"), ("g2", "d2"), ("g3", "d3")] {
                store.insert_grant(&grant(g)).await.unwrap();
                store.insert_code(&code(d, g)).await.unwrap();
            }
            assert!(matches!(store.redeem_code("d2", "c", 50).await.unwrap(), RedeemOutcome::Redeemed(_)));
            store.insert_refresh_token("r-old", "g2", 200).await.unwrap();
            store.insert_refresh_token("r-live", "g3", 10_000_000).await.unwrap();

            let day = 86_400;
            assert_eq!(
                store.prune_authorizations(100 + day - 1).await.unwrap(),
                0,
                "nothing is a day past its end yet"
            );
            assert_eq!(
                store.prune_authorizations(200 + day + 1).await.unwrap(),
                1 + 3 + 1,
                "g1, codes d1, d2 and d3, r-old"
            );
            assert!(store.grant("g1").await.unwrap().is_none(), "never redeemed");
            assert!(store.grant("g2").await.unwrap().is_some(), "redeemed: it says the client had tokens");
            assert!(store.grant("g3").await.unwrap().is_some(), "a live refresh token");
            assert_eq!(store.redeemed_grants("u", "c").await.unwrap().len(), 1);
            assert!(store.refresh_token_grant("r-old").await.unwrap().is_none());
            assert!(store.refresh_token_grant("r-live").await.unwrap().is_some());
        }
    }

    #[tokio::test]
    async fn pruning_takes_codes_in_batches_and_keeps_a_redeemed_one_for_replays_and_the_view() {
        for store in stores().await {
            let day = 86_400;
            async fn code(store: &Store, digest: &str, grant_id: &str, expires_at: i64) {
                store.insert_grant(&grant(grant_id)).await.unwrap();
                store.insert_code(&new_code(digest, grant_id, expires_at)).await.unwrap();
            }
            // More codes than fit in a batch, issued at 0 and expired at 600, never redeemed.
            let stale = 3 * super::super::PRUNE_BATCH as usize + 1;
            for i in 0..stale {
                code(&store, &format!("stale-{i}"), &format!("g-stale-{i}"), 600).await;
            }
            // Redeemed long ago; redeemed just now (its code lives until 2 * day + 600).
            code(&store, "old", "g-old", 600).await;
            code(&store, "recent", "g-recent", 2 * day + 600).await;
            for digest in ["old", "recent"] {
                assert!(matches!(store.redeem_code(digest, "c", 500).await.unwrap(), RedeemOutcome::Redeemed(_)));
            }
            let view = |grants: Vec<GrantRecord>| grants.into_iter().map(|g| g.id).collect::<Vec<_>>();
            let before = view(store.redeemed_grants("u", "c").await.unwrap());
            assert_eq!(before, ["g-old", "g-recent"]);

            let now = 2 * day + 300;
            assert_eq!(
                store.prune_authorizations(now).await.unwrap(),
                2 * stale as u64 + 1,
                "the stale grants and codes, and the old code"
            );
            for i in 0..stale {
                assert!(store.grant(&format!("g-stale-{i}")).await.unwrap().is_none());
                assert!(matches!(
                    store.redeem_code(&format!("stale-{i}"), "c", now).await.unwrap(),
                    RedeemOutcome::Unknown
                ));
            }
            assert_eq!(
                view(store.redeemed_grants("u", "c").await.unwrap()),
                before,
                "the home page's view is unchanged"
            );
            assert!(
                matches!(store.redeem_code("recent", "c", now).await.unwrap(), RedeemOutcome::AlreadyUsed { grant_id } if grant_id == "g-recent"),
                "a code within its life is kept, so its replay is still recognised"
            );
            assert!(matches!(store.redeem_code("old", "c", now).await.unwrap(), RedeemOutcome::Unknown));
            assert_eq!(store.prune_authorizations(now).await.unwrap(), 0, "a second pass finds nothing");
        }
    }
}
