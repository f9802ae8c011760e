//! Every source kind weir knows, listed by hand. The `type` key of `[sources.<name>]` picks
//! one; the kind name is the same in config, module and docs.

use serde::{Deserialize, Serialize};

use crate::file::FileConfig;
use crate::generator::GeneratorConfig;
use crate::http::HttpConfig;

/// `[sources.<name>]`: a source and the log topic it writes (named after the source).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceConfig {
    /// JSON lines pushed with `POST /v1/sources/<name>/records`.
    Http(HttpConfig),
    /// JSON-lines or CSV files dropped in a folder, each ingested exactly once.
    File(FileConfig),
    /// Synthetic shop events (for demos and benchmarks).
    Generator(GeneratorConfig),
}

impl SourceConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::Http(_) => "http",
            SourceConfig::File(_) => "file",
            SourceConfig::Generator(_) => "generator",
        }
    }

    /// Partitions of the source's topic.
    pub fn partitions(&self) -> u32 {
        match self {
            SourceConfig::Http(c) => c.partitions,
            SourceConfig::File(c) => c.partitions,
            SourceConfig::Generator(c) => c.partitions,
        }
    }

    /// Checks the fields; errors name the key and what was expected.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        if self.partitions() == 0 || self.partitions() > 1024 {
            return Err(format!(
                "sources.{name}.partitions: expected 1..=1024, got {}",
                self.partitions()
            ));
        }
        match self {
            SourceConfig::Http(c) => c.validate(name),
            SourceConfig::File(c) => c.validate(name),
            SourceConfig::Generator(c) => c.validate(name),
        }
    }
}
