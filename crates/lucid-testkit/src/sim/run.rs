//! Running a scenario: build the nodes, start their signers, adversaries and protocol on one
//! current-thread tokio runtime with paused time, probe convergence after each heal, stop, and
//! judge the stores.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use lucid_consensus::ProofKey;
use lucid_consensus::store::MemoryProofStore;
use lucid_consensus::verify::Verifier;
use lucid_core::{Clock, Digest, Epoch, NodeId, Slot, SlotRange, UnixMillis};
use lucid_daemon::network::{PeerDirectory, PeerTransport};
use lucid_daemon::services::time::TokioClock;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::SimError;
use super::adversary::{Adversary, AdversaryKind, AdversaryLog, SharedLog};
use super::check::{
    EvidenceCoverage, NodeSnapshot, divergent_slots, evidence_coverage, snapshot, stored_forbidden,
    tally_digest,
};
use super::directory::{FaultCounts, SimDirectory};
use super::graph::Graph;
use super::network::{Partition, SimNetwork};
use super::node::{GenesisRecord, NodeParts};
use super::protocol::{NodeContext, NodeProtocol};
use super::rng::SimRng;
use super::scenario::Scenario;
use super::traffic::TrafficReport;

/// Key index of the first adversary (honest nodes use 0..honest).
const ADVERSARY_KEY_BASE: u64 = 1_000_000;

/// How fast the honest nodes agreed again after a partition healed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealConvergence {
    /// When the partition healed (reference time).
    pub heal: UnixMillis,
    /// The slots checked: every slot that started before the heal.
    pub checked: SlotRange,
    /// The first probe (every half slot after the heal) at which every honest node agreed on
    /// every checked slot; `None` if none did before the run ended.
    pub converged_after_ms: Option<u64>,
    /// The same in slots, rounded up.
    pub converged_after_slots: Option<u64>,
}

/// The judgement of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checks {
    /// The slots compared: from genesis to the end of signing.
    pub window: SlotRange,
    /// Slots on which honest nodes disagree at the end.
    pub divergent_slots: Vec<Slot>,
    /// Distinct tally digests among honest nodes (1 when they agree), for `tally_epoch`.
    pub distinct_tallies: usize,
    /// The epoch whose tally was compared (its window covers every signed slot).
    pub tally_epoch: Epoch,
    /// Ranked entities in the first honest node's tally.
    pub ranked: usize,
    /// Honest nodes holding a forged or out-of-window message, with its digest.
    pub forbidden_stored: Vec<(NodeId, Digest)>,
    /// Spread of equivocation evidence.
    pub evidence: EvidenceCoverage,
    /// Per healed partition.
    pub heals: Vec<HealConvergence>,
    /// Proofs held by the first honest node in the window.
    pub proofs_per_node: usize,
}

/// Everything a run produced.
#[derive(Clone, Debug)]
pub struct SimReport {
    /// The seed.
    pub seed: u64,
    /// The protocol's name.
    pub protocol: &'static str,
    /// The scenario.
    pub scenario: Scenario,
    /// Honest node ids, by index.
    pub honest: Vec<NodeId>,
    /// Adversarial node ids with their kind.
    pub adversaries: Vec<(AdversaryKind, NodeId)>,
    /// Traffic counters.
    pub traffic: TrafficReport,
    /// What the adversaries did and were answered.
    pub log: AdversaryLog,
    /// Faults honest nodes recorded against each adversary kind.
    pub faults_against_adversaries: BTreeMap<AdversaryKind, FaultCounts>,
    /// Faults honest nodes recorded against honest peers.
    pub faults_against_honest: FaultCounts,
    /// Accepted proofs dropped because a node's feed was full.
    pub feed_dropped: u64,
    /// The judgement.
    pub checks: Checks,
    /// A digest of every honest node's final state (per-slot digests, evidence, tally): equal
    /// for two runs exactly when they ended in the same state.
    pub fingerprint: Digest,
}

impl SimReport {
    /// How to replay this run.
    pub fn replay_hint(&self) -> String {
        format!("seed {seed}; replay with {var}={seed}", seed = self.seed, var = super::SEED_VAR)
    }

