//! The part of `pg_catalog` that PostgreSQL clients read to list tables and columns: built
//! from the lake's tables (each a relation of schema `public`, with its columns), plus the
//! functions those catalog queries call. Catalogs of objects weir does not have (indexes,
//! constraints, policies, triggers, publications, ...) exist with their columns and no rows.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::common::{Result as DfResult, exec_err};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;

use super::encode::pg_type;

pub const NS_CATALOG: i64 = 11;
pub const NS_PUBLIC: i64 = 2200;
pub const NS_INFORMATION: i64 = 13_000;
/// The one role: every relation is owned by it.
pub const OWNER: i64 = 10;
/// The first oid of a user relation, as in PostgreSQL.
const FIRST_OID: i64 = 16_384;

/// (oid, name, typlen) of every type a column can have.
const TYPES: &[(i64, &str, i64)] = &[
    (16, "boolean", 1),
    (17, "bytea", -1),
    (18, "char", 1),
    (19, "name", 64),
    (20, "bigint", 8),
    (21, "smallint", 2),
    (23, "integer", 4),
    (25, "text", -1),
    (26, "oid", 4),
    (114, "json", -1),
    (700, "real", 4),
    (701, "double precision", 8),
    (1043, "character varying", -1),
    (1082, "date", 4),
    (1114, "timestamp without time zone", 8),
    (1184, "timestamp with time zone", 8),
    (1186, "interval", 16),
    (1700, "numeric", -1),
];

/// The name `format_type` gives a type oid.
pub fn type_name(oid: i64) -> Option<&'static str> {
    TYPES.iter().find(|t| t.0 == oid).map(|t| t.1)
}

/// Internal names (`typname`) of the types.
fn typname(oid: i64) -> &'static str {
    match oid {
        16 => "bool",
        20 => "int8",
        21 => "int2",
        23 => "int4",
        700 => "float4",
        701 => "float8",
        1043 => "varchar",
        1114 => "timestamp",
        1184 => "timestamptz",
        _ => type_name(oid).unwrap_or("text"),
    }
}

/// One relation of the lake as the catalog shows it.
#[derive(Debug, Clone)]
pub struct Relation {
    pub oid: i64,
    pub name: String,
    pub kind: &'static str,
    pub schema: SchemaRef,
}

