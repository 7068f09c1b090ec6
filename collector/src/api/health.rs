//! Health probes: `/health` (seed shape), `/health/live` (the process answers and its
//! store has not failed beyond recovery; 503 then, so that the service manager
//! restarts it) and `/health/ready` (the store can be read and written; 503 otherwise,
//! e.g. while the disk is full). Public.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::state::SharedState;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `GET /health`: `{"status", "version", "database"}`.
pub async fn health(State(state): State<SharedState>) -> (StatusCode, Json<Value>) {
    match state.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({ "status": "healthy", "version": VERSION, "database": "connected" })),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "Health check: store is not usable.");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    json!({ "status": "unhealthy", "version": VERSION, "database": "disconnected" }),
                ),
            )
        }
    }
}

/// `GET /health/live`.
pub async fn live(State(state): State<SharedState>) -> (StatusCode, Json<Value>) {
    match state.store.alive() {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "alive" }))),
        Err(why) => {
            tracing::error!(reason = %why, "Liveness check: the store cannot recover; restart the collector.");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "failed", "reason": why })),
            )
        }
    }
}

/// `GET /health/ready`.
pub async fn ready(State(state): State<SharedState>) -> (StatusCode, Json<Value>) {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Err(e) => {
            tracing::warn!(error = %e, "Readiness check: store is not usable.");
            let reason = match e {
                crate::store::Error::StorageFull => "the disk holding the database is full",
                crate::store::Error::Unavailable(_) => {
                    "the store is unavailable: recovering from a storage failure, or the database cannot be reached"
                }
                _ => "store is not usable",
            };
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "reason": reason })),
            )
        }
    }
}
