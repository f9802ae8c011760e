//! The [`Sink`] contract: where a table's rows go besides its Delta table.
//!
//! The pipeline hands each sink the rows its `from` table produced in a micro-batch, tagged
//! with the batch id, after the batch is checkpointed and alongside the Delta commits. After a
//! crash the last checkpointed batch is replayed with the same id and the same rows, so a sink
//! that records the batch ids it has committed (atomically with the rows, like the
//! `postgres` sink's `weir_sink_offsets`) delivers every row exactly once. The retry loop,
//! backoff and health reporting live in the orchestrator; a sink only writes or fails.

use arrow::record_batch::RecordBatch;

use crate::error::Result;

/// What one [`Sink::write`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkWrite {
    /// Rows written to the outside system.
    pub rows: u64,
    /// True when the batch had been delivered before (a replay) and nothing was written.
    pub skipped: bool,
}

/// A running sink.
///
/// Contract: `write` is called with strictly increasing batch ids, except that after a
/// restart the first call may repeat the last id seen before the crash (with the same rows).
/// It returns once the rows are durable in the outside system. An error with
/// [`weir_core::ErrorKind::External`] is retried with the same arguments (after the sink
/// reconnects as it sees fit); a `User` error (a column type the target cannot hold, a
/// missing permission) stops the pipeline and is shown in status.
#[async_trait::async_trait]
pub trait Sink: Send {
    /// `offsets` is the batch's input ranges as JSON (`{"topic": {"partition": [from, to]}}`),
    /// for sinks that store them beside the batch id.
    async fn write(
        &mut self,
        batch_id: u64,
        offsets: &str,
        rows: &[RecordBatch],
    ) -> Result<SinkWrite>;
}
