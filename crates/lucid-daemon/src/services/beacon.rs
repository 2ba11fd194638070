//! The beacon producer: exactly one signed uptime beacon per slot, at slot start plus a per-node
//! jitter (`consensus.md` §5, `daemon.md` §3).
//!
//! - **Aligned by the clock.** The due time of slot s is `slot_start(s) + jitter`, computed from
//!   the wall clock at every wake; the beacon's `ts_ms` is the signing time, inside slot s.
//! - **Never two for one slot.** Before signing, the producer asks the proof store whether a
//!   beacon of its own for the current slot exists (a restart mid-slot finds the one signed
//!   before it): a second, different beacon would be an equivocation.
//! - **No back-fill.** Only the current slot is ever signed; slots that passed while the node
//!   was stalled or suspended stay empty (`consensus.md` §2.3: never sign for a past slot).
//! - **Same path as peers.** The beacon is judged by the node's own [`Ingest`] (the shared
//!   [`SharedIngest`]) and stored by it; only an accepted beacon goes to the gossip outbox.
//! - **Registered first.** The node's registration is made sure of before the first beacon
//!   ([`super::registration`]); an unregistered node signs nothing.
//!
//! The jitter is `derive_key("lucid-node v1 beacon jitter", node id)` reduced modulo 10 s
//! (scaled on test networks): fixed per node, so that it is the same after a restart and spreads
//! the network's beacons over the first seconds of each slot.
//!
//! [`Ingest`]: lucid_consensus::ingest::Ingest

use std::sync::Arc;

use lucid_consensus::ConsensusParams;
use lucid_consensus::ingest::Verdict;
use lucid_consensus::proof::{ProofKey, ProofKind, ProofValue, TaskProof};
use lucid_consensus::store::ProofStore;
use lucid_consensus::verify::Verifier;
use lucid_core::message::Message;
use lucid_core::{Clock, NodeId, NodeKey, SignedMessage, Slot, UnixMillis};
use tokio::sync::{mpsc, watch};

use super::registration::{RegistrationConfig, RegistrationStatus, ensure_registration};
use super::runner::Service;
use super::{ServiceError, SharedIngest};

/// Hash context of the per-node beacon jitter (local policy, not part of any signed message).
pub const CTX_BEACON_JITTER: &str = "lucid-node v1 beacon jitter";

/// The jitter range on mainnet: beacons are signed in `[slot start, slot start + 10 s)`.
pub const BEACON_JITTER_MS: u64 = 10_000;

/// The node's beacon offset into every slot, in `[0, 10 s)` scaled to the network's slot length.
pub fn beacon_jitter_ms(params: &ConsensusParams, node: &NodeId) -> u64 {
    let range = params.time.scale_ms(BEACON_JITTER_MS).max(1);
    let digest = lucid_core::hash::derive_key(CTX_BEACON_JITTER, &[node.as_bytes()]);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_bytes()[..8]);
    u64::from_be_bytes(first) % range
}

/// What the producer needs; the node builds one and hands it to [`BeaconProducer::new`].
pub struct BeaconDeps {
    /// The network's parameters.
    pub params: ConsensusParams,
    /// The wall clock, re-read just before signing.
    pub clock: Arc<dyn Clock>,
    /// The node's identity key (signs beacons and the registration).
    pub key: Arc<NodeKey>,
    /// What the registration advertises.
    pub registration: RegistrationConfig,
    /// The proof store (own-beacon check, and ingest's persistence).
    pub store: Arc<dyn ProofStore>,
    /// The node's ingest state, shared with the peer paths.
    pub ingest: SharedIngest,
    /// The signature verifier ingest uses.
    pub verifier: Arc<Verifier>,
    /// Accepted own beacons, for gossip; full ⇒ dropped with a warning (anti-entropy recovers).
    pub outbox: Option<mpsc::Sender<SignedMessage>>,
}

/// What the producer reports for health and `status`: whether the node is registered and the
/// newest slot it has a beacon for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BeaconStatus {
    /// The registration state found by the last tick (`None` before the first).
    pub registration: Option<RegistrationStatus>,
    /// The newest slot with an own beacon.
    pub last_signed: Option<Slot>,
}

/// The beacon loop's state.
pub struct BeaconProducer {
    deps: BeaconDeps,
    node: NodeId,
    jitter_ms: i64,
    registration: Option<RegistrationStatus>,
    missing_reported: bool,
    last_signed: Option<Slot>,
    status: watch::Sender<BeaconStatus>,
}

impl BeaconProducer {
    /// A producer that has signed nothing yet.
    pub fn new(deps: BeaconDeps) -> Self {
        let node = deps.key.node_id();
        let jitter_ms = i64::try_from(beacon_jitter_ms(&deps.params, &node)).unwrap_or(0);
        BeaconProducer {
            deps,
            node,
            jitter_ms,
            registration: None,
            missing_reported: false,
            last_signed: None,
            status: watch::Sender::new(BeaconStatus::default()),
        }
    }

    /// A receiver of the producer's status; take it before the producer is moved into its loop.
    pub fn status(&self) -> watch::Receiver<BeaconStatus> {
        self.status.subscribe()
    }

