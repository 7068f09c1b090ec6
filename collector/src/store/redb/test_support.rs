//! What the store's tests need to set up situations a running collector does not
//! make by itself: an old layout, a racing write, an old rule set.

use mcpwatch_protocol::ids::{AgentId, AlertId, OrgId, ServerId};
use mcpwatch_protocol::risk::RiskLevel;
use mcpwatch_protocol::wire::ReportResponse;

use super::RedbStore;
use redb::{TableDefinition, WriteTransaction};

use super::schema::{
    AGENT_SERVERS, Bytes, SERVER_CHANGES, SERVERS, keys_with_prefix, list_records, server_key,
};
use super::{migrate, servers};
use crate::ingest::ServerWrite;
use crate::model::ServerChange;
use crate::store::{Error, ReportInput, Result};

/// Every key of `table` for which `keep` holds.
fn keys_of<V: redb::Value + 'static>(
    txn: &redb::WriteTransaction,
    table: redb::TableDefinition<'_, super::schema::Bytes, V>,
    keep: impl Fn(&[u8]) -> bool,
) -> Result<Vec<Vec<u8>>> {
    use redb::ReadableTable as _;
    let mut out = Vec::new();
    for entry in txn.open_table(table)?.iter()? {
        let (k, _) = entry?;
        if keep(k.value()) {
            out.push(k.value().to_vec());
        }
    }
    Ok(out)
}

/// Take every census table and count away, as in a database made before the census.
fn forget_census(txn: &redb::WriteTransaction) -> Result<()> {
    use super::schema::{CENSUS, CENSUS_MEMBERS, CENSUS_QUEUE, CENSUS_RANK, COUNTS};
    for k in keys_of(txn, CENSUS_QUEUE, |_| true)? {
        txn.open_table(CENSUS_QUEUE)?.remove(k.as_slice())?;
    }
    for k in keys_of(txn, CENSUS, |_| true)? {
        txn.open_table(CENSUS)?.remove(k.as_slice())?;
    }
    for k in keys_of(txn, CENSUS_MEMBERS, |_| true)? {
        txn.open_table(CENSUS_MEMBERS)?.remove(k.as_slice())?;
    }
    for k in keys_of(txn, CENSUS_RANK, |_| true)? {
        txn.open_table(CENSUS_RANK)?.remove(k.as_slice())?;
    }
    // The counts of census rows: org·`C`·group.
    for k in keys_of(txn, COUNTS, |k| k.get(16) == Some(&b'C'))? {
        txn.open_table(COUNTS)?.remove(k.as_slice())?;
    }
    Ok(())
}

/// Give census member keys the organisation·group prefix layouts 3 and 4 wrote.
fn lengthen_member_keys(txn: &redb::WriteTransaction) -> Result<()> {
    use super::schema::{CENSUS, CENSUS_MEMBERS, META};
    use redb::ReadableTable as _;
    let rows = keys_of(txn, CENSUS, |_| true)?;
    let mut members = txn.open_table(CENSUS_MEMBERS)?;
    for row in rows {
        let hash = crate::store::tally::members_of(&row);
        let held: Vec<(Vec<u8>, u64)> = members
            .range::<&[u8]>(hash.as_slice()..)?
            .map(|e| e.map(|(k, v)| (k.value().to_vec(), v.value())))
            .take_while(|e| e.as_ref().map_or(true, |(k, _)| k.starts_with(&hash)))
            .collect::<std::result::Result<_, _>>()?;
        for (key, n) in held {
            members.remove(key.as_slice())?;
            let old = [
                &row[..crate::store::tally::OLD_MEMBER_PREFIX],
                key.as_slice(),
            ]
            .concat();
            members.insert(old.as_slice(), n)?;
        }
    }
    drop(members);
    txn.open_table(META)?.remove(migrate::SHORTEN.done)?;
    Ok(())
}

/// Put the hosts in census member keys back whole, as layouts up to 5 kept them.
fn whole_host_member_keys(txn: &redb::WriteTransaction) -> Result<()> {
    use super::schema::{CENSUS_MEMBERS, META};
    use redb::ReadableTable as _;
    let servers: Vec<crate::model::Server> = txn
        .open_table(SERVERS)?
        .iter()?
        .map(|e| {
            let (k, v) = e?;
            super::server_value::decode(k.value(), v.value())
        })
        .collect::<Result<_>>()?;
    let short = keys_of(txn, CENSUS_MEMBERS, |k| {
        matches!(
            k.get(crate::store::tally::MEMBER_PREFIX),
            Some(b'a' | b'u' | b'v')
        )
    })?;
    let mut members = txn.open_table(CENSUS_MEMBERS)?;
    for key in short {
        members.remove(key.as_slice())?;
    }
    for (key, n) in crate::store::tally::members_with_whole_hosts(&servers) {
        members.insert(key.as_slice(), n)?;
    }
    drop(members);
    txn.open_table(META)?.remove(migrate::SHORT_HOSTS.done)?;
    Ok(())
}

