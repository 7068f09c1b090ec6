//! The embedded store: one redb file in the data dir.
//!
//! # Layout
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | `orgs` | org | [`Org`] |
//! | `users` | org·user | [`User`] |
//! | `user_emails` | email | org·user |
//! | `sessions` | session | [`Session`] |
//! | `user_sessions` | org·user·session | – |
//! | `agents` | org·agent | [`Agent`] |
//! | `agent_keys` | sha256(key) | org·agent |
//! | `enroll_secrets` | org·secret | [`EnrollSecret`] |
//! | `enroll_hashes` | sha256(secret) | org·secret |
//! | `servers` | org·server | [`Server`] without what its key and launch say (see `server_value`) |
//! | `srv_rank` | org·rank·(255−score)·server | status·name |
//! | `agent_servers` | org·agent | the agent's server ids, 16 bytes each, ascending |
//! | `counts` | org·`S`·rank·status, org·`A`, org·`E`, org·`D` | u64 |
//! | `alerts` | org·alert | [`Alert`] |
//! | `alerts_open` | org·alert | – |
//! | `policies` | org | [`OrgPolicy`] |
//! | `alert_subjects` | org·subject·kind | org·alert (the one open alert of that kind) |
//! | `server_changes` | org·server·seq | [`ServerChange`] (the newest [`MAX_SERVER_CHANGES`] per server; number 0, `created`, is implied) |
//! | `inventory_rev` | org·agent | u64, bumped by every write of one of the agent's servers |
//! | `events` | org·id | [`Event`] (the outbox: the newest per organisation, see [`crate::events`]) |
//! | `api_tokens` | org·token | [`ApiToken`] |
//! | `api_token_hashes` | sha256(token) | org·token |
//! | `audit` | org·entry (time-ordered) | [`Entry`] (the audit log) |
//! | `census` | org·group·key·0 | [`Counts`] (see `census.rs`) |
//! | `census_members` | h(row)·kind·member | u64: the row's servers with that member |
//! | `census_rank` | org·group·(max − hosts)·key·0 | – |
//! | `census_queue` | seq | a server's change still to count into the census |
//! | `channels` | org·channel | [`Channel`] (notification channels) |
//! | `deliveries` | org·delivery | [`Delivery`] (one event to one channel, with the event) |
//! | `delivery_due` | time·org·delivery | – (deliveries still to try, by when) |
//!
//! The rank index orders servers by risk (critical first, then score, then age) and
//! carries what the list filters need, so a filtered page reads only the index and the
//! page's rows; the counts are kept in the same transaction as the rows. An agent's
//! servers are found through its row in `agent_servers` (a listing of one agent ranks
//! them in memory); a server's identity within its agent (client, config path, name)
//! is computed from its record, not stored.
//!
//! Records are postcard (a one-byte mark, then the fields in declaration order: no
//! names, times and digests as integers and bytes), except the few per organisation
//! or per alert that postcard cannot carry (free-form JSON details, a flattened
//! policy), which stay JSON; see `schema::encode`. Layout 4 made them so, layout 6
//! gave servers a shorter form of their own; the upgrade from an older layout converts
//! record by record (`migrate`).
//!
//! # Modules
//!
//! [`schema`] holds the tables and key builders; `writer` the group-commit writer;
//! `migrate` the layout version and upgrades; `files` the data dir; and one module per
//! resource (`accounts`, `agents`, `servers`, `reports`, `alerts`) its reads and
//! writes. The [`Store`] implementation below only dispatches. What a write means
//! (scores, alert wording, presence) is decided by [`crate::ingest`] and
//! [`crate::alerts`], never here.
//!
//! [`Org`]: crate::model::Org
//! [`User`]: crate::model::User
//! [`Session`]: crate::model::Session
//! [`Agent`]: crate::model::Agent
//! [`EnrollSecret`]: crate::model::EnrollSecret
//! [`Server`]: crate::model::Server
//! [`Alert`]: crate::model::Alert
//! [`OrgPolicy`]: crate::model::OrgPolicy
//! [`ServerChange`]: crate::model::ServerChange
//! [`MAX_SERVER_CHANGES`]: crate::model::MAX_SERVER_CHANGES
//! [`Event`]: crate::events::Event
//! [`ApiToken`]: crate::model::ApiToken
//! [`Entry`]: crate::audit::Entry
//! [`Counts`]: crate::census::Counts
//! [`Channel`]: crate::notify::Channel
//! [`Delivery`]: crate::notify::Delivery

