//! Reading a config file from a user's home, which the user controls. Running as root,
//! that is an attack surface: the path may be a symlink to `/etc/shadow`, a FIFO that
//! blocks forever, or a huge file. This reader follows a symlink only to a regular file
//! owned by the home's owner, opens without blocking, refuses anything that is not a
//! regular file, caps the size, and never puts file contents into an error.

use std::fs::{File, OpenOptions};
use std::io::Read as _;
use std::path::Path;

/// The largest config file read.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// Why a file that exists was not read. Messages name the reason, never the contents.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReadError {
    #[error("not a regular file")]
    NotRegular,
    #[error("symbolic link to a file not owned by the user")]
    ForeignLink,
    #[error("larger than {MAX_CONFIG_BYTES} bytes")]
    TooLarge,
    #[error("not valid UTF-8")]
    NotUtf8,
    #[error("cannot be read: {0}")]
    Io(String),
}

/// Read `path` if it exists. `owner` is the uid that owns the home (Unix); a symlink
/// must lead to a file of that owner.
pub fn read_config(path: &Path, owner: Option<u32>) -> Result<Option<String>, ReadError> {
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
    if is_link && !owned_by(&meta, owner) {
        return Err(ReadError::ForeignLink);
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

#[cfg(unix)]
fn owned_by(meta: &std::fs::Metadata, owner: Option<u32>) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    owner.is_none_or(|uid| meta.uid() == uid)
}

#[cfg(not(unix))]
fn owned_by(_meta: &std::fs::Metadata, _owner: Option<u32>) -> bool {
    true
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

    #[test]
    fn regular_files_are_read_and_missing_ones_are_none() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.json");
        std::fs::write(&f, "{}").unwrap();
        assert_eq!(read_config(&f, None).unwrap().as_deref(), Some("{}"));
        assert_eq!(
            read_config(&dir.path().join("missing"), None).unwrap(),
            None
        );
        assert_eq!(read_config(dir.path(), None), Err(ReadError::NotRegular));
    }

    #[test]
    fn oversized_and_binary_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.json");
        std::fs::write(&big, vec![b' '; (MAX_CONFIG_BYTES + 1) as usize]).unwrap();
        assert_eq!(read_config(&big, None), Err(ReadError::TooLarge));
        let bin = dir.path().join("bin.json");
        std::fs::write(&bin, [0xff, 0xfe, 0x00]).unwrap();
        assert_eq!(read_config(&bin, None), Err(ReadError::NotUtf8));
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
        assert_eq!(read_config(&fifo, None), Err(ReadError::NotRegular));
        let link = dir.path().join("fifo-link.json");
        std::os::unix::fs::symlink(&fifo, &link).unwrap();
        assert_eq!(read_config(&link, None), Err(ReadError::NotRegular));

        let target = dir.path().join("real.json");
        std::fs::write(&target, "{}").unwrap();
        let mine = std::fs::metadata(&target).unwrap().uid();
        let ok_link = dir.path().join("ok-link.json");
        std::os::unix::fs::symlink(&target, &ok_link).unwrap();
        assert_eq!(
            read_config(&ok_link, Some(mine)).unwrap().as_deref(),
            Some("{}")
        );
        assert_eq!(
            read_config(&ok_link, Some(mine + 1)),
            Err(ReadError::ForeignLink)
        );
        let dangling = dir.path().join("dangling.json");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        assert_eq!(read_config(&dangling, Some(mine)).unwrap(), None);
    }
}