impl RedbStore {
    /// Damage the indexes as a bug would: drop one server's rank entry and bump a
    /// count.
    pub async fn damage_indexes_for_test(&self) -> Result<()> {
        self.write(|txn| {
            use super::schema::{COUNTS, SRV_RANK, add_count};
            let first = keys_of(txn, SRV_RANK, |_| true)?;
            if let Some(k) = first.first() {
                txn.open_table(SRV_RANK)?.remove(k.as_slice())?;
            }
            if let Some(k) = keys_of(txn, COUNTS, |k| k.get(16) == Some(&b'S'))?.first() {
                add_count(txn, k, 1)?;
            }
            Ok(())
        })
        .await
    }

    /// Put the database back into layout 2 (no census), as if a build of the census
    /// had been interrupted after counting the first `counted` servers in.
    pub async fn make_layout_2_for_test(&self, counted: usize) -> Result<()> {
        self.write(move |txn| {
            use redb::ReadableTable as _;
            forget_census(txn)?;
            let batch: Vec<(Vec<u8>, Vec<u8>)> = txn
                .open_table(SERVERS)?
                .iter()?
                .take(counted)
                .map(|e| e.map(|(k, v)| (k.value().to_vec(), v.value().to_vec())))
                .collect::<std::result::Result<_, _>>()?;
            super::census::count_in(txn, &batch)?;
            if let Some((last, _)) = batch.last() {
                txn.open_table(super::schema::META)?
                    .insert(migrate::CENSUS_CURSOR, last.as_slice())?;
            }
            migrate::set_version(txn, 2)
        })
        .await
    }

    /// Put the database back into layout 3: every record JSON and census member keys
    /// long, as layouts up to 3 wrote them; then, when `converted` is given, convert
    /// the first batch of that table (by name) again, as an upgrade interrupted after
    /// its first transaction leaves it (`census_members`: its first 3 keys).
    pub async fn make_layout_3_for_test(&self, converted: Option<&'static str>) -> Result<()> {
        self.write(move |txn| {
            use redb::ReadableTable as _;
            for compact in migrate::COMPACT_TABLES {
                rewrite(txn, compact.table, |k, v| (compact.recode)(k, v, false))?;
            }
            // Layout 3's link from each server's identity to the server.
            let links: Vec<(Vec<u8>, Vec<u8>)> = txn
                .open_table(SERVERS)?
                .iter()?
                .map(|e| {
                    let (k, v) = e?;
                    let server = super::server_value::decode(k.value(), v.value())?;
                    let ident = crate::ingest::identity_key(&server.record);
                    let agent = super::schema::agent_key(server.org_id, server.agent_id);
                    Ok((
                        super::schema::cat(&[&agent, &ident]),
                        server.id.to_bytes().to_vec(),
                    ))
                })
                .collect::<Result<_>>()?;
            let mut identity = txn.open_table(migrate::SERVER_IDENTITY)?;
            for (k, v) in links {
                identity.insert(k.as_slice(), v.as_slice())?;
            }
            drop(identity);
            whole_host_member_keys(txn)?;
            forget_layouts_7_and_8(txn)?;
            lengthen_member_keys(txn)?;
            if converted == Some("census_members") {
                // Layout 5's rewrite of member keys, stopped after its first few.
                migrate::set_members_aside(txn, &migrate::SHORTEN)?;
                migrate::rekey_batch(txn, &migrate::SHORTEN, 3)?;
            } else if let Some(name) = converted {
                migrate::compact_batch(txn, compact_table(name)?, None)?;
            }
            migrate::set_version(txn, 3)
        })
        .await
    }

