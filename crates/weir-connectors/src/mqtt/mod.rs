//! MQTT connectors for IoT devices: the `mqtt` source ([`source`]), which subscribes to topic
//! filters and stores each message as one log record keyed by its topic, and the `mqtt` sink
//! ([`sink`]), which publishes each row of a table as a JSON object on a topic built from the
//! row.
//!
//! This module holds what both share: the broker URL (`mqtt://user:password@host:1883`, with
//! `${ENV}` substitution), topic filter and topic name rules (MQTT 3.1.1, section 4.7), the
//! client options, and sorting connection failures into retryable or not. Both halves speak
//! MQTT 3.1.1 over plain TCP through `rumqttc`; TLS (`mqtts://`) is not built in.

pub mod sink;
pub mod source;

pub use sink::{MqttSink, MqttSinkConfig, TopicTemplate};
pub use source::{MqttConfig, MqttSource};

use std::time::Duration;

use rumqttc::{ConnectReturnCode, ConnectionError, MqttOptions};

use crate::error::ConnectorError;
use crate::source::expand_env;

/// The largest packet MQTT 3.1.1 can carry (the remaining-length field's limit).
const MQTT_MAX_PACKET: usize = 268_435_455;

/// Where a broker is and how to log in, from a connector's `url`, `username` and `password`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl Broker {
    /// Parses `url` after `${ENV}` substitution. `username` and `password` fields, when set,
    /// take precedence over the ones in the URL. Errors name `key` (e.g. `sources.s.url`).
    pub fn parse(
        key: &str,
        url: &str,
        username: Option<&str>,
        password: Option<&str>,
    ) -> Result<Broker, String> {
        let expanded = expand_env(url).map_err(|e| format!("{key}: {e}"))?;
        let u = url::Url::parse(&expanded).map_err(|e| {
            format!(
                "{key}: expected a URL like mqtt://host:1883, got `{}`: {e}",
                redact(&expanded)
            )
        })?;
        match u.scheme() {
            "mqtt" | "tcp" => {}
            "mqtts" | "ssl" | "ws" | "wss" => {
                return Err(format!(
                    "{key}: `{}://` is not supported; weir speaks MQTT over plain TCP (mqtt://host:1883)",
                    u.scheme()
                ));
            }
            other => {
                return Err(format!(
                    "{key}: expected an mqtt:// URL, got scheme `{other}`"
                ));
            }
        }
        let host = match u.host_str() {
            Some(h) if !h.is_empty() => h.trim_start_matches('[').trim_end_matches(']'),
            _ => return Err(format!("{key}: the URL has no host")),
        };
        if u.path() != "" && u.path() != "/" {
            return Err(format!(
                "{key}: unexpected path `{}`; a broker URL is mqtt://host:port",
                u.path()
            ));
        }
        let env = |field: &str, v: &str| expand_env(v).map_err(|e| format!("{field}: {e}"));
        let field_key = |f: &str| {
            let base = key.strip_suffix(".url").unwrap_or(key);
            format!("{base}.{f}")
        };
        let username = match username {
            Some(v) => Some(env(&field_key("username"), v)?),
            None if !u.username().is_empty() => Some(percent_decode(u.username())),
            None => None,
        };
        let password = match password {
            Some(v) => Some(env(&field_key("password"), v)?),
            None => u.password().map(percent_decode),
        };
        if password.is_some() && username.is_none() {
            return Err(format!(
                "{}: a password needs a username",
                field_key("username")
            ));
        }
        Ok(Broker {
            host: host.to_owned(),
            port: u.port().unwrap_or(1883),
            username,
            password,
        })
    }

    /// Client options for this broker. The incoming packet limit is MQTT's own, so that an
    /// oversized message reaches the connector (which dead-letters it) instead of breaking
    /// the connection, which would make the broker redeliver it forever.
    pub fn options(&self, client_id: &str, keep_alive: Duration, clean: bool) -> MqttOptions {
        let mut o = MqttOptions::new(client_id, self.host.clone(), self.port);
        // Validated: keep_alive is zero or at least one second, and the client id is not empty.
        o.set_keep_alive(keep_alive);
        o.set_clean_session(clean);
        o.set_max_packet_size(MQTT_MAX_PACKET, MQTT_MAX_PACKET);
        if let Some(u) = &self.username {
            o.set_credentials(u.clone(), self.password.clone().unwrap_or_default());
        }
        o
    }
}

