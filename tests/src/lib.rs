//! Helpers for the end-to-end tests: start the real `mcpwatch-collector` binary on an
//! ephemeral loopback port with a temporary data dir, talk to it over HTTP, and wait
//! for conditions with a deadline (never a fixed sleep).
//!
//! The binaries are found through `MCPWATCH_COLLECTOR_BIN` / `MCPWATCH_AGENT_BIN`, or next to the test
//! executable in the cargo target dir (build it first: `cargo build --workspace --bins`).

#![allow(clippy::print_stderr)] // Test helpers show the collector's log on failure.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use reqwest::Method;
use reqwest::blocking::{Client, RequestBuilder};
use serde_json::{Value, json};

/// How long the collector may take to start.
pub mod postgres;
pub mod receiver;

const START_DEADLINE: Duration = Duration::from_secs(30);

/// An HTTP client for tests. In a workspace build reqwest carries the agent's
/// `rustls-no-provider` feature, so a crypto provider must be installed first.
pub fn http_client() -> Client {
    http_client_trusting(None)
}

/// An HTTP client for tests that also trusts the CA certificate `ca` (PEM).
pub fn http_client_trusting(ca: Option<&[u8]>) -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = Client::builder().timeout(Duration::from_secs(30));
    if let Some(ca) = ca {
        builder =
            builder.add_root_certificate(reqwest::Certificate::from_pem(ca).expect("a PEM CA"));
    }
    builder.build().expect("http client")
}

/// Where a built binary of this workspace is.
pub fn binary(name: &str, env_override: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env_override) {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/e2e-<hash> → target/<profile>/<name>
    let exe = std::env::current_exe().expect("test executable path");
    let mut dir = exe.parent().expect("deps dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} not found; run `cargo build --workspace --bins` first or set {env_override}",
        path.display()
    );
    path
}

