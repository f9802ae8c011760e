//! Kafka connectors (cargo feature `connector-kafka`, `weir`'s `kafka`): the `kafka` source
//! ([`source`]), which stores every message of its topics in weir's log exactly once, and the
//! `kafka` sink ([`sink`]), which produces each row of a table as a JSON message with the
//! idempotent producer.
//!
//! This module holds what both share: the broker list (`brokers = "host:9092,host2:9092"`,
//! with `${ENV}` substitution), extra librdkafka `properties` (security settings and tuning,
//! checked when the config is loaded, values `${ENV}`-substituted), the properties weir sets
//! itself and will not take from the config, Kafka topic name rules, and readable errors.
//! Both speak to the brokers through `rdkafka` (librdkafka built from source, with gzip, lz4
//! and snappy; not zstd, not TLS or SASL/GSSAPI: `security.protocol` can only be
//! `plaintext` or `sasl_plaintext` with `PLAIN`).

pub mod positions;
pub mod sink;
pub mod source;

pub use sink::{KafkaSink, KafkaSinkConfig};
pub use source::{KafkaConfig, KafkaSource};

/// The Kafka client library, for tests and tools that talk to the same brokers.
pub use rdkafka;

use std::collections::BTreeMap;

use rdkafka::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;

use crate::source::expand_env;

/// Checks a broker list: `host:port` entries separated by commas. Errors name `key`.
pub fn check_brokers(key: &str, brokers: &str) -> Result<(), String> {
    if brokers.contains("${") {
        // Checked at start, once the variables are read.
        return Ok(());
    }
    let entries: Vec<&str> = brokers.split(',').map(str::trim).collect();
    if brokers.trim().is_empty() {
        return Err(format!(
            "{key}: expected brokers like \"127.0.0.1:9092\" or \"k1:9092,k2:9092\", got an empty string"
        ));
    }
    for e in entries {
        let bare = e
            .strip_prefix("PLAINTEXT://")
            .or_else(|| e.strip_prefix("plaintext://"))
            .unwrap_or(e);
        let Some((host, port)) = bare.rsplit_once(':') else {
            return Err(format!(
                "{key}: `{e}` has no port; expected host:port like \"127.0.0.1:9092\""
            ));
        };
        if host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .is_empty()
        {
            return Err(format!("{key}: `{e}` has no host"));
        }
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!(
                "{key}: `{e}`: expected a port number 1..=65535 after the last `:`"
            ));
        }
    }
    Ok(())
}

/// Checks a Kafka topic name: 1 to 249 characters of `a-z A-Z 0-9 . _ -`, not `.` or `..`.
pub fn check_topic_name(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("a topic name cannot be empty".into());
    }
    if topic.starts_with('^') {
        return Err(format!(
            "`{topic}`: topic patterns are not supported; list the topics by name"
        ));
    }
    if topic.len() > 249 {
        return Err(format!(
            "`{topic}`: a topic name has at most 249 characters, got {}",
            topic.len()
        ));
    }
    if topic == "." || topic == ".." {
        return Err(format!("`{topic}` is not a valid topic name"));
    }
    if let Some(c) = topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "`{topic}`: `{c}` is not allowed in a topic name (letters, digits, `.`, `_` and `-`)"
        ));
    }
    Ok(())
}

/// A librdkafka property weir sets itself, and what to use instead.
pub(crate) type Reserved = &'static [(&'static str, &'static str)];

/// A client configuration: `bootstrap.servers` from `brokers`, weir's own `settings`, and
/// the user's `properties` (which may not name a reserved one). `${ENV}` is substituted in
/// the brokers and every property value. Errors name `prefix.brokers` or
/// `prefix.properties`. Does no IO; unknown property names and invalid values are found by
/// [`check_config`].
pub(crate) fn client_config(
    prefix: &str,
    brokers: &str,
    properties: &BTreeMap<String, String>,
    reserved: Reserved,
    settings: &[(&str, String)],
) -> Result<ClientConfig, String> {
    let brokers_key = format!("{prefix}.brokers");
    let brokers = expand_env(brokers).map_err(|e| format!("{brokers_key}: {e}"))?;
    check_brokers(&brokers_key, &brokers)?;
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers.replace(' ', ""));
    // librdkafka's own log goes through weir's tracing; warnings and errors are enough.
    c.set_log_level(RDKafkaLogLevel::Warning);
    for (k, v) in settings {
        c.set(*k, v.as_str());
    }
    for (k, v) in properties {
        check_property(prefix, k, reserved)?;
        let v = expand_env(v).map_err(|e| format!("{prefix}.properties.\"{k}\": {e}"))?;
        c.set(k.as_str(), v);
    }
    Ok(c)
}

/// Refuses a property weir sets itself.
pub(crate) fn check_property(prefix: &str, name: &str, reserved: Reserved) -> Result<(), String> {
    if let Some((_, instead)) = reserved.iter().find(|(r, _)| *r == name) {
        return Err(format!(
            "{prefix}.properties: `{name}` is set by weir; {instead}"
        ));
    }
    Ok(())
}

