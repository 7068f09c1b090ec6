//! Backups, restores, consistency checks and compaction, for operators.
//!
//! A backup is a tar file holding `mcpwatch.redb` (a consistent snapshot: one read
//! transaction copied into a new database), `token-signing.key` and `manifest.json`.
//! While a collector runs, the `backup` and `check` commands ask it over its control
//! socket (`control.sock` in the data dir, owner-only, Unix): it takes the snapshot
//! and streams it back, and keeps serving. With no collector running they open the
//! database read-only themselves. `restore` and `compact` need the collector stopped.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::auth::tokens::KEY_FILE;
use crate::store::redb::DB_FILE;
use crate::store::redb::maintenance::{self, OfflineError};

/// The control socket's file name in the data dir.
pub const CONTROL_SOCKET: &str = "control.sock";
const MANIFEST: &str = "manifest.json";

/// Why an upkeep command failed.
#[derive(Debug, thiserror::Error)]
pub enum UpkeepError {
    #[error("{0}")]
    Refused(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the running collector answered: {0}")]
    Collector(String),
    #[error(
        "the running collector closed the connection without answering (it may have stopped meanwhile)"
    )]
    NoAnswer,
    #[error("{0}")]
    Database(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> UpkeepError {
    let what = what.into();
    move |source| UpkeepError::Io { what, source }
}

/// What the control socket answers before any bytes.
#[derive(Serialize, Deserialize)]
struct Answer {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    rows: u64,
    #[serde(default)]
    bytes: u64,
    #[serde(default)]
    problems: Vec<String>,
    /// `check`: the tables and their sizes.
    #[serde(default)]
    space: Vec<crate::store::TableSpace>,
}

#[derive(Serialize, Deserialize)]
struct Manifest {
    format: u32,
    collector_version: String,
    created_at: chrono::DateTime<chrono::Utc>,
    rows: u64,
}

/// A file only its owner may read, created new.
fn private_file(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)
}

/// A name beside `path` for work in progress.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// `backup`: a snapshot of the database and the signing key into `output` (written
/// under a temporary name, renamed at the end). Answers the rows copied.
pub fn backup(data_dir: &Path, output: &Path) -> Result<u64, UpkeepError> {
    if output.exists() {
        return Err(UpkeepError::Refused(format!(
            "{} already exists; choose a new name",
            output.display()
        )));
    }
    let snapshot = beside(output, ".db.partial");
    let _ = fs::remove_file(&snapshot);
    let rows = match maintenance::snapshot_offline(data_dir, &snapshot) {
        Ok(rows) => rows,
        Err(e) if e.contains("running mcpwatch-collector") => {
            let _ = fs::remove_file(&snapshot);
            fetch_snapshot(data_dir, &snapshot)?
        }
        Err(e) => {
            let _ = fs::remove_file(&snapshot);
            return Err(UpkeepError::Database(e));
        }
    };
    let result = archive(data_dir, &snapshot, output, rows);
    let _ = fs::remove_file(&snapshot);
    result.map(|()| rows)
}

fn archive(data_dir: &Path, snapshot: &Path, output: &Path, rows: u64) -> Result<(), UpkeepError> {
    let partial = beside(output, ".partial");
    let _ = fs::remove_file(&partial);
    let file = private_file(&partial).map_err(io(format!("creating {}", partial.display())))?;
    let mut tar = tar::Builder::new(file);
    let written = (|| -> std::io::Result<File> {
        tar.append_path_with_name(snapshot, DB_FILE)?;
        tar.append_path_with_name(data_dir.join(KEY_FILE), KEY_FILE)?;
        let manifest = serde_json::to_vec_pretty(&Manifest {
            format: 1,
            collector_version: env!("CARGO_PKG_VERSION").to_owned(),
            created_at: chrono::Utc::now(),
            rows,
        })?;
        let mut header = tar::Header::new_gnu();
        header.set_size(manifest.len() as u64);
        header.set_mode(0o600);
        header.set_cksum();
        tar.append_data(&mut header, MANIFEST, manifest.as_slice())?;
        tar.into_inner()
    })();
    let done = written
        .and_then(|f| f.sync_all())
        .and_then(|()| fs::rename(&partial, output));
    if let Err(e) = done {
        let _ = fs::remove_file(&partial);
        return Err(io(format!("writing {}", output.display()))(e));
    }
    Ok(())
}

/// Ask the running collector for a snapshot, into `into`.
#[cfg(unix)]
fn fetch_snapshot(data_dir: &Path, into: &Path) -> Result<u64, UpkeepError> {
    let (answer, mut stream) = ask(data_dir, "backup")?;
    let mut file = private_file(into).map_err(io(format!("creating {}", into.display())))?;
    let copied = std::io::copy(&mut (&mut stream).take(answer.bytes), &mut file)
        .map_err(io("receiving the snapshot"))?;
    if copied != answer.bytes {
        return Err(UpkeepError::Collector(format!(
            "the snapshot ended after {copied} of {} bytes",
            answer.bytes
        )));
    }
    file.sync_all().map_err(io("writing the snapshot"))?;
    Ok(answer.rows)
}

