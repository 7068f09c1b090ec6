//! The agent's config files as the installer writes them.
//!
//! `agent.toml` is the admin's: the installer creates it from [`TEMPLATE`] where none
//! exists and never changes it after. What `install` is given (the collector's URL, a
//! private CA) goes into its own drop-in, `agent.d/50-install.toml`, read after
//! `agent.toml` (see the agent's `config` module): no package ever ships or edits a
//! file the admin may have edited. The enroll secret is never written to a config
//! file. Files are replaced atomically, readable by their owner only.

use std::fs;
use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, value};

use crate::{Error, Result, io};

/// The file a new install starts from (the deb ships the same file).
pub const TEMPLATE: &str = include_str!("../../packaging/agent.toml");

/// The drop-in `install` writes, inside the drop-in directory.
pub const INSTALL_DROP_IN: &str = "50-install.toml";

/// What a new install drop-in starts with.
const DROP_IN_HEADER: &str = "# Written by `mcpwatch-agent install` (and the packages' install steps) with the\n# settings they were given. Read after agent.toml; a later drop-in (by name) wins.\n";

/// The drop-in directory of a config file: `agent.d` beside `agent.toml`.
pub fn drop_in_dir(config_file: &Path) -> PathBuf {
    config_file.with_extension("d")
}

/// What `install` may set; `None` leaves a key as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    pub collector_url: Option<String>,
    pub ca_file: Option<PathBuf>,
}

/// Create the config file at `path` from [`TEMPLATE`] if there is none; an existing
/// one is the admin's and stays as it is. Returns whether it was created.
pub fn create_if_absent(path: &Path) -> Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    crate::files::write_private(path, TEMPLATE.as_bytes()).map_err(io("writing", path))?;
    Ok(true)
}

/// Set `settings` in the install drop-in of the config file at `config_file`. Returns
/// the drop-in's path and whether it changed.
pub fn write_install_drop_in(config_file: &Path, settings: &Settings) -> Result<(PathBuf, bool)> {
    let dir = drop_in_dir(config_file);
    crate::files::create_private_dir(&dir).map_err(io("creating", &dir))?;
    let path = dir.join(INSTALL_DROP_IN);
    let changed = write(&path, DROP_IN_HEADER, settings)?;
    Ok((path, changed))
}

/// Take the enroll secret out of the config file at `path` (once the agent has
/// enrolled with it), keeping everything else, comments included. Returns whether
/// the file held one.
pub fn remove_enroll_secret(path: &Path) -> Result<bool> {
    let text = fs::read_to_string(path).map_err(io("reading", path))?;
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| Error::Config {
            path: path.to_path_buf(),
            message: e.message().to_owned(),
        })?;
    if doc.remove("enroll_secret").is_none() {
        return Ok(false);
    }
    crate::files::write_private(path, doc.to_string().as_bytes()).map_err(io("writing", path))?;
    Ok(true)
}

/// Set `settings` in the file at `path` (creating it from `new_file`). Returns whether
/// the file changed.
fn write(path: &Path, new_file: &str, settings: &Settings) -> Result<bool> {
    let old = match fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io("reading", path)(e)),
    };
    let new =
        render(old.as_deref().unwrap_or(new_file), settings).map_err(|message| Error::Config {
            path: path.to_path_buf(),
            message,
        })?;
    if old.as_deref() == Some(new.as_str()) {
        return Ok(false);
    }
    crate::files::write_private(path, new.as_bytes()).map_err(io("writing", path))?;
    Ok(true)
}

/// `text` with `settings` set. A key that is only there as a comment (`# key = ...`,
/// as in the template) is set on that line, so it stays next to its explanation.
pub fn render(text: &str, settings: &Settings) -> Result<String, String> {
    let parse = |text: &str| -> Result<DocumentMut, String> {
        text.parse()
            .map_err(|e: toml_edit::TomlError| e.message().to_owned())
    };
    let mut text = text.to_owned();
    let pairs = [
        (
            "collector_url",
            settings
                .collector_url
                .as_deref()
                .map(|u| u.trim_end_matches('/').to_owned()),
        ),
        (
            "ca_file",
            settings
                .ca_file
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
        ),
    ];
    for (key, new) in pairs {
        let mut doc = parse(&text)?;
        let Some(new) = new else { continue };
        if doc.contains_key(key) {
            doc[key] = value(new);
            text = doc.to_string();
            continue;
        }
        let line = format!("{key} = {}", toml_edit::Value::from(new).to_string().trim());
        let commented = format!("# {key} =");
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        match lines.iter().position(|l| l.starts_with(&commented)) {
            Some(at) => lines[at] = line,
            None => lines.push(line),
        }
        text = lines.join("\n") + "\n";
    }
    parse(&text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setting_keys_keeps_the_admins_comments_and_other_keys() {
        let old = "# ours\nproject_depth = 5 # deep\ncollector_url = \"https://old\"\n";
        let new = render(
            old,
            &Settings {
                collector_url: Some("https://new.example/".into()),
                ca_file: None,
            },
        )
        .unwrap();
        assert!(
            new.starts_with("# ours\nproject_depth = 5 # deep\n"),
            "{new}"
        );
        assert!(
            new.contains("collector_url = \"https://new.example\""),
            "{new}"
        );
        assert!(!new.contains("ca_file ="), "{new}");
    }

    #[test]
    fn writing_twice_with_the_same_settings_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("agent.toml");
        let settings = Settings {
            collector_url: Some("https://c.example".into()),
            ..Settings::default()
        };
        let (path, changed) = write_install_drop_in(&config, &settings).unwrap();
        assert!(changed);
        assert_eq!(path, dir.path().join("agent.d/50-install.toml"));
        assert!(!write_install_drop_in(&config, &settings).unwrap().1);
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# Written by `mcpwatch-agent install`"),
            "{text}"
        );
        assert!(
            text.contains("\ncollector_url = \"https://c.example\"\n"),
            "{text}"
        );
        assert!(!config.exists(), "the admin's file is not written");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_used_enroll_secret_leaves_the_file_and_nothing_else_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        fs::write(
            &path,
            "# fleet settings\ncollector_url = \"https://c.example\" # ours\nenroll_secret = \"mcp_es_once\"\nproject_depth = 2\n",
        )
        .unwrap();
        assert!(remove_enroll_secret(&path).unwrap());
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "# fleet settings\ncollector_url = \"https://c.example\" # ours\nproject_depth = 2\n"
        );
        assert!(!remove_enroll_secret(&path).unwrap());
    }

    #[test]
    fn the_admins_file_is_made_once_and_never_changed() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("agent.toml");
        assert!(create_if_absent(&config).unwrap());
        assert_eq!(fs::read_to_string(&config).unwrap(), TEMPLATE);
        fs::write(&config, "collector_url = \"https://mine.example\"\n").unwrap();
        assert!(!create_if_absent(&config).unwrap());
        assert_eq!(
            fs::read_to_string(&config).unwrap(),
            "collector_url = \"https://mine.example\"\n"
        );
    }

    #[test]
    fn a_broken_file_is_an_error_naming_it_and_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.d/50-install.toml");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, "collector_url = \"unterminated\n").unwrap();
        let err = write_install_drop_in(&dir.path().join("agent.toml"), &Settings::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("50-install.toml"), "{err}");
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "collector_url = \"unterminated\n"
        );
    }
}
