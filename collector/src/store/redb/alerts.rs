//! Alerts: records, the open-alert index and count, one open alert per subject and
//! kind.

use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::{AlertId, OrgId, UserId};
use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::schema::{
    AGENTS, ALERT_SUBJECTS, ALERTS, ALERTS_OF_SERVER, ALERTS_OPEN, COUNTS, SERVERS, add_count,
    agent_key, cat, count, count_key_alerts, decode, get_record, keys_with_prefix, org_key,
    put_record, scan_prefix, server_alert_key, server_key,
};
use crate::alerts as rules;
use crate::events::{AlertContext, EventName};
use crate::model::{Agent, Alert, Server};
use crate::store::{AlertQuery, AlertSort, Direction, Error, Page, Result};

fn alert_key(alert: &Alert) -> Vec<u8> {
    org_key(alert.org_id, alert.id.to_bytes())
}

/// The alert's entry in `alert_subjects`: org·subject·kind.
pub(super) fn subject_key(alert: &Alert) -> Vec<u8> {
    cat(&[
        &alert.org_id.to_bytes(),
        &alert.subject(),
        &[alert.kind.code()],
    ])
}

/// The server and agent a write has in hand, as it has stored them: an alert's event
/// shows them without reading them back.
#[derive(Clone, Copy, Default)]
pub(super) struct InHand<'a> {
    pub server: Option<&'a Server>,
    pub agent: Option<&'a Agent>,
}

/// Raise an alert, unless one of the same kind is open for the same server or agent:
/// then that one is updated as [`rules::repeat`] says. Answers whether a new alert
/// was created.
pub(super) fn raise(txn: &WriteTransaction, alert: Alert) -> Result<bool> {
    raise_with(txn, alert, InHand::default())
}

/// [`raise`], with what the caller has just stored of the alert's server and agent.
pub(super) fn raise_with(
    txn: &WriteTransaction,
    alert: Alert,
    in_hand: InHand<'_>,
) -> Result<bool> {
    let subject = subject_key(&alert);
    let open_key = txn
        .open_table(ALERT_SUBJECTS)?
        .get(subject.as_slice())?
        .map(|v| v.value().to_vec());
    if let Some(key) = open_key {
        let previous = get_record::<Alert, _>(&txn.open_table(ALERTS)?, &key)?;
        if let Some(mut previous) = previous.filter(|p| !p.dismissed) {
            let at = alert.created_at;
            rules::repeat(&mut previous, alert);
            put_record(txn, ALERTS, &key, &previous)?;
            append_event_with(txn, &previous, EventName::AlertUpdated, at, in_hand)?;
            return Ok(false);
        }
    }
    put_alert(txn, &alert, None)?;
    txn.open_table(ALERT_SUBJECTS)?
        .insert(subject.as_slice(), alert_key(&alert).as_slice())?;
    append_event_with(
        txn,
        &alert,
        EventName::AlertCreated,
        alert.created_at,
        in_hand,
    )?;
    Ok(true)
}

/// Record the event of an alert's change, with the server and agent it is about as
/// they are stored now.
fn append_event(
    txn: &WriteTransaction,
    alert: &Alert,
    event: EventName,
    at: DateTime<Utc>,
) -> Result<()> {
    append_event_with(txn, alert, event, at, InHand::default())
}

/// [`append_event`], reading only what `in_hand` does not hold.
fn append_event_with(
    txn: &WriteTransaction,
    alert: &Alert,
    event: EventName,
    at: DateTime<Utc>,
    in_hand: InHand<'_>,
) -> Result<()> {
    let held_server = in_hand
        .server
        .filter(|s| s.org_id == alert.org_id && Some(s.id) == alert.server_id);
    let read_server: Option<Server> = match (held_server, alert.server_id) {
        (None, Some(id)) => {
            super::server_value::get(&txn.open_table(SERVERS)?, &server_key(alert.org_id, id))?
        }
        _ => None,
    };
    let held_agent = in_hand
        .agent
        .filter(|a| a.org_id == alert.org_id && Some(a.id) == alert.agent_id);
    let read_agent: Option<Agent> = match (held_agent, alert.agent_id) {
        (None, Some(id)) => get_record(&txn.open_table(AGENTS)?, &agent_key(alert.org_id, id))?,
        _ => None,
    };
    let context = AlertContext {
        server: held_server.or(read_server.as_ref()),
        agent: held_agent.or(read_agent.as_ref()),
    };
    super::events::append(txn, crate::events::alert_changed(alert, event, context), at)?;
    Ok(())
}

/// Store an alert and keep the open index and count with it (and, for a new alert
/// about a server, its entry among that server's alerts); `was_open` is whether the
/// stored version was open (`None`: a new alert).
fn put_alert(txn: &WriteTransaction, alert: &Alert, was_open: Option<bool>) -> Result<()> {
    let key = alert_key(alert);
    if was_open.is_none()
        && let Some(entry) = server_alert_key(alert)
    {
        txn.open_table(ALERTS_OF_SERVER)?
            .insert(entry.as_slice(), ())?;
    }
    if alert.dismissed && was_open == Some(true) {
        // Dismissed: the next occurrence of the situation raises a new alert.
        let subject = subject_key(alert);
        let mut subjects = txn.open_table(ALERT_SUBJECTS)?;
        if subjects
            .get(subject.as_slice())?
            .is_some_and(|v| v.value() == key.as_slice())
        {
            subjects.remove(subject.as_slice())?;
        }
    }
    put_record(txn, ALERTS, &key, alert)?;
    let open_now = !alert.dismissed;
    if was_open != Some(open_now) {
        let mut open = txn.open_table(ALERTS_OPEN)?;
        if open_now {
            open.insert(key.as_slice(), ())?;
        } else {
            open.remove(key.as_slice())?;
        }
        drop(open);
        let delta = match (was_open, open_now) {
            (Some(true), false) => -1,
            (None | Some(false), true) => 1,
            _ => 0,
        };
        add_count(txn, &count_key_alerts(alert.org_id), delta)?;
    }
    Ok(())
}

