//! The node's peers (`daemon.md` §2, service 10; §6): the bounded [`table::PeerTable`] behind
//! [`SharedPeers`] (which implements the `PeerDirectory` port of [`crate::network`]), the
//! [`gate::NodeGate`] that authenticates, bans and rate-limits every inbound `Peer` call, the
//! tonic [`client::PeerClient`] that signs every outbound call (the `PeerTransport` port), and
//! the [`maintenance::PeerMaintenance`] loop (bootstrap dials, `Hello`, peer exchange,
//! liveness and eviction).
//!
//! This module does NOT gossip proofs or run anti-entropy (the gossip service does, through the
//! two ports), and it does not decide whether a registration is valid: every record goes through
//! the node's ingest first and only accepted records enter the table.

pub(crate) mod api;
pub mod client;
pub mod gate;
pub mod maintenance;
pub mod table;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use lucid_consensus::registration::{Endpoint, Registration};
use lucid_core::{Clock, NodeId, UnixMillis};

use crate::network::{PeerDirectory, PeerFault};
use table::{PeerLimits, PeerRow, PeerState, PeerTable};

/// How often the maintenance loop exchanges peers on the main network.
pub const EXCHANGE_EVERY: Duration = Duration::from_secs(60);

/// What the peer service is configured with (`peers.*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeersConfig {
    /// Table bounds and the per-peer rate limit.
    pub limits: PeerLimits,
    /// `peers.bootstrap`.
    pub bootstrap: Vec<PeerAddress>,
    /// How often peers are exchanged (60 s; a test network may scale it down with its slot).
    pub exchange_every: Duration,
    /// Dial timeout of one connection.
    pub connect_timeout: Duration,
    /// Timeout of one call.
    pub call_timeout: Duration,
}

impl Default for PeersConfig {
    fn default() -> Self {
        PeersConfig {
            limits: PeerLimits::default(),
            bootstrap: Vec::new(),
            exchange_every: EXCHANGE_EVERY,
            connect_timeout: Duration::from_secs(5),
            call_timeout: Duration::from_secs(10),
        }
    }
}

/// A peer named by id and address: `node_<hex>@host:port` (test networks) or
/// `node_<hex>@<onion>.onion:port`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerAddress {
    /// The node the address must lead to (its `Hello` answer must be signed by it).
    pub node: NodeId,
    /// `host:port`.
    pub addr: String,
}

/// Why a peer address does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("expected node_<64 hex>@host:port: {0}")]
pub struct PeerAddressError(&'static str);

/// Longest `host:port` accepted (as in a registration's direct endpoint).
const MAX_ADDR: usize = lucid_consensus::registration::MAX_DIRECT_ENDPOINT;

impl std::str::FromStr for PeerAddress {
    type Err = PeerAddressError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (node, addr) = text.split_once('@').ok_or(PeerAddressError("no '@'"))?;
        let node: NodeId = node.parse().map_err(|_| PeerAddressError("invalid node id"))?;
        validate_host_port(addr).map_err(PeerAddressError)?;
        Ok(PeerAddress { node, addr: addr.to_owned() })
    }
}

impl std::fmt::Display for PeerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.node, self.addr)
    }
}

/// Checks `host:port`: ASCII, no spaces, at most 255 bytes, a non-empty host and a port in
/// 1..=65535 (IPv6 hosts in brackets).
pub fn validate_host_port(addr: &str) -> Result<(), &'static str> {
    if addr.is_empty() || addr.len() > MAX_ADDR {
        return Err("host:port must be 1..=255 bytes");
    }
    if !addr.is_ascii() || addr.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err("host:port must be ASCII without spaces");
    }
    let (host, port) = addr.rsplit_once(':').ok_or("missing :port")?;
    if host.is_empty() || host.contains(['/', '@', '?', '#']) {
        return Err("invalid host");
    }
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok(()),
        _ => Err("port must be 1..=65535"),
    }
}

/// The text form of an endpoint for the API (`host:port`, or the onion service key and port).
pub fn endpoint_text(endpoint: &Endpoint) -> String {
    match endpoint {
        Endpoint::Direct(addr) => addr.clone(),
        Endpoint::Onion { service_key, port } => {
            format!("onion:{}:{port}", lucid_core::ids::to_hex(service_key))
        }
    }
}