    /// Every violated expectation, each prefixed with the replay hint; empty when the run is
    /// good. Every protocol a node runs spreads evidence and recovers proofs older than the live
    /// grace (sealed sets and late acceptance, `consensus.md` §6.3), so honest nodes must agree
    /// on every slot and converge after every heal, whatever the partition's length.
    pub fn failures(&self) -> Vec<String> {
        let hint = self.replay_hint();
        let checks = &self.checks;
        let mut failures = Vec::new();
        if !checks.divergent_slots.is_empty() {
            failures.push(format!(
                "{hint}: honest nodes disagree on slots {:?}",
                checks.divergent_slots
            ));
        }
        if checks.distinct_tallies != 1 {
            failures.push(format!(
                "{hint}: {} different tallies of {}",
                checks.distinct_tallies, checks.tally_epoch
            ));
        }
        for heal in &checks.heals {
            if heal.converged_after_ms.is_none() {
                failures.push(format!("{hint}: no convergence after the heal at {}", heal.heal));
            }
        }
        if !checks.forbidden_stored.is_empty() {
            failures.push(format!(
                "{hint}: forged or out-of-window messages stored: {:?}",
                checks.forbidden_stored
            ));
        }
        if self.log.stale_replays_accepted > 0 {
            failures.push(format!(
                "{hint}: {} stale replays accepted",
                self.log.stale_replays_accepted
            ));
        }
        if checks.evidence.missing > 0 {
            failures.push(format!("{hint}: evidence missing: {:?}", checks.evidence));
        }
        failures
    }
}

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.scenario;
        let checks = &self.checks;
        let honest = self.traffic.total_of(&self.honest);
        let per_node_slot = |value: u64| {
            value / u64::try_from(self.honest.len()).unwrap_or(1).max(1) / s.slots.max(1)
        };
        writeln!(f, "simulation {} with {}", self.replay_hint(), self.protocol)?;
        writeln!(
            f,
            "  {} honest + {} adversarial nodes, degree {}, {} slots (+{} settling), loss {} ppm, skew ±{} ms, {} partition(s)",
            s.honest,
            s.adversaries.len(),
            s.degree,
            s.slots,
            s.settle_slots,
            s.links.loss_ppm,
            s.max_skew_ms,
            s.partitions.len()
        )?;
        writeln!(
            f,
            "  honest traffic per node per slot: sent {} B in {} messages, received {} B",
            per_node_slot(honest.sent.bytes),
            per_node_slot(honest.sent.messages),
            per_node_slot(honest.received.bytes)
        )?;
        writeln!(f, "  network: {:?}", self.traffic.network)?;
        writeln!(
            f,
            "  checks: divergent slots {:?}, {} tally digest(s) for {} ({} ranked), {} forbidden stored, evidence {:?}, {} proofs per node",
            checks.divergent_slots,
            checks.distinct_tallies,
            checks.tally_epoch,
            checks.ranked,
            checks.forbidden_stored.len(),
            checks.evidence,
            checks.proofs_per_node
        )?;
        for heal in &checks.heals {
            writeln!(
                f,
                "  heal at {}: slots {}..{} converged after {:?} ms ({:?} slots)",
                heal.heal,
                heal.checked.start,
                heal.checked.end,
                heal.converged_after_ms,
                heal.converged_after_slots
            )?;
        }
        for (kind, faults) in &self.faults_against_adversaries {
            writeln!(
                f,
                "  faults against {kind:?}: {faults:?}; verdicts {:?}",
                self.log.verdicts.get(kind)
            )?;
        }
        writeln!(
            f,
            "  faults against honest nodes: {:?}; feed drops {}",
            self.faults_against_honest, self.feed_dropped
        )
    }
}

/// Runs `scenario` with `protocol` on a fresh current-thread runtime with paused time.
pub fn run(scenario: &Scenario, protocol: Arc<dyn NodeProtocol>) -> Result<SimReport, SimError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(SimError::Runtime)?;
    runtime.block_on(run_async(scenario.clone(), protocol))
}

