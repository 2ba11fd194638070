//! B5 (one incremental slide step of the rolling tally) and B8 (popcount of window rings).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use lucid_benches::{WindowProofs, WorkMix, node_ids};
use lucid_consensus::ConsensusParams;
use lucid_consensus::ring::SlotRing;
use lucid_consensus::rolling::RollingTally;
use lucid_consensus::tally::MembershipTimeline;
use lucid_core::{Slot, SlotRange};

/// B5: 10 000 solo nodes, a full mainnet window (5 040 slots) built once with the light mix
/// (beacon every slot, one work proof every fourth slot: ≈ 63 M proofs, 12.6 M bucket cells);
/// each iteration slides by one slot (evicting the oldest slot) and inserts the new slot's
/// ≈ 12 500 proofs, so the state stays at its steady size.
fn slide(c: &mut Criterion) {
    let params = ConsensusParams::mainnet();
    let membership = MembershipTimeline::new();
    let nodes = node_ids(10_000);
    let start = 100 * params.time.slots_per_epoch();
    let end = start + params.time.window_slots();
    let mut rolling = RollingTally::new(&params, Slot(start));
    for slot in start..end {
        let one = SlotRange { start: Slot(slot), end: Slot(slot + 1) };
        rolling.slide(&membership, WindowProofs::new(&nodes, one, WorkMix::Light));
    }
    let mut next = end;
    let mut group = c.benchmark_group("rolling_slide");
    group.sample_size(20);
    group.bench_function("10000_entities", |b| {
        b.iter(|| {
            let one = SlotRange { start: Slot(next), end: Slot(next + 1) };
            next += 1;
            black_box(rolling.slide(&membership, WindowProofs::new(&nodes, one, WorkMix::Light)))
        })
    });
    group.finish();
}

/// B8: popcount of 100 000 rings of 5 040 bits, each half full.
fn popcount(c: &mut Criterion) {
    let rings: Vec<SlotRing> = (0..100_000u64)
        .map(|i| {
            let mut ring = SlotRing::new(5_040);
            for s in (i % 2..5_040).step_by(2) {
                ring.insert(Slot(s));
            }
            ring
        })
        .collect();
    c.bench_function("ring_popcount_100000", |b| {
        b.iter(|| black_box(rings.iter().map(SlotRing::count).sum::<u64>()))
    });
}

criterion_group!(benches, slide, popcount);
criterion_main!(benches);
