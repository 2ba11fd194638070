//! What a run is judged by, computed from each node's store after (or during) the run.
//!
//! - **Agreement**: per slot, the count and seal root of the proofs a node stored, leaving out
//!   keys with equivocation evidence (the first message accepted under such a key stays and may
//!   differ between nodes, `consensus.md` §6.2: such keys count for nothing anyway). Honest nodes
//!   agree when these per-slot digests are identical.
//! - **Tallies**: each honest node's tally computed by `TallyBuilder` from its own store, with
//!   its own evidence excluded; when the protocol does not spread evidence, the keys the
//!   equivocators are known to have doubled are excluded too (what every node would exclude once
//!   evidence reaches it), and the evidence check says that this is pending.
//! - **Never stored**: no honest node holds a forged or out-of-window message.
//! - **Evidence**: for every key an equivocator doubled and at least one honest node saw doubled
//!   (two different messages stored across nodes, or evidence somewhere), which honest nodes hold
//!   evidence.

use std::collections::{BTreeMap, BTreeSet};

use lucid_consensus::store::{MemoryProofStore, ProofStore};
use lucid_consensus::tally::{CountedProof, NoPools, TallyBuilder};
use lucid_consensus::{ConsensusParams, ProofKey};
use lucid_core::{Digest, Epoch, NodeId, Slot, SlotRange};

use super::SimError;

/// One node's state as the checks see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSnapshot {
    /// The node.
    pub node: NodeId,
    /// Per slot: count and seal root of the stored proofs whose key is not excluded.
    pub slots: BTreeMap<Slot, (u32, Digest)>,
    /// Keys the node holds equivocation evidence for.
    pub evidence: BTreeSet<ProofKey>,
    /// Digest of every stored proof per key (all keys, none excluded).
    pub stored: BTreeMap<ProofKey, Digest>,
    /// Keys whose proof the node stored through late acceptance.
    pub late: BTreeSet<ProofKey>,
}

/// Reads `store` over `range`, leaving `excluded` keys out of the per-slot digests.
pub async fn snapshot(
    node: NodeId,
    store: &MemoryProofStore,
    range: SlotRange,
    excluded: &BTreeSet<ProofKey>,
) -> Result<NodeSnapshot, SimError> {
    let proofs = store.proofs_in_range(range, None, usize::MAX).await.map_err(SimError::Store)?;
    let evidence: BTreeSet<ProofKey> =
        store.evidence_keys(range).await.map_err(SimError::Store)?.into_iter().collect();
    let mut per_slot: BTreeMap<Slot, Vec<Digest>> = BTreeMap::new();
    let mut stored = BTreeMap::new();
    let mut late = BTreeSet::new();
    for proof in proofs {
        let key = proof.key();
        stored.insert(key, proof.digest);
        if proof.late {
            late.insert(key);
        }
        if !excluded.contains(&key) && !evidence.contains(&key) {
            per_slot.entry(key.slot).or_default().push(proof.digest);
        }
    }
    let slots = per_slot
        .into_iter()
        .map(|(slot, digests)| {
            let count = u32::try_from(digests.len()).unwrap_or(u32::MAX);
            (slot, (count, lucid_consensus::seal::seal_root(&digests)))
        })
        .collect();
    Ok(NodeSnapshot { node, slots, evidence, stored, late })
}

/// The slots of `range` on which the snapshots do not all agree.
pub fn divergent_slots(snapshots: &[NodeSnapshot], range: SlotRange) -> Vec<Slot> {
    let empty = (0, Digest::ZERO);
    (range.start.0..range.end.0)
        .map(Slot)
        .filter(|slot| {
            let mut views = snapshots.iter().map(|s| s.slots.get(slot).copied().unwrap_or(empty));
            let Some(first) = views.next() else { return false };
            views.any(|view| view != first)
        })
        .collect()
}

/// How one key of a divergent slot is spread over the honest nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySpread {
    /// The key.
    pub key: ProofKey,
    /// Honest nodes that count it (stored, and neither evidence nor a known doubled key).
    pub holders: usize,
    /// Of those, nodes that stored it through late acceptance.
    pub late_holders: usize,
    /// Distinct messages stored under the key among the holders.
    pub versions: usize,
    /// Honest nodes that lack it although one of their neighbours holds it live (so its sealed
    /// set could give it to them).
    pub lacking_next_to_live: usize,
}