    /// Put the database back into layout 5: every server whole behind the compact mark,
    /// every audit entry JSON, an index row per server by agent instead of a row per
    /// agent, the agent in rank values, and hosts whole in census member keys, as
    /// layouts 4 and 5 kept them; then, when `converted` is given, convert that table
    /// (by name) again, as an upgrade interrupted after it leaves the database
    /// (`agent_servers`: its first server listed and its rank row rewritten;
    /// `census_members`: its first 3 keys).
    pub async fn make_layout_5_for_test(&self, converted: Option<&'static str>) -> Result<()> {
        self.write(move |txn| {
            use redb::ReadableTable as _;
            let servers: Vec<(Vec<u8>, crate::model::Server)> = txn
                .open_table(SERVERS)?
                .iter()?
                .map(|e| {
                    let (k, v) = e?;
                    Ok((
                        k.value().to_vec(),
                        super::server_value::decode(k.value(), v.value())?,
                    ))
                })
                .collect::<Result<_>>()?;
            let mut by_agent = txn.open_table(migrate::SRV_AGENT)?;
            let mut rank = txn.open_table(super::schema::SRV_RANK)?;
            for (_, server) in &servers {
                let (key, value) = super::schema::IndexEntries::agent_row(server);
                by_agent.insert(key.as_slice(), value.as_slice())?;
                // Layout 5's rank value: status·agent·name.
                let (key, value) = super::schema::IndexEntries::of(server).rank;
                let old = [&value[..1], &server.agent_id.to_bytes(), &value[1..]].concat();
                rank.insert(key.as_slice(), old.as_slice())?;
            }
            drop((by_agent, rank));
            txn.open_table(AGENT_SERVERS)?.retain(|_, _| false)?;
            if converted == Some("agent_servers")
                && let Some((key, first)) = servers.first()
            {
                super::agent_servers::add(
                    txn,
                    first.org_id,
                    first.agent_id,
                    &[first.id.to_bytes()],
                )?;
                let (rank_key, rank_value) = super::schema::IndexEntries::of(first).rank;
                txn.open_table(super::schema::SRV_RANK)?
                    .insert(rank_key.as_slice(), rank_value.as_slice())?;
                txn.open_table(super::schema::META)?
                    .insert(migrate::AGENT_SERVERS_CURSOR, key.as_slice())?;
            }
            rewrite(txn, SERVERS, |k, v| {
                let server = super::server_value::decode(k, v)?;
                postcard::to_extend(&server, vec![super::schema::COMPACT])
                    .map_err(|e| Error::internal(e.to_string()))
            })?;
            rewrite(txn, super::schema::AUDIT, |_, v| {
                let entry: crate::audit::Entry = super::schema::decode(v)?;
                serde_json::to_vec(&entry).map_err(|e| Error::internal(e.to_string()))
            })?;
            whole_host_member_keys(txn)?;
            forget_layouts_7_and_8(txn)?;
            match converted {
                None | Some("agent_servers") => {}
                Some("census_members") => {
                    // Layout 6's rewrite of member keys, stopped after its first few.
                    migrate::set_members_aside(txn, &migrate::SHORT_HOSTS)?;
                    migrate::rekey_batch(txn, &migrate::SHORT_HOSTS, 3)?;
                }
                Some(name) => {
                    migrate::compact_batch(txn, compact_table(name)?, None)?;
                }
            }
            migrate::set_version(txn, 5)
        })
        .await
    }

    /// Put the database back into layout 6: no index of agents by when they were last
    /// heard from; then, when `interrupted`, file the first agent again, as an upgrade
    /// stopped after its first batch leaves the database.
    pub async fn make_layout_6_for_test(&self, interrupted: bool) -> Result<()> {
        self.write(move |txn| {
            forget_layouts_7_and_8(txn)?;
            if interrupted {
                migrate::build_batch(txn, &migrate::SILENT_WATCH_BUILD, 1)?;
            }
            migrate::set_version(txn, 6)
        })
        .await
    }

    /// Overwrite an alert's record with bytes no layout ever wrote.
    pub async fn garble_alert_for_test(&self, org: OrgId, alert: AlertId) -> Result<()> {
        self.write(move |txn| {
            txn.open_table(super::schema::ALERTS)?.insert(
                super::schema::org_key(org, alert.to_bytes()).as_slice(),
                [0xff, 0xfe, 0xfd].as_slice(),
            )?;
            Ok(())
        })
        .await
    }

    /// Put the database back into layout 7: no lists of each server's alerts; then, when
    /// `interrupted`, list the first alert again, as an upgrade stopped after its first
    /// batch leaves the database.
    pub async fn make_layout_7_for_test(&self, interrupted: bool) -> Result<()> {
        self.write(move |txn| {
            forget_alerts_of_server(txn)?;
            if interrupted {
                migrate::build_batch(txn, &migrate::ALERTS_OF_SERVER_BUILD, 1)?;
            }
            migrate::set_version(txn, 7)
        })
        .await
    }