mod accounts;
mod agent_servers;
mod agents;
mod alerts;
mod audit;
mod census;
pub mod dump;
mod events;
mod files;
pub mod maintenance;
mod migrate;
mod notifications;
mod reports;
mod retention;
mod schema;
mod server_value;
mod servers;
#[cfg(test)]
mod test_support;
mod tokens;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::{
    AgentId, AlertId, ApiTokenId, ChannelId, EnrollSecretId, OrgId, ServerId, SessionId, UserId,
};
use mcpwatch_protocol::wire::ReportResponse;
use redb::{ReadTransaction, ReadableDatabase, WriteTransaction};
use tokio::sync::oneshot;

pub use writer::DISK_RESERVE_BYTES;

use super::{
    AlertQuery, AuditQuery, CensusQuery, DeliveryQuery, Error, HeartbeatUpdate, OrgPatch, Page,
    ReportInput, Result, ServerQuery, Store, UserPatch,
};
use crate::model::{
    Agent, Alert, ApiToken, EnrollSecret, LevelCounts, Org, OrgPolicy, Server, ServerChange,
    ServerStatus, Session, User,
};
use crate::notify::{Channel, Delivery};
use migrate::SCHEMA_VERSION;
use writer::{Completion, Job, Slot};

/// Queued census changes counted in one transaction: short enough that the reports
/// waiting behind it on the writer wait little, long enough that the census keeps up
/// while a large fleet is first seeded. At 1,000,000 servers the report p99 was 60 ms
/// with 500, 46–51 ms with 200; with 100 it was 41 ms, but the census fell a minute
/// behind while 1,000,000 servers were being stored. With layout 5's shorter member
/// keys, 150 gave 44 ms, the census 34 s behind at the end of storing 1,000,000
/// servers in 88 s.
pub const CENSUS_BATCH: usize = 150;

/// Servers an export reads ahead of its writer.
const EXPORT_BUFFER: usize = 256;

/// The page cache's size for tests and tools that open a database outside `serve`.
pub const DEFAULT_CACHE_MB: usize = 64;

/// The page cache `serve` gives the database unless told otherwise: 1/32 of the
/// machine's memory (or of the container's limit, when lower), between 32 and
/// 128 MiB. The cache holds that much page data and about a third more in
/// allocations (each page is its own buffer); at 1,000,000 servers the collector
/// then stays under 400 MB. Pages beyond it are read again from the OS's file cache, which costs a
/// copy, not a disk read, while the file fits in memory; most of a large
/// inventory's reads are of the upper levels of a few indexes, which stay cached.
/// Memory that cannot be read gives the smallest.
pub fn default_cache_mb() -> usize {
    use sysinfo::{MemoryRefreshKind, RefreshKind, System};
    let refresh = RefreshKind::nothing().with_memory(MemoryRefreshKind::nothing().with_ram());
    // Memory that cannot be read counts as none: the smallest cache.
    let Ok(system) = System::new_with_specifics(refresh) else {
        return cache_for_memory(0);
    };
    let mut memory = system.total_memory();
    if let Some(limits) = system.cgroup_limits() {
        memory = memory.min(limits.total_memory);
    }
    cache_for_memory(memory)
}

/// [`default_cache_mb`] for a machine of `memory` bytes.
fn cache_for_memory(memory: u64) -> usize {
    let mb = usize::try_from(memory / 32 / (1024 * 1024)).unwrap_or(usize::MAX);
    mb.clamp(32, 128)
}

/// The database file inside the data dir.
pub const DB_FILE: &str = "mcpwatch.redb";

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("another mcpwatch-collector already uses {path}")]
    InUse { path: PathBuf },
    #[error("cannot open database {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: redb::DatabaseError,
    },
    #[error(
        "database {path} was written by a newer mcpwatch (layout {found}, this version reads up to {SCHEMA_VERSION})"
    )]
    TooNew { path: PathBuf, found: u32 },
    #[error("cannot initialise database {path}")]
    Init {
        path: PathBuf,
        #[source]
        source: Error,
    },
    #[error(
        "database {path} is empty (0 bytes): it is not a database, and a new one is made only where no file exists; restore it from a backup, or move it away to start with an empty database"
    )]
    Empty { path: PathBuf },
    #[error("data dir {path}: {message}")]
    Permissions { path: PathBuf, message: String },
}

