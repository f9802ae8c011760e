//! `weir init`: writes the shop example (embedded in the binary) into a directory.

use std::path::Path;

use anyhow::{Context, bail};

const FILES: &[(&str, &str)] = &[
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
    if dir.join("weir.toml").exists() {
        bail!(
            "{} already holds a weir.toml; choose another directory",
            dir.display()
        );
    }
    for (name, text) in FILES {
        let p = dir.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}
