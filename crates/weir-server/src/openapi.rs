//! The OpenAPI 3 document of the HTTP API, built from the same [`Endpoint`] list the router is
//! built from (`routes.rs`), so a route cannot exist without its documentation.
//!
//! Schemas come from the Rust types the handlers serialize: [`api_object!`] declares a response
//! or request struct and its [`ApiSchema`] in one place (field names, types, doc comments), and
//! [`api_query!`] does the same for a handler's query parameters. The document is plain serde
//! structs; no OpenAPI library is involved, because the ones available pull dependency features
//! that would rebuild much of the workspace.

use std::collections::BTreeMap;

use axum::handler::Handler;
use axum::routing::MethodRouter;
use serde::Serialize;

use crate::AppState;

/// A JSON Schema object in the OpenAPI 3.0 dialect (`nullable`, `$ref` under `allOf` when a
/// reference needs a description).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Schema {
    #[serde(rename = "$ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(rename = "allOf", skip_serializing_if = "Vec::is_empty")]
    pub all_of: Vec<Schema>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub nullable: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, Schema>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub required: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<Box<Schema>>,
    #[serde(
        rename = "additionalProperties",
        skip_serializing_if = "Option::is_none"
    )]
    pub additional_properties: Option<Box<Schema>>,
    #[serde(rename = "enum", skip_serializing_if = "Vec::is_empty")]
    pub enum_values: Vec<&'static str>,
}

impl Schema {
    pub fn of(kind: &'static str) -> Self {
        Schema {
            kind: Some(kind),
            ..Schema::default()
        }
    }

    fn formatted(kind: &'static str, format: &'static str) -> Self {
        Schema {
            format: Some(format),
            ..Schema::of(kind)
        }
    }

    /// Adds property `name`; `omitted_when_null`: the field is left out instead of `null`
    /// (otherwise every field is required: weir writes them all, `null` when unknown).
    pub fn property(
        &mut self,
        name: &str,
        mut schema: Schema,
        nullable: bool,
        omitted_when_null: bool,
        doc: &[&str],
    ) {
        let description = join_doc(doc);
        if schema.reference.is_some() && (nullable || description.is_some()) {
            // Siblings of `$ref` are ignored in OpenAPI 3.0.
            schema = Schema {
                all_of: vec![schema],
                ..Schema::default()
            };
        }
        schema.nullable |= nullable && !omitted_when_null;
        if description.is_some() {
            schema.description = description;
        }
        self.properties.insert(name.to_owned(), schema);
        if !(nullable && omitted_when_null) {
            self.required.push(name.to_owned());
        }
    }
}

/// Doc-comment lines as one description (`None` when there are none).
pub fn join_doc(lines: &[&str]) -> Option<String> {
    let s = lines
        .iter()
        .map(|l| l.trim())
        .collect::<Vec<_>>()
        .join(" ")
        .trim()
        .to_owned();
    (!s.is_empty()).then_some(s)
}

/// Named schemas (`#/components/schemas/...`).
#[derive(Debug, Default, Serialize)]
pub struct Components {
    pub schemas: BTreeMap<String, Schema>,
}

impl Components {
    /// A reference to the named schema `name`, built by `build` the first time.
    pub fn named(&mut self, name: &str, build: impl FnOnce(&mut Components) -> Schema) -> Schema {
        if !self.schemas.contains_key(name) {
            // A placeholder first, so that a recursive type refers to itself.
            self.schemas.insert(name.to_owned(), Schema::default());
            let s = build(self);
            self.schemas.insert(name.to_owned(), s);
        }
        Schema {
            reference: Some(format!("#/components/schemas/{name}")),
            ..Schema::default()
        }
    }
}

/// A type that the API reads or writes as JSON, and its schema.
pub trait ApiSchema {
    /// `Option<T>`: the value may be `null`.
    const NULLABLE: bool = false;
    /// The schema, or a reference to it in `c`.
    fn schema(c: &mut Components) -> Schema;
    /// Whether this value is `null` (for fields left out when null).
    fn is_null(&self) -> bool {
        false
    }
}

macro_rules! primitive {
    (@make $kind:literal) => { Schema::of($kind) };
    (@make $kind:literal, $format:literal) => { Schema::formatted($kind, $format) };
    ($($t:ty => $kind:literal $(, $format:literal)?;)*) => {$(
        impl ApiSchema for $t {
            fn schema(_: &mut Components) -> Schema {
                primitive!(@make $kind $(, $format)?)
            }
        }
    )*};
}

primitive! {
    String => "string";
    bool => "boolean";
    u32 => "integer", "int32";
    i32 => "integer", "int32";
    u64 => "integer", "int64";
    i64 => "integer", "int64";
    usize => "integer", "int64";
    f64 => "number", "double";
}

