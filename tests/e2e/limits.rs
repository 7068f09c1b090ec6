//! Every string and list an agent sends has a limit (`protocol/src/limits.rs`): one
//! laptop's key must not be able to fill the collector's memory or every page of
//! `GET /mcp/servers` with one huge value. Over a limit is a 422 naming the field,
//! and nothing of the request is stored.

use mcpwatch_tests::TestCollector;
use serde_json::json;

#[test]
fn over_limit_agent_values_are_refused_naming_the_field() {
    let c = TestCollector::start(&[]);
    c.register("admin@acme.example", "AdminPass123!", "Acme");
    let admin = c.token("admin@acme.example", "AdminPass123!");
    let (agent_id, key) = c.create_agent(&admin, "laptop");
    let huge = "h".repeat(1 << 20);

    let (status, body) = c.agent_call(
        "/agents/heartbeat",
        &key,
        None,
        &json!({ "hostname": huge }),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"]["field"], "hostname");
    let (_, agent) = c.get(&format!("/agents/{agent_id}"), &admin);
    assert!(agent["hostname"].is_null(), "nothing stored");

    for (heartbeat, field) in [
        (json!({ "os_version": "v".repeat(257) }), "os_version"),
        (
            json!({ "kernel_version": "k".repeat(257) }),
            "kernel_version",
        ),
        (json!({ "users": vec!["u"; 201] }), "users"),
        (json!({ "users": ["x".repeat(257)] }), "users[0]"),
        (json!({ "report_error": "e".repeat(513) }), "report_error"),
    ] {
        let (status, body) = c.agent_call("/agents/heartbeat", &key, None, &heartbeat);
        assert_eq!(status, 422, "{field}: {body}");
        assert_eq!(body["error"]["details"]["field"], field);
    }
    // At the limit is fine.
    let (status, _) = c.agent_call(
        "/agents/heartbeat",
        &key,
        None,
        &json!({ "hostname": "h".repeat(256), "users": vec!["u"; 200] }),
    );
    assert_eq!(status, 200);

    let server = |extra: serde_json::Value| {
        let mut s = json!({ "server_name": "s", "command": "npx" });
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        json!({ "servers": [s] })
    };
    for (report, field) in [
        (
            server(json!({ "args": ["a".repeat(2049)] })),
            "servers[0].args[0]",
        ),
        (server(json!({ "args": vec!["a"; 257] })), "servers[0].args"),
        (
            server(json!({ "env_vars": ["E".repeat(257)] })),
            "servers[0].env_vars[0]",
        ),
        (
            server(json!({ "command": "c".repeat(8193) })),
            "servers[0].command",
        ),
        (
            server(json!({ "server_name": "   " })),
            "servers[0].server_name",
        ),
        (
            json!({ "servers": [], "hostname": "h".repeat(257) }),
            "hostname",
        ),
        (
            json!({ "servers": [], "config_errors": [{ "path": "/x", "error": "e".repeat(513) }] }),
            "config_errors[0].error",
        ),
    ] {
        let (status, body) = c.agent_call("/mcp/report", &key, None, &report);
        assert_eq!(status, 422, "{field}: {body}");
        assert_eq!(body["error"]["details"]["field"], field, "{body}");
    }
    let (_, page) = c.get("/mcp/servers", &admin);
    assert_eq!(page["total"], 0, "no refused report stored anything");
}
