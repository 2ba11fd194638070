//! A network of real `lucid-node` processes on loopback: the reusable [`TestNet`] harness (a
//! test-network profile with one-second slots and a genesis a little in the past, distinct data
//! directories and free ports, Tor off, direct endpoints, node 0 as everyone's bootstrap), and
//! the tests that nodes register themselves, sign beacons and discover each other.

use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lucid_consensus::registration::{Endpoint, Registration};
use lucid_core::message::Message as _;
use lucid_core::{NodeId, NodeKey, Slot, SlotRange, UnixMillis};
use serde_json::Value;

use crate::harness::{TempDir, command, free_addr, get, request, run_to_end};

/// A valid TRON address (Base58Check, version 0x41) made from a 20-byte account.
pub(crate) fn tron_address(account: u8) -> String {
    lucid_payouts::TronAddress::from_account([account; 20]).to_base58()
}

/// The address every test node is paid to.
pub(crate) fn payout_address() -> String {
    tron_address(5)
}

/// A valid-looking address with a broken checksum.
fn broken_address() -> String {
    let mut text = payout_address();
    let last = text.pop().unwrap();
    text.push(if last == '2' { '3' } else { '2' });
    text
}

/// The test-network profile shared by every node of one [`TestNet`].
#[derive(Clone, Debug)]
pub(crate) struct Profile {
    pub(crate) name: String,
    pub(crate) genesis_ms: i64,
    pub(crate) slot_ms: u64,
    pub(crate) slots_per_epoch: u64,
    /// More `LUCID_*` variables every node of the network gets.
    pub(crate) extra_env: Vec<(&'static str, String)>,
}

impl Profile {
    /// One-second slots, eight-slot epochs, genesis ten seconds ago.
    pub(crate) fn fast(name: &str) -> Self {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let now_ms = i64::try_from(now.as_millis()).unwrap();
        Profile {
            name: name.to_owned(),
            genesis_ms: now_ms - 10_000,
            slot_ms: 1000,
            slots_per_epoch: 8,
            extra_env: Vec::new(),
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("LUCID_NETWORK_KIND", "test".to_owned()),
            ("LUCID_NETWORK_NAME", self.name.clone()),
            ("LUCID_NETWORK_GENESIS_MS", self.genesis_ms.to_string()),
            ("LUCID_NETWORK_SLOT_MS", self.slot_ms.to_string()),
            ("LUCID_NETWORK_SLOTS_PER_EPOCH", self.slots_per_epoch.to_string()),
            ("LUCID_TOR_ENABLED", "false".to_owned()),
            ("LUCID_LOG_LEVEL", "warn".to_owned()),
        ]
        .into_iter()
        .chain(self.extra_env.iter().cloned())
        .collect()
    }

