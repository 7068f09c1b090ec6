//! The OpenAPI 3.1 document (`GET /openapi.json`) and the API reference page
//! (`GET /docs`), both made from the route table: every row's path, method and access
//! are the document's, with the row's [`Doc`] for its parameters, body and answer, so
//! the document cannot name a route the collector does not serve, or miss one.

use utoipa::ToSchema;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, ObjectBuilder, OpenApi, OpenApiBuilder,
    PathItem, PathsBuilder, Ref, RefOr, ResponseBuilder, Schema, schema::Type,
};

use crate::router::{API_PREFIX, Access, Route};

/// A schema and the named schemas it refers to, in one media type or several.
#[derive(Clone, Copy)]
pub struct Payload {
    content_type: &'static str,
    /// Further media types with the same schema (an export's formats).
    more: &'static [&'static str],
    schema: fn() -> RefOr<Schema>,
    components: fn(&mut Vec<(String, RefOr<Schema>)>),
}

fn named<T: ToSchema>() -> RefOr<Schema> {
    Ref::from_schema_name(T::name()).into()
}

fn collect<T: ToSchema>(out: &mut Vec<(String, RefOr<Schema>)>) {
    out.push((T::name().into_owned(), T::schema()));
    T::schemas(out);
}

fn list_of<T: ToSchema>() -> RefOr<Schema> {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(named::<T>())
        .into()
}

/// `{"items": [T], "total", "page", "page_size", "has_more"}`.
fn page_of<T: ToSchema>() -> RefOr<Schema> {
    let count = || {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
    };
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("items", list_of::<T>())
        .property("total", count())
        .property("page", count())
        .property("page_size", count())
        .property("has_more", ObjectBuilder::new().schema_type(Type::Boolean))
        .required("items")
        .required("total")
        .required("page")
        .required("page_size")
        .required("has_more")
        .into()
}

fn nothing(_: &mut Vec<(String, RefOr<Schema>)>) {}

fn any_object() -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::Object).into()
}

fn text() -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).into()
}

impl Payload {
    /// A JSON body of `T`.
    pub fn json<T: ToSchema>() -> Self {
        Self {
            content_type: "application/json",
            more: &[],
            schema: named::<T>,
            components: collect::<T>,
        }
    }

    /// A JSON array of `T`.
    pub fn list<T: ToSchema>() -> Self {
        Self {
            content_type: "application/json",
            more: &[],
            schema: list_of::<T>,
            components: collect::<T>,
        }
    }

    /// A page of `T` (the list envelope).
    pub fn page<T: ToSchema>() -> Self {
        Self {
            content_type: "application/json",
            more: &[],
            schema: page_of::<T>,
            components: collect::<T>,
        }
    }

    /// A JSON object of no fixed shape.
    pub fn object() -> Self {
        Self {
            content_type: "application/json",
            more: &[],
            schema: any_object,
            components: nothing,
        }
    }

    /// Text of a media type (an event stream, a CSV file).
    pub fn text(content_type: &'static str) -> Self {
        Self {
            content_type,
            more: &[],
            schema: text,
            components: nothing,
        }
    }

    /// A file in one of several media types.
    pub fn files(types: &'static [&'static str]) -> Self {
        Self {
            content_type: types[0],
            more: &types[1..],
            schema: text,
            components: nothing,
        }
    }
}

/// What the document says of one route besides its path, method and access.
#[derive(Clone, Copy)]
pub struct Doc {
    summary: &'static str,
    params: Option<fn(&str) -> Vec<utoipa::openapi::path::Parameter>>,
    body: Option<Payload>,
    answer: (u16, Option<Payload>),
}

fn query_params<P: utoipa::IntoParams>(_: &str) -> Vec<utoipa::openapi::path::Parameter> {
    P::into_params(|| Some(ParameterIn::Query))
}

impl Doc {
    /// A route answering 200 with nothing described yet.
    pub const fn new(summary: &'static str) -> Self {
        Self {
            summary,
            params: None,
            body: None,
            answer: (200, None),
        }
    }

    /// Its query parameters.
    pub fn query<P: utoipa::IntoParams>(mut self) -> Self {
        self.params = Some(query_params::<P>);
        self
    }

    /// Its request body.
    pub fn body(mut self, payload: Payload) -> Self {
        self.body = Some(payload);
        self
    }

    /// Its answer on success.
    pub fn answers(mut self, status: u16, payload: Payload) -> Self {
        self.answer = (status, Some(payload));
        self
    }

    /// A success without a body (204).
    pub fn no_content(mut self) -> Self {
        self.answer = (204, None);
        self
    }
}

const PERSON_TOKEN: &str = "bearer";
const API_TOKEN: &str = "api_token";
const AGENT_KEY: &str = "agent_key";
const AGENT_SIGNATURE: &str = "agent_signature";

fn method(m: &axum::http::Method) -> HttpMethod {
    match *m {
        axum::http::Method::POST => HttpMethod::Post,
        axum::http::Method::PUT => HttpMethod::Put,
        axum::http::Method::PATCH => HttpMethod::Patch,
        axum::http::Method::DELETE => HttpMethod::Delete,
        _ => HttpMethod::Get,
    }
}

