//! The group-commit writer and the swappable database it writes.
//!
//! Writes go to one writer thread. It takes every write that is waiting (up to
//! [`MAX_BATCH`]), runs them in one transaction, commits once (fsync), and only then
//! answers each caller. Each write job does its checks (reads) before it writes, so a
//! job that refuses (not found, conflict) leaves nothing behind; a storage failure
//! aborts the whole batch and every caller in it gets the error.
//!
//! Before a batch the writer checks the disk has room (refusing the batch with
//! [`Error::StorageFull`] while it has not, so the database never meets a full disk);
//! after a storage failure it closes the database and reopens it with backoff,
//! refusing writes with [`Error::Unavailable`] meanwhile.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use redb::{Database, WriteTransaction};

use crate::store::{Error, Result};

/// The most writes committed together.
const MAX_BATCH: usize = 512;
/// Free space the disk must keep for a write batch to start: a commit that finds no
/// room fails with an I/O error that takes the database down until it is reopened,
/// so writes stop short of that and reads go on.
pub const DISK_RESERVE_BYTES: u64 = 32 * 1024 * 1024;
/// How long the store keeps trying to reopen the database after a storage failure
/// before `/health/live` says it cannot recover (and the service manager restarts it).
const RECOVERY_GIVE_UP: Duration = Duration::from_secs(10 * 60);

/// Tells a caller how its write ended, once the batch is committed (or not).
pub(super) type Completion = Box<dyn FnOnce(Result<()>) + Send>;
/// A write: runs inside the batch's transaction; answers its completion, and whether
/// it failed so that the batch must be rolled back.
pub(super) type Job = Box<dyn FnOnce(&WriteTransaction) -> (Completion, bool) + Send>;

/// The open database, swappable: after an I/O error redb fails every later
/// operation, so the writer closes it and opens it again once the storage works.
pub(super) struct Slot {
    path: PathBuf,
    current: std::sync::RwLock<Option<Arc<Database>>>,
    state: std::sync::Mutex<SlotState>,
    /// The newest committed event id, for live readers.
    pub events: tokio::sync::watch::Sender<u64>,
}

#[derive(Default)]
struct SlotState {
    /// Writes are refused for lack of disk space.
    full: bool,
    /// The database is closed after a storage failure, since then, and why.
    failed: Option<(Instant, String)>,
}

impl Slot {
    pub fn new(path: PathBuf, db: Database) -> Self {
        let (events, _) = tokio::sync::watch::channel(0);
        super::events::publish(&db, &events);
        Self {
            path,
            current: std::sync::RwLock::new(Some(Arc::new(db))),
            state: std::sync::Mutex::new(SlotState::default()),
            events,
        }
    }

    /// The database file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    pub fn db(&self) -> Result<Arc<Database>> {
        let current = self
            .current
            .read()
            .map_err(|_| Error::internal("store handle lock poisoned"))?;
        current.clone().ok_or_else(|| self.failure())
    }

    fn is_closed(&self) -> bool {
        self.current.read().is_ok_and(|c| c.is_none())
    }

    /// The error for a write the writer could not make.
    pub fn failure(&self) -> Error {
        match self.state.lock() {
            Ok(state) if state.full => Error::StorageFull,
            Ok(state) => match &state.failed {
                Some((_, why)) => Error::Unavailable(why.clone()),
                None => Error::internal("store writer dropped the write"),
            },
            Err(_) => Error::internal("store state lock poisoned"),
        }
    }

    fn set_full(&self, full: bool) {
        if let Ok(mut state) = self.state.lock()
            && state.full != full
        {
            state.full = full;
            if full {
                tracing::error!(path = %self.path.display(), reserve_bytes = DISK_RESERVE_BYTES, "The disk holding the database is full: writes are refused until space is freed; reads go on.");
            } else {
                tracing::info!("Disk space is back: writes resume.");
            }
        }
    }

    /// Whether free space on the database's disk is below the reserve (never, where
    /// it cannot be measured).
    fn disk_full(&self) -> bool {
        #[cfg(unix)]
        {
            let dir = self.path.parent().unwrap_or(&self.path);
            if let Ok(stat) = rustix::fs::statvfs(dir) {
                let free = stat.f_bavail.saturating_mul(stat.f_frsize);
                return free < DISK_RESERVE_BYTES;
            }
        }
        false
    }

    /// Close the database after a storage failure: take it out of the slot (new
    /// requests get [`Error::Unavailable`]), wait briefly for reads in flight, drop it.
    pub fn close_after_failure(&self, why: &str) {
        let taken = match self.current.write() {
            Ok(mut current) => current.take(),
            Err(_) => return,
        };
        if let Ok(mut state) = self.state.lock() {
            state.failed = Some((Instant::now(), why.to_owned()));
        }
        tracing::error!(
            error = why,
            "Storage failure: the database is closed and will be reopened once the storage works."
        );
        if let Some(db) = taken {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Arc::strong_count(&db) > 1 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            drop(db);
        }
    }

    /// Try to open the database again; answers whether it is open.
    fn reopen(&self) -> bool {
        if !self.is_closed() {
            return true;
        }
        if self.disk_full() {
            self.set_full(true);
        }
        match Database::open(&self.path) {
            Ok(db) => {
                if let Ok(mut current) = self.current.write() {
                    *current = Some(Arc::new(db));
                }
                if let Ok(mut state) = self.state.lock() {
                    state.failed = None;
                }
                tracing::info!(path = %self.path.display(), "The database is open again: the store has recovered.");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "The database cannot be reopened yet; retrying.");
                false
            }
        }
    }

    /// `Err` once reopening has failed for longer than [`RECOVERY_GIVE_UP`].
    pub fn alive(&self) -> std::result::Result<(), String> {
        match self.state.lock() {
            Ok(state) => match &state.failed {
                Some((since, why)) if since.elapsed() > RECOVERY_GIVE_UP => Err(format!(
                    "the database could not be reopened for {} s after a storage failure: {why}",
                    since.elapsed().as_secs()
                )),
                _ => Ok(()),
            },
            Err(_) => Err("store state lock poisoned".into()),
        }
    }
}

