//! A network of real `lucid-node` processes on loopback: the reusable [`TestNet`] harness (a
//! test-network profile with one-second slots and a genesis a little in the past, distinct data
//! directories and free ports, Tor off, direct endpoints, node 0 as everyone's bootstrap), and
//! the tests that nodes register themselves, sign beacons and discover each other.

use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lucid_api::grpc::SlotDigest;
use lucid_consensus::ingest::Outcome;
use lucid_consensus::proof::TaskProof;
use lucid_consensus::registration::{Endpoint, Registration};
use lucid_core::message::Message as _;
use lucid_core::{NodeId, NodeKey, SignedMessage, Slot, SlotRange, UnixMillis};
use lucid_daemon::network::{PeerTransport as _, TransportError};
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
    dir: TempDir,
    pub(crate) node_id: NodeId,
    pub(crate) token: String,
    pub(crate) http: SocketAddr,
    pub(crate) grpc: SocketAddr,
    /// The `LUCID_*` variables it runs with (the same again after a restart).
    env: Vec<(&'static str, String)>,
    child: Option<Child>,
}

impl NetNode {
    /// Starts the process on the node's data directory, ports and environment.
    fn spawn(&mut self) {
        assert!(self.child.is_none(), "node {} is already running", self.node_id);
        let child = command(self.dir.path())
            .args(["run", "--http-addr", &self.http.to_string()])
            .args(["--grpc-addr", &self.grpc.to_string()])
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn lucid-node");
        self.child = Some(child);
    }

    /// Whether `/health/ready` answers 200.
    pub(crate) fn is_ready(&self) -> bool {
        get(self.http, "/health/ready").is_some_and(|(status, _)| status == 200)
    }

    /// The node's identity key, read from its data directory (the test signs work proofs in the
    /// node's name with it, as the node's own work producers would).
    pub(crate) fn key(&self) -> NodeKey {
        let text = std::fs::read_to_string(self.dir.path().join("node.key")).unwrap();
        let key = NodeKey::from_seed_hex(&text).unwrap();
        assert_eq!(key.node_id(), self.node_id);
        key
    }