/// Poll `check` until it returns `Some`, or panic after `deadline` with `what`.
pub fn eventually<T>(deadline: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// When the suite runs on PostgreSQL, point a collector's arguments at a new
/// database (unless they name one).
fn with_suite_database(args: &mut Vec<String>) {
    if args.iter().any(|a| a == "--database-url") {
        return;
    }
    if let Some(url) = postgres::suite_database() {
        args.extend(["--database-url".to_owned(), url]);
    }
}

/// Resident memory (VmRSS) of process `pid`, in KiB (Linux).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A running collector.
pub struct TestCollector {
    child: Option<Child>,
    pub base: String,
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    /// The CA of the collector's TLS certificate (PEM), when it serves HTTPS.
    ca: Option<Vec<u8>>,
    log: Arc<Mutex<String>>,
    extra_args: Vec<String>,
    extra_env: Vec<(String, String)>,
    pub http: Client,
}

impl TestCollector {
    /// The collector's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Start a collector with a fresh data dir.
    pub fn start(extra_args: &[&str]) -> Self {
        Self::start_with_env(extra_args, &[])
    }

    /// Start a collector with a fresh data dir (or the one `--data-dir DIR` in
    /// `extra_args` names) and extra environment variables.
    pub fn start_with_env(extra_args: &[&str], env: &[(&str, &str)]) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut args: Vec<String> = Vec::new();
        let mut data_dir = temp.path().to_path_buf();
        let mut given = extra_args.iter();
        while let Some(a) = given.next() {
            if *a == "--data-dir" {
                if let Some(dir) = given.next() {
                    data_dir = PathBuf::from(dir);
                }
            } else {
                args.push((*a).to_owned());
            }
        }
        let env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        with_suite_database(&mut args);
        let mut c = Self::spawn(&data_dir, args, env, None);
        c._temp = Some(temp);
        c
    }

    /// Start a collector on its embedded store (a fresh data dir) even when the suite
    /// runs on PostgreSQL.
    pub fn start_embedded(extra_args: &[&str]) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let args = extra_args.iter().map(|a| (*a).to_owned()).collect();
        let mut c = Self::spawn(temp.path(), args, Vec::new(), None);
        c._temp = Some(temp);
        c
    }

    /// Start a collector serving HTTPS (`extra_args` name the certificate and key),
    /// talked to by a client that trusts `ca_pem`.
    pub fn start_tls(extra_args: &[&str], ca_pem: &[u8]) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut args = extra_args.iter().map(|a| (*a).to_owned()).collect();
        with_suite_database(&mut args);
        let mut c = Self::spawn(temp.path(), args, Vec::new(), Some(ca_pem.to_vec()));
        c._temp = Some(temp);
        c
    }

    fn spawn(
        data_dir: &Path,
        extra_args: Vec<String>,
        extra_env: Vec<(String, String)>,
        ca: Option<Vec<u8>>,
    ) -> Self {
        let bin = binary("mcpwatch-collector", "MCPWATCH_COLLECTOR_BIN");
        let mut cmd = Command::new(bin);
        cmd.arg("serve");
        if !extra_args.iter().any(|a| a == "--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.arg("--data-dir")
            .arg(data_dir)
            .args(&extra_args)
            .env_remove("RUST_LOG")
            .envs(extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env(
                "MCPWATCH_LOG",
                if std::env::var_os("TEST_LOG").is_some() {
                    "debug"
                } else {
                    "info"
                },
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("collector starts");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let stderr_log = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut buf = String::new();
            while reader.read_line(&mut buf).unwrap_or(0) > 0 {
                if std::env::var_os("TEST_LOG").is_some() {
                    eprint!("[collector] {buf}");
                }
                if let Ok(mut l) = stderr_log.lock() {
                    l.push_str(&buf);
                }
                buf.clear();
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                if let Some(addr) = line.trim().strip_prefix("mcpwatch-collector listening on ") {
                    let _ = tx.send(addr.to_owned());
                }
                line.clear();
            }
            // Keep draining so the child never blocks on a full pipe.
            let _ = reader.read_to_string(&mut line);
        });
        let base = match rx.recv_timeout(START_DEADLINE) {
            // Listening on every address: the tests talk to loopback.
            Ok(addr) => addr.replace("://0.0.0.0:", "://127.0.0.1:"),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "collector did not announce its address; log:\n{}",
                    log.lock().map(|l| l.clone()).unwrap_or_default()
                );
            }
        };
        let http = http_client_trusting(ca.as_deref());
        let collector = Self {
            child: Some(child),
            base,
            data_dir: data_dir.to_path_buf(),
            _temp: None,
            ca,
            log,
            extra_args,
            extra_env,
            http,
        };
        eventually(START_DEADLINE, "collector readiness", || {
            let r = collector
                .http
                .get(format!("{}/health/ready", collector.base))
                .send()
                .ok()?;
            r.status().is_success().then_some(())
        });
        collector
    }

    /// What the collector logged so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Kill the process with SIGKILL (no shutdown of any kind).
    pub fn kill_hard(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start again on the same data dir (after [`Self::kill_hard`]).
    pub fn restart(&mut self) {
        self.kill_hard();
        let temp = self._temp.take();
        let mut next = Self::spawn(
            &self.data_dir,
            self.extra_args.clone(),
            self.extra_env.clone(),
            self.ca.clone(),
        );
        next._temp = temp;
        std::mem::swap(self, &mut next);
    }

    /// Start again on the same data dir and the same address (agents keep their URL).
    pub fn restart_same_address(&mut self) {
        self.kill_hard();
        let temp = self._temp.take();
        let addr = self.base.trim_start_matches("http://").to_owned();
        let mut args: Vec<String> = Vec::new();
        let mut skip = false;
        for a in &self.extra_args {
            if skip {
                skip = false;
            } else if a == "--listen" {
                skip = true;
            } else {
                args.push(a.clone());
            }
        }
        args.extend(["--listen".to_owned(), addr]);
        let mut next = Self::spawn(
            &self.data_dir,
            args,
            self.extra_env.clone(),
            self.ca.clone(),
        );
        next._temp = temp;
        std::mem::swap(self, &mut next);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with optional bearer token.
    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let mut req = self.http.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req
    }

    /// Send and return the status and the JSON body (`Value::Null` when empty).
    pub fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self.request(method, path, token);
        if let Some(body) = body {
            req = req.json(body);
        }
        send(req)
    }

    pub fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(Method::GET, path, Some(token), None)
    }

    pub fn post(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        self.call(Method::POST, path, Some(token), Some(body))
    }

    pub fn patch(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        self.call(Method::PATCH, path, Some(token), Some(body))
    }

    /// Register (first or open registration); panics unless 201.
    pub fn register(&self, email: &str, password: &str, org: &str) -> Value {
        let (status, body) = self.call(
            Method::POST,
            "/auth/register",
            None,
            Some(&json!({ "email": email, "password": password, "full_name": "Test User", "organization_name": org })),
        );
        assert_eq!(status, 201, "register {email}: {body}");
        body
    }

    /// A collector with open registration and two organisations, A (admin@a.example)
    /// and B (admin@b.example), each with its admin; answers it and the two admins'
    /// access tokens.
    pub fn with_two_organisations() -> (Self, String, String) {
        let c = Self::start(&["--open-registration"]);
        c.register("admin@a.example", "AdminPass123!", "A");
        c.register("admin@b.example", "AdminPass123!", "B");
        let a = c.token("admin@a.example", "AdminPass123!");
        let b = c.token("admin@b.example", "AdminPass123!");
        (c, a, b)
    }

    /// Log in with the seed's form body; returns the token response.
    pub fn login(&self, email: &str, password: &str) -> (u16, Value) {
        send(
            self.http
                .post(self.url("/auth/login"))
                .form(&[("username", email), ("password", password)]),
        )
    }

    /// Log in and return the access token; panics on failure.
    pub fn token(&self, email: &str, password: &str) -> String {
        let (status, body) = self.login(email, password);
        assert_eq!(status, 200, "login {email}: {body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// Create a user in the admin's organisation and return its access token.
    pub fn user_with_role(&self, admin_token: &str, email: &str, role: &str) -> String {
        let (status, body) = self.post(
            "/users",
            admin_token,
            &json!({ "email": email, "password": "UserPass123!", "full_name": role, "role": role }),
        );
        assert_eq!(status, 201, "create {role}: {body}");
        self.token(email, "UserPass123!")
    }

    /// Create an agent with `POST /agents/`; returns (agent id, api key).
    pub fn create_agent(&self, admin_token: &str, name: &str) -> (String, String) {
        let (status, body) = self.post("/agents/", admin_token, &json!({ "name": name }));
        assert_eq!(status, 201, "create agent: {body}");
        (
            body["id"].as_str().expect("id").to_owned(),
            body["api_key"].as_str().expect("api_key").to_owned(),
        )
    }

    /// An agent request with `X-API-Key`, signed when `key` is given.
    pub fn agent_call(
        &self,
        path: &str,
        api_key: &str,
        signer: Option<&Signer>,
        body: &Value,
    ) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).expect("json");
        let mut req = self
            .http
            .post(self.url(path))
            .header("x-api-key", api_key)
            .header("content-type", "application/json");
        if let Some(signer) = signer {
            req = req.header(
                mcpwatch_protocol::signing::SIGNATURE_HEADER,
                signer.sign("POST", path, &bytes),
            );
        }
        send(req.body(bytes))
    }
}

