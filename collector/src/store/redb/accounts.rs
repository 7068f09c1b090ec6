//! Organisations, users and sessions.

use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::{OrgId, SessionId, UserId};
use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata, WriteTransaction};

use super::schema::{
    Bytes, ORGS, SESSIONS, THIRD_PART, USER_EMAILS, USER_SESSIONS, USERS, cat, decode, get_record,
    id_at, keys_with_prefix, list_records, put_record, scan_prefix, user_key,
};
use crate::model::{Org, Role, Session, User};
use crate::store::{Error, OrgPatch, Result, UserPatch};

const LAST_ADMIN: Error = Error::Conflict("the organisation must keep at least one active admin");
const EMAIL_TAKEN: Error = Error::Conflict("email is already registered");

fn email_taken(txn: &WriteTransaction, email: &str) -> Result<bool> {
    Ok(txn.open_table(USER_EMAILS)?.get(email)?.is_some())
}

/// Store a new user and its email link.
fn insert_user(txn: &WriteTransaction, user: &User) -> Result<()> {
    let key = user_key(user.org_id, user.id);
    put_record(txn, USERS, &key, user)?;
    txn.open_table(USER_EMAILS)?
        .insert(user.email.as_str(), key.as_slice())?;
    Ok(())
}

pub(super) fn create_org_with_admin(
    txn: &WriteTransaction,
    org: &Org,
    admin: &User,
    only_if_first: bool,
) -> Result<()> {
    if only_if_first && !txn.open_table(ORGS)?.is_empty()? {
        return Err(Error::RegistrationClosed);
    }
    if email_taken(txn, &admin.email)? {
        return Err(EMAIL_TAKEN);
    }
    put_record(txn, ORGS, &org.id.to_bytes(), org)?;
    insert_user(txn, admin)
}

pub(super) fn get_org(txn: &ReadTransaction, org: OrgId) -> Result<Org> {
    get_record(&txn.open_table(ORGS)?, &org.to_bytes())?.ok_or(Error::NotFound)
}

pub(super) fn update_org(
    txn: &WriteTransaction,
    org: OrgId,
    patch: OrgPatch,
    now: DateTime<Utc>,
) -> Result<Org> {
    let mut record: Org =
        get_record(&txn.open_table(ORGS)?, &org.to_bytes())?.ok_or(Error::NotFound)?;
    if let Some(name) = patch.name {
        record.name = name;
    }
    if let Some(email) = patch.alert_email {
        record.alert_email = email;
    }
    record.updated_at = now;
    put_record(txn, ORGS, &org.to_bytes(), &record)?;
    Ok(record)
}

pub(super) fn find_user_by_email(txn: &ReadTransaction, email: &str) -> Result<Option<User>> {
    let Some(key) = txn
        .open_table(USER_EMAILS)?
        .get(email)?
        .map(|v| v.value().to_vec())
    else {
        return Ok(None);
    };
    get_record(&txn.open_table(USERS)?, &key)
}

pub(super) fn get_user(txn: &ReadTransaction, org: OrgId, user: UserId) -> Result<User> {
    get_record(&txn.open_table(USERS)?, &user_key(org, user))?.ok_or(Error::NotFound)
}

pub(super) fn list_users(txn: &ReadTransaction, org: OrgId) -> Result<Vec<User>> {
    list_records(&txn.open_table(USERS)?, &org.to_bytes())
}

pub(super) fn create_user(txn: &WriteTransaction, org: OrgId, user: &User) -> Result<()> {
    if user.org_id != org
        || txn
            .open_table(ORGS)?
            .get(org.to_bytes().as_slice())?
            .is_none()
    {
        return Err(Error::NotFound);
    }
    if email_taken(txn, &user.email)? {
        return Err(EMAIL_TAKEN);
    }
    insert_user(txn, user)
}

fn count_active_admins<T: ReadableTable<Bytes, Bytes>>(users: &T, org: OrgId) -> Result<usize> {
    let mut n = 0;
    for (_, v) in scan_prefix(users, &org.to_bytes())? {
        let user: User = decode(&v)?;
        if user.role == Role::Admin && user.is_active {
            n += 1;
        }
    }
    Ok(n)
}

/// Whether taking `user` out of the active admins would leave the organisation
/// without one.
fn is_last_admin(txn: &WriteTransaction, user: &User) -> Result<bool> {
    Ok(user.role == Role::Admin
        && user.is_active
        && count_active_admins(&txn.open_table(USERS)?, user.org_id)? <= 1)
}

