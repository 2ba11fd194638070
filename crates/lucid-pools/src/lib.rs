//! Pools: groups of at most 100 nodes that earn, rank and lead as one entity.
//!
//! This crate owns the signed `pool-op` message ([`op::PoolOp`]), the membership rules of
//! `pools-payouts.md` §2 (the 100-node cap, one seat per node, pool and member state machines,
//! deterministic leader succession), the in-memory membership state that applies the ops of a
//! slot in canonical order ([`state::PoolState`]), the membership timeline handed to consensus,
//! the op log of accepted signed ops with its application at the effect slot and the T10 rebuild
//! ([`log`]), the [`store::PoolStore`] port that the SQL adapter implements (with an in-memory
//! implementation, [`store::MemoryPoolStore`]), the precondition checks every store applies in
//! the same order ([`checks`]: pure functions, so the refusal rules exist once), and the split of a pool's reward share among its
//! members ([`split::split_pool_share`]).
//!
//! Membership changes only through signed pool ops, which take effect three slots after the slot
//! they were signed in. At the start of slot t every node applies the accepted ops signed in slot
//! t − 3 in one canonical order (op tag, then message digest), so the same op set yields the same
//! membership on every node whatever the arrival order. Bad ops are data: each op ends applied or
//! rejected with a typed [`state::RejectReason`]; `Result` is reserved for failures of our own
//! machinery.
//!
//! This crate does NOT do I/O, read a clock, use an async runtime, verify signatures (ingest in
//! `lucid-consensus` does), speak SQL (`lucid-storage` implements the port), or post rewards to a
//! ledger (`lucid-payouts` does, using the split computed here).
//! The `PoolStore` port is async through `async-trait`, which needs no runtime, because its
//! database adapters are; everything else is synchronous.
//!
//! # Invariants
//! - A node holds at most one seat (a membership in status active, degraded or leaving) anywhere.
//! - Every pool that is not disbanded and has a seat has exactly one leader, and the leader holds
//!   a seat; when the leader's seat closes, the seat holder with the smallest `from_slot` (ties by
//!   `NodeId`) succeeds, and a pool without seat holders is disbanded.
//! - `seats <= max_nodes <= MAX_NODES_PER_POOL` (100) and `max_nodes >= 1` at every instant.
//! - Only the pool and member transitions of `pools-payouts.md` §2.3 occur; `disbanded` is terminal.
//! - The same op set applied in any arrival order yields the same membership.
//! - Every accepted op is in the op log, byte for byte as signed, before it is acknowledged; at
//!   most one op per (signer, slot) is logged; a rebuild from the log equals the incrementally
//!   maintained state.
//! - An op's effect and its recorded outcome are committed together
//!   ([`store::PoolStore::apply_and_settle`]): a crash never leaves an op applied but pending.
//! - A pool share is split exactly: the shares sum to the amount, ties go by `NodeId`, and a split
//!   with no contributing member is an error, so money never vanishes.
//! - No floating-point type appears in this crate.
//!
//! # Features
//! - `testing`: the `test_support` module (fixtures and the random op-log generator) for other
//!   crates' tests, such as the storage adapter's model-based test.
#![warn(missing_docs)]
#![deny(clippy::float_arithmetic)]

pub mod checks;
pub mod error;
pub mod log;
pub mod model;
pub mod op;
pub mod split;
pub mod state;
pub mod store;

#[cfg(any(test, feature = "testing"))]
pub mod test_support;

pub use error::Error;
pub use log::{LogOutcome, LoggedOp, OpState, SignedOp};
pub use model::{
    Liveness, MAX_NODES_PER_POOL, MIN_ACTIVE_MEMBERS, MemberStatus, Membership, Pool, PoolStatus,
    Role,
};
pub use op::{AcceptedOp, Op, OpTag, PoolOp};
pub use split::split_pool_share;
pub use state::{OpOutcome, OpResult, PoolState, RejectReason};
pub use store::{JoinAdmission, MemoryPoolStore, PoolStore, SeatOutcome};
