//! JSON Schema: the subset weir supports, compatibility as a subset check, and validation.
//!
//! Supported keywords (drafts 4 to 2020-12 agree on them): `type` (a name or an array of
//! names: null, boolean, integer, number, string, array, object), `properties`, `required`,
//! `additionalProperties` (a boolean or a schema), `items` (one schema for every item),
//! `minItems`, `maxItems`, `enum`, `const`, `minimum`, `maximum`, `exclusiveMinimum`,
//! `exclusiveMaximum` (a number, or a boolean next to `minimum`/`maximum` as in draft 4),
//! `minLength`, `maxLength`, and the boolean schemas `true` and `false`. Annotations are
//! accepted and have no effect: `$schema`, `$id`, `id`, `$comment`, `title`, `description`,
//! `default`, `examples`, `deprecated`, `readOnly`, `writeOnly`, and `format` (an annotation
//! by default since draft 2019-09; weir does not assert formats). Any other keyword (`$ref`,
//! `pattern`, `oneOf`, `allOf`, `patternProperties`, tuple `items`, ...) makes the schema
//! invalid, with an error naming it and where it is, rather than being ignored.
//!
//! Compatibility: a reader schema can read a writer's data when every value the writer accepts,
//! the reader accepts too. The check is structural and errs on the side of refusing: no type
//! the writer accepts may be dropped (an `integer` reader does not take `number`), bounds and
//! lengths may only widen, an `enum` may only grow, a property the reader requires must be
//! required by the writer, and closed content models (`additionalProperties: false`) are
//! followed both ways: a property added with a schema to an open writer model, or one dropped
//! from a closed reader model, is a break.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::{Direction, Violation, child_path, show};

/// A parsed JSON Schema (the supported subset).
#[derive(Debug, Clone, PartialEq)]
pub struct JsonSchema {
    root: Node,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Bool(bool),
    Rules(Box<Rules>),
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Rules {
    types: Option<Types>,
    properties: BTreeMap<String, Node>,
    required: BTreeSet<String>,
    /// `None`: any additional property is accepted.
    additional: Option<Node>,
    items: Option<Node>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    /// `enum` and `const`: the only values accepted.
    values: Option<Vec<Value>>,
    lower: Option<Bound>,
    upper: Option<Bound>,
    min_length: Option<u64>,
    max_length: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Bound {
    value: f64,
    exclusive: bool,
}

/// A set of JSON types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Types(u8);

const TYPE_NAMES: [&str; 7] = [
    "null", "boolean", "integer", "number", "string", "array", "object",
];
const NULL: u8 = 1;
const BOOLEAN: u8 = 2;
const INTEGER: u8 = 4;
const NUMBER: u8 = 8;
const STRING: u8 = 16;
const ARRAY: u8 = 32;
const OBJECT: u8 = 64;
const ALL: Types = Types(127);

impl Types {
    fn of_name(name: &str) -> Option<u8> {
        TYPE_NAMES.iter().position(|n| *n == name).map(|i| 1u8 << i)
    }

    fn has(self, t: u8) -> bool {
        self.0 & t != 0
    }

    /// Whether a value of type `t` (one bit) is accepted: `number` takes integers too.
    fn accepts(self, t: u8) -> bool {
        self.has(t) || (t == INTEGER && self.has(NUMBER))
    }

    fn of_value(v: &Value) -> u8 {
        match v {
            Value::Null => NULL,
            Value::Bool(_) => BOOLEAN,
            Value::Number(n) => {
                if n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0) {
                    INTEGER
                } else {
                    NUMBER
                }
            }
            Value::String(_) => STRING,
            Value::Array(_) => ARRAY,
            Value::Object(_) => OBJECT,
        }
    }

    /// The type names, `null` last (`integer or null` reads better than the reverse).
    fn names(self) -> Vec<&'static str> {
        (1..7)
            .chain(0..1)
            .filter(|i| self.has(1 << i))
            .map(|i| TYPE_NAMES[i])
            .collect()
    }

    fn display(self) -> String {
        if self == ALL {
            return "any".into();
        }
        match self.names().as_slice() {
            [one] => (*one).to_owned(),
            names => format!("[{}]", names.join(", ")),
        }
    }

