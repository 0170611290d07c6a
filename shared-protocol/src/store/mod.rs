//! Storage behind one interface: one set of queries (`$n` placeholders) that
//! runs on SQLite (the embedded default) and PostgreSQL (several instances).
//! Secrets (codes, refresh tokens, client secrets) are stored as digests only.

mod audit;
mod authorization;
mod clients;
mod device;
mod keys;
mod link;
mod product;
mod sessions;
mod users;

use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Executor};

/// Reads and writes a [`text_enum!`](crate::text_enum) as TEXT, so rows carry
/// protocol states as enums and a value no variant names is a decode error.
macro_rules! stored_as_text {
    ($($name:ty),+) => {$(
        impl sqlx::Type<sqlx::Any> for $name {
            fn type_info() -> sqlx::any::AnyTypeInfo {
                <String as sqlx::Type<sqlx::Any>>::type_info()
            }
            fn compatible(ty: &sqlx::any::AnyTypeInfo) -> bool {
                <String as sqlx::Type<sqlx::Any>>::compatible(ty)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Any> for $name {
            fn decode(value: sqlx::any::AnyValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <String as sqlx::Decode<'r, sqlx::Any>>::decode(value)?;
                Ok(Self::try_from(text)?)
            }
        }

        impl<'q> sqlx::Encode<'q, sqlx::Any> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut <sqlx::Any as sqlx::Database>::ArgumentBuffer<'q>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<'q, sqlx::Any>>::encode(self.as_str(), buf)
            }
        }
    )+};
}
use stored_as_text;

pub use audit::{AuditLink, AuditRow};
pub use authorization::{CodeRecord, GrantRecord, NewCode, RedeemOutcome, RefreshOutcome};
pub use clients::ClientRecord;
pub use device::{
    ActorRole, AuditEntry, DecidedVia, DeviceDecision, DeviceRequest, DeviceStatus, NamedAuditEntry, PendingRequest,
};
pub use keys::KeyRecord;
pub use link::{FlowStep, Leg, LinkFlow, PeerToken, TraceEvent};
pub use sessions::SessionRecord;
pub use users::UserRecord;

#[derive(Debug)]
pub struct StoreError(pub sqlx::Error);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "database: {}", self.0)
    }
}
impl std::error::Error for StoreError {}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self(e)
    }
}
impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Self(sqlx::Error::Migrate(Box::new(e)))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// One step of the schema, applied once per database, in order.
struct SchemaChange {
    version: i64,
    description: &'static str,
    sql: &'static str,
    /// What PostgreSQL runs instead, where the dialects differ (triggers).
    postgres: Option<&'static str>,
}

const MIGRATIONS: &[SchemaChange] = &[
    SchemaChange {
        version: 1,
        description: "authorization server",
        sql: include_str!("../../migrations/0001_authorization_server.sql"),
        postgres: None,
    },
    SchemaChange {
        version: 2,
        description: "link",
        sql: include_str!("../../migrations/0002_link.sql"),
        postgres: None,
    },
    SchemaChange {
        version: 3,
        description: "device",
        sql: include_str!("../../migrations/0003_device.sql"),
        postgres: None,
    },
    SchemaChange {
        version: 4,
        description: "limits",
        sql: include_str!("../../migrations/0004_limits.sql"),
        postgres: None,
    },
    SchemaChange {
        version: 5,
        description: "key generations",
        sql: include_str!("../../migrations/0005_key_generations.sql"),
        postgres: None,
    },
    SchemaChange {
        version: 6,
        description: "refresh grace",
        sql: include_str!("../../migrations/0006_refresh_grace.sql"),
        postgres: None,
    },
    SchemaChange {
        version: 7,
        description: "product state",
        sql: include_str!("../../migrations/0007_product_state.sql"),
        postgres: None,
    },
    SchemaChange {
        version: 8,
        description: "registration",
        sql: include_str!("../../migrations/0008_registration.sql"),
        postgres: None,
    },
    SchemaChange {
        version: 9,
        description: "audit",
        sql: include_str!("../../migrations/0009_audit.sql"),
        postgres: None,
    },
    SchemaChange {
        version: 10,
        description: "audit append-only",
        sql: include_str!("../../migrations/0010_audit_append_only.sqlite.sql"),
        postgres: Some(include_str!("../../migrations/0010_audit_append_only.postgres.sql")),
    },
    SchemaChange {
        version: 11,
        description: "scale",
        sql: include_str!("../../migrations/0011_scale.sql"),
        postgres: None,
    },
    SchemaChange {
        version: 12,
        description: "client last used",
        sql: include_str!("../../migrations/0012_client_last_used.sql"),
        postgres: None,
    },
];

