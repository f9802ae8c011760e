//! The schema registry's HTTP API: the common calls of Confluent Schema Registry's REST API,
//! at the server root as Confluent serves them (`/subjects`, `/schemas/ids/{id}`,
//! `/compatibility/...`, `/config`), so a Kafka serializer or deserializer pointed at
//! `http://<weir>` registers and fetches schemas here.
//!
//! Requests are JSON (`application/vnd.schemaregistry.v1+json` or `application/json`; the
//! content type is not checked), answers are `application/vnd.schemaregistry.v1+json`, and
//! errors are Confluent's `{"error_code": N, "message": "..."}` (40401 subject, 40402 version,
//! 40403 schema not found, 409 incompatible, 42201 invalid schema, 42202 invalid version, 42203
//! invalid compatibility level) rather than weir's own error body, because that is what the
//! clients parse. The registry itself (schemas, rules, store) is
//! `weir_connectors::schema`. Under `[server.auth]`, reads (GETs, lookups, compatibility
//! checks) need a reader token and changes an operator token.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use weir_connectors::schema::{
    Compatibility, RegistryError, SchemaType, SubjectVersion, VersionRef,
};
use weir_core::ErrorKind;
use weir_orchestrator::Weir;

use crate::openapi::{ApiQuery, ApiSchema, Components, Endpoint, Parameter, Schema};

/// The media type of every answer.
pub const MEDIA: &str = "application/vnd.schemaregistry.v1+json";

/// A registry error as Confluent's clients expect it.
pub struct Fail(RegistryError);

impl From<RegistryError> for Fail {
    fn from(e: RegistryError) -> Self {
        Fail(e)
    }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        let e = self.0;
        if e.kind() != ErrorKind::User {
            tracing::error!(error = %e, "schema registry request failed");
        }
        let status =
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        reply(
            status,
            &RegistryErrorBody {
                error_code: e.error_code(),
                message: e.to_string(),
            },
        )
    }
}

fn reply<T: Serialize>(status: StatusCode, body: &T) -> Response {
    // Serializing the API's plain structs of strings and numbers cannot fail.
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    raw(status, bytes)
}

fn raw(status: StatusCode, bytes: Vec<u8>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA))],
        bytes,
    )
        .into_response()
}

fn ok<T: Serialize>(body: &T) -> Result<Response, Fail> {
    Ok(reply(StatusCode::OK, body))
}

fn bad(reason: String) -> Fail {
    Fail(RegistryError::BadRequest { reason })
}

type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

fn params(q: Params) -> Result<HashMap<String, String>, Fail> {
    q.map(|Query(q)| q)
        .map_err(|e| bad(format!("bad query string: {}", e.body_text())))
}

/// A boolean query parameter (`?deleted=true`); absent is false.
fn flag(q: &HashMap<String, String>, key: &str) -> Result<bool, Fail> {
    match q.get(key).map(|v| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(v) => Err(bad(format!(
            "query parameter `{key}` must be true or false, got `{v}`"
        ))),
    }
}

fn body<'a, T: Deserialize<'a>>(b: &'a [u8], expected: &str) -> Result<T, Fail> {
    serde_json::from_slice(b).map_err(|e| bad(format!("expected a JSON body {expected}: {e}")))
}

/// Runs a registry change (it fsyncs) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, Fail> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| {
            Fail(RegistryError::Io {
                path: "schema registry task".into(),
                error: std::io::Error::other(e.to_string()),
            })
        })?
        .map_err(Fail)
}

/// Body of `POST /subjects/{subject}/versions`, `POST /subjects/{subject}` and the
/// compatibility check.
#[derive(Debug, Deserialize)]
pub struct SchemaRequest {
    schema: String,
    #[serde(rename = "schemaType", default)]
    schema_type: Option<String>,
    #[serde(default)]
    references: Option<Vec<serde_json::Value>>,
}

