//! The console's stylesheet and script, compiled into the binary and served under a
//! name that holds their content hash, so that browsers may keep them for a year and
//! a new version is a new name.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

struct Asset {
    /// `console.<hash>.css`
    name: String,
    content_type: &'static str,
    body: &'static str,
}

fn asset(stem: &str, ext: &str, content_type: &'static str, body: &'static str) -> Asset {
    let hash = hex::encode(&Sha256::digest(body.as_bytes())[..8]);
    Asset {
        name: format!("{stem}.{hash}.{ext}"),
        content_type,
        body,
    }
}

static CSS: LazyLock<Asset> = LazyLock::new(|| {
    asset(
        "console",
        "css",
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    )
});

static JS: LazyLock<Asset> = LazyLock::new(|| {
    asset(
        "console",
        "js",
        "text/javascript; charset=utf-8",
        include_str!("assets/console.js"),
    )
});

/// Where the stylesheet is.
pub fn css_url() -> String {
    format!("/ui/assets/{}", CSS.name)
}

/// Where the script is.
pub fn js_url() -> String {
    format!("/ui/assets/{}", JS.name)
}

/// `GET /ui/assets/{file}`: an asset by its hashed name, cached for a year.
pub async fn serve(Path(file): Path<String>) -> Response {
    let Some(asset) = [&*CSS, &*JS].into_iter().find(|a| a.name == file) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_content_hash() {
        assert!(css_url().starts_with("/ui/assets/console."));
        assert!(css_url().ends_with(".css"));
        assert_ne!(css_url(), js_url());
        let hash = CSS.name.split('.').nth(1).unwrap();
        assert_eq!(hash.len(), 16);
    }
}
