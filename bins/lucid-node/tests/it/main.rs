//! Black-box tests of the real `lucid-node` binary on loopback with temporary data directories.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    reason = "a test harness: a failure is a failed test, and waiting for a real process needs real time"
)]

mod api;
mod convergence;
mod grpc;
mod harness;
mod lifecycle;
mod network;
#[cfg(feature = "blockchain")]
mod payout_kill;
#[cfg(feature = "session")]
mod sessions;
