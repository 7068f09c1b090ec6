//! Health probes: `/health` (seed shape), `/health/live` (the process answers) and
//! `/health/ready` (the store can be read and written; 503 otherwise). Public.

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
pub async fn live() -> Json<Value> {
    Json(json!({ "status": "alive" }))
}

/// `GET /health/ready`.
pub async fn ready(State(state): State<SharedState>) -> (StatusCode, Json<Value>) {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Err(e) => {
            tracing::warn!(error = %e, "Readiness check: store is not usable.");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "reason": "store is not usable" })),
            )
        }
    }
}
