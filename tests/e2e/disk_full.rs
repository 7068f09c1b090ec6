//! The disk holding the database fills up, then space comes back: the collector
//! refuses writes with a clear 507 while reads and liveness go on, says it is not
//! ready, and recovers by itself when space returns, with nothing acknowledged lost.
//!
//! Needs a small filesystem of its own: a tmpfs mounted by the test, as root (CI runs
//! as root). Skipped, saying so, where mounting is not allowed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mcpwatch_tests::{TestCollector, agent_server, eventually};
use serde_json::json;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then_some(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn free_bytes(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(self.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fill the filesystem until `leave` bytes are free.
fn fill(fs: &Tmpfs, leave: u64) -> PathBuf {
    let filler = fs.path().join("filler");
    let size = fs.free_bytes().saturating_sub(leave);
    let file = std::fs::File::create(&filler).unwrap();
    file.set_len(0).unwrap();
    // Real blocks (a sparse file would not take the space).
    let chunk = vec![0u8; 1 << 20];
    let mut left = size;
    let mut w = std::io::BufWriter::new(file);
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        if std::io::Write::write_all(&mut w, &chunk[..n]).is_err() {
            break;
        }
        left -= n as u64;
    }
    let _ = std::io::Write::flush(&mut w);
    filler
}

#[test]
fn a_full_disk_refuses_writes_keeps_reads_and_recovers_without_a_restart() {
    mcpwatch_tests::redb_only!();
    let Some(fs) = Tmpfs::mount("160m") else {
        eprintln!("skipped: mounting a tmpfs is not allowed here (needs root); CI runs it as root");
        return;
    };
    let data = fs.path().join("data");
    let mut c = TestCollector::start(&["--data-dir", data.to_str().unwrap()]);
    c.register("admin@acme.example", "AdminPass123!", "Acme");
    let admin = c.token("admin@acme.example", "AdminPass123!");
    let (_, key) = c.create_agent(&admin, "laptop");
    let report =
        |name: &str| json!({ "servers": [agent_server(name, "uvx", &["mcp-server-time==1.0.0"])] });
    assert_eq!(
        c.agent_call("/mcp/report", &key, None, &report("before")).0,
        200
    );

    // The disk fills (less free than the collector's reserve).
    let filler = fill(&fs, 8 * 1024 * 1024);
    let (status, body) = c.agent_call("/mcp/report", &key, None, &report("during"));
    assert_eq!(status, 507, "{body}");
    assert_eq!(body["error"]["code"], "storage_full");
    // Reads go on; the process is alive but not ready.
    let (status, page) = c.get("/mcp/servers", &admin);
    assert_eq!(status, 200);
    assert_eq!(page["total"], 1);
    assert_eq!(c.get("/health/live", &admin).0, 200);
    assert_eq!(c.get("/health/ready", &admin).0, 503);
    // A login needs a write (its session): refused clearly, not a 500.
    let (status, body) = c.login("admin@acme.example", "AdminPass123!");
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (507, json!("storage_full")),
        "{body}"
    );

    // Space comes back: writes resume by themselves, nothing acknowledged was lost.
    std::fs::remove_file(&filler).unwrap();
    eventually(Duration::from_secs(10), "writes to resume", || {
        (c.agent_call("/mcp/report", &key, None, &report("after")).0 == 200).then_some(())
    });
    assert_eq!(c.get("/health/ready", &admin).0, 200);
    let (_, page) = c.get("/mcp/servers?page_size=100", &admin);
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["server_name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"before") && names.contains(&"after"),
        "{names:?}"
    );
    assert!(
        c.log().contains("disk holding the database is full"),
        "{}",
        c.log()
    );
    // And after a restart too.
    c.restart();
    assert_eq!(c.login("admin@acme.example", "AdminPass123!").0, 200);
}
