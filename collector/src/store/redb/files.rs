//! The data dir and the database file: made only where none exists, and kept the
//! collector's alone.

use std::path::Path;

use redb::Database;

use super::OpenError;

/// Open the database file at `path`, or create it where no file exists. An existing
/// file that does not open (empty, truncated, damaged) is an error, never a fresh
/// start.
pub(super) fn open_or_create(path: &Path, cache_bytes: usize) -> Result<Database, OpenError> {
    let map = |source| match source {
        redb::DatabaseError::DatabaseAlreadyOpen => OpenError::InUse {
            path: path.to_path_buf(),
        },
        source => OpenError::Open {
            path: path.to_path_buf(),
            source,
        },
    };
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() == 0 => Err(OpenError::Empty {
            path: path.to_path_buf(),
        }),
        Ok(_) => open(path, cache_bytes).map_err(map),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            create(path).map_err(|e| OpenError::Permissions {
                path: path.to_path_buf(),
                message: format!("cannot create the database file: {e}"),
            })?;
            open(path, cache_bytes).map_err(map)
        }
        Err(e) => Err(OpenError::Permissions {
            path: path.to_path_buf(),
            message: format!("cannot read the database file: {e}"),
        }),
    }
}

fn open(path: &Path, cache_bytes: usize) -> Result<Database, redb::DatabaseError> {
    redb::Builder::new().set_cache_size(cache_bytes).open(path)
}

/// Make a new database under a temporary name and rename it once it is one, so a
/// crash here never leaves an empty file where the database belongs.
fn create(path: &Path) -> std::io::Result<()> {
    let creating = path.with_extension("redb.creating");
    let _ = std::fs::remove_file(&creating);
    create_private_file(&creating)?;
    drop(Database::create(&creating).map_err(std::io::Error::other)?);
    std::fs::rename(&creating, path)
}

/// The data dir and database file are the collector's alone: a data dir open to its
/// group or others is tightened to 0700 (and said so), the database file to 0600.
pub(super) fn owner_only(data_dir: &Path, db: &Path) -> Result<(), OpenError> {
    #[cfg(unix)]
    {
        tighten(data_dir, 0o700)?;
        tighten(db, 0o600)?;
    }
    #[cfg(not(unix))]
    let _ = (data_dir, db);
    Ok(())
}

#[cfg(unix)]
fn tighten(path: &Path, mode: u32) -> Result<(), OpenError> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(OpenError::Permissions {
                path: path.to_path_buf(),
                message: e.to_string(),
            });
        }
    };
    let current = meta.permissions().mode() & 0o777;
    if current & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| {
            OpenError::Permissions {
                path: path.to_path_buf(),
                message: format!(
                    "it is open to other users (mode {current:o}) and cannot be restricted to its owner: {e}"
                ),
            }
        })?;
        tracing::warn!(path = %path.display(), from = format!("{current:o}"), to = format!("{mode:o}"), "Access to the collector's data was open to other users; restricted to its owner.");
    }
    Ok(())
}

/// Create an empty file readable and writable by its owner only.
fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path).map(drop)
}
