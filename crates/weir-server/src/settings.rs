//! `GET /v1/config`: the project's weir.toml as written (comments kept) with secrets masked,
//! and each table's SQL.
//!
//! Masked: the value of every key whose name says it holds a secret (password, secret, token,
//! auth, credential, `*_key`), and the password of `user:password@` in any URL. Keys ending in
//! `_env` name an environment variable and are shown. A bare `key` is shown too: in weir.toml it
//! names a column (`dedup.key`, an http source's `key`). The masked text is parsed again and
//! checked; if a secret survived (a form the scanner does not know), the parsed config is
//! shown instead, masked value by value, without its comments.

use axum::extract::State;
use axum::http::StatusCode;
use weir_core::ErrorKind;

use crate::openapi::api_object;
use crate::{ApiError, AppState};

/// What a masked value reads as.
pub const MASK: &str = "********";

api_object! {
    /// A table's SQL.
    pub struct TableSql {
        pub name: String,
        pub sql: String,
    }
}

api_object! {
    /// The project's configuration.
    pub struct ConfigView {
        /// weir.toml with secret values replaced by `********`.
        pub toml: String,
        pub tables: Vec<TableSql>,
    }
}

/// `GET /v1/config`.
pub async fn config(State(st): State<AppState>) -> Result<axum::Json<ConfigView>, ApiError> {
    let project = st.weir.project();
    let text = tokio::fs::read_to_string(&project.path)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorKind::External,
                format!("cannot read the project's weir.toml: {e}"),
            )
        })?;
    Ok(axum::Json(ConfigView {
        toml: mask_toml(&text),
        tables: project
            .sql
            .iter()
            .map(|(name, sql)| TableSql {
                name: name.clone(),
                sql: sql.clone(),
            })
            .collect(),
    }))
}

/// Whether a key's value is a secret.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    if k.ends_with("_env") {
        return false;
    }
    [
        "password",
        "passwd",
        "secret",
        "token",
        "auth",
        "credential",
        "private",
    ]
    .iter()
    .any(|w| k.contains(w))
        || k.ends_with("_key")
        || k.ends_with("apikey")
}

/// `text` with secrets masked (see the module docs).
pub fn mask_toml(text: &str) -> String {
    let masked = scan(text);
    if leaks(&masked) {
        parsed_and_masked(text)
    } else {
        masked
    }
}

/// The fallback: `text` parsed, masked value by value and written out again.
fn parsed_and_masked(text: &str) -> String {
    match text.parse::<toml::Table>() {
        Ok(mut t) => {
            mask_table(&mut t);
            format!(
                "# weir.toml as parsed (comments omitted), secrets masked\n{}",
                toml::to_string(&t).unwrap_or_default()
            )
        }
        // Unparseable: show nothing rather than a secret.
        Err(_) => "# weir.toml could not be shown with its secrets masked\n".to_owned(),
    }
}

