//! The deterministic network simulation: many Lucid nodes in one process, on one current-thread
//! tokio runtime with paused time, talking through a seeded simulated network.
//!
//! Each honest node is the daemon's own code where it exists: `StorePeer` over a
//! `MemoryProofStore` serves its peer calls, the daemon's `BeaconProducer` signs one beacon per
//! slot through the node's `Ingest`, and the daemon's service runner drives it by a clock that
//! follows tokio's paused time plus the node's skew ([`lucid_daemon::services::time::TokioClock`]).
//! The network ([`network`]) routes every `PeerTransport` call to the target's `PeerApi` after a
//! seeded latency, with loss, duplication, reordering, partitions that heal and per-sender rate
//! limits, and counts messages and bytes per node and direction. Adversarial nodes
//! ([`adversary`]) call the transport directly with forged, replayed, equivocating,
//! out-of-window and flooding traffic. The gossip protocol is pluggable ([`protocol`]); nodes run
//! the daemon's own ([`daemon_gossip`]).
//!
//! A run ([`run::run`]) is a pure function of its [`scenario::Scenario`]: one seed decides every
//! random choice, and the runtime executes tasks in a deterministic order. A failing check
//! prints the seed, and `LUCID_SIM_SEED=<seed>` ([`seed_or`]) replays it.
//!
//! # The protocol
//! Nodes run [`daemon_gossip::DaemonGossip`], the daemon's own gossip, through the
//! [`protocol::NodeProtocol`] seam; the tests and benches name the protocol in one place each
//! (`protocol()` in `tests/sim.rs` and in the bench).
//!
//! # Invariants
//! - No wall clock, no OS randomness, no I/O: time is tokio's paused clock, randomness is
//!   [`rng::SimRng`] from the scenario's seed.
//! - Honest nodes run the daemon's and consensus' code unchanged (beacons, peer service,
//!   gossip); only the network and the adversaries are simulation code.
//! - Checks judge the nodes' stores with the consensus crate's own tally and seal root, never
//!   with numbers the protocol reports about itself.

pub mod adversary;
pub mod check;
pub mod daemon_gossip;
pub mod directory;
pub mod graph;
pub mod network;
pub mod node;
pub mod protocol;
pub mod rng;
pub mod run;
pub mod scenario;
pub mod traffic;

pub use run::{SimReport, run};
pub use scenario::Scenario;

use lucid_core::{ErrorKind, HasKind};

/// The environment variable that overrides a test's seed, to replay a failing run.
pub const SEED_VAR: &str = "LUCID_SIM_SEED";

/// The seed from [`SEED_VAR`] if it is set to a number, else `default`.
pub fn seed_or(default: u64) -> u64 {
    std::env::var(SEED_VAR).ok().and_then(|value| value.trim().parse().ok()).unwrap_or(default)
}

/// Why a simulation could not run (a failed check is a report, not an error).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The tokio runtime could not be built.
    #[error("the simulation runtime could not start: {0}")]
    Runtime(#[source] std::io::Error),
    /// A node could not be set up (its store or ingest failed).
    #[error("a simulated node could not be set up: {0}")]
    Setup(#[source] lucid_consensus::Error),
    /// A node's store could not be read for the checks.
    #[error("a simulated node's store could not be read: {0}")]
    Store(#[source] lucid_consensus::Error),
    /// The scenario cannot be run.
    #[error("invalid scenario: {0}")]
    Scenario(String),
}

impl HasKind for SimError {
    fn kind(&self) -> ErrorKind {
        match self {
            SimError::Runtime(_) => ErrorKind::Internal,
            SimError::Setup(source) | SimError::Store(source) => source.kind(),
            SimError::Scenario(_) => ErrorKind::InvalidInput,
        }
    }
}
