//! Test support of the Lucid node, used only as a dev-dependency (house style H19): fakes of the
//! outside world that tests talk to over real sockets, and the deterministic network simulation.
//!
//! It holds [`fake_tron::FakeTronNode`], a FAKE TRON full node and solidity node served over
//! HTTP on loopback, faithful to the endpoints the payout client uses; and [`sim`], many nodes
//! of the daemon's own code in one process over a seeded simulated network with paused time.
//!
//! This crate does NOT reuse the code under test to judge it: the fake TRON node decodes
//! transactions with its own protobuf structs, recomputes txids and recovers signers itself, so a
//! bug in `lucid-payouts`' encoder shows up as a refusal here instead of agreeing with itself; the
//! simulation judges nodes by their stores, never by what their protocol reports. It is never a
//! normal dependency of any crate, and it reads no wall clock: the chain advances only when the
//! test says so, and the simulation runs on tokio's paused clock.
//!
//! # Invariants
//! - Everything fake is named as a fake, and the stand-in gossip protocol as a stand-in.
//! - A fake chain applies a transaction at most once (by txid) and only with a valid signature of
//!   its owner, before its expiration and with a known reference block.
//! - A simulation run is a pure function of its scenario and seed.
//!
//! # Features
//! - `session`: `fake_sessions`, the fakes of the session integrations (`FakeSessionProvider`,
//!   `FakeTrustOracle`, `FakeRdpBackend`, `FakePaymentVerifier`).
//!
//! Slow tests are gated by [`skip_slow`].
#![warn(missing_docs)]

#[cfg(feature = "session")]
pub mod fake_sessions;
pub mod fake_tron;
pub mod sim;

/// The environment variable that enables slow tests.
pub const RUN_SLOW_TESTS: &str = "RUN_SLOW_TESTS";

/// `true` (and a note on stderr) unless `RUN_SLOW_TESTS` is set to a non-empty value other than
/// `0`: slow tests return early when it says so (house style: never `#[ignore]`).
pub fn skip_slow() -> bool {
    let enabled = std::env::var(RUN_SLOW_TESTS).is_ok_and(|v| !v.is_empty() && v != "0");
    if !enabled {
        #[expect(
            clippy::print_stderr,
            reason = "a skipped test says why, where the runner shows it"
        )]
        {
            eprintln!("slow test skipped; set {RUN_SLOW_TESTS}=1 (cargo xtask ci does) to run it");
        }
    }
    !enabled
}
