//! Starting weir's listeners: the HTTP server (API, dashboard, metrics) and the PostgreSQL
//! endpoint, with `[server.auth]` enforced on both. Without auth weir refuses to listen on
//! anything but loopback unless told `--insecure`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use weir_core::ErrorKind;
use weir_orchestrator::Weir;
use weir_orchestrator::config::Role;

use crate::ApiError;
use crate::auth::Auth;

/// Where to listen.
#[derive(Debug, Clone)]
pub struct Listen {
    pub http: String,
    /// `None` (or an empty address) serves no PostgreSQL endpoint.
    pub pg: Option<String>,
    /// Listen on non-loopback addresses without auth.
    pub insecure: bool,
}

/// The bound addresses.
#[derive(Debug, Clone, Copy)]
pub struct Served {
    pub http: SocketAddr,
    pub pg: Option<SocketAddr>,
}

/// What went wrong starting a listener, naming which.
#[derive(Debug)]
pub struct ListenError(pub String);

impl std::fmt::Display for ListenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ListenError {}

async fn check_exposure(
    what: &str,
    addr: &str,
    has_auth: bool,
    insecure: bool,
) -> Result<(), ListenError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| ListenError(format!("{what} address `{addr}`: {e}")))?
        .collect();
    let exposed = addrs.iter().any(|a| !a.ip().is_loopback());
    if exposed && !has_auth {
        if insecure {
            eprintln!(
                "WARNING: {what} listens on {addr} without [server.auth]: anyone who can reach it can read and change your pipeline (--insecure)"
            );
        } else {
            return Err(ListenError(format!(
                "refusing to listen on {addr} ({what}) without [server.auth]: anyone who can reach it could read your tables and send data. \
                 Add tokens under [server.auth], listen on 127.0.0.1, or pass --insecure"
            )));
        }
    }
    Ok(())
}

/// Starts both listeners; they stop when `shutdown` resolves.
pub async fn start(
    weir: Arc<Weir>,
    listen: &Listen,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Served, ListenError> {
    let auth = match &weir.project().config.server.auth {
        Some(a) => Some(Arc::new(Auth::from_config(a).map_err(ListenError)?)),
        None => None,
    };
    let pg = listen.pg.as_deref().filter(|a| !a.trim().is_empty());
    check_exposure("HTTP", &listen.http, auth.is_some(), listen.insecure).await?;
    if let Some(pg) = pg {
        check_exposure("PostgreSQL", pg, auth.is_some(), listen.insecure).await?;
    }
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let listener = tokio::net::TcpListener::bind(&listen.http)
        .await
        .map_err(|e| ListenError(format!("cannot listen on {} (HTTP): {e}", listen.http)))?;
    let http = listener
        .local_addr()
        .map_err(|e| ListenError(e.to_string()))?;
    let mut router = crate::app(weir.clone());
    if let Some(a) = &auth {
        router = router.layer(axum::middleware::from_fn_with_state(
            a.clone(),
            require_token,
        ));
    }
    let stop = stopped(rx.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %e, "http server stopped");
        }
    });
    let pg = match pg {
        Some(addr) => Some(
            crate::pg::serve(weir, auth, addr, stopped(rx))
                .await
                .map_err(|e| ListenError(format!("cannot listen on {addr} (PostgreSQL): {e}")))?,
        ),
        None => None,
    };
    Ok(Served { http, pg })
}

/// The role a request needs: reading is `reader`; anything that changes state (ingest,
/// triggers, backfills, replays, registering schemas) is `operator`. `POST /v1/query`, schema
/// lookups and compatibility checks only read.
fn needed_role(method: &Method, path: &str) -> Option<Role> {
    if path == "/health" || path == "/ready" {
        return None;
    }
    // The dashboard's page and assets hold no data; the API calls it makes carry the token.
    if path == "/" || path.starts_with("/assets/") || path == "/favicon.ico" {
        return None;
    }
    if method == Method::GET
        || method == Method::HEAD
        || path == "/v1/query"
        || crate::registry::read_only_post(method, path)
    {
        Some(Role::Reader)
    } else {
        Some(Role::Operator)
    }
}

/// The token of a request: `Authorization: Bearer <token>`, or `access_token=` in the query
/// string (for EventSource, which cannot set headers).
fn token_of(req: &Request) -> Option<String> {
    if let Some(v) = req.headers().get(header::AUTHORIZATION)
        && let Ok(v) = v.to_str()
    {
        let v = v.trim();
        if let Some(t) = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
        {
            return Some(t.trim().to_owned());
        }
    }
    req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("access_token="))
            .map(str::to_owned)
    })
}

async fn require_token(State(auth): State<Arc<Auth>>, req: Request, next: Next) -> Response {
    let Some(needed) = needed_role(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    let Some(token) = token_of(&req) else {
        let mut r = ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorKind::User,
            "this weir needs a token: send `Authorization: Bearer <token>` ([server.auth] in weir.toml)",
        )
        .into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return r;
    };
    match auth.holder(&token) {
        None => {
            tracing::warn!(path = %req.uri().path(), "refused a request with an unknown token");
            let mut r = ApiError::new(StatusCode::UNAUTHORIZED, ErrorKind::User, "unknown token")
                .into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            r
        }
        Some((name, role)) if role < needed => ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorKind::User,
            format!(
                "token `{name}` has role reader; {} {} needs role operator",
                req.method(),
                req.uri().path()
            ),
        )
        .into_response(),
        Some(_) => next.run(req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_need_operator_and_reads_reader() {
        assert_eq!(needed_role(&Method::GET, "/v1/tables"), Some(Role::Reader));
        assert_eq!(needed_role(&Method::POST, "/v1/query"), Some(Role::Reader));
        assert_eq!(
            needed_role(&Method::POST, "/v1/sources/events/records"),
            Some(Role::Operator)
        );
        assert_eq!(
            needed_role(&Method::POST, "/v1/dags/d/runs"),
            Some(Role::Operator)
        );
        assert_eq!(needed_role(&Method::GET, "/health"), None);
        assert_eq!(needed_role(&Method::GET, "/metrics"), Some(Role::Reader));
    }
}