/// Masks by scanning the text, keeping everything else as written.
fn scan(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    // Start of the text that may hold the key of the next `=`.
    let mut key_start = 0;
    while i < b.len() {
        match b[i] {
            b'#' => {
                let end = text[i..].find('\n').map_or(b.len(), |n| i + n);
                out.push_str(&text[i..end]);
                i = end;
            }
            b'"' | b'\'' => {
                let end = string_end(text, i);
                out.push_str(&mask_url(&text[i..end]));
                i = end;
            }
            b'\n' | b'{' | b',' | b'[' => {
                out.push(b[i] as char);
                i += 1;
                key_start = i;
            }
            b'=' => {
                out.push('=');
                i += 1;
                let key = text[key_start..i - 1]
                    .trim()
                    .rsplit('.')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .trim_matches(['"', '\''])
                    .to_owned();
                let ws = text[i..].len() - text[i..].trim_start_matches([' ', '\t']).len();
                out.push_str(&text[i..i + ws]);
                i += ws;
                key_start = i;
                if !is_secret_key(&key) || i >= b.len() {
                    continue;
                }
                let end = match b[i] {
                    // A table or array: the keys inside are looked at one by one.
                    b'{' | b'[' => continue,
                    b'"' | b'\'' => string_end(text, i),
                    _ => text[i..]
                        .find([',', '}', '\n', '#', ']'])
                        .map_or(b.len(), |n| i + n),
                };
                let value = text[i..end].trim_end();
                out.push('"');
                out.push_str(MASK);
                out.push('"');
                // Keep the spaces before a comment or line end.
                out.push_str(&text[i + value.len()..end]);
                i = end;
            }
            _ => {
                let ch = text[i..].chars().next().unwrap_or(' ');
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    out
}

/// The end (exclusive) of the TOML string starting at `start`, of any of the four kinds.
fn string_end(text: &str, start: usize) -> usize {
    let b = text.as_bytes();
    let q = b[start];
    let triple = text[start..].starts_with(if q == b'"' { "\"\"\"" } else { "'''" });
    let mut i = start + if triple { 3 } else { 1 };
    while i < b.len() {
        if q == b'"' && b[i] == b'\\' {
            i += 2;
            continue;
        }
        if !triple && b[i] == b'\n' {
            return i;
        }
        if b[i] == q && (!triple || text[i..].starts_with(&text[start..start + 3])) {
            let mut end = i + if triple { 3 } else { 1 };
            // A closing triple quote may be followed by up to two more quotes of the content.
            while triple && end < b.len() && b[end] == q && end - i < 5 {
                end += 1;
            }
            return end.min(b.len());
        }
        i += 1;
    }
    b.len()
}

/// `scheme://user:password@host` → `scheme://user:********@host`, everywhere in `s`.
fn mask_url(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find("://") {
        let (head, tail) = rest.split_at(p + 3);
        out.push_str(head);
        let auth_end = tail
            .find(['/', '?', '#', '"', '\'', ' ', '\n'])
            .unwrap_or(tail.len());
        let authority = &tail[..auth_end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..=colon]);
                out.push_str(MASK);
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[auth_end..];
    }
    out.push_str(rest);
    out
}

/// Whether `masked` still shows a secret: parsed, some secret key has a value other than the
/// mask, or some URL a password. Unparseable text is checked line by line by the scanner
/// alone (it was unparseable before masking: `${VAR}` outside a string).
fn leaks(masked: &str) -> bool {
    fn value_leaks(key: Option<&str>, v: &toml::Value) -> bool {
        match v {
            toml::Value::Table(t) => t.iter().any(|(k, v)| value_leaks(Some(k), v)),
            toml::Value::Array(a) => a.iter().any(|v| value_leaks(key, v)),
            toml::Value::String(s) => {
                (key.is_some_and(is_secret_key) && s != MASK) || mask_url(s) != *s
            }
            _ => key.is_some_and(is_secret_key),
        }
    }
    match masked.parse::<toml::Table>() {
        Ok(t) => t.iter().any(|(k, v)| value_leaks(Some(k), v)),
        Err(_) => false,
    }
}

fn mask_table(t: &mut toml::Table) {
    fn mask_value(key: &str, v: &mut toml::Value) {
        match v {
            toml::Value::Table(t) => mask_table(t),
            toml::Value::Array(a) => a.iter_mut().for_each(|x| mask_value(key, x)),
            _ if is_secret_key(key) => *v = toml::Value::String(MASK.into()),
            toml::Value::String(s) => *s = mask_url(s),
            _ => {}
        }
    }
    for (k, v) in t.iter_mut() {
        mask_value(k, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_and_the_rest_is_kept() {
        let text = r#"# the shop
[server]
listen = "127.0.0.1:8080" # local only
[[server.auth.tokens]]
name = "ops"
token = "s3cr3t-s3cr3t-s3cr3t"
role = "operator"
[[server.auth.tokens]]
name = "ci"
token_env = "CI_TOKEN"
role = "reader"
[sinks.pg]
url = "postgres://app:hunter2@db:5432/x"
password = 'plain'
api_key = 12345
headers = { Authorization = "Bearer abc", Accept = "json" }
note = """
multi
"""
[tables.t]
dedup = { key = "event_id", within = "10m" }
"#;
        let m = mask_toml(text);
        for secret in ["s3cr3t", "hunter2", "plain", "12345", "Bearer abc"] {
            assert!(!m.contains(secret), "{secret} shown:\n{m}");
        }
        for kept in [
            "# the shop",
            "# local only",
            "name = \"ops\"",
            "token_env = \"CI_TOKEN\"",
            "postgres://app:********@db:5432/x",
            "Accept = \"json\"",
            "key = \"event_id\"",
            "token = \"********\"",
        ] {
            assert!(m.contains(kept), "{kept} missing:\n{m}");
        }
        assert!(m.parse::<toml::Table>().is_ok(), "{m}");
    }

    #[test]
    fn multi_line_and_quoted_dotted_secrets_are_masked() {
        let text = "password = \"\"\"\nline\n\"\"\"\n\"a\".\"token\" = \"x\"\n";
        let m = mask_toml(text);
        assert!(!m.contains("line") && !m.contains("\"x\""), "{m}");
        assert!(!leaks(&m), "{m}");
    }

    #[test]
    fn the_check_after_masking_sees_a_secret_and_the_fallback_masks_it() {
        let text = "# note\n[db]\nurl = \"pg://u:pw@h/d\"\ntoken = \"t0ken\"\nport = 5432\n";
        assert!(leaks(text));
        let m = parsed_and_masked(text);
        assert!(!leaks(&m), "{m}");
        assert!(!m.contains("t0ken") && !m.contains(":pw@"), "{m}");
        assert!(m.contains("port = 5432"), "{m}");
        assert!(m.starts_with("# weir.toml as parsed"), "{m}");
    }
}