/// Column lists of the catalog tables weir keeps empty.
const EMPTY: &[(&str, &[&str])] = &[
    ("pg_attrdef", &["oid", "adrelid", "adnum", "adbin"]),
    (
        "pg_collation",
        &["oid", "collname", "collnamespace", "collprovider"],
    ),
    (
        "pg_index",
        &[
            "indexrelid",
            "indrelid",
            "indnatts",
            "indisunique",
            "indisprimary",
            "indisvalid",
            "indkey",
            "indisclustered",
        ],
    ),
    (
        "pg_constraint",
        &[
            "oid",
            "conname",
            "connamespace",
            "contype",
            "conrelid",
            "confrelid",
            "conindid",
            "conkey",
            "confkey",
            "convalidated",
        ],
    ),
    (
        "pg_inherits",
        &["inhrelid", "inhparent", "inhseqno", "inhdetachpending"],
    ),
    (
        "pg_description",
        &["objoid", "classoid", "objsubid", "description"],
    ),
    ("pg_shdescription", &["objoid", "classoid", "description"]),
    (
        "pg_trigger",
        &[
            "oid",
            "tgrelid",
            "tgname",
            "tgfoid",
            "tgtype",
            "tgenabled",
            "tgisinternal",
        ],
    ),
    (
        "pg_policy",
        &[
            "oid",
            "polname",
            "polrelid",
            "polcmd",
            "polpermissive",
            "polroles",
            "polqual",
            "polwithcheck",
        ],
    ),
    (
        "pg_statistic_ext",
        &[
            "oid",
            "stxrelid",
            "stxname",
            "stxnamespace",
            "stxowner",
            "stxstattarget",
            "stxkeys",
            "stxkind",
        ],
    ),
    (
        "pg_publication",
        &[
            "oid",
            "pubname",
            "pubowner",
            "puballtables",
            "pubinsert",
            "pubupdate",
            "pubdelete",
            "pubtruncate",
            "pubviaroot",
        ],
    ),
    (
        "pg_publication_rel",
        &["oid", "prpubid", "prrelid", "prqual", "prattrs"],
    ),
    ("pg_publication_namespace", &["oid", "pnpubid", "pnnspid"]),
    (
        "pg_rewrite",
        &["oid", "rulename", "ev_class", "ev_type", "is_instead"],
    ),
    (
        "pg_extension",
        &["oid", "extname", "extowner", "extnamespace", "extversion"],
    ),
    (
        "pg_enum",
        &["oid", "enumtypid", "enumsortorder", "enumlabel"],
    ),
    (
        "pg_depend",
        &[
            "classid",
            "objid",
            "objsubid",
            "refclassid",
            "refobjid",
            "refobjsubid",
            "deptype",
        ],
    ),
    (
        "pg_sequence",
        &[
            "seqrelid",
            "seqtypid",
            "seqstart",
            "seqincrement",
            "seqmax",
            "seqmin",
        ],
    ),
    ("pg_foreign_table", &["ftrelid", "ftserver", "ftoptions"]),
    (
        "pg_partitioned_table",
        &["partrelid", "partstrat", "partnatts"],
    ),
    (
        "pg_event_trigger",
        &[
            "oid",
            "evtname",
            "evtevent",
            "evtowner",
            "evtfoid",
            "evtenabled",
        ],
    ),
    ("pg_range", &["rngtypid", "rngsubtype"]),
    (
        "pg_proc",
        &[
            "oid",
            "proname",
            "pronamespace",
            "proowner",
            "prokind",
            "prorettype",
            "proargtypes",
            "proretset",
        ],
    ),
    ("pg_aggregate", &["aggfnoid", "aggkind"]),
    (
        "pg_operator",
        &[
            "oid",
            "oprname",
            "oprnamespace",
            "oprleft",
            "oprright",
            "oprresult",
        ],
    ),
    (
        "pg_cast",
        &["oid", "castsource", "casttarget", "castfunc", "castcontext"],
    ),
    (
        "pg_matviews",
        &["schemaname", "matviewname", "matviewowner", "definition"],
    ),
    (
        "pg_stat_activity",
        &[
            "datid",
            "datname",
            "pid",
            "usename",
            "application_name",
            "state",
            "query",
        ],
    ),
];

/// Whether `name` is a catalog table weir keeps empty (or does not know).
pub fn is_empty_catalog(name: &str) -> bool {
    EMPTY.iter().any(|(n, _)| *n == name) || !FULL.contains(&name)
}

/// Catalog tables with rows.
const FULL: &[&str] = &[
    "pg_namespace",
    "pg_class",
    "pg_attribute",
    "pg_type",
    "pg_am",
    "pg_database",
    "pg_roles",
    "pg_user",
    "pg_settings",
    "pg_tablespace",
    "pg_tables",
    "pg_views",
];

/// Whether `name` is a table of `pg_catalog` (known or not: every `pg_*` name is looked up
/// there, as PostgreSQL's implicit search path does).
pub fn is_catalog_name(name: &str) -> bool {
    name.starts_with("pg_")
}

fn int_col(name: &str) -> bool {
    name.ends_with("oid")
        || name.ends_with("relid")
        || name.ends_with("num")
        || name.ends_with("natts")
        || name.ends_with("seqno")
        || matches!(
            name,
            "objsubid"
                | "tgtype"
                | "stxstattarget"
                | "enumsortorder"
                | "seqstart"
                | "seqincrement"
                | "seqmax"
                | "seqmin"
                | "refobjsubid"
                | "classid"
                | "objid"
                | "refclassid"
                | "refobjid"
                | "collnamespace"
                | "prorettype"
                | "aggfnoid"
                | "oprleft"
                | "oprright"
                | "oprresult"
                | "castsource"
                | "casttarget"
                | "castfunc"
                | "datid"
                | "pid"
                | "ftserver"
                | "rngsubtype"
                | "stxnamespace"
                | "stxowner"
                | "pubowner"
                | "extowner"
                | "extnamespace"
                | "proowner"
                | "pronamespace"
                | "oprnamespace"
                | "connamespace"
                | "conindid"
                | "pnpubid"
                | "pnnspid"
                | "prpubid"
                | "tgfoid"
                | "evtowner"
                | "evtfoid"
                | "rngtypid"
                | "seqtypid"
        )
}

