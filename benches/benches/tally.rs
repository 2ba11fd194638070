//! B4 (full tally over one mainnet window, streamed) and B6 (ranking with the keyed tie-break).

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use lucid_benches::{WindowProofs, WorkMix, node_ids};
use lucid_consensus::tally::{MembershipTimeline, TallyEntry, compute_tally, rank_entries};
use lucid_consensus::{ConsensusParams, ProofKey};
use lucid_core::{EntityId, Epoch, PoolId};

fn none(_: &ProofKey) -> bool {
    false
}

/// B4: 1 000 nodes (each its own entity) × 5 040 slots × 4 proofs ≈ 20.2 M proofs, and 10 000
/// nodes with the light mix (beacon every slot, one work proof every fourth) ≈ 63 M proofs.
fn full_tally(c: &mut Criterion) {
    let params = ConsensusParams::mainnet();
    let epoch = Epoch(100);
    let window = params
        .time
        .window(epoch)
        .unwrap_or(lucid_core::SlotRange { start: lucid_core::Slot(0), end: lucid_core::Slot(0) });
    // Every node is solo: the timeline knows them all as seatless, which is the common case.
    let membership = MembershipTimeline::new();
    let mut group = c.benchmark_group("tally_full_window");
    group.sample_size(10);
    for (count, mix) in [(1_000u64, WorkMix::Full), (10_000, WorkMix::Light)] {
        let nodes = node_ids(count);
        group.bench_function(format!("{count}_entities_{mix:?}"), |b| {
            b.iter(|| {
                let proofs = WindowProofs::new(&nodes, window, mix);
                black_box(compute_tally(&params, epoch, &membership, &none, proofs))
            })
        });
    }
    group.finish();
}

fn entries(count: u32, distinct_credits: bool) -> Vec<TallyEntry> {
    (0..count)
        .map(|i| {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&i.to_be_bytes());
            id[4..8].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
            let credits = if distinct_credits {
                u64::from(i.wrapping_mul(2_654_435_761) % 1_000_000) + 1
            } else {
                1_000
            };
            TallyEntry {
                entity: EntityId::Pool(PoolId::from_bytes(id)),
                rank: None,
                credits,
                relay: credits,
                storage: 0,
                validation: 0,
                beacon_slots: 5_040,
                density_ppm: if i % 10 == 0 { 100_000 } else { 1_000_000 },
                contributions: Vec::new(),
            }
        })
        .collect()
}

/// B6: ranking of 100 / 10 000 / 100 000 entries (10 % unranked by density); mostly distinct
/// credits (ties only where they collide), plus the worst case of 10 000 all tied.
fn ranking(c: &mut Criterion) {
    let params = ConsensusParams::mainnet();
    let epoch = Epoch(100);
    let key = params.rank_key(epoch);
    let mut group = c.benchmark_group("ranking");
    for (count, distinct) in [(100, true), (10_000, true), (100_000, true), (10_000, false)] {
        let input = entries(count, distinct);
        let name = if distinct { format!("{count}") } else { format!("{count}_all_tied") };
        group.bench_function(name, |b| {
            b.iter_batched(
                || input.clone(),
                |entries| black_box(rank_entries(&key, epoch, entries)),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, full_tally, ranking);
criterion_main!(benches);
