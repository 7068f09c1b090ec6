//! `mcpwatch-man DIR`: write the man pages of `mcpwatch-agent` and
//! `mcpwatch-collector` (one page per program and per subcommand, from their clap
//! definitions) into DIR, for the packages.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::CommandFactory as _;

/// Write `command`'s page as `<name>.1`, and one `<name>-<sub>.1` per visible
/// subcommand.
fn write_pages(dir: &Path, command: clap::Command) -> anyhow::Result<Vec<PathBuf>> {
    let name = command.get_name().to_owned();
    let mut written = Vec::new();
    let mut page = |cmd: clap::Command, file: String| -> anyhow::Result<()> {
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut out)?;
        let path = dir.join(file);
        std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
        Ok(())
    };
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let sub_name = format!("{name}-{}", sub.get_name());
        page(sub.clone().name(sub_name.clone()), format!("{sub_name}.1"))?;
    }
    page(command, format!("{name}.1"))?;
    Ok(written)
}

fn main() -> anyhow::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .context("usage: mcpwatch-man DIR")?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut pages = write_pages(&dir, mcpwatch_agent::cli::Cli::command())?;
    pages.extend(write_pages(&dir, mcpwatch_collector::cli::Cli::command())?);
    #[allow(clippy::print_stdout)]
    for page in pages {
        println!("{}", page.display());
    }
    Ok(())
}