fn bool_col(name: &str) -> bool {
    name.starts_with("indis")
        || name.starts_with("pub") && name != "pubname"
        || matches!(
            name,
            "inhdetachpending"
                | "tgisinternal"
                | "polpermissive"
                | "convalidated"
                | "is_instead"
                | "proretset"
        )
}

/// A catalog table as a `MemTable` from typed columns.
struct Builder {
    fields: Vec<Field>,
    cols: Vec<Vec<ScalarValue>>,
}

impl Builder {
    fn new(cols: &[(&str, DataType)]) -> Self {
        Self {
            fields: cols
                .iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect(),
            cols: vec![Vec::new(); cols.len()],
        }
    }

    fn row(&mut self, values: Vec<ScalarValue>) {
        for (c, v) in self.cols.iter_mut().zip(values) {
            c.push(v);
        }
    }

    fn build(self) -> DfResult<Arc<MemTable>> {
        let schema = Arc::new(Schema::new(self.fields));
        let arrays = self
            .cols
            .into_iter()
            .zip(schema.fields())
            .map(|(vals, f)| {
                if vals.is_empty() {
                    Ok(arrow::array::new_empty_array(f.data_type()))
                } else {
                    ScalarValue::iter_to_array(vals)
                }
            })
            .collect::<DfResult<Vec<ArrayRef>>>()?;
        let batch = RecordBatch::try_new(schema.clone(), arrays)?;
        Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
    }
}

fn i(v: i64) -> ScalarValue {
    ScalarValue::Int64(Some(v))
}
fn s(v: &str) -> ScalarValue {
    ScalarValue::Utf8(Some(v.to_owned()))
}
fn b(v: bool) -> ScalarValue {
    ScalarValue::Boolean(Some(v))
}
fn null_s() -> ScalarValue {
    ScalarValue::Utf8(None)
}
/// `text[]`, for ACL and option columns (always NULL here).
fn text_array() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
}
fn null_list() -> ScalarValue {
    ScalarValue::try_from(&text_array()).unwrap_or(ScalarValue::Null)
}

const I: DataType = DataType::Int64;
const S: DataType = DataType::Utf8;
const B: DataType = DataType::Boolean;

