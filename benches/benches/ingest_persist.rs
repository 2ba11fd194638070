//! End-to-end ingest of signed proofs into a database (issue 3): decode, checks, parallel
//! `verify_strict`, dedupe, and the batched insert with its proof sums, through
//! `Ingest::ingest_batch`, the call the daemon's `StorePeer::submit_proofs_from` makes for every
//! `SubmitProofs` batch. Next to it, on the same machine and the same kind of batch, parallel
//! `verify_strict` alone (`Verifier::new(0)`, keys already decompressed) and the same ingest into
//! the in-memory store. Target: the ingest into a database keeps at least 80 % of the parallel
//! verification throughput.
//!
//! `pipelined_*` times the daemon's own path instead: `StorePeer::submit_proofs_from`, whose bounded
//! pipeline verifies one batch while the previous one is persisted, with two slots submitted at
//! once per iteration (8 000 proofs): as two batches of 4 000, and as eight batches of 1 000.
//!
//! Every measured batch is one fresh slot of signed proofs (4 per node, every kind), with the
//! clock inside that slot, so all of them are accepted and the tables grow as in production.
//! Signing is setup and stays outside the timing. `LUCID_BENCH_BACKENDS` narrows the databases.

#[path = "support/backends.rs"]
mod backends;

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use lucid_consensus::ConsensusParams;
use lucid_consensus::ProofValue;
use lucid_consensus::ingest::{Ingest, Verdict};
use lucid_consensus::store::{MemoryProofStore, ProofStore};
use lucid_consensus::testing;
use lucid_consensus::verify::{Verifier, VerifyItem};
use lucid_core::clock::ManualClock;
use lucid_core::keys::PublicKey;
use lucid_core::message::Message;
use lucid_core::{NodeKey, SignedMessage, Slot, UnixMillis};
use lucid_daemon::peer::StorePeer;

/// Signers; a batch is one slot of theirs: 4 000 proofs.
const NODES: u64 = 1_000;
/// The first slot a batch is signed for.
const FIRST_SLOT: u64 = 1_000;

/// One slot of signed proofs of every key, and a wall time inside that slot.
fn slot_batch(
    params: &ConsensusParams,
    keys: &[NodeKey],
    slot: u64,
) -> (Vec<SignedMessage>, UnixMillis) {
    let slot = Slot(slot);
    let messages = keys
        .iter()
        .flat_map(|key| {
            [
                ProofValue::Relay { bytes_transferred: 1 << 30, sessions_relayed: 2 },
                ProofValue::Storage { chunks_stored: 10, size_bytes: 1 << 32 },
                ProofValue::Validation { validated_sessions: 3 },
                ProofValue::Beacon { metrics_digest: None },
            ]
            .map(|value| testing::proof(params, key, slot, value).sign(&params.network, key))
        })
        .collect();
    let now =
        params.time.slot_start(slot).unwrap_or(params.time.genesis()).saturating_add_ms(60_000);
    (messages, now)
}

/// An ingest that knows every key, its registrations stored in `store`.
fn registered(
    runtime: &tokio::runtime::Runtime,
    params: ConsensusParams,
    keys: &[NodeKey],
    store: &dyn ProofStore,
) -> Ingest {
    let mut ingest = Ingest::new(params);
    let (_, now) = slot_batch(&params, &[], FIRST_SLOT);
    for key in keys {
        let message = testing::signed_registration(&params, key, 1);
        match runtime.block_on(ingest.ingest_registration(store, now, message)) {
            Ok((outcome, _)) if outcome.verdict == Verdict::Accept => {}
            other => panic!("registration refused: {other:?}"),
        }
    }
    ingest
}

