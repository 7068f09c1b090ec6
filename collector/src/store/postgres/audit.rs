//! The audit log: entries keyed by their time-ordered id, appended with their event,
//! filtered and paged newest first, and pruned by age.

use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::OrgId;

use super::sql::{Db, count, docs, exec, get, json, row, rows, text, window};
use crate::audit::Entry;
use crate::store::{AuditQuery, Page, Result};

/// The smallest (`fill` 0) or largest (`fill` 0xff) entry id made at `at`: ids start
/// with their 48-bit millisecond time.
fn id_bound(at: DateTime<Utc>, fill: u8) -> uuid::Uuid {
    let millis = at.timestamp_millis().max(0) as u64;
    let mut id = [fill; 16];
    id[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    uuid::Uuid::from_bytes(id)
}

/// An action's name as the API spells it.
fn action_name(action: crate::audit::Action) -> String {
    serde_json::to_value(action)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Insert an entry's row (`copy`: kept if its key is taken); answers the rows written.
async fn write_entry(db: &Db, entry: &Entry, copy: bool) -> Result<u64> {
    let conflict = if copy { " ON CONFLICT DO NOTHING" } else { "" };
    exec(
        db,
        &format!(
            "INSERT INTO audit (org, id, action, actor_id, actor_user, target_id, doc) \
             VALUES ($1, $2, $3, $4, $5, $6, $7){conflict}"
        ),
        &[
            &entry.organization_id.0,
            &entry.id.0,
            &action_name(entry.action),
            &entry.actor.id.as_deref().map(text),
            &entry.actor.user_id.as_deref().map(text),
            &entry.target.id.as_deref().map(text),
            &json(entry)?,
        ],
    )
    .await
}

pub(super) async fn record(db: &Db, entry: &Entry) -> Result<()> {
    write_entry(db, entry, false).await?;
    super::events::append(db, crate::audit::event(entry), entry.at).await?;
    Ok(())
}

/// An entry copied in from another store (kept if there already); answers 1 if new.
pub(super) async fn copy_in(db: &Db, entry: &Entry) -> Result<u64> {
    write_entry(db, entry, true).await
}

pub(super) async fn list(db: &Db, org: OrgId, query: &AuditQuery) -> Result<Page<Entry>> {
    let start = query.since.map_or(uuid::Uuid::nil(), |t| id_bound(t, 0));
    let end = query.until.map_or(uuid::Uuid::max(), |t| id_bound(t, 0xff));
    let action = query.action.map(action_name);
    let actor = query.actor_id.as_deref().map(text);
    let target = query.target_id.as_deref().map(text);
    let where_clause = "org = $1 AND id >= $2 AND id <= $3 \
        AND ($4::text IS NULL OR action = $4) \
        AND ($5::text IS NULL OR actor_id = $5 OR actor_user = $5) \
        AND ($6::text IS NULL OR target_id = $6)";
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] =
        [&org.0, &start, &end, &action, &actor, &target];
    let total = row(
        db,
        &format!("SELECT count(*) FROM audit WHERE {where_clause}"),
        &params,
    )
    .await?
    .map(|r| get::<i64>(&r, 0))
    .transpose()?
    .map_or(0, count);
    let (offset, size) = window(query.page, query.page_size);
    let paged: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
        .iter()
        .copied()
        .chain([&offset as _, &size as _])
        .collect();
    let items = docs(
        &rows(
            db,
            &format!(
                "SELECT doc FROM audit WHERE {where_clause} ORDER BY id DESC OFFSET $7 LIMIT $8"
            ),
            &paged,
        )
        .await?,
    )?;
    Ok(Page { items, total })
}

pub(super) async fn prune(db: &Db, before: DateTime<Utc>, limit: usize) -> Result<usize> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let removed = exec(
        db,
        "DELETE FROM audit WHERE (org, id) IN \
         (SELECT org, id FROM audit WHERE id < $1 LIMIT $2)",
        &[&id_bound(before, 0), &limit],
    )
    .await?;
    Ok(usize::try_from(removed).unwrap_or(usize::MAX))
}
