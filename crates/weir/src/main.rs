//! The `weir` command line: the only place that knows about arguments, terminals and exit
//! codes. Everything it does goes through `weir-orchestrator` (a running project), `weir-sql`
//! (queries) and `weir-server` (HTTP).

mod bench;
mod bench_cdc;
#[cfg(feature = "kafka")]
mod bench_kafka;
mod bench_serve;
mod bench_sink;
mod cli;
mod dag;
mod demo;
mod dlq;
mod init;
mod query;
mod simulate;

use std::process::ExitCode;

/// mimalloc instead of the system allocator: Arrow batches, Parquet pages and JSON decoding
/// allocate and free many short-lived buffers, and glibc's allocator spent ~13 % of the shop
/// benchmark's CPU time (`perf record`, BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

fn main() -> ExitCode {
    // `weir ... | head`: a closed stdout ends the command quietly, as with other Unix tools.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default_hook(info);
    }));
    let args = cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if args.verbose { "info" } else { "warn" })
    });
    // The console shows what WEIR_LOG (or -v) asks for; the server's log buffer (GET /v1/logs)
    // keeps weir's info lines and everyone's warnings whatever the console shows. Each layer has
    // its own filter.
    {
        use tracing_subscriber::prelude::*;
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            )
            .with(weir_server::logs::layer())
            .init();
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(cli::dispatch(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
