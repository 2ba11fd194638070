//! Gossip overhead and convergence in the deterministic network simulation (issue 6): bytes and
//! CPU per node per slot at 100 and 1 000 simulated nodes, and the time to converge after a
//! partition as a function of network size.
//!
//! Criterion times whole simulation runs (CPU: divide by nodes × slots); the byte counts and the
//! convergence times are simulated quantities, deterministic for the seed, and are printed once
//! per configuration. The protocol is named in one place, [`protocol`]: the daemon's own
//! gossip.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use lucid_testkit::sim::daemon_gossip::DaemonGossip;
use lucid_testkit::sim::network::LinkProfile;
use lucid_testkit::sim::protocol::NodeProtocol;
use lucid_testkit::sim::scenario::PartitionSpec;
use lucid_testkit::sim::{Scenario, SimReport, run};

/// The protocol measured: change this one line to bench the real gossip.
fn protocol() -> Arc<dyn NodeProtocol> {
    Arc::new(DaemonGossip::default())
}

const SEED: u64 = 6;

fn simulate(scenario: &Scenario) -> SimReport {
    match run(scenario, protocol()) {
        Ok(report) => report,
        Err(error) => panic!("simulation failed to run: {error}"),
    }
}

#[expect(
    clippy::print_stderr,
    reason = "simulated quantities are reported beside criterion's times"
)]
fn note(line: String) {
    eprintln!("{line}");
}

/// Bytes and CPU per node per slot: honest nodes signing one beacon per slot (work proofs off,
/// so that 1 000 nodes, each storing every proof, fit in memory) over a network with 1 % loss
/// and realistic latency, no partition, no adversary.
fn overhead(c: &mut Criterion) {
    let mut group = c.benchmark_group("gossip_overhead");
    group.sample_size(10);
    for (nodes, slots) in [(100usize, 4u64), (1_000, 3)] {
        let scenario = Scenario {
            links: LinkProfile::lossy(10_000),
            work_proofs: false,
            ..Scenario::calm(SEED, nodes, slots)
        };
        // Inside the closure, so that a filtered-out size is never simulated.
        group.bench_function(format!("{nodes}_nodes_{slots}_slots"), |b| {
            let report = simulate(&scenario);
            let honest = report.traffic.total_of(&report.honest);
            let per = |value: u64| value / (nodes as u64) / slots;
            note(format!(
                "gossip_overhead/{nodes}_nodes: per node per slot sent {} B in {} messages ({} proofs), received {} B; {} divergent slots",
                per(honest.sent.bytes),
                per(honest.sent.messages),
                per(honest.sent.items),
                per(honest.received.bytes),
                report.checks.divergent_slots.len()
            ));
            b.iter(|| std::hint::black_box(simulate(&scenario)));
        });
    }
    group.finish();
}

/// Time to converge after a one-slot partition of a third of the nodes, with 10 % loss.
fn convergence(c: &mut Criterion) {
    let mut group = c.benchmark_group("gossip_convergence_after_partition");
    group.sample_size(10);
    for nodes in [25usize, 50, 100, 200] {
        let scenario = Scenario {
            links: LinkProfile::lossy(100_000),
            partitions: vec![PartitionSpec {
                isolated: nodes / 3,
                start_per_mille: 2_500,
                heal_per_mille: 3_500,
            }],
            work_proofs: false,
            ..Scenario::calm(SEED, nodes, 6)
        };
        group.bench_function(format!("{nodes}_nodes"), |b| {
            let report = simulate(&scenario);
            for heal in &report.checks.heals {
                note(format!(
                    "gossip_convergence_after_partition/{nodes}_nodes: converged {:?} ms ({:?} slots) after the heal",
                    heal.converged_after_ms, heal.converged_after_slots
                ));
            }
            b.iter(|| std::hint::black_box(simulate(&scenario)));
        });
    }
    group.finish();
}

criterion_group!(benches, overhead, convergence);
criterion_main!(benches);