struct Built {
    honest: Vec<NodeParts>,
    adversaries: Vec<(AdversaryKind, NodeParts)>,
}

async fn run_async(
    scenario: Scenario,
    protocol: Arc<dyn NodeProtocol>,
) -> Result<SimReport, SimError> {
    if scenario.honest == 0 {
        return Err(SimError::Scenario("a simulation needs at least one honest node".to_owned()));
    }
    let params = scenario.params;
    let time = params.time;
    let seed = scenario.seed;
    let start = time.genesis();
    let reference = Arc::new(TokioClock::new(start));
    let verifier = Arc::new(Verifier::single_threaded());

    let honest_keys: Vec<_> =
        (0..scenario.honest).map(|i| lucid_consensus::testing::key(index_u64(i))).collect();
    let adversary_keys: Vec<_> = (0..scenario.adversaries.len())
        .map(|i| lucid_consensus::testing::key(ADVERSARY_KEY_BASE + index_u64(i)))
        .collect();
    let records: Vec<GenesisRecord> = honest_keys
        .iter()
        .chain(&adversary_keys)
        .map(|key| GenesisRecord::of(&params, key))
        .collect();
    let ids: Vec<NodeId> = records.iter().map(|r| r.registration.node).collect();
    let honest_ids: Vec<NodeId> = ids[..scenario.honest].to_vec();

    let graph = Graph::random(scenario.nodes(), scenario.degree, &mut SimRng::derive(seed, 1));
    let mut skews = SimRng::derive(seed, 2);
    let partitions: Vec<Partition> = scenario
        .partitions
        .iter()
        .map(|spec| {
            let (start, heal) = spec.times(&time);
            Partition {
                isolated: honest_ids.iter().take(spec.isolated).copied().collect(),
                start,
                heal,
            }
        })
        .collect();
    let network = SimNetwork::new(
        seed,
        scenario.links,
        scenario.limits,
        time,
        partitions.clone(),
        reference.clone(),
    );

    let mut built = Built { honest: Vec::new(), adversaries: Vec::new() };
    let all_keys = honest_keys.into_iter().chain(adversary_keys);
    for (index, key) in all_keys.enumerate() {
        let neighbours = graph.neighbours(index).iter().map(|n| ids[*n]).collect();
        let directory = Arc::new(SimDirectory::new(neighbours));
        let is_honest = index < scenario.honest;
        let max_skew = i64::try_from(scenario.max_skew_ms).unwrap_or(0);
        let skew_ms = if is_honest && max_skew > 0 {
            i64::try_from(skews.below(u64::try_from(2 * max_skew + 1).unwrap_or(1))).unwrap_or(0)
                - max_skew
        } else {
            0
        };
        let clock = Arc::new(TokioClock::new(start.saturating_add_ms(skew_ms)));
        let hook = if is_honest {
            let port: Arc<dyn PeerDirectory> = directory.clone();
            protocol.hook(&params, key.node_id(), port)
        } else {
            None
        };
        let parts = NodeParts::build(
            params,
            key,
            &records,
            Arc::clone(&verifier),
            clock,
            skew_ms,
            directory,
            hook,
        )
        .await?;
        network.attach(parts.node, parts.peer.clone(), parts.directory.clone());
        if is_honest {
            built.honest.push(parts);
        } else {
            built.adversaries.push((scenario.adversaries[index - scenario.honest], parts));
        }
    }

    let tracker = TaskTracker::new();
    let signing = CancellationToken::new();
    let gossiping = CancellationToken::new();
    let log: SharedLog = Arc::new(Mutex::new(AdversaryLog::default()));

    for (index, node) in built.honest.iter_mut().enumerate() {
        if let Some(feed) = node.feed_out.take() {
            let transport: Arc<dyn PeerTransport> = network.transport(node.node);
            let directory: Arc<dyn PeerDirectory> = node.directory.clone();
            protocol.start(NodeContext {
                index,
                node: node.node,
                key: Arc::clone(&node.key),
                params,
                transport,
                directory,
                ingest: Arc::clone(&node.ingest),
                store: node.store.clone(),
                verifier: Arc::clone(&verifier),
                clock: node.clock.clone(),
                accepted: feed,
                seed: SimRng::derive(seed, 1_000 + index_u64(index)).next_u64(),
                cancel: gossiping.clone(),
                tracker: tracker.clone(),
            });
        }
        let stream = 100_000 + index_u64(index);
        let work_seed = scenario.work_proofs.then(|| SimRng::derive(seed, stream).next_u64());
        node.start_signers(params, &records[index], &verifier, work_seed, &tracker, &signing);
    }
    for (position, (kind, node)) in built.adversaries.iter().enumerate() {
        let adversary = Adversary {
            kind: *kind,
            key: Arc::clone(&node.key),
            params,
            transport: network.transport(node.node),
            directory: node.directory.clone(),
            clock: node.clock.clone(),
            honest: honest_ids.clone(),
            flood_batches: scenario.flood_batches,
            rng: SimRng::derive(seed, 200_000 + index_u64(position)),
            log: Arc::clone(&log),
        };
        tracker.spawn(adversary.run(tracker.clone(), signing.clone()));
    }

    // Convergence probes, every half slot after each heal, until the run ends.
    let end_signing = time.slot_start(Slot(scenario.slots)).map_err(time_error)?;
    let end = time.slot_start(Slot(scenario.slots + scenario.settle_slots)).map_err(time_error)?;
    let stores: Vec<(NodeId, Arc<MemoryProofStore>)> =
        built.honest.iter().map(|n| (n.node, Arc::clone(&n.store))).collect();
    let heals: Arc<Mutex<Vec<HealConvergence>>> = Arc::new(Mutex::new(Vec::new()));
    for partition in &partitions {
        let checked = SlotRange {
            start: Slot(0),
            end: Slot(time.slot_of(partition.heal.saturating_add_ms(-1)).map_or(0, |s| s.0 + 1)),
        };
        tracker.spawn(probe(
            time.slot_ms(),
            partition.heal,
            checked,
            end,
            stores.clone(),
            Arc::clone(&log),
            reference.clone(),
            Arc::clone(&heals),
            gossiping.clone(),
        ));
    }

    sleep_until(reference.as_ref(), end_signing).await;
    signing.cancel();
    sleep_until(reference.as_ref(), end).await;
    gossiping.cancel();
    tracker.close();
    tracker.wait().await;

    let log = log.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let window = SlotRange { start: Slot(0), end: Slot(scenario.slots) };
    let doubled = log.equivocations.clone();
    let mut snapshots = Vec::new();
    for (node, store) in &stores {
        snapshots.push(snapshot(*node, store, window, &doubled).await?);
    }
    let evidence = evidence_coverage(&snapshots, &doubled);
    let tally_epoch = Epoch(scenario.slots.div_ceil(time.slots_per_epoch()));
    let mut tallies = BTreeSet::new();
    let mut ranked = 0;
    for ((_, store), snap) in stores.iter().zip(&snapshots) {
        let excluded: BTreeSet<ProofKey> = snap.evidence.clone();
        let (digest, ranked_here) = tally_digest(&params, tally_epoch, store, &excluded).await?;
        if tallies.is_empty() {
            ranked = ranked_here;
        }
        tallies.insert(digest);
    }
    let forbidden: BTreeSet<Digest> = log.never_stored().copied().collect();
    let checks = Checks {
        window,
        divergent_slots: divergent_slots(&snapshots, window),
        distinct_tallies: tallies.len(),
        tally_epoch,
        ranked,
        forbidden_stored: stored_forbidden(&snapshots, &forbidden),
        evidence,
        heals: heals.lock().unwrap_or_else(PoisonError::into_inner).clone(),
        proofs_per_node: snapshots.first().map_or(0, |s| s.stored.len()),
    };

    let mut faults_against_adversaries: BTreeMap<AdversaryKind, FaultCounts> = BTreeMap::new();
    let mut faults_against_honest = FaultCounts::default();
    let adversary_kinds: BTreeMap<NodeId, AdversaryKind> =
        built.adversaries.iter().map(|(kind, parts)| (parts.node, *kind)).collect();
    for node in &built.honest {
        for (peer, faults) in node.directory.faults() {
            match adversary_kinds.get(&peer) {
                Some(kind) => {
                    let entry = faults_against_adversaries.entry(*kind).or_default();
                    *entry = entry.plus(faults);
                }
                None => faults_against_honest = faults_against_honest.plus(faults),
            }
        }
    }
    let feed_dropped = built.honest.iter().map(|n| n.feed_dropped.load(Ordering::Relaxed)).sum();
    let fingerprint = fingerprint(&snapshots, &tallies);
    Ok(SimReport {
        seed,
        protocol: protocol.name(),
        scenario,
        honest: honest_ids,
        adversaries: built.adversaries.iter().map(|(kind, parts)| (*kind, parts.node)).collect(),
        traffic: network.traffic(),
        log,
        faults_against_adversaries,
        faults_against_honest,
        feed_dropped,
        checks,
        fingerprint,
    })
}

