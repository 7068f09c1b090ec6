//! `GET /mcp/census?group_by=package|url|server_name&sort=hosts:desc&page=&page_size=`:
//! one row per distinct package (or remote URL, or server name) across the
//! organisation's active servers, from counts kept at write time.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{ApiQuery, AuthUser};
use super::{PageResponse, paging, param, parse_sort};
use crate::census::{Group, Row};
use crate::state::SharedState;
use crate::store::{CensusQuery, Direction};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CensusParams {
    /// `package` (the default), `url` or `server_name`.
    #[param(value_type = Option<String>, pattern = "^\\s*(package|url|server_name)?\\s*$")]
    pub group_by: Option<String>,
    /// `hosts` (the default, most first) or `key`, with `:asc` or `:desc`.
    #[param(value_type = Option<String>, pattern = "^\\s*((hosts|key)(:(asc|desc))?)?\\s*$")]
    pub sort: Option<String>,
    /// From 1 (default 1).
    #[param(value_type = Option<u64>, minimum = 1, maximum = 1000000)]
    pub page: Option<String>,
    /// 1 to 100 (default 25).
    #[param(value_type = Option<u64>, minimum = 1, maximum = 100)]
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
    ApiQuery(params): ApiQuery<CensusParams>,
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
