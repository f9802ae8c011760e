//! Avro schemas: parsing their JSON form, compatibility as Avro schema resolution, and
//! validation of records that arrive as JSON.
//!
//! Parsing follows the Avro specification: primitives, `record` (and `error`), `enum`,
//! `array`, `map`, unions, `fixed`, named types with namespaces and aliases (a named type is
//! defined once, then referred to by name, recursion included). Logical types and other
//! attributes are metadata, as the specification says, so they are kept out of the model.
//! Field defaults are checked against their type (a union's default matches its first branch).
//!
//! Compatibility is schema resolution: a reader schema can read a writer's data when every
//! reader field is written or has a default (writer fields the reader lacks are skipped), types
//! match or promote (`int` → `long` → `float` → `double`, `string` ↔ `bytes`), every symbol
//! the writer may write is a reader symbol or the reader enum has a default, named types keep
//! their name (or the reader lists the old one as an alias), fixed sizes match, and every
//! branch of a writer union is readable.
//!
//! Validation asks whether a reader holding this schema can read the record. Records arrive
//! as JSON, so both the Avro JSON encoding and plain JSON are taken: a union value may be
//! wrapped as `{"<branch type>": value}` (Avro JSON encoding) or given plainly (`null`, or a
//! value that one branch accepts); `bytes` and `fixed` are strings (a `fixed` one has `size`
//! characters); a missing field is fine when it has a default; fields the schema does not name
//! are ignored, as a reader ignores writer fields it does not know, so a record valid under one
//! version still validates after a backward-compatible evolution; an enum symbol the schema
//! does not list is fine when the enum has a default, for the same reason.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::{Map, Value};

use super::{Direction, Violation, child_path, show};

/// A type as it appears in a schema; named types are referred to by full name.
#[derive(Debug, Clone, PartialEq)]
pub enum Type {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Array(Box<Type>),
    Map(Box<Type>),
    Union(Vec<Type>),
    Named(String),
}

/// A record, enum or fixed type.
#[derive(Debug, Clone)]
pub struct Named {
    /// Full name (`namespace.name`).
    pub name: String,
    /// Full names this type was known by.
    pub aliases: Vec<String>,
    pub kind: NamedKind,
}

#[derive(Debug, Clone)]
pub enum NamedKind {
    Record {
        fields: Vec<Field>,
    },
    Enum {
        symbols: Vec<String>,
        default: Option<String>,
    },
    Fixed {
        size: u64,
    },
}

/// One field of a record.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub ty: Type,
    pub default: Option<Value>,
    pub aliases: Vec<String>,
}

/// A parsed Avro schema.
#[derive(Debug, Clone)]
pub struct AvroSchema {
    root: Type,
    named: BTreeMap<String, Named>,
}

const PRIMITIVES: [(&str, Type); 8] = [
    ("null", Type::Null),
    ("boolean", Type::Boolean),
    ("int", Type::Int),
    ("long", Type::Long),
    ("float", Type::Float),
    ("double", Type::Double),
    ("bytes", Type::Bytes),
    ("string", Type::String),
];

fn primitive(name: &str) -> Option<Type> {
    PRIMITIVES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| t.clone())
}

/// "the schema" at the root, "field `a.b`" below.
fn place(loc: &str) -> String {
    if loc.is_empty() {
        "the schema".to_owned()
    } else {
        format!("field `{loc}`")
    }
}

fn join_loc(loc: &str, name: &str) -> String {
    if loc.is_empty() {
        name.to_owned()
    } else {
        format!("{loc}.{name}")
    }
}

fn valid_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

fn short(full: &str) -> &str {
    full.rsplit('.').next().unwrap_or(full)
}

struct Parser {
    named: BTreeMap<String, Named>,
}

impl Parser {
    fn parse(&mut self, v: &Value, ns: &str, loc: &str) -> Result<Type, String> {
        match v {
            Value::String(s) => self.reference(s, ns, loc),
            Value::Array(branches) => {
                if branches.is_empty() {
                    return Err(format!("{}: a union needs at least one branch", place(loc)));
                }
                let mut out = Vec::with_capacity(branches.len());
                let mut seen = BTreeSet::new();
                for b in branches {
                    let t = self.parse(b, ns, loc)?;
                    if matches!(t, Type::Union(_)) {
                        return Err(format!(
                            "{}: a union may not directly contain another union",
                            place(loc)
                        ));
                    }
                    let key = display(&t);
                    let key = match &t {
                        Type::Array(_) => "array".to_owned(),
                        Type::Map(_) => "map".to_owned(),
                        _ => key,
                    };
                    if !seen.insert(key.clone()) {
                        return Err(format!(
                            "{}: the union has two branches of type `{key}`",
                            place(loc)
                        ));
                    }
                    out.push(t);
                }
                Ok(Type::Union(out))
            }
            Value::Object(o) => {
                let ty = o
                    .get("type")
                    .ok_or_else(|| format!("{}: a schema object needs a `type`", place(loc)))?;
                let name = match ty {
                    Value::String(s) => s.as_str(),
                    Value::Object(_) | Value::Array(_) => return self.parse(ty, ns, loc),
                    other => {
                        return Err(format!(
                            "{}: `type` must be a string, got {}",
                            place(loc),
                            show(other)
                        ));
                    }
                };
                match name {
                    "record" | "error" => self.record(o, ns, loc),
                    "enum" => self.enumeration(o, ns, loc),
                    "fixed" => self.fixed(o, ns, loc),
                    "array" => {
                        let items = o
                            .get("items")
                            .ok_or_else(|| format!("{}: an array needs `items`", place(loc)))?;
                        Ok(Type::Array(Box::new(self.parse(items, ns, loc)?)))
                    }
                    "map" => {
                        let values = o
                            .get("values")
                            .ok_or_else(|| format!("{}: a map needs `values`", place(loc)))?;
                        Ok(Type::Map(Box::new(self.parse(values, ns, loc)?)))
                    }
                    other => self.reference(other, ns, loc),
                }
            }
            other => Err(format!(
                "{}: expected a type name, a union (array) or a schema object, got {}",
                place(loc),
                show(other)
            )),
        }
    }

