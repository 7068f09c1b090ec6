//! Records copied in from another backend (`migrate-store`): each inserted unless a
//! row with its key is there already, so that a copy interrupted at any point is
//! resumed by running it again; the counts follow by their triggers, and each server
//! copied queues its census change in the same transaction.

use super::PgStore;
use super::sql::{Db, count, exec, get, json, row, text};
use crate::store::records::{Record, Table};
use crate::store::tally::Change;
use crate::store::{Error, Result};

/// Insert one record unless its key is taken; answers whether it was inserted.
async fn insert(db: &Db, record: &Record) -> Result<bool> {
    let n = match record {
        Record::Server(_)
        | Record::Change(..)
        | Record::Alert(_)
        | Record::Event(_)
        | Record::Delivery(_)
        | Record::Audit(_) => insert_activity(db, record).await?,
        _ => insert_settings(db, record).await?,
    };
    Ok(n == 1)
}

/// Organisations, people, agents and what they configured.
async fn insert_settings(db: &Db, record: &Record) -> Result<u64> {
    Ok(match record {
        Record::Org(o) => {
            exec(
                db,
                "INSERT INTO orgs (id, doc) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&o.id.0, &json(o)?],
            )
            .await?
        }
        Record::User(u) => {
            exec(
                db,
                "INSERT INTO users (org, id, email, doc) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[&u.org_id.0, &u.id.0, &text(&u.email), &json(u)?],
            )
            .await?
        }
        Record::Session(s) => {
            exec(
                db,
                "INSERT INTO sessions (id, org, user_id, doc) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[&s.id.0, &s.org_id.0, &s.user_id.0, &json(s)?],
            )
            .await?
        }
        Record::Agent(a) => super::agents::copy_in(db, a).await?,
        Record::EnrollSecret(e) => {
            exec(
                db,
                "INSERT INTO enroll_secrets (org, id, secret_hash, doc) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT DO NOTHING",
                &[&e.org_id.0, &e.id.0, &e.secret_hash.as_slice(), &json(e)?],
            )
            .await?
        }
        Record::Policy(org, p) => {
            let version = i64::try_from(p.version).unwrap_or(i64::MAX);
            exec(
                db,
                "INSERT INTO policies (org, version, doc) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&org.0, &version, &json(p)?],
            )
            .await?
        }
        Record::Channel(c) => {
            exec(
                db,
                "INSERT INTO channels (org, id, doc) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&c.org_id.0, &c.id.0, &json(c)?],
            )
            .await?
        }
        Record::ApiToken(t) => {
            exec(
                db,
                "INSERT INTO api_tokens (org, id, user_id, token_hash, doc) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT DO NOTHING",
                &[&t.org_id.0, &t.id.0, &t.user_id.0, &t.token_hash.as_slice(), &json(t)?],
            )
            .await?
        }
        _ => 0,
    })
}

/// Servers and what happened to them.
async fn insert_activity(db: &Db, record: &Record) -> Result<u64> {
    Ok(match record {
        Record::Server(s) => {
            let copied = super::servers::copy_in(db, s).await?;
            if copied == 1
                && let Some(change) = Change::of(None, Some(s))
            {
                exec(
                    db,
                    "INSERT INTO census_queue (doc) VALUES ($1)",
                    &[&json(&change)?],
                )
                .await?;
            }
            copied
        }
        Record::Change(org, server, seq, change) => {
            let seq = i64::try_from(*seq).unwrap_or(i64::MAX);
            exec(
                db,
                "INSERT INTO server_changes (org, server, seq, doc) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT DO NOTHING",
                &[&org.0, &server.0, &seq, &json(change)?],
            )
            .await?
        }
        Record::Alert(a) => super::alerts::copy_in(db, a).await?,
        Record::Event(e) => {
            let id = i64::try_from(e.id).unwrap_or(i64::MAX);
            exec(
                db,
                "INSERT INTO events (org, id, at, doc) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[&e.organization_id.0, &id, &e.timestamp, &json(e)?],
            )
            .await?
        }
        Record::Delivery(d) => super::notifications::copy_in(db, d).await?,
        Record::Audit(entry) => super::audit::copy_in(db, entry).await?,
        _ => 0,
    })
}

impl PgStore {
    /// Copy records in, in one transaction; answers how many were new here.
    pub async fn copy_in(&self, records: Vec<Record>) -> Result<u64> {
        self.writer
            .write(move |db| {
                Box::pin(async move {
                    let mut copied = 0;
                    for record in &records {
                        copied += u64::from(insert(db, record).await?);
                    }
                    Ok(copied)
                })
            })
            .await
    }

    /// How many records `table` holds.
    pub async fn count_of(&self, table: Table) -> Result<u64> {
        let db = self.db().await?;
        let found = row(&db, &format!("SELECT count(*) FROM {}", table.name()), &[])
            .await?
            .ok_or_else(|| Error::internal("count answered nothing"))?;
        Ok(count(get(&found, 0)?))
    }

    /// After a copy: new events are numbered after the copied ones.
    pub async fn after_copy(&self) -> Result<()> {
        let db = self.db().await?;
        exec(
            &db,
            "SELECT setval('event_seq', GREATEST((SELECT max(id) FROM events), \
             (SELECT last_value FROM event_seq), 1))",
            &[],
        )
        .await?;
        Ok(())
    }
}
