//! Black-box tests of the real `lucid-node` binary on loopback with temporary data directories.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    clippy::print_stderr,
    reason = "a test harness: a failure is a failed test, waiting for a real process needs real time, and the helpers of real-process tests report their progress and figures on stderr"
)]

mod api;
mod convergence;
mod grpc;
mod harness;
mod joins;
mod lifecycle;
mod network;
// With `blockchain`, `payouts.enabled` needs the `tron.*` keys (a real rail); this test runs the
// payer on the ledger rail, so it runs in the build without that feature (the default suite).
#[cfg(not(feature = "blockchain"))]
mod payer;
#[cfg(feature = "blockchain")]
mod payout_kill;
mod restart;
#[cfg(feature = "session")]
mod sessions;
mod work;