#[cfg(not(unix))]
fn fetch_snapshot(_data_dir: &Path, _into: &Path) -> Result<u64, UpkeepError> {
    Err(UpkeepError::Refused(
        "the collector is running: on this system a backup needs it stopped".into(),
    ))
}

/// Send `command` over the control socket; answers the header and the stream (for
/// what follows it).
#[cfg(unix)]
fn ask(
    data_dir: &Path,
    command: &str,
) -> Result<(Answer, BufReader<std::os::unix::net::UnixStream>), UpkeepError> {
    let path = data_dir.join(CONTROL_SOCKET);
    let mut stream = std::os::unix::net::UnixStream::connect(&path).map_err(io(format!(
        "the collector is running but its control socket {} cannot be reached",
        path.display()
    )))?;
    stream
        .write_all(format!("{command}\n").as_bytes())
        .map_err(io("asking the collector"))?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(io("reading the collector's answer"))?;
    if line.is_empty() {
        return Err(UpkeepError::NoAnswer);
    }
    let answer: Answer = serde_json::from_str(&line).map_err(|_| {
        UpkeepError::Collector(format!("an answer that is not JSON: {:?}", line.trim()))
    })?;
    if !answer.ok {
        return Err(UpkeepError::Collector(answer.error.unwrap_or_default()));
    }
    Ok((answer, reader))
}

/// `check`: what is inconsistent in the database (nothing when it is consistent).
pub fn check(data_dir: &Path) -> Result<Checked, UpkeepError> {
    match maintenance::check_with_space_offline(data_dir) {
        Ok((problems, space)) => Ok(Checked { problems, space }),
        #[cfg(unix)]
        Err(e) if e.contains("running mcpwatch-collector") => {
            let answer = ask(data_dir, "check")?.0;
            Ok(Checked {
                problems: answer.problems,
                space: answer.space,
            })
        }
        Err(e) => Err(UpkeepError::Database(e)),
    }
}

/// What `check` found: what disagrees (nothing when consistent), and the tables with
/// their sizes.
pub struct Checked {
    pub problems: Vec<String>,
    pub space: Vec<crate::store::TableSpace>,
}

/// `compact`: give the database's free pages back (collector stopped).
pub fn compact(data_dir: &Path) -> Result<(u64, u64), UpkeepError> {
    let path = data_dir.join(DB_FILE);
    let before = fs::metadata(&path)
        .map_err(io(format!("reading {}", path.display())))?
        .len();
    maintenance::compact_offline(data_dir).map_err(UpkeepError::Database)?;
    let after = fs::metadata(&path)
        .map_err(io(format!("reading {}", path.display())))?
        .len();
    Ok((before, after))
}

/// `restore`: the backup `input` into `data_dir`, which must hold no database or key
/// unless `force`; the collector must be stopped. The restored database is checked
/// before it replaces anything.
pub fn restore(input: &Path, data_dir: &Path, force: bool) -> Result<u64, UpkeepError> {
    let existing: Vec<&str> = [DB_FILE, KEY_FILE]
        .into_iter()
        .filter(|f| data_dir.join(f).exists())
        .collect();
    if !existing.is_empty() && !force {
        return Err(UpkeepError::Refused(format!(
            "{} already holds {}: restoring would replace them; pass --force to do so",
            data_dir.display(),
            existing.join(" and ")
        )));
    }
    if matches!(
        maintenance::open_read_only(data_dir),
        Err(OfflineError::Running(_))
    ) {
        return Err(UpkeepError::Refused(
            "a collector is running on this data dir; stop it first".into(),
        ));
    }
    crate::cli::create_data_dir(data_dir)
        .map_err(io(format!("creating {}", data_dir.display())))?;
    let staging = data_dir.join(".restore");
    let _ = fs::remove_dir_all(&staging);
    crate::cli::create_data_dir(&staging).map_err(io(format!("creating {}", staging.display())))?;
    let result = unpack(input, &staging).and_then(|manifest| {
        let problems = maintenance::check_offline(&staging).map_err(UpkeepError::Database)?;
        if !problems.is_empty() {
            return Err(UpkeepError::Database(format!(
                "the backup's database is not consistent: {}",
                problems.join("; ")
            )));
        }
        for name in [KEY_FILE, DB_FILE] {
            let target = data_dir.join(name);
            fs::rename(staging.join(name), &target)
                .map_err(io(format!("moving {name} into place")))?;
            same_owner_as(data_dir, &target)
                .map_err(io(format!("giving {name} to the data dir's owner")))?;
        }
        Ok(manifest.rows)
    });
    let _ = fs::remove_dir_all(&staging);
    result
}

