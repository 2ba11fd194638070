//! Work that counts on a network of real processes: the test signs relay, storage and
//! validation proofs in each node's name (with the identity key from the node's data
//! directory, as the node's own work producers will), submits them live, slot by slot, to one
//! node through the real `Peer` service as a registered [`TestPeer`], and keeps the record of
//! what was accepted, from which the expected tallies and balances follow (`consensus.md` §5,
//! §7, `pools-payouts.md` §3.1).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use lucid_consensus::ingest::Verdict;
use lucid_consensus::proof::{ProofKey, ProofValue, TaskProof};
use lucid_core::message::Message as _;
use lucid_core::{EntityId, MicroUsdt, NetworkId, NodeId, NodeKey, SignedMessage, Slot, SlotRange};
use lucid_core::{TimeParams, UnixMillis};
use serde_json::Value;

use crate::network::{NetNode, TestNet, TestPeer};

/// Bytes per relay session unit (5 MiB, `consensus.md` §5).
const MIB5: u64 = 5 * 1024 * 1024;

/// The work node `index` claims in every slot: different kinds and different credits per node,
/// and none for index 4, so that one entity stays unranked.
pub(crate) fn work_value(index: usize) -> Option<ProofValue> {
    match index {
        // ceil(bytes / 5 MiB) = 3 credits.
        0 => Some(ProofValue::Relay { bytes_transferred: 2 * MIB5 + 1, sessions_relayed: 1 }),
        // floor(1 GiB · 10 / 2^30) + 2 · 2 = 14 credits.
        1 => Some(ProofValue::Storage { chunks_stored: 2, size_bytes: 1 << 30 }),
        // 5 · 2 = 10 credits.
        2 => Some(ProofValue::Validation { validated_sessions: 2 }),
        // max(7 sessions, 0 bytes) = 7 credits.
        3 => Some(ProofValue::Relay { bytes_transferred: 0, sessions_relayed: 7 }),
        _ => None,
    }
}

/// The signed bytes of `proof` with `key`'s signature, whoever `proof` names (a forgery when
/// they differ).
pub(crate) fn sign_as(proof: &TaskProof, network: &NetworkId, key: &NodeKey) -> SignedMessage {
    let bytes = proof.to_signed_bytes(network);
    let signature = key.sign(&bytes);
    SignedMessage::new(bytes, signature)
}

/// The wall clock in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    i64::try_from(now.as_millis()).unwrap()
}

/// Credits per kind of one entity, as the tally shows them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Credits {
    pub(crate) relay: u64,
    pub(crate) storage: u64,
    pub(crate) validation: u64,
}

impl Credits {
    pub(crate) fn total(&self) -> u64 {
        self.relay + self.storage + self.validation
    }

    fn add(&mut self, value: &ProofValue) {
        let credits = value.credits();
        match value {
            ProofValue::Relay { .. } => self.relay += credits,
            ProofValue::Storage { .. } => self.storage += credits,
            ProofValue::Validation { .. } => self.validation += credits,
            ProofValue::Beacon { .. } => {}
        }
    }
}

/// The work the test signed in the nodes' names and what the network accepted of it.
pub(crate) struct WorkLog {
    pub(crate) network: NetworkId,
    pub(crate) time: TimeParams,
    /// Per node index: its identity key.
    pub(crate) keys: Vec<NodeKey>,
    /// Every proof a node answered `Accept` (or `Duplicate` on a resubmission of the same bytes).
    pub(crate) accepted: Vec<TaskProof>,
    /// Keys with equivocation evidence: they count for nothing anywhere (§6.2).
    pub(crate) voided: BTreeSet<ProofKey>,
    /// The first slot with submitted work.
    pub(crate) first_slot: Option<u64>,
    /// The last slot with submitted work: never signed again (other bytes for the same keys
    /// would be an equivocation).
    last_slot: Option<u64>,
}

