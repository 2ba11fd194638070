//! Whole-network simulations: honest nodes of the daemon's own code over the seeded simulated
//! network, with loss, partitions, skew and adversaries, judged by their stores.
//!
//! The protocol under test is named once, in [`protocol`]: today the STAND-IN gossip of
//! `lucid_testkit::sim::standin`; the real gossip of `lucid-daemon` replaces it there.
//! Every failure message carries the seed; `LUCID_SIM_SEED=<seed>` replays a run.

use std::sync::Arc;

use lucid_testkit::sim::protocol::NodeProtocol;
use lucid_testkit::sim::standin::StandInGossip;
use lucid_testkit::sim::{Scenario, SimReport, run, seed_or};

/// The protocol every simulation here runs: change this one line to test the real gossip.
fn protocol() -> Arc<dyn NodeProtocol> {
    Arc::new(StandInGossip::default())
}

fn run_checked(scenario: &Scenario) -> SimReport {
    let protocol = protocol();
    let accepts_late = protocol.accepts_late();
    let report = run(scenario, protocol).unwrap();
    eprintln!("{report}");
    let failures = report.failures(accepts_late);
    assert!(failures.is_empty(), "{}\n{report}", failures.join("\n"));
    report
}

#[test]
fn a_calm_network_agrees_on_every_slot() {
    let report = run_checked(&Scenario::calm(seed_or(1), 12, 6));
    let checks = &report.checks;
    // Every honest node holds a beacon and a relay proof of every node for every slot.
    assert_eq!(checks.proofs_per_node, 12 * 2 * 6);
    assert_eq!(checks.ranked, 12);
    assert_eq!(report.traffic.network.lost, 0);
}
