//! Reading a config file from a user's home, which the user controls. Running as root,
//! that is an attack surface: the path may be a symlink to `/etc/shadow`, a symlinked
//! directory into another user's home, a hard link to another user's file, a FIFO
//! that blocks forever, or a huge file. The user's [`Ground`] is what they own: this
//! reader opens without blocking, refuses anything that is not a regular file, refuses
//! a file owned by anyone else (root's own files are accepted only where no link was
//! followed and the file has no other name), and when a link was followed anywhere on
//! the way (file or directory) it checks what was really opened: the same file as the
//! resolved path, every directory of which belongs to the user or to root. It caps the
//! size and never puts file contents into an error.

use std::fs::{File, OpenOptions};
use std::io::Read as _;
use std::path::{Path, PathBuf};

/// The largest config file read.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// Why a file that exists was not read. Messages name the reason, never the contents.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReadError {
    #[error("not a regular file")]
    NotRegular,
    #[error("symbolic link to a file not owned by the user")]
    ForeignLink,
    #[error("symbolic link into a directory of another user")]
    ForeignDir,
    #[error("owned by another user")]
    ForeignFile,
    #[error("changed while it was read")]
    Raced,
    #[error("larger than {MAX_CONFIG_BYTES} bytes")]
    TooLarge,
    #[error("not valid UTF-8")]
    NotUtf8,
    #[error("cannot be read: {0}")]
    Io(String),
}

/// Whose files these are: the directory the user's paths start from (their home, or
/// a project directory of theirs) and the uid that owns it. No owner (Windows, or
/// machine-wide files read as root) means no ownership checks.
#[derive(Clone, Copy, Debug)]
pub struct Ground<'a> {
    pub base: &'a Path,
    pub owner: Option<u32>,
}

impl<'a> Ground<'a> {
    /// `base` and its owner.
    pub fn of(base: &'a Path) -> Self {
        Self {
            base,
            owner: owner_of(base),
        }
    }
}

/// Read `path` if it exists, as a file on `ground`.
pub fn read_config(path: &Path, ground: Ground<'_>) -> Result<Option<String>, ReadError> {
    let link = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ReadError::Io(e.kind().to_string())),
    };
    let is_link = link.file_type().is_symlink();
    if !is_link && !link.file_type().is_file() {
        return Err(ReadError::NotRegular);
    }
    let file = match open_nonblocking(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None), // dangling link
        Err(e) => return Err(ReadError::Io(e.kind().to_string())),
    };
    // Check what was opened, not what the path names now.
    let meta = file
        .metadata()
        .map_err(|e| ReadError::Io(e.kind().to_string()))?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular);
    }
    if let Some(uid) = ground.owner {
        let linked = is_link || link_on_the_way(ground.base, path);
        if !file_owned(&meta, uid, linked) {
            return Err(if is_link {
                ReadError::ForeignLink
            } else if linked {
                ReadError::ForeignDir
            } else {
                ReadError::ForeignFile
            });
        }
        if linked {
            let real =
                dunce::canonicalize(path).map_err(|e| ReadError::Io(e.kind().to_string()))?;
            let real_meta =
                std::fs::metadata(&real).map_err(|e| ReadError::Io(e.kind().to_string()))?;
            if !same_file(&meta, &real_meta) {
                return Err(ReadError::Raced);
            }
            if !dirs_owned(&real, uid) {
                return Err(ReadError::ForeignDir);
            }
        }
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(ReadError::TooLarge);
    }
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ReadError::Io(e.kind().to_string()))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ReadError::TooLarge);
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| ReadError::NotUtf8)
}

/// Whether a directory between `base` and `path` is a symbolic link (a path outside
/// `base` counts as linked: it is checked like one).
fn link_on_the_way(base: &Path, path: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(base) else {
        return true;
    };
    let mut at = base.to_path_buf();
    let mut components = rel.components().peekable();
    while let Some(c) = components.next() {
        if components.peek().is_none() {
            break; // the file itself is checked by the caller
        }
        at.push(c);
        if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            return true;
        }
    }
    false
}

