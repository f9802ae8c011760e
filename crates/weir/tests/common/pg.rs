//! The local PostgreSQL of the connector tests (`WEIR_TEST_PG_URL`), and names no other test
//! run uses.
#![allow(dead_code)]

/// The server's URL, or `None` (saying why `what` is skipped) when the variable is unset.
pub fn pg_url(what: &str) -> Option<String> {
    match std::env::var("WEIR_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            eprintln!(
                "SKIPPED: set WEIR_TEST_PG_URL (e.g. postgres://postgres@127.0.0.1:5432/test) to run the {what} tests"
            );
            None
        }
    }
}

/// A client of the server at `url`.
pub async fn pg(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    c
}

/// A name no other test run uses (also a valid table and slot name).
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}
