//! B4 from storage: the tally of one epoch computed from the proofs stored in SQLite (a temporary
//! file, WAL, `synchronous = FULL`) and PostgreSQL (a private loopback server from the storage
//! test tooling, or `LUCID_TEST_POSTGRES_URL`). Target of issue 3: under 10 s on SQLite for
//! 1 000 entities over a full window.
//!
//! Setup (not timed): 1 000 solo nodes × the 5 040 slots of the window with the light mix (a
//! beacon every slot, one work proof every fourth slot) ≈ 6.3 M proofs, persisted in batches of
//! 10 000. The proofs carry a dummy signature (the store never verifies), exactly as in the
//! `persist` bench. Before timing, the tally from the database is checked against the tally
//! computed in memory from the same generator, so the bench measures a correct computation.
//!
//! Timed: `Database::tally_from_sums`: the window's evidence keys, then one `proof_sums` row per
//! node and 720-slot chunk (written at ingest) fed to `TallyBuilder::push_block`, with the
//! proof-by-proof fallback for chunks that need it (none here). With
//! `LUCID_BENCH_PROOF_BY_PROOF` set, the previous path (every proof of the window paged through
//! `Database::counted_proofs_in_range` into `TallyBuilder`) is timed too, for comparison.
//!
//! `LUCID_BENCH_TALLY_NODES` overrides the node count (for a quick trial run);
//! `LUCID_BENCH_BACKENDS` (default `sqlite,postgres`) picks the backends.

#[path = "support/backends.rs"]
mod backends;

use std::collections::HashSet;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use lucid_benches::{WindowProofs, WorkMix};
use lucid_consensus::ProofKey;
use lucid_consensus::store::{ProofStore, StoredProof, stored_proof};
use lucid_consensus::tally::{MembershipTimeline, Tally, TallyBuilder, compute_tally};
use lucid_consensus::{ConsensusParams, testing};
use lucid_core::message::Message;
use lucid_core::{Epoch, NodeKey, Signature, SignedMessage, SlotRange};
use lucid_storage::Database;

const NODES: u64 = 1_000;
const EPOCH: Epoch = Epoch(100);
/// Proofs persisted per setup batch.
const SETUP_BATCH: usize = 10_000;
/// Proofs read per page.
const PAGE: usize = 50_000;

fn node_count() -> u64 {
    std::env::var("LUCID_BENCH_TALLY_NODES").ok().and_then(|v| v.parse().ok()).unwrap_or(NODES)
}

fn window(params: &ConsensusParams) -> SlotRange {
    match params.time.window(EPOCH) {
        Ok(window) => window,
        Err(error) => panic!("epoch {EPOCH:?} has no window: {error}"),
    }
}

/// Persists the generated window (setup, not timed).
fn fill(runtime: &tokio::runtime::Runtime, db: &Database, keys: &[NodeKey]) -> u64 {
    let params = testing::params();
    let nodes: Vec<_> = keys.iter().map(NodeKey::node_id).collect();
    let by_node: std::collections::HashMap<_, _> =
        keys.iter().map(|key| (key.node_id(), key)).collect();
    let mut batch: Vec<StoredProof> = Vec::with_capacity(SETUP_BATCH);
    let mut stored = 0u64;
    let mut flush = |batch: &mut Vec<StoredProof>| {
        if let Err(error) = runtime.block_on(db.insert_proofs(batch)) {
            panic!("persisting the window failed: {error}");
        }
        stored += u64::try_from(batch.len()).unwrap_or(u64::MAX);
        batch.clear();
    };
    for counted in WindowProofs::new(&nodes, window(&params), WorkMix::Light) {
        let key = by_node[&counted.node];
        let proof = testing::proof(&params, key, counted.slot, counted.value);
        let message = SignedMessage::new(
            proof.to_signed_bytes(&params.network),
            Signature::from_bytes([0x22; 64]),
        );
        batch.push(stored_proof(proof, message, false));
        if batch.len() == SETUP_BATCH {
            flush(&mut batch);
        }
    }
    flush(&mut batch);
    stored
}

