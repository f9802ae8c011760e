//! PostgreSQL values in their text output format → JSON, the same way for polled rows and
//! for replicated changes, so a column looks the same whichever mode read it.
//!
//! Both modes ask the server for text (polling casts each column `::text`; `pgoutput` sends
//! text), with the session set to `TimeZone = 'UTC'` and `DateStyle = 'ISO'` (see
//! `source.rs`). Booleans become JSON booleans; integers, floats and numerics become JSON
//! numbers written exactly as PostgreSQL printed them (no rounding through f64); `NaN` and
//! infinities become strings. `timestamptz` becomes RFC 3339 in UTC (`2026-01-15T10:00:00.5Z`)
//! and `timestamp` (without time zone) the same text read as UTC. Everything else (text,
//! dates, uuid, json, arrays, bytea as `\x...`) is a JSON string of PostgreSQL's text.

use std::fmt::Write as _;

pub const BOOL: u32 = 16;
pub const INT8: u32 = 20;
pub const INT2: u32 = 21;
pub const INT4: u32 = 23;
pub const OID: u32 = 26;
pub const FLOAT4: u32 = 700;
pub const FLOAT8: u32 = 701;
pub const NUMERIC: u32 = 1700;
pub const DATE: u32 = 1082;
pub const TIMESTAMP: u32 = 1114;
pub const TIMESTAMPTZ: u32 = 1184;

/// Appends the JSON form of `text`, a value of the type with OID `type_oid`.
pub fn write_value(out: &mut String, type_oid: u32, text: &str) {
    match type_oid {
        BOOL if text == "t" => out.push_str("true"),
        BOOL if text == "f" => out.push_str("false"),
        INT2 | INT4 | INT8 | OID | FLOAT4 | FLOAT8 | NUMERIC if is_json_number(text) => {
            out.push_str(text)
        }
        TIMESTAMP | TIMESTAMPTZ => match rfc3339(text) {
            Some(ts) => write_str(out, &ts),
            None => write_str(out, text),
        },
        _ => write_str(out, text),
    }
}

/// Appends `s` as a JSON string.
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let esc = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            c if (c as u32) < 0x20 => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push_str(esc);
        }
        start = i + c.len_utf8();
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Whether `s` is a number in JSON's grammar (PostgreSQL prints `NaN`, `Infinity`, which
/// are not).
pub fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if b.first() == Some(&b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    let int_start = i;
    let n = digits(&mut i);
    if n == 0 || (n > 1 && b[int_start] == b'0') {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// PostgreSQL's ISO timestamp text (`2026-01-15 10:00:00.5+00`, `+05:30`, or no zone for
/// `timestamp`) as RFC 3339 (`2026-01-15T10:00:00.5Z`); `None` for what RFC 3339 cannot
/// say (`infinity`, BC dates, years past 9999).
pub fn rfc3339(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let shape = b"dddd-dd-dd dd:dd:dd";
    if b.len() < shape.len() {
        return None;
    }
    for (c, s) in b.iter().zip(shape) {
        let ok = if *s == b'd' {
            c.is_ascii_digit()
        } else {
            c == s
        };
        if !ok {
            return None;
        }
    }
    let mut i = shape.len();
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let (date_time, zone) = text.split_at(i);
    let zone = match zone {
        "" | "+00" | "+00:00" | "-00" => "Z".to_owned(),
        z if (z.len() == 3 || z.len() == 6)
            && (z.starts_with('+') || z.starts_with('-'))
            && z[1..3].bytes().all(|c| c.is_ascii_digit())
            && (z.len() == 3
                || (z.as_bytes()[3] == b':' && z[4..].bytes().all(|c| c.is_ascii_digit()))) =>
        {
            if z.len() == 3 {
                format!("{z}:00")
            } else {
                z.to_owned()
            }
        }
        // Seconds in the offset (historic zones) or anything else: keep PostgreSQL's text.
        _ => return None,
    };
    let mut out = String::with_capacity(date_time.len() + zone.len());
    out.push_str(&date_time[..10]);
    out.push('T');
    out.push_str(&date_time[11..]);
    out.push_str(&zone);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(oid: u32, text: &str) -> String {
        let mut s = String::new();
        write_value(&mut s, oid, text);
        // Everything written must be valid JSON.
        serde_json::from_str::<serde_json::Value>(&s).unwrap_or_else(|e| panic!("{s}: {e}"));
        s
    }

    #[test]
    fn types_map_to_json() {
        assert_eq!(json(BOOL, "t"), "true");
        assert_eq!(json(BOOL, "f"), "false");
        assert_eq!(json(INT8, "-9223372036854775808"), "-9223372036854775808");
        assert_eq!(
            json(NUMERIC, "12345678901234567890.123456789"),
            "12345678901234567890.123456789"
        );
        assert_eq!(json(NUMERIC, "NaN"), "\"NaN\"");
        assert_eq!(json(FLOAT8, "-Infinity"), "\"-Infinity\"");
        assert_eq!(json(FLOAT8, "1e+100"), "1e+100");
        assert_eq!(json(FLOAT4, "0.1"), "0.1");
        assert_eq!(
            json(TIMESTAMPTZ, "2026-01-15 10:00:00.123456+00"),
            "\"2026-01-15T10:00:00.123456Z\""
        );
        assert_eq!(
            json(TIMESTAMPTZ, "2026-01-15 10:00:00+05:30"),
            "\"2026-01-15T10:00:00+05:30\""
        );
        assert_eq!(
            json(TIMESTAMPTZ, "2026-01-15 10:00:00-08"),
            "\"2026-01-15T10:00:00-08:00\""
        );
        assert_eq!(
            json(TIMESTAMP, "2026-01-15 10:00:00.5"),
            "\"2026-01-15T10:00:00.5Z\""
        );
        assert_eq!(json(TIMESTAMPTZ, "infinity"), "\"infinity\"");
        assert_eq!(
            json(TIMESTAMP, "0044-03-15 12:00:00 BC"),
            "\"0044-03-15 12:00:00 BC\""
        );
        assert_eq!(json(DATE, "2026-01-15"), "\"2026-01-15\"");
        assert_eq!(json(3802, r#"{"a": [1, "x"]}"#), r#""{\"a\": [1, \"x\"]}""#);
        assert_eq!(
            json(25, "tab\there \\ \u{1} é"),
            "\"tab\\there \\\\ \\u0001 é\""
        );
        assert_eq!(json(17, "\\x00ff"), "\"\\\\x00ff\"");
    }

    #[test]
    fn json_number_grammar() {
        for ok in ["0", "-0", "12", "1.5", "-0.25", "1e5", "1E-5", "2.5e+3"] {
            assert!(is_json_number(ok), "{ok}");
        }
        for bad in [
            "", "-", "01", "1.", ".5", "1e", "NaN", "Infinity", "1.5.2", "+1", " 1",
        ] {
            assert!(!is_json_number(bad), "{bad}");
        }
    }

    #[test]
    fn rfc3339_output_parses_as_rfc3339() {
        for t in [
            "2026-01-15 10:00:00+00",
            "2026-01-15 10:00:00.000001+00",
            "1999-12-31 23:59:59.999999-03:30",
            "2026-01-15 10:00:00",
        ] {
            let r = rfc3339(t).unwrap();
            chrono::DateTime::parse_from_rfc3339(&r).unwrap_or_else(|e| panic!("{r}: {e}"));
        }
        assert_eq!(rfc3339("2026-01-15 10:00:00+01:02:03"), None);
        assert_eq!(rfc3339("2026-01-15"), None);
        assert_eq!(rfc3339("12026-01-15 10:00:00+00"), None);
    }
}
