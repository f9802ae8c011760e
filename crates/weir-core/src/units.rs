//! Durations ("500ms", "10m", "1h30m") and byte sizes ("64MiB", "1GB") as they are written in
//! `weir.toml`. Parsing is strict: a value that is not understood is an error naming it.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// A duration written the way people write it: a sequence of `<number><unit>` with units
/// `ms`, `s`, `m`, `h`, `d` (e.g. `10m`, `1h30m`, `250ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub fn as_millis_i64(&self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }
}

impl std::str::FromStr for HumanDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let text = s.trim();
        if text.is_empty() {
            return Err(
                "expected a duration like `10m`, `30s` or `1h30m`, got an empty string".into(),
            );
        }
        let mut total_ms: u128 = 0;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(format!(
                    "expected a duration like `10m`, `30s` or `1h30m`, got `{text}`"
                ));
            }
            let n: u128 = rest[..digits]
                .parse()
                .map_err(|_| format!("duration `{text}` is too large"))?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let factor: u128 = match unit {
                "ms" => 1,
                "s" => 1_000,
                "m" | "min" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                "" => {
                    return Err(format!(
                        "duration `{text}` needs a unit after {n} (ms, s, m, h or d)"
                    ));
                }
                other => {
                    return Err(format!(
                        "unknown unit `{other}` in duration `{text}` (expected ms, s, m, h or d)"
                    ));
                }
            };
            total_ms = total_ms
                .checked_add(n.saturating_mul(factor))
                .ok_or_else(|| format!("duration `{text}` is too large"))?;
        }
        let ms = u64::try_from(total_ms).map_err(|_| format!("duration `{text}` is too large"))?;
        Ok(HumanDuration(Duration::from_millis(ms)))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [
            ("d", 86_400_000u128),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
        ] {
            if ms.is_multiple_of(size) {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A size in bytes written with an optional unit: `B`, `KB`/`KiB`, `MB`/`MiB`, `GB`/`GiB`
/// (decimal and binary units both accepted), or a bare integer of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl std::str::FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let text = s.trim();
        let digits = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        if digits == 0 {
            return Err(format!(
                "expected a size like `64MiB` or `1GB`, got `{text}`"
            ));
        }
        let n: u64 = text[..digits]
            .parse()
            .map_err(|_| format!("size `{text}` is too large"))?;
        let factor: u64 = match text[digits..].trim() {
            "" | "B" => 1,
            "KB" | "kB" => 1_000,
            "KiB" => 1 << 10,
            "MB" => 1_000_000,
            "MiB" => 1 << 20,
            "GB" => 1_000_000_000,
            "GiB" => 1 << 30,
            "TB" => 1_000_000_000_000,
            "TiB" => 1 << 40,
            other => {
                return Err(format!(
                    "unknown unit `{other}` in size `{text}` (expected B, KB, KiB, MB, MiB, GB, GiB, TB or TiB)"
                ));
            }
        };
        n.checked_mul(factor)
            .map(ByteSize)
            .ok_or_else(|| format!("size `{text}` is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if b >= size && b.is_multiple_of(size) {
                return write!(f, "{}{unit}", b / size);
            }
        }
        write!(f, "{b}B")
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(ByteSize(n)),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print() {
        let d: HumanDuration = "1h30m".parse().unwrap();
        assert_eq!(d.0, Duration::from_secs(5400));
        assert_eq!("250ms".parse::<HumanDuration>().unwrap().0.as_millis(), 250);
        assert_eq!("10m".parse::<HumanDuration>().unwrap().to_string(), "10m");
        assert!(
            "10".parse::<HumanDuration>()
                .unwrap_err()
                .contains("needs a unit")
        );
        assert!(
            "10x"
                .parse::<HumanDuration>()
                .unwrap_err()
                .contains("unknown unit `x`")
        );
        assert!("".parse::<HumanDuration>().is_err());
    }

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!("64MiB".parse::<ByteSize>().unwrap().0, 64 << 20);
        assert_eq!("1GB".parse::<ByteSize>().unwrap().0, 1_000_000_000);
        assert_eq!("512".parse::<ByteSize>().unwrap().0, 512);
        assert_eq!(ByteSize(1 << 20).to_string(), "1MiB");
        assert!(
            "12 parsecs"
                .parse::<ByteSize>()
                .unwrap_err()
                .contains("parsecs")
        );
    }
}