/// Has librdkafka check every property name and value (no IO, no client is made). Values
/// with `${ENV}` are left to the start.
pub(crate) fn check_config(
    prefix: &str,
    properties: &BTreeMap<String, String>,
    reserved: Reserved,
) -> Result<(), String> {
    let mut c = ClientConfig::new();
    for (k, v) in properties {
        check_property(prefix, k, reserved)?;
        if v.contains("${") {
            continue;
        }
        c.set(k.as_str(), v.as_str());
        c.create_native_config().map_err(|e| {
            format!(
                "{prefix}.properties.\"{k}\": {}",
                match &e {
                    KafkaError::ClientConfig(_, desc, _, _) => desc.clone(),
                    other => describe(other),
                }
            )
        })?;
    }
    Ok(())
}

/// A readable reason for a client error: librdkafka's text for its error code.
pub fn describe(e: &KafkaError) -> String {
    match e.rdkafka_error_code() {
        Some(code) => {
            let what = match e {
                KafkaError::MetadataFetch(_) => "fetching metadata",
                KafkaError::MessageConsumption(_) | KafkaError::MessageConsumptionFatal(_) => {
                    "consuming"
                }
                KafkaError::MessageProduction(_) => "producing",
                KafkaError::ConsumerCommit(_) => "committing offsets",
                KafkaError::Global(_) => "client",
                _ => "",
            };
            if what.is_empty() {
                code.to_string()
            } else {
                format!("{what}: {code}")
            }
        }
        None => e.to_string(),
    }
}

/// librdkafka's log lines, as weir's.
pub(crate) fn log_line(client: &str, level: RDKafkaLogLevel, fac: &str, msg: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => {
            tracing::error!(connector = %client, facility = %fac, "librdkafka: {msg}")
        }
        RDKafkaLogLevel::Warning => {
            tracing::warn!(connector = %client, facility = %fac, "librdkafka: {msg}")
        }
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(connector = %client, facility = %fac, "librdkafka: {msg}")
        }
        RDKafkaLogLevel::Debug => {
            tracing::debug!(connector = %client, facility = %fac, "librdkafka: {msg}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_lists() {
        for ok in [
            "127.0.0.1:9092",
            "a:1, b:2",
            "PLAINTEXT://k:9092",
            "[::1]:9092",
            "${X}",
        ] {
            assert!(check_brokers("k", ok).is_ok(), "{ok}");
        }
        for (bad, hint) in [
            ("", "empty"),
            ("host", "no port"),
            ("host:x", "port number"),
            ("host:0", "port number"),
            (":9092", "no host"),
            ("a:1,", "no port"),
        ] {
            let e = check_brokers("sources.o.brokers", bad).unwrap_err();
            assert!(e.starts_with("sources.o.brokers: "), "{e}");
            assert!(e.contains(hint), "{bad}: {e}");
        }
    }

    #[test]
    fn topic_names() {
        assert!(check_topic_name("orders.v1_x-2").is_ok());
        for (bad, hint) in [
            ("", "empty"),
            ("a b", "` ` is not allowed"),
            ("a/b", "`/` is not allowed"),
            ("..", "not a valid"),
            ("^orders.*", "patterns"),
        ] {
            let e = check_topic_name(bad).unwrap_err();
            assert!(e.contains(hint), "{bad}: {e}");
        }
        assert!(check_topic_name(&"x".repeat(250)).is_err());
    }

    #[test]
    fn properties_are_checked_by_name_and_value() {
        let reserved: Reserved = &[("group.id", "use `group`")];
        let props = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        assert!(check_config("sources.o", &props("fetch.min.bytes", "10"), reserved).is_ok());
        let e = check_config("sources.o", &props("no.such.thing", "1"), reserved).unwrap_err();
        assert!(
            e.starts_with("sources.o.properties.\"no.such.thing\": "),
            "{e}"
        );
        let e = check_config("sources.o", &props("fetch.min.bytes", "lots"), reserved).unwrap_err();
        assert!(e.contains("fetch.min.bytes"), "{e}");
        let e = check_config("sources.o", &props("group.id", "g"), reserved).unwrap_err();
        assert_eq!(
            e,
            "sources.o.properties: `group.id` is set by weir; use `group`"
        );
        // Values from the environment are checked at start.
        assert!(
            check_config(
                "sources.o",
                &props("sasl.password", "${WEIR_SURELY_UNSET_K}"),
                reserved
            )
            .is_ok()
        );
        let e = client_config(
            "sources.o",
            "h:1",
            &props("sasl.password", "${WEIR_SURELY_UNSET_K}"),
            reserved,
            &[],
        )
        .unwrap_err();
        assert!(e.contains("WEIR_SURELY_UNSET_K"), "{e}");
        let c = client_config("sources.o", "h:1, h:2", &BTreeMap::new(), reserved, &[]).unwrap();
        assert_eq!(c.get("bootstrap.servers"), Some("h:1,h:2"));
    }
}