/// Give `file` the owner of `dir` (a restore run as root into the service's data dir
/// leaves files the service can read).
#[cfg(unix)]
fn same_owner_as(dir: &Path, file: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let owner = fs::metadata(dir)?;
    let current = fs::metadata(file)?;
    if (current.uid(), current.gid()) == (owner.uid(), owner.gid()) {
        return Ok(());
    }
    std::os::unix::fs::chown(file, Some(owner.uid()), Some(owner.gid()))
}

#[cfg(not(unix))]
fn same_owner_as(_dir: &Path, _file: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Read the backup's three files into `dir`; nothing else in the archive is written
/// anywhere.
fn unpack(input: &Path, dir: &Path) -> Result<Manifest, UpkeepError> {
    let file = File::open(input).map_err(io(format!("opening {}", input.display())))?;
    let mut archive = tar::Archive::new(file);
    let mut manifest = None;
    let mut found = Vec::new();
    for entry in archive
        .entries()
        .map_err(io(format!("reading {}", input.display())))?
    {
        let mut entry = entry.map_err(io(format!("reading {}", input.display())))?;
        let name = entry
            .path()
            .map_err(io("reading an entry's name"))?
            .to_string_lossy()
            .into_owned();
        match name.as_str() {
            DB_FILE | KEY_FILE => {
                let mut out =
                    private_file(&dir.join(&name)).map_err(io(format!("writing {name}")))?;
                std::io::copy(&mut entry, &mut out).map_err(io(format!("writing {name}")))?;
                out.sync_all().map_err(io(format!("writing {name}")))?;
                found.push(name);
            }
            MANIFEST => {
                let mut text = String::new();
                entry
                    .read_to_string(&mut text)
                    .map_err(io("reading the manifest"))?;
                manifest = serde_json::from_str::<Manifest>(&text).ok();
            }
            other => {
                return Err(UpkeepError::Refused(format!(
                    "{} is not an mcpwatch backup: it holds {other:?}",
                    input.display()
                )));
            }
        }
    }
    let manifest = manifest.ok_or_else(|| {
        UpkeepError::Refused(format!(
            "{} is not an mcpwatch backup: no manifest",
            input.display()
        ))
    })?;
    if found.len() != 2 {
        return Err(UpkeepError::Refused(format!(
            "{} is incomplete: it lacks the database or the signing key",
            input.display()
        )));
    }
    Ok(manifest)
}

/// Serve the control socket beside the database until the process ends: `backup`
/// (a snapshot, streamed) and `check`. Only the data dir's owner can reach it.
#[cfg(unix)]
pub async fn control(state: crate::state::SharedState) {
    use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
    let path = state.settings.data_dir.join(CONTROL_SOCKET);
    let _ = fs::remove_file(&path);
    let listener = match tokio::net::UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "No control socket: backups and checks need the collector stopped.");
            return;
        }
    };
    {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o600));
    }
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            // A command is a word: a longer line is not read past 64 bytes.
            let mut reader = tokio::io::BufReader::new(read.take(64));
            if reader.read_line(&mut line).await.is_err() {
                return;
            }
            let (answer, file) = run_command(&state, line.trim()).await;
            let mut head = serde_json::to_vec(&answer).unwrap_or_default();
            head.push(b'\n');
            if write.write_all(&head).await.is_err() {
                return;
            }
            if let Some(file) = file {
                if let Ok(mut f) = tokio::fs::File::open(&file).await {
                    let _ = tokio::io::copy(&mut f, &mut write).await;
                }
                let _ = fs::remove_file(&file);
            }
            let _ = write.shutdown().await;
        });
    }
}

#[cfg(unix)]
async fn run_command(
    state: &crate::state::SharedState,
    command: &str,
) -> (Answer, Option<PathBuf>) {
    let failed = |error: String| Answer {
        ok: false,
        error: Some(error),
        rows: 0,
        bytes: 0,
        problems: Vec::new(),
        space: Vec::new(),
    };
    match command {
        "backup" => {
            let mut suffix = [0u8; 8];
            let _ = crate::auth::random_bytes(&mut suffix);
            let file = state
                .settings
                .data_dir
                .join(format!(".snapshot-{}.redb", hex::encode(suffix)));
            match state.store.snapshot(file.clone()).await {
                Ok(rows) => {
                    let bytes = fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
                    tracing::info!(rows, bytes, "Backup snapshot taken.");
                    (
                        Answer {
                            ok: true,
                            error: None,
                            rows,
                            bytes,
                            problems: Vec::new(),
                            space: Vec::new(),
                        },
                        Some(file),
                    )
                }
                Err(e) => {
                    let _ = fs::remove_file(&file);
                    (failed(format!("the snapshot failed: {e}")), None)
                }
            }
        }
        "check" => match (state.store.check().await, state.store.space().await) {
            (Ok(problems), Ok(space)) => (
                Answer {
                    ok: true,
                    error: None,
                    rows: 0,
                    bytes: 0,
                    problems,
                    space,
                },
                None,
            ),
            (Err(e), _) | (_, Err(e)) => (failed(format!("the check failed: {e}")), None),
        },
        other => (
            failed(format!("unknown command {other:?}; try backup or check")),
            None,
        ),
    }
}
