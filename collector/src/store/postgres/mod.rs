//! The PostgreSQL store, for deployments that outgrow one machine: several identical
//! collectors on one database.
//!
//! Records are the same serde documents the embedded store keeps (JSON bytes: text a
//! laptop wrote may hold NULs, which PostgreSQL's text and jsonb refuse), beside the
//! columns their indexes, filters and sorts need (see `migrations/`). Counts the
//! dashboard reads are kept at write time by triggers. Writes of one instance go
//! through one group-commit writer (`writer`); reads use a pool. What several
//! instances share lives in the database: the token-signing key, the replay guard's
//! nonces, presence (last-seen times flushed every few seconds), and the leadership
//! of the background jobs (an advisory lock held by one instance's connection).
//!
//! The modules mirror the embedded store's: `accounts`, `agents`, `servers`,
//! `reports`, `alerts`, `events`, `notifications`, `tokens`, `audit`, `census`, each
//! its own reads and writes; `sql` the query helpers; `migrate` the schema versions.

mod accounts;
mod agents;
mod alerts;
mod audit;
mod census;
mod connect;
mod dispatch;
mod events;
mod load;
mod migrate;
mod nonces;
mod notifications;
mod reports;
mod servers;
mod sql;
mod tokens;
mod writer;

use tokio::sync::{Mutex, watch};

pub use connect::{OpenError, PgOptions};
pub use migrate::SCHEMA_VERSION;

use crate::store::{Error, Result};

/// The advisory lock key of the background jobs' leader ("mcpwlead").
const LEADER_LOCK: i64 = 0x6d63_7077_6c65_6164;

/// The PostgreSQL-backed [`crate::store::Store`].
pub struct PgStore {
    pool: deadpool_postgres::Pool,
    writer: writer::Writer,
    events: watch::Sender<u64>,
    /// The connection holding the leader lock, while this instance leads.
    leader: Mutex<Option<deadpool_postgres::ClientWrapper>>,
    nonces: nonces::Nonces,
}

impl PgStore {
    /// A connection from the pool.
    async fn db(&self) -> Result<deadpool_postgres::Object> {
        Ok(self.pool.get().await?)
    }

    /// Whether this instance runs the background jobs: it holds the leader lock, or
    /// takes it now (another instance that held it has gone).
    pub(super) async fn lead(&self) -> bool {
        let mut held = self.leader.lock().await;
        if let Some(client) = held.as_ref() {
            if !client.is_closed() {
                return true;
            }
            tracing::warn!("Lost the connection holding the job leadership.");
            *held = None;
        }
        let Ok(client) = self.pool.get().await else {
            return false;
        };
        let took: bool = match client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK])
            .await
            .and_then(|r| r.try_get(0))
        {
            Ok(took) => took,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot ask for the job leadership.");
                return false;
            }
        };
        if took {
            tracing::info!("This instance now runs the background jobs.");
            // Out of the pool for good: the lock lives as long as this connection.
            *held = Some(deadpool_postgres::Object::take(client));
        }
        took
    }

    /// Record a signed request's nonce; `false` when any instance saw it before.
    pub(super) async fn claim_nonce(
        &self,
        agent: mcpwatch_protocol::ids::AgentId,
        nonce: u128,
        expires_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool> {
        self.nonces.claim(agent, nonce, expires_at).await
    }

    /// The secret every instance shares under `name`: the stored one, else `made`
    /// (stored now; when two instances start at once, the first one's wins).
    pub(super) async fn shared_secret(&self, name: &str, made: [u8; 32]) -> Result<[u8; 32]> {
        let db = self.db().await?;
        sql::exec(
            &db,
            "INSERT INTO instance_secrets (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&name, &made.as_slice()],
        )
        .await?;
        let found = sql::row(
            &db,
            "SELECT value FROM instance_secrets WHERE name = $1",
            &[&name],
        )
        .await?
        .ok_or_else(|| Error::internal("the shared secret is missing"))?;
        let value: Vec<u8> = sql::get(&found, 0)?;
        value
            .try_into()
            .map_err(|_| Error::internal(format!("the shared secret {name} is not 32 bytes")))
    }

    /// Every table's rows (PostgreSQL's estimate) and bytes with its indexes, largest
    /// first; the indexes and free space are the overhead.
    async fn table_space(&self) -> Result<Vec<crate::store::TableSpace>> {
        let db = self.db().await?;
        let rows = sql::rows(
            &db,
            "SELECT relname::text, GREATEST(n_live_tup, 0), pg_relation_size(relid),                     pg_total_relation_size(relid) - pg_relation_size(relid)              FROM pg_stat_user_tables WHERE schemaname = current_schema()              ORDER BY pg_total_relation_size(relid) DESC, relname",
            &[],
        )
        .await?;
        rows.iter()
            .map(|r| {
                let number = |i: usize| -> Result<u64> {
                    let n: i64 = sql::get(r, i)?;
                    Ok(u64::try_from(n).unwrap_or(0))
                };
                Ok(crate::store::TableSpace {
                    table: sql::get(r, 0)?,
                    entries: number(1)?,
                    stored_bytes: number(2)?,
                    overhead_bytes: number(3)?,
                })
            })
            .collect()
    }

    /// What disagrees between the kept counts and a recount from the records.
    async fn check_counts(&self) -> Result<Vec<String>> {
        let db = self.db().await?;
        let differences = sql::rows(
            &db,
            "WITH actual AS ( \
                SELECT org, 'S' || rank || '.' || status AS key, count(*) AS n FROM servers GROUP BY 1, 2 \
                UNION ALL SELECT org, 'A', count(*) FROM alerts WHERE NOT dismissed GROUP BY 1 \
                UNION ALL SELECT org, 'E', count(*) FROM events GROUP BY 1 \
                UNION ALL SELECT org, 'D', count(*) FROM deliveries GROUP BY 1 \
                UNION ALL SELECT org, 'C' || grp, count(*) FROM census GROUP BY 1, 2), \
             kept AS (SELECT org, key, n FROM counts WHERE n <> 0) \
             SELECT COALESCE(a.org, k.org)::text, COALESCE(a.key, k.key), \
                    COALESCE(k.n, 0), COALESCE(a.n, 0) \
             FROM actual a FULL JOIN kept k ON a.org = k.org AND a.key = k.key \
             WHERE COALESCE(a.n, 0) <> COALESCE(k.n, 0)",
            &[],
        )
        .await?;
        differences
            .iter()
            .map(|r| {
                let (org, key): (String, String) = (sql::get(r, 0)?, sql::get(r, 1)?);
                let (kept, actual): (i64, i64) = (sql::get(r, 2)?, sql::get(r, 3)?);
                Ok(format!(
                    "organisation {org}: count {key} is {kept}, the records make {actual}"
                ))
            })
            .collect()
    }
}
