//! The link's own state: the tokens held from the peer, the persisted link
//! flows (a state machine whose transitions are compare-and-set updates, so
//! double submits and replays cannot run a step twice) and the trace.

use super::{Store, StoreResult};
use crate::text_enum::text_enum;
use crate::tokens::secrets::{AccessToken, PkceVerifier, RefreshToken};

super::stored_as_text!(FlowStep, Leg);

text_enum! {
    /// Where a link attempt stands; the state machine is drawn in `link/mod.rs`.
    pub enum FlowStep {
        /// Sent to the peer's `/authorize` (leg A); waiting for the callback (leg B).
        Authorizing = "authorizing",
        /// Holding the peer's token; waiting for the user to answer its reciprocal request (leg E).
        Consent = "consent",
        /// Talking to the peer: redeeming its code (legs C–D) or pushing ours (leg F).
        Sending = "sending",
        Done = "done",
        /// Stopped with a message; the user may retry.
        Failed = "failed",
    }
}

text_enum! {
    /// The messages of a link as draft-ietf-oauth-reciprocal's Figure 1 letters
    /// them (`link/trace.rs` maps each to what this project sends).
    pub enum Leg {
        A = "A",
        B = "B",
        C = "C",
        D = "D",
        E = "E",
        F = "F",
        G = "G",
        /// Not in the figure: the RFC 7009 revocation that unlinks.
        Revocation = "-",
    }
}

/// Tokens the peer issued to this party's client for one user.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PeerToken {
    pub user_id: String,
    pub access_token: AccessToken,
    pub refresh_token: Option<RefreshToken>,
    pub scope: String,
    pub expires_at: i64,
    /// Why the token stopped working, when it did.
    pub broken: Option<String>,
    pub updated_at: i64,
}

/// One link attempt (or authorization update) of one user.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LinkFlow {
    pub id: String,
    pub user_id: String,
    pub step: FlowStep,
    pub state_digest: Option<String>,
    pub pkce_verifier: Option<PkceVerifier>,
    pub reciprocal_scope: Option<String>,
    pub message: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl LinkFlow {
    /// A failed attempt whose second direction may be sent again: it holds
    /// the scope the user consented to ([`Store::ask_consent`]).
    pub fn can_retry(&self) -> bool {
        self.step == FlowStep::Failed && self.reciprocal_scope.is_some()
    }
}

/// One protocol message of a link attempt, as shown on `/link/trace`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TraceEvent {
    pub seq: i64,
    pub user_id: String,
    pub attempt: String,
    pub leg: Leg,
    pub sender: String,
    pub receiver: String,
    pub summary: String,
    pub at: i64,
}

const FLOW_COLUMNS: &str =
    "id, user_id, step, state_digest, pkce_verifier, reciprocal_scope, message, created_at, updated_at";