/// A directory a user may keep configs in, resolved: `Some(real path)` when it exists
/// and it and every directory above it belong to `owner` or to root.
pub fn own_dir(dir: &Path, owner: Option<u32>) -> Option<PathBuf> {
    let real = dunce::canonicalize(dir).ok()?;
    if !std::fs::metadata(&real).is_ok_and(|m| m.is_dir()) {
        return None;
    }
    match owner {
        Some(uid) if !dirs_owned_including(&real, uid) => None,
        _ => Some(real),
    }
}

#[cfg(unix)]
fn file_owned(meta: &std::fs::Metadata, uid: u32, linked: bool) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    meta.uid() == uid || (!linked && meta.uid() == 0 && meta.nlink() == 1)
}

#[cfg(not(unix))]
fn file_owned(_meta: &std::fs::Metadata, _uid: u32, _linked: bool) -> bool {
    true
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_a: &std::fs::Metadata, _b: &std::fs::Metadata) -> bool {
    true
}

/// Every directory above the resolved file `real` belongs to `uid` or to root.
fn dirs_owned(real: &Path, uid: u32) -> bool {
    real.parent()
        .is_none_or(|dir| dirs_owned_including(dir, uid))
}

#[cfg(unix)]
fn dirs_owned_including(real_dir: &Path, uid: u32) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    real_dir
        .ancestors()
        .all(|d| std::fs::metadata(d).is_ok_and(|m| m.uid() == uid || m.uid() == 0))
}

#[cfg(not(unix))]
fn dirs_owned_including(_real_dir: &Path, _uid: u32) -> bool {
    true
}

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().read(true).open(path)
}

/// The uid owning `dir` (Unix), used as the owner of the files inside it.
pub fn owner_of(dir: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata(dir).ok().map(|m| m.uid())
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(base: &Path) -> Ground<'_> {
        Ground { base, owner: None }
    }

    fn owned(base: &Path, uid: u32) -> Ground<'_> {
        Ground {
            base,
            owner: Some(uid),
        }
    }

    #[test]
    fn regular_files_are_read_and_missing_ones_are_none() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.json");
        std::fs::write(&f, "{}").unwrap();
        assert_eq!(
            read_config(&f, open(dir.path())).unwrap().as_deref(),
            Some("{}")
        );
        assert_eq!(
            read_config(&dir.path().join("missing"), open(dir.path())).unwrap(),
            None
        );
        assert_eq!(
            read_config(dir.path(), open(dir.path())),
            Err(ReadError::NotRegular)
        );
    }

    #[test]
    fn oversized_and_binary_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.json");
        std::fs::write(&big, vec![b' '; (MAX_CONFIG_BYTES + 1) as usize]).unwrap();
        assert_eq!(
            read_config(&big, open(dir.path())),
            Err(ReadError::TooLarge)
        );
        let bin = dir.path().join("bin.json");
        std::fs::write(&bin, [0xff, 0xfe, 0x00]).unwrap();
        assert_eq!(read_config(&bin, open(dir.path())), Err(ReadError::NotUtf8));
    }

    #[cfg(unix)]
    #[test]
    fn fifos_do_not_block_and_foreign_symlinks_are_refused() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.json");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path; test-only.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
        assert_eq!(rc, 0);
        assert_eq!(
            read_config(&fifo, open(dir.path())),
            Err(ReadError::NotRegular)
        );
        let link = dir.path().join("fifo-link.json");
        std::os::unix::fs::symlink(&fifo, &link).unwrap();
        assert_eq!(
            read_config(&link, open(dir.path())),
            Err(ReadError::NotRegular)
        );

        let target = dir.path().join("real.json");
        std::fs::write(&target, "{}").unwrap();
        let mine = std::fs::metadata(&target).unwrap().uid();
        let ok_link = dir.path().join("ok-link.json");
        std::os::unix::fs::symlink(&target, &ok_link).unwrap();
        assert_eq!(
            read_config(&ok_link, owned(dir.path(), mine))
                .unwrap()
                .as_deref(),
            Some("{}")
        );
        assert_eq!(
            read_config(&ok_link, owned(dir.path(), mine + 1)),
            Err(ReadError::ForeignLink)
        );
        let dangling = dir.path().join("dangling.json");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        assert_eq!(
            read_config(&dangling, owned(dir.path(), mine)).unwrap(),
            None
        );
    }
}