    /// Kills the process with SIGKILL (a crash: no drain, no shutdown path) and reaps it.
    pub(crate) fn kill(&mut self) {
        let mut child = self.child.take().expect("the node is running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Starts the stopped node again on the same data directory, ports and environment, and
    /// waits until it is ready.
    pub(crate) fn restart(&mut self, within: Duration) -> Duration {
        let start = Instant::now();
        self.spawn();
        while !self.is_ready() {
            assert!(start.elapsed() < within, "node {} not ready after a restart", self.node_id);
            std::thread::sleep(Duration::from_millis(20));
        }
        start.elapsed()
    }

    /// The node ids `/api/v1/nodes` lists with a registration record.
    pub(crate) fn registered_ids(&self) -> Vec<String> {
        match get(self.http, "/api/v1/nodes?limit=100") {
            Some((200, body)) => serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|page| {
                    page["items"].as_array().map(|items| {
                        items
                            .iter()
                            .filter(|item| !item["payout_address"].is_null())
                            .filter_map(|item| item["node_id"].as_str().map(str::to_owned))
                            .collect()
                    })
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// GET `path` as JSON when it answers 200.
    pub(crate) fn json(&self, path: &str) -> Option<Value> {
        match get(self.http, path) {
            Some((200, body)) => serde_json::from_str(&body).ok(),
            _ => None,
        }
    }

    /// The settled tally of `epoch`, once this node froze it.
    pub(crate) fn settled_tally(&self, epoch: u64) -> Option<Value> {
        self.json(&format!("/api/v1/poot/epochs/{epoch}/tally")).filter(|t| t["settled"] == true)
    }

    /// The value of the metric sample `name` (with its labels, as written), if present.
    pub(crate) fn metric(&self, name: &str) -> Option<f64> {
        let text = get(self.http, "/metrics")?.1;
        text.lines().find_map(|line| {
            let (sample, value) = line.rsplit_once(' ')?;
            (sample == name).then(|| value.parse().ok()).flatten()
        })
    }
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
        self.registered_ids().len()
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
            let mut node = NetNode { dir, node_id, token, http, grpc, env, child: None };
            node.spawn();
            nodes.push(node);
        }
        let start = Instant::now();
        for node in &nodes {
            while !node.is_ready() {
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

    /// The current slot by the wall clock.
    pub(crate) fn current_slot(&self) -> u64 {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let now = UnixMillis(i64::try_from(now.as_millis()).unwrap());
        self.profile.params().time.slot_of(now).unwrap().0
    }

    /// Waits until every node holds the registration of every node (work signed in a node's
    /// name is refused by a node that does not know the signer yet).
    pub(crate) fn wait_for_registrations(&self) -> Duration {
        let ids: Vec<String> = self.nodes.iter().map(|node| node.node_id.to_string()).collect();
        self.wait_until("every registration on every node", Duration::from_secs(60), |net| {
            net.nodes.iter().all(|node| {
                let known = node.registered_ids();
                ids.iter().all(|id| known.contains(id))
            })
        })
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

/// A registered peer played by the test: it signs its peer calls with its own key, says
/// `Hello` with its own registration (an endpoint nobody can dial, since it serves nothing), and
/// calls the nodes' `Peer` service through the daemon's own tonic client, [`PeerClient`].
///
/// [`PeerClient`]: lucid_daemon::peers::client::PeerClient
pub(crate) struct TestPeer {
    pub(crate) key: Arc<NodeKey>,
    params: lucid_consensus::ConsensusParams,
    clock: Arc<dyn lucid_core::Clock>,
    client: lucid_daemon::peers::client::PeerClient,
    /// Its registration, signed once: a second record with the same seq and other bytes would
    /// be an equivocation.
    registration: SignedMessage,
    /// Dropped last: dropping it closes the client's connections, so a node's drain does not
    /// wait for them.
    runtime: tokio::runtime::Runtime,
}

impl TestPeer {
    /// A peer with the key of `seed` that can reach every node of `net`.
    pub(crate) fn new(net: &TestNet, seed: u8) -> TestPeer {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let params = net.profile.params();
        let key = Arc::new(NodeKey::from_seed(&[seed; 32]));
        let clock: Arc<dyn lucid_core::Clock> = Arc::new(lucid_daemon::clock::SystemClock::new());
        let table = Arc::new(lucid_daemon::peers::SharedPeers::new(
            key.node_id(),
            lucid_daemon::peers::table::PeerLimits::default(),
            Arc::clone(&clock),
        ));
        for node in &net.nodes {
            table.queue_dial(lucid_daemon::peers::PeerAddress {
                node: node.node_id,
                addr: node.grpc.to_string(),
            });
        }
        let client = lucid_daemon::peers::client::PeerClient::new(
            Arc::clone(&key),
            params.network,
            table,
            Arc::clone(&clock),
            Duration::from_secs(2),
            Duration::from_secs(5),
        );
        let registration = Registration {
            node: key.node_id(),
            seq: 1,
            ts: clock.wall(),
            payout_address: [0x41; 21],
            endpoint: Endpoint::Direct("127.0.0.1:9".into()),
            capabilities: 0,
            storage_capacity_bytes: 0,
        }
        .sign(&params.network, &key);
        TestPeer { key, params, clock, client, registration, runtime }
    }

    /// `Hello` to `node` with this peer's registration, which registers it there.
    pub(crate) fn hello(
        &self,
        node: &NetNode,
    ) -> Result<lucid_daemon::peers::client::HelloReply, TransportError> {
        self.runtime.block_on(self.client.hello(node.node_id, &self.registration, "it"))
    }

    /// `SubmitProofs` to `node`: one verdict per proof.
    pub(crate) fn submit(
        &self,
        node: &NetNode,
        proofs: Vec<SignedMessage>,
    ) -> Result<Vec<Outcome>, TransportError> {
        self.runtime.block_on(self.client.submit_proofs(node.node_id, proofs))
    }

    /// `GetSlotDigests` of `range` from `node`: count and root per slot with accepted messages.
    pub(crate) fn slot_digests(
        &self,
        node: &NetNode,
        range: SlotRange,
    ) -> Result<Vec<SlotDigest>, TransportError> {
        self.runtime.block_on(self.client.slot_digests(node.node_id, range))
    }

    /// Sends one signed `SubmitProofs` call of `proofs` to `node` twice, byte for byte (the same
    /// nonce and time): a replayed call. Returns the two answers (the verdict count, or the
    /// refusal's code).
    pub(crate) fn replay_call(
        &self,
        node: &NetNode,
        proofs: &[SignedMessage],
    ) -> [Result<usize, tonic::Code>; 2] {
        use lucid_api::grpc::convert::ToProto as _;
        let now = self.clock.wall();
        let nonce = [0x7e; 16];
        self.runtime.block_on(async {
            let endpoint = format!("http://{}", node.grpc);
            let channel =
                tonic::transport::Endpoint::from_shared(endpoint).unwrap().connect().await.unwrap();
            let mut client = lucid_api::grpc::peer_client(channel);
            let mut send = async || {
                let mut request = tonic::Request::new(lucid_api::grpc::pb::SubmitProofsRequest {
                    proofs: proofs.iter().map(|p| p.to_proto()).collect(),
                });
                lucid_api::grpc::sign_peer_call(
                    &mut request,
                    &self.key,
                    &self.params.network,
                    node.node_id,
                    lucid_api::grpc::methods::SUBMIT_PROOFS,
                    now,
                    nonce,
                );
                client
                    .submit_proofs(request)
                    .await
                    .map(|reply| reply.into_inner().verdicts.len())
                    .map_err(|status| status.code())
            };
            let first = send().await;
            let second = send().await;
            [first, second]
        })
    }

    /// Every proof `node` holds in `range`, page by page through `PullProofs`.
    pub(crate) fn pull_all(
        &self,
        node: &NetNode,
        range: SlotRange,
    ) -> Result<Vec<SignedMessage>, TransportError> {
        self.runtime.block_on(async {
            let mut all: Vec<SignedMessage> = Vec::new();
            let mut after = None;
            loop {
                let page = self.client.pull_proofs(node.node_id, range, after, 100).await?;
                let full = page.len() == 100;
                all.extend(page);
                match all.last() {
                    Some(last) if full => {
                        let (_, proof) = TaskProof::from_signed_bytes(last.bytes())
                            .map_err(|e| TransportError::Malformed(e.to_string()))?;
                        after = Some(proof.key());
                    }
                    _ => return Ok(all),
                }
            }
        })
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
    let peer = TestPeer::new(&net, 0x5e);
    assert!(peer.hello(node).unwrap().registration.is_some());
    let start = Instant::now();
    let beacons = loop {
        let now_slot = net.current_slot();
        let range = SlotRange { start: Slot(0), end: Slot(now_slot + 1) };
        let proofs = peer.pull_all(node, range).unwrap();
        if proofs.len() >= 2 || start.elapsed() > Duration::from_secs(10) {
            break proofs;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    drop(peer);
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