/// The redb-backed [`Store`].
pub struct RedbStore {
    db: Arc<Slot>,
    jobs: mpsc::Sender<Job>,
}

impl RedbStore {
    /// Open (or create) the database in `data_dir` with the default cache, check its
    /// layout version, upgrade it if it is older, and start the writer thread.
    pub fn open(data_dir: &Path) -> std::result::Result<Self, OpenError> {
        Self::open_with_cache(data_dir, DEFAULT_CACHE_MB)
    }

    /// [`Self::open`] with a page cache of `cache_mb` MiB.
    pub fn open_with_cache(
        data_dir: &Path,
        cache_mb: usize,
    ) -> std::result::Result<Self, OpenError> {
        let path = data_dir.join(DB_FILE);
        files::owner_only(data_dir, &path)?;
        let db = files::open_or_create(&path, cache_mb.saturating_mul(1024 * 1024))?;
        let init_failed = |source| OpenError::Init {
            path: path.clone(),
            source,
        };
        let found = migrate::init(&db).map_err(init_failed)?;
        if let Some(found) = found.filter(|v| *v > SCHEMA_VERSION) {
            return Err(OpenError::TooNew { path, found });
        }
        if let Some(done) = migrate::upgrade(&db, found).map_err(init_failed)? {
            tracing::info!("{done}");
        }
        let db = Arc::new(Slot::new(path.clone(), db));
        let jobs = writer::start(Arc::clone(&db)).map_err(|e| {
            init_failed(Error::internal(format!("cannot start writer thread: {e}")))
        })?;
        Ok(Self { db, jobs })
    }

    /// Close the database as after a storage failure (tests of the recovery). The
    /// writer, which would have seen the failure itself, notices at its next write.
    #[cfg(test)]
    pub(crate) fn simulate_storage_failure(&self) {
        self.db.close_after_failure("simulated storage failure");
    }

    /// A read on the blocking pool (scans and pages).
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.db.db()?;
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read()?;
            f(&txn)
        })
        .await
        .map_err(|e| Error::internal(format!("read task failed: {e}")))?
    }

    /// A point read on the calling thread: a few B-tree lookups in the memory-mapped
    /// file, cheaper than the hop to the blocking pool that [`Self::read`] makes.
    fn read_now<T>(&self, f: impl FnOnce(&ReadTransaction) -> Result<T>) -> Result<T> {
        let txn = self.db.db()?.begin_read()?;
        f(&txn)
    }

    /// One batch of a pass over many rows: `find` reads which of them need a write
    /// (and where the next batch starts), and `change` writes those, only when there
    /// are any: most batches of a pass over a large database need none, and a read
    /// neither waits for the writer nor makes it commit. Answers what `change` answered
    /// (the default when it did not run) and where the next batch starts.
    async fn read_then_write<K, C, T>(
        &self,
        find: impl FnOnce(&ReadTransaction) -> Result<(Vec<K>, C)> + Send + 'static,
        change: impl FnOnce(&WriteTransaction, Vec<K>) -> Result<T> + Send + 'static,
    ) -> Result<(T, C)>
    where
        K: Send + 'static,
        C: Send + 'static,
        T: Default + Send + 'static,
    {
        let (found, next) = self.read(find).await?;
        if found.is_empty() {
            return Ok((T::default(), next));
        }
        Ok((self.write(move |txn| change(txn, found)).await?, next))
    }

    /// A write, committed with whatever else is waiting (see `writer`).
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |txn| {
            let result = f(txn);
            let poisoned = matches!(result, Err(Error::Internal(_)));
            let completion: Completion = Box::new(move |commit: Result<()>| {
                // The caller may have gone away (request cancelled); the write stands.
                // A job's own error is the one its caller needs to see.
                let _ = tx.send(result.and_then(|value| commit.map(|()| value)));
            });
            (completion, poisoned)
        });
        self.jobs
            .send(job)
            .map_err(|_| Error::internal("store writer has stopped"))?;
        rx.await.map_err(|_| self.db.failure())?
    }
}