    fn reference(&self, s: &str, ns: &str, loc: &str) -> Result<Type, String> {
        if let Some(p) = primitive(s) {
            return Ok(p);
        }
        let candidates = if s.contains('.') || ns.is_empty() {
            vec![s.to_owned()]
        } else {
            vec![format!("{ns}.{s}"), s.to_owned()]
        };
        candidates
            .into_iter()
            .find(|c| self.named.contains_key(c))
            .map(Type::Named)
            .ok_or_else(|| {
                format!(
                    "{}: unknown type `{s}` (a named type must be defined before it is used)",
                    place(loc)
                )
            })
    }

    /// The full name and namespace of a named type's definition.
    fn name_of(
        &self,
        o: &Map<String, Value>,
        ns: &str,
        loc: &str,
    ) -> Result<(String, String), String> {
        let name = o
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{}: a named type needs a string `name`", place(loc)))?;
        let (full, own_ns) = if let Some((n, _)) = name.rsplit_once('.') {
            (name.to_owned(), n.to_owned())
        } else {
            let own = match o.get("namespace") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => ns.to_owned(),
                Some(other) => {
                    return Err(format!(
                        "{}: `namespace` must be a string, got {}",
                        place(loc),
                        show(other)
                    ));
                }
            };
            let full = if own.is_empty() {
                name.to_owned()
            } else {
                format!("{own}.{name}")
            };
            (full, own)
        };
        if full.split('.').any(|part| !valid_name(part)) {
            return Err(format!(
                "{}: `{full}` is not a valid Avro name (letters, digits and `_`, not starting with a digit)",
                place(loc)
            ));
        }
        if primitive(short(&full)).is_some() && !full.contains('.') {
            return Err(format!(
                "{}: `{full}` is a primitive type and cannot name a type",
                place(loc)
            ));
        }
        if self.named.contains_key(&full) {
            return Err(format!("{}: type `{full}` is defined twice", place(loc)));
        }
        Ok((full, own_ns))
    }

    fn aliases(o: &Map<String, Value>, ns: &str, loc: &str) -> Result<Vec<String>, String> {
        match o.get("aliases") {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| match x.as_str() {
                    Some(s) if s.contains('.') || ns.is_empty() => Ok(s.to_owned()),
                    Some(s) => Ok(format!("{ns}.{s}")),
                    None => Err(format!(
                        "{}: `aliases` must hold strings, got {}",
                        place(loc),
                        show(x)
                    )),
                })
                .collect(),
            Some(other) => Err(format!(
                "{}: `aliases` must be an array of names, got {}",
                place(loc),
                show(other)
            )),
        }
    }

    fn record(&mut self, o: &Map<String, Value>, ns: &str, loc: &str) -> Result<Type, String> {
        let (full, own_ns) = self.name_of(o, ns, loc)?;
        let aliases = Self::aliases(o, &own_ns, loc)?;
        // Registered before its fields, so that a field may refer to the record itself.
        self.named.insert(
            full.clone(),
            Named {
                name: full.clone(),
                aliases,
                kind: NamedKind::Record { fields: Vec::new() },
            },
        );
        let raw = o
            .get("fields")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("{}: record `{full}` needs a `fields` array", place(loc)))?;
        let mut fields: Vec<Field> = Vec::with_capacity(raw.len());
        for f in raw {
            let fo = f.as_object().ok_or_else(|| {
                format!(
                    "{}: each field of record `{full}` must be an object, got {}",
                    place(loc),
                    show(f)
                )
            })?;
            let name = fo.get("name").and_then(Value::as_str).ok_or_else(|| {
                format!(
                    "{}: a field of record `{full}` has no string `name`",
                    place(loc)
                )
            })?;
            let floc = join_loc(loc, name);
            if !valid_name(name) {
                return Err(format!(
                    "{}: `{name}` is not a valid field name",
                    place(&floc)
                ));
            }
            if fields.iter().any(|x| x.name == name) {
                return Err(format!(
                    "{}: record `{full}` has two fields named `{name}`",
                    place(&floc)
                ));
            }
            let ty = fo
                .get("type")
                .ok_or_else(|| format!("{}: the field has no `type`", place(&floc)))?;
            let ty = self.parse(ty, &own_ns, &floc)?;
            let aliases = match fo.get("aliases") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| format!("{}: `aliases` must hold strings", place(&floc)))
                    })
                    .collect::<Result<_, _>>()?,
                Some(other) => {
                    return Err(format!(
                        "{}: `aliases` must be an array, got {}",
                        place(&floc),
                        show(other)
                    ));
                }
            };
            if let Some(order) = fo.get("order")
                && !matches!(order.as_str(), Some("ascending" | "descending" | "ignore"))
            {
                return Err(format!(
                    "{}: `order` must be ascending, descending or ignore, got {}",
                    place(&floc),
                    show(order)
                ));
            }
            fields.push(Field {
                name: name.to_owned(),
                ty,
                default: fo.get("default").cloned(),
                aliases,
            });
        }
        if let Some(n) = self.named.get_mut(&full) {
            n.kind = NamedKind::Record { fields };
        }
        Ok(Type::Named(full))
    }

    fn enumeration(&mut self, o: &Map<String, Value>, ns: &str, loc: &str) -> Result<Type, String> {
        let (full, own_ns) = self.name_of(o, ns, loc)?;
        let aliases = Self::aliases(o, &own_ns, loc)?;
        let raw = o
            .get("symbols")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("{}: enum `{full}` needs a `symbols` array", place(loc)))?;
        let mut symbols: Vec<String> = Vec::with_capacity(raw.len());
        for s in raw {
            let s = s.as_str().filter(|s| valid_name(s)).ok_or_else(|| {
                format!(
                    "{}: enum `{full}` symbol {} is not a valid name",
                    place(loc),
                    show(s)
                )
            })?;
            if symbols.iter().any(|x| x == s) {
                return Err(format!(
                    "{}: enum `{full}` lists symbol `{s}` twice",
                    place(loc)
                ));
            }
            symbols.push(s.to_owned());
        }
        let default = match o.get("default") {
            None | Some(Value::Null) => None,
            Some(Value::String(d)) if symbols.contains(d) => Some(d.clone()),
            Some(other) => {
                return Err(format!(
                    "{}: enum `{full}` default {} is not one of its symbols",
                    place(loc),
                    show(other)
                ));
            }
        };
        self.named.insert(
            full.clone(),
            Named {
                name: full.clone(),
                aliases,
                kind: NamedKind::Enum { symbols, default },
            },
        );
        Ok(Type::Named(full))
    }

    fn fixed(&mut self, o: &Map<String, Value>, ns: &str, loc: &str) -> Result<Type, String> {
        let (full, own_ns) = self.name_of(o, ns, loc)?;
        let aliases = Self::aliases(o, &own_ns, loc)?;
        let size = o.get("size").and_then(Value::as_u64).ok_or_else(|| {
            format!(
                "{}: fixed `{full}` needs a non-negative integer `size`",
                place(loc)
            )
        })?;
        self.named.insert(
            full.clone(),
            Named {
                name: full.clone(),
                aliases,
                kind: NamedKind::Fixed { size },
            },
        );
        Ok(Type::Named(full))
    }
}

