//! B7 (consensus.md §12): leader selection for one slot at 10 000 and 100 000 candidates.
//!
//! Targets: < 1 ms at 10 000, < 5 ms at 100 000. The realistic case has distinct credits and the
//! 16 previous winners (ranks 1..=16, the steady state of a stable ranking) cooling down. Two
//! further cases show where the cost grows: a tie of 64 entities at the top, and every candidate
//! tied, which forces one rotation hash per candidate.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use lucid_consensus::leader::{SlotResult, select};
use lucid_consensus::tally::{Tally, TallyEntry};
use lucid_consensus::testing;
use lucid_core::hash::derive_key;
use lucid_core::{EntityId, Epoch, Slot, SlotRange};

const SIZES: [usize; 2] = [10_000, 100_000];
/// First slot of epoch 2 on mainnet-length epochs, plus some.
const SLOT: Slot = Slot(1_440 + 100);

/// Node entities from the deterministic fixture keys.
fn entities(count: usize) -> Vec<EntityId> {
    lucid_benches::keys(count as u64).iter().map(|key| EntityId::Node(key.node_id())).collect()
}

/// A tally of epoch 2 ranking `entities` in order; the first `tied` share the top credits.
fn tally(entities: &[EntityId], tied: usize) -> Tally {
    let total = entities.len() as u64;
    let entries = entities
        .iter()
        .zip(0u64..)
        .map(|(entity, i)| {
            let credits = if (i as usize) < tied { 10 * total } else { 10 * (total - i) };
            TallyEntry {
                entity: *entity,
                rank: Some(u32::try_from(i + 1).unwrap_or(u32::MAX)),
                credits,
                relay: credits,
                storage: 0,
                validation: 0,
                beacon_slots: 5_040,
                density_ppm: 1_000_000,
                contributions: Vec::new(),
            }
        })
        .collect();
    Tally {
        epoch: Epoch(2),
        window: SlotRange { start: Slot(0), end: Slot(1_440) },
        revision: 0,
        entries,
        digest: derive_key("lucid-node v1 bench tally", &[&total.to_be_bytes()]),
    }
}

/// The winners of the 16 slots before [`SLOT`]: the top 16 entities of the ranking.
fn recent(entities: &[EntityId]) -> Vec<(Slot, SlotResult)> {
    entities
        .iter()
        .take(16)
        .zip(SLOT.0 - 16..)
        .map(|(winner, slot)| (Slot(slot), SlotResult::Success { winner: *winner }))
        .collect()
}

fn bench_select(c: &mut Criterion) {
    let params = testing::params();
    let all = entities(SIZES[SIZES.len() - 1]);
    let mut group = c.benchmark_group("leader_select");
    for size in SIZES {
        let candidates = &all[..size];
        let recent = recent(candidates);
        for (case, tied) in [("realistic", 0), ("top_tie_64", 64), ("all_tied", size)] {
            let tally = tally(candidates, tied);
            group.bench_with_input(BenchmarkId::new(case, size), &tally, |b, tally| {
                b.iter(|| select(&params, black_box(SLOT), Some(black_box(tally)), &recent));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_select);
criterion_main!(benches);
