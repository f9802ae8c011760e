pub mod harness;
pub mod oracle;
pub mod pg;
pub mod proxy;