/// Undoes the `%XX` escapes of a URL's user or password part (invalid escapes stay as
/// they are).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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

/// Checks a topic filter to subscribe to: levels split by `/`, `+` matching exactly one
/// level and standing alone in it, `#` matching the rest and only as the last level.
pub fn check_filter(filter: &str) -> Result<(), String> {
    check_common(filter)?;
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err(format!(
                "`{filter}`: `#` must be a whole level and the last one (like `sensors/#`)"
            ));
        }
        if level.contains('+') && *level != "+" {
            return Err(format!(
                "`{filter}`: `+` must be a whole level (like `sensors/+/temperature`)"
            ));
        }
    }
    Ok(())
}

/// Checks a topic name to publish to: like a filter, but without wildcards.
pub fn check_topic(topic: &str) -> Result<(), String> {
    check_common(topic)?;
    if topic.contains(['+', '#']) {
        return Err(format!(
            "`{topic}`: a topic to publish to cannot contain the wildcards `+` or `#`"
        ));
    }
    Ok(())
}

fn check_common(t: &str) -> Result<(), String> {
    if t.is_empty() {
        return Err("a topic cannot be empty".into());
    }
    if t.len() > usize::from(u16::MAX) {
        return Err(format!(
            "a topic has at most 65535 bytes, got {} bytes",
            t.len()
        ));
    }
    if t.contains('\0') {
        return Err(format!(
            "`{}`: a topic cannot contain NUL",
            t.escape_debug()
        ));
    }
    Ok(())
}

/// QoS from a config value (0 or 1; 2 is not offered: it adds a round trip and gives
/// nothing on top of weir's own duplicate handling).
pub fn check_qos(key: &str, qos: u8) -> Result<rumqttc::QoS, String> {
    match qos {
        0 => Ok(rumqttc::QoS::AtMostOnce),
        1 => Ok(rumqttc::QoS::AtLeastOnce),
        other => Err(format!(
            "{key}: expected 0 (at most once) or 1 (at least once), got {other}"
        )),
    }
}

/// Checks a keep-alive interval (zero turns pings off; otherwise whole seconds of at least 1,
/// at most the protocol's 65535).
pub fn check_keep_alive(key: &str, d: Duration) -> Result<(), String> {
    if !d.is_zero() && (d < Duration::from_secs(1) || d > Duration::from_secs(65_535)) {
        return Err(format!(
            "{key}: expected 0 (no pings) or 1s..=65535s, got {d:?}"
        ));
    }
    Ok(())
}

/// Checks a client id (MQTT 3.1.1 guarantees 23 bytes; Mosquitto and most brokers take
/// more, so only emptiness and the protocol's string limit are checked).
pub fn check_client_id(key: &str, id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err(format!("{key}: expected a non-empty client id"));
    }
    if id.len() > usize::from(u16::MAX) || id.contains('\0') {
        return Err(format!(
            "{key}: `{}` is not a valid client id",
            id.escape_debug()
        ));
    }
    Ok(())
}

/// A connection failure as a connector error. A broker refusing the login or the client id
/// is not retryable (the config must change); everything else (refused TCP, reset, timeout)
/// is.
pub fn connection_error(connector: &str, operation: &str, e: &ConnectionError) -> ConnectorError {
    let retry = !matches!(
        e,
        ConnectionError::ConnectionRefused(
            ConnectReturnCode::BadUserNamePassword
                | ConnectReturnCode::NotAuthorized
                | ConnectReturnCode::BadClientId
                | ConnectReturnCode::RefusedProtocolVersion
        )
    );
    ConnectorError::Remote {
        connector: connector.to_owned(),
        operation: operation.to_owned(),
        reason: describe(e),
        retry,
    }
}

