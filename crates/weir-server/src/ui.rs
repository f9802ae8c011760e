//! The web dashboard: the files `npm run build` wrote to `ui/dist` (committed), compiled into
//! the binary by `build.rs` and served at `GET /` (index.html) and `GET /assets/*` (the
//! content-hashed JS and CSS). The dashboard itself only talks to the `/v1` API; its source
//! and how to rebuild it are in `ui/README.md`.
//!
//! Caching: a hashed asset never changes under its name, so it is `immutable` for a year;
//! index.html names the current hashes, so browsers revalidate it on every load (ETag).

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use weir_core::ErrorKind;

use crate::ApiError;

/// One embedded file of `ui/dist`.
pub(crate) struct Asset {
    /// Relative to `ui/dist`, `/`-separated.
    path: &'static str,
    bytes: &'static [u8],
    /// A quoted hash of `bytes`.
    etag: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// The `Content-Type` of a dashboard file, from its extension.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn serve(asset: &'static Asset, cache: &'static str, req: &HeaderMap) -> Response {
    let not_modified = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == asset.etag || t.trim() == "*")
        });
    let mut resp = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, content_type(asset.path))],
            asset.bytes,
        )
            .into_response()
    };
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::ETAG, HeaderValue::from_static(asset.etag));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// `GET /`: the dashboard's page.
pub async fn index(req: HeaderMap) -> Response {
    match find("index.html") {
        Some(a) => serve(a, "no-cache", &req),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorKind::User,
            "this weir binary was built without the dashboard (crates/weir-server/ui/dist was missing); the API is under /v1",
        )
        .into_response(),
    }
}

/// `GET /assets/{*path}`: a built JS or CSS file.
pub async fn asset(Path(path): Path<String>, req: HeaderMap) -> Response {
    match find(&format!("assets/{path}")) {
        Some(a) => serve(a, "public, max-age=31536000, immutable", &req),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorKind::User,
            format!("no dashboard asset `/assets/{path}`"),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_dashboard_is_embedded() {
        let index = find("index.html").expect("ui/dist/index.html is embedded");
        let html = std::str::from_utf8(index.bytes).unwrap();
        // Every file index.html refers to is embedded too.
        let refs: Vec<&str> = html
            .split("\"/assets/")
            .skip(1)
            .map(|s| s.split('"').next().unwrap())
            .collect();
        assert!(refs.iter().any(|r| r.ends_with(".js")), "{html}");
        assert!(refs.iter().any(|r| r.ends_with(".css")), "{html}");
        for r in refs {
            assert!(find(&format!("assets/{r}")).is_some(), "missing asset {r}");
        }
    }

    #[test]
    fn content_types_follow_extensions() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(
            content_type("assets/index-1a2b.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            content_type("assets/index-1a2b.css"),
            "text/css; charset=utf-8"
        );
        assert_eq!(content_type("LICENSE"), "application/octet-stream");
    }
}
