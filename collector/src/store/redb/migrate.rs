//! The layout version: recorded in a new database, checked at open, and upgrades from
//! older layouts.

use redb::{Database, ReadableTable};

use super::schema::{META, SERVER_CHANGES, SERVERS, change_key, create_tables, decode, encode};
use crate::model::{MAX_SERVER_CHANGES, Server, ServerChange};
use crate::store::{Error, Result};

/// The layout version this code reads and writes. 2: server change histories moved
/// out of the server records into `server_changes` (see [`migrate_histories`]).
pub(super) const SCHEMA_VERSION: u32 = 2;
/// Servers migrated per transaction when a database is upgraded.
const MIGRATION_BATCH: usize = 10_000;
const VERSION_KEY: &str = "schema_version";

/// Record the layout version in a new database and make its tables; answers the
/// version an existing database had (tables are left alone in a newer one).
pub(super) fn init(db: &Database) -> Result<Option<u32>> {
    let txn = db.begin_write()?;
    let found = {
        let mut meta = txn.open_table(META)?;
        let found = match meta.get(VERSION_KEY)? {
            Some(v) => {
                Some(u32::from_be_bytes(v.value().try_into().map_err(|_| {
                    Error::internal("schema version record is damaged")
                })?))
            }
            None => None,
        };
        if found.is_none() {
            meta.insert(VERSION_KEY, SCHEMA_VERSION.to_be_bytes().as_slice())?;
        }
        found
    };
    if found.is_some_and(|v| v > SCHEMA_VERSION) {
        return Ok(found);
    }
    create_tables(&txn)?;
    txn.commit()?;
    Ok(found)
}

/// Record a layout version (the last step of an upgrade).
pub(super) fn set_version(txn: &redb::WriteTransaction, version: u32) -> Result<()> {
    txn.open_table(META)?
        .insert(VERSION_KEY, version.to_be_bytes().as_slice())?;
    Ok(())
}

/// Upgrade a database of layout `from` to [`SCHEMA_VERSION`]; answers what was done,
/// for the log (`None`: nothing to do).
pub(super) fn upgrade(db: &Database, from: Option<u32>) -> Result<Option<String>> {
    match from {
        Some(1) => migrate_histories(db).map(|moved| {
            Some(format!(
                "Database upgraded to layout 2: change histories of {moved} servers moved out of server records."
            ))
        }),
        _ => Ok(None),
    }
}

/// Layout 1 kept each server's change history in its record; layout 2 keeps it in
/// `server_changes`. Moves the histories in transactions of [`MIGRATION_BATCH`]
/// servers, then records layout 2. A record without an inline history is left as it
/// is, so a migration that was interrupted continues where it stopped. Answers how
/// many servers had a history moved.
fn migrate_histories(db: &Database) -> Result<u64> {
    let mut resume: Option<Vec<u8>> = None;
    let mut moved = 0;
    loop {
        let txn = db.begin_write()?;
        let batch: Vec<(Vec<u8>, Vec<u8>)> = {
            let servers = txn.open_table(SERVERS)?;
            let range = match &resume {
                Some(k) => servers.range::<&[u8]>((
                    std::ops::Bound::Excluded(k.as_slice()),
                    std::ops::Bound::Unbounded,
                ))?,
                None => servers.range::<&[u8]>(..)?,
            };
            let mut batch = Vec::new();
            for entry in range.take(MIGRATION_BATCH) {
                let (k, v) = entry?;
                batch.push((k.value().to_vec(), v.value().to_vec()));
            }
            batch
        };
        let Some((last, _)) = batch.last() else {
            set_version(&txn, SCHEMA_VERSION)?;
            txn.commit()?;
            return Ok(moved);
        };
        resume = Some(last.clone());
        moved += move_histories(&txn, &batch)?;
        txn.commit()?;
    }
}

/// Move the inline histories of one batch of server records; answers how many moved.
fn move_histories(txn: &redb::WriteTransaction, batch: &[(Vec<u8>, Vec<u8>)]) -> Result<u64> {
    #[derive(serde::Deserialize)]
    struct InlineHistory {
        #[serde(default)]
        changes: Vec<ServerChange>,
    }
    let mut servers = txn.open_table(SERVERS)?;
    let mut history = txn.open_table(SERVER_CHANGES)?;
    let mut moved = 0;
    for (key, value) in batch {
        let inline: InlineHistory = decode(value)?;
        if inline.changes.is_empty() {
            continue;
        }
        let mut server: Server = decode(value)?;
        let count = inline.changes.len() as u64;
        let first_kept = count.saturating_sub(MAX_SERVER_CHANGES);
        for (seq, change) in (0..count).zip(&inline.changes).skip(first_kept as usize) {
            history.insert(change_key(key, seq).as_slice(), encode(change)?.as_slice())?;
        }
        server.change_seq = count;
        servers.insert(key.as_slice(), encode(&server)?.as_slice())?;
        moved += 1;
    }
    Ok(moved)
}
