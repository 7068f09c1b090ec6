//! HTTPS served by the collector itself, with a CA and certificates made by the test
//! (rcgen): the agent enrolls and reports over TLS trusting the CA with `--ca-file`;
//! a certificate swapped on disk is served without a restart (SIGHUP, and by watching
//! the files); a broken new pair keeps the old one.

use std::io::Write as _;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use mcpwatch_tests::{TestAgent, TestCollector, eventually};
use rcgen::{
    BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType, SignatureAlgorithm,
};
use serde_json::json;

struct Ca {
    pem: String,
    der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

fn ca() -> Ca {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "mcpwatch test CA");
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        der: cert.der().to_vec(),
        issuer: Issuer::new(params, key),
    }
}

/// A server certificate for 127.0.0.1 and localhost: (chain PEM with the CA, key PEM,
/// the certificate's DER).
fn leaf(ca: &Ca, alg: &'static SignatureAlgorithm, name: &str) -> (String, String, Vec<u8>) {
    let key = KeyPair::generate_for(alg).unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (
        format!("{}{}", cert.pem(), ca.pem),
        key.serialize_pem(),
        cert.der().to_vec(),
    )
}

/// Write a file by replacing it (as certbot and editors do).
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

/// The certificate the collector serves to a new handshake.
fn served(base: &str, ca_der: &[u8]) -> Vec<u8> {
    let addr = base.trim_start_matches("https://");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_der.to_vec().into()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).unwrap();
    }
    let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
    assert!(alpn.is_none() || alpn.as_deref() == Some(b"http/1.1".as_slice()));
    conn.peer_certificates().unwrap()[0].to_vec()
}

