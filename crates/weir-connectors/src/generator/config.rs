//! `[sources.<name>] type = "generator"`: synthetic shop events.

use serde::{Deserialize, Serialize};

/// Synthetic shop events (the shop-events benchmark's data and defect mix).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorConfig {
    /// Partitions of the source's topic.
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// Events per second; absent means as fast as the log accepts them.
    #[serde(default)]
    pub rate: Option<u64>,
    /// Stop after this many events; absent means run until stopped.
    #[serde(default)]
    pub events: Option<u64>,
    /// Seed of the random stream: the same seed gives the same events.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Event time of the first event, RFC 3339 (default 2026-01-15T00:00:00Z).
    #[serde(default)]
    pub start: Option<String>,
}

fn default_partitions() -> u32 {
    1
}
fn default_seed() -> u64 {
    42
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            partitions: 1,
            rate: None,
            events: None,
            seed: 42,
            start: None,
        }
    }
}

impl GeneratorConfig {
    pub fn validate(&self, name: &str) -> Result<(), String> {
        if self.rate == Some(0) {
            return Err(format!(
                "sources.{name}.rate: expected a positive number of events per second, or no rate for unbounded"
            ));
        }
        self.start_ms()
            .map(|_| ())
            .map_err(|e| format!("sources.{name}.start: {e}"))
    }

    /// Event time of the first event in ms since the epoch.
    pub fn start_ms(&self) -> Result<i64, String> {
        match &self.start {
            None => Ok(1_768_435_200_000),
            Some(s) => chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.timestamp_millis())
                .map_err(|e| {
                    format!(
                        "expected an RFC 3339 date-time like 2026-01-15T00:00:00Z, got `{s}` ({e})"
                    )
                }),
        }
    }
}