impl WorkLog {
    /// A log for `net`, with every node's key read from its data directory.
    pub(crate) fn new(net: &TestNet) -> WorkLog {
        let params = net.profile.params();
        WorkLog {
            network: params.network,
            time: params.time,
            keys: net.nodes.iter().map(NetNode::key).collect(),
            accepted: Vec::new(),
            voided: BTreeSet::new(),
            first_slot: None,
            last_slot: None,
        }
    }

    /// The proof of node `index` for `slot` signed at `ts`, if the node works.
    pub(crate) fn proof(&self, index: usize, slot: Slot, ts: UnixMillis) -> Option<TaskProof> {
        let value = work_value(index)?;
        Some(TaskProof { node: self.keys[index].node_id(), slot, ts, value })
    }

    /// Signs the current slot's work of every working node and submits it to node `to` until it
    /// answers, resubmitting the same bytes after a transport failure (a new signature over a
    /// new timestamp would be an equivocation). Returns the slot, or `None` if the slot passed
    /// before any answer or its work was submitted before.
    pub(crate) fn submit_slot(&mut self, net: &TestNet, peer: &TestPeer, to: usize) -> Option<u64> {
        let ts = UnixMillis(now_ms());
        let slot = self.time.slot_of(ts).unwrap();
        if self.last_slot.is_some_and(|last| slot.0 <= last) {
            return None;
        }
        let proofs: Vec<TaskProof> =
            (0..self.keys.len()).filter_map(|index| self.proof(index, slot, ts)).collect();
        let signed: Vec<SignedMessage> = proofs
            .iter()
            .map(|proof| proof.sign(&self.network, &self.keys[self.index_of(proof.node)]))
            .collect();
        loop {
            match peer.submit(&net.nodes[to], signed.clone()) {
                Ok(outcomes) => {
                    for (proof, outcome) in proofs.iter().zip(&outcomes) {
                        match outcome.verdict {
                            Verdict::Accept | Verdict::Duplicate => self.accepted.push(*proof),
                            other => panic!("honest work of slot {} refused: {other:?}", slot.0),
                        }
                    }
                    self.first_slot.get_or_insert(slot.0);
                    self.last_slot = Some(slot.0);
                    return Some(slot.0);
                }
                Err(error) => {
                    eprintln!("submitting the work of slot {} failed: {error}", slot.0);
                    // Two slots later the proofs are stale: give up this slot.
                    if net.current_slot() > slot.0 + 1 {
                        return None;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    /// Submits every slot's work to node `to` once, at the first poll in the slot, and calls
    /// `step` after every poll (every 50 ms) with the slot whose work was just submitted, if any;
    /// stops when `step` answers `false`, or panics after `within`.
    pub(crate) fn run(
        &mut self,
        net: &TestNet,
        peer: &TestPeer,
        to: usize,
        within: Duration,
        mut step: impl FnMut(&mut WorkLog, Option<u64>) -> bool,
    ) -> Duration {
        let start = Instant::now();
        loop {
            let submitted = self.submit_slot(net, peer, to);
            if !step(self, submitted) {
                return start.elapsed();
            }
            assert!(start.elapsed() < within, "the work loop did not end within {within:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Submits every slot's work to node `to` until the wall clock reaches `until`, calling
    /// `after` with each slot whose work was submitted.
    pub(crate) fn run_until(
        &mut self,
        net: &TestNet,
        peer: &TestPeer,
        to: usize,
        until: u64,
        mut after: impl FnMut(&mut WorkLog, u64),
    ) {
        let slots = until.saturating_sub(net.current_slot());
        let within = Duration::from_millis(slots.saturating_mul(net.profile.slot_ms) * 2)
            + Duration::from_secs(30);
        self.run(net, peer, to, within, |work, submitted| {
            if let Some(slot) = submitted {
                after(work, slot);
            }
            net.current_slot() < until
        });
    }

    fn index_of(&self, node: NodeId) -> usize {
        self.keys.iter().position(|key| key.node_id() == node).unwrap()
    }

    /// Expected credits per node over `window`: the accepted proofs in it, without voided keys.
    pub(crate) fn credits(&self, window: SlotRange) -> BTreeMap<NodeId, Credits> {
        let mut credits: BTreeMap<NodeId, Credits> =
            self.keys.iter().map(|key| (key.node_id(), Credits::default())).collect();
        for proof in &self.accepted {
            if proof.slot >= window.start
                && proof.slot < window.end
                && !self.voided.contains(&proof.key())
            {
                credits.entry(proof.node).or_default().add(&proof.value);
            }
        }
        credits
    }
}

/// A decimal string of the API as an integer.
pub(crate) fn number(value: &Value) -> u64 {
    value.as_str().unwrap().parse().unwrap()
}

/// A decimal USDT string of the API in micro-USDT.
pub(crate) fn micro(value: &Value) -> u64 {
    value.as_str().unwrap().parse::<MicroUsdt>().unwrap().0
}

/// Checks one node's tally JSON of an epoch against the expected credits: every node is an
/// entity with exactly its credits per kind, an entity is ranked iff it has credits (all
/// working nodes beacon densely enough), and ranks follow credits.
pub(crate) fn assert_tally_credits(tally: &Value, expected: &BTreeMap<NodeId, Credits>) {
    let entries = tally["entries"].as_array().unwrap();
    let mut seen = BTreeMap::new();
    for entry in entries {
        let node: NodeId = entry["entity"].as_str().unwrap().parse().unwrap();
        let credits = Credits {
            relay: number(&entry["relay"]),
            storage: number(&entry["storage"]),
            validation: number(&entry["validation"]),
        };
        assert_eq!(number(&entry["credits"]), credits.total(), "{entry:#}");
        seen.insert(node, (credits, entry["rank"].as_u64()));
    }
    let seen_nodes: Vec<&NodeId> = seen.keys().collect();
    let expected_nodes: Vec<&NodeId> = expected.keys().collect();
    assert_eq!(seen_nodes, expected_nodes, "the tally names every node: {tally:#}");
    for (node, want) in expected {
        let (got, rank) = seen[node];
        assert_eq!(got, *want, "credits of {node} in {tally:#}");
        assert_eq!(rank.is_some(), want.total() > 0, "rank of {node} in {tally:#}");
    }
    // Ranked entries come first, in rank order 1..n, with non-increasing credits.
    let ranked: Vec<&Value> = entries.iter().filter(|e| !e["rank"].is_null()).collect();
    for (position, entry) in ranked.iter().enumerate() {
        assert_eq!(entry["rank"].as_u64(), Some(position as u64 + 1), "{tally:#}");
        assert!(Some(*entry) == entries.get(position), "ranked entries come first: {tally:#}");
        if position > 0 {
            assert!(number(&ranked[position - 1]["credits"]) >= number(&entry["credits"]));
        }
    }
}

/// The ranked entities of a tally JSON, in rank order.
pub(crate) fn ranked_entities(tally: &Value) -> Vec<String> {
    tally["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !e["rank"].is_null())
        .map(|e| e["entity"].as_str().unwrap().to_owned())
        .collect()
}

/// What each node must have earned from the settled `tallies` with `budget` per epoch
/// (`pools-payouts.md` §3.1: the budget split exactly over ranked entities by credits; these
/// tallies hold node entities only). An epoch without ranked entities pays nothing.
pub(crate) fn expected_earnings(tallies: &[Value], budget: u64) -> BTreeMap<String, u64> {
    let mut earned: BTreeMap<String, u64> = BTreeMap::new();
    for tally in tallies {
        let weights: Vec<(EntityId, u64)> = tally["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| !e["rank"].is_null())
            .map(|e| (e["entity"].as_str().unwrap().parse().unwrap(), number(&e["credits"])))
            .collect();
        if weights.is_empty() {
            continue;
        }
        for (entity, share) in lucid_core::money::split_exact(budget, &weights).unwrap() {
            *earned.entry(entity.to_string()).or_default() += share;
        }
    }
    earned
}