/// A page of an organisation's alerts, newest first.
pub(super) fn list_alerts(
    txn: &ReadTransaction,
    org: OrgId,
    query: &AlertQuery,
) -> Result<Page<Alert>> {
    let org_b = org.to_bytes();
    let alerts = txn.open_table(ALERTS)?;
    let offset = query.page.saturating_sub(1).saturating_mul(query.page_size);
    let offset_n = usize::try_from(offset).unwrap_or(usize::MAX);
    let size = usize::try_from(query.page_size).unwrap_or(usize::MAX);
    // In the default order only the page is kept; sorted otherwise, every match.
    let (mut matching, mut total) = (Vec::new(), 0usize);
    let mut consider = |alert: Alert| {
        if query.severity.is_none_or(|s| s == alert.severity)
            && query.dismissed.is_none_or(|d| d == alert.dismissed)
        {
            if query.sort.is_some() || (total >= offset_n && matching.len() < size) {
                matching.push(alert);
            }
            total += 1;
        }
    };
    // Newest first (ids are time-ordered), unless sorted otherwise below.
    if query.dismissed == Some(false) {
        let keys = keys_with_prefix(&txn.open_table(ALERTS_OPEN)?, &org_b)?;
        for key in keys.iter().rev() {
            if let Some(alert) = get_record::<Alert, _>(&alerts, key)? {
                consider(alert);
            }
        }
    } else {
        for (_, v) in scan_prefix(&alerts, &org_b)?.iter().rev() {
            consider(decode(v)?);
        }
    }
    let Some((field, direction)) = query.sort else {
        return Ok(Page {
            items: matching,
            total: total as u64,
        });
    };
    matching.sort_by(|a, b| {
        let order = match field {
            AlertSort::CreatedAt => a.created_at.cmp(&b.created_at),
            AlertSort::UpdatedAt => a
                .updated_at
                .unwrap_or(a.created_at)
                .cmp(&b.updated_at.unwrap_or(b.created_at)),
            AlertSort::Severity => a.severity.cmp(&b.severity),
        };
        let order = if direction == Direction::Desc {
            order.reverse()
        } else {
            order
        };
        order.then(a.id.cmp(&b.id))
    });
    let items = matching.into_iter().skip(offset_n).take(size).collect();
    Ok(Page {
        items,
        total: total as u64,
    })
}

pub(super) fn dismiss_alert(
    txn: &WriteTransaction,
    org: OrgId,
    alert: AlertId,
    (by, at): (UserId, DateTime<Utc>),
) -> Result<Alert> {
    let key = org_key(org, alert.to_bytes());
    let mut record: Alert = get_record(&txn.open_table(ALERTS)?, &key)?.ok_or(Error::NotFound)?;
    if !record.dismissed {
        rules::dismiss(&mut record, by, at);
        put_alert(txn, &record, Some(true))?;
        append_event(txn, &record, EventName::AlertDismissed, at)?;
    }
    Ok(record)
}

pub(super) fn dismiss_all_alerts(
    txn: &WriteTransaction,
    org: OrgId,
    by: UserId,
    at: DateTime<Utc>,
) -> Result<u64> {
    let keys = keys_with_prefix(&txn.open_table(ALERTS_OPEN)?, &org.to_bytes())?;
    let mut dismissed = 0;
    for key in keys {
        let Some(mut record) = get_record::<Alert, _>(&txn.open_table(ALERTS)?, &key)? else {
            continue;
        };
        rules::dismiss(&mut record, by, at);
        put_alert(txn, &record, Some(true))?;
        append_event(txn, &record, EventName::AlertDismissed, at)?;
        dismissed += 1;
    }
    Ok(dismissed)
}

/// Servers by level and open alerts by severity in every organisation, agents, and
/// deliveries waiting: the counts rows and the open-alert index, not the records
/// (but each open alert, for its severity).
pub(super) fn fleet_gauges(txn: &ReadTransaction) -> Result<crate::store::FleetGauges> {
    use redb::ReadableTableMetadata as _;
    let mut out = crate::store::FleetGauges::default();
    let orgs: Vec<OrgId> = txn
        .open_table(super::schema::ORGS)?
        .iter()?
        .filter_map(|row| {
            row.ok()
                .and_then(|(k, _)| <[u8; 16]>::try_from(k.value()).ok())
        })
        .map(OrgId::from_bytes)
        .collect();
    for org in orgs {
        let counts = super::servers::server_counts(txn, org)?;
        out.servers.critical += counts.critical;
        out.servers.high += counts.high;
        out.servers.medium += counts.medium;
        out.servers.low += counts.low;
    }
    let all = txn.open_table(ALERTS)?;
    for row in txn.open_table(ALERTS_OPEN)?.iter()? {
        let (key, ()) = row.map(|(k, v)| (k.value().to_vec(), v.value()))?;
        if let Some(alert) = get_record::<Alert, _>(&all, &key)? {
            out.open_alerts[usize::from(alert.severity.rank())] += 1;
        }
    }
    out.agents = txn.open_table(AGENTS)?.len()?;
    out.pending_deliveries = txn.open_table(super::schema::DELIVERY_DUE)?.len()?;
    Ok(out)
}

pub(super) fn open_alert_count(txn: &ReadTransaction, org: OrgId) -> Result<u64> {
    count(&txn.open_table(COUNTS)?, &count_key_alerts(org))
}
