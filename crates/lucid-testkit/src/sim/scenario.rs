//! A scenario: everything a run depends on besides the protocol, so that a run is a pure
//! function of its scenario (and the scenario's seed decides every random choice).

use lucid_consensus::ConsensusParams;
use lucid_core::{Slot, TimeParams, UnixMillis};

use super::adversary::AdversaryKind;
use super::network::{InboundLimits, LinkProfile};

/// Slot length of simulated networks: 12 s, one tenth of mainnet's, so every in-slot duration
/// (beacon jitter 1 s, future skew 500 ms, work proofs at 11 s) keeps a realistic ratio to
/// network latencies of tens to hundreds of milliseconds. Paused time makes the length free.
pub const SIM_SLOT_MS: u64 = 12_000;

/// Slots per epoch of simulated networks (the minimum a test network allows).
pub const SIM_SLOTS_PER_EPOCH: u64 = 8;

/// A partition in slot terms: the first `isolated` honest nodes (by index) are cut off from
/// all others from `start` until `heal`, both in thousandths of a slot since genesis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionSpec {
    /// How many honest nodes (the lowest indices) are cut off.
    pub isolated: usize,
    /// Start, in thousandths of a slot since genesis.
    pub start_per_mille: u64,
    /// Heal, in thousandths of a slot since genesis.
    pub heal_per_mille: u64,
}

impl PartitionSpec {
    /// The slot in which the partition heals.
    pub fn heal_slot(&self) -> Slot {
        Slot(self.heal_per_mille / 1_000)
    }

    /// The reference time at which it starts and heals.
    pub fn times(&self, time: &TimeParams) -> (UnixMillis, UnixMillis) {
        let at = |per_mille: u64| {
            let ms = i64::try_from(per_mille * time.slot_ms() / 1_000).unwrap_or(i64::MAX);
            time.genesis().saturating_add_ms(ms)
        };
        (at(self.start_per_mille), at(self.heal_per_mille))
    }
}

/// Everything a simulation run depends on, besides the protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// The seed of every random choice.
    pub seed: u64,
    /// Honest nodes.
    pub honest: usize,
    /// Adversarial nodes, one per entry.
    pub adversaries: Vec<AdversaryKind>,
    /// Minimum neighbours per node.
    pub degree: usize,
    /// Slots during which nodes sign and adversaries act (from slot 0).
    pub slots: u64,
    /// Slots after that during which only the protocol runs, to settle.
    pub settle_slots: u64,
    /// Link behaviour.
    pub links: LinkProfile,
    /// Receivers' per-sender limits.
    pub limits: InboundLimits,
    /// Largest clock skew of a node, either way, in milliseconds. Two nodes differ by at most
    /// twice this; keep it under half the scaled future skew (250 ms at [`SIM_SLOT_MS`]) so that
    /// honest beacons are never from the future.
    pub max_skew_ms: u64,
    /// Partitions.
    pub partitions: Vec<PartitionSpec>,
    /// Flood batches (of 1 024) per neighbour and slot of a flooder.
    pub flood_batches: u32,
    /// Whether honest nodes sign a relay work proof per slot besides their beacon.
    pub work_proofs: bool,
    /// The network's parameters.
    pub params: ConsensusParams,
}

impl Scenario {
    /// The simulated test network: genesis as mainnet's, [`SIM_SLOT_MS`] slots,
    /// [`SIM_SLOTS_PER_EPOCH`] slots per epoch.
    pub fn sim_params() -> ConsensusParams {
        let time = TimeParams::test_network(
            TimeParams::MAINNET.genesis(),
            SIM_SLOT_MS,
            SIM_SLOTS_PER_EPOCH,
        )
        .unwrap_or(TimeParams::MAINNET);
        ConsensusParams::test_network("lucid-sim", time)
    }

    /// A calm network of `honest` nodes: perfect links, no skew, no partition, no adversary.
    pub fn calm(seed: u64, honest: usize, slots: u64) -> Self {
        Scenario {
            seed,
            honest,
            adversaries: Vec::new(),
            degree: 5,
            slots,
            settle_slots: 2,
            links: LinkProfile::PERFECT,
            // An honest neighbour sends each proof at most once: at most two per node per slot
            // (beacon and work proof), plus retries; four per node leaves room.
            limits: InboundLimits {
                messages_per_slot: 4 * u64::try_from(honest).unwrap_or(u64::MAX / 8).max(100),
            },
            max_skew_ms: 0,
            partitions: Vec::new(),
            flood_batches: 4,
            work_proofs: true,
            params: Self::sim_params(),
        }
    }

    /// The scenario: `honest` honest nodes and one adversary of each kind, 10 % loss with
    /// duplication and reordering, skews up to 200 ms, and a third of the honest nodes cut off
    /// for one slot, from slot 3.5 until slot 4.5 (shorter than the grace window).
    pub fn hostile(seed: u64, honest: usize, slots: u64) -> Self {
        Scenario {
            adversaries: AdversaryKind::ALL.to_vec(),
            links: LinkProfile::lossy(100_000),
            max_skew_ms: 200,
            partitions: vec![PartitionSpec {
                isolated: honest / 3,
                start_per_mille: 3_500,
                heal_per_mille: 4_500,
            }],
            ..Self::calm(seed, honest, slots)
        }
    }

    /// All nodes: honest first, then adversaries.
    pub fn nodes(&self) -> usize {
        self.honest + self.adversaries.len()
    }

    /// The slot in which the last partition heals, if any.
    pub fn last_heal(&self) -> Option<Slot> {
        self.partitions.iter().map(PartitionSpec::heal_slot).max()
    }
}
