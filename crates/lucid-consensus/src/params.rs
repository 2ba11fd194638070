//! Consensus constants and the per-network parameters every rule is evaluated with.
//!
//! Counts (grace, cooldown, fallbacks, thresholds, caps) are the same on every network; durations
//! inside a slot scale with the slot length on test networks.

use lucid_core::hash::{CTX_EPOCH_SEED, CTX_RANK, CTX_ROTATION, derive_key};
use lucid_core::{Digest, Epoch, NetworkId, TimeParams, UnixMillis};

/// A winner cannot lead the next 16 slots.
pub const COOLDOWN_SLOTS: u64 = 16;
/// Fallback candidates listed in a schedule.
pub const MAX_FALLBACKS: usize = 5;
/// Fallback candidates actually tried.
pub const MAX_FALLBACK_ATTEMPTS: usize = 3;
/// Deadline per candidate on mainnet (scaled on test networks).
pub const CANDIDATE_WINDOW_MS: u64 = 5_000;
/// A slot result is recorded at slot start plus this delay on mainnet (scaled).
pub const RESULT_DELAY_MS: u64 = 30_000;
/// Live proofs for slot s are accepted while the current slot is at most s + 2.
pub const INGEST_GRACE_SLOTS: u64 = 2;
/// Tolerated sender clock lead on mainnet (scaled).
pub const MAX_FUTURE_SKEW_MS: u64 = 5_000;
/// A pool op signed in slot s takes effect at slot s + 3.
pub const POOL_OP_DELAY_SLOTS: u64 = 3;
/// Density eligibility line, parts per million.
pub const D_MIN_PPM: u32 = 200_000;
/// Density warning line, parts per million.
pub const D_WARN_PPM: u32 = 250_000;
/// Relay credit unit: 5 MiB.
pub const BYTES_PER_SESSION: u64 = 5 * 1024 * 1024;
/// Uptime status `suspended` after this many consecutive missed slots.
pub const SUSPEND_AFTER_MISSED: u64 = 5;
/// Uptime status `inactive` below this uptime.
pub const INACTIVE_BELOW_PPM: u32 = 800_000;
/// Saturation bound of credits (fits BIGINT on both databases).
pub const CREDITS_MAX: u64 = i64::MAX as u64;
/// Parts per million in one.
pub const PPM: u64 = 1_000_000;

/// The parameters a node evaluates every consensus rule with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsensusParams {
    /// The network every signed message must name.
    pub network: NetworkId,
    /// Genesis, slot and epoch length.
    pub time: TimeParams,
}

impl ConsensusParams {
    /// Mainnet: the fixed time base and the network id derived from the name `mainnet`.
    pub fn mainnet() -> Self {
        let time = TimeParams::MAINNET;
        ConsensusParams { network: NetworkId::derive("mainnet", time.genesis()), time }
    }

    /// A test network called `name` with the given time base.
    pub fn test_network(name: &str, time: TimeParams) -> Self {
        ConsensusParams { network: NetworkId::derive(name, time.genesis()), time }
    }

    /// Tolerated sender clock lead on this network.
    pub fn max_future_skew_ms(&self) -> i64 {
        i64::try_from(self.time.scale_ms(MAX_FUTURE_SKEW_MS)).unwrap_or(i64::MAX)
    }

    /// `seed(e) = derive_key(CTX_EPOCH_SEED, network_id ‖ u64 e)`.
    pub fn epoch_seed(&self, epoch: Epoch) -> Digest {
        derive_key(CTX_EPOCH_SEED, &[self.network.as_bytes(), &epoch.0.to_be_bytes()])
    }

    /// `K_rank(e) = derive_key(CTX_RANK, seed(e))`.
    pub fn rank_key(&self, epoch: Epoch) -> Digest {
        derive_key(CTX_RANK, &[self.epoch_seed(epoch).as_bytes()])
    }

    /// `K_rot(e) = derive_key(CTX_ROTATION, seed(e))`.
    pub fn rotation_key(&self, epoch: Epoch) -> Digest {
        derive_key(CTX_ROTATION, &[self.epoch_seed(epoch).as_bytes()])
    }

    /// Whether `ts` lies inside `slot` (the timestamp rule of signed proofs).
    pub fn time_in_slot(&self, ts: UnixMillis, slot: lucid_core::Slot) -> bool {
        self.time.slot_of(ts).is_ok_and(|s| s == slot)
    }
}
