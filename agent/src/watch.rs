//! The watch set: which directories the daemon watches for config changes, computed
//! from the client catalog and the last scan (never from a spooled report, which is
//! gone once accepted), and the watcher that follows it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use notify::event::{EventKind, MetadataKind, ModifyKind};
use notify::{RecursiveMode, Watcher as _};

use crate::discovery::{self, ScanOptions, Target, paths, users};

/// The directories to watch: the parent of every place a config may be, or its
/// nearest existing ancestor when the directory does not exist yet.
pub(crate) fn watch_dirs(options: &ScanOptions, found: &discovery::Inventory) -> BTreeSet<PathBuf> {
    let (root, files): (PathBuf, Vec<PathBuf>) = match &options.target {
        Target::Root { root, .. } => {
            let mut files: Vec<PathBuf> = paths::system_candidates(options.os, root)
                .into_iter()
                .map(|c| c.path)
                .collect();
            for user in users::enumerate(options.os, root) {
                files.extend(
                    paths::user_candidates(options.os, &user.home, None)
                        .into_iter()
                        .map(|c| c.path),
                );
            }
            (root.clone(), files)
        }
        Target::Home { home, env, .. } => (
            PathBuf::from("/"),
            paths::user_candidates(options.os, home, env.as_ref())
                .into_iter()
                .map(|c| c.path)
                .collect(),
        ),
    };
    let root = &root;
    let mut dirs = BTreeSet::new();
    for file in files {
        // Up to the first `*` component.
        let mut dir = PathBuf::new();
        for c in file.components() {
            if c.as_os_str().to_string_lossy().contains('*') {
                break;
            }
            dir.push(c);
        }
        if dir == file {
            dir.pop();
        }
        dirs.insert(nearest_existing(&dir));
    }
    // Project configs that were found: watch where they are.
    for path in found
        .servers
        .iter()
        .filter_map(|s| s.config_path.as_deref())
        .chain(found.config_errors.iter().map(|e| e.path.as_str()))
    {
        let local = if root == Path::new("/") || root == Path::new("C:\\") {
            PathBuf::from(path)
        } else {
            paths::under_root(root, path).unwrap_or_else(|| PathBuf::from(path))
        };
        if let Some(parent) = local.parent() {
            dirs.insert(nearest_existing(parent));
        }
    }
    dirs
}

/// The directory itself, or its nearest ancestor that exists.
fn nearest_existing(dir: &Path) -> PathBuf {
    let mut d = dir.to_path_buf();
    while !d.is_dir() {
        if !d.pop() {
            break;
        }
    }
    d
}

/// Whether an event says a config may have changed. Opening and reading a file (the
/// agent's own scans do that) and access-time updates do not: reacting to them would
/// make every scan trigger the next.
pub fn is_change(kind: &EventKind) -> bool {
    !matches!(
        kind,
        EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime))
    )
}

/// A watcher and the directories it watches.
pub struct Watch {
    watcher: notify::RecommendedWatcher,
    watched: BTreeSet<PathBuf>,
}

impl Watch {
    pub fn new(watcher: notify::RecommendedWatcher) -> Self {
        Self {
            watcher,
            watched: BTreeSet::new(),
        }
    }

    /// Watch what `found` (the last scan) and the catalog call for, and stop watching
    /// the rest; answers how many directories are watched.
    pub fn follow(&mut self, options: &ScanOptions, found: &discovery::Inventory) -> usize {
        let dirs = watch_dirs(options, found);
        for dir in &dirs {
            // Re-adding also covers a directory deleted and created again.
            if let Err(e) = self.watcher.watch(dir, RecursiveMode::NonRecursive) {
                tracing::debug!(dir = %crate::printable::escape(&dir.to_string_lossy()), error = %e, "Directory could not be watched.");
            }
        }
        for gone in self.watched.difference(&dirs) {
            let _ = self.watcher.unwatch(gone);
        }
        self.watched = dirs;
        self.watched.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_a_file_is_not_a_change() {
        use notify::event::{
            AccessKind, AccessMode, CreateKind, DataChange, RemoveKind, RenameMode,
        };
        for kind in [
            EventKind::Access(AccessKind::Open(AccessMode::Read)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)),
        ] {
            assert!(!is_change(&kind), "{kind:?}");
        }
        for kind in [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Permissions)),
            EventKind::Remove(RemoveKind::File),
            EventKind::Any,
            EventKind::Other,
        ] {
            assert!(is_change(&kind), "{kind:?}");
        }
    }
    use crate::test_support::{machine, put};

    #[test]
    fn project_config_directories_are_watched_from_the_last_scan() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        put(r, "etc/passwd", "alice:x:1000:1000::/home/alice:/bin/sh\n");
        put(
            r,
            "home/alice/.claude.json",
            r#"{"projects": {"/home/alice/work/app": {}}}"#,
        );
        put(
            r,
            "home/alice/work/app/.mcp.json",
            r#"{"mcpServers": {"p": {"command": "p"}}}"#,
        );
        let options = machine(r);
        let found = discovery::scan(&options);
        let dirs = watch_dirs(&options, &found);
        let project = dunce::canonicalize(r.join("home/alice/work/app")).unwrap();
        assert!(
            dirs.iter()
                .any(|d| dunce::canonicalize(d).is_ok_and(|d| d == project)),
            "{dirs:?}"
        );
    }
}
