//! weir's SQL engine, on Apache DataFusion: decoding raw records to Arrow, the streaming
//! operators (expectations, dedup, event-time windows with watermarks and late data), and
//! ad-hoc queries over the lake. It does not read the log or write the lake itself — the
//! orchestrator's pipeline feeds it chunks and commits what it returns.

pub mod decode;
mod dedup;
pub mod error;
pub mod format;
pub mod query;
pub mod spec;
pub mod stream;
mod window;

pub use dedup::DedupMeta;
pub use error::{Result, SqlError};
pub use window::WindowMeta;

pub use arrow;
pub use datafusion;