fn display(t: &Type) -> String {
    match t {
        Type::Null => "null".into(),
        Type::Boolean => "boolean".into(),
        Type::Int => "int".into(),
        Type::Long => "long".into(),
        Type::Float => "float".into(),
        Type::Double => "double".into(),
        Type::Bytes => "bytes".into(),
        Type::String => "string".into(),
        Type::Array(i) => format!("array<{}>", display(i)),
        Type::Map(v) => format!("map<{}>", display(v)),
        Type::Union(b) => format!("[{}]", b.iter().map(display).collect::<Vec<_>>().join(", ")),
        Type::Named(n) => n.clone(),
    }
}

/// How strictly a value is read: a field default is in the Avro JSON encoding with a union's
/// default matching its first branch; a record takes plain JSON too (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Default,
    Record,
}

impl AvroSchema {
    /// Parses the JSON form of an Avro schema; the error names the field at fault.
    pub fn parse(v: &Value) -> Result<AvroSchema, String> {
        let mut p = Parser {
            named: BTreeMap::new(),
        };
        let root = p.parse(v, "", "")?;
        let schema = AvroSchema {
            root,
            named: p.named,
        };
        schema.check_defaults()?;
        Ok(schema)
    }

    fn check_defaults(&self) -> Result<(), String> {
        for n in self.named.values() {
            if let NamedKind::Record { fields } = &n.kind {
                for f in fields {
                    if let Some(d) = &f.default
                        && let Err(v) = self.check(&f.ty, d, "$", Mode::Default)
                    {
                        let what = if v.path == "$" {
                            v.reason
                        } else {
                            format!("{} {}", v.path, v.reason)
                        };
                        return Err(format!(
                            "field `{}` of record `{}`: its default {} does not match its type `{}`: {what}",
                            f.name,
                            n.name,
                            show(d),
                            display(&f.ty)
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks a record sent as JSON; see the module doc for what is accepted.
    pub fn validate(&self, v: &Value) -> Result<(), Violation> {
        self.check(&self.root, v, "$", Mode::Record)
    }

    fn named(&self, name: &str) -> Option<&Named> {
        self.named.get(name)
    }

    fn check(&self, t: &Type, v: &Value, path: &str, mode: Mode) -> Result<(), Violation> {
        let fail = |reason: String| {
            Err(Violation {
                path: path.to_owned(),
                reason,
            })
        };
        let expected = |what: &str| {
            Err(Violation {
                path: path.to_owned(),
                reason: format!("expected {what}, got {}", show(v)),
            })
        };
        match t {
            Type::Null => {
                if v.is_null() {
                    Ok(())
                } else {
                    expected("null")
                }
            }
            Type::Boolean => {
                if v.is_boolean() {
                    Ok(())
                } else {
                    expected("boolean")
                }
            }
            Type::Int | Type::Long => {
                let name = if *t == Type::Int { "int" } else { "long" };
                let Some(i) = as_integer(v) else {
                    return expected(name);
                };
                let (lo, hi) = if *t == Type::Int {
                    (i128::from(i32::MIN), i128::from(i32::MAX))
                } else {
                    (i128::from(i64::MIN), i128::from(i64::MAX))
                };
                if i < lo || i > hi {
                    let bits = if *t == Type::Int { 32 } else { 64 };
                    return fail(format!(
                        "expected {name}, got {} (outside the {bits}-bit range)",
                        show(v)
                    ));
                }
                Ok(())
            }
            Type::Float | Type::Double => {
                if v.is_number() {
                    Ok(())
                } else {
                    expected(if *t == Type::Float { "float" } else { "double" })
                }
            }
            Type::Bytes => {
                if v.is_string() {
                    Ok(())
                } else {
                    expected("bytes (a string)")
                }
            }
            Type::String => {
                if v.is_string() {
                    Ok(())
                } else {
                    expected("string")
                }
            }
            Type::Array(item) => {
                let Some(a) = v.as_array() else {
                    return expected("array");
                };
                for (i, x) in a.iter().enumerate() {
                    self.check(item, x, &format!("{path}[{i}]"), mode)?;
                }
                Ok(())
            }
            Type::Map(value) => {
                let Some(o) = v.as_object() else {
                    return expected("map (a JSON object)");
                };
                for (k, x) in o {
                    self.check(value, x, &child_path(path, k), mode)?;
                }
                Ok(())
            }
            Type::Union(branches) => self.check_union(branches, v, path, mode),
            Type::Named(n) => {
                let Some(named) = self.named(n) else {
                    return fail(format!("type `{n}` is not defined"));
                };
                match &named.kind {
                    NamedKind::Record { fields } => {
                        let Some(o) = v.as_object() else {
                            return expected(&format!("record `{n}` (a JSON object)"));
                        };
                        for f in fields {
                            let fpath = child_path(path, &f.name);
                            match o.get(&f.name) {
                                Some(x) => self.check(&f.ty, x, &fpath, mode)?,
                                None if f.default.is_some() => {}
                                None => {
                                    return Err(Violation {
                                        path: fpath,
                                        reason: format!(
                                            "missing, and field `{}` of record `{n}` has no default",
                                            f.name
                                        ),
                                    });
                                }
                            }
                        }
                        Ok(())
                    }
                    NamedKind::Enum { symbols, default } => {
                        let Some(s) = v.as_str() else {
                            return expected(&format!("a symbol of enum `{n}`"));
                        };
                        if symbols.iter().any(|x| x == s)
                            || (mode == Mode::Record && default.is_some())
                        {
                            Ok(())
                        } else {
                            fail(format!(
                                "{} is not a symbol of enum `{n}` ({})",
                                show(v),
                                symbols.join(", ")
                            ))
                        }
                    }
                    NamedKind::Fixed { size } => {
                        let Some(s) = v.as_str() else {
                            return expected(&format!("fixed `{n}` (a string of {size} bytes)"));
                        };
                        let len = s.chars().count() as u64;
                        if len == *size {
                            Ok(())
                        } else {
                            fail(format!(
                                "expected fixed `{n}` of {size} bytes, got a string of {len}"
                            ))
                        }
                    }
                }
            }
        }
    }

    fn check_union(
        &self,
        branches: &[Type],
        v: &Value,
        path: &str,
        mode: Mode,
    ) -> Result<(), Violation> {
        if mode == Mode::Default {
            // Avro: a union's default matches its first branch.
            return match branches.first() {
                Some(first) => self.check(first, v, path, mode),
                None => Err(Violation {
                    path: path.to_owned(),
                    reason: "the union has no branch".into(),
                }),
            };
        }
        let mut errors = Vec::new();
        for b in branches {
            match self.check(b, v, path, mode) {
                Ok(()) => return Ok(()),
                Err(e) => errors.push((b, e)),
            }
        }
        // The Avro JSON encoding: {"<type name>": value}.
        if let Some(o) = v.as_object()
            && o.len() == 1
            && let Some((k, inner)) = o.iter().next()
            && let Some(b) = branches.iter().find(|b| self.branch_named(b, k))
        {
            return self.check(b, inner, &child_path(path, k), mode);
        }
        let non_null: Vec<_> = errors.iter().filter(|(b, _)| **b != Type::Null).collect();
        if let [(_, e)] = non_null.as_slice() {
            // One real branch (`["null", T]`): its error says the most.
            return Err(e.clone());
        }
        Err(Violation {
            path: path.to_owned(),
            reason: format!(
                "expected one of {}, got {}",
                display(&Type::Union(branches.to_vec())),
                show(v)
            ),
        })
    }

    fn branch_named(&self, b: &Type, k: &str) -> bool {
        match b {
            Type::Named(n) => n == k || short(n) == k,
            Type::Array(_) => k == "array",
            Type::Map(_) => k == "map",
            other => display(other) == k,
        }
    }
}

/// A JSON number that is a whole number, as an i128 (so range checks cannot overflow).
fn as_integer(v: &Value) -> Option<i128> {
    if let Some(i) = v.as_i64() {
        return Some(i128::from(i));
    }
    if let Some(u) = v.as_u64() {
        return Some(i128::from(u));
    }
    let f = v.as_f64()?;
    // 2^100 bounds any value a long could hold, so the cast below is exact.
    (f.fract() == 0.0 && f.abs() < 1.3e30).then_some(f as i128)
}

/// Why `reader` cannot read data written with `writer`; empty when it can.
pub(crate) fn read_problems(
    reader: &AvroSchema,
    writer: &AvroSchema,
    dir: Direction,
) -> Vec<String> {
    let mut c = Resolver {
        r: reader,
        w: writer,
        dir,
        seen: HashSet::new(),
        out: Vec::new(),
    };
    c.resolve(&reader.root, &writer.root, "");
    c.out
}

struct Resolver<'a> {
    r: &'a AvroSchema,
    w: &'a AvroSchema,
    dir: Direction,
    /// (reader, writer) record pairs being compared, so recursive types end.
    seen: HashSet<(String, String)>,
    out: Vec<String>,
}

impl Resolver<'_> {
    fn changed(&mut self, rt: &Type, wt: &Type, loc: &str, why: Option<String>) {
        let (old, new) = self.dir.old_new(display(wt), display(rt));
        let why = why.map(|w| format!(" ({w})")).unwrap_or_default();
        self.out.push(format!(
            "{}: type changed from `{old}` to `{new}`{why}",
            place(loc)
        ));
    }

    /// Whether `rt` reads `wt` with no problem (nothing is reported).
    fn reads(&mut self, rt: &Type, wt: &Type, loc: &str) -> bool {
        let mut inner = Resolver {
            r: self.r,
            w: self.w,
            dir: self.dir,
            seen: self.seen.clone(),
            out: Vec::new(),
        };
        inner.resolve(rt, wt, loc);
        inner.out.is_empty()
    }

    fn resolve(&mut self, rt: &Type, wt: &Type, loc: &str) {
        if let Type::Union(wb) = wt {
            for b in wb {
                let ok = match rt {
                    Type::Union(rb) => rb.iter().any(|r| self.reads(r, b, loc)),
                    _ => self.reads(rt, b, loc),
                };
                if !ok {
                    let (_, reader) = self.dir.sides();
                    let why = format!("{reader} cannot read `{}`", display(b));
                    self.changed(rt, wt, loc, Some(why));
                    return;
                }
            }
            return;
        }
        if let Type::Union(rb) = rt {
            if rb.iter().any(|r| self.reads(r, wt, loc)) {
                return;
            }
            // One branch of the writer's kind: its problems say the most.
            let same: Vec<&Type> = rb
                .iter()
                .filter(|r| same_kind(self.r, r, self.w, wt))
                .collect();
            if let [only] = same.as_slice() {
                self.resolve(only, wt, loc);
            } else {
                self.changed(rt, wt, loc, None);
            }
            return;
        }
        use Type::*;
        match (rt, wt) {
            (Null, Null)
            | (Boolean, Boolean)
            | (Int, Int)
            | (Long, Long | Int)
            | (Float, Float | Long | Int)
            | (Double, Double | Float | Long | Int)
            | (String, String | Bytes)
            | (Bytes, Bytes | String) => {}
            (Array(r), Array(w)) => self.resolve(r, w, &format!("{loc}[]")),
            (Map(r), Map(w)) => self.resolve(r, w, &format!("{loc}{{}}")),
            (Type::Named(rn), Type::Named(wn)) => self.named(rt, wt, rn, wn, loc),
            _ => self.changed(rt, wt, loc, None),
        }
    }

    fn named(&mut self, rt: &Type, wt: &Type, rn: &str, wn: &str, loc: &str) {
        let (rs, ws) = (self.r, self.w);
        let (Some(r), Some(w)) = (rs.named(rn), ws.named(wn)) else {
            self.changed(rt, wt, loc, None);
            return;
        };
        let name_ok = short(&r.name) == short(&w.name)
            || r.aliases
                .iter()
                .any(|a| a == &w.name || short(a) == short(&w.name));
        let kind = match (&r.kind, &w.kind) {
            (NamedKind::Record { .. }, NamedKind::Record { .. }) => "record",
            (NamedKind::Enum { .. }, NamedKind::Enum { .. }) => "enum",
            (NamedKind::Fixed { .. }, NamedKind::Fixed { .. }) => "fixed",
            _ => {
                self.changed(rt, wt, loc, None);
                return;
            }
        };
        if !name_ok {
            let (old, new) = self.dir.old_new(&w.name, &r.name);
            self.out.push(format!(
                "{}: {kind} name changed from `{old}` to `{new}` (add the old name to `aliases`)",
                place(loc)
            ));
            return;
        }
        match (&r.kind, &w.kind) {
            (NamedKind::Record { fields: rf }, NamedKind::Record { fields: wf }) => {
                if !self.seen.insert((r.name.clone(), w.name.clone())) {
                    return;
                }
                for f in rf {
                    let floc = join_loc(loc, &f.name);
                    let written = wf
                        .iter()
                        .find(|x| x.name == f.name)
                        .or_else(|| wf.iter().find(|x| f.aliases.contains(&x.name)));
                    match written {
                        Some(x) => self.resolve(&f.ty, &x.ty, &floc),
                        None if f.default.is_some() => {}
                        None => self.out.push(match self.dir {
                            Direction::Backward => {
                                format!("{}: added as required without a default", place(&floc))
                            }
                            Direction::Forward => format!(
                                "{}: removed, but the old schema has no default for it",
                                place(&floc)
                            ),
                        }),
                    }
                }
            }
            (
                NamedKind::Enum {
                    symbols: rs,
                    default,
                },
                NamedKind::Enum { symbols: ws, .. },
            ) => {
                if default.is_some() {
                    return;
                }
                for s in ws.iter().filter(|s| !rs.contains(s)) {
                    self.out.push(match self.dir {
                        Direction::Backward => format!(
                            "{}: enum `{}` symbol `{s}` removed, and the new enum has no default",
                            place(loc),
                            r.name
                        ),
                        Direction::Forward => format!(
                            "{}: enum `{}` symbol `{s}` added, which the old schema cannot read (its enum has no default)",
                            place(loc),
                            r.name
                        ),
                    });
                }
            }
            (NamedKind::Fixed { size: rs }, NamedKind::Fixed { size: ws }) => {
                if rs != ws {
                    let (old, new) = self.dir.old_new(ws, rs);
                    self.out.push(format!(
                        "{}: fixed `{}` size changed from {old} to {new}",
                        place(loc),
                        r.name
                    ));
                }
            }
            _ => self.changed(rt, wt, loc, None),
        }
    }
}

/// Whether two types are of the same kind (both records, both arrays, both numbers...), to
/// pick the union branch whose problems explain a failed resolution.
fn same_kind(rs: &AvroSchema, r: &Type, ws: &AvroSchema, w: &Type) -> bool {
    use Type::*;
    match (r, w) {
        (Type::Named(a), Type::Named(b)) => match (rs.named(a), ws.named(b)) {
            (Some(x), Some(y)) => {
                std::mem::discriminant(&x.kind) == std::mem::discriminant(&y.kind)
            }
            _ => false,
        },
        (Int | Long | Float | Double, Int | Long | Float | Double) => true,
        (String | Bytes, String | Bytes) => true,
        _ => std::mem::discriminant(r) == std::mem::discriminant(w),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Compatibility, Schema, SchemaType, compatibility_problems};
    use serde_json::json;

    fn avro(v: Value) -> AvroSchema {
        AvroSchema::parse(&v).unwrap_or_else(|e| panic!("{e}"))
    }

    fn user_v1() -> Value {
        json!({"type": "record", "name": "User", "namespace": "shop", "fields": [
            {"name": "id", "type": "long"},
            {"name": "name", "type": "string"},
            {"name": "email", "type": ["null", "string"], "default": null}
        ]})
    }

    fn problems(mode: Compatibility, new: Value, old: Value) -> Vec<String> {
        let new = Schema::parse(SchemaType::Avro, &new.to_string()).unwrap();
        let old = Schema::parse(SchemaType::Avro, &old.to_string()).unwrap();
        compatibility_problems(mode, &new, &[(1, &old)])
    }

    #[test]
    fn parses_named_types_namespaces_and_recursion() {
        let s = avro(
            json!({"type": "record", "name": "Node", "namespace": "a.b", "fields": [
                {"name": "value", "type": {"type": "int", "logicalType": "date"}},
                {"name": "next", "type": ["null", "Node"], "default": null},
                {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
                {"name": "again", "type": "a.b.Kind"},
                {"name": "hash", "type": {"type": "fixed", "name": "Md5", "size": 4}},
                {"name": "tags", "type": {"type": "array", "items": "string"}},
                {"name": "attrs", "type": {"type": "map", "values": "long"}}
            ]}),
        );
        assert!(s.named.contains_key("a.b.Node"));
        assert!(s.named.contains_key("a.b.Kind"));
        let ok = json!({"value": 1, "next": {"value": 2, "kind": "B", "again": "A", "hash": "abcd",
                        "tags": [], "attrs": {}}, "kind": "A", "again": "B", "hash": "wxyz",
                        "tags": ["x"], "attrs": {"k": 5}});
        s.validate(&ok).unwrap();
    }

    #[test]
    fn bad_schemas_are_refused_naming_the_place() {
        let cases = [
            (json!("Nope"), "unknown type `Nope`"),
            (
                json!({"type": "record", "name": "R"}),
                "needs a `fields` array",
            ),
            (
                json!({"type": "record", "name": "R", "fields": [{"name": "a"}]}),
                "field `a`: the field has no `type`",
            ),
            (
                json!({"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}, {"name": "a", "type": "int"}]}),
                "two fields named `a`",
            ),
            (
                json!({"type": "record", "name": "R", "fields": [{"name": "a", "type": "int", "default": "x"}]}),
                "field `a` of record `R`: its default \"x\" does not match its type `int`",
            ),
            (
                json!({"type": "record", "name": "R", "fields": [{"name": "a", "type": ["null", "int"], "default": 5}]}),
                "does not match its type `[null, int]`",
            ),
            (json!(["null", "null"]), "two branches of type `null`"),
            (
                json!(["null", ["int"]]),
                "may not directly contain another union",
            ),
            (
                json!({"type": "enum", "name": "E", "symbols": ["A", "A"]}),
                "symbol `A` twice",
            ),
            (
                json!({"type": "enum", "name": "E", "symbols": ["A"], "default": "B"}),
                "default \"B\" is not one of its symbols",
            ),
            (
                json!({"type": "fixed", "name": "F"}),
                "needs a non-negative integer `size`",
            ),
            (
                json!({"type": "record", "name": "1R", "fields": []}),
                "not a valid Avro name",
            ),
            (json!({"type": "array"}), "an array needs `items`"),
            (json!(42), "expected a type name"),
        ];
        for (schema, want) in cases {
            let e = AvroSchema::parse(&schema).unwrap_err();
            assert!(e.contains(want), "{schema}: {e}");
        }
        // A union default matching a later branch is refused (it must match the first).
        avro(
            json!({"type": "record", "name": "R", "fields": [{"name": "a", "type": ["int", "null"], "default": 5}]}),
        );
    }

    #[test]
    fn validation_names_the_path_and_the_reason() {
        let s = avro(user_v1());
        s.validate(&json!({"id": 1, "name": "ann"})).unwrap();
        s.validate(&json!({"id": 1, "name": "ann", "email": "a@x"}))
            .unwrap();
        // Avro's JSON encoding of a union value.
        s.validate(&json!({"id": 1, "name": "ann", "email": {"string": "a@x"}}))
            .unwrap();
        // Fields the schema does not name are ignored, as a reader ignores them.
        s.validate(&json!({"id": 1, "name": "ann", "extra": true}))
            .unwrap();
        let e = s.validate(&json!({"id": "x", "name": "ann"})).unwrap_err();
        assert_eq!(e.to_string(), r#"$.id: expected long, got "x""#);
        let e = s.validate(&json!({"id": 1})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "$.name: missing, and field `name` of record `shop.User` has no default"
        );
        let e = s
            .validate(&json!({"id": 1, "name": "a", "email": 5}))
            .unwrap_err();
        assert_eq!(e.to_string(), "$.email: expected string, got 5");
        let e = s.validate(&json!([1])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "$: expected record `shop.User` (a JSON object), got [1]"
        );
        let i = avro(
            json!({"type": "record", "name": "R", "fields": [{"name": "n", "type": "int"},
            {"name": "xs", "type": {"type": "array", "items": ["int", "string"]}}]}),
        );
        let e = i
            .validate(&json!({"n": 3_000_000_000_i64, "xs": []}))
            .unwrap_err();
        assert!(e.to_string().contains("outside the 32-bit range"), "{e}");
        let e = i
            .validate(&json!({"n": 1, "xs": [1, "a", true]}))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "$.xs[2]: expected one of [int, string], got true"
        );
        i.validate(&json!({"n": 1.0, "xs": []})).unwrap();
        let e = i.validate(&json!({"n": 1.5, "xs": []})).unwrap_err();
        assert_eq!(e.to_string(), "$.n: expected int, got 1.5");
    }

    #[test]
    fn backward_added_field_needs_a_default() {
        let mut v2 = user_v1();
        v2["fields"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "age", "type": "int"}));
        assert_eq!(
            problems(Compatibility::Backward, v2.clone(), user_v1()),
            vec!["field `age`: added as required without a default (BACKWARD)"]
        );
        v2["fields"][3]["default"] = json!(0);
        assert!(problems(Compatibility::Backward, v2.clone(), user_v1()).is_empty());
        // FULL: the old schema reads new data too (it skips `age`).
        assert!(problems(Compatibility::Full, v2, user_v1()).is_empty());
    }

    #[test]
    fn removed_field_is_backward_but_not_forward_without_a_default() {
        let mut v2 = user_v1();
        v2["fields"].as_array_mut().unwrap().remove(1); // name
        assert!(problems(Compatibility::Backward, v2.clone(), user_v1()).is_empty());
        assert_eq!(
            problems(Compatibility::Forward, v2.clone(), user_v1()),
            vec!["field `name`: removed, but the old schema has no default for it (FORWARD)"]
        );
        // Removing `email`, which has a default, is fully compatible.
        let mut v3 = user_v1();
        v3["fields"].as_array_mut().unwrap().remove(2);
        assert!(problems(Compatibility::Full, v3, user_v1()).is_empty());
    }

    #[test]
    fn promotions_are_one_way() {
        let rec =
            |t: &str| json!({"type": "record", "name": "R", "fields": [{"name": "n", "type": t}]});
        for (old, new) in [
            ("int", "long"),
            ("int", "float"),
            ("int", "double"),
            ("long", "double"),
            ("float", "double"),
            ("long", "float"),
            ("string", "bytes"),
            ("bytes", "string"),
        ] {
            assert!(
                problems(Compatibility::Backward, rec(new), rec(old)).is_empty(),
                "{old} -> {new}"
            );
        }
        assert_eq!(
            problems(Compatibility::Backward, rec("int"), rec("long")),
            vec!["field `n`: type changed from `long` to `int` (BACKWARD)"]
        );
        assert_eq!(
            problems(Compatibility::Forward, rec("long"), rec("int")),
            vec!["field `n`: type changed from `int` to `long` (FORWARD)"]
        );
        assert_eq!(
            problems(Compatibility::Backward, rec("int"), rec("string")),
            vec!["field `n`: type changed from `string` to `int` (BACKWARD)"]
        );
    }

    #[test]
    fn unions_enums_names_and_fixed() {
        let rec =
            |t: Value| json!({"type": "record", "name": "R", "fields": [{"name": "f", "type": t}]});
        // Widening to a union is backward; narrowing is not.
        assert!(
            problems(
                Compatibility::Backward,
                rec(json!(["null", "string"])),
                rec(json!("string"))
            )
            .is_empty()
        );
        let p = problems(
            Compatibility::Backward,
            rec(json!("string")),
            rec(json!(["null", "string"])),
        );
        assert_eq!(
            p,
            vec![
                "field `f`: type changed from `[null, string]` to `string` (the new schema cannot read `null`) (BACKWARD)"
            ]
        );
        let e = |syms: &[&str], default: Option<&str>| {
            let mut x = json!({"type": "enum", "name": "Color", "symbols": syms});
            if let Some(d) = default {
                x["default"] = json!(d);
            }
            rec(x)
        };
        assert!(
            problems(
                Compatibility::Backward,
                e(&["RED", "GREEN", "BLUE"], None),
                e(&["RED", "GREEN"], None)
            )
            .is_empty()
        );
        assert_eq!(
            problems(
                Compatibility::Backward,
                e(&["RED"], None),
                e(&["RED", "GREEN"], None)
            ),
            vec![
                "field `f`: enum `Color` symbol `GREEN` removed, and the new enum has no default (BACKWARD)"
            ]
        );
        assert!(
            problems(
                Compatibility::Backward,
                e(&["RED", "OTHER"], Some("OTHER")),
                e(&["RED", "GREEN"], None)
            )
            .is_empty()
        );
        assert_eq!(
            problems(
                Compatibility::Forward,
                e(&["RED", "GREEN", "BLUE"], None),
                e(&["RED", "GREEN"], None)
            ),
            vec![
                "field `f`: enum `Color` symbol `BLUE` added, which the old schema cannot read (its enum has no default) (FORWARD)"
            ]
        );
        let named = |n: &str, aliases: &[&str]| json!({"type": "record", "name": n, "aliases": aliases, "fields": []});
        assert_eq!(
            problems(Compatibility::Backward, named("B", &[]), named("A", &[])),
            vec![
                "the schema: record name changed from `A` to `B` (add the old name to `aliases`) (BACKWARD)"
            ]
        );
        assert!(problems(Compatibility::Backward, named("B", &["A"]), named("A", &[])).is_empty());
        let fx = |n: u64| rec(json!({"type": "fixed", "name": "F", "size": n}));
        assert_eq!(
            problems(Compatibility::Backward, fx(8), fx(16)),
            vec!["field `f`: fixed `F` size changed from 16 to 8 (BACKWARD)"]
        );
    }

    #[test]
    fn nested_records_report_dotted_paths_and_recursion_ends() {
        let v = |zip: &str| {
            json!({"type": "record", "name": "U", "fields": [
            {"name": "address", "type": {"type": "record", "name": "Addr", "fields": [
                {"name": "zip", "type": zip}]}},
            {"name": "friends", "type": {"type": "array", "items": "U"}}]})
        };
        assert_eq!(
            problems(Compatibility::Full, v("int"), v("string")),
            vec![
                "field `address.zip`: type changed from `string` to `int` (BACKWARD)",
                "field `address.zip`: type changed from `string` to `int` (FORWARD)"
            ]
        );
        assert!(problems(Compatibility::Full, v("string"), v("string")).is_empty());
    }
}