impl ApiSchema for serde_json::Value {
    fn schema(_: &mut Components) -> Schema {
        Schema {
            description: Some("any JSON value".into()),
            nullable: true,
            ..Schema::default()
        }
    }
}

impl ApiSchema for serde_json::Map<String, serde_json::Value> {
    fn schema(_: &mut Components) -> Schema {
        Schema {
            additional_properties: Some(Box::default()),
            ..Schema::of("object")
        }
    }
}

impl<T: ApiSchema> ApiSchema for Option<T> {
    const NULLABLE: bool = true;
    fn schema(c: &mut Components) -> Schema {
        T::schema(c)
    }
    fn is_null(&self) -> bool {
        self.is_none()
    }
}

impl<T: ApiSchema> ApiSchema for Vec<T> {
    fn schema(c: &mut Components) -> Schema {
        let mut item = T::schema(c);
        if T::NULLABLE {
            item = nullable(item);
        }
        Schema {
            items: Some(Box::new(item)),
            ..Schema::of("array")
        }
    }
}

impl<T: ApiSchema> ApiSchema for BTreeMap<String, T> {
    fn schema(c: &mut Components) -> Schema {
        let mut value = T::schema(c);
        if T::NULLABLE {
            value = nullable(value);
        }
        Schema {
            additional_properties: Some(Box::new(value)),
            ..Schema::of("object")
        }
    }
}

fn nullable(s: Schema) -> Schema {
    let mut s = if s.reference.is_some() {
        Schema {
            all_of: vec![s],
            ..Schema::default()
        }
    } else {
        s
    };
    s.nullable = true;
    s
}

/// Declares a JSON object type of the API: the struct (Serialize, Deserialize) and its
/// [`ApiSchema`], named after the struct, with the doc comments as descriptions. Every field
/// is written (`null` when unknown); after `@omit_nulls`, `None` fields are left out instead.
macro_rules! api_object {
    (
        @omit_nulls
        $(#[doc = $doc:literal])*
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $fdoc:literal])*
                $fvis:vis $field:ident : $ty:ty
            ),* $(,)?
        }
    ) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
        $vis struct $name {
            $(
                $(#[doc = $fdoc])*
                #[serde(default, skip_serializing_if = "crate::openapi::ApiSchema::is_null")]
                $fvis $field: $ty,
            )*
        }
        $crate::openapi::api_object!(@schema $name, true, [$($doc),*], $([$field, $ty, [$($fdoc),*]])*);
    };
    (
        @schema $name:ident, $omit:expr, [$($doc:literal),*],
        $([$field:ident, $ty:ty, [$($fdoc:literal),*]])*
    ) => {
        impl $crate::openapi::ApiSchema for $name {
            fn schema(c: &mut $crate::openapi::Components) -> $crate::openapi::Schema {
                c.named(stringify!($name), |c| {
                    let mut s = $crate::openapi::Schema::of("object");
                    s.description = $crate::openapi::join_doc(&[$($doc),*]);
                    $(
                        s.property(
                            stringify!($field).trim_start_matches("r#"),
                            <$ty as $crate::openapi::ApiSchema>::schema(c),
                            <$ty as $crate::openapi::ApiSchema>::NULLABLE,
                            $omit,
                            &[$($fdoc),*],
                        );
                    )*
                    s
                })
            }
        }
    };
    (
        $(#[doc = $doc:literal])*
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $fdoc:literal])*
                $fvis:vis $field:ident : $ty:ty
            ),* $(,)?
        }
    ) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
        $vis struct $name {
            $(
                $(#[doc = $fdoc])*
                $fvis $field: $ty,
            )*
        }
        $crate::openapi::api_object!(@schema $name, false, [$($doc),*], $([$field, $ty, [$($fdoc),*]])*);
    };
}
pub(crate) use api_object;

