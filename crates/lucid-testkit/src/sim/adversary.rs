//! Adversarial nodes: registered nodes that serve an ordinary peer service but, once per slot,
//! call [`PeerTransport`] directly with what an attacker would send, and log it so the checks
//! can prove none of it was stored or counted.
//!
//! | Kind | Sends to every neighbour, every slot | Expected verdicts |
//! |---|---|---|
//! | [`AdversaryKind::Forger`] | own beacon with a flipped signature bit; a beacon in an honest node's name signed with its own key; a signed beacon with a mutated byte; a relay proof above the caps | `BadSignature`, `Malformed`, `ValueOutOfRange` |
//! | [`AdversaryKind::Replayer`] | proofs pulled from a neighbour, 3 to 6 slots old, and the newest ones again | `Stale`, `Duplicate` |
//! | [`AdversaryKind::Equivocator`] | two different valid beacons for the current slot, one to each half of its neighbours | one `Accept`, then `Equivocation` where both meet |
//! | [`AdversaryKind::OutOfWindow`] | valid beacons for slot − 4, slot + 3, and a slot its timestamp is not in | `Stale`, `FromFuture`, `SlotTimestampMismatch` |
//! | [`AdversaryKind::Flooder`] | batches of 1 024 (its valid beacon repeated, with junk) far above the receivers' rate limit | refused (`Flooding`), `Duplicate`, `Malformed` |

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use lucid_api::grpc::MAX_BATCH;
use lucid_consensus::ingest::Verdict;
use lucid_consensus::proof::{MAX_RELAY_SESSIONS, ProofKind, ProofValue, TaskProof};
use lucid_consensus::{ConsensusParams, ProofKey};
use lucid_core::keys::Signature;
use lucid_core::message::Message;
use lucid_core::{Clock, Digest, NodeId, NodeKey, SignedMessage, Slot, SlotRange, UnixMillis};
use lucid_daemon::network::{PeerDirectory, PeerTransport};
use lucid_daemon::services::time::sleep_until_wall;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::rng::SimRng;

/// What an adversarial node does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AdversaryKind {
    /// Forged signatures, swapped authors, mutated bytes, values above the caps.
    Forger,
    /// Old proofs and duplicates, replayed.
    Replayer,
    /// Two different beacons for one slot.
    Equivocator,
    /// Proofs outside the live window (stale, future, slot and timestamp apart).
    OutOfWindow,
    /// Batches far above the rate limit.
    Flooder,
}

impl AdversaryKind {
    /// Every kind, one of each.
    pub const ALL: [AdversaryKind; 5] = [
        AdversaryKind::Forger,
        AdversaryKind::Replayer,
        AdversaryKind::Equivocator,
        AdversaryKind::OutOfWindow,
        AdversaryKind::Flooder,
    ];
}

/// What the adversaries sent and what they were answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdversaryLog {
    /// Digests of forged messages: none may be stored by any node.
    pub forged: BTreeSet<Digest>,
    /// Digests of validly signed messages outside the live window: none may be stored.
    pub out_of_window: BTreeSet<Digest>,
    /// Digests of replayed messages that were older than the grace window when replayed.
    pub stale_replays: BTreeSet<Digest>,
    /// `Accept` verdicts received for stale replays: must stay 0.
    pub stale_replays_accepted: u64,
    /// Keys for which an equivocator sent two different valid messages.
    pub equivocations: BTreeSet<ProofKey>,
    /// Signed messages sent, per kind.
    pub sent: BTreeMap<AdversaryKind, u64>,
    /// Verdicts received (by name; `refused` for a refused call), per kind.
    pub verdicts: BTreeMap<AdversaryKind, BTreeMap<&'static str, u64>>,
}

impl AdversaryLog {
    /// Every digest that must never be stored by an honest node.
    pub fn never_stored(&self) -> impl Iterator<Item = &Digest> {
        self.forged.iter().chain(&self.out_of_window)
    }
}

/// A shared, lockable log.
pub type SharedLog = Arc<Mutex<AdversaryLog>>;

fn with_log<R>(log: &SharedLog, update: impl FnOnce(&mut AdversaryLog) -> R) -> R {
    update(&mut log.lock().unwrap_or_else(PoisonError::into_inner))
}

fn verdict_name(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Accept => "accept",
        Verdict::Duplicate => "duplicate",
        Verdict::Reject(reason) => reason.as_str(),
    }
}

/// One adversarial node's behaviour loop.
pub struct Adversary {
    /// What it does.
    pub kind: AdversaryKind,
    /// Its key (registered at genesis).
    pub key: Arc<NodeKey>,
    /// The network's parameters.
    pub params: ConsensusParams,
    /// Its transport.
    pub transport: Arc<dyn PeerTransport>,
    /// Its neighbours.
    pub directory: Arc<dyn PeerDirectory>,
    /// Its clock.
    pub clock: Arc<dyn Clock>,
    /// Honest node ids (victims of swapped authors).
    pub honest: Vec<NodeId>,
    /// Flood batches per neighbour and slot.
    pub flood_batches: u32,
    /// Its randomness.
    pub rng: SimRng,
    /// The shared log.
    pub log: SharedLog,
}

