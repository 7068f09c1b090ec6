//! The agent's launchd daemon definition (macOS): a property list in
//! `/Library/LaunchDaemons`, loaded with `launchctl bootstrap system`.

use std::path::Path;

use plist::{Dictionary, Value};

use crate::LAUNCHD_LABEL;

/// The daemon plist for the program at `binary`, as XML.
pub fn plist(binary: &Path, config_file: &Path, state_dir: &Path, log_file: &Path) -> Vec<u8> {
    let path = |p: &Path| Value::String(p.to_string_lossy().into_owned());
    let mut env = Dictionary::new();
    env.insert("MCPWATCH_STATE_DIR".into(), path(state_dir));
    env.insert("MCPWATCH_CONFIG".into(), path(config_file));
    let mut keep_alive = Dictionary::new();
    // Restart after a crash, not after a clean stop.
    keep_alive.insert("SuccessfulExit".into(), Value::Boolean(false));
    let mut dict = Dictionary::new();
    dict.insert("Label".into(), Value::String(LAUNCHD_LABEL.into()));
    dict.insert(
        "ProgramArguments".into(),
        Value::Array(vec![path(binary), Value::String("run".into())]),
    );
    dict.insert("EnvironmentVariables".into(), Value::Dictionary(env));
    dict.insert("RunAtLoad".into(), Value::Boolean(true));
    dict.insert("KeepAlive".into(), Value::Dictionary(keep_alive));
    // An agent that exits because it is not enrolled or was revoked is tried again
    // at most this often (launchd has no "do not restart on this exit code").
    dict.insert("ThrottleInterval".into(), Value::Integer(60.into()));
    dict.insert("ProcessType".into(), Value::String("Background".into()));
    dict.insert("Umask".into(), Value::Integer(0o077.into()));
    dict.insert("StandardOutPath".into(), path(log_file));
    dict.insert("StandardErrorPath".into(), path(log_file));
    let mut xml = Vec::new();
    // Writing to memory cannot fail.
    let _ = Value::Dictionary(dict).to_writer_xml(&mut xml);
    xml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plist_parses_and_has_what_launchd_needs() {
        let xml = plist(
            Path::new("/usr/local/bin/mcpwatch-agent"),
            Path::new("/Library/Application Support/mcpwatch/agent.toml"),
            Path::new("/Library/Application Support/mcpwatch/state"),
            Path::new("/Library/Logs/mcpwatch/agent.log"),
        );
        let text = String::from_utf8(xml.clone()).unwrap();
        assert!(text.contains("<!DOCTYPE plist"), "{text}");
        let value = Value::from_reader_xml(xml.as_slice()).unwrap();
        let dict = value.as_dictionary().unwrap();
        assert_eq!(
            dict.get("Label").and_then(Value::as_string),
            Some("dev.mcpwatch.agent")
        );
        let args: Vec<&str> = dict
            .get("ProgramArguments")
            .and_then(Value::as_array)
            .unwrap()
            .iter()
            .filter_map(Value::as_string)
            .collect();
        assert_eq!(args, ["/usr/local/bin/mcpwatch-agent", "run"]);
        assert_eq!(
            dict.get("RunAtLoad").and_then(Value::as_boolean),
            Some(true)
        );
        let keep_alive = dict
            .get("KeepAlive")
            .and_then(Value::as_dictionary)
            .unwrap();
        assert_eq!(
            keep_alive.get("SuccessfulExit").and_then(Value::as_boolean),
            Some(false)
        );
        let env = dict
            .get("EnvironmentVariables")
            .and_then(Value::as_dictionary)
            .unwrap();
        assert_eq!(
            env.get("MCPWATCH_STATE_DIR").and_then(Value::as_string),
            Some("/Library/Application Support/mcpwatch/state")
        );
        assert_eq!(
            dict.get("StandardErrorPath").and_then(Value::as_string),
            Some("/Library/Logs/mcpwatch/agent.log")
        );
        assert_eq!(
            dict.get("Umask").and_then(Value::as_unsigned_integer),
            Some(0o077)
        );
    }
}
