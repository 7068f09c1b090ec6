//! What the agent tells the collector about its machine: host name, OS name and
//! version, kernel, architecture, boot time (from `sysinfo`), the hardware's maker,
//! model, serial number and UUID where the OS shows them to the agent (root, on
//! Linux: `/sys/class/dmi/id`), and the machine's human users. Read when a heartbeat
//! is due, in microseconds: no process table, no disk walk.

use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use mcpwatch_protocol::wire::MachineFacts;
use sha2::{Digest, Sha256};
use sysinfo::{Product, System};

use crate::discovery::catalog::Os;
use crate::discovery::users;

/// Hardware fields that mean "the maker did not fill this in".
const FILLER: &[&str] = &[
    "",
    "default string",
    "to be filled by o.e.m.",
    "system product name",
    "system serial number",
    "not specified",
    "none",
    "0",
    "123456789",
    "03000200-0400-0500-0006-000700080009",
];

fn real(value: Result<String, sysinfo::Error>) -> Option<String> {
    let value = value.ok()?;
    let trimmed = value.trim();
    let filler = FILLER.contains(&trimmed.to_ascii_lowercase().as_str())
        || trimmed.chars().all(|c| c == 'f' || c == 'F' || c == '-');
    (!filler).then(|| crate::printable::cell(trimmed, 128))
}

/// The facts of the machine the agent runs on; `root` is the filesystem root whose
/// users are counted (the scan root).
pub fn machine_facts(os: Os, root: &Path) -> MachineFacts {
    let boot_time = System::boot_time()
        .ok()
        .filter(|&secs| secs > 0)
        .and_then(|secs| DateTime::<Utc>::from_timestamp(i64::try_from(secs).ok()?, 0))
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true));
    let mut human: Vec<String> = users::enumerate(os, root)
        .into_iter()
        .map(|u| crate::printable::cell(&u.name, 64))
        .collect();
    human.truncate(200);
    MachineFacts {
        os_name: real(System::long_os_version()),
        kernel_version: real(System::kernel_version()),
        arch: Some(System::cpu_arch()).filter(|a| !a.is_empty()),
        hardware_vendor: real(Product::vendor_name()),
        hardware_model: real(Product::name()),
        hardware_serial: real(Product::serial_number()),
        machine_id: real(Product::uuid()),
        boot_time,
        users: Some(human),
        ip_address: None,
    }
}

/// The OS version alone (`"24.04"`, `"15.2"`), for the seed's `os_version` field.
pub fn os_version() -> Option<String> {
    real(System::os_version())
}

/// A stable hash of the facts: heartbeats carry them only when it changes.
pub fn facts_hash(facts: &MachineFacts) -> String {
    let bytes = serde_json::to_vec(facts).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_has_facts_and_filler_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let facts = machine_facts(Os::current(), dir.path());
        assert!(facts.arch.is_some());
        assert!(facts.kernel_version.is_some() || cfg!(windows));
        assert_eq!(facts.users, Some(Vec::new()));
        assert_eq!(real(Ok("To Be Filled By O.E.M.".into())), None);
        assert_eq!(
            real(Ok("FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF".into())),
            None
        );
        assert_eq!(real(Ok(" 20AN \n".into())).as_deref(), Some("20AN"));
        assert_eq!(facts_hash(&facts), facts_hash(&facts.clone()));
    }
}
