//! Anti-entropy: compare per-slot digests with one peer and fetch only the slots that differ
//! (`consensus.md` §6.3, `daemon.md` §3).
//!
//! A round with peer P covers the unsettled window, from the window of the oldest unsettled
//! tally (`slots_per_epoch · current_epoch − window_slots`, the late-acceptance floor) to the
//! current slot, in ranges of at most [`MAX_DIGEST_SLOTS`]. For every slot where P's count or
//! root differs from ours:
//! - inside the live grace (`slot ≥ current − 2`): `PullProofs` of that slot, then the live
//!   ingest; accepted proofs are pushed on like any other;
//! - older: `FetchSlot` (P's own seal and exactly its set), then `ingest_sealed_set`: the
//!   proofs of other nodes pass through late acceptance, P's own proofs do not (no node
//!   backfills itself). A slot fetched from P is not fetched from P again while P's digest of it
//!   stays the same.
//!
//! Slots inside the live grace come first, then older slots from the oldest; at most
//! [`max_slots_per_round`](super::GossipConfig::max_slots_per_round) slots and
//! [`max_pages_per_slot`](super::GossipConfig::max_pages_per_slot) pages per slot are fetched per
//! round. Proofs of nodes we do not know (`UnknownNode`) make the next round with that peer start
//! with its registrations.
//!
//! The same round reconciles the pool op log of the window (when the node keeps one): for each
//! range of at most [`MAX_PULL_SLOTS`] signing slots it sends its count and root of the ops it
//! holds (`FetchPoolOps`); a peer with the same set sends nothing, otherwise its ops come in
//! pages and go through [`PoolOpIngest`](super::ops::PoolOpIngest) on the late path (ops the
//! peer signed itself only inside the live grace). At most
//! [`max_pages_per_slot`](super::GossipConfig::max_pages_per_slot) pages per range and round.
//!
//! The same round reconciles the equivocation evidence of the window: for each range of at most
//! [`MAX_PULL_SLOTS`] slots it sends the count and root of the evidence it holds
//! ([`evidence_summary`]) with `FetchEvidence`; a peer with the same set sends nothing, otherwise
//! its evidence (at most [`MAX_EVIDENCE_PAGE`] pairs) goes through the evidence ingest, which
//! checks the conflict rule and both `verify_strict` signatures. New evidence is forwarded like
//! pushed evidence; pairs we hold already are skipped; a forged, malformed or out-of-range pair
//! counts against the peer. Push forwards evidence once per node, so a lost push (message loss,
//! a partition) is recovered only here: both nodes keep the first of the two conflicting proofs,
//! so their slot digests agree and would never make the node look again.
//!
//! Rounds run every [`anti_entropy_every`](super::GossipConfig::anti_entropy_every), rotating
//! over the directory's peers,
//! and at once with every peer that appears in the directory (a (re)connection). Our own digests
//! of slots older than the grace change only through this loop, so each slot is summarised from
//! the store once and again only after this loop stored proofs in it.
//!
//! # Own proofs after a crash
//! The first round with a peer that (re)appeared, which after a start is every peer, begins by
//! pushing the node's own proofs of the live grace (`current − 2 ..= current`, at most
//! 3 × 4 proofs read by key) to that peer. A node killed after storing a proof and before its
//! push would otherwise leave peers without it until one of them happened to pull that slot;
//! receivers answer `Duplicate` to what they hold, so the push is idempotent, and it is bounded
//! by `MAX_NEW_PEERS_PER_TICK` (4) peers per tick. Own proofs older than the grace are not pushed:
//! every peer refuses them as stale and, by `consensus.md` §6.3, no node can backfill its own
//! proofs through its seal either (a documented limit of a restart that takes longer than the
//! grace).
//!
//! # Own proofs whose pushes were lost
//! A round also pushes the node's own proofs of every live slot whose digest differs from the
//! peer's (at most 3 × 4 proofs). A node cut off from all its peers while it signed a proof
//! (a partition) holds the only copy, and a peer pulls from it only when that peer's rotation
//! happens to reach it: if none does before the grace ends, the proof can never be taken from
//! the node any more, and the node counts it while nobody else does. The node's own round finds
//! the difference within one period, so it sends the proof itself.
//!
//! # Reconciliation mark
//! A round with peer P sets [`ReconciledMark`] to the first slot of the grace when, below the
//! grace, P holds every slot we hold and every slot either has the same digest on both sides or
//! was fetched from P at P's current digest in an earlier round: we then hold whatever P could
//! give us (P's own proofs P cannot backfill; they come through another peer's set). The tally
//! keeper reads the mark before it computes or settles an epoch that ended while the node was
//! down (`services::tally`). The mark lives in memory only, so after every start it waits for a
//! fresh comparison. Known limit: the mark trusts one peer; a peer that lies with digests equal
//! to ours, or a peer that itself missed proofs, can open it early.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use lucid_api::grpc::{
    EvidenceQuery, MAX_DIGEST_SLOTS, MAX_EVIDENCE_PAGE, MAX_PEERS_PAGE, MAX_PULL_PAGE,
    MAX_PULL_SLOTS, PoolOpsQuery, SlotDigest, evidence_summary,
};
use lucid_consensus::ingest::{RejectReason, Verdict};
use lucid_consensus::params::INGEST_GRACE_SLOTS;
use lucid_consensus::proof::{ProofKey, ProofKind, TaskProof};
use lucid_consensus::registration::Registration;
use lucid_consensus::seal::SlotSeal;
use lucid_consensus::store::Evidence;
use lucid_core::message::Message;
use lucid_core::{Digest, NodeId, SignedMessage, Slot, SlotRange, UnixMillis};