/// Times `ingest_batch` of one fresh slot per iteration into `store`; every proof must be
/// accepted.
fn bench_ingest(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    name: &str,
    store: &dyn ProofStore,
    keys: &[NodeKey],
    verifier: &Verifier,
) {
    let params = testing::params();
    let mut ingest = registered(runtime, params, keys, store);
    let mut next_slot = FIRST_SLOT;
    let mut group = c.benchmark_group("ingest_persist");
    group.sample_size(10);
    group.throughput(Throughput::Elements(NODES * 4));
    group.bench_function(format!("ingest_{name}"), |b| {
        b.iter_batched(
            || {
                next_slot += 1;
                slot_batch(&params, keys, next_slot)
            },
            |(messages, now)| {
                let count = messages.len();
                let report = runtime.block_on(ingest.ingest_batch(
                    store,
                    verifier,
                    now,
                    black_box(messages),
                ));
                match report {
                    Ok(report) if report.accepted.len() == count => black_box(count),
                    Ok(report) => panic!(
                        "only {} of {count} proofs accepted: {:?}",
                        report.accepted.len(),
                        report.outcomes.iter().find(|o| o.verdict != Verdict::Accept)
                    ),
                    Err(error) => panic!("ingest failed: {error}"),
                }
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// Slots a pipelined iteration submits at once: both live at the iteration's clock.
const PIPELINED_SLOTS: u64 = 2;
/// Batches each slot is split into, one pipelined bench each: the whole slot (4 000 proofs), and
/// gossip-sized batches of 1 000 proofs.
const PIPELINED_SPLITS: [usize; 2] = [1, 4];

/// Times the daemon's own path: `StorePeer::submit_proofs_from` (the bounded pipeline that
/// verifies one batch while the previous one is persisted) with [`PIPELINED_SLOTS`] slots of
/// signed proofs submitted at once per iteration, each slot as `splits` batches of its nodes in
/// turn, the clock in the later slot so all are live.
///
/// With one batch per slot, two batches fill and drain the two-stage pipeline: the first batch's
/// verification and the last one's write overlap nothing. More, smaller batches (the size of
/// gossip batches) show the sustained rate, where every write overlaps a verification.
fn bench_pipelined(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    name: &str,
    store: Arc<dyn ProofStore>,
    keys: &[NodeKey],
    verifier: &Arc<Verifier>,
    splits: usize,
) {
    let params = testing::params();
    let (_, start) = slot_batch(&params, &[], FIRST_SLOT);
    let clock = Arc::new(ManualClock::new(start));
    let peer = runtime
        .block_on(StorePeer::load(params, Arc::clone(&store), Arc::clone(verifier), clock.clone()))
        .unwrap_or_else(|error| panic!("cannot load the peer port: {error}"));
    let ingest = peer.ingest();
    for key in keys {
        let message = testing::signed_registration(&params, key, 1);
        let outcome = runtime.block_on(async {
            ingest.lock().await.ingest_registration(store.as_ref(), start, message).await
        });
        // A duplicate when `bench_ingest` registered the key in the same database before.
        match outcome {
            Ok((outcome, _)) if matches!(outcome.verdict, Verdict::Accept | Verdict::Duplicate) => {
            }
            other => panic!("registration refused: {other:?}"),
        }
    }
    let peer = Arc::new(peer);
    // Past the slots `bench_ingest` used on the same database.
    let mut next_slot = FIRST_SLOT + 10_000 * (1 + splits as u64);
    let mut group = c.benchmark_group("ingest_persist");
    group.sample_size(10);
    group.throughput(Throughput::Elements(NODES * 4 * PIPELINED_SLOTS));
    let label = match splits {
        1 => format!("pipelined_{name}"),
        _ => format!(
            "pipelined_{name}_{}x{}",
            PIPELINED_SLOTS as usize * splits,
            keys.len() * 4 / splits
        ),
    };
    group.bench_function(label, |b| {
        b.iter_batched(
            || {
                let batches: Vec<Vec<SignedMessage>> = (0..PIPELINED_SLOTS)
                    .flat_map(|_| {
                        next_slot += 1;
                        let nodes = keys.len().div_ceil(splits);
                        keys.chunks(nodes)
                            .map(|part| slot_batch(&params, part, next_slot).0)
                            .collect::<Vec<_>>()
                    })
                    .collect();
                let (_, now) = slot_batch(&params, &[], next_slot);
                (batches, now)
            },
            |(batches, now)| {
                clock.set_wall(now);
                let count: usize = batches.iter().map(Vec::len).sum();
                let accepted = runtime.block_on(async {
                    let tasks: Vec<_> = batches
                        .into_iter()
                        .map(|batch| {
                            let peer = Arc::clone(&peer);
                            tokio::spawn(async move { peer.submit_proofs_from(None, batch).await })
                        })
                        .collect();
                    let mut accepted = 0;
                    for task in tasks {
                        match task.await {
                            Ok(Ok(outcomes)) => {
                                accepted += outcomes
                                    .iter()
                                    .filter(|o| o.verdict == Verdict::Accept)
                                    .count();
                            }
                            Ok(Err(error)) => panic!("ingest failed: {error}"),
                            Err(error) => panic!("ingest task failed: {error}"),
                        }
                    }
                    accepted
                });
                assert_eq!(accepted, count, "every proof of a fresh slot is accepted");
                black_box(accepted)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let params = testing::params();
    let keys = lucid_benches::keys(NODES);
    let verifier = Verifier::new(0).unwrap_or_else(|_| Verifier::single_threaded());
    let runtime = backends::runtime();

    // The reference: parallel verify_strict of one slot's batch, keys already decompressed.
    let (messages, _) = slot_batch(&params, &keys, FIRST_SLOT);
    let publics: Vec<PublicKey> = keys.iter().map(|k| PublicKey::of(&k.node_id())).collect();
    let items: Vec<VerifyItem<'_>> = messages
        .iter()
        .enumerate()
        .map(|(i, message)| VerifyItem::of(&publics[i / 4], message))
        .collect();
    let mut group = c.benchmark_group("ingest_persist");
    group.sample_size(10);
    group.throughput(Throughput::Elements(NODES * 4));
    group.bench_function("verify_parallel", |b| {
        b.iter(|| {
            let valid = verifier.verify_all(black_box(&items));
            assert!(valid.iter().all(|ok| *ok), "a freshly signed proof did not verify");
            valid.len()
        })
    });
    group.finish();

    bench_ingest(c, &runtime, "memory", &MemoryProofStore::new(), &keys, &verifier);
    let shared = Arc::new(Verifier::new(0).unwrap_or_else(|_| Verifier::single_threaded()));
    bench_pipelined(c, &runtime, "memory", Arc::new(MemoryProofStore::new()), &keys, &shared, 1);
    backends::on_each_backend(&runtime, |name, db| {
        bench_ingest(c, &runtime, name, db, &keys, &verifier);
        for splits in PIPELINED_SPLITS {
            bench_pipelined(c, &runtime, name, Arc::new(db.clone()), &keys, &shared, splits);
        }
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
