//! The simulation's one source of randomness: [`SimRng`], the workspace's seeded SplitMix64
//! generator (`lucid_core::rng`, shared with the payout crash matrix).
//!
//! Every random choice of a run (latency, loss, duplication, reordering, the neighbour graph,
//! clock skews, adversary targets) is drawn from generators derived from the scenario's seed, and
//! the run executes on one thread in a deterministic order, so a run is a pure function of its
//! seed.

/// The seeded generator of the simulation.
pub use lucid_core::rng::SplitMix64 as SimRng;
