//! API tokens: stored by the hash of their secret, listed per organisation or user.

use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::{ApiTokenId, OrgId, UserId};

use super::sql::{Db, doc, docs, exec, json, row, rows};
use crate::model::{ApiToken, User};
use crate::store::{Error, Result};

pub(super) async fn create(db: &Db, token: &ApiToken) -> Result<()> {
    exec(
        db,
        "INSERT INTO api_tokens (org, id, user_id, token_hash, doc) VALUES ($1, $2, $3, $4, $5)",
        &[
            &token.org_id.0,
            &token.id.0,
            &token.user_id.0,
            &token.token_hash.as_slice(),
            &json(token)?,
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn find(db: &Db, hash: [u8; 32]) -> Result<Option<(ApiToken, User)>> {
    let found = row(
        db,
        "SELECT t.doc, u.doc FROM api_tokens t JOIN users u ON u.org = t.org AND u.id = t.user_id \
         WHERE t.token_hash = $1",
        &[&hash.as_slice()],
    )
    .await?;
    found.map(|r| Ok((doc(&r, 0)?, doc(&r, 1)?))).transpose()
}

pub(super) async fn list(db: &Db, org: OrgId, user: Option<UserId>) -> Result<Vec<ApiToken>> {
    let user = user.map(|u| u.0);
    docs(
        &rows(
            db,
            "SELECT doc FROM api_tokens WHERE org = $1 AND ($2::uuid IS NULL OR user_id = $2) \
             ORDER BY id",
            &[&org.0, &user],
        )
        .await?,
    )
}

pub(super) async fn get(db: &Db, org: OrgId, id: ApiTokenId) -> Result<ApiToken> {
    let found = row(
        db,
        "SELECT doc FROM api_tokens WHERE org = $1 AND id = $2",
        &[&org.0, &id.0],
    )
    .await?;
    doc(&found.ok_or(Error::NotFound)?, 0)
}

pub(super) async fn delete(db: &Db, org: OrgId, id: ApiTokenId) -> Result<ApiToken> {
    let found = row(
        db,
        "DELETE FROM api_tokens WHERE org = $1 AND id = $2 RETURNING doc",
        &[&org.0, &id.0],
    )
    .await?;
    doc(&found.ok_or(Error::NotFound)?, 0)
}

pub(super) async fn touch(db: &Db, used: &[(OrgId, ApiTokenId, DateTime<Utc>)]) -> Result<()> {
    for (org, id, at) in used {
        let found = row(
            db,
            "SELECT doc FROM api_tokens WHERE org = $1 AND id = $2 FOR UPDATE",
            &[&org.0, &id.0],
        )
        .await?;
        let Some(found) = found else { continue };
        let mut token: ApiToken = doc(&found, 0)?;
        if token.last_used_at.is_none_or(|t| t < *at) {
            token.last_used_at = Some(*at);
            exec(
                db,
                "UPDATE api_tokens SET doc = $3 WHERE org = $1 AND id = $2",
                &[&org.0, &id.0, &json(&token)?],
            )
            .await?;
        }
    }
    Ok(())
}
