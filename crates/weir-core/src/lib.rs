//! weir's shared vocabulary: error kinds, human units for durations and sizes, and the small
//! value types every other crate passes around. No IO lives here; the log, the lake, the
//! connectors and the SQL engine all build on these types.

pub mod error;
pub mod units;

pub use error::ErrorKind;
pub use units::{ByteSize, HumanDuration};

/// Milliseconds since the Unix epoch, the one wall-clock unit weir stores.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
