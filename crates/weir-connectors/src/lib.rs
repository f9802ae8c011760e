//! Sources (and later sinks) that move outside data into weir's log. Each connector kind has
//! its own folder with a cheap config half (`<Kind>Config`, validated without IO) and a
//! running half that owns the IO; [`registry`] lists them by hand.
//!
//! A source stores each input line as one raw record: bronze keeps everything, parsing
//! happens in the table that reads it. A source rejects only what cannot be a record
//! (bytes that are not UTF-8, a line over the size limit); those go to the dead-letter
//! topic with their reason ([`dlq`]), counted, never silently dropped.

pub mod dlq;
pub mod error;
pub mod file;
pub mod generator;
pub mod http;
pub mod registry;

pub use error::{ConnectorError, Result};
pub use registry::SourceConfig;