/// The peer table shared by the gate, the client, the maintenance loop and the API, with the
/// clock it reads time from and the dials queued by the operator.
pub struct SharedPeers {
    table: Mutex<PeerTable>,
    clock: Arc<dyn Clock>,
    /// Addresses to dial that are not (yet) backed by a registration: bootstrap peers and
    /// `POST /api/v1/peers`.
    dial_queue: Mutex<BTreeMap<NodeId, String>>,
}

impl SharedPeers {
    /// An empty table for `own` with `limits`.
    pub fn new(own: NodeId, limits: PeerLimits, clock: Arc<dyn Clock>) -> Self {
        SharedPeers {
            table: Mutex::new(PeerTable::new(own, limits)),
            clock,
            dial_queue: Mutex::new(BTreeMap::new()),
        }
    }

    /// Runs `f` on the table under its lock, with the current time.
    pub fn with<T>(&self, f: impl FnOnce(&mut PeerTable, UnixMillis) -> T) -> T {
        let now = self.clock.wall();
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut table, now)
    }

    /// The clock.
    pub fn now(&self) -> UnixMillis {
        self.clock.wall()
    }

    /// Offers an accepted registration record.
    pub fn offer(&self, registration: &Registration) -> table::Offered {
        self.with(|table, now| table.offer(registration, now))
    }

    /// Queues a dial of `address` (bounded by `max_known`; the oldest queued entry gives way).
    pub fn queue_dial(&self, address: PeerAddress) {
        let max = self.with(|table, _| table.limits().max_known).max(1);
        let mut queue = self.dial_queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.insert(address.node, address.addr);
        while queue.len() > max {
            queue.pop_first();
        }
    }

    /// The queued dials.
    pub fn queued_dials(&self) -> Vec<PeerAddress> {
        let queue = self.dial_queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.iter().map(|(node, addr)| PeerAddress { node: *node, addr: addr.clone() }).collect()
    }

    /// Removes a queued dial (it succeeded).
    pub fn dial_done(&self, node: &NodeId) {
        self.dial_queue.lock().unwrap_or_else(PoisonError::into_inner).remove(node);
    }

    /// The address queued for `node`, if any.
    pub fn queued_addr(&self, node: &NodeId) -> Option<String> {
        self.dial_queue.lock().unwrap_or_else(PoisonError::into_inner).get(node).cloned()
    }

    /// Every entry, for the API.
    pub fn rows(&self) -> Vec<PeerRow> {
        self.with(|table, now| table.rows(now))
    }

    /// Entries per state and bans so far, for the metrics.
    pub fn gauges(&self) -> (BTreeMap<PeerState, usize>, u64) {
        self.with(|table, now| (table.state_counts(now), table.bans_total()))
    }

    /// The metrics of the peer table in Prometheus text (`lucid_peers{state}`,
    /// `lucid_peer_bans_total`).
    pub fn render_metrics(&self) -> String {
        use std::fmt::Write as _;
        let (counts, bans) = self.gauges();
        let mut out = String::new();
        out.push_str("# HELP lucid_peers Peers in the peer table by state.\n");
        out.push_str("# TYPE lucid_peers gauge\n");
        for (state, count) in counts {
            let _ = writeln!(out, "lucid_peers{{state=\"{}\"}} {count}", state.as_str());
        }
        out.push_str("# HELP lucid_peer_bans_total Peers banned for misbehaviour.\n");
        out.push_str("# TYPE lucid_peer_bans_total counter\n");
        let _ = writeln!(out, "lucid_peer_bans_total {bans}");
        out
    }
}

impl PeerDirectory for SharedPeers {
    fn gossip_peers(&self) -> Vec<NodeId> {
        self.with(|table, now| table.connected_peers(now))
    }

    fn report(&self, peer: NodeId, fault: PeerFault) {
        let banned = self.with(|table, now| table.report(&peer, fault, now));
        if banned {
            tracing::warn!(peer = %peer, ?fault, "peer banned for one hour");
        } else {
            tracing::debug!(peer = %peer, ?fault, "peer fault counted");
        }
    }

    fn registration_accepted(&self, registration: &Registration) {
        // The table is bounded (`peers.max_known`) and keeps the record it is offered only when
        // it is newer than the one it holds.
        let offered = self.offer(registration);
        tracing::debug!(node = %registration.node, seq = registration.seq, ?offered, "registration taken into the peer table");
    }
}

#[cfg(test)]
mod tests;
