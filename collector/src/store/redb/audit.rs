//! The audit log: entries keyed org·id (time-ordered UUIDs, so a time range is a key
//! range), appended with their event in one transaction, read newest first, and
//! removed past the retention in small batches.

use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::OrgId;
use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::schema::{AUDIT, ORGS, decode, org_key, put_record};
use crate::audit::Entry;
use crate::store::{AuditQuery, Page, Result};

/// The smallest (`fill` 0) or largest (`fill` 0xff) id made at `at`: UUIDv7 ids
/// start with their time in milliseconds.
fn id_bound(at: DateTime<Utc>, fill: u8) -> [u8; 16] {
    let millis = at.timestamp_millis().max(0) as u64;
    let mut id = [fill; 16];
    id[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    id
}

pub(super) fn record(txn: &WriteTransaction, entry: &Entry) -> Result<()> {
    put_record(
        txn,
        AUDIT,
        &org_key(entry.organization_id, entry.id.to_bytes()),
        entry,
    )?;
    super::events::append(txn, crate::audit::event(entry), entry.at)?;
    Ok(())
}

/// A page of an organisation's entries, newest first.
pub(super) fn list(txn: &ReadTransaction, org: OrgId, query: &AuditQuery) -> Result<Page<Entry>> {
    let table = txn.open_table(AUDIT)?;
    let start = org_key(org, query.since.map_or([0; 16], |t| id_bound(t, 0)));
    let end = org_key(org, query.until.map_or([0xff; 16], |t| id_bound(t, 0xff)));
    let offset = query.page.saturating_sub(1).saturating_mul(query.page_size);
    let (mut items, mut total) = (Vec::new(), 0u64);
    for row in table
        .range::<&[u8]>(start.as_slice()..=end.as_slice())?
        .rev()
    {
        let (_, v) = row?;
        let entry: Entry = decode(v.value())?;
        let actor_id = entry.actor.id.as_deref();
        let owner_id = entry.actor.user_id.as_deref();
        if query.action.is_some_and(|a| a != entry.action)
            || query
                .actor_id
                .as_deref()
                .is_some_and(|a| actor_id != Some(a) && owner_id != Some(a))
            || query
                .target_id
                .as_deref()
                .is_some_and(|t| entry.target.id.as_deref() != Some(t))
        {
            continue;
        }
        if total >= offset && (items.len() as u64) < query.page_size {
            items.push(entry);
        }
        total += 1;
    }
    Ok(Page { items, total })
}

/// Remove up to `limit` entries made before `before`, oldest first, across
/// organisations; answers how many.
pub(super) fn prune(txn: &WriteTransaction, before: DateTime<Utc>, limit: usize) -> Result<usize> {
    let orgs: Vec<[u8; 16]> = {
        let table = txn.open_table(ORGS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, _) = row?;
            if let Ok(id) = k.value().try_into() {
                out.push(id);
            }
        }
        out
    };
    let mut removed = 0;
    let mut table = txn.open_table(AUDIT)?;
    for org in orgs {
        let org = OrgId::from_bytes(org);
        let start = org_key(org, [0; 16]);
        let end = org_key(org, id_bound(before, 0));
        let keys: Vec<Vec<u8>> = table
            .range::<&[u8]>(start.as_slice()..end.as_slice())?
            .take(limit - removed)
            .map(|row| row.map(|(k, _)| k.value().to_vec()))
            .collect::<std::result::Result<_, _>>()?;
        for key in keys {
            table.remove(key.as_slice())?;
            removed += 1;
        }
        if removed >= limit {
            break;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_bounds_enclose_the_ids_made_in_that_millisecond() {
        let id = mcpwatch_protocol::ids::AuditId::new();
        let at = DateTime::from_timestamp_millis(
            i64::try_from(u64::from_be_bytes({
                let mut b = [0u8; 8];
                b[2..].copy_from_slice(&id.to_bytes()[..6]);
                b
            }))
            .unwrap(),
        )
        .unwrap();
        assert!(id_bound(at, 0) <= id.to_bytes() && id.to_bytes() <= id_bound(at, 0xff));
        let later = at + chrono::Duration::milliseconds(1);
        assert!(id.to_bytes() < id_bound(later, 0));
    }
}
