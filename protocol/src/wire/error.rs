//! The collector's error body: `{"error": {"code", "message", "details"}}`.

use serde::{Deserialize, Serialize};

/// Every error the collector answers has this shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The error itself.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// A stable, machine-readable code (`not_found`, `unauthorized`, `validation_failed`, ...).
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// Structured facts about the error (the offending field, the allowed values, ...).
    #[serde(default)]
    pub details: serde_json::Value,
}