/// How many rows one prune statement deletes at most: each batch is its own
/// short statement, so pruning never holds locks the hot paths need for long.
/// (Tests use a small batch, so a few rows exercise several.)
const PRUNE_BATCH: u64 = if cfg!(test) { 4 } else { 1_000 };

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// The PostgreSQL URL, for the revocation listener; `None` on SQLite.
    postgres_url: Option<String>,
    /// User locks each hold a connection: at most a quarter of the pool per
    /// kind, so the queries run under locks always find one, and an update
    /// holding its lock while it waits for a refresh lock cannot starve it.
    lock_slots: [std::sync::Arc<tokio::sync::Semaphore>; 2],
}

/// What a [`UserLock`] serializes across instances, one user at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// Refreshing the token held from the peer (taken inside [`LockKind::Update`]).
    Refresh = 0,
    /// Changing what the peer may do: push, authorization update, deny, unlink.
    Update = 1,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("Store").field("postgres", &self.postgres_url.is_some()).finish_non_exhaustive()
    }
}

/// The PostgreSQL channel a revocation is announced on (payload: the grant id).
const REVOCATIONS_CHANNEL: &str = "grant_revoked";

impl Store {
    /// The most connections an instance opens unless told (`--database-max-connections`):
    /// SQLite has one writer anyway; ten per instance lets nine instances share
    /// PostgreSQL's default `max_connections` of 100 (three are reserved for superusers).
    pub const DEFAULT_MAX_CONNECTIONS_SQLITE: u32 = 4;
    pub const DEFAULT_MAX_CONNECTIONS_POSTGRES: u32 = 10;

