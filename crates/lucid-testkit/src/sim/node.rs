//! A simulated node: its key, in-memory proof store, the daemon's `StorePeer` (wrapped in a
//! [`FeedingPeer`]), a skewed clock, its directory, and for honest nodes the daemon's own beacon
//! producer plus a work-proof signer, all run by the daemon's service runner.
//!
//! Every node knows every registration from genesis (they are part of the scenario), so the
//! beacon producer finds its record current and signs from the first slot.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use lucid_consensus::ConsensusParams;
use lucid_consensus::ingest::Verdict;
use lucid_consensus::proof::{MAX_RELAY_SESSIONS, ProofValue, TaskProof};
use lucid_consensus::registration::Registration;
use lucid_consensus::store::{MemoryProofStore, ProofStore, StoredRegistration};
use lucid_consensus::verify::Verifier;
use lucid_core::message::Message;
use lucid_core::{Clock, NodeId, NodeKey, SignedMessage, Slot, UnixMillis};
use lucid_daemon::gossip::GossipHook;
use lucid_daemon::peer::StorePeer;
use lucid_daemon::services::beacon::{BeaconDeps, BeaconProducer};
use lucid_daemon::services::metrics::ServiceMetrics;
use lucid_daemon::services::registration::RegistrationConfig;
use lucid_daemon::services::runner::{Service, run_service};
use lucid_daemon::services::time::TokioClock;
use lucid_daemon::services::{ServiceError, SharedIngest};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::SimError;
use super::directory::SimDirectory;
use super::protocol::{FEED_CAPACITY, FeedingPeer};
use super::rng::SimRng;

/// A node's signed registration, known to every node at genesis.
#[derive(Clone, Debug)]
pub struct GenesisRecord {
    /// The record.
    pub registration: Registration,
    /// Its signed pair.
    pub message: SignedMessage,
}

impl GenesisRecord {
    /// The record of `key`, signed at genesis + 1 s with sequence 1.
    pub fn of(params: &ConsensusParams, key: &NodeKey) -> Self {
        let registration = lucid_consensus::testing::registration(params, key, 1);
        let message = registration.sign(&params.network, key);
        GenesisRecord { registration, message }
    }

    fn stored(&self) -> StoredRegistration {
        StoredRegistration {
            registration: self.registration.clone(),
            message: self.message.clone(),
            digest: self.message.digest(),
        }
    }
}

/// The parts every simulated node has, honest or not.
pub struct NodeParts {
    /// The node's key.
    pub key: Arc<NodeKey>,
    /// The node's id.
    pub node: NodeId,
    /// Its proof store.
    pub store: Arc<MemoryProofStore>,
    /// Its ingest, shared by the peer service, the beacon producer and the protocol.
    pub ingest: SharedIngest,
    /// The peer service it serves.
    pub peer: Arc<FeedingPeer>,
    /// Its clock: reference time plus its skew.
    pub clock: Arc<TokioClock>,
    /// Its skew against the reference clock.
    pub skew_ms: i64,
    /// Its neighbours and fault record.
    pub directory: Arc<SimDirectory>,
    /// Sender side of the feed of accepted proofs.
    pub feed: mpsc::Sender<SignedMessage>,
    /// Receiver side, until the protocol takes it.
    pub feed_out: Option<mpsc::Receiver<SignedMessage>>,
    /// Accepted proofs dropped because the feed was full.
    pub feed_dropped: Arc<AtomicU64>,
}