impl Drop for TestCollector {
    fn drop(&mut self) {
        self.kill_hard();
        if std::thread::panicking() {
            eprintln!("---- collector log ----\n{}", self.log());
        }
    }
}

/// Send a request; answer the status and JSON body (`Null` when empty or not JSON).
pub fn send(req: RequestBuilder) -> (u16, Value) {
    let response = req.send().expect("request reaches the collector");
    let status = response.status().as_u16();
    let text = response.text().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// An agent's signing key.
pub struct Signer {
    pub key: SigningKey,
    /// Signature time offset from now, in seconds (to test stale signatures).
    pub skew_secs: i64,
}

impl Signer {
    pub fn new() -> Self {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).expect("random");
        Self {
            key: SigningKey::from_bytes(&seed),
            skew_secs: 0,
        }
    }

    pub fn public_key(&self) -> String {
        mcpwatch_protocol::signing::encode_public_key(&self.key.verifying_key())
    }

    pub fn sign(&self, method: &str, path: &str, body: &[u8]) -> String {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).expect("random");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        mcpwatch_protocol::signing::sign(&self.key, method, path, body, now + self.skew_secs, nonce)
    }
}

impl Default for Signer {
    fn default() -> Self {
        Self::new()
    }
}

/// The seed's example report entry.
pub fn seed_server() -> Value {
    json!({
        "server_name": "filesystem",
        "server_type": "@modelcontextprotocol/server-filesystem",
        "command": "npx @modelcontextprotocol/server-filesystem /home",
        "scope": "/home",
        "env_vars": ["PATH", "HOME"]
    })
}