    /// The consensus parameters the nodes run with.
    pub(crate) fn params(&self) -> lucid_consensus::ConsensusParams {
        let time = lucid_core::TimeParams::test_network(
            UnixMillis(self.genesis_ms),
            self.slot_ms,
            self.slots_per_epoch,
        )
        .unwrap();
        lucid_consensus::ConsensusParams::test_network(&self.name, time)
    }
}

/// One node process of a [`TestNet`].
pub(crate) struct NetNode {
    /// Removed when the node is dropped.
    _dir: TempDir,
    pub(crate) node_id: NodeId,
    pub(crate) token: String,
    pub(crate) http: SocketAddr,
    pub(crate) grpc: SocketAddr,
    child: Option<Child>,
}

impl NetNode {
    /// GET with the admin token.
    pub(crate) fn admin_get(&self, path: &str) -> Option<(u16, Value)> {
        let bearer = format!("Bearer {}", self.token);
        let (status, body) =
            request(self.http, "GET", path, &[("authorization", bearer.as_str())], b"")?;
        Some((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
    }

    /// POST a JSON body with the admin token.
    pub(crate) fn admin_post(&self, path: &str, body: &str) -> Option<(u16, Value)> {
        let bearer = format!("Bearer {}", self.token);
        let headers = [("authorization", bearer.as_str()), ("content-type", "application/json")];
        let (status, body) = request(self.http, "POST", path, &headers, body.as_bytes())?;
        Some((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
    }

    /// The ids other nodes in this node's `/api/v1/peers`.
    pub(crate) fn peer_ids(&self) -> Vec<String> {
        match self.admin_get("/api/v1/peers") {
            Some((200, Value::Array(rows))) => {
                rows.iter().filter_map(|row| row["node_id"].as_str().map(str::to_owned)).collect()
            }
            _ => Vec::new(),
        }
    }

    /// How many nodes with a registration record `/api/v1/nodes` lists.
    pub(crate) fn registrations(&self) -> usize {
        match get(self.http, "/api/v1/nodes?limit=100") {
            Some((200, body)) => serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|page| {
                    page["items"].as_array().map(|items| {
                        items.iter().filter(|item| !item["payout_address"].is_null()).count()
                    })
                })
                .unwrap_or(0),
            _ => 0,
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub(crate) fn stop(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ =
            std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if start.elapsed() > within {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NetNode {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// N real node processes on loopback forming one test network.
pub(crate) struct TestNet {
    pub(crate) profile: Profile,
    pub(crate) nodes: Vec<NetNode>,
}

impl TestNet {
    /// Initialises and starts `n` nodes (node 0 first, the bootstrap of all others) and waits
    /// until every one is ready.
    pub(crate) fn start(n: usize, profile: Profile) -> TestNet {
        let mut nodes: Vec<NetNode> = Vec::with_capacity(n);
        for index in 0..n {
            let dir = TempDir::new();
            let output = run_to_end({
                let mut c = command(dir.path());
                c.args(["init", "--network", &profile.name, "--payout-address", &payout_address()]);
                c
            });
            assert!(output.status.success(), "init: {}", String::from_utf8_lossy(&output.stderr));
            let node_id: NodeId = String::from_utf8_lossy(&output.stdout).trim().parse().unwrap();
            let token =
                std::fs::read_to_string(dir.path().join("admin.token")).unwrap().trim().to_owned();
            let http = free_addr();
            let grpc = free_addr();
            let mut env = profile.env();
            env.push(("LUCID_PEERS_DIRECT_ADDR", grpc.to_string()));
            if index > 0 {
                let bootstrap = &nodes[0];
                env.push((
                    "LUCID_PEERS_BOOTSTRAP",
                    format!("{}@{}", bootstrap.node_id, bootstrap.grpc),
                ));
            }
            let child = command(dir.path())
                .args(["run", "--http-addr", &http.to_string(), "--grpc-addr", &grpc.to_string()])
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn lucid-node");
            nodes.push(NetNode { _dir: dir, node_id, token, http, grpc, child: Some(child) });
        }
        let start = Instant::now();
        for node in &nodes {
            while get(node.http, "/health/ready").is_none_or(|(status, _)| status != 200) {
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "node {} not ready",
                    node.node_id
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        TestNet { profile, nodes }
    }

    /// Polls `done` every 100 ms until it holds, or panics after `within` naming `what`.
    pub(crate) fn wait_until(
        &self,
        what: &str,
        within: Duration,
        mut done: impl FnMut(&TestNet) -> bool,
    ) -> Duration {
        let start = Instant::now();
        loop {
            if done(self) {
                return start.elapsed();
            }
            assert!(start.elapsed() < within, "{what} did not happen within {within:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops every node with SIGTERM; each must exit 0.
    pub(crate) fn stop(mut self) {
        for node in &mut self.nodes {
            let status = node.stop(Duration::from_secs(40));
            assert!(
                status.is_some_and(|s| s.success()),
                "node {} did not stop cleanly: {status:?}",
                node.node_id
            );
        }
    }
}

#[test]
fn five_processes_discover_each_other() {
    let net = TestNet::start(5, Profile::fast("peers-it"));
    let ids: Vec<String> = net.nodes.iter().map(|node| node.node_id.to_string()).collect();
    let took = net.wait_until("full discovery", Duration::from_secs(60), |net| {
        net.nodes.iter().enumerate().all(|(index, node)| {
            let mut peers = node.peer_ids();
            peers.sort();
            let mut others: Vec<String> = ids
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != index)
                .map(|(_, id)| id.clone())
                .collect();
            others.sort();
            peers == others && node.registrations() == 5
        })
    });
    eprintln!("5 processes discovered each other in {took:?}");
    for node in &net.nodes {
        let metrics = get(node.http, "/metrics").unwrap().1;
        assert!(metrics.contains("lucid_peers{state=\"connected\"}"), "{metrics}");
        let health: Value = serde_json::from_str(&get(node.http, "/health").unwrap().1).unwrap();
        assert_eq!(health["components"]["tor"]["status"], "healthy");
    }
    net.stop();
}

/// A fresh node configured with a payout address and a direct endpoint registers itself and
/// signs beacons; the payout address can be changed through the API (seq + 1), and invalid
/// ones are refused.
#[test]
fn a_configured_node_registers_itself_and_signs_beacons() {
    let net = TestNet::start(1, Profile::fast("register-it"));
    let node = &net.nodes[0];
    // The beacon producer registers the node at its first tick, right after start.
    let identity =
        || -> Value { serde_json::from_str(&get(node.http, "/api/v1/node").unwrap().1).unwrap() };
    net.wait_until("registration", Duration::from_secs(10), |_| {
        !identity()["registration_seq"].is_null()
    });
    let identity = identity();
    assert_eq!(identity["payout_address"], payout_address());
    assert_eq!(identity["endpoint"], node.grpc.to_string());
    assert_eq!(identity["registration_seq"], 1);

    // Beacons, seen through the node's own Peer service by a registered caller.
    let params = net.profile.params();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let beacons = runtime.block_on(async {
        let clock: Arc<dyn lucid_core::Clock> = Arc::new(lucid_daemon::clock::SystemClock::new());
        let key = NodeKey::from_seed(&[0x5e; 32]);
        let table = Arc::new(lucid_daemon::peers::SharedPeers::new(
            key.node_id(),
            lucid_daemon::peers::table::PeerLimits::default(),
            Arc::clone(&clock),
        ));
        table.queue_dial(lucid_daemon::peers::PeerAddress {
            node: node.node_id,
            addr: node.grpc.to_string(),
        });
        let client = lucid_daemon::peers::client::PeerClient::new(
            Arc::new(NodeKey::from_seed(&[0x5e; 32])),
            params.network,
            table,
            Arc::clone(&clock),
            Duration::from_secs(2),
            Duration::from_secs(5),
        );
        let own = Registration {
            node: key.node_id(),
            seq: 1,
            ts: clock.wall(),
            payout_address: [0x41; 21],
            endpoint: Endpoint::Direct("127.0.0.1:9".into()),
            capabilities: 0,
            storage_capacity_bytes: 0,
        }
        .sign(&params.network, &key);
        let hello = client.hello(node.node_id, &own, "it").await.unwrap();
        assert!(hello.registration.is_some());
        let start = Instant::now();
        loop {
            use lucid_daemon::network::PeerTransport as _;
            let now_slot = params.time.slot_of(clock.wall()).unwrap();
            let range = SlotRange { start: Slot(0), end: Slot(now_slot.0 + 1) };
            let proofs = client.pull_proofs(node.node_id, range, None, 100).await.unwrap();
            if proofs.len() >= 2 || start.elapsed() > Duration::from_secs(10) {
                break proofs;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    // Dropping the runtime closes the client's connection, so the node's drain does not wait
    // for it.
    drop(runtime);
    assert!(beacons.len() >= 2, "the node signed {} beacons", beacons.len());
    for beacon in &beacons {
        assert!(beacon.verify(&node.node_id));
    }

    let broken = format!(r#"{{"payout_address":"{}"}}"#, broken_address());
    let (status, body) = node.admin_post("/api/v1/node/payout-address", &broken).unwrap();
    assert_eq!(status, 400, "{body}");
    let other = tron_address(6);
    let (status, body) = node
        .admin_post("/api/v1/node/payout-address", &format!(r#"{{"payout_address":"{other}"}}"#))
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["payout_address"], other);
    assert_eq!(body["registration_seq"], 2);
    net.stop();
}

/// Invalid payout addresses and endpoints stop `init` and `run` with exit code 64 naming the key.
#[test]
fn invalid_registration_configuration_exits_64_naming_the_key() {
    let dir = TempDir::new();
    let output = run_to_end({
        let mut c = command(dir.path());
        c.args(["init", "--payout-address", &broken_address()]);
        c
    });
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&output.stderr).contains("node.payout_address"));
    let init = run_to_end({
        let mut c = command(dir.path());
        c.arg("init");
        c
    });
    assert!(init.status.success());
    let profile = Profile::fast("bad-config-it");
    for (key, variable, value) in [
        ("node.payout_address", "LUCID_NODE_PAYOUT_ADDRESS", "T123"),
        ("peers.direct_addr", "LUCID_PEERS_DIRECT_ADDR", "no-port"),
        ("peers.bootstrap", "LUCID_PEERS_BOOTSTRAP", "node_00@127.0.0.1:1"),
        ("peers.max_connected", "LUCID_PEERS_MAX_CONNECTED", "0"),
    ] {
        let output = run_to_end({
            let mut c = command(dir.path());
            c.args(["config", "check"]);
            c.envs(profile.env().iter().map(|(k, v)| (*k, v.as_str())));
            c.env("LUCID_PEERS_DIRECT_ADDR", "127.0.0.1:1");
            c.env(variable, value);
            c
        });
        assert_eq!(output.status.code(), Some(64), "{key}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(key),
            "{key}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // Without Tor, a test network needs its direct endpoint.
    let output = run_to_end({
        let mut c = command(dir.path());
        c.args(["config", "check"]);
        c.envs(profile.env().iter().map(|(k, v)| (*k, v.as_str())));
        c
    });
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&output.stderr).contains("peers.direct_addr"));
}