impl SchemaRequest {
    fn parse(b: &[u8]) -> Result<(SchemaType, String), Fail> {
        let r: SchemaRequest = body(
            b,
            r#"{"schema": "<schema as JSON text>", "schemaType": "AVRO" | "JSON"}"#,
        )?;
        if r.references.as_ref().is_some_and(|x| !x.is_empty()) {
            return Err(Fail(RegistryError::InvalidSchema {
                reason: "schema references are not supported; inline the referenced types".into(),
            }));
        }
        let kind = match r.schema_type.as_deref() {
            None => SchemaType::Avro,
            Some(t) => SchemaType::parse(t)?,
        };
        Ok((kind, r.schema))
    }
}

#[derive(Debug, Serialize)]
struct Registered {
    id: u32,
}

/// One version of a subject.
#[derive(Debug, Serialize)]
struct VersionView {
    subject: String,
    version: u32,
    id: u32,
    schema: String,
    #[serde(rename = "schemaType")]
    schema_type: &'static str,
}

impl From<SubjectVersion> for VersionView {
    fn from(v: SubjectVersion) -> Self {
        VersionView {
            subject: v.subject,
            version: v.version,
            id: v.id,
            schema: v.schema,
            schema_type: v.schema_type.as_str(),
        }
    }
}

#[derive(Debug, Serialize)]
struct SchemaView {
    schema: String,
    #[serde(rename = "schemaType")]
    schema_type: &'static str,
}

#[derive(Debug, Serialize)]
struct SubjectVersionRef {
    subject: String,
    version: u32,
}

#[derive(Debug, Serialize)]
struct CompatibilityReply {
    is_compatible: bool,
    messages: Vec<String>,
}

/// `{"compatibility": ...}` (PUT, and its answer); GET answers carry `compatibilityLevel` too,
/// the key Confluent's GET uses.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ConfigBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    compatibility: Option<String>,
    #[serde(
        rename = "compatibilityLevel",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    compatibility_level: Option<String>,
}

impl ConfigBody {
    fn both(c: Compatibility) -> Self {
        ConfigBody {
            compatibility: Some(c.as_str().into()),
            compatibility_level: Some(c.as_str().into()),
        }
    }

