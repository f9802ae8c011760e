//! Metric alert rules (`[[alerts.rules]]`): a condition on a pipeline metric that must hold for
//! a while before the alert fires; it fires once and resolves once. [`RuleEngine`] decides;
//! the runtime samples the metrics and sends what it decides through the alerter.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use weir_core::HumanDuration;

/// The metrics a rule can watch.
pub const METRICS: [&str; 6] = [
    "lag_records",
    "latency_p99_seconds",
    "quarantine_rate",
    "dead_letters",
    "rss_bytes",
    "rss_ratio",
];

/// `[[alerts.rules]]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Name in alerts.
    pub name: String,
    /// lag_records (records waiting for the pipeline), latency_p99_seconds (ingest → commit,
    /// over the last sampling interval), quarantine_rate (quarantined ÷ input rows over the last
    /// interval, 0..1), dead_letters (total), rss_bytes, rss_ratio (RSS ÷ `rss_limit`).
    pub metric: String,
    /// Fires when the metric is above this value...
    pub above: f64,
    /// ...for at least this long.
    #[serde(default, rename = "for")]
    pub for_: Option<HumanDuration>,
    /// Memory limit for rss_ratio, e.g. "1GiB".
    #[serde(default)]
    pub rss_limit: Option<weir_core::ByteSize>,
}

impl RuleConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !METRICS.contains(&self.metric.as_str()) {
            return Err(format!(
                "unknown metric `{}` (expected one of {})",
                self.metric,
                METRICS.join(", ")
            ));
        }
        if self.metric == "rss_ratio" && self.rss_limit.is_none() {
            return Err("rss_ratio needs `rss_limit`, e.g. \"1GiB\"".into());
        }
        Ok(())
    }
}

/// A decision of the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleEvent {
    Fire { rule: String, value: f64 },
    Resolve { rule: String, value: f64 },
}

#[derive(Debug, Default)]
struct RuleState {
    breach_since: Option<Instant>,
    firing: bool,
}

/// Tracks each rule's condition over time.
#[derive(Debug)]
pub struct RuleEngine {
    rules: Vec<RuleConfig>,
    state: Vec<RuleState>,
}

impl RuleEngine {
    pub fn new(rules: Vec<RuleConfig>) -> Self {
        let state = rules.iter().map(|_| RuleState::default()).collect();
        Self { rules, state }
    }

    /// Feeds one sample of the metrics taken at `now`; returns the alerts to fire or resolve.
    /// A metric missing from the sample leaves its rules as they are.
    pub fn evaluate(&mut self, now: Instant, metrics: &BTreeMap<String, f64>) -> Vec<RuleEvent> {
        let mut out = Vec::new();
        for (r, st) in self.rules.iter().zip(self.state.iter_mut()) {
            let value = match r.metric.as_str() {
                "rss_ratio" => metrics
                    .get("rss_bytes")
                    .zip(r.rss_limit)
                    .map(|(v, l)| v / l.0.max(1) as f64),
                m => metrics.get(m).copied(),
            };
            let Some(value) = value else { continue };
            if value > r.above {
                let since = *st.breach_since.get_or_insert(now);
                let need = r.for_.map_or(Duration::ZERO, |d| d.0);
                if !st.firing && now.duration_since(since) >= need {
                    st.firing = true;
                    out.push(RuleEvent::Fire {
                        rule: r.name.clone(),
                        value,
                    });
                }
            } else {
                st.breach_since = None;
                if st.firing {
                    st.firing = false;
                    out.push(RuleEvent::Resolve {
                        rule: r.name.clone(),
                        value,
                    });
                }
            }
        }
        out
    }

    pub fn rule(&self, name: &str) -> Option<&RuleConfig> {
        self.rules.iter().find(|r| r.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_fires_once_after_its_duration_and_resolves_once() {
        let rule: RuleConfig =
            toml::from_str("name = \"lag\"\nmetric = \"lag_records\"\nabove = 100\nfor = \"5m\"")
                .unwrap();
        let mut e = RuleEngine::new(vec![rule]);
        let t0 = Instant::now();
        let m = |v: f64| BTreeMap::from([("lag_records".to_string(), v)]);
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(e.evaluate(at(0), &m(500.0)).is_empty());
        assert!(e.evaluate(at(200), &m(500.0)).is_empty(), "not 5 min yet");
        assert_eq!(
            e.evaluate(at(300), &m(600.0)),
            [RuleEvent::Fire {
                rule: "lag".into(),
                value: 600.0
            }]
        );
        assert!(e.evaluate(at(400), &m(700.0)).is_empty(), "fires once");
        assert_eq!(
            e.evaluate(at(500), &m(10.0)),
            [RuleEvent::Resolve {
                rule: "lag".into(),
                value: 10.0
            }]
        );
        assert!(e.evaluate(at(600), &m(10.0)).is_empty(), "resolves once");
        // A dip below the threshold restarts the clock.
        assert!(e.evaluate(at(700), &m(500.0)).is_empty());
        assert!(e.evaluate(at(900), &m(50.0)).is_empty());
        assert!(e.evaluate(at(1100), &m(500.0)).is_empty());
    }

    #[test]
    fn unknown_metrics_are_refused() {
        let rule: RuleConfig =
            toml::from_str("name = \"x\"\nmetric = \"lagg\"\nabove = 1").unwrap();
        assert!(rule.validate().unwrap_err().contains("lag_records"));
    }
}