    fn publish_status(&self) {
        let status =
            BeaconStatus { registration: self.registration.clone(), last_signed: self.last_signed };
        self.status.send_if_modified(|current| {
            let changed = *current != status;
            *current = status;
            changed
        });
    }

    /// The node's beacon offset into each slot.
    pub fn jitter_ms(&self) -> i64 {
        self.jitter_ms
    }

    /// The newest slot this producer knows a beacon of its own for.
    pub fn last_signed(&self) -> Option<Slot> {
        self.last_signed
    }

    /// The registration state found by the last tick.
    pub fn registration(&self) -> Option<&RegistrationStatus> {
        self.registration.as_ref()
    }

    fn due_in(&self, slot: Slot) -> Option<UnixMillis> {
        crate::services::time::slot_offset(&self.deps.params.time, slot, self.jitter_ms)
    }

    async fn ensure_registered(&mut self, now: UnixMillis) -> Result<bool, ServiceError> {
        if self.registration.as_ref().is_some_and(RegistrationStatus::is_registered) {
            return Ok(true);
        }
        let status = ensure_registration(
            &self.deps.params,
            &self.deps.key,
            &self.deps.registration,
            self.deps.store.as_ref(),
            &self.deps.ingest,
            now,
        )
        .await?;
        // A record that reached the store another way (the API) is found by the next call.
        if let RegistrationStatus::Missing { missing } = &status
            && !self.missing_reported
        {
            tracing::warn!(
                missing,
                "node is not registered: it signs no beacons and earns nothing until this is set"
            );
            self.missing_reported = true;
        }
        let registered = status.is_registered();
        self.registration = Some(status);
        Ok(registered)
    }

    /// Signs, ingests and publishes the beacon of `slot` now, unless one exists.
    async fn beacon(&mut self, slot: Slot) -> Result<(), ServiceError> {
        let key = ProofKey { node: self.node, slot, kind: ProofKind::UptimeBeacon };
        let existing = self
            .deps
            .store
            .get_proof(&key)
            .await
            .map_err(ServiceError::consensus("beacon", "looking for an own beacon"))?;
        if existing.is_some() {
            // Signed before (a restart within the slot): never a second one.
            self.last_signed = Some(slot);
            return Ok(());
        }
        // The store may have been slow: sign with the time of signing, and only if that still
        // lies in the slot (never for a past slot).
        let now = self.deps.clock.wall();
        if self.deps.params.time.slot_of(now).ok() != Some(slot) {
            tracing::warn!(%slot, "slot ended before its beacon could be signed; not back-filled");
            return Ok(());
        }
        let proof = TaskProof {
            node: self.node,
            slot,
            ts: now,
            value: ProofValue::Beacon { metrics_digest: None },
        };
        let signed = proof.sign(&self.deps.params.network, &self.deps.key);
        let report = self
            .deps
            .ingest
            .lock()
            .await
            .ingest_batch(self.deps.store.as_ref(), &self.deps.verifier, now, vec![signed.clone()])
            .await
            .map_err(ServiceError::consensus("beacon", "ingesting the own beacon"))?;
        let verdict =
            report.outcomes.first().map(|o| o.verdict).ok_or_else(|| ServiceError::Consensus {
                service: "beacon",
                action: "ingesting the own beacon",
                source: lucid_consensus::Error::Bug(lucid_core::internal!(
                    "ingest decided nothing for one message"
                )),
            })?;
        match verdict {
            Verdict::Accept => {
                self.last_signed = Some(slot);
                tracing::debug!(%slot, "beacon signed");
                if let Some(outbox) = &self.deps.outbox
                    && outbox.try_send(signed).is_err()
                {
                    tracing::warn!(%slot, "gossip outbox full or closed; own beacon not pushed (anti-entropy serves it)");
                }
                Ok(())
            }
            Verdict::Duplicate => {
                self.last_signed = Some(slot);
                Ok(())
            }
            Verdict::Reject(reason) => Err(ServiceError::OwnBeaconRefused { slot, reason }),
        }
    }
}

#[async_trait::async_trait]
impl Service for BeaconProducer {
    fn name(&self) -> &'static str {
        "beacon"
    }

    fn next_due(&self, after: UnixMillis) -> UnixMillis {
        crate::services::time::next_slot_offset(&self.deps.params.time, after, self.jitter_ms)
    }

    async fn tick(&mut self, now: UnixMillis) -> Result<(), ServiceError> {
        let Ok(slot) = self.deps.params.time.slot_of(now) else { return Ok(()) };
        let registered = self.ensure_registered(now).await;
        self.publish_status();
        if !registered? {
            return Ok(());
        }
        let due = self.due_in(slot).ok_or(ServiceError::Time {
            service: "beacon",
            source: lucid_core::TimeError::OutOfRange { what: "slot", value: slot.0 },
        })?;
        if now < due || self.last_signed.is_some_and(|last| last >= slot) {
            return Ok(());
        }
        let signed = self.beacon(slot).await;
        self.publish_status();
        signed
    }
}

#[cfg(test)]
mod tests;
