//! The HTTP API: one module per resource, the error envelope ([`error`]), the
//! extractors that authenticate callers ([`extract`]), and the shapes shared by
//! several resources (pagination, input checks).

pub mod agents;
pub mod alerts;
pub mod audit;
pub mod auth;
pub mod census;
pub mod dashboard;
pub mod docs;
pub mod enroll;
pub mod error;
pub mod events;
pub mod export;
pub mod extract;
pub mod health;
pub mod notifications;
pub mod policy;
pub mod servers;
pub mod tokens;
pub mod users;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use serde::{Deserialize, Deserializer, Serialize};

use self::error::ApiError;

/// Largest page a list answers.
pub const MAX_PAGE_SIZE: u64 = 100;
/// Page size when none is asked for.
pub const DEFAULT_PAGE_SIZE: u64 = 25;

/// A page of a list: `{"items", "total", "page", "page_size", "has_more"}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PageResponse<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub page: u64,
    pub page_size: u64,
    pub has_more: bool,
}

impl<T> PageResponse<T> {
    pub fn new(items: Vec<T>, total: u64, page: u64, page_size: u64) -> Self {
        let shown = page
            .saturating_sub(1)
            .saturating_mul(page_size)
            .saturating_add(items.len() as u64);
        Self {
            has_more: shown < total,
            items,
            total,
            page,
            page_size,
        }
    }
}

/// A query parameter, treating an empty value as absent.
pub fn param(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// Parse `page` and `page_size` (1-based; size 1..=100).
pub fn paging(page: &Option<String>, page_size: &Option<String>) -> Result<(u64, u64), ApiError> {
    let page = match param(page) {
        None => 1,
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|p| (1..=1_000_000).contains(p))
            .ok_or_else(|| {
                ApiError::invalid_field(
                    "page",
                    format!("page must be a whole number from 1, got {v:?}"),
                )
            })?,
    };
    let page_size = match param(page_size) {
        None => DEFAULT_PAGE_SIZE,
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|s| (1..=MAX_PAGE_SIZE).contains(s))
            .ok_or_else(|| {
                ApiError::invalid_field(
                    "page_size",
                    format!("page_size must be from 1 to {MAX_PAGE_SIZE}, got {v:?}"),
                )
            })?,
    };
    Ok((page, page_size))
}

/// Parse an identifier from the path; a malformed one is a 404 of that resource.
pub fn path_id<T: std::str::FromStr>(raw: &str, what: &str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found(what))
}

/// Lowercase and check an email address.
pub fn normalise_email(field: &str, email: &str) -> Result<String, ApiError> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if valid {
        Ok(email)
    } else {
        Err(ApiError::validation(
            field,
            format!("{field} is not a valid email address"),
        ))
    }
}

/// Check a new password's length (8 to 256 characters).
pub fn check_password(field: &str, password: &str) -> Result<(), ApiError> {
    let n = password.chars().count();
    if (8..=256).contains(&n) {
        Ok(())
    } else {
        Err(ApiError::validation(
            field,
            format!("{field} must be 8 to 256 characters long"),
        ))
    }
}

/// The longest name a person gives something (a user, an organisation, an agent, an
/// enroll secret, a policy entry) and the longest search, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// Trim a display name and check it is 1 to [`MAX_NAME_CHARS`] characters.
pub fn check_name(field: &str, value: &str) -> Result<String, ApiError> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.chars().count() > MAX_NAME_CHARS {
        Err(ApiError::validation(
            field,
            format!("{field} must be 1 to {MAX_NAME_CHARS} characters long"),
        ))
    } else {
        Ok(trimmed.to_owned())
    }
}

/// For PATCH bodies: tells an absent field (`None`) from an explicit `null` (`Some(None)`).
pub fn double_option<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

/// The caller's network address (the TCP peer).
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip()),
        ))
    }
}

/// Parse `sort=<field>[:asc|desc]` against the fields a list sorts by; the direction
/// defaults to `default`. An unknown field or direction is a 400 naming `sort`.
pub fn parse_sort<F: Copy>(
    value: &Option<String>,
    fields: &[(&str, F)],
    default: crate::store::Direction,
) -> Result<Option<(F, crate::store::Direction)>, ApiError> {
    use crate::store::Direction;
    let Some(raw) = param(value) else {
        return Ok(None);
    };
    let names: Vec<&str> = fields.iter().map(|(n, _)| *n).collect();
    let refuse = |why: String| {
        ApiError::invalid_field("sort", why)
            .with_details(serde_json::json!({ "field": "sort", "allowed": names }))
    };
    let (name, direction) = match raw.split_once(':') {
        None => (raw, default),
        Some((name, "asc")) => (name, Direction::Asc),
        Some((name, "desc")) => (name, Direction::Desc),
        Some((_, other)) => {
            return Err(refuse(format!(
                "sort direction must be asc or desc, not {:?}",
                crate::notify::text::clean(other, 20)
            )));
        }
    };
    let field = fields
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .ok_or_else(|| {
            refuse(format!(
                "cannot sort by {:?}; sort by one of {}",
                crate::notify::text::clean(name, 40),
                names.join(", ")
            ))
        })?;
    Ok(Some((field, direction)))
}

/// The names of the fields a PATCH body set (for the audit log's details).
pub fn changed_fields(fields: &[(&'static str, bool)]) -> Vec<&'static str> {
    fields
        .iter()
        .filter(|(_, set)| *set)
        .map(|(name, _)| *name)
        .collect()
}

/// Run CPU-heavy work (argon2) off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked_and_lowercased() {
        assert_eq!(
            normalise_email("email", " Jane@Example.COM ").unwrap(),
            "jane@example.com"
        );
        for bad in [
            "",
            "jane",
            "@example.com",
            "jane@",
            "jane@example",
            "ja ne@example.com",
            "a@b@c.com",
            "jane@.com",
        ] {
            assert!(normalise_email("email", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn paging_defaults_and_bounds() {
        assert_eq!(paging(&None, &None).unwrap(), (1, 25));
        assert_eq!(
            paging(&Some("3".into()), &Some("100".into())).unwrap(),
            (3, 100)
        );
        for (p, s) in [
            ("0", "10"),
            ("x", "10"),
            ("1", "0"),
            ("1", "101"),
            ("1", "-5"),
        ] {
            assert!(paging(&Some(p.into()), &Some(s.into())).is_err(), "{p} {s}");
        }
    }

    #[test]
    fn has_more_is_exact() {
        assert!(PageResponse::new(vec![1, 2], 5, 1, 2).has_more);
        assert!(!PageResponse::new(vec![5], 5, 3, 2).has_more);
        assert!(!PageResponse::<u8>::new(vec![], 0, 1, 25).has_more);
    }
}