    /// How many records of the compact tables are not in their newest form, and the
    /// entries of layout 3's identity table if it is still there.
    pub async fn legacy_records_for_test(&self) -> Result<u64> {
        self.read(|txn| {
            use redb::{ReadableTable as _, ReadableTableMetadata as _};
            let mut legacy = match txn.open_table(migrate::SERVER_IDENTITY) {
                Ok(table) => table.len()?,
                Err(redb::TableError::TableDoesNotExist(_)) => 0,
                Err(e) => return Err(e.into()),
            };
            for compact in migrate::COMPACT_TABLES {
                for entry in txn.open_table(compact.table)?.iter()? {
                    legacy += u64::from(entry?.1.value().first() != Some(&compact.mark));
                }
            }
            Ok(legacy)
        })
        .await
    }

    /// Put a server back into layout 1: its whole history (with its `created` entry, as
    /// layout 1 kept it) inside its record, no `server_changes` rows, and the database
    /// marked as layout 1.
    pub async fn make_layout_1_for_test(&self, org: OrgId, server: ServerId) -> Result<()> {
        self.write(move |txn| {
            let key = server_key(org, server);
            let changes: Vec<ServerChange> = list_records(&txn.open_table(SERVER_CHANGES)?, &key)?;
            let rows = keys_with_prefix(&txn.open_table(SERVER_CHANGES)?, &key)?;
            let mut history = txn.open_table(SERVER_CHANGES)?;
            for k in rows {
                history.remove(k.as_slice())?;
            }
            drop(history);
            let server = super::server_value::get(&txn.open_table(SERVERS)?, &key)?
                .ok_or(Error::NotFound)?;
            let changes = crate::model::history(&server, changes);
            let mut record =
                serde_json::to_value(server).map_err(|e| Error::internal(e.to_string()))?;
            if let Some(fields) = record.as_object_mut() {
                fields.remove("change_seq");
                fields.insert("changes".into(), serde_json::json!(changes));
            }
            let json = serde_json::to_vec(&record).map_err(|e| Error::internal(e.to_string()))?;
            txn.open_table(SERVERS)?
                .insert(key.as_slice(), json.as_slice())?;
            forget_census(txn)?;
            migrate::set_version(txn, 1)
        })
        .await
    }

    /// [`crate::store::Store::apply_report`] with `meanwhile` awaited between planning
    /// and applying, as when another write lands while a report is being planned.
    pub async fn apply_report_racing(
        &self,
        org: OrgId,
        agent: AgentId,
        report: ReportInput,
        meanwhile: impl std::future::Future<Output = ()>,
    ) -> Result<ReportResponse> {
        let prepared = self.prepare_report(org, agent, &report).await?;
        meanwhile.await;
        self.commit_report(org, agent, report, prepared).await
    }

    /// Pretend a stored server was scored by another rule set (for rescoring tests).
    pub async fn set_rules_version_for_test(
        &self,
        org: OrgId,
        server: ServerId,
        version: u32,
        score: u8,
    ) -> Result<()> {
        self.write(move |txn| {
            let before =
                super::server_value::get(&txn.open_table(SERVERS)?, &server_key(org, server))?
                    .ok_or(Error::NotFound)?;
            let mut after = before.clone();
            after.rules_version = version;
            after.risk_score = score;
            after.risk_level = RiskLevel::from_score(score);
            servers::put_server(txn, &ServerWrite::silent(Some(before), after))
        })
        .await
    }
}

/// Every record of `table` replaced by `recode(key, value)`.
fn rewrite(
    txn: &WriteTransaction,
    table: TableDefinition<'_, Bytes, Bytes>,
    recode: impl Fn(&[u8], &[u8]) -> Result<Vec<u8>>,
) -> Result<()> {
    use redb::ReadableTable as _;
    let rows: Vec<(Vec<u8>, Vec<u8>)> = txn
        .open_table(table)?
        .iter()?
        .map(|e| e.map(|(k, v)| (k.value().to_vec(), v.value().to_vec())))
        .collect::<std::result::Result<_, _>>()?;
    let mut open = txn.open_table(table)?;
    for (k, v) in rows {
        open.insert(k.as_slice(), recode(&k, &v)?.as_slice())?;
    }
    Ok(())
}

/// The compact table named `name`.
fn compact_table(name: &str) -> Result<migrate::CompactTable> {
    migrate::COMPACT_TABLES
        .into_iter()
        .find(|c| redb::TableHandle::name(&c.table) == name)
        .ok_or(Error::NotFound)
}

/// Drop layout 7's index of agents by when they were last heard from, and layout 8's.
fn forget_layouts_7_and_8(txn: &WriteTransaction) -> Result<()> {
    txn.delete_table(super::schema::SILENT_WATCH)?;
    forget_alerts_of_server(txn)
}

/// Drop layout 8's lists of each server's alerts.
fn forget_alerts_of_server(txn: &WriteTransaction) -> Result<()> {
    txn.delete_table(super::schema::ALERTS_OF_SERVER)?;
    Ok(())
}