    fn words(self) -> String {
        self.names().join(" or ")
    }
}

const ANNOTATIONS: [&str; 12] = [
    "$schema",
    "$id",
    "id",
    "$comment",
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "format",
];

const SUPPORTED: &str = "type, properties, required, additionalProperties, items, minItems, maxItems, enum, const, minimum, maximum, exclusiveMinimum, exclusiveMaximum, minLength, maxLength";

fn at(ptr: &str) -> String {
    if ptr.is_empty() {
        "#".into()
    } else {
        format!("#{ptr}")
    }
}

fn count(o: &Map<String, Value>, key: &str, ptr: &str) -> Result<Option<u64>, String> {
    match o.get(key) {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            format!(
                "`{key}` at `{}` must be a non-negative integer, got {}",
                at(ptr),
                show(v)
            )
        }),
    }
}

fn number(o: &Map<String, Value>, key: &str, ptr: &str) -> Result<Option<f64>, String> {
    match o.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| format!("`{key}` at `{}` must be a number, got {}", at(ptr), show(v))),
    }
}

fn parse_node(v: &Value, ptr: &str) -> Result<Node, String> {
    let o = match v {
        Value::Bool(b) => return Ok(Node::Bool(*b)),
        Value::Object(o) => o,
        other => {
            return Err(format!(
                "the schema at `{}` must be an object or a boolean, got {}",
                at(ptr),
                show(other)
            ));
        }
    };
    let mut r = Rules::default();
    for key in o.keys() {
        let known =
            ANNOTATIONS.contains(&key.as_str()) || SUPPORTED.split(", ").any(|k| k == key.as_str());
        if !known {
            return Err(format!(
                "keyword `{key}` at `{}` is not supported; weir supports {SUPPORTED} (and annotations such as title and description)",
                at(ptr)
            ));
        }
    }
    if let Some(t) = o.get("type") {
        let names: Vec<&Value> = match t {
            Value::Array(a) if !a.is_empty() => a.iter().collect(),
            Value::String(_) => vec![t],
            other => {
                return Err(format!(
                    "`type` at `{}` must be a type name or a non-empty array of them, got {}",
                    at(ptr),
                    show(other)
                ));
            }
        };
        let mut bits = 0u8;
        for n in names {
            let b = n.as_str().and_then(Types::of_name).ok_or_else(|| {
                format!(
                    "`type` at `{}`: {} is not a JSON Schema type (expected one of {})",
                    at(ptr),
                    show(n),
                    TYPE_NAMES.join(", ")
                )
            })?;
            bits |= b;
        }
        r.types = Some(Types(bits));
    }
    if let Some(p) = o.get("properties") {
        let p = p.as_object().ok_or_else(|| {
            format!(
                "`properties` at `{}` must be an object, got {}",
                at(ptr),
                show(p)
            )
        })?;
        for (k, s) in p {
            r.properties
                .insert(k.clone(), parse_node(s, &format!("{ptr}/properties/{k}"))?);
        }
    }
    if let Some(req) = o.get("required") {
        let a = req.as_array().ok_or_else(|| {
            format!(
                "`required` at `{}` must be an array of property names, got {}",
                at(ptr),
                show(req)
            )
        })?;
        for x in a {
            let name = x.as_str().ok_or_else(|| {
                format!(
                    "`required` at `{}` must hold strings, got {}",
                    at(ptr),
                    show(x)
                )
            })?;
            r.required.insert(name.to_owned());
        }
    }
    if let Some(a) = o.get("additionalProperties") {
        r.additional = Some(parse_node(a, &format!("{ptr}/additionalProperties"))?);
    }
    if let Some(i) = o.get("items") {
        if i.is_array() {
            return Err(format!(
                "`items` at `{}` is an array (tuple validation), which is not supported; give one schema for every item",
                at(ptr)
            ));
        }
        r.items = Some(parse_node(i, &format!("{ptr}/items"))?);
    }
    r.min_items = count(o, "minItems", ptr)?;
    r.max_items = count(o, "maxItems", ptr)?;
    r.min_length = count(o, "minLength", ptr)?;
    r.max_length = count(o, "maxLength", ptr)?;
    if let Some(e) = o.get("enum") {
        let a = e.as_array().filter(|a| !a.is_empty()).ok_or_else(|| {
            format!(
                "`enum` at `{}` must be a non-empty array, got {}",
                at(ptr),
                show(e)
            )
        })?;
        r.values = Some(a.clone());
    }
    if let Some(c) = o.get("const") {
        r.values = Some(match r.values.take() {
            Some(vals) if !vals.iter().any(|v| json_eq(v, c)) => Vec::new(),
            _ => vec![c.clone()],
        });
    }
    let (min, max) = (number(o, "minimum", ptr)?, number(o, "maximum", ptr)?);
    r.lower = min.map(|value| Bound {
        value,
        exclusive: false,
    });
    r.upper = max.map(|value| Bound {
        value,
        exclusive: false,
    });
    for (key, lower) in [("exclusiveMinimum", true), ("exclusiveMaximum", false)] {
        let bound = if lower { &mut r.lower } else { &mut r.upper };
        match o.get(key) {
            None | Some(Value::Bool(false)) => {}
            Some(Value::Bool(true)) => match bound {
                Some(b) => b.exclusive = true,
                None => {
                    return Err(format!(
                        "`{key}: true` at `{}` needs `{}` next to it",
                        at(ptr),
                        if lower { "minimum" } else { "maximum" }
                    ));
                }
            },
            Some(v) => {
                let value = v.as_f64().ok_or_else(|| {
                    format!("`{key}` at `{}` must be a number, got {}", at(ptr), show(v))
                })?;
                let tighter = match bound {
                    None => true,
                    Some(b) if lower => value >= b.value,
                    Some(b) => value <= b.value,
                };
                if tighter {
                    *bound = Some(Bound {
                        value,
                        exclusive: true,
                    });
                }
            }
        }
    }
    Ok(Node::Rules(Box::new(r)))
}