fn content(payload: &Payload) -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some((payload.schema)()))
        .build()
}

/// The schema of a file in `media_type`: JSON of any shape, or text.
fn file_content(media_type: &str) -> utoipa::openapi::Content {
    let schema: RefOr<Schema> = if media_type.contains("json") {
        // `{}`: any JSON value (an export's array, a CycloneDX document).
        ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::SchemaType::AnyValue)
            .into()
    } else {
        text()
    };
    ContentBuilder::new().schema(Some(schema)).build()
}

/// The operation of one route (for a path under `prefix`).
fn operation(
    route: &Route,
    prefix: &str,
    schemas: &mut Vec<(String, RefOr<Schema>)>,
) -> utoipa::openapi::path::Operation {
    let doc = route.doc.unwrap_or(Doc::new(""));
    let id = format!(
        "{}{}{}",
        route.method.as_str().to_lowercase(),
        prefix.replace('/', "_"),
        route.path.replace(['/', '-', '{', '}'], "_")
    );
    let mut op = OperationBuilder::new()
        .operation_id(Some(id))
        .summary((!doc.summary.is_empty()).then_some(doc.summary))
        .tag(
            route
                .path
                .trim_start_matches('/')
                .split('/')
                .next()
                .unwrap_or("api")
                .to_owned(),
        );
    if route.path.contains("{id}") {
        op = op.parameter(
            ParameterBuilder::new()
                .name("id")
                .parameter_in(ParameterIn::Path)
                .required(utoipa::openapi::Required::True)
                .schema(Some(ObjectBuilder::new().schema_type(Type::String).format(
                    Some(utoipa::openapi::SchemaFormat::KnownFormat(
                        utoipa::openapi::KnownFormat::Uuid,
                    )),
                ))),
        );
    }
    if let Some(params) = doc.params {
        op = op.parameters(Some(params(route.path)));
    }
    if let Some(body) = &doc.body {
        (body.components)(schemas);
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .content(body.content_type, content(body))
                .required(Some(utoipa::openapi::Required::True))
                .build(),
        ));
    }
    let (status, answer) = doc.answer;
    let mut ok = ResponseBuilder::new().description("Success");
    if let Some(payload) = &answer {
        (payload.components)(schemas);
        if payload.more.is_empty() {
            ok = ok.content(payload.content_type, content(payload));
        } else {
            for media_type in std::iter::once(&payload.content_type).chain(payload.more) {
                ok = ok.content(*media_type, file_content(media_type));
            }
        }
    }
    op = op.response(status.to_string(), ok.build()).response(
        "default",
        ResponseBuilder::new()
            .description("An error: {\"error\": {code, message, details}}")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(named::<mcpwatch_protocol::wire::ErrorBody>()))
                    .build(),
            )
            .build(),
    );
    secured(op, route.access).build()
}

/// An operation with the credentials its access takes.
fn secured(op: OperationBuilder, access: Access) -> OperationBuilder {
    let scheme = |name: &str| SecurityRequirement::new(name, Vec::<String>::new());
    match access {
        Access::Public => op,
        Access::Person(_) => op
            .security(scheme(PERSON_TOKEN))
            .security(scheme(API_TOKEN)),
        // The signature is needed once the agent has bound a public key.
        Access::Agent => op
            .security(scheme(AGENT_KEY).add(AGENT_SIGNATURE, Vec::<String>::new()))
            .security(scheme(AGENT_KEY)),
    }
}

/// The OpenAPI document of `routes`, each at the root and under `/api/v1`.
pub fn document(routes: &[Route]) -> OpenApi {
    let mut schemas = Vec::new();
    collect::<mcpwatch_protocol::wire::ErrorBody>(&mut schemas);
    let mut paths = PathsBuilder::new();
    for prefix in ["", API_PREFIX] {
        for route in routes {
            let op = operation(route, prefix, &mut schemas);
            paths = paths.path(
                format!("{prefix}{}", route.path),
                PathItem::new(method(&route.method), op),
            );
        }
    }
    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas)
        .security_scheme(
            PERSON_TOKEN,
            SecurityScheme::Http(Http::builder().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").description(Some("An access token from POST /auth/login (EdDSA JWT, 30 minutes).")).build()),
        )
        .security_scheme(
            API_TOKEN,
            SecurityScheme::Http(Http::builder().scheme(HttpAuthScheme::Bearer).bearer_format("mcp_pat_").description(Some("An API token from POST /api-tokens.")).build()),
        )
        .security_scheme(
            AGENT_KEY,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description("X-API-Key", "An agent's key (mcp_sk_...)."))),
        )
        .security_scheme(
            AGENT_SIGNATURE,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description("X-MCPWatch-Signature", "An agent's Ed25519 signature of the method, path, time and body hash, once it has a public key (docs/api.md, Agent request signing)."))),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("mcpwatch collector API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some("MCP server inventories of a fleet, their risk, alerts, notifications and the audit log. Every path answers with and without a trailing slash, at the root and under /api/v1."))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components))
        .build()
}
