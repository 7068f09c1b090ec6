//! Where the agent's log goes, for every command and the Windows service alike:
//! standard error (colours only on a terminal: a journal or a redirect gets plain
//! text), or for the Windows service `agent.log` in the state dir.

use std::path::Path;

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
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(level))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
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
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(level))
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
}