impl Adversary {
    /// Acts once per slot, a third into the slot, until `cancel` fires.
    pub async fn run(mut self, tracker: TaskTracker, cancel: CancellationToken) {
        let time = self.params.time;
        let offset = i64::try_from(time.slot_ms() / 3).unwrap_or(0);
        loop {
            let now = self.clock.wall();
            let slot = time.slot_of(now).map_or(Slot(0), |s| Slot(s.0 + 1));
            let Ok(start) = time.slot_start(slot) else { return };
            if !sleep_until_wall(self.clock.as_ref(), start.saturating_add_ms(offset), &cancel)
                .await
            {
                return;
            }
            self.act(slot, &tracker, &cancel).await;
        }
    }

    fn own_proof(&self, slot: Slot, ts: UnixMillis, value: ProofValue) -> TaskProof {
        TaskProof { node: self.key.node_id(), slot, ts, value }
    }

    fn beacon(&self, slot: Slot, ts: UnixMillis) -> SignedMessage {
        self.own_proof(slot, ts, ProofValue::Beacon { metrics_digest: None })
            .sign(&self.params.network, &self.key)
    }

    fn slot_time(&self, slot: Slot, into_ms: i64) -> UnixMillis {
        self.params.time.slot_start(slot).map_or(UnixMillis(0), |s| s.saturating_add_ms(into_ms))
    }

    async fn act(&mut self, slot: Slot, tracker: &TaskTracker, cancel: &CancellationToken) {
        let now = self.clock.wall();
        let mut targets = self.directory.gossip_peers();
        targets.sort();
        match self.kind {
            AdversaryKind::Forger => {
                let batch = self.forgeries(slot, now);
                with_log(&self.log, |log| {
                    log.forged.extend(batch.iter().map(SignedMessage::digest))
                });
                for peer in targets {
                    self.send(peer, batch.clone(), tracker, cancel, Vec::new());
                }
            }
            AdversaryKind::OutOfWindow => {
                let into = now.0.saturating_sub(self.slot_time(slot, 0).0);
                let future = Slot(slot.0 + 3);
                let mut batch = vec![
                    self.beacon(future, self.slot_time(future, into)),
                    // Claims the current slot with a timestamp in the next one.
                    self.own_proof(
                        slot,
                        self.slot_time(Slot(slot.0 + 1), into),
                        ProofValue::Beacon { metrics_digest: None },
                    )
                    .sign(&self.params.network, &self.key),
                ];
                // Stale only once a slot lies before every receiver's grace window.
                if slot.0 >= 4 {
                    let stale = Slot(slot.0 - 4);
                    batch.push(self.beacon(stale, self.slot_time(stale, into)));
                }
                with_log(&self.log, |log| {
                    log.out_of_window.extend(batch.iter().map(SignedMessage::digest))
                });
                for peer in targets {
                    self.send(peer, batch.clone(), tracker, cancel, Vec::new());
                }
            }
            AdversaryKind::Equivocator => {
                let first = self.beacon(slot, now);
                let second = self.beacon(slot, now.saturating_add_ms(1));
                let key =
                    ProofKey { node: self.key.node_id(), slot, kind: ProofKind::UptimeBeacon };
                with_log(&self.log, |log| log.equivocations.insert(key));
                let half = targets.len().div_ceil(2);
                for (position, peer) in targets.into_iter().enumerate() {
                    let message = if position < half { first.clone() } else { second.clone() };
                    self.send(peer, vec![message], tracker, cancel, Vec::new());
                }
            }
            AdversaryKind::Replayer => {
                if targets.is_empty() {
                    return;
                }
                let source = targets[self.rng.index(targets.len())];
                let old = SlotRange {
                    start: Slot(slot.0.saturating_sub(6)),
                    end: Slot(slot.0.saturating_sub(2)),
                };
                let recent =
                    SlotRange { start: Slot(slot.0.saturating_sub(1)), end: Slot(slot.0 + 1) };
                let stale = tokio::select! {
                    biased;
                    () = cancel.cancelled() => return,
                    pulled = self.transport.pull_proofs(source, old, None, 256) => pulled.unwrap_or_default(),
                };
                let fresh = tokio::select! {
                    biased;
                    () = cancel.cancelled() => return,
                    pulled = self.transport.pull_proofs(source, recent, None, 256) => pulled.unwrap_or_default(),
                };
                // Only what is older than every receiver's grace window counts as a stale
                // replay (slot ≤ current − 3, with clocks skewed by less than a slot).
                let stale: Vec<SignedMessage> = stale
                    .into_iter()
                    .filter(|m| {
                        TaskProof::from_signed_bytes(m.bytes())
                            .is_ok_and(|(_, p)| p.slot.0 + 3 <= slot.0)
                    })
                    .collect();
                let stale_digests: Vec<Digest> = stale.iter().map(SignedMessage::digest).collect();
                with_log(&self.log, |log| log.stale_replays.extend(stale_digests.iter().copied()));
                let mut batch = stale;
                batch.extend(fresh);
                batch.truncate(MAX_BATCH);
                for peer in targets.into_iter().filter(|p| *p != source) {
                    self.send(peer, batch.clone(), tracker, cancel, stale_digests.clone());
                }
            }
            AdversaryKind::Flooder => {
                let own = self.beacon(slot, now);
                let junk =
                    SignedMessage::new(vec![0x4c, 0x55, 0x43], Signature::from_bytes([7; 64]));
                let batch: Vec<SignedMessage> = (0..MAX_BATCH)
                    .map(|i| if i % 8 == 7 { junk.clone() } else { own.clone() })
                    .collect();
                for peer in targets {
                    for _ in 0..self.flood_batches {
                        self.send(peer, batch.clone(), tracker, cancel, Vec::new());
                    }
                }
            }
        }
    }

