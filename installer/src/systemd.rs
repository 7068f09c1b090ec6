//! The agent's systemd unit. The deb ships `packaging/deb/agent/mcpwatch-agent.service`
//! as it is; a hand install writes the same unit with its own program path.

use std::path::Path;

/// The unit the deb ships.
pub const PACKAGED_UNIT: &str = include_str!("../../packaging/deb/agent/mcpwatch-agent.service");

/// The unit for the program at `binary` keeping its state in `state_dir`.
pub fn unit(binary: &Path, state_dir: &Path) -> String {
    PACKAGED_UNIT
        .replace(
            "ExecStart=/usr/bin/mcpwatch-agent run",
            &format!("ExecStart={} run", binary.display()),
        )
        .replace(
            "MCPWATCH_STATE_DIR=/var/lib/mcpwatch/agent",
            &format!("MCPWATCH_STATE_DIR={}", state_dir.display()),
        )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// `section.key` → values, as systemd reads a unit (comments and blanks skipped).
    fn parse(text: &str) -> BTreeMap<String, Vec<String>> {
        let mut section = String::new();
        let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_owned();
                continue;
            }
            let (key, value) = line.split_once('=').expect("key=value");
            keys.entry(format!("{section}.{key}"))
                .or_default()
                .push(value.to_owned());
        }
        keys
    }

    #[test]
    fn the_unit_runs_the_installed_program_hardened_and_enabled_at_boot() {
        let text = unit(
            Path::new("/usr/local/bin/mcpwatch-agent"),
            Path::new("/var/lib/mcpwatch/agent"),
        );
        let keys = parse(&text);
        let one = |k: &str| -> &str {
            let v = keys.get(k).unwrap_or_else(|| panic!("{k} missing"));
            assert_eq!(v.len(), 1, "{k} given more than once");
            &v[0]
        };
        assert_eq!(
            one("Service.ExecStart"),
            "/usr/local/bin/mcpwatch-agent run"
        );
        assert_eq!(
            one("Service.Environment"),
            "MCPWATCH_STATE_DIR=/var/lib/mcpwatch/agent"
        );
        assert_eq!(one("Service.StateDirectory"), "mcpwatch/agent");
        assert_eq!(one("Install.WantedBy"), "multi-user.target");
        assert_eq!(one("Service.RestartPreventExitStatus"), "78");
        for (key, expected) in [
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "read-only"),
            ("PrivateTmp", "yes"),
            ("CapabilityBoundingSet", "CAP_DAC_READ_SEARCH"),
            ("UMask", "0077"),
        ] {
            assert_eq!(one(&format!("Service.{key}")), expected, "{key}");
        }
        assert!(one("Unit.Description").contains("mcpwatch"));
    }

    #[test]
    fn the_packaged_unit_is_the_template_unchanged() {
        assert_eq!(
            unit(
                Path::new("/usr/bin/mcpwatch-agent"),
                Path::new("/var/lib/mcpwatch/agent")
            ),
            PACKAGED_UNIT
        );
    }
}