/// Oids for `names` (sorted): stable while the set of tables is.
pub fn relations(mut tables: Vec<(String, &'static str, SchemaRef)>) -> Vec<Relation> {
    tables.sort_by(|a, b| a.0.cmp(&b.0));
    tables
        .into_iter()
        .enumerate()
        .map(|(n, (name, kind, schema))| Relation {
            oid: FIRST_OID + n as i64,
            name,
            kind,
            schema,
        })
        .collect()
}

/// Builds every catalog table for `rels` into a `pg_catalog` schema.
pub fn build(rels: &[Relation], database: &str) -> DfResult<Arc<MemorySchemaProvider>> {
    let schema = Arc::new(MemorySchemaProvider::new());

    let mut ns = Builder::new(&[
        ("oid", I),
        ("nspname", S),
        ("nspowner", I),
        ("nspacl", text_array()),
    ]);
    for (oid, name) in [
        (NS_CATALOG, "pg_catalog"),
        (NS_PUBLIC, "public"),
        (NS_INFORMATION, "information_schema"),
    ] {
        ns.row(vec![i(oid), s(name), i(OWNER), null_list()]);
    }
    schema.register_table("pg_namespace".into(), ns.build()?)?;

    let mut class = Builder::new(&[
        ("oid", I),
        ("relname", S),
        ("relnamespace", I),
        ("reltype", I),
        ("reloftype", I),
        ("relowner", I),
        ("relam", I),
        ("relfilenode", I),
        ("reltablespace", I),
        ("relpages", I),
        ("reltuples", DataType::Float64),
        ("reltoastrelid", I),
        ("relhasindex", B),
        ("relisshared", B),
        ("relpersistence", S),
        ("relkind", S),
        ("relnatts", I),
        ("relchecks", I),
        ("relhasrules", B),
        ("relhastriggers", B),
        ("relhassubclass", B),
        ("relrowsecurity", B),
        ("relforcerowsecurity", B),
        ("relispopulated", B),
        ("relreplident", S),
        ("relispartition", B),
        ("relacl", text_array()),
        ("reloptions", text_array()),
        ("relpartbound", S),
    ]);
    let mut attr = Builder::new(&[
        ("attrelid", I),
        ("attname", S),
        ("atttypid", I),
        ("attlen", I),
        ("attnum", I),
        ("atttypmod", I),
        ("attndims", I),
        ("attnotnull", B),
        ("atthasdef", B),
        ("attisdropped", B),
        ("attidentity", S),
        ("attgenerated", S),
        ("attcollation", I),
        ("attislocal", B),
    ]);
    for r in rels {
        let is_table = r.kind == "r";
        class.row(vec![
            i(r.oid),
            s(&r.name),
            i(NS_PUBLIC),
            i(0),
            i(0),
            i(OWNER),
            i(if is_table { 2 } else { 0 }),
            i(0),
            i(0),
            i(0),
            ScalarValue::Float64(Some(-1.0)),
            i(0),
            b(false),
            b(false),
            s("p"),
            s(r.kind),
            i(r.schema.fields().len() as i64),
            i(0),
            b(!is_table),
            b(false),
            b(false),
            b(false),
            b(false),
            b(true),
            s("d"),
            b(false),
            null_list(),
            null_list(),
            null_s(),
        ]);
        for (n, f) in r.schema.fields().iter().enumerate() {
            let t = pg_type(f.data_type());
            let len = TYPES
                .iter()
                .find(|x| x.0 == i64::from(t.oid()))
                .map_or(-1, |x| x.2);
            attr.row(vec![
                i(r.oid),
                s(f.name()),
                i(i64::from(t.oid())),
                i(len),
                i(n as i64 + 1),
                i(-1),
                i(0),
                b(!f.is_nullable()),
                b(false),
                b(false),
                s(""),
                s(""),
                i(if t.oid() == 25 { 100 } else { 0 }),
                b(true),
            ]);
        }
    }
    schema.register_table("pg_class".into(), class.build()?)?;
    schema.register_table("pg_attribute".into(), attr.build()?)?;

    let mut ty = Builder::new(&[
        ("oid", I),
        ("typname", S),
        ("typnamespace", I),
        ("typowner", I),
        ("typlen", I),
        ("typbyval", B),
        ("typtype", S),
        ("typcategory", S),
        ("typisdefined", B),
        ("typdelim", S),
        ("typrelid", I),
        ("typelem", I),
        ("typarray", I),
        ("typbasetype", I),
        ("typtypmod", I),
        ("typnotnull", B),
        ("typcollation", I),
        ("typndims", I),
    ]);
    for (oid, _, len) in TYPES {
        let category = match *oid {
            16 => "B",
            20 | 21 | 23 | 26 | 700 | 701 | 1700 => "N",
            1082 | 1114 | 1184 => "D",
            1186 => "T",
            17 => "U",
            _ => "S",
        };
        ty.row(vec![
            i(*oid),
            s(typname(*oid)),
            i(NS_CATALOG),
            i(OWNER),
            i(*len),
            b(*len > 0 && *len <= 8),
            s("b"),
            s(category),
            b(true),
            s(","),
            i(0),
            i(0),
            i(0),
            i(0),
            i(-1),
            b(false),
            i(if *oid == 25 || *oid == 1043 { 100 } else { 0 }),
            i(0),
        ]);
    }
    schema.register_table("pg_type".into(), ty.build()?)?;

    let mut am = Builder::new(&[("oid", I), ("amname", S), ("amtype", S)]);
    am.row(vec![i(2), s("heap"), s("t")]);
    schema.register_table("pg_am".into(), am.build()?)?;

    let mut db = Builder::new(&[
        ("oid", I),
        ("datname", S),
        ("datdba", I),
        ("encoding", I),
        ("datcollate", S),
        ("datctype", S),
        ("datistemplate", B),
        ("datallowconn", B),
        ("datconnlimit", I),
        ("dattablespace", I),
        ("datacl", text_array()),
        ("daticulocale", S),
        ("datlocprovider", S),
        ("datcollversion", S),
    ]);
    db.row(vec![
        i(16_383),
        s(database),
        i(OWNER),
        i(6),
        s("C.UTF-8"),
        s("C.UTF-8"),
        b(false),
        b(true),
        i(-1),
        i(1663),
        null_list(),
        null_s(),
        s("c"),
        null_s(),
    ]);
    schema.register_table("pg_database".into(), db.build()?)?;

    let mut roles = Builder::new(&[
        ("oid", I),
        ("rolname", S),
        ("rolsuper", B),
        ("rolinherit", B),
        ("rolcreaterole", B),
        ("rolcreatedb", B),
        ("rolcanlogin", B),
        ("rolreplication", B),
        ("rolconnlimit", I),
        ("rolbypassrls", B),
        ("rolvaliduntil", S),
    ]);
    roles.row(vec![
        i(OWNER),
        s("weir"),
        b(false),
        b(true),
        b(false),
        b(false),
        b(true),
        b(false),
        i(-1),
        b(false),
        null_s(),
    ]);
    schema.register_table("pg_roles".into(), roles.build()?)?;
    let mut user = Builder::new(&[
        ("usename", S),
        ("usesysid", I),
        ("usecreatedb", B),
        ("usesuper", B),
    ]);
    user.row(vec![s("weir"), i(OWNER), b(false), b(false)]);
    schema.register_table("pg_user".into(), user.build()?)?;

    let mut settings = Builder::new(&[
        ("name", S),
        ("setting", S),
        ("unit", S),
        ("category", S),
        ("short_desc", S),
        ("context", S),
        ("vartype", S),
    ]);
    for (name, value) in SETTINGS {
        settings.row(vec![
            s(name),
            s(value),
            null_s(),
            s("weir"),
            s(""),
            s("user"),
            s("string"),
        ]);
    }
    schema.register_table("pg_settings".into(), settings.build()?)?;

    let mut ts = Builder::new(&[("oid", I), ("spcname", S), ("spcowner", I)]);
    ts.row(vec![i(1663), s("pg_default"), i(OWNER)]);
    schema.register_table("pg_tablespace".into(), ts.build()?)?;

    let mut tables = Builder::new(&[
        ("schemaname", S),
        ("tablename", S),
        ("tableowner", S),
        ("tablespace", S),
        ("hasindexes", B),
        ("hasrules", B),
        ("hastriggers", B),
        ("rowsecurity", B),
    ]);
    let mut views = Builder::new(&[
        ("schemaname", S),
        ("viewname", S),
        ("viewowner", S),
        ("definition", S),
    ]);
    for r in rels {
        if r.kind == "r" {
            tables.row(vec![
                s("public"),
                s(&r.name),
                s("weir"),
                null_s(),
                b(false),
                b(false),
                b(false),
                b(false),
            ]);
        } else {
            views.row(vec![s("public"), s(&r.name), s("weir"), null_s()]);
        }
    }
    schema.register_table("pg_tables".into(), tables.build()?)?;
    schema.register_table("pg_views".into(), views.build()?)?;

    for (name, cols) in EMPTY {
        let cols: Vec<(&str, DataType)> = cols
            .iter()
            .map(|c| {
                let t = if int_col(c) {
                    I
                } else if bool_col(c) {
                    B
                } else {
                    S
                };
                (*c, t)
            })
            .collect();
        schema.register_table((*name).into(), Builder::new(&cols).build()?)?;
    }
    Ok(schema)
}

/// Run-time parameters `SHOW` and `current_setting` answer.
pub const SETTINGS: &[(&str, &str)] = &[
    ("server_version", "16.0"),
    ("server_version_num", "160000"),
    ("server_encoding", "UTF8"),
    ("client_encoding", "UTF8"),
    ("standard_conforming_strings", "on"),
    ("search_path", "public"),
    ("timezone", "UTC"),
    ("datestyle", "ISO, MDY"),
    ("intervalstyle", "postgres"),
    ("integer_datetimes", "on"),
    ("max_identifier_length", "63"),
    ("transaction_isolation", "read committed"),
    ("default_transaction_isolation", "read committed"),
    ("transaction_read_only", "on"),
    ("default_transaction_read_only", "on"),
    ("is_superuser", "off"),
    ("lc_collate", "C.UTF-8"),
    ("lc_ctype", "C.UTF-8"),
    ("application_name", ""),
    ("extra_float_digits", "1"),
    ("bytea_output", "hex"),
];

pub fn setting(name: &str) -> Option<&'static str> {
    let name = name.to_ascii_lowercase();
    SETTINGS.iter().find(|s| s.0 == name).map(|s| s.1)
}