    fn forgeries(&mut self, slot: Slot, now: UnixMillis) -> Vec<SignedMessage> {
        let network = self.params.network;
        // 1. A valid beacon of its own with one signature bit flipped.
        let (bytes, signature) = self.beacon(slot, now).into_parts();
        let mut flipped = *signature.as_bytes();
        flipped[0] ^= 0x01;
        let bad_signature = SignedMessage::new(bytes, Signature::from_bytes(flipped));
        // 2. A beacon in an honest node's name, signed with the adversary's own key.
        let victim = if self.honest.is_empty() {
            self.key.node_id()
        } else {
            self.honest[self.rng.index(self.honest.len())]
        };
        let swapped_bytes = TaskProof {
            node: victim,
            slot,
            ts: now.saturating_add_ms(2),
            value: ProofValue::Beacon { metrics_digest: None },
        }
        .to_signed_bytes(&network);
        let swapped = SignedMessage::new(swapped_bytes.clone(), self.key.sign(&swapped_bytes));
        // 3. A validly signed relay proof whose bytes are changed after signing.
        let (mut mutated, signature) = self
            .own_proof(
                slot,
                now.saturating_add_ms(3),
                ProofValue::Relay { bytes_transferred: 0, sessions_relayed: 7 },
            )
            .sign(&network, &self.key)
            .into_parts();
        if let Some(last) = mutated.last_mut() {
            *last ^= 0x04;
        }
        let mutated = SignedMessage::new(mutated, signature);
        // 4. A validly signed relay proof claiming more sessions than the cap.
        let over_cap = self
            .own_proof(
                slot,
                now.saturating_add_ms(4),
                ProofValue::Relay {
                    bytes_transferred: 0,
                    sessions_relayed: MAX_RELAY_SESSIONS + 1,
                },
            )
            .sign(&network, &self.key);
        vec![bad_signature, swapped, mutated, over_cap]
    }

    /// Sends `batch` to `peer` in its own task and logs the verdicts.
    fn send(
        &self,
        peer: NodeId,
        batch: Vec<SignedMessage>,
        tracker: &TaskTracker,
        cancel: &CancellationToken,
        stale: Vec<Digest>,
    ) {
        let kind = self.kind;
        let log = Arc::clone(&self.log);
        let transport = Arc::clone(&self.transport);
        let cancel = cancel.clone();
        with_log(&log, |log| {
            *log.sent.entry(kind).or_default() += u64::try_from(batch.len()).unwrap_or(0)
        });
        tracker.spawn(async move {
            let digests: Vec<Digest> = batch.iter().map(SignedMessage::digest).collect();
            let reply = tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                reply = transport.submit_proofs(peer, batch) => reply,
            };
            with_log(&log, |log| {
                let verdicts = log.verdicts.entry(kind).or_default();
                match reply {
                    Ok(outcomes) => {
                        for (digest, outcome) in digests.iter().zip(&outcomes) {
                            *verdicts.entry(verdict_name(outcome.verdict)).or_default() += 1;
                            if outcome.verdict == Verdict::Accept && stale.contains(digest) {
                                log.stale_replays_accepted += 1;
                            }
                        }
                    }
                    Err(lucid_daemon::network::TransportError::Refused(_)) => {
                        *verdicts.entry("refused").or_default() += 1;
                    }
                    Err(_) => *verdicts.entry("no_reply").or_default() += 1,
                }
            });
        });
    }
}
