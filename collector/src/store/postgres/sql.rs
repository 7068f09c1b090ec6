//! The few helpers every PostgreSQL query goes through: prepared (and cached)
//! statements, JSON documents in and out, ids as UUIDs, and driver errors turned into
//! the store's errors.

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::store::Error;

/// A connection (pooled, with its statement cache).
pub(super) type Db = deadpool_postgres::ClientWrapper;

/// A parameter list.
pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// The SQLSTATE of a unique-key violation.
const UNIQUE_VIOLATION: &str = "23505";

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        if e.is_closed() || e.code().is_none() && e.as_db_error().is_none() {
            return Error::Unavailable(format!("the database connection failed: {e}"));
        }
        match (
            e.code().map(tokio_postgres::error::SqlState::code),
            e.as_db_error(),
        ) {
            // Serialisation failures and deadlocks between instances: the caller may try
            // again (an agent does).
            (Some("40001" | "40P01"), _) => Error::Unavailable(format!("write conflict: {e}")),
            (Some(code), Some(db)) => Error::internal(format!(
                "database error {code}: {}{}",
                db.message(),
                db.detail().map(|d| format!(" ({d})")).unwrap_or_default()
            )),
            _ => Error::Internal(std::sync::Arc::new(e)),
        }
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Error::Unavailable(format!("no database connection: {e}"))
    }
}

/// Whether `e` is a unique-key violation (a taken email, a duplicate key).
pub(super) fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code().map(tokio_postgres::error::SqlState::code) == Some(UNIQUE_VIOLATION)
}

/// Every row `sql` answers.
pub(super) async fn rows(db: &Db, sql: &str, params: Params<'_>) -> Result<Vec<Row>, Error> {
    let statement = db.prepare_cached(sql).await?;
    Ok(db.query(&statement, params).await?)
}

/// The one row `sql` answers, if any.
pub(super) async fn row(db: &Db, sql: &str, params: Params<'_>) -> Result<Option<Row>, Error> {
    let statement = db.prepare_cached(sql).await?;
    Ok(db.query_opt(&statement, params).await?)
}

/// Run `sql`; answers the rows it touched.
pub(super) async fn exec(db: &Db, sql: &str, params: Params<'_>) -> Result<u64, Error> {
    let statement = db.prepare_cached(sql).await?;
    Ok(db.execute(&statement, params).await?)
}

/// Column `idx` of `row`.
pub(super) fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    idx: usize,
) -> Result<T, Error> {
    row.try_get(idx)
        .map_err(|e| Error::internal(format!("stored row is unreadable: {e}")))
}

/// The JSON document in column `idx` of `row`.
pub(super) fn doc<T: DeserializeOwned>(row: &Row, idx: usize) -> Result<T, Error> {
    decode(get(row, idx)?)
}

/// A stored JSON document.
pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::internal(format!("stored record is unreadable: {e}")))
}

/// Every row's document in column 0.
pub(super) fn docs<T: DeserializeOwned>(rows: &[Row]) -> Result<Vec<T>, Error> {
    rows.iter().map(|r| doc(r, 0)).collect()
}

/// A record as a document parameter (JSON bytes).
pub(super) fn json<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|e| Error::internal(format!("encoding record: {e}")))
}

/// Text for an index column: NUL (which PostgreSQL's text refuses) replaced.
pub(super) fn text(value: &str) -> String {
    value.replace('\0', "\u{fffd}")
}

/// A 16-byte id as a UUID.
pub(super) fn uuid(bytes: [u8; 16]) -> Uuid {
    Uuid::from_bytes(bytes)
}

/// An `i64` column as a count.
pub(super) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A page's offset and size as SQL parameters.
pub(super) fn window(page: u64, size: u64) -> (i64, i64) {
    let offset = page.saturating_sub(1).saturating_mul(size);
    (
        i64::try_from(offset).unwrap_or(i64::MAX),
        i64::try_from(size).unwrap_or(i64::MAX),
    )
}