/// A server entry as the agent sends it.
pub fn agent_server(name: &str, command: &str, args: &[&str]) -> Value {
    json!({
        "server_name": name,
        "command": command,
        "args": args,
        "client": "claude-desktop",
        "config_path": "/home/alice/.config/Claude/claude_desktop_config.json",
        "config_scope": "user",
        "os_user": "alice",
        "transport": "stdio",
        "env_vars": ["GITHUB_TOKEN"]
    })
}

/// Run `mcpwatch-agent` with `args` (and no enrollment settings from this environment)
/// to the end; answers (exit code, stdout + stderr).
pub fn run_agent(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(binary("mcpwatch-agent", "MCPWATCH_AGENT_BIN"))
        .args(args)
        .env_remove("MCPWATCH_ENROLL_SECRET")
        .env_remove("MCPWATCH_COLLECTOR_URL")
        .output()
        .expect("agent runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// A Linux tree for `mcpwatch-agent --root` with one user, alice, and `files` (paths
/// relative to the root, and their text).
pub fn linux_root(files: &[(&str, &str)]) -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("temp dir");
    let passwd = [("etc/passwd", "alice:x:1000:1000::/home/alice:/bin/bash\n")];
    for (rel, text) in passwd.iter().chain(files) {
        let path = root.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("dirs");
        std::fs::write(path, text).expect("a file");
    }
    root
}

/// A running `mcpwatch-agent run`.
pub struct TestAgent {
    child: Option<Child>,
    log: Arc<Mutex<String>>,
    pub state_dir: PathBuf,
    pub root: PathBuf,
}

impl TestAgent {
    /// `mcpwatch-agent enroll`; answers (exit code, stdout + stderr).
    pub fn enroll(server: &str, secret: &str, state_dir: &Path) -> (Option<i32>, String) {
        let state_dir = state_dir.to_string_lossy();
        run_agent(&[
            "enroll",
            "--server",
            server,
            "--enroll-secret",
            secret,
            "--state-dir",
            &state_dir,
        ])
    }

    /// `mcpwatch-agent run` over the tree at `root` (Linux layout).
    pub fn start(state_dir: &Path, root: &Path) -> Self {
        Self::start_with(state_dir, root, &[])
    }

    /// [`Self::start`] with more arguments for `run`.
    pub fn start_with(state_dir: &Path, root: &Path, extra_args: &[&str]) -> Self {
        let mut child = Command::new(binary("mcpwatch-agent", "MCPWATCH_AGENT_BIN"))
            .args([
                "run",
                "--os",
                "linux",
                "--heartbeat-interval",
                "5",
                "--log-level",
                "debug",
                "--state-dir",
            ])
            .arg(state_dir)
            .arg("--root")
            .arg(root)
            .args(extra_args)
            .env_remove("RUST_LOG")
            .env_remove("MCPWATCH_ENROLL_SECRET")
            .env_remove("MCPWATCH_COLLECTOR_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("agent starts");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                if std::env::var_os("TEST_LOG").is_some() {
                    eprint!("[agent] {line}");
                }
                if let Ok(mut l) = sink.lock() {
                    l.push_str(&line);
                }
                line.clear();
            }
        });
        Self {
            child: Some(child),
            log,
            state_dir: state_dir.to_path_buf(),
            root: root.to_path_buf(),
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The exit code, once the process has exited.
    pub fn exit_code(&mut self) -> Option<Option<i32>> {
        let child = self.child.as_mut()?;
        child.try_wait().ok().flatten().map(|s| s.code())
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("---- agent log ----\n{}", self.log());
        }
    }
}

