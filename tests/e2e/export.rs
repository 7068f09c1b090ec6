//! `GET /mcp/servers/export`: CSV with hostile names defused, JSON, and a CycloneDX
//! 1.6 document that an independent validator (`cyclonedx-python-lib` from PyPI)
//! accepts; the list filters apply; one organisation never exports another's; a large
//! inventory streams in constant memory.

use std::io::Read as _;
use std::process::Command;
use std::time::Duration;

use mcpwatch_tests::{TestCollector, agent_server, python_with};
use serde_json::{Value, json};

fn export(c: &TestCollector, token: &str, query: &str) -> (u16, String, String) {
    let resp = c
        .request(
            reqwest::Method::GET,
            &format!("/mcp/servers/export?{query}"),
            Some(token),
        )
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, resp.text().unwrap())
}

const HOSTILE: [&str; 6] = [
    "=cmd|' /C calc'!A0",
    "+SUM(1,2)",
    "-2+3",
    "@HYPERLINK(\"http://evil.example\")",
    "comma, \"quote\"",
    "plain",
];

#[test]
fn exports_are_complete_filtered_defused_valid_and_per_organisation() {
    let (c, a, b) = TestCollector::with_two_organisations();
    let viewer = c.user_with_role(&a, "viewer@a.example", "viewer");
    let (_, key) = c.create_agent(&a, "laptop");
    let mut servers: Vec<Value> = HOSTILE
        .iter()
        .map(|name| agent_server(name, "uvx", &["mcp-server-time==0.6.2"]))
        .collect();
    servers.push(agent_server(
        "root-files",
        "npx",
        &["-y", "@modelcontextprotocol/server-filesystem", "/"],
    ));
    let mut remote = agent_server("remote", "", &[]);
    remote["url"] = json!("https://mcp.example.com/sse");
    remote["transport"] = json!("sse");
    servers.push(remote);
    let (status, body) = c.agent_call(
        "/mcp/report",
        &key,
        None,
        &json!({ "hostname": "alice-mbp", "servers": servers }),
    );
    assert_eq!(status, 200, "{body}");

    // CSV: a header and one row per server; formula cells defused; quotes survive.
    let (status, content_type, text) = export(&c, &viewer, "format=csv");
    assert_eq!(status, 200, "{text}");
    assert_eq!(content_type, "text/csv; charset=utf-8");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let name_at = header.iter().position(|h| h == "server_name").unwrap();
    let host_at = header.iter().position(|h| h == "hostname").unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), servers.len());
    let names: Vec<&str> = rows.iter().map(|r| &r[name_at]).collect();
    for hostile in &HOSTILE[..4] {
        assert!(
            names.contains(&format!("'{hostile}").as_str()),
            "{hostile} defused: {names:?}"
        );
    }
    assert!(names.contains(&"comma, \"quote\"") && names.contains(&"plain"));
    for row in &rows {
        assert!(
            !row.iter()
                .any(|cell| cell.starts_with(['=', '+', '-', '@'])),
            "{row:?}"
        );
        assert_eq!(&row[host_at], "alice-mbp");
    }

    // Filters apply.
    let (_, _, critical) = export(&c, &a, "format=csv&risk_level=critical");
    assert_eq!(
        csv::Reader::from_reader(critical.as_bytes())
            .records()
            .count(),
        1
    );
    let (_, _, searched) = export(&c, &a, "format=json&search=plain");
    assert_eq!(
        serde_json::from_str::<Value>(&searched)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // JSON: an array of every server.
    let (status, content_type, text) = export(&c, &a, "format=json");
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    let items: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(items.len(), servers.len());
    assert!(
        items
            .iter()
            .all(|s| s["hostname"] == "alice-mbp" && s["risk_level"].is_string())
    );

    // CycloneDX 1.6: services with risk as properties; valid by an independent validator.
    let (status, content_type, text) = export(&c, &a, "format=cyclonedx");
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/vnd.cyclonedx+json; version=1.6");
    let bom: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (bom["bomFormat"].as_str(), bom["specVersion"].as_str()),
        (Some("CycloneDX"), Some("1.6"))
    );
    let services = bom["services"].as_array().unwrap();
    assert_eq!(services.len(), servers.len());
    let root = services.iter().find(|s| s["name"] == "root-files").unwrap();
    let props = root["properties"].as_array().unwrap();
    assert!(
        props
            .iter()
            .any(|p| p["name"] == "mcpwatch:risk_level" && p["value"] == "critical")
    );
    assert!(props.iter().any(|p| p["name"] == "mcpwatch:finding"));
    let remote = services.iter().find(|s| s["name"] == "remote").unwrap();
    assert_eq!(remote["endpoints"], json!(["https://mcp.example.com/sse"]));
    match python_with(
        &["cyclonedx-python-lib[json-validation]>=8,<12"],
        "cyclonedx",
    ) {
        Some(python) => {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("bom.json");
            std::fs::write(&file, &text).unwrap();
            let out = Command::new(python)
                .args(["-c", "import sys\nfrom cyclonedx.validation.json import JsonStrictValidator\nfrom cyclonedx.schema import SchemaVersion\nerr = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1]).read())\nprint(err or 'valid')\nsys.exit(1 if err else 0)"])
                .arg(&file)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "CycloneDX 1.6 validation: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        None => eprintln!(
            "SKIPPED the CycloneDX schema check: cyclonedx-python-lib could not be installed from PyPI"
        ),
    }

    // Another organisation exports nothing of A's; bad input is a 400.
    let (_, _, theirs) = export(&c, &b, "format=json");
    assert_eq!(theirs, "[]");
    let (status, _, err) = export(&c, &a, "format=xlsx");
    assert_eq!(status, 400, "{err}");
    let (status, _, _) = export(&c, &a, "format=csv&risk_level=apocalyptic");
    assert_eq!(status, 400);
}

