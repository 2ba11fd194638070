//! Gossip overhead and convergence in the deterministic network simulation (issue 6): bytes and
//! CPU per node per slot at 100 and 1 000 simulated nodes, and the time to converge after a
//! partition as a function of network size (50 to 1 000 nodes).
//!
//! Every configuration is simulated once outside criterion and reported on stderr: the byte
//! counts and the convergence times are simulated quantities, deterministic for the seed, and
//! the CPU time of that run (user + system of the whole process, from `/proc/self/stat`, so it
//! does not depend on how loaded the machine is) is divided by nodes × slots. Criterion then
//! times only the 100-node overhead run, because a 1 000-node run takes minutes and criterion
//! needs at least ten samples. `LUCID_SIM_MAX_NODES=N` skips the configurations above N nodes
//! (a loaded machine may not have the minutes the largest ones take). The protocol is named in
//! one place, [`protocol`]: the daemon's own gossip.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use lucid_testkit::sim::daemon_gossip::DaemonGossip;
use lucid_testkit::sim::network::LinkProfile;
use lucid_testkit::sim::protocol::NodeProtocol;
use lucid_testkit::sim::scenario::PartitionSpec;
use lucid_testkit::sim::{Scenario, SimReport, run};

/// The protocol measured: change this one line to bench another gossip.
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

/// CPU time (user + system) of this process so far, in milliseconds; `None` where
/// `/proc/self/stat` is not available. Clock ticks are 100 per second on Linux.
fn cpu_ms() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 10)
}

/// Whether a configuration of `nodes` nodes is simulated in this run (`LUCID_SIM_MAX_NODES`).
fn wanted(nodes: usize) -> bool {
    std::env::var("LUCID_SIM_MAX_NODES")
        .ok()
        .and_then(|max| max.parse::<usize>().ok())
        .is_none_or(|max| nodes <= max)
}

/// Simulates `scenario` once; its report and the CPU milliseconds it took.
fn measured(scenario: &Scenario) -> (SimReport, Option<u64>) {
    let before = cpu_ms();
    let report = simulate(scenario);
    let spent = before.zip(cpu_ms()).map(|(before, after)| after.saturating_sub(before));
    (report, spent)
}

/// Honest nodes signing one beacon per slot (work proofs off, so that 1 000 nodes, each
/// storing every proof, fit in memory) over a network with 1 % loss and realistic latency, no
/// partition, no adversary.
fn overhead_scenario(nodes: usize, slots: u64) -> Scenario {
    Scenario {
        links: LinkProfile::lossy(10_000),
        work_proofs: false,
        ..Scenario::calm(SEED, nodes, slots)
    }
}

/// Bytes and CPU per node per slot.
fn overhead(c: &mut Criterion) {
    for (nodes, slots) in [(100usize, 4u64), (1_000, 3)] {
        if !wanted(nodes) {
            continue;
        }
        let (report, cpu) = measured(&overhead_scenario(nodes, slots));
        let honest = report.traffic.total_of(&report.honest);
        let per = |value: u64| value / (nodes as u64) / slots;
        note(format!(
            "gossip_overhead/{nodes}_nodes_{slots}_slots: per node per slot sent {} B in {} messages ({} signed messages), received {} B; CPU {} µs per node per slot ({} ms for the run); {} divergent slots",
            per(honest.sent.bytes),
            per(honest.sent.messages),
            per(honest.sent.items),
            per(honest.received.bytes),
            cpu.map_or_else(
                || "n/a".to_owned(),
                |ms| (ms * 1_000 / nodes as u64 / slots).to_string()
            ),
            cpu.map_or_else(|| "n/a".to_owned(), |ms| ms.to_string()),
            report.checks.divergent_slots.len()
        ));
    }
    let mut group = c.benchmark_group("gossip_overhead");
    group.sample_size(10);
    let scenario = overhead_scenario(100, 4);
    group.bench_function("100_nodes_4_slots", |b| {
        b.iter(|| std::hint::black_box(simulate(&scenario)));
    });
    group.finish();
}

/// Time to converge after a one-slot partition of a third of the nodes, with 10 % loss.
fn convergence(_c: &mut Criterion) {
    for nodes in [50usize, 100, 200, 500, 1_000] {
        if !wanted(nodes) {
            continue;
        }
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
        let (report, cpu) = measured(&scenario);
        for heal in &report.checks.heals {
            note(format!(
                "gossip_convergence_after_partition/{nodes}_nodes: converged {:?} ms ({:?} slots) after the heal; {} divergent slots; CPU {} ms for the run",
                heal.converged_after_ms,
                heal.converged_after_slots,
                report.checks.divergent_slots.len(),
                cpu.map_or_else(|| "n/a".to_owned(), |ms| ms.to_string()),
            ));
        }
    }
}

criterion_group!(benches, overhead, convergence);
criterion_main!(benches);