/// JSON equality with numbers compared by value (`1` equals `1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(i), Some(j)) => i == j,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn bound_text(b: Option<&Bound>, lower: bool) -> String {
    match b {
        None => "none".into(),
        Some(b) => {
            let op = match (lower, b.exclusive) {
                (true, false) => ">=",
                (true, true) => ">",
                (false, false) => "<=",
                (false, true) => "<",
            };
            format!("{op} {}", b.value)
        }
    }
}

impl JsonSchema {
    /// Parses a schema; unsupported keywords are errors naming the keyword and its place.
    pub fn parse(v: &Value) -> Result<JsonSchema, String> {
        Ok(JsonSchema {
            root: parse_node(v, "")?,
        })
    }

    pub fn validate(&self, v: &Value) -> Result<(), Violation> {
        check(&self.root, v, "$")
    }
}

fn check(node: &Node, v: &Value, path: &str) -> Result<(), Violation> {
    let fail = |reason: String| {
        Err(Violation {
            path: path.to_owned(),
            reason,
        })
    };
    let r = match node {
        Node::Bool(true) => return Ok(()),
        Node::Bool(false) => {
            return fail("no value is allowed here (the schema is `false`)".into());
        }
        Node::Rules(r) => r,
    };
    let t = Types::of_value(v);
    if let Some(types) = r.types
        && !types.accepts(t)
    {
        return fail(format!("expected {}, got {}", types.words(), show(v)));
    }
    if let Some(vals) = &r.values
        && !vals.iter().any(|x| json_eq(x, v))
    {
        return fail(match vals.as_slice() {
            [one] => format!("expected {}, got {}", show(one), show(v)),
            _ => format!(
                "{} is not one of {}",
                show(v),
                show(&Value::Array(vals.clone()))
            ),
        });
    }
    match v {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if let Some(b) = r.lower
                && (x < b.value || (b.exclusive && x == b.value))
            {
                return fail(format!(
                    "{x} is below the lower bound ({})",
                    bound_text(Some(&b), true)
                ));
            }
            if let Some(b) = r.upper
                && (x > b.value || (b.exclusive && x == b.value))
            {
                return fail(format!(
                    "{x} is above the upper bound ({})",
                    bound_text(Some(&b), false)
                ));
            }
        }
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(m) = r.min_length
                && len < m
            {
                return fail(format!(
                    "a string of {len} characters is shorter than minLength {m}"
                ));
            }
            if let Some(m) = r.max_length
                && len > m
            {
                return fail(format!(
                    "a string of {len} characters is longer than maxLength {m}"
                ));
            }
        }
        Value::Array(a) => {
            let len = a.len() as u64;
            if let Some(m) = r.min_items
                && len < m
            {
                return fail(format!("{len} items, fewer than minItems {m}"));
            }
            if let Some(m) = r.max_items
                && len > m
            {
                return fail(format!("{len} items, more than maxItems {m}"));
            }
            if let Some(items) = &r.items {
                for (i, x) in a.iter().enumerate() {
                    check(items, x, &format!("{path}[{i}]"))?;
                }
            }
        }
        Value::Object(o) => {
            for p in &r.required {
                if !o.contains_key(p) {
                    return Err(Violation {
                        path: child_path(path, p),
                        reason: "required property is missing".into(),
                    });
                }
            }
            for (k, x) in o {
                let p = child_path(path, k);
                match r.properties.get(k) {
                    Some(s) => check(s, x, &p)?,
                    None => match &r.additional {
                        None => {}
                        Some(Node::Bool(false)) => {
                            return Err(Violation {
                                path: p,
                                reason: "property is not allowed (additionalProperties is false)"
                                    .into(),
                            });
                        }
                        Some(s) => check(s, x, &p)?,
                    },
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Why `reader` does not accept everything `writer` accepts; empty when it does.
pub(crate) fn read_problems(
    reader: &JsonSchema,
    writer: &JsonSchema,
    dir: Direction,
) -> Vec<String> {
    let mut out = Vec::new();
    subset(&writer.root, &reader.root, "", dir, &mut out);
    out
}

/// How a location reads in messages: `a.b` is a property, `a.*` the additional properties
/// of `a`, `a[]` the items of array `a`.
fn place(loc: &str) -> String {
    if loc.is_empty() {
        "the schema".into()
    } else if loc == "*" {
        "additional properties".into()
    } else if loc == "[]" {
        "array items".into()
    } else if let Some(parent) = loc.strip_suffix(".*") {
        format!("additional properties of `{parent}`")
    } else if let Some(parent) = loc.strip_suffix("[]") {
        format!("items of `{parent}`")
    } else {
        format!("property `{loc}`")
    }
}

fn join_loc(loc: &str, name: &str) -> String {
    if loc.is_empty() {
        name.to_owned()
    } else {
        format!("{loc}.{name}")
    }
}

fn is_any(n: &Node) -> bool {
    match n {
        Node::Bool(b) => *b,
        Node::Rules(r) => **r == Rules::default(),
    }
}

/// Reports, into `out`, why values accepted by `w` may be refused by `r`.
fn subset(w: &Node, r: &Node, loc: &str, dir: Direction, out: &mut Vec<String>) {
    let (writer, reader) = dir.sides();
    let anything = Rules::default();
    let w = match w {
        Node::Bool(false) => return,
        Node::Bool(true) => &anything,
        Node::Rules(x) => x.as_ref(),
    };
    let r = match r {
        Node::Bool(true) => return,
        Node::Bool(false) => {
            out.push(format!(
                "{}: {reader} accepts no value (`false`) where {writer} accepts values",
                place(loc)
            ));
            return;
        }
        Node::Rules(x) => x.as_ref(),
    };
    if let Some(vals) = &w.values {
        // A finite writer: check each value it accepts.
        let wn = Node::Rules(Box::new(w.clone()));
        let rn = Node::Rules(Box::new(r.clone()));
        for v in vals {
            if check(&wn, v, "$").is_ok() && check(&rn, v, "$").is_err() {
                out.push(format!(
                    "{}: value {} accepted by {writer} is rejected by {reader}",
                    place(loc),
                    show(v)
                ));
            }
        }
        return;
    }
    if let Some(vals) = &r.values {
        out.push(format!(
            "{}: {reader} accepts only {}, {writer} accepts other values",
            place(loc),
            show(&Value::Array(vals.clone()))
        ));
        return;
    }
    let wt = w.types.unwrap_or(ALL);
    let rt = r.types.unwrap_or(ALL);
    let mut common = 0u8;
    let mut lost = false;
    for i in 0..7 {
        let t = 1u8 << i;
        if wt.has(t) {
            if rt.accepts(t) {
                common |= t;
            } else {
                lost = true;
            }
        }
    }
    if lost {
        let (old, new) = dir.old_new(wt.display(), rt.display());
        out.push(format!(
            "{}: type changed from `{old}` to `{new}`",
            place(loc)
        ));
    }
    let common = Types(common);
    if common.has(INTEGER) || common.has(NUMBER) {
        bounds(w.lower, r.lower, true, loc, dir, out);
        bounds(w.upper, r.upper, false, loc, dir, out);
    }
    if common.has(STRING) {
        counts(w.min_length, r.min_length, "minLength", true, loc, dir, out);
        counts(
            w.max_length,
            r.max_length,
            "maxLength",
            false,
            loc,
            dir,
            out,
        );
    }
    if common.has(ARRAY) {
        counts(w.min_items, r.min_items, "minItems", true, loc, dir, out);
        counts(w.max_items, r.max_items, "maxItems", false, loc, dir, out);
        let any = Node::Bool(true);
        subset(
            w.items.as_ref().unwrap_or(&any),
            r.items.as_ref().unwrap_or(&any),
            &format!("{loc}[]"),
            dir,
            out,
        );
    }
    if common.has(OBJECT) {
        objects(w, r, loc, dir, out);
    }
}

fn bounds(
    w: Option<Bound>,
    r: Option<Bound>,
    lower: bool,
    loc: &str,
    dir: Direction,
    out: &mut Vec<String>,
) {
    let Some(rb) = r else { return };
    let within = w.is_some_and(|wb| {
        let inside = if lower {
            wb.value > rb.value
        } else {
            wb.value < rb.value
        };
        inside || (wb.value == rb.value && (!rb.exclusive || wb.exclusive))
    });
    if !within {
        let (old, new) = dir.old_new(bound_text(w.as_ref(), lower), bound_text(Some(&rb), lower));
        let which = if lower { "lower" } else { "upper" };
        out.push(format!(
            "{}: {which} bound changed from `{old}` to `{new}`",
            place(loc)
        ));
    }
}

fn counts(
    w: Option<u64>,
    r: Option<u64>,
    key: &str,
    lower: bool,
    loc: &str,
    dir: Direction,
    out: &mut Vec<String>,
) {
    let Some(rv) = r else { return };
    let within = w.is_some_and(|wv| if lower { wv >= rv } else { wv <= rv });
    if !within {
        let text = |x: Option<u64>| x.map_or("none".to_owned(), |x| x.to_string());
        let (old, new) = dir.old_new(text(w), text(r));
        out.push(format!(
            "{}: `{key}` changed from {old} to {new}",
            place(loc)
        ));
    }
}

fn objects(w: &Rules, r: &Rules, loc: &str, dir: Direction, out: &mut Vec<String>) {
    let (writer, reader) = dir.sides();
    for (p, rs) in &r.properties {
        let ploc = join_loc(loc, p);
        match (w.properties.get(p), &w.additional) {
            (Some(ws), _) => subset(ws, rs, &ploc, dir, out),
            (None, Some(Node::Bool(false))) => {}
            (None, None | Some(Node::Bool(true))) => {
                if !is_any(rs) {
                    out.push(match dir {
                        Direction::Backward => format!(
                            "{}: added to an open content model (the old schema accepts any value for it; close it with additionalProperties: false first)",
                            place(&ploc)
                        ),
                        Direction::Forward => format!(
                            "{}: removed from an open content model (the new schema accepts any value for it, the old schema does not)",
                            place(&ploc)
                        ),
                    });
                }
            }
            (None, Some(other)) => subset(other, rs, &ploc, dir, out),
        }
    }
    for (p, ws) in &w.properties {
        if r.properties.contains_key(p) {
            continue;
        }
        let ploc = join_loc(loc, p);
        match &r.additional {
            None | Some(Node::Bool(true)) => {}
            Some(Node::Bool(false)) => out.push(match dir {
                Direction::Backward => format!(
                    "{}: removed from a closed content model (the new schema no longer accepts it)",
                    place(&ploc)
                ),
                Direction::Forward => format!(
                    "{}: added, but the old schema does not accept it (additionalProperties is false)",
                    place(&ploc)
                ),
            }),
            Some(other) => subset(ws, other, &ploc, dir, out),
        }
    }
    for p in r.required.difference(&w.required) {
        let ploc = join_loc(loc, p);
        let declared = w.properties.contains_key(p);
        out.push(match (dir, declared) {
            (Direction::Backward, false) => format!("{}: added as required", place(&ploc)),
            (Direction::Backward, true) => format!(
                "{}: made required (the old schema accepts records without it)",
                place(&ploc)
            ),
            (Direction::Forward, false) => {
                format!("{}: removed, but the old schema requires it", place(&ploc))
            }
            (Direction::Forward, true) => format!(
                "{}: no longer required, but the old schema requires it",
                place(&ploc)
            ),
        });
    }
    match (&w.additional, &r.additional) {
        (Some(Node::Bool(false)), _) => {}
        (_, Some(Node::Bool(false))) => out.push(format!(
            "{}: {writer} accepts additional properties, {reader} does not (additionalProperties is false)",
            place(loc)
        )),
        (wa, ra) => {
            let any = Node::Bool(true);
            subset(
                wa.as_ref().unwrap_or(&any),
                ra.as_ref().unwrap_or(&any),
                &format!("{}*", if loc.is_empty() { String::new() } else { format!("{loc}.") }),
                dir,
                out,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Compatibility, Schema, SchemaType, compatibility_problems};
    use serde_json::json;

    fn schema(v: Value) -> JsonSchema {
        JsonSchema::parse(&v).unwrap_or_else(|e| panic!("{e}"))
    }

    fn problems(mode: Compatibility, new: Value, old: Value) -> Vec<String> {
        let new = Schema::parse(SchemaType::Json, &new.to_string()).unwrap();
        let old = Schema::parse(SchemaType::Json, &old.to_string()).unwrap();
        compatibility_problems(mode, &new, &[(1, &old)])
    }

    fn user(extra: Value, required: &[&str], additional: Option<bool>) -> Value {
        let mut props = json!({"id": {"type": "integer"}, "name": {"type": "string"}});
        for (k, v) in extra.as_object().unwrap() {
            props[k] = v.clone();
        }
        let mut s = json!({"type": "object", "properties": props, "required": required});
        if let Some(a) = additional {
            s["additionalProperties"] = json!(a);
        }
        s
    }

    #[test]
    fn validation_names_the_path_and_the_reason() {
        let s = schema(json!({
        "$schema": "http://json-schema.org/draft-07/schema#", "title": "User",
        "type": "object", "required": ["id"], "additionalProperties": false,
        "properties": {
            "id": {"type": "integer", "minimum": 1},
            "age": {"type": ["integer", "null"], "maximum": 150},
            "name": {"type": "string", "minLength": 1, "maxLength": 5, "format": "x"},
            "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2},
            "kind": {"const": "user"},
            "score": {"type": "number", "exclusiveMinimum": 0}
        }}));
        s.validate(&json!({"id": 1, "age": null, "name": "ann", "tags": ["a"], "kind": "user", "score": 0.5})).unwrap();
        s.validate(&json!({"id": 1.0})).unwrap();
        let cases = [
            (
                json!({"id": 1, "age": "x"}),
                r#"$.age: expected integer or null, got "x""#,
            ),
            (json!({"age": 3}), "$.id: required property is missing"),
            (json!({"id": 0}), "$.id: 0 is below the lower bound (>= 1)"),
            (json!({"id": 1.5}), "$.id: expected integer, got 1.5"),
            (
                json!({"id": 1, "age": 200}),
                "$.age: 200 is above the upper bound (<= 150)",
            ),
            (
                json!({"id": 1, "name": "toolong"}),
                "$.name: a string of 7 characters is longer than maxLength 5",
            ),
            (
                json!({"id": 1, "name": ""}),
                "$.name: a string of 0 characters is shorter than minLength 1",
            ),
            (
                json!({"id": 1, "tags": ["a", "c"]}),
                r#"$.tags[1]: "c" is not one of ["a","b"]"#,
            ),
            (
                json!({"id": 1, "tags": ["a", "a", "b"]}),
                "$.tags: 3 items, more than maxItems 2",
            ),
            (
                json!({"id": 1, "kind": "admin"}),
                r#"$.kind: expected "user", got "admin""#,
            ),
            (
                json!({"id": 1, "score": 0}),
                "$.score: 0 is below the lower bound (> 0)",
            ),
            (
                json!({"id": 1, "x y": 0}),
                r#"$["x y"]: property is not allowed (additionalProperties is false)"#,
            ),
            (json!([1]), "$: expected object, got [1]"),
        ];
        for (v, want) in cases {
            assert_eq!(s.validate(&v).unwrap_err().to_string(), want, "{v}");
        }
        assert!(schema(json!(true)).validate(&json!(5)).is_ok());
        assert!(schema(json!(false)).validate(&json!(5)).is_err());
    }

    #[test]
    fn unsupported_keywords_are_refused_not_ignored() {
        for (s, want) in [
            (
                json!({"type": "string", "pattern": "^a"}),
                "keyword `pattern` at `#` is not supported",
            ),
            (
                json!({"properties": {"a": {"$ref": "#/definitions/x"}}}),
                "keyword `$ref` at `#/properties/a` is not supported",
            ),
            (json!({"oneOf": []}), "keyword `oneOf`"),
            (json!({"items": [{"type": "string"}]}), "tuple validation"),
            (
                json!({"type": "text"}),
                "\"text\" is not a JSON Schema type",
            ),
            (
                json!({"required": "a"}),
                "`required` at `#` must be an array",
            ),
            (
                json!({"minLength": -1}),
                "`minLength` at `#` must be a non-negative integer",
            ),
            (json!({"exclusiveMinimum": true}), "needs `minimum`"),
            (json!(5), "must be an object or a boolean"),
        ] {
            let e = JsonSchema::parse(&s).unwrap_err();
            assert!(e.contains(want), "{s}: {e}");
        }
    }

    #[test]
    fn backward_new_required_property_is_refused() {
        let v1 = user(json!({}), &["id"], None);
        let v2 = user(json!({"age": {"type": "integer"}}), &["id", "age"], None);
        let p = problems(Compatibility::Backward, v2, v1.clone());
        assert!(
            p.contains(&"property `age`: added as required (BACKWARD)".to_string()),
            "{p:?}"
        );
        // Required when it was optional before.
        let v3 = user(json!({}), &["id", "name"], None);
        assert_eq!(
            problems(Compatibility::Backward, v3, v1),
            vec![
                "property `name`: made required (the old schema accepts records without it) (BACKWARD)"
            ]
        );
    }

    #[test]
    fn optional_property_is_compatible_only_with_a_closed_old_model() {
        let open = user(json!({}), &["id"], None);
        let closed = user(json!({}), &["id"], Some(false));
        let add = |a| user(json!({"age": {"type": "integer"}}), &["id"], a);
        // The open old schema accepted `age` of any type, so constraining it breaks BACKWARD.
        assert_eq!(
            problems(Compatibility::Backward, add(None), open),
            vec![
                "property `age`: added to an open content model (the old schema accepts any value for it; close it with additionalProperties: false first) (BACKWARD)"
            ]
        );
        // A closed old model never had `age`: adding it optionally is backward compatible...
        assert!(problems(Compatibility::Backward, add(Some(false)), closed.clone()).is_empty());
        // ...but not forward: the closed old schema refuses records carrying `age`.
        assert_eq!(
            problems(Compatibility::Forward, add(Some(false)), closed.clone()),
            vec![
                "property `age`: added, but the old schema does not accept it (additionalProperties is false) (FORWARD)"
            ]
        );
        // Removing a property from a closed model breaks BACKWARD.
        let without_name = json!({"type": "object", "properties": {"id": {"type": "integer"}},
                                  "required": ["id"], "additionalProperties": false});
        assert_eq!(
            problems(Compatibility::Backward, without_name, closed),
            vec![
                "property `name`: removed from a closed content model (the new schema no longer accepts it) (BACKWARD)"
            ]
        );
    }

    #[test]
    fn types_bounds_and_enums_may_only_widen() {
        let t = |t: Value| json!({"type": "object", "properties": {"n": t}});
        assert!(
            problems(
                Compatibility::Backward,
                t(json!({"type": "number"})),
                t(json!({"type": "integer"}))
            )
            .is_empty()
        );
        assert_eq!(
            problems(
                Compatibility::Backward,
                t(json!({"type": "integer"})),
                t(json!({"type": "number"}))
            ),
            vec!["property `n`: type changed from `number` to `integer` (BACKWARD)"]
        );
        assert!(
            problems(
                Compatibility::Backward,
                t(json!({"type": ["string", "null"]})),
                t(json!({"type": "string"}))
            )
            .is_empty()
        );
        assert_eq!(
            problems(
                Compatibility::Forward,
                t(json!({"type": ["string", "null"]})),
                t(json!({"type": "string"}))
            ),
            vec!["property `n`: type changed from `string` to `[string, null]` (FORWARD)"]
        );
        assert_eq!(
            problems(
                Compatibility::Backward,
                t(json!({"type": "integer", "minimum": 5})),
                t(json!({"type": "integer", "minimum": 0}))
            ),
            vec!["property `n`: lower bound changed from `>= 0` to `>= 5` (BACKWARD)"]
        );
        assert!(
            problems(
                Compatibility::Backward,
                t(json!({"type": "integer", "minimum": 0})),
                t(json!({"type": "integer", "minimum": 5}))
            )
            .is_empty()
        );
        assert_eq!(
            problems(
                Compatibility::Backward,
                t(json!({"type": "string", "maxLength": 3})),
                t(json!({"type": "string"}))
            ),
            vec!["property `n`: `maxLength` changed from none to 3 (BACKWARD)"]
        );
        assert!(
            problems(
                Compatibility::Backward,
                t(json!({"enum": ["a", "b", "c"]})),
                t(json!({"enum": ["a", "b"]}))
            )
            .is_empty()
        );
        assert_eq!(
            problems(
                Compatibility::Backward,
                t(json!({"enum": ["a"]})),
                t(json!({"enum": ["a", "b"]}))
            ),
            vec![
                r#"property `n`: value "b" accepted by the old schema is rejected by the new schema (BACKWARD)"#
            ]
        );
        assert_eq!(
            problems(
                Compatibility::Backward,
                t(json!({"enum": ["a"]})),
                t(json!({"type": "string"}))
            ),
            vec![
                r#"property `n`: the new schema accepts only ["a"], the old schema accepts other values (BACKWARD)"#
            ]
        );
        let arr = |i: Value| json!({"type": "array", "items": i});
        assert_eq!(
            problems(
                Compatibility::Backward,
                arr(json!({"type": "string"})),
                arr(json!({"type": ["string", "integer"]}))
            ),
            vec!["array items: type changed from `[integer, string]` to `string` (BACKWARD)"]
        );
    }

    #[test]
    fn nested_objects_and_additional_schemas() {
        let v = |zip: Value, extra: Value| {
            json!({"type": "object", "properties": {
            "address": {"type": "object", "properties": {"zip": zip}, "additionalProperties": extra}}})
        };
        assert_eq!(
            problems(
                Compatibility::Backward,
                v(json!({"type": "integer"}), json!(true)),
                v(json!({"type": "string"}), json!(true))
            ),
            vec!["property `address.zip`: type changed from `string` to `integer` (BACKWARD)"]
        );
        assert_eq!(
            problems(
                Compatibility::Backward,
                v(json!({"type": "string"}), json!({"type": "string"})),
                v(json!({"type": "string"}), json!(true))
            ),
            vec![
                "additional properties of `address`: type changed from `any` to `string` (BACKWARD)"
            ]
        );
        assert!(
            problems(
                Compatibility::Full,
                v(json!({"type": "string"}), json!({"type": "string"})),
                v(json!({"type": "string"}), json!({"type": "string"}))
            )
            .is_empty()
        );
    }
}
