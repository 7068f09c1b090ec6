//! `GET /openapi.json` and `GET /docs`: the OpenAPI document (made once, from the route
//! table) and a reference page rendered from it on the server. Nothing is fetched from
//! elsewhere: the page works air-gapped.

use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

/// The document as JSON, made at first use.
fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        crate::openapi::document(&crate::router::routes())
            .to_json()
            .unwrap_or_else(|_| "{}".to_owned())
    })
}

/// `GET /openapi.json` (public).
pub async fn openapi() -> Response {
    let mut response = document().to_owned().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A schema's name (`ServerView`, `[AgentView]`), or its type.
fn schema_name(schema: &Value) -> String {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return r.rsplit('/').next().unwrap_or_default().to_owned();
    }
    if let Some(items) = schema.get("items") {
        return format!("[{}]", schema_name(items));
    }
    schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("object")
        .to_owned()
}

/// The first content of a body or answer: its media type and schema name.
fn first_content(holder: &Value) -> Option<(String, String)> {
    let (ct, c) = holder.get("content")?.as_object()?.iter().next()?;
    Some((
        ct.clone(),
        c.get("schema").map(schema_name).unwrap_or_default(),
    ))
}

fn operation(method: &str, path: &str, op: &Value) -> Markup {
    let text = |key: &str| {
        op.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let security: Vec<String> = op
        .get("security")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| {
            s.as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>().join(" + "))
        })
        .collect();
    let params: Vec<(String, String)> = op
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let get = |k: &str| {
                p.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            (get("name"), get("in"))
        })
        .collect();
    let body = op.get("requestBody").and_then(first_content);
    let answers: Vec<(String, String)> = op
        .get("responses")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(code, _)| code.as_str() != "default")
        .map(|(code, r)| {
            let what = first_content(r)
                .map(|(ct, name)| format!("{ct} {name}"))
                .unwrap_or_default();
            (code.clone(), what)
        })
        .collect();
    html! {
        section.op id=(text("operationId")) {
            h3 { code.method { (method) } " " code { (path) } }
            p { (text("summary")) }
            dl {
                dt { "Who" }
                dd { @if security.is_empty() { "anyone" } @else { (security.join(" or ")) } }
                @for (name, place) in &params {
                    dt { "Parameter" }
                    dd { code { (name) } " (" (place) ")" }
                }
                @if let Some((ct, name)) = &body {
                    dt { "Body" }
                    dd { (ct) " " a href=(format!("#schema-{}", name.trim_matches(['[', ']']))) { (name) } }
                }
                @for (code, what) in &answers {
                    dt { "Answer" }
                    dd { (code) " " (what) }
                }
                dt { "Errors" }
                dd { "{\"error\": {code, message, details}} with the status that says what went wrong" }
            }
        }
    }
}

/// `GET /docs` (public): the API reference.
pub async fn page() -> Markup {
    let doc: Value = serde_json::from_str(document()).unwrap_or_default();
    let empty = serde_json::Map::new();
    let paths = doc
        .get("paths")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let schemas = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let version = doc
        .pointer("/info/version")
        .and_then(Value::as_str)
        .unwrap_or_default();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "mcpwatch collector API reference" }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                h1 { "mcpwatch collector API " (version) }
                p {
                    "Every path below also answers under " code { (crate::router::API_PREFIX) }
                    ", and with a trailing slash. The machine-readable document: "
                    a href="/openapi.json" { "/openapi.json" } " (OpenAPI 3.1)."
                }
                @for (path, item) in paths.iter().filter(|(p, _)| !p.starts_with(crate::router::API_PREFIX)) {
                    @for method in ["get", "post", "put", "patch", "delete"] {
                        @if let Some(op) = item.get(method) { (operation(&method.to_uppercase(), path, op)) }
                    }
                }
                h2 { "Schemas" }
                @for (name, schema) in schemas {
                    section.schema id=(format!("schema-{name}")) {
                        h3 { (name) }
                        pre { (serde_json::to_string_pretty(schema).unwrap_or_default()) }
                    }
                }
            }
        }
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.4}\
code,pre{font-family:ui-monospace,monospace}pre{background:#f5f5f5;padding:.5rem;overflow:auto;max-height:20rem}\
.op{border-top:1px solid #ddd;padding:.5rem 0}.method{font-weight:bold}dt{font-weight:bold;float:left;clear:left;width:7rem}\
dd{margin-left:7.5rem}";
