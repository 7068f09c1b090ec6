//! Organisations, users (one email per user across the installation), and login
//! sessions.

use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::{OrgId, SessionId, UserId};

use super::sql::{Db, doc, docs, exec, is_unique_violation, json, row, rows, text};
use crate::model::{Org, Role, Session, User};
use crate::store::{Error, OrgPatch, Result, UserPatch};

const LAST_ADMIN: Error = Error::Conflict("the organisation must keep at least one active admin");
const EMAIL_TAKEN: Error = Error::Conflict("email is already registered");

async fn insert_user(db: &Db, user: &User) -> Result<()> {
    let statement = db
        .prepare_cached("INSERT INTO users (org, id, email, doc) VALUES ($1, $2, $3, $4)")
        .await?;
    match db
        .execute(
            &statement,
            &[&user.org_id.0, &user.id.0, &text(&user.email), &json(user)?],
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(EMAIL_TAKEN),
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn create_org_with_admin(
    db: &Db,
    org: &Org,
    admin: &User,
    only_if_first: bool,
) -> Result<()> {
    if only_if_first {
        // Two first registrations at once (on two instances): the lock orders them.
        exec(db, "LOCK TABLE orgs IN SHARE ROW EXCLUSIVE MODE", &[]).await?;
        if row(db, "SELECT 1 FROM orgs LIMIT 1", &[]).await?.is_some() {
            return Err(Error::RegistrationClosed);
        }
    }
    if row(
        db,
        "SELECT 1 FROM users WHERE email = $1",
        &[&text(&admin.email)],
    )
    .await?
    .is_some()
    {
        return Err(EMAIL_TAKEN);
    }
    exec(
        db,
        "INSERT INTO orgs (id, doc) VALUES ($1, $2)",
        &[&org.id.0, &json(org)?],
    )
    .await?;
    insert_user(db, admin).await
}

pub(super) async fn get_org(db: &Db, org: OrgId) -> Result<Org> {
    let found = row(db, "SELECT doc FROM orgs WHERE id = $1", &[&org.0]).await?;
    doc(&found.ok_or(Error::NotFound)?, 0)
}

pub(super) async fn update_org(
    db: &Db,
    org: OrgId,
    patch: OrgPatch,
    now: DateTime<Utc>,
) -> Result<Org> {
    let found = row(
        db,
        "SELECT doc FROM orgs WHERE id = $1 FOR UPDATE",
        &[&org.0],
    )
    .await?;
    let mut record: Org = doc(&found.ok_or(Error::NotFound)?, 0)?;
    if let Some(name) = patch.name {
        record.name = name;
    }
    if let Some(email) = patch.alert_email {
        record.alert_email = email;
    }
    record.updated_at = now;
    exec(
        db,
        "UPDATE orgs SET doc = $2 WHERE id = $1",
        &[&org.0, &json(&record)?],
    )
    .await?;
    Ok(record)
}

pub(super) async fn find_user_by_email(db: &Db, email: &str) -> Result<Option<User>> {
    row(
        db,
        "SELECT doc FROM users WHERE email = $1",
        &[&text(email)],
    )
    .await?
    .map(|r| doc(&r, 0))
    .transpose()
}

pub(super) async fn get_user(db: &Db, org: OrgId, user: UserId) -> Result<User> {
    let found = row(
        db,
        "SELECT doc FROM users WHERE org = $1 AND id = $2",
        &[&org.0, &user.0],
    )
    .await?;
    doc(&found.ok_or(Error::NotFound)?, 0)
}

pub(super) async fn list_users(db: &Db, org: OrgId) -> Result<Vec<User>> {
    docs(
        &rows(
            db,
            "SELECT doc FROM users WHERE org = $1 ORDER BY id",
            &[&org.0],
        )
        .await?,
    )
}

pub(super) async fn create_user(db: &Db, org: OrgId, user: &User) -> Result<()> {
    if user.org_id != org
        || row(db, "SELECT 1 FROM orgs WHERE id = $1", &[&org.0])
            .await?
            .is_none()
    {
        return Err(Error::NotFound);
    }
    insert_user(db, user).await
}

/// Whether `user` is the organisation's only active admin (the admins are locked
/// while the caller decides).
async fn is_last_admin(db: &Db, user: &User) -> Result<bool> {
    if user.role != Role::Admin || !user.is_active {
        return Ok(false);
    }
    let admins = rows(
        db,
        "SELECT doc FROM users WHERE org = $1 FOR UPDATE",
        &[&user.org_id.0],
    )
    .await?;
    let active = docs::<User>(&admins)?
        .iter()
        .filter(|u| u.role == Role::Admin && u.is_active)
        .count();
    Ok(active <= 1)
}

async fn user_for_write(db: &Db, org: OrgId, user: UserId) -> Result<User> {
    let found = row(
        db,
        "SELECT doc FROM users WHERE org = $1 AND id = $2 FOR UPDATE",
        &[&org.0, &user.0],
    )
    .await?;
    doc(&found.ok_or(Error::NotFound)?, 0)
}

pub(super) async fn update_user(
    db: &Db,
    org: OrgId,
    user: UserId,
    mut patch: UserPatch,
    now: DateTime<Utc>,
) -> Result<User> {
    let mut record = user_for_write(db, org, user).await?;
    let stays_admin = patch.role.unwrap_or(record.role) == Role::Admin
        && patch.is_active.unwrap_or(record.is_active);
    if !stays_admin && is_last_admin(db, &record).await? {
        return Err(LAST_ADMIN);
    }
    if let Some(email) = patch.email.take().filter(|e| *e != record.email) {
        record.email = email;
    }
    patch.apply_except_email(&mut record, now);
    let statement = db
        .prepare_cached("UPDATE users SET email = $3, doc = $4 WHERE org = $1 AND id = $2")
        .await?;
    match db
        .execute(
            &statement,
            &[&org.0, &user.0, &text(&record.email), &json(&record)?],
        )
        .await
    {
        Ok(_) => Ok(record),
        Err(e) if is_unique_violation(&e) => Err(EMAIL_TAKEN),
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn delete_user(db: &Db, org: OrgId, user: UserId) -> Result<()> {
    let record = user_for_write(db, org, user).await?;
    if is_last_admin(db, &record).await? {
        return Err(LAST_ADMIN);
    }
    exec(
        db,
        "DELETE FROM users WHERE org = $1 AND id = $2",
        &[&org.0, &user.0],
    )
    .await?;
    exec(
        db,
        "DELETE FROM api_tokens WHERE org = $1 AND user_id = $2",
        &[&org.0, &user.0],
    )
    .await?;
    end_sessions(db, org, user, None).await
}

pub(super) async fn create_session(db: &Db, session: &Session) -> Result<()> {
    exec(
        db,
        "INSERT INTO sessions (id, org, user_id, doc) VALUES ($1, $2, $3, $4)",
        &[
            &session.id.0,
            &session.org_id.0,
            &session.user_id.0,
            &json(session)?,
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn get_session(db: &Db, session: SessionId) -> Result<(Session, User)> {
    let found = row(
        db,
        "SELECT s.doc, u.doc FROM sessions s JOIN users u ON u.org = s.org AND u.id = s.user_id \
         WHERE s.id = $1",
        &[&session.0],
    )
    .await?
    .ok_or(Error::NotFound)?;
    Ok((doc(&found, 0)?, doc(&found, 1)?))
}

pub(super) async fn rotate_session(
    db: &Db,
    session: SessionId,
    expected_jti: &str,
    new_jti: String,
    expires_at: DateTime<Utc>,
) -> Result<Option<Session>> {
    let found = row(
        db,
        "SELECT doc FROM sessions WHERE id = $1 FOR UPDATE",
        &[&session.0],
    )
    .await?;
    let Some(found) = found else {
        return Ok(None);
    };
    let mut record: Session = doc(&found, 0)?;
    if record.refresh_jti != expected_jti {
        delete_session(db, session).await?;
        return Ok(None);
    }
    record.refresh_jti = new_jti;
    record.expires_at = expires_at;
    exec(
        db,
        "UPDATE sessions SET doc = $2 WHERE id = $1",
        &[&session.0, &json(&record)?],
    )
    .await?;
    Ok(Some(record))
}

pub(super) async fn delete_session(db: &Db, session: SessionId) -> Result<()> {
    exec(db, "DELETE FROM sessions WHERE id = $1", &[&session.0]).await?;
    Ok(())
}

pub(super) async fn end_sessions(
    db: &Db,
    org: OrgId,
    user: UserId,
    keep: Option<SessionId>,
) -> Result<()> {
    let keep = keep.map(|k| k.0);
    exec(
        db,
        "DELETE FROM sessions WHERE org = $1 AND user_id = $2 AND id IS DISTINCT FROM $3",
        &[&org.0, &user.0, &keep],
    )
    .await?;
    Ok(())
}
