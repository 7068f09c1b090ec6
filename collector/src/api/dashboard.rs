//! `/dashboard/*`: counts and the riskiest servers, from aggregates kept at write time.

use axum::Json;
use axum::extract::State;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::{ApiQuery, AuthUser};
use super::param;
use super::servers::{ServerView, views};
use crate::state::SharedState;

/// Exactly the seed's fields.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Stats {
    pub total_servers: u64,
    pub critical_count: u64,
    pub high_count: u64,
    pub medium_count: u64,
    pub low_count: u64,
    pub active_agents: u64,
    pub unresolved_alerts: u64,
}

/// `GET /dashboard/stats`.
pub async fn stats(
    State(state): State<SharedState>,
    auth: AuthUser,
) -> Result<Json<Stats>, ApiError> {
    let org = auth.user.org_id;
    let counts = state.store.server_counts(org).await?;
    let threshold =
        chrono::Duration::from_std(state.settings.offline_after).unwrap_or(chrono::Duration::MAX);
    let active_agents = state.presence.count_since(
        org,
        Utc::now().checked_sub_signed(threshold).unwrap_or_default(),
    );
    Ok(Json(Stats {
        total_servers: counts.total(),
        critical_count: counts.critical,
        high_count: counts.high,
        medium_count: counts.medium,
        low_count: counts.low,
        active_agents,
        unresolved_alerts: state.store.open_alert_count(org).await?,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Distribution {
    pub critical: u64,
    pub high: u64,
    pub medium: u64,
    pub low: u64,
    pub total: u64,
}

/// `GET /dashboard/risk-distribution`: servers per level.
pub async fn risk_distribution(
    State(state): State<SharedState>,
    auth: AuthUser,
) -> Result<Json<Distribution>, ApiError> {
    let c = state.store.server_counts(auth.user.org_id).await?;
    Ok(Json(Distribution {
        critical: c.critical,
        high: c.high,
        medium: c.medium,
        low: c.low,
        total: c.total(),
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TopParams {
    pub limit: Option<String>,
}

/// `GET /dashboard/top-risks?limit=5`: active servers, highest risk first (limit 1–100).
pub async fn top_risks(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiQuery(params): ApiQuery<TopParams>,
) -> Result<Json<Vec<ServerView>>, ApiError> {
    let limit = match param(&params.limit) {
        None => 5,
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| {
                ApiError::invalid_field("limit", format!("limit must be from 1 to 100, got {v:?}"))
            })?,
    };
    let org = auth.user.org_id;
    let servers = state.store.top_risks(org, limit).await?;
    Ok(Json(views(&state, org, &servers).await?))
}