/// A readable reason for a connection failure.
pub fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ConnectionRefused(code) => {
            let why = match code {
                ConnectReturnCode::BadUserNamePassword => "bad username or password",
                ConnectReturnCode::NotAuthorized => "not authorized",
                ConnectReturnCode::BadClientId => "client id rejected",
                ConnectReturnCode::RefusedProtocolVersion => "MQTT 3.1.1 not supported",
                ConnectReturnCode::ServiceUnavailable => "service unavailable",
                ConnectReturnCode::Success => "no reason given",
            };
            format!("the broker refused the connection: {why}")
        }
        other => {
            let mut s = other.to_string();
            let mut cur = std::error::Error::source(other);
            while let Some(c) = cur {
                // rumqttc's messages often repeat their source's text already.
                let text = c.to_string();
                if !s.contains(&text) {
                    s.push_str(": ");
                    s.push_str(&text);
                }
                cur = c.source();
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_follow_the_wildcard_rules() {
        for ok in [
            "sensors/+/temperature",
            "sensors/#",
            "#",
            "+",
            "+/+",
            "a//b",
            "/leading",
            "sensors/dev1/temperature",
        ] {
            assert!(check_filter(ok).is_ok(), "{ok}");
        }
        for (bad, hint) in [
            ("sensors/#/x", "last"),
            ("sensors/a#", "whole level"),
            ("sensors/dev+/t", "`+` must be a whole level"),
            ("sensors/++", "`+` must be a whole level"),
            ("", "empty"),
            ("a\0b", "NUL"),
        ] {
            let e = check_filter(bad).unwrap_err();
            assert!(e.contains(hint), "{bad}: {e}");
        }
        assert!(check_topic("alerts/dev1").is_ok());
        assert!(check_topic("alerts/+").is_err());
        assert!(check_topic("alerts/#").is_err());
    }

    #[test]
    fn broker_urls_and_credentials() {
        let b = Broker::parse("sources.s.url", "mqtt://127.0.0.1:1883", None, None).unwrap();
        assert_eq!((b.host.as_str(), b.port), ("127.0.0.1", 1883));
        assert_eq!(b.username, None);
        let b = Broker::parse("sources.s.url", "tcp://u%40x:p%2Fw@host", None, None).unwrap();
        assert_eq!((b.host.as_str(), b.port), ("host", 1883));
        assert_eq!(b.username.as_deref(), Some("u@x"));
        assert_eq!(b.password.as_deref(), Some("p/w"));
        let path = std::env::var("PATH").unwrap();
        let b = Broker::parse(
            "sources.s.url",
            "mqtt://u:old@h:1",
            Some("me"),
            Some("${PATH}"),
        )
        .unwrap();
        assert_eq!(b.username.as_deref(), Some("me"));
        assert_eq!(b.password.as_deref(), Some(path.as_str()));
        let e = Broker::parse("sources.s.url", "mqtts://h", None, None).unwrap_err();
        assert!(e.starts_with("sources.s.url: `mqtts://`"), "{e}");
        let e = Broker::parse("sources.s.url", "http://h", None, None).unwrap_err();
        assert!(e.contains("scheme `http`"), "{e}");
        let e = Broker::parse("sinks.k.url", "mqtt://h", None, Some("pw")).unwrap_err();
        assert!(e.starts_with("sinks.k.username"), "{e}");
        let e = Broker::parse(
            "sources.s.url",
            "mqtt://${WEIR_SURELY_UNSET_MQTT}",
            None,
            None,
        )
        .unwrap_err();
        assert!(e.contains("WEIR_SURELY_UNSET_MQTT"), "{e}");
        assert_eq!(redact("mqtt://u:secret@h:1883"), "mqtt://u:***@h:1883");
    }

    #[test]
    fn qos_keep_alive_and_client_id_limits() {
        assert!(check_qos("k", 1).is_ok());
        let e = check_qos("sources.s.qos", 2).unwrap_err();
        assert!(e.starts_with("sources.s.qos: expected 0"), "{e}");
        assert!(check_keep_alive("k", Duration::ZERO).is_ok());
        assert!(check_keep_alive("k", Duration::from_millis(500)).is_err());
        assert!(check_client_id("k", "").is_err());
        assert!(check_client_id("k", "weir-readings").is_ok());
    }
}