/// A function whose answer does not depend on its arguments here: the one role owns every
/// table and may read it, every table is in the search path, nothing has a comment, a
/// default expression, an index or a constraint definition.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Constant {
    name: &'static str,
    value: ScalarValue,
    signature: Signature,
}

impl ScalarUDFImpl for Constant {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(self.value.data_type())
    }
    fn invoke_with_args(&self, _: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Ok(ColumnarValue::Scalar(self.value.clone()))
    }
}

fn any_args() -> Signature {
    Signature::one_of(
        vec![TypeSignature::Nullary, TypeSignature::VariadicAny],
        Volatility::Stable,
    )
}

/// A function of one text or integer column computed row by row.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Mapped {
    name: &'static str,
    kind: MapKind,
    signature: Signature,
}

#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
enum MapKind {
    /// `format_type(type_oid, typmod)`.
    FormatType,
    /// `quote_ident(text)`.
    QuoteIdent,
    /// `current_setting(name)`.
    CurrentSetting,
    /// A relation's name from its oid (`oid::regclass`).
    RelName,
}

impl ScalarUDFImpl for Mapped {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let Some(first) = args.args.first() else {
            return exec_err!("{} needs an argument", self.name);
        };
        let arr = first.to_array(args.number_rows)?;
        let out: StringArray = match self.kind {
            MapKind::FormatType | MapKind::RelName => {
                let arr = arrow::compute::cast(&arr, &DataType::Int64)?;
                let ints = arr
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .ok_or_else(|| datafusion::error::DataFusionError::Internal("int64".into()))?;
                ints.iter()
                    .map(|o| {
                        o.map(|o| match self.kind {
                            MapKind::FormatType => type_name(o).unwrap_or("unknown").to_owned(),
                            _ => REL_NAMES
                                .read()
                                .ok()
                                .and_then(|m| m.get(&o).cloned())
                                .unwrap_or_else(|| o.to_string()),
                        })
                    })
                    .collect()
            }
            MapKind::QuoteIdent | MapKind::CurrentSetting => {
                let arr = arrow::compute::cast(&arr, &DataType::Utf8)?;
                let strs = arr
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .ok_or_else(|| datafusion::error::DataFusionError::Internal("utf8".into()))?;
                let mut out = Vec::with_capacity(strs.len());
                for v in strs.iter() {
                    out.push(match (self.kind, v) {
                        (_, None) => None,
                        (MapKind::QuoteIdent, Some(v)) => Some(quote_ident(v)),
                        (_, Some(v)) => match setting(v) {
                            Some(x) => Some(x.to_owned()),
                            None => {
                                return exec_err!("unrecognized configuration parameter \"{v}\"");
                            }
                        },
                    });
                }
                out.into_iter().collect()
            }
        };
        if out.len() == 1 && matches!(first, ColumnarValue::Scalar(_)) {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?));
        }
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// Relation names by oid, for `oid::regclass` (refreshed with the catalog).
static REL_NAMES: std::sync::LazyLock<std::sync::RwLock<BTreeMap<i64, String>>> =
    std::sync::LazyLock::new(|| std::sync::RwLock::new(BTreeMap::new()));