pub(super) fn update_user(
    txn: &WriteTransaction,
    org: OrgId,
    user: UserId,
    mut patch: UserPatch,
    now: DateTime<Utc>,
) -> Result<User> {
    let key = user_key(org, user);
    let mut record: User = get_record(&txn.open_table(USERS)?, &key)?.ok_or(Error::NotFound)?;
    let stays_admin = patch.role.unwrap_or(record.role) == Role::Admin
        && patch.is_active.unwrap_or(record.is_active);
    if !stays_admin && is_last_admin(txn, &record)? {
        return Err(LAST_ADMIN);
    }
    let new_email = patch.email.take().filter(|e| *e != record.email);
    if let Some(email) = &new_email
        && email_taken(txn, email)?
    {
        return Err(EMAIL_TAKEN);
    }
    // Checks done; write.
    if let Some(email) = new_email {
        let mut emails = txn.open_table(USER_EMAILS)?;
        emails.remove(record.email.as_str())?;
        emails.insert(email.as_str(), key.as_slice())?;
        record.email = email;
    }
    patch.apply_except_email(&mut record, now);
    put_record(txn, USERS, &key, &record)?;
    Ok(record)
}

pub(super) fn delete_user(txn: &WriteTransaction, org: OrgId, user: UserId) -> Result<()> {
    let key = user_key(org, user);
    let record: User = get_record(&txn.open_table(USERS)?, &key)?.ok_or(Error::NotFound)?;
    if is_last_admin(txn, &record)? {
        return Err(LAST_ADMIN);
    }
    txn.open_table(USERS)?.remove(key.as_slice())?;
    txn.open_table(USER_EMAILS)?.remove(record.email.as_str())?;
    super::tokens::delete_of_user(txn, org, user)?;
    end_sessions(txn, org, user, None)
}

/// A session's entry in `user_sessions`.
fn session_link(session: &Session) -> Vec<u8> {
    cat(&[
        &user_key(session.org_id, session.user_id),
        &session.id.to_bytes(),
    ])
}

pub(super) fn create_session(txn: &WriteTransaction, session: &Session) -> Result<()> {
    put_record(txn, SESSIONS, &session.id.to_bytes(), session)?;
    txn.open_table(USER_SESSIONS)?
        .insert(session_link(session).as_slice(), ())?;
    Ok(())
}

pub(super) fn get_session(txn: &ReadTransaction, session: SessionId) -> Result<(Session, User)> {
    let record: Session =
        get_record(&txn.open_table(SESSIONS)?, &session.to_bytes())?.ok_or(Error::NotFound)?;
    let user = get_user(txn, record.org_id, record.user_id)?;
    Ok((record, user))
}

/// See [`crate::store::Store::rotate_session`]; `None` where the session is gone or
/// was just ended.
pub(super) fn rotate_session(
    txn: &WriteTransaction,
    session: SessionId,
    expected_jti: &str,
    new_jti: String,
    expires_at: DateTime<Utc>,
) -> Result<Option<Session>> {
    let Some(mut record) =
        get_record::<Session, _>(&txn.open_table(SESSIONS)?, &session.to_bytes())?
    else {
        return Ok(None);
    };
    if record.refresh_jti != expected_jti {
        // A refresh token was used twice: someone else may hold it. End the session.
        end_one_session(txn, &record)?;
        return Ok(None);
    }
    record.refresh_jti = new_jti;
    record.expires_at = expires_at;
    put_record(txn, SESSIONS, &session.to_bytes(), &record)?;
    Ok(Some(record))
}

pub(super) fn delete_session(txn: &WriteTransaction, session: SessionId) -> Result<()> {
    let found = get_record::<Session, _>(&txn.open_table(SESSIONS)?, &session.to_bytes())?;
    match found {
        Some(record) => end_one_session(txn, &record),
        None => Ok(()),
    }
}

fn end_one_session(txn: &WriteTransaction, session: &Session) -> Result<()> {
    txn.open_table(SESSIONS)?
        .remove(session.id.to_bytes().as_slice())?;
    txn.open_table(USER_SESSIONS)?
        .remove(session_link(session).as_slice())?;
    Ok(())
}

/// End every session of a user except `keep`.
pub(super) fn end_sessions(
    txn: &WriteTransaction,
    org: OrgId,
    user: UserId,
    keep: Option<SessionId>,
) -> Result<()> {
    let links = keys_with_prefix(&txn.open_table(USER_SESSIONS)?, &user_key(org, user))?;
    let mut sessions = txn.open_table(SESSIONS)?;
    let mut user_sessions = txn.open_table(USER_SESSIONS)?;
    for link in links {
        let sid = SessionId::from_bytes(id_at(&link, THIRD_PART)?);
        if Some(sid) == keep {
            continue;
        }
        sessions.remove(sid.to_bytes().as_slice())?;
        user_sessions.remove(link.as_slice())?;
    }
    Ok(())
}
