//! API tokens: records by organisation, the hash index a request's token is found by,
//! and their last-used times (saved in batches from memory).

use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::{ApiTokenId, OrgId, UserId};
use redb::{ReadTransaction, WriteTransaction};

use super::schema::{API_TOKEN_HASHES, API_TOKENS, get_record, list_records, org_key, put_record};
use crate::model::{ApiToken, User};
use crate::store::{Error, Result};

fn token_key(org: OrgId, id: ApiTokenId) -> Vec<u8> {
    org_key(org, id.to_bytes())
}

pub(super) fn create(txn: &WriteTransaction, token: &ApiToken) -> Result<()> {
    let key = token_key(token.org_id, token.id);
    put_record(txn, API_TOKENS, &key, token)?;
    txn.open_table(API_TOKEN_HASHES)?
        .insert(token.token_hash.as_slice(), key.as_slice())?;
    Ok(())
}

/// The token with this hash and its owner (`None` when either is gone).
pub(super) fn find(txn: &ReadTransaction, hash: [u8; 32]) -> Result<Option<(ApiToken, User)>> {
    let Some(key) = txn
        .open_table(API_TOKEN_HASHES)?
        .get(hash.as_slice())?
        .map(|v| v.value().to_vec())
    else {
        return Ok(None);
    };
    let Some(token) = get_record::<ApiToken, _>(&txn.open_table(API_TOKENS)?, &key)? else {
        return Ok(None);
    };
    match super::accounts::get_user(txn, token.org_id, token.user_id) {
        Ok(user) => Ok(Some((token, user))),
        Err(Error::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The organisation's tokens, or one user's.
pub(super) fn list(
    txn: &ReadTransaction,
    org: OrgId,
    user: Option<UserId>,
) -> Result<Vec<ApiToken>> {
    let mut tokens: Vec<ApiToken> = list_records(&txn.open_table(API_TOKENS)?, &org.to_bytes())?;
    tokens.retain(|t| user.is_none_or(|u| t.user_id == u));
    Ok(tokens)
}

pub(super) fn get(txn: &ReadTransaction, org: OrgId, id: ApiTokenId) -> Result<ApiToken> {
    get_record(&txn.open_table(API_TOKENS)?, &token_key(org, id))?.ok_or(Error::NotFound)
}

/// Revoke a token: it is gone, and so is its hash.
pub(super) fn delete(txn: &WriteTransaction, org: OrgId, id: ApiTokenId) -> Result<ApiToken> {
    let key = token_key(org, id);
    let token: ApiToken = get_record(&txn.open_table(API_TOKENS)?, &key)?.ok_or(Error::NotFound)?;
    txn.open_table(API_TOKENS)?.remove(key.as_slice())?;
    txn.open_table(API_TOKEN_HASHES)?
        .remove(token.token_hash.as_slice())?;
    Ok(token)
}

/// Revoke every token of a user (the user is removed).
pub(super) fn delete_of_user(txn: &WriteTransaction, org: OrgId, user: UserId) -> Result<()> {
    let tokens: Vec<ApiToken> = list_records(&txn.open_table(API_TOKENS)?, &org.to_bytes())?;
    for token in tokens.into_iter().filter(|t| t.user_id == user) {
        delete(txn, org, token.id)?;
    }
    Ok(())
}

/// Save last-used times kept in memory (tokens revoked since are skipped).
pub(super) fn touch(
    txn: &WriteTransaction,
    used: &[(OrgId, ApiTokenId, DateTime<Utc>)],
) -> Result<()> {
    for (org, id, at) in used {
        let key = token_key(*org, *id);
        let Some(mut token) = get_record::<ApiToken, _>(&txn.open_table(API_TOKENS)?, &key)? else {
            continue;
        };
        if token.last_used_at.is_none_or(|t| t < *at) {
            token.last_used_at = Some(*at);
            put_record(txn, API_TOKENS, &key, &token)?;
        }
    }
    Ok(())
}