/// A tiny HTTP/1.1 proxy in front of the collector that records every request body,
/// so a test can check what an agent sent.
pub struct RecordingProxy {
    pub base: String,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl RecordingProxy {
    pub fn start(target: &str) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let (target, sink) = (target.to_owned(), Arc::clone(&bodies));
        std::thread::spawn(move || {
            let http = http_client();
            for stream in listener.incoming().flatten() {
                let (target, sink, http) = (target.clone(), Arc::clone(&sink), http.clone());
                std::thread::spawn(move || {
                    let _ = proxy_one(stream, &target, &sink, &http);
                });
            }
        });
        Self { base, bodies }
    }

    /// Every request body seen so far.
    pub fn bodies(&self) -> Vec<String> {
        self.bodies.lock().map(|b| b.clone()).unwrap_or_default()
    }
}

fn proxy_one(
    stream: std::net::TcpStream,
    target: &str,
    sink: &Mutex<Vec<String>>,
    http: &Client,
) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Ok(());
    };
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let (name, value) = (name.trim().to_owned(), value.trim().to_owned());
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().unwrap_or(0);
            }
            if !matches!(
                name.to_ascii_lowercase().as_str(),
                "host" | "connection" | "content-length"
            ) {
                headers.push((name, value));
            }
        }
    }
    let mut body = vec![0u8; length];
    std::io::Read::read_exact(&mut reader, &mut body)?;
    if let Ok(mut b) = sink.lock() {
        b.push(String::from_utf8_lossy(&body).into_owned());
    }
    let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
    let mut request = http.request(method, format!("{target}{path}")).body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let mut out = stream;
    match request.send() {
        Ok(response) => {
            let status = response.status();
            let retry = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let bytes = response.bytes().unwrap_or_default();
            let mut head = format!(
                "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                status.as_u16(),
                status.canonical_reason().unwrap_or(""),
                bytes.len()
            );
            if let Some(r) = retry {
                head.push_str(&format!("Retry-After: {r}\r\n"));
            }
            head.push_str("\r\n");
            out.write_all(head.as_bytes())?;
            out.write_all(&bytes)?;
        }
        Err(_) => out.write_all(
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?,
    }
    out.flush()
}

/// A Python with `module` importable, from a venv made once under target/; `None`
/// when Python cannot make one or PyPI is unreachable.
pub fn python_with(packages: &[&str], module: &str) -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let venv = target.join(format!("py-{module}/venv"));
    let python = venv.join("bin/python3");
    let works = |p: &Path| {
        Command::new(p)
            .args(["-c", &format!("import {module}")])
            .status()
            .is_ok_and(|s| s.success())
    };
    if works(&python) {
        return Some(python);
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(packages)
            .status()
            .is_ok_and(|s| s.success());
    if made && works(&python) {
        Some(python)
    } else {
        let _ = std::fs::remove_dir_all(&venv);
        None
    }
}
