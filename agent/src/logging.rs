//! Where the agent's log goes, for every command and the Windows service alike:
//! standard error (colours only on a terminal: a journal or a redirect gets plain
//! text), or for the Windows service `agent.log` in the state dir; as text or as one
//! JSON object per line (`--log-format json`).

use std::path::Path;
use std::sync::OnceLock;

/// The log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Choose the format for the log set up next (the command line does, once).
pub fn set_format(format: LogFormat) {
    let _ = FORMAT.set(format);
}

fn format() -> LogFormat {
    FORMAT.get().copied().unwrap_or_default()
}

/// Install a subscriber writing to `writer`, in the chosen format.
fn install<W>(level: &str, ansi: bool, writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(level))
        .with_writer(writer);
    let _ = match format() {
        LogFormat::Text => builder.with_ansi(ansi).try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}

/// The biggest `agent.log` before it is rotated to `agent.log.1` (Windows service).
const MAX_LOG_BYTES: u64 = 10 * 1024 * 1024;

/// RUST_LOG if set, else `level`, else info.
pub fn filter(level: &str) -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
}

/// Log to standard error at `level`.
pub fn to_stderr(level: &str) {
    install(
        level,
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
        std::io::stderr,
    );
}

/// Log to `agent.log` in the state dir (only its owner can open it), keeping the
/// previous log as `agent.log.1` once it passes 10 MiB. Where the file cannot be
/// opened, to standard error.
pub fn to_file(state_dir: &Path, level: &str) {
    let opened = crate::paths::create_private_dir(state_dir)
        .ok()
        .and_then(|()| {
            let path = state_dir.join("agent.log");
            if std::fs::metadata(&path).is_ok_and(|m| m.len() > MAX_LOG_BYTES) {
                let _ = std::fs::rename(&path, state_dir.join("agent.log.1"));
            }
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .ok()
        });
    let Some(file) = opened else {
        return to_stderr(level);
    };
    install(level, false, std::sync::Mutex::new(file));
}
