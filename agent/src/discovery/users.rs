//! The users of a machine (or of a directory standing for one): who has a home whose
//! client configs should be scanned.

use std::path::{Path, PathBuf};

use super::catalog::Os;
use super::paths::under_root;

/// A user and their home directory (already under the scan root).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub home: PathBuf,
}

const WINDOWS_NOT_USERS: &[&str] = &[
    "public",
    "default",
    "default user",
    "all users",
    "defaultuser0",
    "wdagutilityaccount",
];
const MACOS_NOT_USERS: &[&str] = &["shared", "guest"];

/// Every real user under `root` for the `os` layout:
/// Linux: `/etc/passwd` entries with a home under `/home` or at `/root`;
/// macOS: `/Users/*` but `Shared`, `Guest` and hidden entries;
/// Windows: `C:\Users\*` but `Public`, `Default` and other system profiles.
/// Only homes that exist as directories are kept.
pub fn enumerate(os: Os, root: &Path) -> Vec<User> {
    let mut users = match os {
        Os::Linux => linux(root),
        Os::Macos => listed(&root.join("Users"), MACOS_NOT_USERS),
        Os::Windows => listed(&root.join("Users"), WINDOWS_NOT_USERS),
    };
    users.retain(|u| u.home.is_dir());
    users.sort_by(|a, b| a.name.cmp(&b.name));
    users.dedup_by(|a, b| a.home == b.home);
    users
}

fn linux(root: &Path) -> Vec<User> {
    let Ok(passwd) = std::fs::read_to_string(root.join("etc/passwd")) else {
        // No passwd (a bare tree): fall back to the home directories.
        return listed(&root.join("home"), &[]);
    };
    passwd
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let (name, home) = (*fields.first()?, *fields.get(5)?);
            let real =
                home == "/root" || (home.starts_with("/home/") && home.len() > "/home/".len());
            if !real || name.is_empty() {
                return None;
            }
            Some(User {
                name: name.to_owned(),
                home: under_root(root, home)?,
            })
        })
        .collect()
}

fn listed(dir: &Path, not_users: &[&str]) -> Vec<User> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let hidden = name.starts_with('.') || not_users.contains(&name.to_lowercase().as_str());
            // Not following symlinks: a link in /Users is not a profile.
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            (!hidden && is_dir).then(|| User {
                name,
                home: entry.path(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_users_come_from_passwd_with_real_homes() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::write(
            r.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n\
             alice:x:1000:1000::/home/alice:/bin/bash\nbob:x:1001:1001::/home/bob:/bin/zsh\n\
             ghost:x:1002:1002::/home/ghost:/bin/bash\nweird:x:1003:1003::/home/:/bin/sh\n",
        )
        .unwrap();
        for d in ["root", "home/alice", "home/bob", "usr/sbin"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        let names: Vec<String> = enumerate(Os::Linux, r)
            .into_iter()
            .map(|u| u.name)
            .collect();
        assert_eq!(names, ["alice", "bob", "root"]);
    }

    #[test]
    fn macos_and_windows_users_are_profile_directories() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for d in [
            "Users/alice",
            "Users/Shared",
            "Users/Guest",
            "Users/.localized",
            "Users/Public",
            "Users/Default",
            "Users/bob",
        ] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        std::fs::write(r.join("Users/desktop.ini"), "").unwrap();
        let mac: Vec<String> = enumerate(Os::Macos, r)
            .into_iter()
            .map(|u| u.name)
            .collect();
        assert_eq!(mac, ["Default", "Public", "alice", "bob"]);
        let win: Vec<String> = enumerate(Os::Windows, r)
            .into_iter()
            .map(|u| u.name)
            .collect();
        assert_eq!(win, ["Guest", "Shared", "alice", "bob"]);
    }
}
