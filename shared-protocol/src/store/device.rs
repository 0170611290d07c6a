//! Device authorization requests (RFC 8628) and the kiosk's audit log. The
//! audit log is append-only: this module has no way to change or delete a row.

use super::{Store, StoreResult};
use crate::text_enum::text_enum;

super::stored_as_text!(DeviceStatus, DeviceDecision, ActorRole, DecidedVia);

text_enum! {
    /// Where a device authorization request (RFC 8628 3.1) stands.
    pub enum DeviceStatus {
        /// Waiting for the user (or staff) to answer; the device polls.
        Pending = "pending",
        Approved = "approved",
        Denied = "denied",
        /// An approval whose tokens were issued (single use).
        Redeemed = "redeemed",
        /// Ended by the account holder from their home page.
        Withdrawn = "withdrawn",
        /// Ended because newer requests for the same account replaced it.
        Superseded = "superseded",
    }
}

text_enum! {
    /// What an audit entry records.
    pub enum DeviceDecision {
        Approve = "approve",
        Deny = "deny",
        Withdraw = "withdraw",
    }
}

text_enum! {
    /// Who took a decision: the account holder or a staff member for them.
    pub enum ActorRole {
        User = "user",
        Staff = "staff",
    }
}

text_enum! {
    /// Where a decision was taken.
    pub enum DecidedVia {
        /// The verification page (RFC 8628 3.3).
        Device = "device",
        Kiosk = "kiosk",
        /// The account holder's home page (taking access back).
        Home = "home",
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeviceRequest {
    pub device_code_digest: String,
    pub user_code: String,
    pub client_id: String,
    pub scope: String,
    pub hint_user_id: Option<String>,
    pub status: DeviceStatus,
    pub user_id: Option<String>,
    pub expires_at: i64,
    pub redeem_by: Option<i64>,
    pub poll_interval: i64,
    pub last_poll_at: Option<i64>,
    pub created_at: i64,
    pub decided_at: Option<i64>,
    /// The client address that asked (for the per-address cap).
    pub client_address: Option<String>,
}

/// A pending request for the kiosk's list, with names to show.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingRequest {
    pub client_name: String,
    pub scope: String,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: i64,
    pub request_id: String,
    pub client_id: String,
    pub scope: String,
    pub user_code: String,
    pub account_id: String,
    pub actor_id: String,
    pub actor_role: ActorRole,
    pub via: DecidedVia,
    pub decision: DeviceDecision,
}

/// An audit entry with the account's and the actor's names.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NamedAuditEntry {
    pub at: i64,
    /// The device's name (`DEVICE_NAME`), or its client id once the client is gone.
    pub device: String,
    pub user_code: String,
    pub actor_role: ActorRole,
    pub via: DecidedVia,
    pub decision: DeviceDecision,
    pub account: String,
    pub actor: String,
}

/// A device's name as the kiosk shows it, from the `clients` row `c`: a
/// name a device chose for itself is its own claim, and says so (RFC 7591 5).
const DEVICE_NAME: &str = "CASE WHEN c.registered_at IS NULL THEN c.name ELSE c.name || ' (registered itself)' END";

const COLUMNS: &str = "device_code_digest, user_code, client_id, scope, hint_user_id, status, user_id, expires_at, \
     redeem_by, poll_interval, last_poll_at, created_at, decided_at, client_address";

