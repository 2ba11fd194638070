//! Runs the real binary: temporary data directories, free loopback ports, a minimal HTTP client.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

/// A temporary data directory, removed when dropped.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new() -> Self {
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("lucid-it-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary with a clean environment (no inherited `LUCID_*` variables).
pub(crate) fn command(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lucid-node"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("LUCID_")) {
        command.env_remove(name);
    }
    command.arg("--data-dir").arg(data_dir);
    command
}

pub(crate) fn run_to_end(mut command: Command) -> Output {
    command.output().expect("the binary runs")
}

/// A loopback port that was free a moment ago.
pub(crate) fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local addr")
}

/// A running node process, killed when dropped.
pub(crate) struct Running {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    /// The gRPC listener (a free port too, so tests can run in parallel).
    pub(crate) grpc_addr: SocketAddr,
}

impl Running {
    pub(crate) fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[])
    }

    /// Starts the node with extra `LUCID_*` environment variables.
    pub(crate) fn start_with(data_dir: &Path, env: &[(&str, String)]) -> Self {
        let addr = free_addr();
        let grpc_addr = free_addr();
        let child = command(data_dir)
            .args(["run", "--http-addr", &addr.to_string(), "--grpc-addr", &grpc_addr.to_string()])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("LUCID_LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn lucid-node");
        Running { child, addr, grpc_addr }
    }

    /// Polls until `path` answers `status`, or panics after `within`.
    pub(crate) fn wait_for(&self, path: &str, status: u16, within: Duration) -> Duration {
        let start = Instant::now();
        loop {
            if get(self.addr, path).is_some_and(|(s, _)| s == status) {
                return start.elapsed();
            }
            assert!(start.elapsed() < within, "{path} did not answer {status} within {within:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub(crate) fn signal(&self, name: &str) {
        let status =
            Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{name} failed");
    }

    /// Waits for the process to exit, or panics after `within`.
    pub(crate) fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(start.elapsed() < within, "the node did not exit within {within:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub(crate) fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET `path`; `None` if the connection fails. Returns the status and the body.
pub(crate) fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text.get(9..12)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    Some((status, body))
}

/// One HTTP/1.1 request with `headers` and `body`; `None` if the connection fails before a
/// status line arrives. A server may answer before reading a large body: the write error is
/// ignored and the answer read.
pub(crate) fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).ok()?;
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text.get(9..12)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    Some((status, body))
}

/// The environment of a test network named `name`: one-second slots, 8 per epoch, a genesis in
/// the past, on `database_url` (the default SQLite file when `None`).
pub(crate) fn test_network(name: &str, database_url: Option<&str>) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("LUCID_NETWORK_KIND", "test".to_owned()),
        ("LUCID_NETWORK_NAME", name.to_owned()),
        ("LUCID_NETWORK_GENESIS_MS", "1700000000000".to_owned()),
        ("LUCID_NETWORK_SLOT_MS", "1000".to_owned()),
        ("LUCID_NETWORK_SLOTS_PER_EPOCH", "8".to_owned()),
    ];
    if let Some(url) = database_url {
        env.push(("LUCID_DATABASE_URL", url.to_owned()));
    }
    env
}

/// `text` as JSON; a test fails with the text when it is not.
pub(crate) fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Polls `path` until `done` holds for its JSON, or panics after `within`.
pub(crate) fn wait_until_json(
    addr: SocketAddr,
    path: &str,
    within: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        if let Some((200, body)) = get(addr, path) {
            let value = json(&body);
            if done(&value) {
                return value;
            }
        }
        assert!(
            start.elapsed() < within,
            "{path} did not reach the expected state within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The JSON body of a node-signed request: `{message: base64, signature: hex}`.
pub(crate) fn signed_body(signed: &lucid_core::SignedMessage) -> String {
    serde_json::json!({
        "message": signed.message_base64(),
        "signature": signed.signature().to_hex(),
    })
    .to_string()
}

/// A running node's slot clock (`/api/v1/poot/clock`), to sign pool ops for its current slot.
pub(crate) struct NodeClock {
    network: lucid_core::NetworkId,
    genesis_ms: i64,
    slot_ms: i64,
}

impl NodeClock {
    pub(crate) fn of(addr: SocketAddr) -> NodeClock {
        let (status, body) = get(addr, "/api/v1/poot/clock").expect("the node answers");
        assert_eq!(status, 200, "{body}");
        let clock = json(&body);
        NodeClock {
            network: clock["network_id"].as_str().unwrap().parse().unwrap(),
            genesis_ms: clock["genesis_ms"].as_i64().unwrap(),
            slot_ms: clock["slot_ms"].as_i64().unwrap(),
        }
    }

    /// The body of `op` by `key`, signed now (right before it is sent: the slot window is short).
    pub(crate) fn signed_op(&self, key: &lucid_core::NodeKey, op: lucid_pools::Op) -> String {
        use lucid_core::message::Message as _;
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("the clock is after 1970");
        let now = i64::try_from(since_epoch.as_millis()).unwrap();
        let slot = lucid_core::Slot(u64::try_from((now - self.genesis_ms) / self.slot_ms).unwrap());
        let op =
            lucid_pools::PoolOp { node: key.node_id(), slot, ts: lucid_core::UnixMillis(now), op };
        signed_body(&op.sign(&self.network, key))
    }
}