pub fn remember_relations(rels: &[Relation]) {
    if let Ok(mut m) = REL_NAMES.write() {
        for r in rels {
            m.insert(r.oid, r.name.clone());
        }
    }
}

pub fn quote_ident(v: &str) -> String {
    let plain = v
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        v.to_owned()
    } else {
        format!("\"{}\"", v.replace('"', "\"\""))
    }
}

/// Registers the catalog functions on `ctx`.
pub fn register_functions(ctx: &SessionContext, database: &str) {
    let t = |v: &str| ScalarValue::Utf8(Some(v.to_owned()));
    let constants: Vec<(&'static str, ScalarValue)> = vec![
        ("pg_table_is_visible", ScalarValue::Boolean(Some(true))),
        ("pg_type_is_visible", ScalarValue::Boolean(Some(true))),
        ("pg_function_is_visible", ScalarValue::Boolean(Some(true))),
        ("has_table_privilege", ScalarValue::Boolean(Some(true))),
        ("has_schema_privilege", ScalarValue::Boolean(Some(true))),
        ("has_database_privilege", ScalarValue::Boolean(Some(true))),
        ("has_column_privilege", ScalarValue::Boolean(Some(true))),
        ("pg_get_userbyid", t("weir")),
        ("pg_encoding_to_char", t("UTF8")),
        ("current_schema", t("public")),
        ("current_database", t(database)),
        ("current_user", t("weir")),
        ("session_user", t("weir")),
        (
            "version",
            t(&format!(
                "PostgreSQL 16.0 (weir {}) on the PostgreSQL wire protocol",
                env!("CARGO_PKG_VERSION")
            )),
        ),
        (
            "current_schemas",
            ScalarValue::List(ScalarValue::new_list_nullable(
                &[t("pg_catalog"), t("public")],
                &DataType::Utf8,
            )),
        ),
        ("obj_description", ScalarValue::Utf8(None)),
        ("col_description", ScalarValue::Utf8(None)),
        ("shobj_description", ScalarValue::Utf8(None)),
        ("pg_get_expr", ScalarValue::Utf8(None)),
        ("pg_get_indexdef", ScalarValue::Utf8(None)),
        ("pg_get_constraintdef", ScalarValue::Utf8(None)),
        ("pg_get_viewdef", ScalarValue::Utf8(None)),
        ("pg_get_triggerdef", ScalarValue::Utf8(None)),
        ("pg_get_partkeydef", ScalarValue::Utf8(None)),
        ("pg_is_in_recovery", ScalarValue::Boolean(Some(false))),
        (
            "pg_backend_pid",
            ScalarValue::Int32(Some(std::process::id() as i32)),
        ),
        ("inet_server_port", ScalarValue::Int32(None)),
    ];
    for (name, value) in constants {
        ctx.register_udf(ScalarUDF::new_from_impl(Constant {
            name,
            value,
            signature: any_args(),
        }));
    }
    for (name, kind) in [
        ("format_type", MapKind::FormatType),
        ("quote_ident", MapKind::QuoteIdent),
        ("current_setting", MapKind::CurrentSetting),
        ("weir_relname", MapKind::RelName),
    ] {
        ctx.register_udf(ScalarUDF::new_from_impl(Mapped {
            name,
            kind,
            signature: Signature::variadic_any(Volatility::Stable),
        }));
    }
}