    /// Connects with at most `max_connections` (or the backend's default),
    /// creating the SQLite file (and its folder) on first start, and migrates.
    pub async fn connect(database_url: &str, max_connections: Option<u32>) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        let is_sqlite = database_url.starts_with("sqlite:");
        let memory = database_url.contains(":memory:") || database_url.contains("mode=memory");
        let url = if is_sqlite && !memory { prepare_sqlite_file(database_url) } else { database_url.to_owned() };
        let options = AnyConnectOptions::from_str(&url)?;
        let mut pool = AnyPoolOptions::new().after_connect(|conn, _| {
            Box::pin(async move {
                if conn.backend_name().eq_ignore_ascii_case("sqlite") {
                    // WAL lets readers run beside the one writer; sqlx leaves the journal mode alone.
                    conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;")
                        .await?;
                }
                Ok(())
            })
        });
        pool = if memory {
            // An in-memory database lives as long as its one connection.
            pool.max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None)
        } else if is_sqlite {
            pool.max_connections(max_connections.unwrap_or(Self::DEFAULT_MAX_CONNECTIONS_SQLITE))
        } else {
            pool.max_connections(max_connections.unwrap_or(Self::DEFAULT_MAX_CONNECTIONS_POSTGRES))
        };
        let pool = pool.connect_with(options).await?;
        let slots = || {
            let n = (pool.options().get_max_connections() / 4).max(1) as usize;
            std::sync::Arc::new(tokio::sync::Semaphore::new(n))
        };
        let lock_slots = [slots(), slots()];
        let store = Self { pool, postgres_url: (!is_sqlite).then(|| database_url.to_owned()), lock_slots };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> StoreResult<()> {
        let migrations = MIGRATIONS
            .iter()
            .map(|m| {
                Migration::new(
                    m.version,
                    Cow::Borrowed(m.description),
                    MigrationType::Simple,
                    Cow::Borrowed(m.postgres.filter(|_| self.postgres_url.is_some()).unwrap_or(m.sql)),
                    false,
                )
            })
            .collect::<Vec<_>>();
        // Databases from before version 7 also list the parties' own version 100, now gone.
        let migrator =
            Migrator { migrations: Cow::Owned(migrations), ignore_missing: true, locking: true, no_tx: false };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// A named value that must be the same for every instance (e.g. the session key):
    /// the first instance to start writes it, the others read it.
    pub async fn setting_or_insert(&self, name: &str, value: &str) -> StoreResult<String> {
        sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(value)
            .execute(&self.pool)
            .await?;
        let (v,): (String,) =
            sqlx::query_as("SELECT value FROM settings WHERE name = $1").bind(name).fetch_one(&self.pool).await?;
        Ok(v)
    }

    /// On PostgreSQL, a listener for the revocations every instance
    /// announces ([`Store::revoke_grant`]); `None` on SQLite (one instance).
    pub(crate) async fn revocation_listener(&self) -> StoreResult<Option<RevocationListener>> {
        let Some(url) = &self.postgres_url else { return Ok(None) };
        // A pool of its own (one connection, no timeouts: it only reconnects), so closing it waits for that connection.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect(url)
            .await?;
        let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
        listener.listen(REVOCATIONS_CHANNEL).await?;
        Ok(Some(RevocationListener { listener, pool }))
    }

    /// Closes the pool once nothing else uses it (the server and the
    /// background work have stopped). On SQLite it first moves the
    /// write-ahead log into the database file, so the `.db` file alone is the
    /// whole database (a copy of it is a backup).
    pub(crate) async fn close(&self) -> StoreResult<()> {
        let checkpoint = match self.postgres_url {
            Some(_) => Ok(()),
            None => sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.pool).await.map(drop),
        };
        // Closed even when the checkpoint failed: closing the last connection checkpoints too.
        self.pool.close().await;
        Ok(checkpoint?)
    }

    /// Holds `kind` for `user_id` against every other instance until the
    /// returned guard is released or dropped: a PostgreSQL transaction-scoped
    /// advisory lock, taken on a connection of its own. SQLite is one
    /// instance, so there the guard is empty (callers hold an in-process lock too).
    pub async fn lock_user(&self, kind: LockKind, user_id: &str) -> StoreResult<UserLock> {
        let held = self.advisory_lock(kind, user_id, "SELECT true FROM (SELECT pg_advisory_xact_lock($1)) l").await?;
        Ok(held.unwrap_or(UserLock(None)))
    }

    /// [`Store::lock_user`] without waiting: `None` while another instance
    /// holds it. A lock held by an instance that died is free again, since
    /// PostgreSQL ends a dead connection's transaction.
    pub async fn try_lock_user(&self, kind: LockKind, user_id: &str) -> StoreResult<Option<UserLock>> {
        self.advisory_lock(kind, user_id, "SELECT pg_try_advisory_xact_lock($1)").await
    }

    /// Runs `take` (answering whether the lock on `$1` was taken) in a transaction of its own.
    async fn advisory_lock(&self, kind: LockKind, user_id: &str, take: &str) -> StoreResult<Option<UserLock>> {
        if self.postgres_url.is_none() {
            return Ok(Some(UserLock(None)));
        }
        #[allow(clippy::expect_used, reason = "the store never closes its lock-slot semaphores")]
        let slot = self.lock_slots[kind as usize].clone().acquire_owned().await.expect("the semaphore is never closed");
        let mut tx = self.pool.begin().await?;
        let (taken,): (bool,) = sqlx::query_as(&take.replace("$1", "hashtextextended($1, 0)"))
            .bind(format!("{kind:?}:{user_id}"))
            .fetch_one(&mut *tx)
            .await?;
        Ok(taken.then_some(UserLock(Some((tx, slot)))))
    }

    /// Deletes the rows of `table` that `filter` (binding `$1` to `bound`)
    /// selects, oldest (`order`) first, [`PRUNE_BATCH`] keys per statement,
    /// each statement its own transaction; `filter` and `order` name an
    /// indexed column, so each batch reads an index range, never the table.
    /// A `key` that is not unique deletes every row sharing a selected value.
    async fn delete_in_batches(
        &self,
        table: &str,
        key: &str,
        filter: &str,
        order: &str,
        bound: i64,
    ) -> StoreResult<u64> {
        let batch = format!("SELECT {key} FROM {table} WHERE {filter} ORDER BY {order} LIMIT {PRUNE_BATCH}");
        // PostgreSQL may join `IN (subquery)` by reading the whole table; an
        // array of the batch's keys it looks up through the key's index.
        let sql = if self.postgres_url.is_some() {
            format!("DELETE FROM {table} WHERE {key} = ANY(ARRAY({batch}))")
        } else {
            format!("DELETE FROM {table} WHERE {key} IN ({batch})")
        };
        let mut deleted = 0;
        loop {
            let done = sqlx::query(&sql).bind(bound).execute(&self.pool).await?.rows_affected();
            deleted += done;
            // Fewer than a batch: the selection ran out.
            if done < PRUNE_BATCH {
                return Ok(deleted);
            }
        }
    }

    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// The `LISTEN` for revocations ([`Store::revocation_listener`]).
pub(crate) struct RevocationListener {
    listener: sqlx::postgres::PgListener,
    pool: sqlx::PgPool,
}

impl RevocationListener {
    /// The next revocation announced, reconnecting first if the connection was lost.
    pub(crate) async fn recv(&mut self) -> StoreResult<sqlx::postgres::PgNotification> {
        Ok(self.listener.recv().await?)
    }

    /// Ends the `LISTEN` and waits until its connection is closed: sqlx
    /// closes it on a task of its own, which must run before the runtime ends.
    pub(crate) async fn close(self) {
        drop(self.listener);
        self.pool.close().await;
    }
}

