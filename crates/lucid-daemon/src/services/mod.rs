//! The daemon's long-running services, each a value that takes its dependencies explicitly
//! (ports as `Arc<dyn …>`, the node key, the time parameters, a cancellation token, metrics), so
//! that `Node` can wire them and tests can run them under a mock clock.
//!
//! - [`beacon`]: exactly one signed uptime beacon per slot, at slot start plus a per-node jitter,
//!   ingested through the same [`Ingest`] path as peer proofs;
//!   [`registration`] makes sure the node's own signed registration record exists first.
//! - [`tally`] and [`schedule`], driven together by [`consensus::ConsensusRecordsService`]: the
//!   tally of each epoch at `slot_start(720e + 2)`, its settlement at `slot_start(720(e + 1))`
//!   (after a downtime: every epoch that ended meanwhile, in order, once anti-entropy reconciled
//!   the store), the leader schedule of each slot at its start and its result at slot start +
//!   30 s, all through the write-once `RecordStore`.
//! - [`rewards`]: the epoch reward distribution, one `epoch_reward:{e}` posting per settled
//!   tally, exactly once.
//! - [`payouts`]: the payout sweep (`auto:{period}` payouts) and the payout processor (the
//!   crash-safe send protocol of `lucid-payouts` over the configured rail), with the single-flight
//!   sweep trigger of `POST /api/v1/payouts/sweep`.
//! - [`pools`]: pool health each slot: the due pool ops applied from the log, seats following
//!   their node's uptime status (`active` ⇄ `degraded`), pool statuses, gauges and health.
//! - [`resources`]: the resource monitor (`sysinfo` off the async threads), with the pure
//!   hysteresis rule in [`hysteresis`].
//!
//! Every loop runs through [`runner::run_service`]: the tick, then a wait until the next due
//! time computed from the wall clock ([`time`]); ticks never overlap (a long tick makes the
//! missed due times count as skipped, it never queues them), and a failing tick is logged,
//! counted and retried with backoff, never earlier than useful and never later than the next
//! due time.
//!
//! [`runner::spawn_supervised`] runs a service on the node's `TaskTracker` and catches a panic at
//! the task boundary, recording the service as failed in [`runner::ServiceStates`] for health.
//!
//! # Wiring (what `Node` does with these)
//! One [`SharedIngest`] for the node (peer paths and the beacon producer alike), one
//! [`metrics::ServiceMetrics`] whose [`render`](metrics::ServiceMetrics::render) is appended to
//! the node's metrics, one [`runner::ServiceStates`], and per service a child of the node's
//! cancellation token:
//! - `BeaconProducer::new(BeaconDeps { params, clock, key, registration, store, ingest,
//!   verifier, outbox })`; keep its [`status`](beacon::BeaconProducer::status) receiver.
//! - `ConsensusRecordsService::new(TallyKeeper::new(TallyDeps { .. }),
//!   ScheduleKeeper::new(ScheduleDeps { .. }))`, with the pool membership view and a
//!   [`schedule::ClaimSource`] that the peer service fills.
//! - `ResourceMonitor::new(SysinfoSampler::new(data_dir), ResourceConfig { .. }, clock,
//!   metrics)`; hand the returned [`resources::ResourceHandle`] to the API.
//!
//! This module does NOT open sockets, gossip, or read configuration files: it gets what it needs
//! as arguments, and hands what peers should see (signed messages) to a bounded channel.

pub mod beacon;
pub mod consensus;
pub mod hysteresis;
pub mod metrics;
pub mod payouts;
pub mod pools;
pub mod registration;
pub mod resources;
pub mod rewards;
pub mod runner;
pub mod schedule;
pub mod tally;
pub mod time;

use std::sync::Arc;

use lucid_consensus::ingest::{Ingest, RejectReason};
use lucid_core::{ErrorKind, HasKind, Slot};

/// The node's ingest state, shared by every path that accepts proofs (peers, the API, and the
/// node's own beacons), so that the node judges its own messages exactly like a peer's.
pub type SharedIngest = Arc<tokio::sync::Mutex<Ingest>>;

/// Why one tick of a service failed. The tick is retried; nothing here is a peer's fault.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// A store or another consensus port failed.
    #[error("{service}: consensus store failed while {action}")]
    Consensus {
        /// The service.
        service: &'static str,
        /// What was being done.
        action: &'static str,
        /// The port's error.
        #[source]
        source: lucid_consensus::Error,
    },
    /// The node's own beacon was refused by its own ingest (a bug or a misconfiguration, for
    /// example a clock that disagrees with the slot arithmetic).
    #[error("own beacon for {slot} was refused: {reason}")]
    OwnBeaconRefused {
        /// The slot.
        slot: Slot,
        /// The verdict's reason.
        reason: RejectReason,
    },
    /// One of the node's own work proofs was refused by its own ingest.
    #[error("own work proof for {slot} was refused: {reason}")]
    OwnWorkProofRefused {
        /// The slot.
        slot: Slot,
        /// The verdict's reason.
        reason: RejectReason,
    },
    /// The node's own registration record was refused by its own ingest.
    #[error("own registration (seq {seq}) was refused: {reason}")]
    OwnRegistrationRefused {
        /// The record's sequence number.
        seq: u64,
        /// The verdict's reason.
        reason: RejectReason,
    },
    /// A blocking task (tally computation, resource sampling) did not finish.
    #[error("{service}: blocking task failed: {detail}")]
    Blocking {
        /// The service.
        service: &'static str,
        /// What happened (panicked or cancelled).
        detail: String,
    },
    /// The pool store failed (reading the membership timeline).
    #[error("{service}: pool store failed while {action}")]
    Pools {
        /// The service.
        service: &'static str,
        /// What was being done.
        action: &'static str,
        /// The port's error.
        #[source]
        source: lucid_pools::Error,
    },
    /// The ledger or payout store (or the payout rail) failed.
    #[error("{service}: payouts failed while {action}")]
    Payouts {
        /// The service.
        service: &'static str,
        /// What was being done.
        action: &'static str,
        /// The port's error.
        #[source]
        source: lucid_payouts::Error,
    },
    /// Time arithmetic left the representable range.
    #[error("{service}: time out of range")]
    Time {
        /// The service.
        service: &'static str,
        /// The error.
        #[source]
        source: lucid_core::TimeError,
    },
}

impl ServiceError {
    /// A consensus-port failure of `service` while doing `action`.
    pub fn consensus(
        service: &'static str,
        action: &'static str,
    ) -> impl FnOnce(lucid_consensus::Error) -> ServiceError {
        move |source| ServiceError::Consensus { service, action, source }
    }
}

impl HasKind for ServiceError {
    fn kind(&self) -> ErrorKind {
        match self {
            ServiceError::Consensus { source, .. } => source.kind(),
            ServiceError::OwnBeaconRefused { .. }
            | ServiceError::OwnWorkProofRefused { .. }
            | ServiceError::OwnRegistrationRefused { .. } => ErrorKind::Internal,
            ServiceError::Blocking { .. } => ErrorKind::Internal,
            ServiceError::Pools { source, .. } => source.kind(),
            ServiceError::Payouts { source, .. } => source.kind(),
            ServiceError::Time { .. } => ErrorKind::InvalidInput,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
