//! Helpers the unit tests share: a machine tree written file by file, and the scan
//! options for it.

use std::path::Path;

use crate::discovery::catalog::Os;
use crate::discovery::{ScanOptions, Target};

/// Write `text` at `rel` below `root`, making the directories.
pub fn put(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Scan options for the Linux machine tree at `r`, every user.
pub fn machine(r: &Path) -> ScanOptions {
    ScanOptions {
        os: Os::Linux,
        target: Target::Root {
            root: r.to_path_buf(),
            user: None,
        },
        project_roots: vec![],
        project_depth: 1,
    }
}