use super::{GossipDeps, GossipHook, wire_size};
use crate::network::PeerFault;
use crate::services::ServiceError;
use crate::services::runner::Service;
use crate::services::tally::Reconciliation;

/// Most pages of registrations read from one peer when it sent proofs of unknown nodes.
const MAX_REGISTRATION_PAGES: usize = 20;
/// How many (peer, slot) fetches are remembered.
const FETCHED_MEMORY: usize = 16_384;
/// Most peers that (re)appeared served in one tick; the others wait for the next tick.
const MAX_NEW_PEERS_PER_TICK: usize = 4;

/// How far the store has been reconciled with a peer's since this start (see the module doc).
#[derive(Debug, Default)]
pub struct ReconciledMark {
    /// The first slot not known to be reconciled, plus one; 0 before any comparison agreed.
    before_plus_one: AtomicU64,
}

impl ReconciledMark {
    /// Records that every slot before `before` agreed with a peer (the mark never goes back).
    pub fn mark(&self, before: Slot) {
        self.before_plus_one.fetch_max(before.0.saturating_add(1), Ordering::Relaxed);
    }
}

impl Reconciliation for ReconciledMark {
    fn reconciled_before(&self) -> Option<Slot> {
        self.before_plus_one.load(Ordering::Relaxed).checked_sub(1).map(Slot)
    }
}

/// The anti-entropy loop's state.
pub struct AntiEntropy {
    deps: GossipDeps,
    hook: GossipHook,
    node: NodeId,
    known_peers: BTreeSet<NodeId>,
    next_round: Option<UnixMillis>,
    rotation: usize,
    /// Peer digest root of each (peer, slot) last fetched through its seal.
    fetched: HashMap<(NodeId, Slot), Digest>,
    /// Own digest of every slot older than the grace that was summarised (`None`: no proofs).
    own_settled: BTreeMap<Slot, Option<(u32, Digest)>>,
    /// Peers whose registrations to read at the start of the next round with them.
    need_registrations: BTreeSet<NodeId>,
}

fn error(action: &'static str) -> impl FnOnce(lucid_consensus::Error) -> ServiceError {
    ServiceError::consensus("anti_entropy", action)
}

impl AntiEntropy {
    /// A loop that has talked to no peer yet.
    pub fn new(deps: GossipDeps, hook: GossipHook) -> Self {
        let node = hook.node();
        AntiEntropy {
            deps,
            hook,
            node,
            known_peers: BTreeSet::new(),
            next_round: None,
            rotation: 0,
            fetched: HashMap::new(),
            own_settled: BTreeMap::new(),
            need_registrations: BTreeSet::new(),
        }
    }

    fn report(&self, peer: NodeId, fault: PeerFault) {
        self.hook.metrics().count_fault();
        self.hook.directory().report(peer, fault);
    }

