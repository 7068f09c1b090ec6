//! A small webhook receiver on 127.0.0.1 for the notification tests: answers each
//! request with a chosen status and keeps what it got.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::eventually;

const DEADLINE: Duration = Duration::from_secs(60);

/// One request a receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// A small HTTP/1.1 receiver on 127.0.0.1: answers each request with the next of
/// `answers` (the last one repeats) and keeps what it got.
pub struct Receiver {
    pub port: u16,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub fn start(answers: &[u16]) -> Self {
        Self::on(
            TcpListener::bind("127.0.0.1:0").expect("a loopback port"),
            answers,
        )
    }

    pub fn on(listener: TcpListener, answers: &[u16]) -> Self {
        let port = listener.local_addr().expect("its address").port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&got);
        let answers = answers.to_vec();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let Some(request) = read_request(&stream) else {
                    continue;
                };
                let n = {
                    let mut seen = seen.lock().expect("the receiver lock");
                    seen.push(request);
                    seen.len()
                };
                let status = answers[(n - 1).min(answers.len() - 1)];
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Self { port, got }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook/s3cr3t-path-token", self.port)
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().expect("the receiver lock").clone()
    }

    /// Wait until it has `n` requests.
    pub fn wait_for(&self, n: usize) -> Vec<Received> {
        eventually(DEADLINE, "requests at the receiver", || {
            let got = self.received();
            (got.len() >= n).then_some(got)
        })
    }
}

fn read_request(stream: &TcpStream) -> Option<Received> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let (k, v) = trimmed.split_once(':')?;
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Received { headers, body })
}