impl Store {
    pub async fn peer_token(&self, user_id: &str) -> StoreResult<Option<PeerToken>> {
        Ok(sqlx::query_as(
            "SELECT user_id, access_token, refresh_token, scope, expires_at, broken, updated_at
             FROM peer_tokens WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Stores (or replaces) the tokens held for a user; they are usable again.
    pub async fn save_peer_token(&self, t: &PeerToken) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO peer_tokens (user_id, access_token, refresh_token, scope, expires_at, broken, updated_at)
             VALUES ($1, $2, $3, $4, $5, NULL, $6)
             ON CONFLICT (user_id) DO UPDATE SET access_token = $2, refresh_token = $3, scope = $4,
                 expires_at = $5, broken = NULL, updated_at = $6",
        )
        .bind(&t.user_id)
        .bind(&t.access_token)
        .bind(&t.refresh_token)
        .bind(&t.scope)
        .bind(t.expires_at)
        .bind(t.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Replaces the tokens after a refresh, but only if nobody refreshed them
    /// meanwhile (the refresh token presented is still the one stored).
    pub async fn replace_refreshed_token(&self, previous_refresh: &RefreshToken, t: &PeerToken) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE peer_tokens SET access_token = $3, refresh_token = $4, scope = $5, expires_at = $6,
                 broken = NULL, updated_at = $7
             WHERE user_id = $1 AND refresh_token = $2",
        )
        .bind(&t.user_id)
        .bind(previous_refresh)
        .bind(&t.access_token)
        .bind(&t.refresh_token)
        .bind(&t.scope)
        .bind(t.expires_at)
        .bind(t.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn mark_peer_token_broken(&self, user_id: &str, why: &str, now: i64) -> StoreResult<()> {
        sqlx::query("UPDATE peer_tokens SET broken = $2, updated_at = $3 WHERE user_id = $1")
            .bind(user_id)
            .bind(why)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Makes the held access token count as expired, so the next use refreshes it.
    pub async fn mark_peer_token_expired(&self, user_id: &str) -> StoreResult<()> {
        sqlx::query("UPDATE peer_tokens SET expires_at = 0 WHERE user_id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets the tokens held for a user, returning them so they can be revoked at the peer.
    pub async fn take_peer_token(&self, user_id: &str) -> StoreResult<Option<PeerToken>> {
        let held = self.peer_token(user_id).await?;
        if let Some(t) = &held {
            let gone = sqlx::query("DELETE FROM peer_tokens WHERE user_id = $1 AND access_token = $2")
                .bind(user_id)
                .bind(&t.access_token)
                .execute(&self.pool)
                .await?;
            // Someone else took (or replaced) them first: theirs to revoke.
            if gone.rows_affected() == 0 {
                return Ok(None);
            }
        }
        Ok(held)
    }

    pub async fn insert_flow(&self, f: &LinkFlow) -> StoreResult<()> {
        sqlx::query(&format!("INSERT INTO link_flows ({FLOW_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"))
            .bind(&f.id)
            .bind(&f.user_id)
            .bind(f.step)
            .bind(&f.state_digest)
            .bind(&f.pkce_verifier)
            .bind(&f.reciprocal_scope)
            .bind(&f.message)
            .bind(f.created_at)
            .bind(f.updated_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn flow(&self, id: &str) -> StoreResult<Option<LinkFlow>> {
        Ok(sqlx::query_as(&format!("SELECT {FLOW_COLUMNS} FROM link_flows WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn flow_by_state(&self, state_digest: &str) -> StoreResult<Option<LinkFlow>> {
        Ok(sqlx::query_as(&format!("SELECT {FLOW_COLUMNS} FROM link_flows WHERE state_digest = $1"))
            .bind(state_digest)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The user's most recent flow.
    pub async fn latest_flow(&self, user_id: &str) -> StoreResult<Option<LinkFlow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {FLOW_COLUMNS} FROM link_flows WHERE user_id = $1 ORDER BY updated_at DESC, created_at DESC LIMIT 1"
        ))
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Moves a flow from step `from` to step `to`; false when it was not at
    /// `from` (another request took the step first).
    pub async fn advance_flow(
        &self,
        id: &str,
        from: FlowStep,
        to: FlowStep,
        message: Option<&str>,
        now: i64,
    ) -> StoreResult<bool> {
        let done =
            sqlx::query("UPDATE link_flows SET step = $3, message = $4, updated_at = $5 WHERE id = $1 AND step = $2")
                .bind(id)
                .bind(from)
                .bind(to)
                .bind(message)
                .bind(now)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends the user's attempts that wait for them (a reciprocal request not
    /// yet answered, a failed second direction that could be sent again):
    /// the link they were about has changed since, so their questions are
    /// void. Their place in time is kept, so the newest attempt stays newest.
    pub async fn close_waiting_flows(&self, user_id: &str, message: &str) -> StoreResult<u64> {
        // A failed attempt waits only when its second direction may be sent again (it holds a scope).
        let done = sqlx::query(
            "UPDATE link_flows SET step = $2, message = $3
             WHERE user_id = $1 AND (step = $4 OR (step = $5 AND reciprocal_scope IS NOT NULL))",
        )
        .bind(user_id)
        .bind(FlowStep::Done)
        .bind(message)
        .bind(FlowStep::Consent)
        .bind(FlowStep::Failed)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Moves a flow from `sending` to `consent` and records what the peer asks
    /// for, in one statement: a flow that holds a scope has always reached
    /// the consent page, so "Try again" after a crash can never push a scope
    /// the user was not asked about.
    pub async fn ask_consent(&self, id: &str, scope: &str, now: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE link_flows SET step = $2, reciprocal_scope = $3, updated_at = $4 WHERE id = $1 AND step = $5",
        )
        .bind(id)
        .bind(FlowStep::Consent)
        .bind(scope)
        .bind(now)
        .bind(FlowStep::Sending)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn insert_trace(&self, e: &TraceEvent) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO link_trace (seq, user_id, attempt, leg, sender, receiver, summary, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(e.seq)
        .bind(&e.user_id)
        .bind(&e.attempt)
        .bind(e.leg)
        .bind(&e.sender)
        .bind(&e.receiver)
        .bind(&e.summary)
        .bind(e.at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets trace events recorded before `trace_before` and finished
    /// flows last touched before `flows_before`, in batches.
    pub async fn prune_link_history(&self, trace_before: i64, flows_before: i64) -> StoreResult<()> {
        // Trace events have no key of their own: a batch takes every event of the seconds it selects.
        self.delete_in_batches("link_trace", "at", "at < $1", "at", trace_before).await?;
        // The same terms as the partial index `link_flows_finished`, so both backends use it.
        let finished = "step IN ('done', 'failed') AND updated_at < $1";
        self.delete_in_batches("link_flows", "id", finished, "updated_at", flows_before).await?;
        Ok(())
    }

    /// The user's most recent trace events, oldest first.
    pub async fn trace_of(&self, user_id: &str, limit: i64) -> StoreResult<Vec<TraceEvent>> {
        let mut events: Vec<TraceEvent> = sqlx::query_as(
            "SELECT seq, user_id, attempt, leg, sender, receiver, summary, at FROM link_trace
             WHERE user_id = $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        events.reverse();
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::stores;

    fn flow(id: &str, step: FlowStep) -> LinkFlow {
        LinkFlow {
            id: id.into(),
            user_id: "u1".into(),
            step,
            state_digest: Some(format!("sd-{id}")),
            pkce_verifier: None,
            reciprocal_scope: None,
            message: None,
            created_at: 10,
            updated_at: 10,
        }
    }

    #[actix_web::test]
    async fn a_flow_step_is_taken_once() {
        for store in stores().await {
            let (consent, sending) = (FlowStep::Consent, FlowStep::Sending);
            store.insert_flow(&flow("f1", consent)).await.unwrap();
            assert!(store.advance_flow("f1", consent, sending, None, 11).await.unwrap());
            assert!(!store.advance_flow("f1", consent, sending, None, 12).await.unwrap(), "second submit");
            let f = store.flow_by_state("sd-f1").await.unwrap().unwrap();
            assert_eq!(f.step, sending);
            assert_eq!(store.latest_flow("u1").await.unwrap().unwrap().id, "f1");
        }
    }

    #[actix_web::test]
    async fn only_attempts_that_wait_for_the_user_are_closed_and_keep_their_place() {
        for store in stores().await {
            let scoped = |id: &str, step| LinkFlow { reciprocal_scope: Some("a".into()), ..flow(id, step) };
            let flows = [
                (scoped("asking", FlowStep::Consent), FlowStep::Done),
                (scoped("retryable", FlowStep::Failed), FlowStep::Done),
                (flow("failed-at-start", FlowStep::Failed), FlowStep::Failed),
                (flow("at-the-peer", FlowStep::Authorizing), FlowStep::Authorizing),
                (scoped("sending", FlowStep::Sending), FlowStep::Sending),
            ];
            for (f, _) in &flows {
                store.insert_flow(f).await.unwrap();
            }
            assert_eq!(store.close_waiting_flows("u1", "Replaced.").await.unwrap(), 2);
            for (f, after) in &flows {
                let now = store.flow(&f.id).await.unwrap().unwrap();
                assert_eq!(now.step, *after, "{}", f.id);
                assert_eq!(now.updated_at, f.updated_at, "{} keeps its place in time", f.id);
                let closed = now.step != f.step;
                assert_eq!(now.message.as_deref() == Some("Replaced."), closed, "{}", f.id);
            }
        }
    }

    #[actix_web::test]
    async fn a_flow_holds_the_peers_request_only_once_it_waits_for_the_users_answer() {
        for store in stores().await {
            store.insert_flow(&flow("f1", FlowStep::Sending)).await.unwrap();
            assert!(store.ask_consent("f1", "a b", 11).await.unwrap());
            let f = store.flow("f1").await.unwrap().unwrap();
            assert_eq!((f.step, f.reciprocal_scope.as_deref()), (FlowStep::Consent, Some("a b")));
            // Not from any other step: a flow the user already answered keeps its scope.
            store.insert_flow(&flow("f2", FlowStep::Failed)).await.unwrap();
            assert!(!store.ask_consent("f2", "a", 12).await.unwrap());
            assert_eq!(store.flow("f2").await.unwrap().unwrap().reciprocal_scope, None);
        }
    }

    #[actix_web::test]
    async fn link_history_is_pruned_in_batches_and_unfinished_flows_stay() {
        for store in stores().await {
            // More events than fit in a batch, several within one second, some past the retention.
            let batch = crate::store::PRUNE_BATCH as i64;
            for seq in 0..3 * batch {
                let event = TraceEvent {
                    seq,
                    user_id: "u1".into(),
                    attempt: "a1".into(),
                    leg: Leg::A,
                    sender: "here".into(),
                    receiver: "peer".into(),
                    summary: "GET /authorize".into(),
                    at: 100 + seq / 2,
                };
                store.insert_trace(&event).await.unwrap();
            }
            let at = |id: &str, step, updated_at| LinkFlow { updated_at, ..flow(id, step) };
            for f in [
                at("done-old", FlowStep::Done, 10),
                at("failed-old", FlowStep::Failed, 11),
                at("pending-old", FlowStep::Authorizing, 10),
                at("done-new", FlowStep::Done, 500),
            ] {
                store.insert_flow(&f).await.unwrap();
            }
            for f in 0..batch {
                store.insert_flow(&at(&format!("done-{f}"), FlowStep::Done, 12 + f)).await.unwrap();
            }
            let cutoff = 100 + batch;
            store.prune_link_history(cutoff, 400).await.unwrap();
            let left = store.trace_of("u1", 10 * batch).await.unwrap();
            assert_eq!(left.len() as i64, batch, "the events of the seconds before the cutoff are gone");
            assert!(left.iter().all(|e| e.at >= cutoff));
            for gone in ["done-old", "failed-old", "done-0"] {
                assert!(store.flow(gone).await.unwrap().is_none(), "{gone}");
            }
            for kept in ["pending-old", "done-new"] {
                assert!(store.flow(kept).await.unwrap().is_some(), "{kept}");
            }
        }
    }

    #[actix_web::test]
    async fn a_refresh_replaces_tokens_only_if_nobody_else_did() {
        for store in stores().await {
            let t = PeerToken {
                user_id: "u1".into(),
                access_token: "at1".into(),
                refresh_token: Some("rt1".into()),
                scope: "player:read".into(),
                expires_at: 100,
                broken: None,
                updated_at: 1,
            };
            store.save_peer_token(&t).await.unwrap();
            let next = PeerToken { access_token: "at2".into(), refresh_token: Some("rt2".into()), ..t.clone() };
            assert!(store.replace_refreshed_token(&"rt1".into(), &next).await.unwrap());
            assert!(!store.replace_refreshed_token(&"rt1".into(), &next).await.unwrap(), "rt1 was already rotated");
            store.mark_peer_token_broken("u1", "refused", 5).await.unwrap();
            assert_eq!(store.peer_token("u1").await.unwrap().unwrap().broken.as_deref(), Some("refused"));
            assert_eq!(store.take_peer_token("u1").await.unwrap().unwrap().access_token.secret(), "at2");
            assert!(store.take_peer_token("u1").await.unwrap().is_none());
        }
    }
}
