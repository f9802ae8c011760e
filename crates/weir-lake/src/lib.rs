//! weir's lakehouse: every table is a Delta Lake table under one root, a local directory by
//! default or an `s3://bucket/prefix` on S3-compatible object storage ([`s3`]). This crate owns
//! naming, creation, idempotent appends (each commit carries an application transaction `txn`
//! so a replayed micro-batch is never written twice), opening tables for reading (latest or a
//! given version) and listing them. It knows nothing about SQL planning or streams; `weir-sql`
//! builds queries on top of the handles returned here.

pub mod error;
mod inspect;
mod object;
pub mod s3;
mod table;

pub use error::{LakeError, Result};
pub use inspect::{ColumnInfo, Commit, PartitionInfo, TableDetail, TableInspector};
pub use s3::S3Config;
pub use table::{Lake, LakeTable, TableInfo};

/// Re-exported so that callers name Delta types through one path.
pub use deltalake;