/// The keys of `slot` that not every honest node counts alike (held by some and not others, or
/// held in different versions): why the slot diverges. `neighbours[i]` are the neighbours of
/// honest node `i` (indices of `snapshots`; others are ignored).
pub fn key_spread(
    snapshots: &[NodeSnapshot],
    neighbours: &[Vec<usize>],
    slot: Slot,
    excluded: &BTreeSet<ProofKey>,
) -> Vec<KeySpread> {
    // Per key: indices of the nodes counting it, and whether each stored it late.
    let mut per_key: BTreeMap<ProofKey, Vec<(usize, bool, Digest)>> = BTreeMap::new();
    for (index, snap) in snapshots.iter().enumerate() {
        for (key, digest) in &snap.stored {
            if key.slot != slot || excluded.contains(key) || snap.evidence.contains(key) {
                continue;
            }
            per_key.entry(*key).or_default().push((index, snap.late.contains(key), *digest));
        }
    }
    per_key
        .into_iter()
        .filter_map(|(key, holders)| {
            let versions: BTreeSet<Digest> = holders.iter().map(|(_, _, d)| *d).collect();
            if holders.len() == snapshots.len() && versions.len() == 1 {
                return None;
            }
            let counting: BTreeSet<usize> = holders.iter().map(|(i, _, _)| *i).collect();
            let live: BTreeSet<usize> =
                holders.iter().filter(|(_, late, _)| !late).map(|(i, _, _)| *i).collect();
            let lacking_next_to_live = (0..snapshots.len())
                .filter(|index| !counting.contains(index))
                .filter(|index| {
                    neighbours.get(*index).is_some_and(|n| n.iter().any(|m| live.contains(m)))
                })
                .count();
            Some(KeySpread {
                key,
                holders: holders.len(),
                late_holders: holders.len() - live.len(),
                versions: versions.len(),
                lacking_next_to_live,
            })
        })
        .collect()
}

/// The tally of `epoch` from `store`, with `excluded` keys counting for nothing.
pub async fn tally_digest(
    params: &ConsensusParams,
    epoch: Epoch,
    store: &MemoryProofStore,
    excluded: &BTreeSet<ProofKey>,
) -> Result<(Digest, usize), SimError> {
    let exclude = |key: &ProofKey| excluded.contains(key);
    let mut builder =
        TallyBuilder::new(params, epoch, &NoPools, &exclude).map_err(SimError::Store)?;
    let window = builder.window();
    let proofs = store.proofs_in_range(window, None, usize::MAX).await.map_err(SimError::Store)?;
    builder.extend(proofs.into_iter().map(|p| CountedProof {
        node: p.proof.node,
        slot: p.proof.slot,
        value: p.proof.value,
    }));
    let tally = builder.finish();
    Ok((tally.digest, tally.ranked().len()))
}

/// How far equivocation evidence spread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvidenceCoverage {
    /// Keys an equivocator doubled.
    pub doubled: usize,
    /// Of those, keys the honest network saw doubled (two messages stored, or evidence).
    pub observed: usize,
    /// (observed key, honest node) pairs where the node holds no evidence.
    pub missing: usize,
    /// Honest nodes.
    pub nodes: usize,
}

/// Evidence coverage of the `doubled` keys over the honest snapshots.
pub fn evidence_coverage(
    snapshots: &[NodeSnapshot],
    doubled: &BTreeSet<ProofKey>,
) -> EvidenceCoverage {
    let mut coverage = EvidenceCoverage {
        doubled: doubled.len(),
        nodes: snapshots.len(),
        ..EvidenceCoverage::default()
    };
    for key in doubled {
        let versions: BTreeSet<Digest> =
            snapshots.iter().filter_map(|s| s.stored.get(key).copied()).collect();
        let holders = snapshots.iter().filter(|s| s.evidence.contains(key)).count();
        if versions.len() > 1 || holders > 0 {
            coverage.observed += 1;
            coverage.missing += snapshots.len() - holders;
        }
    }
    coverage
}

