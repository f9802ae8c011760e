//! Alerts: a Slack-compatible webhook (JSON `{"text": ...}`, plus a `weir` object with the
//! fields) and email over SMTP. Each alert has a key; the store remembers fired keys, so an
//! alert fires once even across restarts, and resolves once.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::dag::store::MetaStore;

/// `[alerts]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// URL that receives a POST of Slack-compatible JSON per alert.
    #[serde(default)]
    pub webhook: Option<String>,
    /// Email over SMTP.
    #[serde(default)]
    pub email: Option<EmailConfig>,
    /// Conditions on pipeline metrics, evaluated continuously by `weir run`.
    #[serde(default)]
    pub rules: Vec<crate::dag::rules::RuleConfig>,
    /// How often the rules sample the metrics.
    #[serde(default = "default_rule_interval")]
    pub rule_interval: weir_core::HumanDuration,
}

fn default_rule_interval() -> weir_core::HumanDuration {
    weir_core::HumanDuration(std::time::Duration::from_secs(10))
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            webhook: None,
            email: None,
            rules: Vec::new(),
            rule_interval: default_rule_interval(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// SMTP server as host:port (plain SMTP; use a local relay for TLS).
    pub smtp: String,
    /// Sender address.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// SMTP login, when the server needs one.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

/// What happened.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    /// task_failed, retries_exhausted, check_failed, sla_missed, run_failed; `resolved` marks
    /// the end of a condition.
    pub event: String,
    pub dag: String,
    pub task: Option<String>,
    pub run_id: Option<i64>,
    pub logical_date: Option<String>,
    pub error: Option<String>,
    pub resolved: bool,
}

impl Alert {
    pub fn text(&self) -> String {
        let mut s = format!(
            "[weir] {}{}: DAG `{}`",
            self.event,
            if self.resolved { " (resolved)" } else { "" },
            self.dag
        );
        if let Some(t) = &self.task {
            s.push_str(&format!(", task `{t}`"));
        }
        if let Some(r) = self.run_id {
            s.push_str(&format!(", run {r}"));
        }
        if let Some(d) = &self.logical_date {
            s.push_str(&format!(" ({d})"));
        }
        if let Some(e) = &self.error {
            s.push_str(&format!(": {e}"));
        }
        s
    }
}

/// Sends alerts to the configured receivers.
#[derive(Clone)]
pub struct Alerter {
    config: AlertsConfig,
    store: Arc<dyn MetaStore>,
}

impl Alerter {
    pub fn new(config: AlertsConfig, store: Arc<dyn MetaStore>) -> Self {
        Self { config, store }
    }

    /// Fires `alert` unless `key` already fired. Delivery happens in the background; a
    /// delivery failure is logged, never fails the task that caused the alert.
    pub fn fire(&self, key: &str, alert: Alert) {
        if self.config.webhook.is_none() && self.config.email.is_none() {
            return;
        }
        match self.store.mark_alert(key, weir_core::now_ms() * 1000) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => tracing::warn!(error = %e, "cannot record alert; sending anyway"),
        }
        self.deliver(alert);
    }

    /// Sends the resolution of `key` if it was firing.
    pub fn resolve(&self, key: &str, mut alert: Alert) {
        if let Ok(true) = self.store.resolve_alert(key) {
            alert.resolved = true;
            self.deliver(alert);
        }
    }

    fn deliver(&self, alert: Alert) {
        let config = self.config.clone();
        std::thread::spawn(move || {
            if let Some(url) = &config.webhook
                && let Err(e) = send_webhook(url, &alert)
            {
                tracing::warn!(error = %e, url, "alert webhook failed");
            }
            if let Some(email) = &config.email
                && let Err(e) = send_email(email, &alert)
            {
                tracing::warn!(error = %e, smtp = email.smtp, "alert email failed");
            }
        });
    }
}

pub fn send_webhook(url: &str, alert: &Alert) -> Result<(), String> {
    let body = serde_json::json!({ "text": alert.text(), "weir": alert });
    ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .post(url)
        .send_json(body)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

pub fn send_email(cfg: &EmailConfig, alert: &Alert) -> Result<(), String> {
    use lettre::{Message, SmtpTransport, Transport};
    let mut msg = Message::builder()
        .from(
            cfg.from
                .parse()
                .map_err(|e| format!("bad `from` address `{}`: {e}", cfg.from))?,
        )
        .subject(alert.text().chars().take(150).collect::<String>());
    for to in &cfg.to {
        msg = msg.to(to
            .parse()
            .map_err(|e| format!("bad `to` address `{to}`: {e}"))?);
    }
    let body = format!(
        "{}\n\n{}\n",
        alert.text(),
        serde_json::to_string_pretty(alert).unwrap_or_default()
    );
    let msg = msg.body(body).map_err(|e| e.to_string())?;
    let (host, port) = cfg
        .smtp
        .rsplit_once(':')
        .and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h.to_owned(), p)))
        .ok_or_else(|| format!("expected `smtp` as host:port, got `{}`", cfg.smtp))?;
    let mut t = SmtpTransport::builder_dangerous(host).port(port);
    if let (Some(u), Some(p)) = (&cfg.username, &cfg.password) {
        t = t.credentials(lettre::transport::smtp::authentication::Credentials::new(
            u.clone(),
            p.clone(),
        ));
    }
    t.build().send(&msg).map(|_| ()).map_err(|e| e.to_string())
}