    fn level(b: &[u8]) -> Result<Compatibility, Fail> {
        let r: ConfigBody = body(b, r#"{"compatibility": "BACKWARD"}"#)?;
        let level = r
            .compatibility
            .or(r.compatibility_level)
            .ok_or_else(|| bad("expected a JSON body {\"compatibility\": \"BACKWARD\"}".into()))?;
        Ok(Compatibility::parse(&level)?)
    }
}

#[derive(Debug, Serialize)]
struct RegistryErrorBody {
    error_code: u32,
    message: String,
}

// ---- OpenAPI schemas of the types above ----

type Prop = (&'static str, Schema, bool, &'static str);

fn object(c: &mut Components, name: &str, doc: &'static str, props: Vec<Prop>) -> Schema {
    c.named(name, |_| {
        let mut s = Schema::of("object");
        s.description = Some(doc.into());
        for (n, schema, required, d) in props {
            s.property(n, schema, !required, !required, &[d]);
        }
        s
    })
}

fn strings(values: Vec<&'static str>) -> Schema {
    Schema {
        enum_values: values,
        ..Schema::of("string")
    }
}

fn schema_type_schema() -> Schema {
    strings(vec!["AVRO", "JSON"])
}

fn level_schema() -> Schema {
    strings(Compatibility::ALL.iter().map(|c| c.as_str()).collect())
}

impl ApiSchema for SchemaRequest {
    fn schema(c: &mut Components) -> Schema {
        let refs = <Vec<serde_json::Value> as ApiSchema>::schema(c);
        object(
            c,
            "RegistrySchemaRequest",
            "A schema to register, look up or check.",
            vec![
                (
                    "schema",
                    Schema::of("string"),
                    true,
                    "The schema, as JSON text.",
                ),
                (
                    "schemaType",
                    schema_type_schema(),
                    false,
                    "AVRO (the default) or JSON (JSON Schema).",
                ),
                (
                    "references",
                    refs,
                    false,
                    "Must be absent or empty: references are not supported.",
                ),
            ],
        )
    }
}

impl ApiSchema for Registered {
    fn schema(c: &mut Components) -> Schema {
        object(
            c,
            "RegistryId",
            "The global id of the registered schema.",
            vec![(
                "id",
                Schema::of("integer"),
                true,
                "Schema id, the same under every subject.",
            )],
        )
    }
}

impl ApiSchema for VersionView {
    fn schema(c: &mut Components) -> Schema {
        object(
            c,
            "RegistrySubjectVersion",
            "One version of a subject.",
            vec![
                ("subject", Schema::of("string"), true, "The subject."),
                (
                    "version",
                    Schema::of("integer"),
                    true,
                    "Version number, from 1.",
                ),
                ("id", Schema::of("integer"), true, "Global schema id."),
                (
                    "schema",
                    Schema::of("string"),
                    true,
                    "The schema as JSON text.",
                ),
                ("schemaType", schema_type_schema(), true, "AVRO or JSON."),
            ],
        )
    }
}

impl ApiSchema for SchemaView {
    fn schema(c: &mut Components) -> Schema {
        object(
            c,
            "RegistrySchema",
            "A schema by id.",
            vec![
                (
                    "schema",
                    Schema::of("string"),
                    true,
                    "The schema as JSON text.",
                ),
                ("schemaType", schema_type_schema(), true, "AVRO or JSON."),
            ],
        )
    }
}

impl ApiSchema for SubjectVersionRef {
    fn schema(c: &mut Components) -> Schema {
        object(
            c,
            "RegistrySubjectVersionRef",
            "A subject and version holding a schema.",
            vec![
                ("subject", Schema::of("string"), true, "The subject."),
                ("version", Schema::of("integer"), true, "The version."),
            ],
        )
    }
}

impl ApiSchema for CompatibilityReply {
    fn schema(c: &mut Components) -> Schema {
        let messages = <Vec<String> as ApiSchema>::schema(c);
        object(
            c,
            "RegistryCompatibility",
            "Whether the schema may be registered.",
            vec![
                (
                    "is_compatible",
                    Schema::of("boolean"),
                    true,
                    "True when the subject's rule holds.",
                ),
                (
                    "messages",
                    messages,
                    true,
                    "What breaks the rule, naming the field or property; empty when compatible.",
                ),
            ],
        )
    }
}

impl ApiSchema for ConfigBody {
    fn schema(c: &mut Components) -> Schema {
        object(
            c,
            "RegistryConfig",
            "A compatibility level.",
            vec![
                (
                    "compatibility",
                    level_schema(),
                    false,
                    "The level (PUT bodies and every answer).",
                ),
                (
                    "compatibilityLevel",
                    level_schema(),
                    false,
                    "The same level, under the key Confluent's GET answers use.",
                ),
            ],
        )
    }
}

impl ApiSchema for RegistryErrorBody {
    fn schema(c: &mut Components) -> Schema {
        object(
            c,
            "RegistryErrorBody",
            "A schema registry error, in Confluent's shape.",
            vec![
                (
                    "error_code",
                    Schema::of("integer"),
                    true,
                    "40401 subject, 40402 version, 40403 schema not found; 409 incompatible; 42201 invalid schema, 42202 invalid version, 42203 invalid compatibility level; 400 bad request; 50001 store failure.",
                ),
                (
                    "message",
                    Schema::of("string"),
                    true,
                    "What went wrong, naming the value at fault.",
                ),
            ],
        )
    }
}

fn bool_param(name: &str, description: &str) -> Parameter {
    Parameter {
        name: name.to_owned(),
        location: "query",
        required: false,
        description: Some(description.to_owned()),
        schema: Schema::of("boolean"),
    }
}

struct DeletedParam;
impl ApiQuery for DeletedParam {
    fn parameters() -> Vec<Parameter> {
        vec![bool_param("deleted", "Include soft-deleted versions.")]
    }
}

struct SubjectsParams;
impl ApiQuery for SubjectsParams {
    fn parameters() -> Vec<Parameter> {
        vec![
            bool_param(
                "deleted",
                "Include subjects whose versions are all soft-deleted.",
            ),
            Parameter {
                name: "subjectPrefix".into(),
                location: "query",
                required: false,
                description: Some("Only subjects starting with this text.".into()),
                schema: Schema::of("string"),
            },
        ]
    }
}

struct PermanentParam;
impl ApiQuery for PermanentParam {
    fn parameters() -> Vec<Parameter> {
        vec![bool_param(
            "permanent",
            "Remove what was soft-deleted before, for good (its schema ids stop resolving when no other version uses them).",
        )]
    }
}

struct GlobalParam;
impl ApiQuery for GlobalParam {
    fn parameters() -> Vec<Parameter> {
        vec![bool_param(
            "defaultToGlobal",
            "Answer the global level when the subject has none of its own (else 404 with 40408).",
        )]
    }
}

/// 404 (subject/version/schema not found) and other errors, in the registry's shape.
fn errs(mut e: Endpoint, statuses: &[u16]) -> Endpoint {
    for s in statuses {
        let description = match s {
            400 => "Bad request: the body or a query parameter does not parse (error_code 400).",
            404 => "Not found: 40401 subject, 40402 version, 40403 schema, 40408 subject level.",
            409 => {
                "Incompatible with earlier versions under the subject's rule (error_code 409); the message names the field."
            }
            422 => {
                "Unprocessable: 42201 invalid schema, 42202 invalid version, 42203 invalid compatibility level."
            }
            _ => "Error.",
        };
        e = e.json::<RegistryErrorBody>(*s, description);
    }
    e.media(MEDIA)
}

/// The registry's routes and their documentation (added to the API's list in `routes.rs`).
pub fn endpoints() -> Vec<Endpoint> {
    const TAG: &str = "schema registry";
    const SUBJECT: &str = "A subject, e.g. `users-value`.";
    const VERSION: &str = "A version number, or `latest` (also `-1`).";
    vec![
        errs(Endpoint::get("/subjects", "Subjects", list_subjects)
            .tag(TAG)
            .query::<SubjectsParams>()
            .json::<Vec<String>>(200, "Subject names."), &[400]),
        errs(Endpoint::get("/subjects/{subject}/versions", "Versions of a subject", list_versions)
            .tag(TAG)
            .param("subject", SUBJECT)
            .query::<DeletedParam>()
            .json::<Vec<u32>>(200, "Version numbers, oldest first."), &[400, 404]),
        errs(Endpoint::post("/subjects/{subject}/versions", "Register a schema", register)
            .tag(TAG)
            .param("subject", SUBJECT)
            .describe("Registers the schema under the subject if the subject's compatibility rule holds against its earlier versions, and answers its global id. A schema the subject already has answers its id without a new version; the same schema under another subject gets the same id.")
            .body::<SchemaRequest>(true, "The schema.")
            .json::<Registered>(200, "The schema's id."), &[400, 409, 422]),
        errs(Endpoint::get("/subjects/{subject}/versions/{version}", "A version of a subject", get_version)
            .tag(TAG)
            .param("subject", SUBJECT)
            .param("version", VERSION)
            .query::<DeletedParam>()
            .json::<VersionView>(200, "The version."), &[400, 404, 422]),
        errs(Endpoint::get("/subjects/{subject}/versions/{version}/schema", "The schema of a version", get_version_schema)
            .tag(TAG)
            .param("subject", SUBJECT)
            .param("version", VERSION)
            .json::<serde_json::Value>(200, "The schema itself (not wrapped)."), &[404, 422]),
        errs(Endpoint::post("/subjects/{subject}", "Look a schema up", lookup)
            .tag(TAG)
            .param("subject", SUBJECT)
            .describe("Finds the version of the subject holding this schema (compared as JSON, whatever the whitespace and key order).")
            .query::<DeletedParam>()
            .body::<SchemaRequest>(true, "The schema.")
            .json::<VersionView>(200, "The version holding it."), &[400, 404, 422]),
        errs(Endpoint::delete("/subjects/{subject}", "Delete a subject", delete_subject)
            .tag(TAG)
            .param("subject", SUBJECT)
            .describe("Soft-deletes every version (hidden, ids still resolve); with permanent=true, removes a soft-deleted subject.")
            .query::<PermanentParam>()
            .json::<Vec<u32>>(200, "The versions deleted."), &[400, 404]),
        errs(Endpoint::delete("/subjects/{subject}/versions/{version}", "Delete a version", delete_version)
            .tag(TAG)
            .param("subject", SUBJECT)
            .param("version", VERSION)
            .query::<PermanentParam>()
            .json::<u32>(200, "The version deleted."), &[400, 404, 422]),
        errs(Endpoint::get("/schemas/ids/{id}", "A schema by id", schema_by_id)
            .tag(TAG)
            .param("id", "A global schema id.")
            .json::<SchemaView>(200, "The schema."), &[404]),
        errs(Endpoint::get("/schemas/ids/{id}/schema", "A schema by id, unwrapped", schema_by_id_raw)
            .tag(TAG)
            .param("id", "A global schema id.")
            .json::<serde_json::Value>(200, "The schema itself."), &[404]),
        errs(Endpoint::get("/schemas/ids/{id}/versions", "Where a schema is used", schema_versions)
            .tag(TAG)
            .param("id", "A global schema id.")
            .query::<DeletedParam>()
            .json::<Vec<SubjectVersionRef>>(200, "Every subject and version holding the schema."), &[400, 404]),
        errs(Endpoint::get("/schemas/types", "Schema types", schema_types)
            .tag(TAG)
            .json::<Vec<String>>(200, "AVRO and JSON."), &[]),
        errs(Endpoint::post("/compatibility/subjects/{subject}/versions/{version}", "Check compatibility", check_compatibility)
            .tag(TAG)
            .param("subject", SUBJECT)
            .param("version", VERSION)
            .describe("Whether the schema could be registered: against `latest` the subject's rule applies as on registration (every version when the rule is transitive; a subject without versions accepts anything); against a number, that version only.")
            .body::<SchemaRequest>(true, "The schema.")
            .json::<CompatibilityReply>(200, "The verdict and what breaks it."), &[400, 404, 422]),
        errs(Endpoint::get("/config", "Global compatibility level", get_config)
            .tag(TAG)
            .json::<ConfigBody>(200, "The level of subjects without one of their own (BACKWARD unless set)."), &[]),
        errs(Endpoint::put("/config", "Set the global compatibility level", put_config)
            .tag(TAG)
            .body::<ConfigBody>(true, "The level.")
            .json::<ConfigBody>(200, "The level set."), &[400, 422]),
        errs(Endpoint::get("/config/{subject}", "A subject's compatibility level", get_subject_config)
            .tag(TAG)
            .param("subject", SUBJECT)
            .query::<GlobalParam>()
            .json::<ConfigBody>(200, "The subject's level."), &[400, 404]),
        errs(Endpoint::put("/config/{subject}", "Set a subject's compatibility level", put_subject_config)
            .tag(TAG)
            .param("subject", SUBJECT)
            .body::<ConfigBody>(true, "The level.")
            .json::<ConfigBody>(200, "The level set."), &[400, 422]),
        errs(Endpoint::delete("/config/{subject}", "Remove a subject's compatibility level", delete_subject_config)
            .tag(TAG)
            .param("subject", SUBJECT)
            .json::<ConfigBody>(200, "The level removed; the subject follows the global level again."), &[404]),
    ]
}

/// Whether a request only reads although it is a POST (a lookup or a compatibility check),
/// for the roles of `[server.auth]`.
pub(crate) fn read_only_post(method: &Method, path: &str) -> bool {
    if method != Method::POST {
        return false;
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    matches!(
        segments.as_slice(),
        ["subjects", _] | ["compatibility", "subjects", _, "versions", _]
    )
}

fn version_ref(v: &str) -> Result<VersionRef, Fail> {
    Ok(VersionRef::parse(v)?)
}

fn schema_id(id: &str) -> Result<u32, Fail> {
    id.parse().map_err(|_| {
        Fail(RegistryError::SchemaNotFound {
            what: format!("schema id `{id}` (ids are positive integers)"),
        })
    })
}

async fn list_subjects(State(w): State<Arc<Weir>>, q: Params) -> Result<Response, Fail> {
    let q = params(q)?;
    let prefix = q.get("subjectPrefix").map_or("", String::as_str);
    let list: Vec<String> = w
        .schemas()
        .subjects(flag(&q, "deleted")?)
        .into_iter()
        .filter(|s| s.starts_with(prefix))
        .collect();
    ok(&list)
}

async fn list_versions(
    State(w): State<Arc<Weir>>,
    Path(subject): Path<String>,
    q: Params,
) -> Result<Response, Fail> {
    let q = params(q)?;
    ok(&w.schemas().versions(&subject, flag(&q, "deleted")?)?)
}

async fn register(
    State(w): State<Arc<Weir>>,
    Path(subject): Path<String>,
    b: Bytes,
) -> Result<Response, Fail> {
    let (kind, text) = SchemaRequest::parse(&b)?;
    let reg = w.schemas().clone();
    let id = blocking(move || reg.register(&subject, kind, &text)).await?;
    ok(&Registered { id })
}

async fn get_version(
    State(w): State<Arc<Weir>>,
    Path((subject, version)): Path<(String, String)>,
    q: Params,
) -> Result<Response, Fail> {
    let q = params(q)?;
    let v = w
        .schemas()
        .version(&subject, version_ref(&version)?, flag(&q, "deleted")?)?;
    ok(&VersionView::from(v))
}

async fn get_version_schema(
    State(w): State<Arc<Weir>>,
    Path((subject, version)): Path<(String, String)>,
) -> Result<Response, Fail> {
    let v = w
        .schemas()
        .version(&subject, version_ref(&version)?, false)?;
    Ok(raw(StatusCode::OK, v.schema.into_bytes()))
}

async fn lookup(
    State(w): State<Arc<Weir>>,
    Path(subject): Path<String>,
    q: Params,
    b: Bytes,
) -> Result<Response, Fail> {
    let q = params(q)?;
    let (kind, text) = SchemaRequest::parse(&b)?;
    let v = w
        .schemas()
        .lookup(&subject, kind, &text, flag(&q, "deleted")?)?;
    ok(&VersionView::from(v))
}

async fn delete_subject(
    State(w): State<Arc<Weir>>,
    Path(subject): Path<String>,
    q: Params,
) -> Result<Response, Fail> {
    let permanent = flag(&params(q)?, "permanent")?;
    let reg = w.schemas().clone();
    ok(&blocking(move || reg.delete_subject(&subject, permanent)).await?)
}

async fn delete_version(
    State(w): State<Arc<Weir>>,
    Path((subject, version)): Path<(String, String)>,
    q: Params,
) -> Result<Response, Fail> {
    let permanent = flag(&params(q)?, "permanent")?;
    let version = version_ref(&version)?;
    let reg = w.schemas().clone();
    ok(&blocking(move || reg.delete_version(&subject, version, permanent)).await?)
}

async fn schema_by_id(
    State(w): State<Arc<Weir>>,
    Path(id): Path<String>,
) -> Result<Response, Fail> {
    let (kind, schema) = w.schemas().schema_by_id(schema_id(&id)?)?;
    ok(&SchemaView {
        schema,
        schema_type: kind.as_str(),
    })
}

async fn schema_by_id_raw(
    State(w): State<Arc<Weir>>,
    Path(id): Path<String>,
) -> Result<Response, Fail> {
    let (_, schema) = w.schemas().schema_by_id(schema_id(&id)?)?;
    Ok(raw(StatusCode::OK, schema.into_bytes()))
}

async fn schema_versions(
    State(w): State<Arc<Weir>>,
    Path(id): Path<String>,
    q: Params,
) -> Result<Response, Fail> {
    let q = params(q)?;
    let list: Vec<SubjectVersionRef> = w
        .schemas()
        .subject_versions_of(schema_id(&id)?, flag(&q, "deleted")?)?
        .into_iter()
        .map(|(subject, version)| SubjectVersionRef { subject, version })
        .collect();
    ok(&list)
}

async fn schema_types() -> Result<Response, Fail> {
    ok(&[SchemaType::Avro.as_str(), SchemaType::Json.as_str()])
}

async fn check_compatibility(
    State(w): State<Arc<Weir>>,
    Path((subject, version)): Path<(String, String)>,
    b: Bytes,
) -> Result<Response, Fail> {
    let version = version_ref(&version)?;
    let (kind, text) = SchemaRequest::parse(&b)?;
    let messages = w.schemas().compatibility(&subject, version, kind, &text)?;
    ok(&CompatibilityReply {
        is_compatible: messages.is_empty(),
        messages,
    })
}

async fn get_config(State(w): State<Arc<Weir>>) -> Result<Response, Fail> {
    ok(&ConfigBody::both(w.schemas().global_compatibility()))
}

async fn put_config(State(w): State<Arc<Weir>>, b: Bytes) -> Result<Response, Fail> {
    let level = ConfigBody::level(&b)?;
    let reg = w.schemas().clone();
    blocking(move || reg.set_global_compatibility(level)).await?;
    ok(&ConfigBody {
        compatibility: Some(level.as_str().into()),
        compatibility_level: None,
    })
}

async fn get_subject_config(
    State(w): State<Arc<Weir>>,
    Path(subject): Path<String>,
    q: Params,
) -> Result<Response, Fail> {
    let q = params(q)?;
    let reg = w.schemas();
    match reg.subject_compatibility(&subject) {
        Some(c) => ok(&ConfigBody::both(c)),
        None if flag(&q, "defaultToGlobal")? => ok(&ConfigBody::both(reg.global_compatibility())),
        None => Err(Fail(RegistryError::SubjectConfigNotFound { subject })),
    }
}

async fn put_subject_config(
    State(w): State<Arc<Weir>>,
    Path(subject): Path<String>,
    b: Bytes,
) -> Result<Response, Fail> {
    let level = ConfigBody::level(&b)?;
    let reg = w.schemas().clone();
    blocking(move || reg.set_subject_compatibility(&subject, level)).await?;
    ok(&ConfigBody {
        compatibility: Some(level.as_str().into()),
        compatibility_level: None,
    })
}

async fn delete_subject_config(
    State(w): State<Arc<Weir>>,
    Path(subject): Path<String>,
) -> Result<Response, Fail> {
    let reg = w.schemas().clone();
    let old = blocking(move || reg.delete_subject_compatibility(&subject)).await?;
    ok(&ConfigBody::both(old))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_and_checks_only_read() {
        assert!(read_only_post(&Method::POST, "/subjects/users-value"));
        assert!(read_only_post(
            &Method::POST,
            "/compatibility/subjects/users-value/versions/latest"
        ));
        assert!(!read_only_post(
            &Method::POST,
            "/subjects/users-value/versions"
        ));
        assert!(!read_only_post(&Method::DELETE, "/subjects/users-value"));
        assert!(!read_only_post(&Method::POST, "/v1/query"));
    }
}
