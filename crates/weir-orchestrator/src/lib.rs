//! weir's orchestration layer: the project model (`weir.toml` → validated config), the
//! micro-batch pipeline with its checkpoints, and [`runtime::Weir`], the one handle that owns
//! a running project (log, lake, sources, pipeline). The server and the CLI drive a project
//! only through this crate.

pub mod checkpoint;
pub mod config;
pub mod dag;
pub mod error;
pub mod pipeline;
pub mod runtime;
pub mod status;

pub use config::{Project, WeirConfig};
pub use error::{OrchestratorError, Result};
pub use runtime::Weir;