/// Tells the operator of the run what the setup stored (criterion prints only timings).
#[allow(clippy::print_stderr, reason = "bench output for the person running it")]
fn report(line: &str) {
    eprintln!("{line}");
}

/// The timed path: the tally of `EPOCH` from what the database holds, read from the per-chunk
/// proof sums (one row per node and 720-slot chunk) with the proof-by-proof fallback.
async fn tally_from_store(db: &Database, params: &ConsensusParams) -> Tally {
    match db.tally_from_sums(params, EPOCH, &MembershipTimeline::new(), 0).await {
        Ok(tally) => tally,
        Err(error) => panic!("the tally from the store failed: {error}"),
    }
}

/// The previous path, kept for comparison: every proof of the window paged through
/// `Database::counted_proofs_in_range` into `TallyBuilder`.
async fn tally_proof_by_proof(db: &Database, params: &ConsensusParams) -> Tally {
    let window = window(params);
    let evidence: HashSet<ProofKey> = match db.evidence_keys(window).await {
        Ok(keys) => keys.into_iter().collect(),
        Err(error) => panic!("reading evidence failed: {error}"),
    };
    let excluded = |key: &ProofKey| evidence.contains(key);
    let membership = MembershipTimeline::new();
    let mut builder = match TallyBuilder::new(params, EPOCH, &membership, &excluded) {
        Ok(builder) => builder,
        Err(error) => panic!("no builder: {error}"),
    };
    let mut after = None;
    loop {
        let page = match db.counted_proofs_in_range(window, after, PAGE).await {
            Ok(page) => page,
            Err(error) => panic!("reading the window failed: {error}"),
        };
        let Some(last) = page.last() else { break };
        after = Some(last.key());
        builder.extend(page);
    }
    builder.finish()
}

fn bench_backend(c: &mut Criterion, runtime: &tokio::runtime::Runtime, name: &str, db: &Database) {
    let params = testing::params();
    let count = node_count();
    let keys = lucid_benches::keys(count);
    let stored = fill(runtime, db, &keys);
    let nodes: Vec<_> = keys.iter().map(NodeKey::node_id).collect();
    let none = |_: &ProofKey| false;
    let expected = compute_tally(
        &params,
        EPOCH,
        &MembershipTimeline::new(),
        &none,
        WindowProofs::new(&nodes, window(&params), WorkMix::Light),
    );
    let got = runtime.block_on(tally_from_store(db, &params));
    // The old path is slow on SQLite; it is checked and timed only on request.
    let compare = std::env::var_os("LUCID_BENCH_PROOF_BY_PROOF").is_some();
    let by_proof = compare.then(|| runtime.block_on(tally_proof_by_proof(db, &params)));
    match expected {
        Ok(expected) if expected == got && by_proof.is_none_or(|t| t == expected) => {}
        other => panic!("{name}: the stored tally differs from the in-memory one: {other:?}"),
    }
    report(&format!(
        "{name}: {stored} proofs stored for {count} entities; {} entries",
        got.entries.len()
    ));

    let mut group = c.benchmark_group(format!("stored_tally_{name}"));
    group.sample_size(10);
    group.bench_function(format!("{count}_entities_Light"), |b| {
        b.iter(|| black_box(runtime.block_on(tally_from_store(db, &params))))
    });
    if compare {
        group.bench_function(format!("{count}_entities_Light_proof_by_proof"), |b| {
            b.iter(|| black_box(runtime.block_on(tally_proof_by_proof(db, &params))))
        });
    }
    group.finish();
}

fn bench(c: &mut Criterion) {
    let runtime = backends::runtime();
    backends::on_each_backend(&runtime, |name, db| bench_backend(c, &runtime, name, db));
}

criterion_group!(benches, bench);
criterion_main!(benches);