/// `(node, digest)` pairs where an honest node stored a message that must never be stored.
pub fn stored_forbidden(
    snapshots: &[NodeSnapshot],
    forbidden: &BTreeSet<Digest>,
) -> Vec<(NodeId, Digest)> {
    snapshots
        .iter()
        .flat_map(|s| {
            s.stored.values().filter(|d| forbidden.contains(d)).map(move |d| (s.node, *d))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use lucid_consensus::proof::ProofKind;
    use lucid_consensus::store::stored_proof;
    use lucid_consensus::testing;
    use lucid_core::message::Message;

    use super::*;

    fn store_with(beacons: &[(u64, u64)]) -> MemoryProofStore {
        let params = testing::small_params();
        let store = MemoryProofStore::new();
        let proofs: Vec<_> = beacons
            .iter()
            .map(|(node, slot)| {
                let key = testing::key(*node);
                let proof = testing::proof(&params, &key, Slot(*slot), testing::BEACON);
                let signed = proof.sign(&params.network, &key);
                stored_proof(proof, signed, false)
            })
            .collect();
        pollster::block_on(store.insert_proofs(&proofs)).unwrap();
        store
    }

    fn snap(index: u64, store: &MemoryProofStore, excluded: &BTreeSet<ProofKey>) -> NodeSnapshot {
        let range = SlotRange { start: Slot(0), end: Slot(10) };
        pollster::block_on(snapshot(testing::node(index), store, range, excluded)).unwrap()
    }

    #[test]
    fn agreement_finds_exactly_the_slots_that_differ() {
        let none = BTreeSet::new();
        let a = snap(100, &store_with(&[(1, 1), (2, 1), (1, 2)]), &none);
        let b = snap(101, &store_with(&[(2, 1), (1, 1), (1, 2)]), &none);
        let c = snap(102, &store_with(&[(1, 1), (2, 1), (1, 3)]), &none);
        let range = SlotRange { start: Slot(0), end: Slot(10) };
        assert!(divergent_slots(&[a.clone(), b.clone()], range).is_empty());
        assert_eq!(divergent_slots(&[a.clone(), b, c.clone()], range), vec![Slot(2), Slot(3)]);
        // An excluded key no longer counts.
        let key = ProofKey { node: testing::node(1), slot: Slot(2), kind: ProofKind::UptimeBeacon };
        let other =
            ProofKey { node: testing::node(1), slot: Slot(3), kind: ProofKind::UptimeBeacon };
        let excluded = BTreeSet::from([key, other]);
        let a = snap(100, &store_with(&[(1, 1), (2, 1), (1, 2)]), &excluded);
        let c = snap(102, &store_with(&[(1, 1), (2, 1), (1, 3)]), &excluded);
        assert!(divergent_slots(&[a, c], range).is_empty());
    }

    #[test]
    fn key_spread_names_the_keys_some_nodes_lack_and_who_could_give_them() {
        let none = BTreeSet::new();
        // Nodes a and b hold beacons of 1 and 2 in slot 1; c lacks 2's; d lacks both.
        let a = snap(100, &store_with(&[(1, 1), (2, 1)]), &none);
        let b = snap(101, &store_with(&[(1, 1), (2, 1)]), &none);
        let c = snap(102, &store_with(&[(1, 1)]), &none);
        let d = snap(103, &store_with(&[]), &none);
        // b stored 2's beacon late.
        let key2 =
            ProofKey { node: testing::node(2), slot: Slot(1), kind: ProofKind::UptimeBeacon };
        let mut b = b;
        b.late.insert(key2);
        let key1 =
            ProofKey { node: testing::node(1), slot: Slot(1), kind: ProofKind::UptimeBeacon };
        // a line a - b - c - d: c's only live holder of key2 would be a, which is not its
        // neighbour; d is next to c, which holds key1 live.
        let neighbours = vec![vec![1], vec![0, 2], vec![1, 3], vec![2]];
        let snaps = [a, b, c, d];
        let spread = key_spread(&snaps, &neighbours, Slot(1), &none);
        let mut expected = vec![
            KeySpread {
                key: key1,
                holders: 3,
                late_holders: 0,
                versions: 1,
                lacking_next_to_live: 1,
            },
            KeySpread {
                key: key2,
                holders: 2,
                late_holders: 1,
                versions: 1,
                lacking_next_to_live: 0,
            },
        ];
        expected.sort_by_key(|spread| spread.key);
        assert_eq!(spread, expected);
        // A key every node holds alike is not listed; an excluded key is not either.
        assert!(key_spread(&snaps[..2], &neighbours, Slot(1), &none).is_empty());
        assert_eq!(key_spread(&snaps, &neighbours, Slot(1), &BTreeSet::from([key1, key2])), vec![]);
    }

    #[test]
    fn forbidden_digests_and_evidence_coverage_are_found() {
        let none = BTreeSet::new();
        let a = snap(100, &store_with(&[(1, 1)]), &none);
        let b = snap(101, &store_with(&[(2, 1)]), &none);
        let stored = *a.stored.values().next().unwrap();
        let forbidden = BTreeSet::from([stored, Digest::ZERO]);
        assert_eq!(stored_forbidden(&[a.clone(), b.clone()], &forbidden), vec![(a.node, stored)]);
        let key = ProofKey { node: testing::node(1), slot: Slot(1), kind: ProofKind::UptimeBeacon };
        let unseen =
            ProofKey { node: testing::node(3), slot: Slot(1), kind: ProofKind::UptimeBeacon };
        let coverage = evidence_coverage(&[a, b], &BTreeSet::from([key, unseen]));
        // Only node a stored the key, once, with no evidence: not observed as doubled.
        assert_eq!(coverage, EvidenceCoverage { doubled: 2, observed: 0, missing: 0, nodes: 2 });
    }
}