/// Whether an error says the storage failed (and the database must be reopened).
fn storage_failed(error: &Error) -> bool {
    let Error::Internal(cause) = error else {
        return false;
    };
    let m = cause.to_string().to_ascii_lowercase();
    m.contains("i/o") || m.contains("io error") || m.contains("previous") || m.contains("no space")
}

/// Start the writer thread.
pub(super) fn start(slot: Arc<Slot>) -> std::io::Result<mpsc::Sender<Job>> {
    let (jobs, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || writer_loop(&slot, &rx))?;
    Ok(jobs)
}

/// The store's one writer: batches waiting writes into one transaction and commits
/// once.
fn writer_loop(slot: &Slot, rx: &mpsc::Receiver<Job>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let recovering = slot.is_closed();
        let first = if recovering {
            match rx.recv_timeout(backoff) {
                Ok(job) => Some(job),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        } else {
            match rx.recv() {
                Ok(job) => Some(job),
                Err(_) => return,
            }
        };
        if recovering {
            backoff = if slot.reopen() {
                Duration::from_millis(100)
            } else {
                (backoff * 2).min(Duration::from_secs(5))
            };
        }
        let Some(first) = first else { continue };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Dropping a batch's jobs drops their senders: each caller gets the slot's
        // failure (full, or recovering).
        let full = slot.disk_full();
        slot.set_full(full);
        if !full {
            run_batch(slot, batch);
        }
    }
}

/// Run a batch in one transaction, commit it, and answer every caller.
fn run_batch(slot: &Slot, batch: Vec<Job>) {
    let Ok(db) = slot.db() else { return };
    let started = std::time::Instant::now();
    let size = batch.len();
    let txn = match db.begin_write() {
        Ok(txn) => txn,
        Err(e) => {
            tracing::error!(error = %e, "Store write transaction could not start.");
            let e = Error::from(e);
            if storage_failed(&e) {
                drop(db);
                slot.close_after_failure(&e.to_string());
            }
            return;
        }
    };
    let mut completions = Vec::with_capacity(batch.len());
    let mut poisoned = false;
    for job in batch {
        match catch_unwind(AssertUnwindSafe(|| job(&txn))) {
            Ok((completion, failed)) => {
                poisoned |= failed;
                completions.push(completion);
            }
            Err(_) => {
                tracing::error!("A store write panicked; its batch is rolled back.");
                poisoned = true;
            }
        }
    }
    let outcome = if poisoned {
        drop(txn);
        Err(Error::internal(
            "write batch rolled back after a storage failure",
        ))
    } else {
        txn.commit().map_err(|e| {
            tracing::error!(error = %e, "Store commit failed.");
            Error::from(e)
        })
    };
    if outcome.is_ok() {
        super::events::publish(&db, &slot.events);
        let metrics = &crate::metrics::METRICS;
        metrics
            .commit_duration
            .observe(started.elapsed().as_secs_f64());
        metrics.commit_batch.observe(size as f64);
    }
    let failed_storage = outcome.as_ref().err().is_some_and(storage_failed);
    if let Err(e) = &outcome
        && failed_storage
    {
        drop(db);
        slot.close_after_failure(&e.to_string());
        if slot.disk_full() {
            slot.set_full(true);
        }
    }
    for completion in completions {
        completion(match &outcome {
            Ok(()) => Ok(()),
            Err(_) if failed_storage => Err(slot.failure()),
            Err(Error::Internal(cause)) => Err(Error::Internal(Arc::clone(cause))),
            Err(e) => Err(Error::internal(e.to_string())),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slot alone, without the writer: closed after a failure it answers
    /// `Unavailable`, is alive while recovering, and opens the same file again.
    #[test]
    fn a_closed_slot_is_unavailable_until_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(super::super::DB_FILE);
        let db = Database::create(&path).unwrap();
        let slot = Slot::new(path, db);
        assert!(slot.db().is_ok());
        slot.close_after_failure("simulated");
        assert!(matches!(slot.db(), Err(Error::Unavailable(_))));
        assert!(matches!(slot.failure(), Error::Unavailable(_)));
        assert!(slot.alive().is_ok());
        assert!(slot.reopen());
        assert!(slot.db().is_ok());
        assert!(matches!(slot.failure(), Error::Internal(_)));
    }
}
