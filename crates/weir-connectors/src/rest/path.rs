//! The small JSONPath subset the `rest` source understands: `$` (the whole body), member
//! steps `$.a.b` (or `$['a b']` for names with dots or spaces) and array indexes `$.a[0].b`.
//! Anything else (wildcards, `..`, filters, slices) is refused when the config is validated,
//! with a message that says what is supported, so a typo never silently selects nothing.

use std::fmt;

use serde_json::Value;

/// A parsed path such as `$.results` or `$.data[0].items`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    text: String,
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

const SUPPORTED: &str = "supported: `$`, `$.a.b`, `$.a[0].b` and `$['a key']`";

impl JsonPath {
    /// Parses a path that starts with `$`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let Some(mut rest) = t.strip_prefix('$') else {
            return Err(format!(
                "`{text}` is not a JSON path: it must start with `$` ({SUPPORTED})"
            ));
        };
        let bad = |why: &str| format!("`{text}` is not a supported JSON path: {why} ({SUPPORTED})");
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('.') {
                if r.starts_with('.') {
                    return Err(bad("recursive descent `..` is not supported"));
                }
                let end = r.find(['.', '[']).unwrap_or(r.len());
                let name = &r[..end];
                if name.is_empty() {
                    return Err(bad("a `.` must be followed by a field name"));
                }
                if name == "*" {
                    return Err(bad("wildcards are not supported"));
                }
                if let Some(c) = name
                    .chars()
                    .find(|&c| matches!(c, ']' | '*' | '?' | '(' | ')' | '@' | '\'' | '"' | ' '))
                {
                    return Err(bad(&format!("unexpected `{c}` in the field name `{name}`")));
                }
                steps.push(Step::Key(name.to_owned()));
                rest = &r[end..];
            } else if let Some(r) = rest.strip_prefix('[') {
                let Some(close) = find_close(r) else {
                    return Err(bad("a `[` is not closed"));
                };
                let inner = r[..close].trim();
                let quoted = inner
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')));
                if let Some(name) = quoted {
                    steps.push(Step::Key(name.to_owned()));
                } else if let Ok(i) = inner.parse::<usize>() {
                    steps.push(Step::Index(i));
                } else {
                    return Err(bad(&format!(
                        "`[{inner}]` is neither an array index nor a quoted name"
                    )));
                }
                rest = &r[close + 1..];
            } else {
                return Err(bad(&format!("expected `.name` or `[index]` at `{rest}`")));
            }
        }
        Ok(JsonPath {
            text: t.to_owned(),
            steps,
        })
    }

    /// Parses a field of a record: a path (`$.login.uuid`) or the same without the `$.`
    /// (`login.uuid`, `id`).
    pub fn parse_field(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.starts_with('$') {
            Self::parse(t)
        } else if t.starts_with('[') {
            Self::parse(&format!("${t}"))
        } else {
            Self::parse(&format!("$.{t}"))
        }
    }

    /// The value at this path, or `None` when a step finds nothing (a missing key, an index
    /// past the end, a step into a value of another type).
    pub fn get<'v>(&self, mut v: &'v Value) -> Option<&'v Value> {
        for s in &self.steps {
            v = match (s, v) {
                (Step::Key(k), Value::Object(m)) => m.get(k)?,
                (Step::Index(i), Value::Array(a)) => a.get(*i)?,
                _ => return None,
            };
        }
        Some(v)
    }

    /// Where the path stops finding anything in `v`, for error messages: the longest prefix
    /// that exists and what is there (`$.data` is an array, `$` has keys `info`, `results`).
    pub fn explain_miss(&self, root: &Value) -> String {
        let mut v = root;
        let mut at = String::from("$");
        for s in &self.steps {
            let next = match (s, v) {
                (Step::Key(k), Value::Object(m)) => m.get(k),
                (Step::Index(i), Value::Array(a)) => a.get(*i),
                _ => None,
            };
            match next {
                Some(n) => {
                    at.push_str(&s.to_string());
                    v = n;
                }
                None => break,
            }
        }
        match v {
            Value::Object(m) => {
                let keys: Vec<&str> = m.keys().take(12).map(String::as_str).collect();
                if keys.is_empty() {
                    format!("`{at}` is an empty object")
                } else {
                    format!("`{at}` has the keys {}", keys.join(", "))
                }
            }
            other => format!("`{at}` is {}", kind(other)),
        }
    }
}

fn find_close(s: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ']') => return Some(i),
            _ => {}
        }
    }
    None
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Key(k) if !k.is_empty() && !k.contains(['.', '[', ']', ' ', '\'']) => {
                write!(f, ".{k}")
            }
            Step::Key(k) => write!(f, "[\"{k}\"]"),
            Step::Index(i) => write!(f, "[{i}]"),
        }
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// "an array", "a string", ... for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
