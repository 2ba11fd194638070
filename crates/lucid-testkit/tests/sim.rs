//! Whole-network simulations: honest nodes of the daemon's own code over the seeded simulated
//! network, with loss, partitions, skew and adversaries, judged by their stores.
//!
//! The protocol under test is named once, in [`protocol`]: the daemon's own gossip.
//! Every failure message carries the seed; `LUCID_SIM_SEED=<seed>` replays a run.

use std::sync::Arc;

use lucid_testkit::sim::adversary::AdversaryKind;
use lucid_testkit::sim::daemon_gossip::DaemonGossip;
use lucid_testkit::sim::protocol::NodeProtocol;
use lucid_testkit::sim::scenario::PartitionSpec;
use lucid_testkit::sim::{Scenario, SimReport, run, seed_or};

/// The protocol every simulation here runs: the daemon's own gossip.
fn protocol() -> Arc<dyn NodeProtocol> {
    Arc::new(DaemonGossip::default())
}

#[expect(clippy::print_stderr, reason = "the run's figures are reported beside the test")]
fn run_checked(scenario: &Scenario) -> SimReport {
    let report = match run(scenario, protocol()) {
        Ok(report) => report,
        Err(error) => panic!("seed {}: the simulation did not run: {error}", scenario.seed),
    };
    eprintln!("{report}");
    let failures = report.failures();
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

/// The scenario: 100 honest nodes, 10 % loss with duplication and reordering, skews up
/// to ±200 ms, a third of the nodes cut off from slot 3.5 to slot 5, and one adversary of each
/// kind. Honest nodes end identical, agree again after the heal, store nothing forged or out of
/// window, accept no stale replay, and score every misbehaving adversary.
#[test]
fn a_hundred_nodes_converge_despite_loss_a_partition_and_adversaries() {
    // Beacons only (no work proofs), to keep the default suite fast: verification of every
    // proof on every node is most of the cost, and ranks are covered by the calm network.
    let scenario = Scenario { work_proofs: false, ..Scenario::hostile(seed_or(2026), 100, 7) };
    let report = run_checked(&scenario);
    let checks = &report.checks;
    assert_eq!(checks.heals.len(), 1);
    assert!(checks.heals[0].converged_after_ms.is_some());
    assert!(report.traffic.network.lost > 0 && report.traffic.network.partitioned > 0);
    assert!(report.traffic.network.duplicated > 0 && report.traffic.network.reordered > 0);
    assert!(!report.log.forged.is_empty() && !report.log.out_of_window.is_empty());
    assert!(!report.log.stale_replays.is_empty() && !report.log.equivocations.is_empty());
    let faults = &report.faults_against_adversaries;
    assert!(faults[&AdversaryKind::Forger].bad_signature > 0);
    assert!(faults[&AdversaryKind::OutOfWindow].invalid_message > 0);
    assert!(faults[&AdversaryKind::Flooder].flooding > 0);
    assert!(report.traffic.network.rate_limited_items > 0);
    // Honest nodes are never scored for what they relay.
    assert_eq!(report.faults_against_honest.total(), 0, "{}", report.replay_hint());
}

#[test]
fn the_same_seed_replays_the_same_run_and_another_seed_does_not() {
    let scenario = Scenario::hostile(seed_or(77), 20, 6);
    let first = run(&scenario, protocol()).unwrap();
    let second = run(&scenario, protocol()).unwrap();
    assert_eq!(first.traffic, second.traffic, "{}", first.replay_hint());
    assert_eq!(first.fingerprint, second.fingerprint, "{}", first.replay_hint());
    assert_eq!(first.log, second.log, "{}", first.replay_hint());
    assert_eq!(first.checks, second.checks, "{}", first.replay_hint());
    let other =
        run(&Scenario { seed: first.seed.wrapping_add(1), ..scenario }, protocol()).unwrap();
    assert_ne!(first.traffic, other.traffic);
}

/// A partition longer than the grace window: live gossip alone cannot bring the cut-off slots
/// back (slots 2..=3 lie beyond the grace when the partition heals at slot 6); the sealed-set
/// path of `consensus.md` §6.3 must, so the run converges.
#[test]
fn a_long_partition_converges_through_the_late_path() {
    let mut scenario = Scenario::calm(seed_or(5), 16, 10);
    scenario.partitions =
        vec![PartitionSpec { isolated: 8, start_per_mille: 2_000, heal_per_mille: 6_000 }];
    let report = run_checked(&scenario);
    assert!(report.checks.divergent_slots.is_empty(), "{}", report.replay_hint());
    assert!(report.checks.heals[0].converged_after_ms.is_some(), "{}", report.replay_hint());
    // The partition did cut traffic for four slots.
    assert!(report.traffic.network.partitioned > 0, "{}", report.replay_hint());
}

/// 1 000 nodes, the hostile scenario, beacons only (every node stores every proof: about
/// 6 M stored proofs, 2 GB, in one process). Slow: runs with `RUN_SLOW_TESTS=1` (`cargo xtask
/// ci` runs it in release).
#[test]
fn a_thousand_nodes_converge_under_the_hostile_scenario() {
    if lucid_testkit::skip_slow() {
        return;
    }
    let scenario = Scenario { work_proofs: false, ..Scenario::hostile(seed_or(1_000), 1_000, 6) };
    let report = run_checked(&scenario);
    assert!(report.checks.heals[0].converged_after_ms.is_some());
}