/// The collector's anonymous resident memory (heap, not the mapped database file).
fn anon_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_large_export_streams_in_constant_memory() {
    const AGENTS: usize = 3;
    const PER_AGENT: usize = 10_000;
    // A small page cache, so that what grows is what the export holds; reports large
    // enough that the export dwarfs the collector's fixed working memory (10-30 MiB).
    let mut c = TestCollector::start(&["--cache-mb", "4", "--max-body-bytes", "33554432"]);
    let long_arg = format!("--root=/srv/{}", "data/".repeat(400));
    c.register("admin@a.example", "AdminPass123!", "A");
    let a = c.token("admin@a.example", "AdminPass123!");
    for n in 0..AGENTS {
        let (_, key) = c.create_agent(&a, &format!("host-{n}"));
        let servers: Vec<Value> = (0..PER_AGENT)
            .map(|i| {
                agent_server(
                    &format!("server-{i}"),
                    "uvx",
                    &[&format!("mcp-tool-{i}==1.0.{n}"), &long_arg],
                )
            })
            .collect();
        let (status, body) = c.agent_call(
            "/mcp/report",
            &key,
            None,
            &json!({ "hostname": format!("host-{n}"), "servers": servers }),
        );
        assert_eq!(status, 200, "{body}");
    }
    // A fresh process, so that memory freed after the reports cannot hide a buffer.
    c.restart();
    let (status, _) = c.get("/mcp/servers?page_size=100", &a);
    assert_eq!(status, 200);
    // The census counts the seeded servers in the background; reading it counts the
    // rest first, so that its writes cannot be taken for the export's memory.
    let (status, _) = c.get("/mcp/census?page_size=1", &a);
    assert_eq!(status, 200);
    let pid = c.pid().unwrap();
    let before = anon_kib(pid);
    let mut resp = c
        .request(
            reqwest::Method::GET,
            "/mcp/servers/export?format=json",
            Some(&a),
        )
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (mut total, mut buf) = (0usize, vec![0u8; 256 * 1024]);
    let mut last = Vec::new();
    // The heap's growth (KiB) after each read, with how much had been sent.
    let mut samples: Vec<(usize, u64)> = Vec::new();
    loop {
        let n = resp.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n;
        last = buf[..n].to_vec();
        samples.push((total, anon_kib(pid).saturating_sub(before)));
        // A slow reader: the collector must wait for it, not buffer.
        std::thread::sleep(Duration::from_micros(200));
    }
    assert!(last.ends_with(b"]"));
    let sent_mib = (total / (1024 * 1024)) as u64;
    // The allocator gives memory back in waves (more so when the machine is busy), so
    // single readings are noisy: look at the middle reading, and at the lowest of the
    // second half. A buffered export holds everything it sends until the end (every
    // reading above the size sent); a leaking one never gets back down.
    let mut all: Vec<u64> = samples.iter().map(|(_, g)| g / 1024).collect();
    all.sort_unstable();
    let median_mib = all[all.len() / 2];
    let peak_mib = all.last().copied().unwrap_or(0);
    let low_late_mib = samples
        .iter()
        .filter(|(sent, _)| *sent >= total / 2)
        .map(|(_, g)| g / 1024)
        .min()
        .unwrap_or(0);
    eprintln!(
        "exported {sent_mib} MiB; the collector's heap grew by {median_mib} MiB in the middle reading, \
         {peak_mib} MiB at most, {low_late_mib} MiB at least in the second half"
    );
    assert!(
        sent_mib >= 64,
        "the export is large enough to tell: {sent_mib} MiB"
    );
    assert!(
        median_mib * 2 < sent_mib,
        "grew {median_mib} MiB (middle reading) while sending {sent_mib} MiB"
    );
    assert!(
        low_late_mib < 16,
        "never below {low_late_mib} MiB in the second half of the export"
    );
}