/// The oid of relation `name`, for `'name'::regclass`: a lake table's, or a catalog's (its
/// PostgreSQL oid for the common ones).
pub fn oid_of(rels: &[Relation], name: &str) -> Option<i64> {
    let name = name.trim_matches('"');
    let name = name.strip_prefix("public.").unwrap_or(name);
    if let Some(r) = rels.iter().find(|r| r.name == name) {
        return Some(r.oid);
    }
    let name = name.strip_prefix("pg_catalog.").unwrap_or(name);
    let known = [
        ("pg_type", 1247),
        ("pg_attribute", 1249),
        ("pg_proc", 1255),
        ("pg_class", 1259),
        ("pg_database", 1262),
        ("pg_namespace", 2615),
        ("pg_description", 2609),
        ("pg_constraint", 2606),
        ("pg_index", 2610),
        ("pg_trigger", 2620),
    ];
    if let Some((_, oid)) = known.iter().find(|(n, _)| *n == name) {
        return Some(*oid);
    }
    let all = FULL.iter().copied().chain(EMPTY.iter().map(|(n, _)| *n));
    all.enumerate()
        .find(|(_, n)| *n == name)
        .map(|(i, _)| 3000 + i as i64)
}

/// The oid of type `name`, for `'name'::regtype`.
pub fn type_oid(name: &str) -> Option<i64> {
    let n = name.trim().to_ascii_lowercase();
    TYPES
        .iter()
        .find(|t| t.1 == n || typname(t.0) == n)
        .map(|t| t.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_ident_quotes_what_needs_it() {
        assert_eq!(quote_ident("silver_events"), "silver_events");
        assert_eq!(quote_ident("Mixed"), "\"Mixed\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident("1x"), "\"1x\"");
    }

    #[test]
    fn every_column_type_has_a_name() {
        for dt in [
            DataType::Boolean,
            DataType::Int64,
            DataType::Float64,
            DataType::Utf8,
            DataType::Date32,
            DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
            DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into())),
        ] {
            let oid = i64::from(pg_type(&dt).oid());
            assert!(type_name(oid).is_some(), "{dt} -> {oid}");
        }
    }
}
