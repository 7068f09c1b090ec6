//! `ApiError`: every error the API answers, as `{"error": {code, message, details}}`
//! with its status. 4xx messages say what was wrong with the request; 5xx messages are
//! generic and the cause goes to the log.

use axum::Json;
use axum::extract::rejection::{FormRejection, JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcpwatch_protocol::wire::{ErrorBody, ErrorDetail};
use serde_json::{Value, json};

use crate::{auth, store};

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
    /// Seconds, for 429 and 503.
    pub retry_after: Option<u64>,
    /// What the audit layer should record of this refusal (a failed login).
    pub audit: Option<Box<super::audit::AuditNote>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Value::Object(Default::default()),
            retry_after: None,
            audit: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// Tell the audit layer about this refusal.
    pub fn audited(mut self, note: super::audit::AuditNote) -> Self {
        self.audit = Some(Box::new(note));
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// A query parameter or body field with a value that is not allowed.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_parameter", message)
            .with_details(json!({ "field": field }))
    }

    /// A body that parsed but whose content is not acceptable.
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            message,
        )
        .with_details(json!({ "field": field }))
    }

    /// A JSON body whose field has the wrong type or is missing; `message` is serde's,
    /// optionally prefixed by the field path (`servers[0].args: invalid type ...`).
    pub fn body_field_error(message: &str) -> Self {
        let field = if let Some(rest) = message.split_once("missing field `") {
            rest.1.split('`').next().unwrap_or_default().to_owned()
        } else {
            match message.split_once(": ") {
                Some((path, _)) if !path.contains(' ') => path.to_owned(),
                _ => String::new(),
            }
        };
        let message = if field.is_empty() || message.starts_with(&field) {
            message.to_owned()
        } else {
            format!("{field}: {message}")
        };
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            message,
        )
        .with_details(json!({ "field": field }))
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn rate_limited(retry_after: u64, message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
        e.retry_after = Some(retry_after.max(1));
        e
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body is larger than {limit} bytes"),
        )
        .with_details(json!({ "limit_bytes": limit }))
    }

    /// An internal failure: the cause is logged, the answer says nothing about it.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "Request failed with an internal error.");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the collector's log",
        )
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                details: self.details,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(note) = self.audit {
            response.extensions_mut().insert(*note);
        }
        if let Some(v) = self
            .retry_after
            .and_then(|secs| HeaderValue::from_str(&secs.to_string()).ok())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Map a store error, naming the resource when it is not found.
pub fn or_not_found(what: &'static str) -> impl Fn(store::Error) -> ApiError {
    move |e| match e {
        store::Error::NotFound => ApiError::not_found(what),
        other => other.into(),
    }
}

impl From<store::Error> for ApiError {
    fn from(err: store::Error) -> Self {
        match err {
            store::Error::NotFound => Self::not_found("resource"),
            store::Error::Conflict(what) => Self::conflict(what),
            store::Error::RegistrationClosed => Self::new(
                StatusCode::FORBIDDEN,
                "registration_closed",
                "registration is closed; ask an admin of your organisation to create your account",
            ),
            store::Error::InvalidEnrollSecret => Self::unauthorized("enroll secret is not valid"),
            store::Error::StorageFull => Self::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "storage_full",
                "the collector's disk is full: nothing can be stored until space is freed; reads still work",
            ),
            store::Error::Unavailable(why) => {
                // The cause may name the database's host: logged, not answered.
                tracing::warn!(error = %why, "The store is unavailable.");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "the collector's store is unavailable (recovering from a storage failure, or its database cannot be reached); retry shortly",
                )
            }
            store::Error::Internal(cause) => Self::internal(cause),
        }
    }
}

impl From<auth::Error> for ApiError {
    fn from(err: auth::Error) -> Self {
        match err {
            auth::Error::InvalidToken => Self::unauthorized("token is invalid or expired"),
            other => Self::internal(other),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(e) => {
                // serde's message names the field and what was expected.
                let text = e.body_text();
                let message = text
                    .strip_prefix("Failed to deserialize the JSON body into the target type: ")
                    .unwrap_or(&text);
                Self::body_field_error(message)
            }
            JsonRejection::JsonSyntaxError(e) => {
                Self::new(StatusCode::BAD_REQUEST, "malformed_json", e.body_text())
            }
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected Content-Type: application/json",
            ),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "request body is too large",
                )
            }
            other => Self::new(other.status(), "bad_request", other.body_text()),
        }
    }
}

impl From<FormRejection> for ApiError {
    fn from(rejection: FormRejection) -> Self {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "payload_too_large"
        } else {
            "bad_request"
        };
        Self::new(
            if status.is_client_error() {
                status
            } else {
                StatusCode::BAD_REQUEST
            },
            code,
            rejection.body_text(),
        )
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            rejection.body_text(),
        )
    }
}

/// The answer for a path no route matches.
pub async fn not_found_fallback() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// The answer for a known path with a method it does not take.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint",
    )
}
