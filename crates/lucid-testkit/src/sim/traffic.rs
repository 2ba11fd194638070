//! Counters of what crossed the simulated network: per node and direction, and network-wide
//! fault counts.
//!
//! Bytes are the protobuf encoding of each request and reply of the `Peer` service (the exact
//! `prost` encoding the gRPC transport would send) plus the 5-byte gRPC length prefix; HTTP/2
//! framing, headers and the signed peer-call metadata are not counted.

use std::collections::BTreeMap;

use lucid_core::NodeId;

/// The gRPC message prefix (1 flag byte and a 4-byte length).
pub const GRPC_FRAME_BYTES: u64 = 5;

/// Messages and bytes in one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flow {
    /// RPC messages (a request or a reply is one message).
    pub messages: u64,
    /// Encoded bytes.
    pub bytes: u64,
    /// Signed messages (proofs, registrations) carried inside them.
    pub items: u64,
}

impl Flow {
    pub(crate) fn add(&mut self, bytes: u64, items: u64) {
        self.messages += 1;
        self.bytes += bytes;
        self.items += items;
    }

    /// The sum of two flows.
    pub fn plus(self, other: Flow) -> Flow {
        Flow {
            messages: self.messages + other.messages,
            bytes: self.bytes + other.bytes,
            items: self.items + other.items,
        }
    }
}

/// One node's traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NodeTraffic {
    /// What the node put on the network (requests it made, replies it served).
    pub sent: Flow,
    /// What reached the node.
    pub received: Flow,
}

/// Network-wide fault and call counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NetworkStats {
    /// Calls made.
    pub calls: u64,
    /// Requests or replies dropped by random loss.
    pub lost: u64,
    /// Requests or replies dropped because a partition separated the two nodes.
    pub partitioned: u64,
    /// Requests delivered twice.
    pub duplicated: u64,
    /// Requests held back by an extra delay (so later ones overtake them).
    pub reordered: u64,
    /// Calls that ended in a timeout (lost or partitioned, or a reply too late).
    pub timeouts: u64,
    /// Calls the receiver refused (rate limit or bounds).
    pub refused: u64,
    /// Signed messages a receiver's rate limit turned away.
    pub rate_limited_items: u64,
}

/// Every node's traffic and the network's counts: the part of a run that must be identical for
/// the same seed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TrafficReport {
    /// Per node, by id.
    pub nodes: BTreeMap<NodeId, NodeTraffic>,
    /// Network-wide counts.
    pub network: NetworkStats,
}

impl TrafficReport {
    /// The sum over `nodes` (for example the honest ones).
    pub fn total_of<'a>(&self, nodes: impl IntoIterator<Item = &'a NodeId>) -> NodeTraffic {
        let mut total = NodeTraffic::default();
        for node in nodes {
            if let Some(traffic) = self.nodes.get(node) {
                total.sent = total.sent.plus(traffic.sent);
                total.received = total.received.plus(traffic.received);
            }
        }
        total
    }
}
