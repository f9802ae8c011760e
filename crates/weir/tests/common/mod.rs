pub mod harness;
pub mod oracle;
pub mod proxy;