#[async_trait]
impl Store for RedbStore {
    fn alive(&self) -> std::result::Result<(), String> {
        self.db.alive()
    }

    async fn ping(&self) -> Result<()> {
        self.read(|txn| {
            txn.open_table(schema::META)?.get("schema_version")?;
            Ok(())
        })
        .await?;
        self.write(|txn| {
            txn.open_table(schema::META)?
                .insert("ping", [1u8].as_slice())?;
            Ok(())
        })
        .await
    }

    async fn create_org_with_admin(
        &self,
        org: Org,
        admin: User,
        only_if_first: bool,
    ) -> Result<()> {
        self.write(move |txn| accounts::create_org_with_admin(txn, &org, &admin, only_if_first))
            .await
    }

    async fn get_org(&self, org: OrgId) -> Result<Org> {
        self.read(move |txn| accounts::get_org(txn, org)).await
    }

    async fn update_org(&self, org: OrgId, patch: OrgPatch, now: DateTime<Utc>) -> Result<Org> {
        self.write(move |txn| accounts::update_org(txn, org, patch, now))
            .await
    }

    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>> {
        let email = email.to_owned();
        self.read(move |txn| accounts::find_user_by_email(txn, &email))
            .await
    }

    async fn get_user(&self, org: OrgId, user: UserId) -> Result<User> {
        self.read(move |txn| accounts::get_user(txn, org, user))
            .await
    }

    async fn list_users(&self, org: OrgId) -> Result<Vec<User>> {
        self.read(move |txn| accounts::list_users(txn, org)).await
    }

    async fn create_user(&self, org: OrgId, user: User) -> Result<()> {
        self.write(move |txn| accounts::create_user(txn, org, &user))
            .await
    }

    async fn update_user(
        &self,
        org: OrgId,
        user: UserId,
        patch: UserPatch,
        now: DateTime<Utc>,
    ) -> Result<User> {
        self.write(move |txn| accounts::update_user(txn, org, user, patch, now))
            .await
    }

    async fn delete_user(&self, org: OrgId, user: UserId) -> Result<()> {
        self.write(move |txn| accounts::delete_user(txn, org, user))
            .await
    }

    async fn create_session(&self, session: Session) -> Result<()> {
        self.write(move |txn| accounts::create_session(txn, &session))
            .await
    }

    async fn get_session(&self, session: SessionId) -> Result<(Session, User)> {
        self.read_now(move |txn| accounts::get_session(txn, session))
    }

    async fn rotate_session(
        &self,
        session: SessionId,
        expected_jti: &str,
        new_jti: String,
        expires_at: DateTime<Utc>,
    ) -> Result<Session> {
        let expected = expected_jti.to_owned();
        self.write(move |txn| {
            accounts::rotate_session(txn, session, &expected, new_jti, expires_at)
        })
        .await?
        .ok_or(Error::NotFound)
    }

    async fn delete_session(&self, session: SessionId) -> Result<()> {
        self.write(move |txn| accounts::delete_session(txn, session))
            .await
    }

    async fn delete_user_sessions(
        &self,
        org: OrgId,
        user: UserId,
        keep: Option<SessionId>,
    ) -> Result<()> {
        self.write(move |txn| accounts::end_sessions(txn, org, user, keep))
            .await
    }

    async fn create_agent(&self, agent: Agent) -> Result<()> {
        self.write(move |txn| agents::create_agent(txn, &agent))
            .await
    }

    async fn enroll_agent(
        &self,
        secret_hash: [u8; 32],
        agent: Agent,
        now: DateTime<Utc>,
    ) -> Result<Agent> {
        self.write(move |txn| agents::enroll_agent(txn, secret_hash, agent, now))
            .await
    }

    async fn find_agent_by_key(&self, key_hash: [u8; 32]) -> Result<Option<Agent>> {
        self.read_now(move |txn| agents::find_agent_by_key(txn, key_hash))
    }

    async fn get_agent(&self, org: OrgId, agent: AgentId) -> Result<Agent> {
        self.read(move |txn| agents::get_agent(txn, org, agent))
            .await
    }

