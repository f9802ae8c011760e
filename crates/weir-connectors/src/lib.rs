//! Sources that move outside data into weir's log, and sinks that move a table's rows out.
//! Each connector kind has its own folder with a cheap config half (`<Kind>Config`, validated
//! without IO) and a running half that owns the IO; [`registry`] lists them by hand.
//!
//! A source stores each input record as one raw record: bronze keeps everything, parsing
//! happens in the table that reads it. A source rejects only what cannot be a record
//! (bytes that are not UTF-8, a line over the size limit, a record failing its schema); those
//! go to the dead-letter topic with their reason ([`dlq`]), counted, never silently dropped.
//! Pulling sources follow the [`source::PullSource`] contract, sinks the [`sink::Sink`] one.

pub mod dlq;
pub mod error;
pub mod file;
pub mod generator;
pub mod http;
#[cfg(feature = "connector-kafka")]
pub mod kafka;
#[cfg(feature = "connector-mqtt")]
pub mod mqtt;
#[cfg(feature = "connector-postgres")]
pub mod postgres;
pub mod registry;
#[cfg(feature = "connector-rest")]
pub mod rest;
pub mod schema;
pub mod sink;
pub mod source;

pub use error::{ConnectorError, Result};
pub use registry::{SinkConfig, SourceConfig};
