//! The schema's versions: forward-only migrations embedded in the binary, applied at
//! start under an advisory lock (so that instances starting together migrate once),
//! and a database of a newer version refused.

use super::sql::Db;

/// The migrations, in order; the schema version is their count.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/001_initial.sql"),
    include_str!("migrations/002_census_member_keys.sql"),
    include_str!("migrations/003_census_host_keys.sql"),
    include_str!("migrations/004_agents_silent_since.sql"),
];

/// The schema version this build reads and writes.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// The advisory lock key of migrations ("mcpwatch" in ASCII).
const LOCK: i64 = 0x6d63_7077_6174_6368;

/// Why the schema could not be brought to [`SCHEMA_VERSION`].
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(
        "the database's schema is version {found}, newer than this mcpwatch-collector reads (up to {SCHEMA_VERSION}): upgrade the collector, or point it at another database"
    )]
    TooNew { found: i32 },
    #[error("migrating the database schema to version {version} failed: {source}")]
    Step {
        version: i32,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("reading the database schema version failed: {0}")]
    Read(#[source] tokio_postgres::Error),
}

/// Bring the schema to [`SCHEMA_VERSION`]; answers the version found (0: empty).
pub async fn migrate(db: &Db) -> Result<i32, MigrateError> {
    db.execute("SELECT pg_advisory_lock($1)", &[&LOCK])
        .await
        .map_err(MigrateError::Read)?;
    let outcome = migrate_locked(db).await;
    // Unlocked either way (closing the connection would too).
    let _ = db.execute("SELECT pg_advisory_unlock($1)", &[&LOCK]).await;
    outcome
}

async fn migrate_locked(db: &Db) -> Result<i32, MigrateError> {
    let exists: Option<String> = db
        .query_one("SELECT to_regclass('mcpwatch_schema')::text", &[])
        .await
        .and_then(|r| r.try_get(0))
        .map_err(MigrateError::Read)?;
    if exists.is_none() {
        db.batch_execute(
            "CREATE TABLE mcpwatch_schema (
                version integer PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(MigrateError::Read)?;
    }
    let found: i32 = db
        .query_one("SELECT COALESCE(max(version), 0) FROM mcpwatch_schema", &[])
        .await
        .and_then(|r| r.try_get(0))
        .map_err(MigrateError::Read)?;
    if found > SCHEMA_VERSION {
        return Err(MigrateError::TooNew { found });
    }
    for (version, sql) in (1..)
        .zip(MIGRATIONS)
        .skip(usize::try_from(found).unwrap_or(0))
    {
        let step = |source| MigrateError::Step { version, source };
        db.batch_execute("BEGIN").await.map_err(step)?;
        let applied = async {
            db.batch_execute(sql).await?;
            db.execute(
                "INSERT INTO mcpwatch_schema (version) VALUES ($1)",
                &[&version],
            )
            .await?;
            db.batch_execute("COMMIT").await
        }
        .await;
        if let Err(e) = applied {
            let _ = db.batch_execute("ROLLBACK").await;
            return Err(step(e));
        }
        tracing::info!(version, "Database schema migrated.");
    }
    Ok(found)
}
