//! A node's [`PeerDirectory`] in the simulation: its fixed neighbours from the seeded graph, and
//! a record of every fault reported against each peer (by the node's protocol, or by the
//! network's model of the receiving peer service).
//!
//! It scores nothing and bans nobody: the peer table is the `peers` engineer's; the simulation
//! only records, so checks can see that the adversaries were noticed.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use lucid_core::NodeId;
use lucid_daemon::network::{PeerDirectory, PeerFault};

/// Faults reported against one peer, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FaultCounts {
    /// `PeerFault::InvalidMessage`.
    pub invalid_message: u64,
    /// `PeerFault::BadSignature`.
    pub bad_signature: u64,
    /// `PeerFault::ReplayedCall`.
    pub replayed_call: u64,
    /// `PeerFault::Flooding`.
    pub flooding: u64,
    /// Kinds added to `PeerFault` after this simulation was written.
    pub other: u64,
}

impl FaultCounts {
    /// Every fault, whatever the kind.
    pub fn total(&self) -> u64 {
        self.invalid_message + self.bad_signature + self.replayed_call + self.flooding + self.other
    }

    /// The sum of two records.
    pub fn plus(self, other: FaultCounts) -> FaultCounts {
        FaultCounts {
            invalid_message: self.invalid_message + other.invalid_message,
            bad_signature: self.bad_signature + other.bad_signature,
            replayed_call: self.replayed_call + other.replayed_call,
            flooding: self.flooding + other.flooding,
            other: self.other + other.other,
        }
    }
}

/// Fixed neighbours and a fault record.
#[derive(Debug)]
pub struct SimDirectory {
    peers: Vec<NodeId>,
    faults: Mutex<BTreeMap<NodeId, FaultCounts>>,
}

impl SimDirectory {
    /// A directory whose gossip peers are `peers`.
    pub fn new(peers: Vec<NodeId>) -> Self {
        SimDirectory { peers, faults: Mutex::new(BTreeMap::new()) }
    }

    /// Faults recorded so far, per peer.
    pub fn faults(&self) -> BTreeMap<NodeId, FaultCounts> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl PeerDirectory for SimDirectory {
    fn gossip_peers(&self) -> Vec<NodeId> {
        self.peers.clone()
    }

    fn report(&self, peer: NodeId, fault: PeerFault) {
        let mut faults = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
        let counts = faults.entry(peer).or_default();
        match fault {
            PeerFault::InvalidMessage => counts.invalid_message += 1,
            PeerFault::BadSignature => counts.bad_signature += 1,
            PeerFault::ReplayedCall => counts.replayed_call += 1,
            PeerFault::Flooding => counts.flooding += 1,
            _ => counts.other += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_faults_per_peer_and_kind() {
        let a = lucid_consensus::testing::node(1);
        let b = lucid_consensus::testing::node(2);
        let directory = SimDirectory::new(vec![a, b]);
        assert_eq!(directory.gossip_peers(), vec![a, b]);
        directory.report(a, PeerFault::BadSignature);
        directory.report(a, PeerFault::BadSignature);
        directory.report(a, PeerFault::Flooding);
        directory.report(b, PeerFault::InvalidMessage);
        directory.report(b, PeerFault::ReplayedCall);
        let faults = directory.faults();
        assert_eq!(
            faults[&a],
            FaultCounts { bad_signature: 2, flooding: 1, ..FaultCounts::default() }
        );
        assert_eq!(faults[&b].total(), 2);
        assert_eq!(faults[&a].plus(faults[&b]).total(), 5);
    }
}