    async fn list_agents(&self, org: OrgId) -> Result<Vec<Agent>> {
        self.read(move |txn| agents::list_agents(txn, org)).await
    }

    async fn agent_count(&self, org: OrgId) -> Result<u64> {
        self.read(move |txn| agents::agent_count(txn, org)).await
    }

    async fn delete_agent(&self, org: OrgId, agent: AgentId, now: DateTime<Utc>) -> Result<()> {
        self.write(move |txn| agents::delete_agent(txn, org, agent, now))
            .await
    }

    async fn record_heartbeat(
        &self,
        org: OrgId,
        agent: AgentId,
        update: HeartbeatUpdate,
    ) -> Result<Agent> {
        self.write(move |txn| agents::record_heartbeat(txn, org, agent, update))
            .await
    }

    async fn newest_silent_since(&self) -> Result<Option<DateTime<Utc>>> {
        self.read(agents::newest_silent_since).await
    }

    async fn sweep_silent_agents(
        &self,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(OrgId, AgentId)>> {
        let (marked, ()) = self
            .read_then_write(
                move |txn| Ok((agents::silent_agents(txn, cutoff, limit)?, ())),
                move |txn, keys| agents::mark_silent(txn, keys, cutoff, now),
            )
            .await?;
        Ok(marked)
    }

    async fn touch_agents(&self, seen: Vec<(OrgId, AgentId, DateTime<Utc>)>) -> Result<()> {
        self.write(move |txn| agents::touch_agents(txn, seen)).await
    }

    async fn agents_seen_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(OrgId, AgentId, DateTime<Utc>)>> {
        self.read(move |txn| agents::agents_seen_since(txn, since))
            .await
    }

    async fn create_enroll_secret(&self, secret: EnrollSecret) -> Result<()> {
        self.write(move |txn| agents::create_enroll_secret(txn, &secret))
            .await
    }

    async fn list_enroll_secrets(&self, org: OrgId) -> Result<Vec<EnrollSecret>> {
        self.read(move |txn| agents::list_enroll_secrets(txn, org))
            .await
    }

    async fn delete_enroll_secret(&self, org: OrgId, id: EnrollSecretId) -> Result<()> {
        self.write(move |txn| agents::delete_enroll_secret(txn, org, id))
            .await
    }

    async fn apply_report(
        &self,
        org: OrgId,
        agent: AgentId,
        report: ReportInput,
    ) -> Result<ReportResponse> {
        let prepared = self.prepare_report(org, agent, &report).await?;
        self.commit_report(org, agent, report, prepared).await
    }

    async fn list_servers(&self, org: OrgId, query: ServerQuery) -> Result<Page<Server>> {
        self.read(move |txn| servers::list_servers(txn, org, &query))
            .await
    }

    async fn get_server(&self, org: OrgId, server: ServerId) -> Result<Server> {
        self.read(move |txn| servers::get_server(txn, org, server))
            .await
    }

    async fn server_changes(&self, org: OrgId, server: ServerId) -> Result<Vec<ServerChange>> {
        self.read(move |txn| servers::server_changes(txn, org, server))
            .await
    }

    async fn set_server_verified(
        &self,
        org: OrgId,
        server: ServerId,
        verified: bool,
        by: UserId,
        at: DateTime<Utc>,
    ) -> Result<Server> {
        self.write(move |txn| servers::set_server_verified(txn, org, server, (verified, by, at)))
            .await
    }

    async fn export_servers(
        &self,
        org: OrgId,
        query: ServerQuery,
    ) -> Result<tokio::sync::mpsc::Receiver<Result<Server>>> {
        let db = self.db.db()?;
        let (tx, rx) = tokio::sync::mpsc::channel(EXPORT_BUFFER);
        tokio::task::spawn_blocking(move || {
            let done = db.begin_read().map_err(Error::from).and_then(|txn| {
                servers::export_servers(&txn, org, &query, |s| tx.blocking_send(Ok(s)).is_ok())
            });
            if let Err(e) = done {
                let _ = tx.blocking_send(Err(e));
            }
        });
        Ok(rx)
    }

    async fn top_risks(&self, org: OrgId, limit: u64) -> Result<Vec<Server>> {
        let query = ServerQuery {
            status: Some(ServerStatus::Active),
            page: 1,
            page_size: limit,
            ..ServerQuery::default()
        };
        Ok(self.list_servers(org, query).await?.items)
    }

    async fn rescore_outdated(
        &self,
        cursor: Option<(OrgId, ServerId)>,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Result<(usize, Option<(OrgId, ServerId)>)> {
        // Read at most this many rows per call, so that one call stays short.
        let scan_budget = limit.saturating_mul(20).max(1);
        self.read_then_write(
            move |txn| servers::outdated_servers(txn, cursor, limit, scan_budget),
            move |txn, keys| servers::rescore_servers(txn, keys, now),
        )
        .await
    }

    async fn get_policy(&self, org: OrgId) -> Result<OrgPolicy> {
        self.read(move |txn| servers::policy_of(&txn.open_table(schema::POLICIES)?, org))
            .await
    }

    async fn put_policy(&self, org: OrgId, policy: OrgPolicy) -> Result<OrgPolicy> {
        self.write(move |txn| servers::put_policy(txn, org, policy))
            .await
    }

    async fn server_counts(&self, org: OrgId) -> Result<LevelCounts> {
        self.read(move |txn| servers::server_counts(txn, org)).await
    }

    async fn list_alerts(&self, org: OrgId, query: AlertQuery) -> Result<Page<Alert>> {
        self.read(move |txn| alerts::list_alerts(txn, org, &query))
            .await
    }

    async fn dismiss_alert(
        &self,
        org: OrgId,
        alert: AlertId,
        by: UserId,
        at: DateTime<Utc>,
    ) -> Result<Alert> {
        self.write(move |txn| alerts::dismiss_alert(txn, org, alert, (by, at)))
            .await
    }

    async fn dismiss_all_alerts(&self, org: OrgId, by: UserId, at: DateTime<Utc>) -> Result<u64> {
        self.write(move |txn| alerts::dismiss_all_alerts(txn, org, by, at))
            .await
    }

    async fn open_alert_count(&self, org: OrgId) -> Result<u64> {
        self.read(move |txn| alerts::open_alert_count(txn, org))
            .await
    }

    async fn fleet_gauges(&self) -> Result<super::FleetGauges> {
        let mut gauges = self.read(alerts::fleet_gauges).await?;
        gauges.database_bytes = maintenance::disk_bytes(self.db.path());
        Ok(gauges)
    }

    async fn snapshot(&self, out: PathBuf) -> Result<u64> {
        self.read(move |txn| maintenance::snapshot(txn, &out)).await
    }

    async fn check(&self) -> Result<Vec<String>> {
        self.read(maintenance::check).await
    }

    async fn space(&self) -> Result<Vec<super::TableSpace>> {
        self.read(maintenance::space).await
    }

    async fn prune_dormant_servers(
        &self,
        before: DateTime<Utc>,
        cursor: Option<Vec<u8>>,
        agents: usize,
    ) -> Result<(u64, u64, Option<Vec<u8>>)> {
        let ((servers, alerts), next) = self
            .read_then_write(
                move |txn| retention::dormant_candidates(txn, before, cursor, agents),
                move |txn, keys| retention::prune_dormant(txn, before, keys),
            )
            .await?;
        Ok((servers, alerts, next))
    }

    async fn prune_dismissed_alerts(
        &self,
        before: DateTime<Utc>,
        cursor: Option<Vec<u8>>,
        rows: usize,
    ) -> Result<(u64, Option<Vec<u8>>)> {
        self.read_then_write(
            move |txn| retention::dismissed_candidates(txn, before, cursor, rows),
            move |txn, keys| retention::prune_dismissed(txn, before, keys),
        )
        .await
    }

    async fn events_after(
        &self,
        org: OrgId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<crate::events::Event>> {
        self.read(move |txn| events::events_after(txn, org, after, limit))
            .await
    }

    fn event_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.db.events.subscribe()
    }

    async fn create_channel(&self, channel: Channel) -> Result<()> {
        self.write(move |txn| notifications::create_channel(txn, &channel))
            .await
    }

    async fn list_channels(&self, org: OrgId) -> Result<Vec<Channel>> {
        self.read(move |txn| notifications::list_channels(txn, org))
            .await
    }

    async fn get_channel(&self, org: OrgId, id: ChannelId) -> Result<Channel> {
        self.read(move |txn| notifications::get_channel(txn, org, id))
            .await
    }

    async fn update_channel(&self, channel: Channel) -> Result<()> {
        self.write(move |txn| notifications::update_channel(txn, &channel))
            .await
    }

    async fn delete_channel(&self, org: OrgId, id: ChannelId) -> Result<()> {
        self.write(move |txn| notifications::delete_channel(txn, org, id))
            .await
    }

    async fn due_deliveries(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<Delivery>> {
        self.read(move |txn| notifications::due_deliveries(txn, before, limit))
            .await
    }

    async fn next_delivery_due(&self) -> Result<Option<DateTime<Utc>>> {
        self.read(notifications::next_due).await
    }

    async fn record_attempt(&self, delivery: Delivery, failure: Option<Alert>) -> Result<()> {
        self.write(move |txn| notifications::record_attempt(txn, &delivery, failure.as_ref()))
            .await
    }

    async fn list_deliveries(&self, org: OrgId, query: DeliveryQuery) -> Result<Page<Delivery>> {
        self.read(move |txn| notifications::list_deliveries(txn, org, &query))
            .await
    }

    async fn create_api_token(&self, token: ApiToken) -> Result<()> {
        self.write(move |txn| tokens::create(txn, &token)).await
    }

    async fn find_api_token(&self, hash: [u8; 32]) -> Result<Option<(ApiToken, User)>> {
        self.read_now(move |txn| tokens::find(txn, hash))
    }

    async fn list_api_tokens(&self, org: OrgId, user: Option<UserId>) -> Result<Vec<ApiToken>> {
        self.read(move |txn| tokens::list(txn, org, user)).await
    }

    async fn get_api_token(&self, org: OrgId, id: ApiTokenId) -> Result<ApiToken> {
        self.read(move |txn| tokens::get(txn, org, id)).await
    }

    async fn delete_api_token(&self, org: OrgId, id: ApiTokenId) -> Result<ApiToken> {
        self.write(move |txn| tokens::delete(txn, org, id)).await
    }

    async fn touch_api_tokens(&self, used: Vec<(OrgId, ApiTokenId, DateTime<Utc>)>) -> Result<()> {
        self.write(move |txn| tokens::touch(txn, &used)).await
    }

    async fn record_audit(&self, entry: crate::audit::Entry) -> Result<()> {
        self.write(move |txn| audit::record(txn, &entry)).await
    }

    async fn list_audit(&self, org: OrgId, query: AuditQuery) -> Result<Page<crate::audit::Entry>> {
        self.read(move |txn| audit::list(txn, org, &query)).await
    }

    async fn prune_audit(&self, before: DateTime<Utc>, limit: usize) -> Result<usize> {
        self.write(move |txn| audit::prune(txn, before, limit))
            .await
    }

    async fn census(
        &self,
        org: OrgId,
        query: CensusQuery,
    ) -> Result<Page<(crate::census::Counts, Vec<crate::census::VersionHosts>)>> {
        // Every committed write counted before the read. With nothing queued, the
        // snapshot that found the queue empty is read, and the writer is not asked;
        // otherwise what is queued (a few batches at most behind the background jobs)
        // is counted first.
        let listed = self
            .read(move |txn| {
                if census::queued(txn)? {
                    Ok(None)
                } else {
                    census::list(txn, org, &query).map(Some)
                }
            })
            .await?;
        if let Some(page) = listed {
            return Ok(page);
        }
        while self.drain_census(CENSUS_BATCH).await? >= CENSUS_BATCH {}
        self.read(move |txn| census::list(txn, org, &query)).await
    }

    async fn drain_census(&self, limit: usize) -> Result<usize> {
        self.write(move |txn| census::drain(txn, limit)).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_cache_is_a_thirty_second_of_memory_within_bounds() {
        const GIB: u64 = 1024 * 1024 * 1024;
        assert_eq!(super::cache_for_memory(GIB / 2), 32);
        assert_eq!(super::cache_for_memory(2 * GIB), 64);
        assert_eq!(super::cache_for_memory(4 * GIB), 128);
        assert_eq!(super::cache_for_memory(u64::MAX), 128);
        assert!((32..=128).contains(&super::default_cache_mb()));
    }
}
