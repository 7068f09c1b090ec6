//! `mcpwatch-agent`: parse the command line and hand over to the library.

use std::process::ExitCode;

use clap::Parser as _;
use mcpwatch_agent::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("mcpwatch-agent: {e:#}");
            }
            ExitCode::from(mcpwatch_agent::exit::code(&e))
        }
    }
}