/// A per-user lock across instances ([`Store::lock_user`]).
#[must_use = "the lock is released when this is dropped"]
pub struct UserLock(Option<(sqlx::Transaction<'static, sqlx::Any>, tokio::sync::OwnedSemaphorePermit)>);

impl UserLock {
    /// Releases the lock now (dropping it does too, once the connection is next used).
    pub async fn release(self) -> StoreResult<()> {
        if let Some((tx, _slot)) = self.0 {
            tx.commit().await?;
        }
        Ok(())
    }
}

/// `sqlite://data/x.db` → creates `data/` and asks sqlx to create the file.
fn prepare_sqlite_file(url: &str) -> String {
    let rest = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let path = rest.split('?').next().unwrap_or(rest);
    if let Some(dir) = Path::new(path).parent() {
        if !dir.as_os_str().is_empty() {
            let _ = std::fs::create_dir_all(dir);
        }
    }
    if url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

/// Test helpers: a fresh store per test, on SQLite in memory and, when
/// `TEST_DATABASE_URL` is set, on PostgreSQL in a schema of its own.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub async fn stores() -> Vec<Store> {
        let mut out = vec![Store::connect("sqlite::memory:", None).await.expect("sqlite in memory")];
        if let Some(url) = postgres_schema_url().await {
            out.push(Store::connect(&url, None).await.expect("postgres"));
        }
        out
    }

    #[actix_web::test]
    async fn the_pool_opens_at_most_what_it_is_told() {
        let file = std::env::temp_dir().join(format!("pool-{}.db", uuid::Uuid::new_v4().simple()));
        let sqlite = format!("sqlite://{}", file.display());
        let max = |s: &Store| s.pool.options().get_max_connections();
        assert_eq!(max(&Store::connect(&sqlite, None).await.unwrap()), Store::DEFAULT_MAX_CONNECTIONS_SQLITE);
        assert_eq!(max(&Store::connect(&sqlite, Some(2)).await.unwrap()), 2);
        // On PostgreSQL a user lock holds off a second instance until released.
        if let Some(url) = postgres_schema_url().await {
            let (one, two) = (Store::connect(&url, None).await.unwrap(), Store::connect(&url, None).await.unwrap());
            let held = one.lock_user(LockKind::Update, "u1").await.unwrap();
            let waiting = tokio::spawn(async move { two.lock_user(LockKind::Update, "u1").await.map(|l| (l, two)) });
            let other = one.lock_user(LockKind::Refresh, "u1").await.unwrap();
            other.release().await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            assert!(!waiting.is_finished(), "the second instance waits for the first's lock");
            held.release().await.unwrap();
            let (lock, _two) = waiting.await.unwrap().unwrap();
            lock.release().await.unwrap();
        }
        if let Some(url) = postgres_schema_url().await {
            assert_eq!(max(&Store::connect(&url, None).await.unwrap()), Store::DEFAULT_MAX_CONNECTIONS_POSTGRES);
            assert_eq!(max(&Store::connect(&url, Some(3)).await.unwrap()), 3);
        }
    }

    /// On PostgreSQL a user lock asked for without waiting is refused while
    /// another instance holds it, and free once that instance's connections
    /// are gone, as when it is killed: what tells a flow left at `sending` by
    /// a dead instance from one still being sent.
    #[actix_web::test]
    async fn a_user_lock_is_free_again_once_its_holder_is_gone() {
        let Some(url) = postgres_schema_url().await else { return };
        let (one, two) = (Store::connect(&url, None).await.unwrap(), Store::connect(&url, None).await.unwrap());
        let held = one.lock_user(LockKind::Update, "u1").await.unwrap();
        assert!(two.try_lock_user(LockKind::Update, "u1").await.unwrap().is_none(), "held by the first instance");
        let other = two.try_lock_user(LockKind::Refresh, "u1").await.unwrap().expect("another kind is free");
        other.release().await.unwrap();
        // The first instance dies: its transaction is never committed, its connections close.
        drop(held);
        one.pool.close().await;
        let mut free = None;
        for _ in 0..100 {
            free = two.try_lock_user(LockKind::Update, "u1").await.unwrap();
            if free.is_some() {
                break;
            }
            // PostgreSQL ends the closed session's backend on its own schedule.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        free.expect("the lock is free once its holder is gone").release().await.unwrap();
    }

    /// A URL to a new, empty schema in the test database.
    pub async fn postgres_schema_url() -> Option<String> {
        let base = std::env::var("TEST_DATABASE_URL").ok().filter(|u| u.starts_with("postgres"))?;
        sqlx::any::install_default_drivers();
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        let pool = AnyPoolOptions::new().max_connections(1).connect(&base).await.expect("TEST_DATABASE_URL reachable");
        pool.execute(format!("CREATE SCHEMA {schema}").as_str()).await.expect("create schema");
        pool.close().await;
        let sep = if base.contains('?') { '&' } else { '?' };
        Some(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
    }
}