/// Declares a string enum of the API (each variant serialized as its literal).
macro_rules! api_enum {
    (
        $(#[doc = $doc:literal])*
        $vis:vis enum $name:ident { $($variant:ident = $text:literal),* $(,)? }
    ) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        $vis enum $name {
            $(#[serde(rename = $text)] $variant,)*
        }

        impl $crate::openapi::ApiSchema for $name {
            fn schema(_: &mut $crate::openapi::Components) -> $crate::openapi::Schema {
                let mut s = $crate::openapi::Schema::of("string");
                s.description = $crate::openapi::join_doc(&[$($doc),*]);
                s.enum_values = vec![$($text),*];
                s
            }
        }
    };
}
pub(crate) use api_enum;

/// One documented query parameter.
#[derive(Debug, Clone, Serialize)]
pub struct Parameter {
    pub name: String,
    #[serde(rename = "in")]
    pub location: &'static str,
    pub required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub schema: Schema,
}

/// Query parameters of a handler, extracted as strings (the handler parses and checks them,
/// so that a bad value gets weir's JSON error naming the parameter).
pub trait ApiQuery {
    fn parameters() -> Vec<Parameter>;
}

/// Declares a struct of optional query parameters and its [`ApiQuery`]; each field is given as
/// `name: <schema type>` (`integer` or `string`).
macro_rules! api_query {
    (
        $(#[doc = $doc:literal])*
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $fdoc:literal])*
                $field:ident : $kind:ident
            ),* $(,)?
        }
    ) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Default, serde::Deserialize)]
        $vis struct $name {
            $(
                $(#[doc = $fdoc])*
                pub $field: Option<String>,
            )*
        }

        impl $crate::openapi::ApiQuery for $name {
            fn parameters() -> Vec<$crate::openapi::Parameter> {
                vec![$(
                    $crate::openapi::Parameter {
                        name: stringify!($field).to_owned(),
                        location: "query",
                        required: false,
                        description: $crate::openapi::join_doc(&[$($fdoc),*]),
                        schema: $crate::openapi::Schema::of(stringify!($kind)),
                    },
                )*]
            }
        }
    };
}
pub(crate) use api_query;

/// Builds a request body or response schema.
pub type SchemaFn = fn(&mut Components) -> Schema;

struct Body {
    content_type: &'static str,
    required: bool,
    schema: Option<SchemaFn>,
    description: &'static str,
}

/// One route: its handler (for the router) and its documentation (for the document).
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    pub(crate) router: MethodRouter<AppState>,
    summary: &'static str,
    description: &'static str,
    tag: &'static str,
    path_params: Vec<(&'static str, &'static str)>,
    query: Vec<Parameter>,
    request: Option<Body>,
    responses: Vec<(u16, Body)>,
}

impl Endpoint {
    fn new(
        method: &'static str,
        path: &'static str,
        router: MethodRouter<AppState>,
        summary: &'static str,
    ) -> Self {
        Endpoint {
            method,
            path,
            router,
            summary,
            description: "",
            tag: "",
            path_params: Vec::new(),
            query: Vec::new(),
            request: None,
            responses: Vec::new(),
        }
    }

    pub fn get<H, T>(path: &'static str, summary: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        Self::new("get", path, axum::routing::get(handler), summary)
    }

    pub fn post<H, T>(path: &'static str, summary: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        Self::new("post", path, axum::routing::post(handler), summary)
    }

    pub fn put<H, T>(path: &'static str, summary: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        Self::new("put", path, axum::routing::put(handler), summary)
    }

    pub fn delete<H, T>(path: &'static str, summary: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        Self::new("delete", path, axum::routing::delete(handler), summary)
    }

    #[must_use]
    pub fn describe(mut self, description: &'static str) -> Self {
        self.description = description;
        self
    }

    #[must_use]
    pub fn tag(mut self, tag: &'static str) -> Self {
        self.tag = tag;
        self
    }

    /// Describes the path parameter `{name}`.
    #[must_use]
    pub fn param(mut self, name: &'static str, description: &'static str) -> Self {
        self.path_params.push((name, description));
        self
    }

    #[must_use]
    pub fn query<Q: ApiQuery>(mut self) -> Self {
        self.query.extend(Q::parameters());
        self
    }

    /// A JSON request body of type `T`; `required` false when it may be left empty.
    #[must_use]
    pub fn body<T: ApiSchema>(mut self, required: bool, description: &'static str) -> Self {
        self.request = Some(Body {
            content_type: "application/json",
            required,
            schema: Some(T::schema),
            description,
        });
        self
    }

    /// A required request body of another content type, sent as text.
    #[must_use]
    pub fn body_text(mut self, content_type: &'static str, description: &'static str) -> Self {
        self.request = Some(Body {
            content_type,
            required: true,
            schema: None,
            description,
        });
        self
    }

    /// A JSON response of type `T` with `status`.
    #[must_use]
    pub fn json<T: ApiSchema>(mut self, status: u16, description: &'static str) -> Self {
        self.responses.push((
            status,
            Body {
                content_type: "application/json",
                required: true,
                schema: Some(T::schema),
                description,
            },
        ));
        self
    }

    /// A `200` response of another content type (text, an event stream), with the schema of
    /// what it carries when there is one.
    #[must_use]
    pub fn text(
        mut self,
        content_type: &'static str,
        schema: Option<SchemaFn>,
        description: &'static str,
    ) -> Self {
        self.responses.push((
            200,
            Body {
                content_type,
                required: true,
                schema,
                description,
            },
        ));
        self
    }

