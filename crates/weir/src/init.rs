//! `weir init`: writes the shop example (embedded in the binary) into a directory.

use std::path::Path;

use anyhow::{Context, bail};

/// The example projects `weir init` and `weir demo --example` write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Example {
    /// Shop events over HTTP → silver → per-minute and per-day gold (the default).
    Shop,
    /// A users API polled every minute → flattened users → PostgreSQL `created_users`.
    Users,
    /// MQTT sensor readings → 1-minute averages per device → PostgreSQL `device_minute`.
    Iot,
}

impl Example {
    fn files(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Example::Shop => SHOP,
            Example::Users => USERS,
            Example::Iot => IOT,
        }
    }
}

const USERS: &[(&str, &str)] = &[
    (
        "weir.toml",
        include_str!("../../../examples/users/weir.toml"),
    ),
    (
        "sql/silver_users.sql",
        include_str!("../../../examples/users/sql/silver_users.sql"),
    ),
];

const IOT: &[(&str, &str)] = &[
    ("weir.toml", include_str!("../../../examples/iot/weir.toml")),
    (
        "sql/silver_readings.sql",
        include_str!("../../../examples/iot/sql/silver_readings.sql"),
    ),
    (
        "sql/gold_device_minute.sql",
        include_str!("../../../examples/iot/sql/gold_device_minute.sql"),
    ),
];

const SHOP: &[(&str, &str)] = &[
    (
        "weir.toml",
        include_str!("../../../examples/shop/weir.toml"),
    ),
    (
        "sql/silver_events.sql",
        include_str!("../../../examples/shop/sql/silver_events.sql"),
    ),
    (
        "sql/gold_category_minute.sql",
        include_str!("../../../examples/shop/sql/gold_category_minute.sql"),
    ),
    (
        "sql/gold_customer_daily.sql",
        include_str!("../../../examples/shop/sql/gold_customer_daily.sql"),
    ),
];

/// Creates the shop project in `dir`; refuses to overwrite an existing weir.toml.
pub fn init(dir: &Path) -> anyhow::Result<()> {
    init_example(dir, Example::Shop)
}

/// Creates an example project in `dir`; refuses to overwrite an existing weir.toml.
pub fn init_example(dir: &Path, example: Example) -> anyhow::Result<()> {
    if dir.join("weir.toml").exists() {
        bail!(
            "{} already holds a weir.toml; choose another directory",
            dir.display()
        );
    }
    for (name, text) in example.files() {
        let p = dir.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}
