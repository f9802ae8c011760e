pub mod harness;
pub mod oracle;