impl NodeParts {
    /// Builds a node whose store holds every genesis registration.
    #[expect(
        clippy::too_many_arguments,
        reason = "the per-node parts of a scenario, each used once; the one caller names them all"
    )]
    pub async fn build(
        params: ConsensusParams,
        key: NodeKey,
        records: &[GenesisRecord],
        verifier: Arc<Verifier>,
        clock: Arc<TokioClock>,
        skew_ms: i64,
        directory: Arc<SimDirectory>,
        hook: Option<GossipHook>,
    ) -> Result<Self, SimError> {
        let store = Arc::new(MemoryProofStore::new());
        for record in records {
            store.insert_registration(&record.stored()).await.map_err(SimError::Setup)?;
        }
        let store_port: Arc<dyn ProofStore> = store.clone();
        let clock_port: Arc<dyn Clock> = clock.clone();
        let peer = StorePeer::load(params, store_port, verifier, clock_port)
            .await
            .map_err(SimError::Setup)?;
        let ingest = peer.ingest();
        let (feed, feed_out) = mpsc::channel(FEED_CAPACITY);
        let feed_dropped = Arc::new(AtomicU64::new(0));
        // With a gossip hook the peer service queues what it accepts itself; the feed then
        // carries only the node's own proofs.
        let (peer, feed_pushes) = match hook {
            Some(hook) => (peer.with_gossip(hook), false),
            None => (peer, true),
        };
        let peer =
            Arc::new(FeedingPeer::new(peer, feed.clone(), Arc::clone(&feed_dropped), feed_pushes));
        let node = key.node_id();
        Ok(NodeParts {
            key: Arc::new(key),
            node,
            store,
            ingest,
            peer,
            clock,
            skew_ms,
            directory,
            feed,
            feed_out: Some(feed_out),
            feed_dropped,
        })
    }

    /// Starts what an honest node signs: the daemon's beacon producer (one beacon per slot at
    /// its jitter) and, with a `work_seed`, a relay work proof near the end of every slot, both
    /// through the node's ingest and into its feed.
    pub fn start_signers(
        &self,
        params: ConsensusParams,
        record: &GenesisRecord,
        verifier: &Arc<Verifier>,
        work_seed: Option<u64>,
        tracker: &TaskTracker,
        cancel: &CancellationToken,
    ) {
        let metrics = Arc::new(ServiceMetrics::new());
        let clock: Arc<dyn Clock> = self.clock.clone();
        let store: Arc<dyn ProofStore> = self.store.clone();
        let registration = RegistrationConfig {
            payout_address: Some(record.registration.payout_address),
            endpoint: Some(record.registration.endpoint.clone()),
            capabilities: record.registration.capabilities,
            storage_capacity_bytes: record.registration.storage_capacity_bytes,
        };
        let beacons = BeaconProducer::new(BeaconDeps {
            params,
            clock: Arc::clone(&clock),
            key: Arc::clone(&self.key),
            registration,
            store: Arc::clone(&store),
            ingest: Arc::clone(&self.ingest),
            verifier: Arc::clone(verifier),
            outbox: Some(self.feed.clone()),
        });
        tracker.spawn(run_service(
            beacons,
            Arc::clone(&clock),
            Arc::clone(&metrics),
            cancel.clone(),
        ));
        let Some(seed) = work_seed else { return };
        let work = WorkSigner {
            params,
            key: Arc::clone(&self.key),
            store,
            ingest: Arc::clone(&self.ingest),
            verifier: Arc::clone(verifier),
            feed: self.feed.clone(),
            rng: SimRng::new(seed),
            last: None,
        };
        tracker.spawn(run_service(work, clock, metrics, cancel.clone()));
    }
}

/// Signs one relay proof per slot at slot start + 110/120 of the slot (`daemon.md` §3, the
/// work-proof signer), with a seeded amount, so that tallies have credits and ranks.
struct WorkSigner {
    params: ConsensusParams,
    key: Arc<NodeKey>,
    store: Arc<dyn ProofStore>,
    ingest: SharedIngest,
    verifier: Arc<Verifier>,
    feed: mpsc::Sender<SignedMessage>,
    rng: SimRng,
    last: Option<Slot>,
}

impl WorkSigner {
    fn due_in(&self, slot: Slot) -> UnixMillis {
        let offset = i64::try_from(self.params.time.scale_ms(110_000)).unwrap_or(0);
        self.params
            .time
            .slot_start(slot)
            .map_or(UnixMillis(i64::MAX), |s| s.saturating_add_ms(offset))
    }
}

#[async_trait::async_trait]
impl Service for WorkSigner {
    fn name(&self) -> &'static str {
        "sim-work"
    }

    fn next_due(&self, after: UnixMillis) -> UnixMillis {
        let slot = self.params.time.slot_of(after).unwrap_or(Slot(0));
        let due = self.due_in(slot);
        if due > after {
            return due;
        }
        let next = self.due_in(Slot(slot.0.saturating_add(1)));
        if next > after { next } else { after.saturating_add_ms(1) }
    }

    async fn tick(&mut self, now: UnixMillis) -> Result<(), ServiceError> {
        let Ok(slot) = self.params.time.slot_of(now) else { return Ok(()) };
        if now < self.due_in(slot) || self.last.is_some_and(|last| last >= slot) {
            return Ok(());
        }
        self.last = Some(slot);
        let sessions = u32::try_from(self.rng.between(1, 20)).unwrap_or(1).min(MAX_RELAY_SESSIONS);
        let proof = TaskProof {
            node: self.key.node_id(),
            slot,
            ts: now,
            value: ProofValue::Relay { bytes_transferred: 0, sessions_relayed: sessions },
        };
        let signed = proof.sign(&self.params.network, &self.key);
        let report = self
            .ingest
            .lock()
            .await
            .ingest_batch(self.store.as_ref(), &self.verifier, now, vec![signed.clone()])
            .await
            .map_err(ServiceError::consensus("sim-work", "ingesting the own work proof"))?;
        if report.outcomes.first().map(|o| o.verdict) == Some(Verdict::Accept) {
            // A full feed drops it; the pull repairs it (as the daemon's outbox does).
            let _ = self.feed.try_send(signed);
        }
        Ok(())
    }
}