    /// Documents the request body and the JSON responses declared so far under another JSON
    /// media type (the schema registry's `application/vnd.schemaregistry.v1+json`).
    #[must_use]
    pub fn media(mut self, content_type: &'static str) -> Self {
        for b in self
            .request
            .iter_mut()
            .chain(self.responses.iter_mut().map(|(_, b)| b))
        {
            if b.content_type == "application/json" {
                b.content_type = content_type;
            }
        }
        self
    }

    /// Error responses (the JSON error body) with these statuses.
    #[must_use]
    pub fn errors(mut self, statuses: &[u16]) -> Self {
        for &s in statuses {
            let description = match s {
                400 => "Bad request: a parameter or the body is invalid (kind `user`).",
                404 => "Not found: the named resource does not exist (kind `user`).",
                409 => "Conflict with the current state (kind `user`).",
                413 => "The body is too large (kind `user`).",
                503 => "Temporarily unavailable (kind `external`); retry later.",
                _ => "Error.",
            };
            self.responses.push((
                s,
                Body {
                    content_type: "application/json",
                    required: true,
                    schema: Some(crate::routes::ErrorBody::schema),
                    description,
                },
            ));
        }
        self
    }
}

#[derive(Serialize)]
struct MediaType {
    #[serde(skip_serializing_if = "Option::is_none")]
    schema: Option<Schema>,
}

#[derive(Serialize)]
struct RequestBody {
    description: &'static str,
    required: bool,
    content: BTreeMap<&'static str, MediaType>,
}

#[derive(Serialize)]
struct Response {
    description: &'static str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    content: BTreeMap<&'static str, MediaType>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Operation {
    operation_id: String,
    summary: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    parameters: Vec<Parameter>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_body: Option<RequestBody>,
    responses: BTreeMap<String, Response>,
}

#[derive(Serialize)]
struct Info {
    title: &'static str,
    version: &'static str,
    description: &'static str,
}

/// The whole document.
#[derive(Serialize)]
pub struct OpenApi {
    openapi: &'static str,
    info: Info,
    paths: BTreeMap<&'static str, BTreeMap<&'static str, Operation>>,
    components: Components,
}

/// The document describing `endpoints`.
pub fn document(endpoints: &[Endpoint]) -> OpenApi {
    let mut components = Components::default();
    crate::routes::ErrorBody::schema(&mut components);
    let mut paths: BTreeMap<&'static str, BTreeMap<&'static str, Operation>> = BTreeMap::new();
    for e in endpoints {
        let mut parameters: Vec<Parameter> = path_params(e.path)
            .into_iter()
            .map(|name| Parameter {
                description: e
                    .path_params
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, d)| (*d).to_owned()),
                name,
                location: "path",
                required: true,
                schema: Schema::of("string"),
            })
            .collect();
        parameters.extend(e.query.iter().cloned());
        let media = |b: &Body, c: &mut Components| {
            BTreeMap::from([(
                b.content_type,
                MediaType {
                    schema: b.schema.map(|f| f(c)),
                },
            )])
        };
        let request_body = e.request.as_ref().map(|b| RequestBody {
            description: b.description,
            required: b.required,
            content: media(b, &mut components),
        });
        let mut responses = BTreeMap::new();
        for (status, b) in &e.responses {
            responses.insert(
                status.to_string(),
                Response {
                    description: b.description,
                    content: media(b, &mut components),
                },
            );
        }
        let operation_id = format!(
            "{}{}",
            e.method,
            e.path
                .split(['/', '{', '}', '-', '.'])
                .filter(|s| !s.is_empty())
                .map(|s| format!("_{s}"))
                .collect::<String>()
        );
        paths.entry(e.path).or_default().insert(
            e.method,
            Operation {
                operation_id,
                summary: e.summary,
                description: e.description,
                tags: if e.tag.is_empty() {
                    Vec::new()
                } else {
                    vec![e.tag]
                },
                parameters,
                request_body,
                responses,
            },
        );
    }
    OpenApi {
        openapi: "3.0.3",
        info: Info {
            title: "weir",
            version: env!("CARGO_PKG_VERSION"),
            description: "The HTTP API of a running weir project: ingest, status, tables, \
                          quality, logs, DAGs, live metrics (SSE) and Prometheus metrics. \
                          Errors are JSON {\"error\", \"kind\"} with kind user (4xx), external \
                          or internal (5xx).",
        },
        paths,
        components,
    }
}

/// The `{name}` segments of a path.
fn path_params(path: &str) -> Vec<String> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(str::to_owned)
        .collect()
}
