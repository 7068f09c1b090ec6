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
            // EX_CONFIG: restarting cannot help until someone re-enrolls the agent, so
            // the service unit does not restart on it.
            match e.downcast_ref::<mcpwatch_agent::daemon::Error>() {
                Some(
                    mcpwatch_agent::daemon::Error::NotEnrolled
                    | mcpwatch_agent::daemon::Error::Revoked
                    | mcpwatch_agent::daemon::Error::Enroll(_),
                ) => ExitCode::from(78),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
