//! `GET /mcp/census?group_by=package|url|server_name&sort=hosts:desc&page=&page_size=`:
//! one row per distinct package (or remote URL, or server name) across the
//! organisation's active servers, from counts kept at write time.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;

use super::error::ApiError;
use super::extract::AuthUser;
use super::{PageResponse, paging, param, parse_sort};
use crate::census::{Group, Row};
use crate::state::SharedState;
use crate::store::{CensusQuery, Direction};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CensusParams {
    /// `package` (the default), `url` or `server_name`.
    pub group_by: Option<String>,
    /// `hosts` (the default, most first) or `key`, with `:asc` or `:desc`.
    pub sort: Option<String>,
    pub page: Option<String>,
    pub page_size: Option<String>,
}

/// What the census sorts by.
#[derive(Clone, Copy)]
enum Sort {
    Hosts,
    Key,
}

/// `GET /mcp/census` (any user).
pub async fn census(
    State(state): State<SharedState>,
    auth: AuthUser,
    Query(params): Query<CensusParams>,
) -> Result<Json<PageResponse<Row>>, ApiError> {
    let (page, page_size) = paging(&params.page, &params.page_size)?;
    let group = match param(&params.group_by) {
        None => Group::Package,
        Some(v) => Group::ALL
            .into_iter()
            .find(|g| g.as_str() == v)
            .ok_or_else(|| {
                ApiError::invalid_field("group_by", "group_by must be package, url or server_name")
            })?,
    };
    let (sort, direction) = parse_sort(
        &params.sort,
        &[("hosts", Sort::Hosts), ("key", Sort::Key)],
        Direction::Desc,
    )?
    .unwrap_or((Sort::Hosts, Direction::Desc));
    let org = auth.user.org_id;
    let query = CensusQuery {
        group,
        by_hosts: matches!(sort, Sort::Hosts),
        direction,
        page,
        page_size,
    };
    let policy = state.store.get_policy(org).await?;
    let found = state.store.census(org, query).await?;
    let items = found
        .items
        .into_iter()
        .map(|(counts, versions)| crate::census::row(counts, versions, &policy))
        .collect();
    Ok(Json(PageResponse::new(items, found.total, page, page_size)))
}