fn index_u64(index: usize) -> u64 {
    u64::try_from(index).unwrap_or(u64::MAX)
}

fn time_error(source: lucid_core::TimeError) -> SimError {
    SimError::Scenario(format!("the run does not fit in time: {source}"))
}

async fn sleep_until(clock: &dyn Clock, at: UnixMillis) {
    let now = clock.wall();
    let distance = u64::try_from(at.0.saturating_sub(now.0)).unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(distance)).await;
}

/// Every half slot after `heal`, checks whether the honest stores agree on `checked`; records
/// the first time they do.
#[expect(clippy::too_many_arguments, reason = "one private task with its inputs spelled out")]
async fn probe(
    slot_ms: u64,
    heal: UnixMillis,
    checked: SlotRange,
    end: UnixMillis,
    stores: Vec<(NodeId, Arc<MemoryProofStore>)>,
    log: SharedLog,
    reference: Arc<TokioClock>,
    heals: Arc<Mutex<Vec<HealConvergence>>>,
    cancel: CancellationToken,
) {
    let period = Duration::from_millis((slot_ms / 2).max(1));
    sleep_until(reference.as_ref(), heal).await;
    let mut result =
        HealConvergence { heal, checked, converged_after_ms: None, converged_after_slots: None };
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(period) => {}
        }
        let now = reference.wall();
        if now > end {
            break;
        }
        let doubled = log.lock().unwrap_or_else(PoisonError::into_inner).equivocations.clone();
        let mut snapshots: Vec<NodeSnapshot> = Vec::with_capacity(stores.len());
        for (node, store) in &stores {
            match snapshot(*node, store, checked, &doubled).await {
                Ok(snap) => snapshots.push(snap),
                Err(_) => break,
            }
        }
        if snapshots.len() == stores.len() && divergent_slots(&snapshots, checked).is_empty() {
            let after = u64::try_from(now.0.saturating_sub(heal.0)).unwrap_or(0);
            result.converged_after_ms = Some(after);
            result.converged_after_slots = Some(after.div_ceil(slot_ms.max(1)));
            break;
        }
    }
    heals.lock().unwrap_or_else(PoisonError::into_inner).push(result);
}

/// A digest of the honest nodes' final state.
fn fingerprint(snapshots: &[NodeSnapshot], tallies: &BTreeSet<Digest>) -> Digest {
    let mut bytes = Vec::new();
    for snap in snapshots {
        bytes.extend_from_slice(snap.node.as_bytes());
        for (slot, (count, root)) in &snap.slots {
            bytes.extend_from_slice(&slot.0.to_be_bytes());
            bytes.extend_from_slice(&count.to_be_bytes());
            bytes.extend_from_slice(root.as_bytes());
        }
        for key in &snap.evidence {
            bytes.extend_from_slice(key.node.as_bytes());
            bytes.extend_from_slice(&key.slot.0.to_be_bytes());
            bytes.push(key.kind.tag());
        }
        for digest in snap.stored.values() {
            bytes.extend_from_slice(digest.as_bytes());
        }
    }
    for tally in tallies {
        bytes.extend_from_slice(tally.as_bytes());
    }
    lucid_core::hash::derive_key("lucid-testkit v1 simulation fingerprint", &[&bytes])
}