impl Store {
    /// Stores a new request, `seq` ordering it among others (newest last);
    /// `false` when the user code is taken (pick another).
    pub async fn insert_device_request(&self, r: &DeviceRequest, seq: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO device_requests (device_code_digest, user_code, client_id, scope, hint_user_id, status,
                 expires_at, poll_interval, created_at, client_address, created_seq)
             VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
        )
        .bind(&r.device_code_digest)
        .bind(&r.user_code)
        .bind(&r.client_id)
        .bind(&r.scope)
        .bind(&r.hint_user_id)
        .bind(r.expires_at)
        .bind(r.poll_interval)
        .bind(r.created_at)
        .bind(&r.client_address)
        .bind(seq)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// How many requests from `address` still wait for a decision.
    pub async fn pending_from_address(&self, address: &str, now: i64) -> StoreResult<i64> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM device_requests WHERE client_address = $1 AND status = 'pending' AND expires_at > $2",
        )
        .bind(address)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(n)
    }

    /// Ends an account's waiting requests beyond the newest `keep` (status
    /// `superseded`), so a flood naming the account cannot pile up.
    pub async fn supersede_pending(&self, user_id: &str, keep: i64, now: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE device_requests SET status = 'superseded', decided_at = $3
             WHERE hint_user_id = $1 AND status = 'pending' AND expires_at > $3
               AND device_code_digest NOT IN (
                 SELECT device_code_digest FROM device_requests
                 WHERE hint_user_id = $1 AND status = 'pending' AND expires_at > $3
                 ORDER BY created_seq DESC LIMIT $2)",
        )
        .bind(user_id)
        .bind(keep)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub async fn device_request(&self, device_code_digest: &str) -> StoreResult<Option<DeviceRequest>> {
        Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM device_requests WHERE device_code_digest = $1"))
            .bind(device_code_digest)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn device_request_by_user_code(&self, user_code: &str) -> StoreResult<Option<DeviceRequest>> {
        Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM device_requests WHERE user_code = $1"))
            .bind(user_code)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Approves or denies a pending request for `entry.account_id` and writes
    /// the audit entry in the same transaction: no decision without its record.
    /// `false` when the request was no longer pending, had expired, or names
    /// another account.
    pub async fn decide_device_request(
        &self,
        entry: &AuditEntry,
        status: DeviceStatus,
        redeem_by: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE device_requests SET status = $2, user_id = $3, redeem_by = $4, decided_at = $5
             WHERE device_code_digest = $1 AND status = 'pending' AND expires_at > $5
               AND (hint_user_id IS NULL OR hint_user_id = $3)",
        )
        .bind(&entry.request_id)
        .bind(status)
        .bind(&entry.account_id)
        .bind(redeem_by)
        .bind(entry.at)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        insert_audit(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The account holder took a device's access back: approvals not yet
    /// redeemed and requests still waiting for this account end too, audited.
    pub async fn withdraw_device_requests(
        &self,
        user_id: &str,
        client_id: &str,
        now: i64,
        seq: i64,
    ) -> StoreResult<Vec<AuditEntry>> {
        let mut tx = self.pool.begin().await?;
        let mut entries = Vec::new();
        let ended: Vec<DeviceRequest> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM device_requests WHERE client_id = $2
               AND ((status = 'approved' AND user_id = $1) OR (status = 'pending' AND hint_user_id = $1))"
        ))
        .bind(user_id)
        .bind(client_id)
        .fetch_all(&mut *tx)
        .await?;
        for (i, r) in ended.iter().enumerate() {
            sqlx::query(
                "UPDATE device_requests SET status = 'withdrawn', decided_at = $2 WHERE device_code_digest = $1",
            )
            .bind(&r.device_code_digest)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let entry = AuditEntry {
                seq: seq + i as i64,
                at: now,
                request_id: r.device_code_digest.clone(),
                client_id: r.client_id.clone(),
                scope: r.scope.clone(),
                user_code: r.user_code.clone(),
                account_id: user_id.to_owned(),
                actor_id: user_id.to_owned(),
                actor_role: ActorRole::User,
                via: DecidedVia::Home,
                decision: DeviceDecision::Withdraw,
            };
            insert_audit(&mut tx, &entry).await?;
            entries.push(entry);
        }
        tx.commit().await?;
        Ok(entries)
    }

    /// Records a poll (RFC 8628 3.5); `interval` is the interval from now on.
    pub async fn record_device_poll(&self, digest: &str, now: i64, interval: i64) -> StoreResult<()> {
        sqlx::query("UPDATE device_requests SET last_poll_at = $2, poll_interval = $3 WHERE device_code_digest = $1")
            .bind(digest)
            .bind(now)
            .bind(interval)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Uses up an approved request; `false` when it was not approved (any more).
    pub async fn redeem_device_request(&self, digest: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE device_requests SET status = 'redeemed' WHERE device_code_digest = $1 AND status = 'approved'",
        )
        .bind(digest)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The requests waiting for one account, newest first, for the kiosk.
    pub async fn pending_for_account(&self, user_id: &str, now: i64, limit: i64) -> StoreResult<Vec<PendingRequest>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {DEVICE_NAME} AS client_name, d.scope, d.created_at, d.expires_at
             FROM device_requests d JOIN clients c ON c.client_id = d.client_id
             WHERE d.hint_user_id = $1 AND d.status = 'pending' AND d.expires_at > $2
             ORDER BY d.created_seq DESC LIMIT $3"
        ))
        .bind(user_id)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Forgets requests that can no longer be decided or redeemed since
    /// `before`, and requests newer ones replaced (`superseded`) since
    /// `superseded_before`, so a flood naming one account leaves little
    /// behind (the audit log keeps what was decided about them).
    pub async fn prune_device_requests(&self, before: i64, superseded_before: i64) -> StoreResult<()> {
        sqlx::query(
            "DELETE FROM device_requests WHERE (status = 'approved' AND redeem_by < $1)
                 OR (status <> 'approved' AND expires_at < $1)
                 OR (status = 'superseded' AND decided_at < $2)",
        )
        .bind(before)
        .bind(superseded_before)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The most recent decisions, newest first, with account and actor names.
    pub async fn recent_device_audit(&self, limit: i64) -> StoreResult<Vec<NamedAuditEntry>> {
        Ok(sqlx::query_as(&format!(
            "SELECT a.at, COALESCE({DEVICE_NAME}, a.client_id) AS device, a.user_code, a.actor_role, a.via, a.decision,
                    acc.username AS account, act.username AS actor
             FROM device_audit a JOIN users acc ON acc.id = a.account_id JOIN users act ON act.id = a.actor_id
             LEFT JOIN clients c ON c.client_id = a.client_id
             ORDER BY a.at DESC, a.seq DESC LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// The only statement that writes the audit log: an insert.
async fn insert_audit(tx: &mut sqlx::Transaction<'_, sqlx::Any>, e: &AuditEntry) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO device_audit (seq, at, request_id, client_id, scope, user_code, account_id, actor_id, actor_role,
             via, decision)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(e.seq)
    .bind(e.at)
    .bind(&e.request_id)
    .bind(&e.client_id)
    .bind(&e.scope)
    .bind(&e.user_code)
    .bind(&e.account_id)
    .bind(&e.actor_id)
    .bind(e.actor_role)
    .bind(e.via)
    .bind(e.decision)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
