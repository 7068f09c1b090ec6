//! The group-commit writer: one task per collector owns one connection and applies
//! every write of this instance, gathering the writes waiting at that moment into one
//! transaction (each in its own savepoint, so that one refused write leaves the others
//! standing). Each caller hears back only after the commit. Several instances each run
//! their own writer on the same database; a transaction-level advisory lock lets one
//! batch at a time write (no two can deadlock on the rows they share).

use std::future::Future;
use std::pin::Pin;

use tokio::sync::{mpsc, oneshot, watch};

use super::sql::Db;
use crate::store::{Error, Result};

/// The most writes committed together.
const MAX_BATCH: usize = 256;
/// Writes waiting for the writer before callers wait to queue.
const QUEUE: usize = 4096;

/// What a write job hands back: how to tell its caller the outcome, and whether it
/// failed (its savepoint is then rolled back).
pub(super) type Completion = Box<dyn FnOnce(Result<()>) + Send>;
pub(super) type JobFuture<'a> = Pin<Box<dyn Future<Output = (Completion, bool)> + Send + 'a>>;
pub(super) type Job = Box<dyn for<'a> FnOnce(&'a Db) -> JobFuture<'a> + Send>;
/// A write's body: run against the writer's connection inside the transaction.
pub(super) type WriteFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// The handle writes are sent through.
#[derive(Clone)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Start the writer task on `pool`; `committed` is called after each commit.
    pub fn start(pool: deadpool_postgres::Pool, events: watch::Sender<u64>) -> Self {
        let (jobs, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool, rx, events));
        Self { jobs }
    }

    /// Run `f` in the next transaction; answers once it is committed.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a Db) -> WriteFuture<'a, T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |db| {
            Box::pin(async move {
                let result = f(db).await;
                let failed = result.is_err();
                let completion: Completion = Box::new(move |commit: Result<()>| {
                    // The caller may have gone away; the write stands. A job's own
                    // error is the one its caller needs to see.
                    let _ = tx.send(result.and_then(|value| commit.map(|()| value)));
                });
                (completion, failed)
            })
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| Error::internal("store writer has stopped"))?;
        rx.await.map_err(|_| {
            Error::Unavailable("the database is unreachable; nothing was written".into())
        })?
    }
}

async fn run(
    pool: deadpool_postgres::Pool,
    mut rx: mpsc::Receiver<Job>,
    events: watch::Sender<u64>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let client = match pool.get().await {
            Ok(client) => client,
            Err(e) => {
                let e = Error::from(e);
                tracing::warn!(error = %e, "No database connection for {} writes.", batch.len());
                refuse(batch, &e);
                continue;
            }
        };
        let (took, size, committed) = apply(&client, batch).await;
        if committed {
            let metrics = &crate::metrics::METRICS;
            metrics.commit_duration.observe(took.as_secs_f64());
            metrics.commit_batch.observe(size as f64);
            super::events::publish(&client, &events).await;
        }
    }
}

/// Drop the jobs of a batch that has no connection: each caller hears that the
/// database is unreachable (see [`Writer::write`]).
fn refuse(batch: Vec<Job>, e: &Error) {
    tracing::debug!(error = %e, writes = batch.len(), "Writes refused.");
    drop(batch);
}

/// Apply a batch in one transaction; answers how long it took, its size, and whether
/// it committed.
async fn apply(db: &Db, batch: Vec<Job>) -> (std::time::Duration, usize, bool) {
    let started = std::time::Instant::now();
    let size = batch.len();
    let savepoints = size > 1;
    let mut done = Vec::with_capacity(size);
    // Savepoint commands ride along with the next command: one trip per write.
    // Every instance's writer takes the same transaction lock first: the instances'
    // batches commit one at a time, so that two of them can never deadlock on the
    // rows both update (the counts); each still commits all its waiting writes at once.
    let begin = if savepoints {
        "BEGIN; SELECT pg_advisory_xact_lock(7166740349306085220); SAVEPOINT job"
    } else {
        "BEGIN; SELECT pg_advisory_xact_lock(7166740349306085220)"
    };
    let mut broken: Option<Error> = db.batch_execute(begin).await.err().map(Error::from);
    for (i, job) in batch.into_iter().enumerate() {
        if broken.is_some() {
            break;
        }
        let (completion, failed) = job(db).await;
        if savepoints {
            let step = match (failed, i + 1 == size) {
                // The savepoint stays: the next write goes on inside it.
                (true, _) => "ROLLBACK TO SAVEPOINT job",
                (false, true) => "RELEASE SAVEPOINT job",
                (false, false) => "RELEASE SAVEPOINT job; SAVEPOINT job",
            };
            if let Err(e) = db.batch_execute(step).await {
                broken = Some(e.into());
            }
        }
        done.push((completion, failed));
    }
    let lone_failure = !savepoints && done.first().is_some_and(|(_, failed)| *failed);
    let outcome = match broken {
        Some(e) => Err(e),
        None if lone_failure => db.batch_execute("ROLLBACK").await.map_err(Error::from),
        None => db.batch_execute("COMMIT").await.map_err(Error::from),
    };
    if outcome.is_err() {
        let _ = db.batch_execute("ROLLBACK").await;
    }
    let committed = outcome.is_ok() && !lone_failure;
    for (completion, _) in done {
        completion(outcome.clone());
    }
    (started.elapsed(), size, committed)
}
