//! PostgreSQL connectors: the `postgres` sink ([`sink`]), which appends or upserts a table's
//! rows exactly once, and the `postgres` source ([`source`]), which polls a query on an
//! increasing cursor column or follows a table's changes through logical replication.
//!
//! This module holds what both share: connecting (a `postgres://` URL with `${ENV}`
//! substitution), quoting identifiers, and sorting PostgreSQL's errors into retryable
//! (connection lost, server shutting down, serialization failure) and not.

pub mod sink;
pub mod source;

use tokio_postgres::{Client, NoTls};

use crate::error::ConnectorError;
use crate::source::expand_env;

/// Parses a connection URL (after `${ENV}` substitution); errors name the key.
pub fn parse_url(
    connector: &str,
    key: &str,
    url: &str,
) -> Result<tokio_postgres::Config, ConnectorError> {
    let expanded = expand_env(url).map_err(|reason| ConnectorError::Config {
        source_name: connector.to_owned(),
        reason: format!("{key}: {reason}"),
    })?;
    expanded
        .parse::<tokio_postgres::Config>()
        .map_err(|e| ConnectorError::Config {
            source_name: connector.to_owned(),
            reason: format!(
                "{key}: expected a URL like postgres://user@host:5432/db, got `{}`: {e}",
                redact(&expanded)
            ),
        })
}

/// The URL with its password replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Connects and drives the connection on the current tokio runtime.
pub async fn connect(
    connector: &str,
    config: &tokio_postgres::Config,
) -> Result<Client, ConnectorError> {
    let (client, conn) = config
        .connect(NoTls)
        .await
        .map_err(|e| remote(connector, "connecting to PostgreSQL", &e))?;
    let name = connector.to_owned();
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(connector = %name, error = %e, "PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// A PostgreSQL error as a connector error: retryable unless the server rejected the
/// statement itself (syntax, a missing object, a type mismatch, a constraint).
pub fn remote(connector: &str, operation: &str, e: &tokio_postgres::Error) -> ConnectorError {
    let (reason, retry) = match e.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            let retry = code.starts_with("08") // connection exception
                || code.starts_with("53") // insufficient resources
                || code.starts_with("57") // operator intervention (shutdown)
                || code == "40001" // serialization failure
                || code == "40P01"; // deadlock
            let mut reason = format!("{} (SQLSTATE {code})", db.message());
            if let Some(d) = db.detail() {
                reason.push_str(&format!("; {d}"));
            }
            if let Some(c) = db.column() {
                reason.push_str(&format!("; column `{c}`"));
            }
            (reason, retry)
        }
        None => (error_chain(e), true),
    };
    ConnectorError::Remote {
        connector: connector.to_owned(),
        operation: operation.to_owned(),
        reason,
        retry,
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// `name` or `schema.name` as a quoted identifier.
pub fn quote_table(name: &str) -> String {
    name.split('.')
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(".")
}

/// A quoted identifier (`"a""b"` for `a"b`).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A quoted string literal.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Checks a table name: one or two dot-separated parts, none empty.
pub fn check_table_name(name: &str) -> Result<(), String> {
    let parts: Vec<&str> = name.split('.').collect();
    if name.is_empty() || parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
        return Err(format!("expected `table` or `schema.table`, got `{name}`"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_redaction() {
        assert_eq!(quote_table("public.a\"b"), "\"public\".\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert!(check_table_name("a.b.c").is_err());
        assert!(check_table_name("s.t").is_ok());
        assert!(parse_url("s", "url", "not a url").is_err());
        assert!(parse_url("s", "url", "postgres://postgres@127.0.0.1:5432/test").is_ok());
    }
}
