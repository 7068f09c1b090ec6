//! `mcpwatch-collector`: parse the command line, set up logging, hand over to the library.

use std::process::ExitCode;

use clap::Parser as _;
use mcpwatch_collector::cli::Cli;

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
