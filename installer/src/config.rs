//! The agent's config file as the installer writes it: the given settings are set,
//! everything else in an existing file (other keys, the admin's comments) is kept, and
//! the file is replaced atomically, readable by its owner only (it may hold the enroll
//! secret).

use std::fs;
use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, value};

use crate::{Error, Result, io};

/// The file a new install starts from (the deb ships the same file).
pub const TEMPLATE: &str = include_str!("../../packaging/agent.toml");

/// What `install` may set in the config file; `None` leaves a key as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    pub collector_url: Option<String>,
    pub enroll_secret: Option<String>,
    pub ca_file: Option<PathBuf>,
}

/// Set `settings` in the config file at `path` (creating it from [`TEMPLATE`]).
/// Returns whether the file changed.
pub fn write(path: &Path, settings: &Settings) -> Result<bool> {
    let old = match fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io("reading", path)(e)),
    };
    let new =
        render(old.as_deref().unwrap_or(TEMPLATE), settings).map_err(|message| Error::Config {
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
        ("enroll_secret", settings.enroll_secret.clone()),
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
                enroll_secret: Some("mcp_es_x".into()),
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
        assert!(new.contains("enroll_secret = \"mcp_es_x\""), "{new}");
        assert!(!new.contains("ca_file ="), "{new}");
    }

    #[test]
    fn writing_twice_with_the_same_settings_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        let settings = Settings {
            collector_url: Some("https://c.example".into()),
            ..Settings::default()
        };
        assert!(write(&path, &settings).unwrap());
        assert!(!write(&path, &settings).unwrap());
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# mcpwatch agent configuration"), "{text}");
        assert!(
            text.contains("it enrolled with.\ncollector_url = \"https://c.example\"\n"),
            "the key replaces its commented example: {text}"
        );
        assert!(!text.contains("# collector_url ="), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_broken_file_is_an_error_naming_it_and_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        fs::write(&path, "collector_url = \"unterminated\n").unwrap();
        let err = write(&path, &Settings::default()).unwrap_err().to_string();
        assert!(err.contains("agent.toml"), "{err}");
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "collector_url = \"unterminated\n"
        );
    }
}
