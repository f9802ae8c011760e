//! [`SchemaValidator`]: checks a source's records against the latest version of the subject
//! the source names (`schema = "<subject>"` in `[sources.<name>]`).
//!
//! The latest version is looked up once per batch, so a version registered while weir runs
//! applies from the next batch on. A record that fails gets a detail naming the path, the
//! reason and the version (`$.age: expected integer, got "x" (subject `users-value` version
//! 2)`); the caller sends it to the dead-letter topic instead of the source's topic. While the
//! subject has no version at all, every record fails with that reason (nothing is appended
//! unchecked), the error is logged once and shown in the source's health.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::SchemaRegistry;
use crate::source::SourceHealth;

/// Validates one source's records.
pub struct SchemaValidator {
    registry: Arc<SchemaRegistry>,
    source: String,
    subject: String,
    health: Option<Arc<SourceHealth>>,
    /// Whether the subject was missing at the last check (so it is reported once).
    missing: AtomicBool,
}

impl std::fmt::Debug for SchemaValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaValidator")
            .field("source", &self.source)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl SchemaValidator {
    pub fn new(registry: Arc<SchemaRegistry>, source: &str, subject: &str) -> Self {
        SchemaValidator {
            registry,
            source: source.to_owned(),
            subject: subject.to_owned(),
            health: None,
            missing: AtomicBool::new(false),
        }
    }

    /// Reports a missing subject in `health` (shown in `/v1/status`), and clears it once the
    /// subject has a version.
    #[must_use]
    pub fn with_health(mut self, health: Arc<SourceHealth>) -> Self {
        self.health = Some(health);
        self
    }

    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Why the subject cannot be used now, if it cannot: it has no live version.
    pub fn missing_reason(&self) -> Option<String> {
        self.registry.latest(&self.subject).is_none().then(|| {
            format!(
                "sources.{}.schema: subject `{}` has no schema in the registry; register one with POST /subjects/{}/versions (records are dead-lettered until then)",
                self.source, self.subject, self.subject
            )
        })
    }

    /// Logs, and shows in the source's health, that the subject has no schema (once until it
    /// gets one); returns whether it has none. The runtime calls it at start.
    pub fn report_if_missing(&self) -> bool {
        match self.missing_reason() {
            Some(reason) => {
                self.note_missing(&reason);
                true
            }
            None => false,
        }
    }

    fn note_missing(&self, reason: &str) {
        if !self.missing.swap(true, Ordering::Relaxed) {
            tracing::error!(source = %self.source, subject = %self.subject, "{reason}");
            if let Some(h) = &self.health {
                h.failed(reason);
            }
        }
    }

    /// The verdict on each of `values`: `None` when it validates, else the detail for its dead
    /// letter.
    pub fn check(&self, values: &[&[u8]]) -> Vec<Option<String>> {
        let Some((version, _, schema)) = self.registry.latest(&self.subject) else {
            let reason = self.missing_reason().unwrap_or_default();
            self.note_missing(&reason);
            return vec![Some(reason); values.len()];
        };
        if self.missing.swap(false, Ordering::Relaxed) {
            tracing::info!(source = %self.source, subject = %self.subject, version, "schema found; validating records");
            if let Some(h) = &self.health {
                h.ok();
            }
        }
        let at = |what: String| {
            Some(format!(
                "{what} (subject `{}` version {version})",
                self.subject
            ))
        };
        values
            .iter()
            .map(|v| match serde_json::from_slice::<serde_json::Value>(v) {
                Err(e) => at(format!("$: not JSON: {e}")),
                Ok(value) => match schema.validate(&value) {
                    Ok(()) => None,
                    Err(violation) => at(violation.to_string()),
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::SchemaType;

    #[test]
    fn records_are_checked_against_the_latest_version() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Arc::new(SchemaRegistry::open(dir.path()).unwrap());
        let health = Arc::new(SourceHealth::default());
        let v =
            SchemaValidator::new(reg.clone(), "users", "users-value").with_health(health.clone());
        let got = v.check(&[br#"{"id": 1}"#]);
        assert!(
            got[0]
                .as_deref()
                .unwrap()
                .contains("has no schema in the registry"),
            "{got:?}"
        );
        assert!(
            health
                .snapshot()
                .last_error
                .unwrap()
                .contains("sources.users.schema")
        );
        reg.register(
            "users-value",
            SchemaType::Json,
            r#"{"type":"object","properties":{"id":{"type":"integer"}},"required":["id"]}"#,
        )
        .unwrap();
        let got = v.check(&[br#"{"id": 1}"#, br#"{"id": "x"}"#, b"nope", b"{}"]);
        assert_eq!(got[0], None);
        assert_eq!(
            got[1].as_deref(),
            Some(r#"$.id: expected integer, got "x" (subject `users-value` version 1)"#)
        );
        assert!(
            got[2].as_deref().unwrap().starts_with("$: not JSON"),
            "{got:?}"
        );
        assert_eq!(
            got[3].as_deref(),
            Some("$.id: required property is missing (subject `users-value` version 1)")
        );
        assert_eq!(health.snapshot().last_error, None);
    }
}
