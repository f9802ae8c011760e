use std::time::Duration;

use serde_json::json;
use url::Url;

use super::fetch::{Redactor, excerpt_text, link_next, parse_retry_after};
use super::path::JsonPath;
use super::source::{Position, with_query};
use super::*;

fn config(extra: &str) -> Result<RestConfig, String> {
    let text = format!("{{\"url\": \"http://127.0.0.1:9/api?seed=x\" {extra}}}");
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

#[test]
fn paths_select_what_they_say() {
    let body = json!({"results": [{"a": 1}, {"a": 2}], "info": {"next": {"cursor": "c2"}},
                      "odd key": {"x.y": 3}, "list": [[10, 11]]});
    let get = |p: &str| JsonPath::parse(p).unwrap().get(&body).cloned();
    assert_eq!(get("$"), Some(body.clone()));
    assert_eq!(get("$.results[1].a"), Some(json!(2)));
    assert_eq!(get("$.info.next.cursor"), Some(json!("c2")));
    assert_eq!(get("$['odd key'][\"x.y\"]"), Some(json!(3)));
    assert_eq!(get("$.list[0][1]"), Some(json!(11)));
    assert_eq!(get("$.results[5]"), None);
    assert_eq!(
        get("$.results.a"),
        None,
        "a key step into an array finds nothing"
    );
    assert_eq!(get("$.missing"), None);
    let f = JsonPath::parse_field("login.uuid").unwrap();
    assert_eq!(f.get(&json!({"login": {"uuid": "u1"}})), Some(&json!("u1")));
    assert_eq!(JsonPath::parse_field("id").unwrap().to_string(), "$.id");
}

#[test]
fn unsupported_paths_are_refused_with_what_is_supported() {
    for (p, why) in [
        ("results", "must start with `$`"),
        ("$..name", "recursive descent"),
        ("$.results[*]", "neither an array index"),
        ("$.*", "wildcards"),
        ("$.a[?(@.x)]", "neither an array index"),
        ("$.a[0", "not closed"),
        ("$.", "followed by a field name"),
        ("$x", "expected `.name`"),
        ("$.a[1:3]", "neither an array index"),
    ] {
        let e = JsonPath::parse(p).unwrap_err();
        assert!(e.contains(why), "{p}: {e}");
        assert!(e.contains("supported: `$`"), "{p}: {e}");
    }
}

#[test]
fn a_miss_is_explained_by_what_is_there() {
    let body = json!({"data": {"items": "nope"}, "info": {}});
    let p = JsonPath::parse("$.results").unwrap();
    assert_eq!(p.explain_miss(&body), "`$` has the keys data, info");
    let p = JsonPath::parse("$.data.items[0]").unwrap();
    assert_eq!(p.explain_miss(&body), "`$.data.items` is a string");
}

#[test]
fn config_defaults_round_trip_and_validate() {
    let c = config("").unwrap();
    assert_eq!(c.every.0, Duration::from_secs(60));
    assert_eq!(c.records, "$");
    assert_eq!(c.retries, 5);
    assert!(c.validate("users").is_ok());
    let full = config(
        r#", "every": "1s", "records": "$.results", "headers": {"Authorization": "Bearer ${TOKEN}"},
           "timeout": "500ms", "retries": 2, "rate_limit": 20, "partitions": 2, "key": "login.uuid",
           "pagination": {"type": "page", "param": "page", "start": 1, "size_param": "results",
                          "size": 10, "max_pages": 50}"#,
    )
    .unwrap();
    full.validate("users").unwrap();
    let back: RestConfig = serde_json::from_str(&serde_json::to_string(&full).unwrap()).unwrap();
    assert_eq!(
        serde_json::to_value(&back).unwrap(),
        serde_json::to_value(&full).unwrap()
    );
    assert_eq!(
        full.rate_limit.unwrap().min_interval(),
        Duration::from_millis(50)
    );
    let iv = config(r#", "rate_limit": "250ms""#).unwrap();
    assert_eq!(
        iv.rate_limit.unwrap().min_interval(),
        Duration::from_millis(250)
    );
    for p in [
        r#"{"type": "offset", "param": "offset", "limit_param": "limit", "limit": 100}"#,
        r#"{"type": "cursor", "param": "cursor", "next": "$.info.next_cursor"}"#,
        r#"{"type": "link"}"#,
    ] {
        let c = config(&format!(r#", "pagination": {p}"#)).unwrap();
        c.validate("users").unwrap();
    }
}

#[test]
fn config_errors_name_the_key() {
    let check = |extra: &str, want: &str| {
        let e = match config(extra) {
            Ok(c) => c.validate("users").unwrap_err(),
            Err(e) => e,
        };
        assert!(e.contains(want), "{extra}: {e}");
    };
    check(
        r#", "records": "results""#,
        "sources.users.records: `results` is not a JSON path",
    );
    check(r#", "records": "$.results[*]""#, "sources.users.records");
    check(r#", "key": "$..id""#, "sources.users.key");
    check(r#", "every": "0s""#, "sources.users.every");
    check(r#", "timeout": "0s""#, "sources.users.timeout");
    check(r#", "rate_limit": 0"#, "sources.users.rate_limit");
    check(r#", "rate_limit": "fast""#, "expected a duration");
    check(
        r#", "headers": {"Bad Header": "x"}"#,
        "not a valid header name",
    );
    check(
        r#", "pagination": {"type": "page", "size_param": "n"}"#,
        "pagination.size",
    );
    check(
        r#", "pagination": {"type": "page", "max_pages": 0}"#,
        "pagination.max_pages",
    );
    check(
        r#", "pagination": {"type": "offset", "limit": 0}"#,
        "pagination.limit",
    );
    check(
        r#", "pagination": {"type": "cursor"}"#,
        "missing field `next`",
    );
    check(
        r#", "pagination": {"type": "cursor", "next": "next"}"#,
        "pagination.next",
    );
    check(
        r#", "pagination": {"type": "pages"}"#,
        "unknown variant `pages`",
    );
    check(
        r#", "pagination": {"type": "link", "size": 3}"#,
        "unknown field `size`",
    );
    check(r#", "every_minute": true"#, "unknown field `every_minute`");
    let e = RestConfig {
        url: "ftp://x/y".into(),
        ..config("").unwrap()
    }
    .validate("users")
    .unwrap_err();
    assert!(
        e.contains("sources.users.url: expected an http:// or https:// URL"),
        "{e}"
    );
}

#[test]
fn unset_environment_variables_are_config_errors_naming_the_key() {
    let c = config(r#", "headers": {"Authorization": "Bearer ${WEIR_TEST_REST_SURELY_UNSET}"}"#)
        .unwrap();
    let Err(e) = c.build("users") else {
        panic!("an unset variable must fail the build");
    };
    let e = e.to_string();
    assert!(e.contains("sources.users.headers.Authorization"), "{e}");
    assert!(e.contains("WEIR_TEST_REST_SURELY_UNSET"), "{e}");
}

#[test]
fn pages_offsets_and_cursors_become_query_parameters() {
    let page = config(
        r#", "pagination": {"type": "page", "param": "page", "start": 1, "size_param": "results", "size": 10}"#,
    )
    .unwrap()
    .build("u")
    .unwrap();
    assert_eq!(page.first_position(), Position::Page { page: 1 });
    assert_eq!(
        page.request_url(&Position::Page { page: 3 })
            .unwrap()
            .as_str(),
        "http://127.0.0.1:9/api?seed=x&page=3&results=10"
    );
    let off = config(r#", "pagination": {"type": "offset", "limit": 25}"#)
        .unwrap()
        .build("u")
        .unwrap();
    assert_eq!(
        off.request_url(&Position::Offset { offset: 50 })
            .unwrap()
            .as_str(),
        "http://127.0.0.1:9/api?seed=x&offset=50&limit=25"
    );
    let cur = config(r#", "pagination": {"type": "cursor", "next": "$.next"}"#)
        .unwrap()
        .build("u")
        .unwrap();
    assert_eq!(cur.first_position(), Position::First);
    assert_eq!(
        cur.request_url(&Position::Cursor {
            cursor: "a b&c".into()
        })
        .unwrap()
        .as_str(),
        "http://127.0.0.1:9/api?seed=x&cursor=a+b%26c"
    );
    // A parameter already in the URL is replaced, not repeated.
    let base = Url::parse("http://h/x?page=9&q=1").unwrap();
    assert_eq!(
        with_query(&base, &[("page".into(), "2".into())]).as_str(),
        "http://h/x?q=1&page=2"
    );
}

#[test]
fn link_headers_yield_the_next_target() {
    assert_eq!(
        link_next(r#"<https://api.x/u?page=2>; rel="next", <https://api.x/u?page=9>; rel="last""#),
        Some("https://api.x/u?page=2".into())
    );
    assert_eq!(
        link_next(r#"<https://a/?p=1>; rel="prev", </u?page=3&a=1,2>; title="x, y"; rel="next""#),
        Some("/u?page=3&a=1,2".into())
    );
    assert_eq!(
        link_next(r#"<https://a/2>; rel="last next""#),
        Some("https://a/2".into())
    );
    assert_eq!(
        link_next("<https://a/2>; rel=next"),
        Some("https://a/2".into())
    );
    assert_eq!(link_next(r#"<https://a/1>; rel="prev""#), None);
    assert_eq!(link_next("garbage"), None);
    assert_eq!(link_next(""), None);
}

#[test]
fn retry_after_reads_seconds_and_dates() {
    assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
    assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
    let in_5s = chrono::Utc::now() + chrono::Duration::seconds(5);
    let d = parse_retry_after(&in_5s.format("%a, %d %b %Y %H:%M:%S GMT").to_string()).unwrap();
    assert!(
        d > Duration::from_secs(3) && d <= Duration::from_secs(5),
        "{d:?}"
    );
    assert_eq!(
        parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
        Some(Duration::ZERO),
        "a date in the past means now"
    );
    assert_eq!(parse_retry_after("soon"), None);
}

#[test]
fn secrets_are_masked_and_excerpts_are_one_line() {
    let mut r = Redactor::default();
    r.add("API_KEY", "s3cr3t-value");
    r.add("SHORT", "ab");
    assert_eq!(
        r.apply("GET http://h/x?key=s3cr3t-value&ab=1"),
        "GET http://h/x?key=${API_KEY}&ab=1"
    );
    let u = Url::parse("https://me:pw@h/x?page=2&api_key=k1&Access-Token=t&sig=s&key=k&monkey=m")
        .unwrap();
    assert_eq!(
        r.url(&u),
        "https://me:********@h/x?page=2&api_key=********&Access-Token=********&sig=********&key=********&monkey=m"
    );
    assert_eq!(
        r.url(&Url::parse("http://h/x?q=s3cr3t-value").unwrap()),
        "http://h/x?q=${API_KEY}"
    );
    assert_eq!(
        excerpt_text(b"<html>\n  <body>oops</body>\n"),
        "<html> <body>oops</body>"
    );
    let long = vec![b'x'; 500];
    assert!(excerpt_text(&long).ends_with('…'));
}