fn hup(c: &TestCollector) {
    let status = Command::new("kill")
        .args(["-HUP", &c.pid().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn https_serves_enrolls_reports_and_reloads_a_swapped_certificate() {
    let ca = ca();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path, ca_path) = (
        dir.path().join("c.crt"),
        dir.path().join("c.key"),
        dir.path().join("ca.pem"),
    );
    let (chain, key, first) = leaf(&ca, &rcgen::PKCS_ECDSA_P256_SHA256, "first");
    std::fs::write(&cert_path, chain).unwrap();
    std::fs::write(&key_path, key).unwrap();
    std::fs::write(&ca_path, &ca.pem).unwrap();
    // A non-loopback address needs no --allow-insecure-http with TLS.
    let c = TestCollector::start_tls(
        &[
            "--listen",
            "0.0.0.0:0",
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
            "--heartbeat-interval",
            "5",
        ],
        ca.pem.as_bytes(),
    );
    let port = c.base.rsplit(':').next().unwrap().to_owned();
    assert!(c.base.starts_with("https://"), "{}", c.base);
    let base = format!("https://127.0.0.1:{port}");
    assert_eq!(served(&base, &ca.der), first);
    // Plain HTTP on the TLS port is not served.
    let mut plain = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = std::io::Read::read_to_end(&mut plain, &mut answer);
    assert!(!answer.starts_with(b"HTTP/1.1 200"), "plain HTTP answered");

    c.register("admin@a.example", "AdminPass123!", "A");
    let admin = c.token("admin@a.example", "AdminPass123!");
    let (_, secret) = c.post("/enroll-secrets", &admin, &json!({ "name": "laptops" }));
    let secret = secret["secret"].as_str().unwrap();

    // The agent trusts the private CA, enrolls and reports over TLS.
    let state = tempfile::tempdir().unwrap();
    let root = mcpwatch_tests::linux_root(&[(
        "home/alice/.cursor/mcp.json",
        r#"{"mcpServers": {"docs": {"command": "npx", "args": ["-y", "docs-mcp@1.0.0"]}}}"#,
    )]);
    let ca_arg = ca_path.to_str().unwrap();
    let state_arg = state.path().to_string_lossy().into_owned();
    let (code, out) = mcpwatch_tests::run_agent(&[
        "enroll",
        "--server",
        &base,
        "--enroll-secret",
        secret,
        "--ca-file",
        ca_arg,
        "--state-dir",
        &state_arg,
    ]);
    assert_eq!(code, Some(0), "{out}");
    let mut agent = TestAgent::start_with(state.path(), root.path(), &["--ca-file", ca_arg]);
    eventually(Duration::from_secs(30), "the report over TLS", || {
        let (_, servers) = c.get("/mcp/servers", &admin);
        (servers["total"] == 1).then_some(())
    });

    // Over TLS the console's pages say so for a year.
    let page = c.http.get(c.url("/ui/login")).send().unwrap();
    assert_eq!(
        page.headers()["strict-transport-security"],
        "max-age=31536000"
    );

    // A new certificate and SIGHUP: served at once, and the keep-alive client goes on.
    let (chain, key, second) = leaf(&ca, &rcgen::PKCS_ED25519, "second");
    replace(&key_path, &key);
    replace(&cert_path, &chain);
    hup(&c);
    eventually(Duration::from_secs(15), "the second certificate", || {
        (served(&base, &ca.der) == second).then_some(())
    });
    assert_eq!(c.get("/health", &admin).0, 200);

    // A broken pair (a key that is not the certificate's) keeps the one served.
    let (chain, _, _) = leaf(&ca, &rcgen::PKCS_ECDSA_P256_SHA256, "mismatched");
    replace(&cert_path, &chain);
    hup(&c);
    eventually(Duration::from_secs(15), "the refusal in the log", || {
        c.log()
            .contains("The new TLS certificate cannot be used")
            .then_some(())
    });
    assert_eq!(served(&base, &ca.der), second);

    // Replaced on disk, no signal: the file watch reloads it.
    let (chain, key, third) = leaf(&ca, &rcgen::PKCS_ECDSA_P384_SHA384, "third");
    replace(&key_path, &key);
    replace(&cert_path, &chain);
    eventually(Duration::from_secs(15), "the third certificate", || {
        (served(&base, &ca.der) == third).then_some(())
    });

    // The agent keeps reporting through the swaps.
    let before = c.get("/agents", &admin).1[0]["last_seen_at"].clone();
    eventually(
        Duration::from_secs(30),
        "a heartbeat after the swaps",
        || (c.get("/agents", &admin).1[0]["last_seen_at"] != before).then_some(()),
    );
    agent.kill();
    assert!(!agent.log().contains(secret));
}

#[test]
fn unusable_certificate_files_stop_the_start_with_a_clear_error() {
    let ca = ca();
    let dir = tempfile::tempdir().unwrap();
    let (chain, _, _) = leaf(&ca, &rcgen::PKCS_ECDSA_P256_SHA256, "x");
    let (_, other_key, _) = leaf(&ca, &rcgen::PKCS_ECDSA_P256_SHA256, "y");
    let (cert, key) = (dir.path().join("c.crt"), dir.path().join("c.key"));
    let bin = mcpwatch_tests::binary("mcpwatch-collector", "MCPWATCH_COLLECTOR_BIN");
    let data = tempfile::tempdir().unwrap();
    let run = |cert_text: &str, key_text: &str| {
        std::fs::write(&cert, cert_text).unwrap();
        std::fs::write(&key, key_text).unwrap();
        let out = Command::new(&bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--tls-cert"])
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .arg("--data-dir")
            .arg(data.path())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&chain, &other_key);
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("cannot be used with the certificate"), "{err}");
    let (code, err) = run("not a certificate", &other_key);
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("holds no PEM certificate"), "{err}");
    let (code, err) = run(&chain, "");
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("holds no PEM private key"), "{err}");
    // Half of the pair is a usage error.
    let out = Command::new(&bin)
        .args(["serve", "--tls-cert"])
        .arg(&cert)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
