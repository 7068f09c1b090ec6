//! `migrate-store`: a stopped collector's data dir copied into PostgreSQL: every
//! record table by table in key order (one read snapshot of the embedded database,
//! a thousand records per PostgreSQL transaction, each kept if already there, so that
//! a copy interrupted anywhere is resumed by running the command again), the
//! token-signing key shared (sessions, API tokens and agents keep working), the
//! census rebuilt, and every table's count compared at the end.

use std::path::{Path, PathBuf};

use crate::auth::tokens::TokenService;
use crate::store::Store;
use crate::store::postgres::{PgOptions, PgStore};
use crate::store::records::Table;
use crate::store::redb::{dump, maintenance};

/// Records per PostgreSQL transaction.
const BATCH: usize = 1000;

/// Why a copy failed.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error(transparent)]
    Open(#[from] crate::store::postgres::OpenError),
    #[error("reading {dir}: {message}")]
    Read { dir: PathBuf, message: String },
    #[error("writing to PostgreSQL: {0}")]
    Write(#[from] crate::store::Error),
    #[error("the token-signing key: {0}")]
    Key(#[from] crate::auth::Error),
    #[error("the copy does not match:\n  {}", .0.join("\n  "))]
    Mismatch(Vec<String>),
}

/// What a copy did, table by table: (table, in the data dir, new in PostgreSQL).
pub struct Summary {
    pub tables: Vec<(&'static str, u64, u64)>,
    /// Whether the database already had another signing key (tokens issued by the
    /// data dir's collector then end).
    pub key_differs: bool,
}

/// Copy the data dir's records into the database `to` names.
pub async fn run(from: &Path, to: &PgOptions) -> Result<Summary, MoveError> {
    let store = PgStore::connect(to).await?;
    let key_differs = !TokenService::share_key_file(from, &store).await?;
    let handle = tokio::runtime::Handle::current();
    let dir = from.to_path_buf();
    let copy_store = std::sync::Arc::new(store);
    let store = std::sync::Arc::clone(&copy_store);
    let tables = tokio::task::spawn_blocking(move || {
        maintenance::offline_read(&dir, |txn| {
            let mut tables = Vec::new();
            for table in Table::ALL {
                let held = dump::count(txn, table)?;
                let (mut cursor, mut copied) = (None, 0);
                loop {
                    let (records, next) = dump::batch(txn, table, cursor.as_deref(), BATCH)?;
                    if !records.is_empty() {
                        copied += handle.block_on(copy_store.copy_in(records))?;
                    }
                    match next {
                        Some(key) => cursor = Some(key),
                        None => break,
                    }
                }
                tracing::info!(table = table.name(), held, copied, "Table copied.");
                tables.push((table.name(), held, copied));
            }
            Ok(tables)
        })
    })
    .await
    .map_err(|e| MoveError::Read {
        dir: from.to_path_buf(),
        message: e.to_string(),
    })?
    .map_err(|message| MoveError::Read {
        dir: from.to_path_buf(),
        message,
    })?;
    store.after_copy().await?;
    while store.drain_census(crate::store::redb::CENSUS_BATCH).await?
        >= crate::store::redb::CENSUS_BATCH
    {}
    verify(&store, &tables).await?;
    Ok(Summary {
        tables,
        key_differs,
    })
}

/// Every table holds at least what the data dir held, and the counts agree with the
/// records.
async fn verify(store: &PgStore, tables: &[(&'static str, u64, u64)]) -> Result<(), MoveError> {
    let mut problems = Vec::new();
    for (table, (name, held, _)) in Table::ALL.iter().zip(tables) {
        let there = store.count_of(*table).await?;
        if there < *held {
            problems.push(format!(
                "{name}: {held} in the data dir, {there} in the database"
            ));
        }
    }
    problems.extend(store.check().await?);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(MoveError::Mismatch(problems))
    }
}
