//! `mcpwatch-collector`: parse the command line, set up logging, hand over to the library.

use std::process::ExitCode;

use clap::Parser as _;
use mcpwatch_collector::cli::Cli;

/// Request handling allocates and frees many small buffers on every worker thread;
/// mimalloc does that with far less contention than the system allocator (profiled:
/// a quarter of the collector's CPU under load was in glibc malloc and free).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    mcpwatch_collector::logging::init(&cli.log_level, cli.log_format);
    match cli.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            tracing::error!("{:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}