    /// The late-acceptance floor at `current`: the first slot of the oldest unsettled window.
    fn floor(&self, current: Slot) -> Slot {
        super::late_floor(&self.deps.params, current)
    }

    /// Reconciles the pool op log of `[floor, end)` with `peer`: ranges whose count and root
    /// differ are fetched in pages and ingested on the late path.
    async fn pool_ops(&mut self, peer: NodeId, floor: Slot, end: Slot) -> Result<(), ServiceError> {
        let Some(pool_ops) = self.hook.pool_ops().cloned() else { return Ok(()) };
        let mut start = floor;
        while start < end {
            let range =
                SlotRange { start, end: Slot(start.0.saturating_add(MAX_PULL_SLOTS).min(end.0)) };
            start = range.end;
            let (known_count, known_root) =
                pool_ops.summary(range).await.map_err(error("summarising own pool ops"))?;
            let mut after = None;
            for _ in 0..self.deps.config.max_pages_per_slot.max(1) {
                let query =
                    PoolOpsQuery { range, known_count, known_root, after, limit: MAX_PULL_PAGE };
                let page = match self.deps.transport.fetch_pool_ops(peer, query).await {
                    Ok(page) => page,
                    Err(error) => {
                        tracing::debug!(%peer, %error, "anti-entropy: fetching pool ops failed");
                        return Ok(());
                    }
                };
                if page.in_sync {
                    break;
                }
                self.hook.metrics().count_in(page.ops.iter().map(wire_size).sum());
                // A page larger than asked for, or a cursor that does not move forward, breaks
                // the protocol: the page is dropped and counted against the peer.
                if page.ops.len() > MAX_PULL_PAGE
                    || page.next.is_some_and(|next| after.is_some_and(|a| next <= a))
                {
                    self.report(peer, PeerFault::InvalidMessage);
                    return Ok(());
                }
                let report = pool_ops
                    .ingest(page.ops, super::ops::OpPath::Late { server: peer })
                    .await
                    .map_err(error("ingesting fetched pool ops"))?;
                self.note_unknown(peer, report.outcomes.iter().map(|o| o.verdict));
                let live_from = pool_ops.current_slot().map_or(Slot(0), super::live_from);
                self.hook.pool_ops_ingested(Some(peer), &report, live_from);
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        Ok(())
    }

    /// Reconciles the equivocation evidence of `[floor, end)` with `peer`: ranges whose count
    /// and root differ are fetched and every pair we do not hold goes through the evidence
    /// ingest.
    async fn evidence(&mut self, peer: NodeId, floor: Slot, end: Slot) -> Result<(), ServiceError> {
        let mut start = floor;
        while start < end {
            let range =
                SlotRange { start, end: Slot(start.0.saturating_add(MAX_PULL_SLOTS).min(end.0)) };
            start = range.end;
            let own = self
                .deps
                .store
                .evidence_in_range(range, MAX_EVIDENCE_PAGE)
                .await
                .map_err(error("reading own evidence"))?;
            let (known_count, known_root) = evidence_summary(&own);
            let query = EvidenceQuery { range, known_count, known_root };
            let page = match self.deps.transport.fetch_evidence(peer, query).await {
                Ok(page) => page,
                Err(error) => {
                    tracing::debug!(%peer, %error, "anti-entropy: fetching evidence failed");
                    return Ok(());
                }
            };
            if page.in_sync {
                continue;
            }
            if page.evidence.len() > MAX_EVIDENCE_PAGE {
                self.report(peer, PeerFault::InvalidMessage);
                return Ok(());
            }
            self.hook.metrics().count_in(
                page.evidence.iter().map(|(a, b)| wire_size(a).saturating_add(wire_size(b))).sum(),
            );
            let held: BTreeSet<(Digest, Digest)> = own.iter().map(|item| item.digests()).collect();
            for (first, second) in page.evidence {
                if held.contains(&Evidence::identity_of(&first, &second)) {
                    continue;
                }
                // Evidence of a slot outside the range asked for breaks the protocol.
                let in_range = TaskProof::from_signed_bytes(first.bytes())
                    .is_ok_and(|(_, proof)| range.contains(proof.slot));
                if !in_range {
                    self.report(peer, PeerFault::InvalidMessage);
                    continue;
                }
                let now = self.deps.clock.wall();
                let (outcome, evidence) = self
                    .deps
                    .ingest
                    .lock()
                    .await
                    .ingest_evidence(
                        self.deps.store.as_ref(),
                        &self.deps.verifier,
                        now,
                        first,
                        second,
                    )
                    .await
                    .map_err(error("ingesting fetched evidence"))?;
                if let (Verdict::Accept, Some(evidence)) = (outcome.verdict, &evidence) {
                    tracing::warn!(node = %evidence.node, %peer, "equivocation evidence fetched");
                    self.hook.evidence(Some(peer), evidence);
                }
                self.note_unknown(peer, std::iter::once(outcome.verdict));
                self.hook.report_faults(Some(peer), std::slice::from_ref(&outcome));
            }
        }
        Ok(())
    }

    async fn summarise(
        &self,
        range: SlotRange,
    ) -> Result<HashMap<Slot, (u32, Digest)>, ServiceError> {
        let digests = lucid_api::grpc::slot_digests(self.deps.store.as_ref(), range, MAX_PULL_PAGE)
            .await
            .map_err(error("summarising own slots"))?;
        Ok(digests.into_iter().map(|digest| (digest.slot, (digest.count, digest.root))).collect())
    }

    /// Our digests of `range`. Slots older than the grace (`< live_from`) change only through
    /// this loop, so each is read from the store once and cached until this loop changes it;
    /// the slots of the grace are read every time.
    async fn own_digests(
        &mut self,
        range: SlotRange,
        live_from: Slot,
    ) -> Result<HashMap<Slot, (u32, Digest)>, ServiceError> {
        let settled_end = Slot(range.end.0.min(live_from.0));
        let mut slot = range.start;
        while slot < settled_end {
            if self.own_settled.contains_key(&slot) {
                slot = Slot(slot.0 + 1);
                continue;
            }
            // One store read for the whole run of slots not cached.
            let mut run_end = Slot(slot.0 + 1);
            while run_end < settled_end && !self.own_settled.contains_key(&run_end) {
                run_end = Slot(run_end.0 + 1);
            }
            let found = self.summarise(SlotRange { start: slot, end: run_end }).await?;
            for s in slot.0..run_end.0 {
                self.own_settled.insert(Slot(s), found.get(&Slot(s)).copied());
            }
            slot = run_end;
        }
        let mut ours: HashMap<Slot, (u32, Digest)> = self
            .own_settled
            .range(range.start..settled_end)
            .filter_map(|(slot, digest)| digest.map(|digest| (*slot, digest)))
            .collect();
        if settled_end < range.end {
            ours.extend(
                self.summarise(SlotRange { start: settled_end.max(range.start), end: range.end })
                    .await?,
            );
        }
        Ok(ours)
    }

    /// Forgets the cached digest of `slot` (this loop just stored proofs in it).
    fn invalidate(&mut self, slot: Slot) {
        self.own_settled.remove(&slot);
    }

    /// One round with `peer`: digests first, then the slots that differ.
    async fn round(&mut self, peer: NodeId) -> Result<(), ServiceError> {
        let now = self.deps.clock.wall();
        let Ok(current) = self.deps.params.time.slot_of(now) else { return Ok(()) };
        self.hook.metrics().count_round();
        if self.need_registrations.remove(&peer) {
            self.registrations(peer, now).await?;
        }
        let floor = self.floor(current);
        self.pool_ops(peer, floor, Slot(current.0.saturating_add(1))).await?;
        self.evidence(peer, floor, Slot(current.0.saturating_add(1))).await?;
        // Forget what lies below the window.
        self.own_settled.retain(|slot, _| *slot >= floor);
        self.fetched.retain(|(_, slot), _| *slot >= floor);
        if self.fetched.len() > FETCHED_MEMORY {
            self.fetched.clear();
        }
        let end = Slot(current.0.saturating_add(1));
        let live_from = current.0.saturating_sub(INGEST_GRACE_SLOTS);
        let mut differing: Vec<SlotDigest> = Vec::new();
        // Slots of the grace where the peer's set differs from ours (or it holds none).
        let mut live_differing: BTreeSet<Slot> = BTreeSet::new();
        // Whether the peer holds every slot we hold below the grace (a peer with an empty or
        // younger store proves nothing about ours).
        let mut covers_ours = true;
        let mut start = floor;
        while start < end {
            let range =
                SlotRange { start, end: Slot(start.0.saturating_add(MAX_DIGEST_SLOTS).min(end.0)) };
            start = range.end;
            let theirs = match self.deps.transport.slot_digests(peer, range).await {
                Ok(theirs) => theirs,
                Err(error) => {
                    tracing::debug!(%peer, %error, "anti-entropy: digests unavailable");
                    return Ok(());
                }
            };
            self.hook
                .metrics()
                .count_in(u64::try_from(theirs.len()).unwrap_or(u64::MAX).saturating_mul(44));
            let ours = self.own_digests(range, Slot(live_from)).await?;
            let mut seen = BTreeSet::new();
            for digest in theirs {
                if !range.contains(digest.slot) || !seen.insert(digest.slot) {
                    // An answer outside the question, or a slot twice: the peer breaks the protocol.
                    self.report(peer, PeerFault::InvalidMessage);
                    continue;
                }
                if ours.get(&digest.slot) != Some(&(digest.count, digest.root)) {
                    differing.push(digest);
                }
            }
            covers_ours &= ours.keys().all(|slot| slot.0 >= live_from || seen.contains(slot));
            live_differing.extend(
                differing
                    .iter()
                    .map(|digest| digest.slot)
                    .chain(ours.keys().filter(|slot| !seen.contains(slot)).copied()),
            );
        }
        live_differing.retain(|slot| slot.0 >= live_from);
        // Below the grace, every slot agrees or was fetched from this peer at this digest
        // already (what the peer could give is in; what it cannot, its own proofs, comes from
        // another peer's set, or is our own proof that no peer took).
        let done_with_peer = differing.iter().all(|digest| {
            digest.slot.0 >= live_from
                || self.fetched.get(&(peer, digest.slot)) == Some(&digest.root)
        });
        if covers_ours && done_with_peer {
            self.hook.reconciled().mark(Slot(live_from));
        }
        // Our own proofs of the live slots that differ go to the peer first: if every push of
        // one of them was lost (a partition that cut all our links while we signed it), no
        // peer holds it, and once its grace ends nobody can take it from us any more (no node
        // backfills its own proofs, `consensus.md` §6.3): we would count it and nobody else
        // would, forever. Pulling alone never carries it, since the peer pulls from us only
        // when its rotation happens to reach us. At most 3 × 4 proofs, answered `Duplicate`
        // where the peer holds them.
        if !live_differing.is_empty() {
            let own = self.own_proofs_of(&live_differing).await?;
            self.repush(peer, &own).await;
        }
        // Live slots first (they can still be taken live), then from the oldest.
        differing.sort_by_key(|digest| (digest.slot.0 < live_from, digest.slot));
        differing.truncate(self.deps.config.max_slots_per_round);
        for digest in differing {
            if digest.slot.0 >= live_from {
                self.pull(peer, digest.slot).await?;
            } else {
                self.fetch_sealed(peer, digest).await?;
            }
        }
        Ok(())
    }

    /// The node's own proofs of the live grace at `now`, read by key (at most 3 × 4).
    async fn own_live_proofs(&self, now: UnixMillis) -> Result<Vec<SignedMessage>, ServiceError> {
        let Ok(current) = self.deps.params.time.slot_of(now) else { return Ok(Vec::new()) };
        let slots: Vec<Slot> = (super::live_from(current).0..=current.0).map(Slot).collect();
        self.own_proofs_of(&slots).await
    }

    /// The node's own proofs of `slots`, read by key (at most 4 per slot).
    async fn own_proofs_of(
        &self,
        slots: impl IntoIterator<Item = &Slot>,
    ) -> Result<Vec<SignedMessage>, ServiceError> {
        let mut own = Vec::new();
        for slot in slots {
            for kind in ProofKind::ALL {
                let key = ProofKey { node: self.node, slot: *slot, kind };
                if let Some(stored) =
                    self.deps.store.get_proof(&key).await.map_err(error("reading own proofs"))?
                {
                    own.push(stored.message);
                }
            }
        }
        Ok(own)
    }

    /// Pushes `own` (the node's own proofs of the live grace) to `peer` again.
    async fn repush(&self, peer: NodeId, own: &[SignedMessage]) {
        if own.is_empty() {
            return;
        }
        let bytes = own.iter().map(wire_size).sum();
        match self.deps.transport.submit_proofs(peer, own.to_vec()).await {
            Ok(_) => {
                self.hook.metrics().count_out(bytes);
                self.hook.metrics().count_repushed(u64::try_from(own.len()).unwrap_or(u64::MAX));
            }
            Err(error) => {
                tracing::debug!(%peer, %error, "anti-entropy: pushing own proofs again failed");
            }
        }
    }

    /// Pulls the proofs of `slot` from `peer` and ingests them live.
    async fn pull(&mut self, peer: NodeId, slot: Slot) -> Result<(), ServiceError> {
        let range = SlotRange { start: slot, end: Slot(slot.0.saturating_add(1)) };
        let mut after = None;
        for _ in 0..self.deps.config.max_pages_per_slot.max(1) {
            let page =
                match self.deps.transport.pull_proofs(peer, range, after, MAX_PULL_PAGE).await {
                    Ok(page) => page,
                    Err(error) => {
                        tracing::debug!(%peer, %error, "anti-entropy: pull failed");
                        return Ok(());
                    }
                };
            if page.is_empty() {
                return Ok(());
            }
            self.hook.metrics().count_in(page.iter().map(wire_size).sum());
            let full = page.len() >= MAX_PULL_PAGE;
            after = page
                .last()
                .and_then(|last| TaskProof::from_signed_bytes(last.bytes()).ok())
                .map(|(_, proof)| proof.key());
            let now = self.deps.clock.wall();
            let report = self
                .deps
                .ingest
                .lock()
                .await
                .ingest_batch(self.deps.store.as_ref(), &self.deps.verifier, now, page)
                .await
                .map_err(error("ingesting pulled proofs"))?;
            self.note_unknown(peer, report.outcomes.iter().map(|o| o.verdict));
            self.hook.ingested(Some(peer), &report);
            if !full || after.is_none() {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Fetches `peer`'s sealed set of `digest.slot` and ingests it through late acceptance.
    async fn fetch_sealed(&mut self, peer: NodeId, digest: SlotDigest) -> Result<(), ServiceError> {
        let slot = digest.slot;
        if self.fetched.get(&(peer, slot)) == Some(&digest.root) {
            return Ok(());
        }
        let sealed = match self.deps.transport.fetch_slot(peer, slot).await {
            Ok(sealed) => sealed,
            Err(error) => {
                tracing::debug!(%peer, %error, "anti-entropy: fetching a sealed slot failed");
                return Ok(());
            }
        };
        let Some(sealed) = sealed else {
            self.fetched.insert((peer, slot), digest.root);
            return Ok(());
        };
        self.hook.metrics().count_in(
            sealed.set.iter().map(wire_size).sum::<u64>().saturating_add(wire_size(&sealed.seal)),
        );
        // `FetchSlot` serves the callee's own seal of the slot asked for, nothing else.
        match SlotSeal::from_signed_bytes(sealed.seal.bytes()) {
            Ok((_, seal)) if seal.node == peer && seal.slot == slot => {}
            _ => {
                self.fetched.insert((peer, slot), digest.root);
                self.report(peer, PeerFault::InvalidMessage);
                return Ok(());
            }
        }
        let now = self.deps.clock.wall();
        let report = self
            .deps
            .ingest
            .lock()
            .await
            .ingest_sealed_set(
                self.deps.store.as_ref(),
                &self.deps.verifier,
                now,
                sealed.seal,
                sealed.set,
            )
            .await
            .map_err(error("ingesting a sealed set"))?;
        if let Verdict::Reject(reason) = report.seal.verdict {
            if reason == RejectReason::UnknownNode {
                // Fetched again once the registrations are in.
                self.need_registrations.insert(peer);
            } else {
                self.fetched.insert((peer, slot), digest.root);
            }
            self.hook.report_faults(Some(peer), std::slice::from_ref(&report.seal));
            return Ok(());
        }
        let accepted = u64::try_from(report.set.accepted.len()).unwrap_or(u64::MAX);
        if accepted > 0 {
            self.hook.metrics().count_late(accepted);
            self.invalidate(slot);
        }
        // A set with proofs of nodes we do not know yet is fetched again once the registrations
        // are in; otherwise not again while the peer's digest stays the same.
        if !self.note_unknown(peer, report.set.outcomes.iter().map(|o| o.verdict)) {
            self.fetched.insert((peer, slot), digest.root);
        }
        self.hook.ingested_late(Some(peer), &report.set);
        Ok(())
    }

    /// Whether `verdicts` refused proofs of nodes we do not know; if so, the next round with
    /// `peer` starts with its registrations.
    fn note_unknown(&mut self, peer: NodeId, mut verdicts: impl Iterator<Item = Verdict>) -> bool {
        let unknown = verdicts.any(|verdict| verdict == Verdict::Reject(RejectReason::UnknownNode));
        if unknown {
            self.need_registrations.insert(peer);
        }
        unknown
    }

    /// Reads `peer`'s current registrations and ingests them (registrations first: proofs of
    /// nodes we do not know are refused).
    async fn registrations(&mut self, peer: NodeId, now: UnixMillis) -> Result<(), ServiceError> {
        let mut after = None;
        for _ in 0..MAX_REGISTRATION_PAGES {
            let page = match self.deps.transport.registrations(peer, after, MAX_PEERS_PAGE).await {
                Ok(page) => page,
                Err(error) => {
                    tracing::debug!(%peer, %error, "anti-entropy: registrations unavailable");
                    return Ok(());
                }
            };
            self.hook.metrics().count_in(page.iter().map(wire_size).sum());
            let full = page.len() >= MAX_PEERS_PAGE;
            after = page
                .last()
                .and_then(|last| Registration::from_signed_bytes(last.bytes()).ok())
                .map(|(_, registration)| registration.node);
            let mut outcomes = Vec::with_capacity(page.len());
            for message in page {
                let record = Registration::from_signed_bytes(message.bytes()).ok();
                let (outcome, _) = self
                    .deps
                    .ingest
                    .lock()
                    .await
                    .ingest_registration(self.deps.store.as_ref(), now, message)
                    .await
                    .map_err(error("ingesting a registration"))?;
                if let (Verdict::Accept, Some((_, record))) = (outcome.verdict, record) {
                    self.hook.directory().registration_accepted(&record);
                }
                outcomes.push(outcome);
            }
            self.hook.report_faults(Some(peer), &outcomes);
            if !full || after.is_none() {
                break;
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Service for AntiEntropy {
    fn name(&self) -> &'static str {
        "anti_entropy"
    }

    fn next_due(&self, after: UnixMillis) -> UnixMillis {
        let poll = i64::try_from(self.deps.config.poll_every.as_millis()).unwrap_or(i64::MAX);
        after.saturating_add_ms(poll.max(1))
    }

    async fn tick(&mut self, now: UnixMillis) -> Result<(), ServiceError> {
        let peers: Vec<NodeId> = self
            .hook
            .directory()
            .gossip_peers()
            .into_iter()
            .filter(|peer| *peer != self.node)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut targets: Vec<NodeId> = peers
            .iter()
            .filter(|peer| !self.known_peers.contains(*peer))
            .take(MAX_NEW_PEERS_PER_TICK)
            .copied()
            .collect();
        // Peers that (re)appeared get the node's own live proofs first (see the module doc).
        if !targets.is_empty() {
            let own = self.own_live_proofs(now).await?;
            for peer in &targets {
                self.repush(*peer, &own).await;
            }
        }
        // A peer not served this tick stays "new" for the next one.
        self.known_peers.retain(|peer| peers.contains(peer));
        self.known_peers.extend(targets.iter().copied());
        let due = self.next_round.is_none_or(|at| now >= at);
        if targets.is_empty() && due && !peers.is_empty() {
            let index = self.rotation % peers.len();
            self.rotation = self.rotation.wrapping_add(1);
            targets.push(peers[index]);
        }
        if targets.is_empty() {
            return Ok(());
        }
        let every =
            i64::try_from(self.deps.config.anti_entropy_every.as_millis()).unwrap_or(i64::MAX);
        self.next_round = Some(now.saturating_add_ms(every));
        for peer in targets {
            self.round(peer).await?;
        }
        Ok(())
    }
}
