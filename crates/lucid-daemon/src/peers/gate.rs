//! [`NodeGate`]: the node's `PeerGate`. Every inbound `Peer` call is checked here before its
//! handler runs: the signed peer call (through the pure `PeerCallGuard` and its replay cache),
//! then the ban, the caller's registration (except on `Hello`) and the per-peer rate limit.
//! Every refusal of a caller whose signature was valid counts against it in the peer table;
//! forged calls count against nobody, since anyone can forge a call in another node's name.

use std::sync::{Arc, Mutex, PoisonError};

use lucid_api::grpc::{HelloAnswer, PeerCallAttempt, PeerGate, PeerRefusal};
use lucid_consensus::ConsensusParams;
use lucid_consensus::ingest::{RejectReason, Verdict};
use lucid_consensus::peer_call::{PeerCallGuard, RefusalReason};
use lucid_consensus::registration::Registration;
use lucid_consensus::store::ProofStore;
use lucid_core::message::Message as _;
use lucid_core::{Clock, NodeId, SignedMessage};

use super::SharedPeers;
use crate::network::{PeerDirectory as _, PeerFault};
use crate::services::SharedIngest;

/// The fault a refused (attributable) peer call counts as.
pub fn refusal_fault(reason: RefusalReason) -> Option<PeerFault> {
    match reason {
        RefusalReason::Replayed => Some(PeerFault::ReplayedCall),
        // Our own bound, not the caller's fault.
        RefusalReason::ReplayCacheFull => None,
        _ => Some(PeerFault::InvalidMessage),
    }
}

/// The node's gate for inbound peer calls.
pub struct NodeGate {
    params: ConsensusParams,
    own: NodeId,
    guard: Mutex<PeerCallGuard>,
    peers: Arc<SharedPeers>,
    ingest: SharedIngest,
    store: Arc<dyn ProofStore>,
    clock: Arc<dyn Clock>,
}

impl NodeGate {
    /// The gate of node `own`.
    pub fn new(
        params: ConsensusParams,
        own: NodeId,
        peers: Arc<SharedPeers>,
        ingest: SharedIngest,
        store: Arc<dyn ProofStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        NodeGate {
            params,
            own,
            guard: Mutex::new(PeerCallGuard::new(params.network, own)),
            peers,
            ingest,
            store,
            clock,
        }
    }

    fn refuse(&self, caller: NodeId, fault: PeerFault, refusal: PeerRefusal) -> PeerRefusal {
        self.peers.report(caller, fault);
        tracing::debug!(caller = %caller, %refusal, "peer call refused");
        refusal
    }

    async fn is_registered(&self, caller: &NodeId) -> bool {
        if self.peers.with(|table, _| table.contains(caller)) {
            return true;
        }
        self.ingest.lock().await.is_registered(caller)
    }
}

#[async_trait::async_trait]
impl PeerGate for NodeGate {
    async fn admit(&self, attempt: PeerCallAttempt<'_>) -> Result<NodeId, PeerRefusal> {
        let now = self.clock.wall();
        let checked = self.guard.lock().unwrap_or_else(PoisonError::into_inner).check(
            attempt.metadata,
            attempt.method,
            &attempt.payload_digest,
            now,
        );
        let caller = match checked {
            Ok(caller) => caller,
            Err(refusal) => {
                let answer = PeerRefusal::Unauthenticated(refusal.reason);
                return Err(match (refusal.attributable, refusal_fault(refusal.reason)) {
                    (Some(caller), Some(fault)) => self.refuse(caller, fault, answer),
                    _ => answer,
                });
            }
        };
        if self.peers.with(|table, now| table.is_banned(&caller, now)) {
            return Err(PeerRefusal::Banned);
        }
        if attempt.registered_only && !self.is_registered(&caller).await {
            return Err(PeerRefusal::Unauthenticated(RefusalReason::Unregistered));
        }
        let known = self.peers.with(|table, _| table.contains(&caller));
        // A caller not in the table yet (its Hello brings the record) is not rate-limited here:
        // it may only say Hello.
        if known && !self.peers.with(|table, now| table.admit(&caller, attempt.messages, now)) {
            return Err(self.refuse(caller, PeerFault::Flooding, PeerRefusal::RateLimited));
        }
        self.peers.with(|table, now| table.seen(&caller, now, None));
        Ok(caller)
    }

    async fn hello(
        &self,
        caller: NodeId,
        network_id: &str,
        version: &str,
        registration: SignedMessage,
    ) -> Result<HelloAnswer, PeerRefusal> {
        if network_id != self.params.network.to_string() {
            return Err(self.refuse(caller, PeerFault::InvalidMessage, PeerRefusal::WrongNetwork));
        }
        let record = match Registration::from_signed_bytes(registration.bytes()) {
            Ok((_, record)) if record.node == caller => record,
            Ok(_) => {
                let refusal = PeerRefusal::InvalidRegistration("not the caller's record".into());
                return Err(self.refuse(caller, PeerFault::BadSignature, refusal));
            }
            Err(_) => {
                let refusal = PeerRefusal::InvalidRegistration("malformed".into());
                return Err(self.refuse(caller, PeerFault::InvalidMessage, refusal));
            }
        };
        let now = self.clock.wall();
        let ingested = self
            .ingest
            .lock()
            .await
            .ingest_registration(self.store.as_ref(), now, registration)
            .await;
        let outcome = match ingested {
            Ok((outcome, _evidence)) => outcome,
            Err(error) => {
                tracing::warn!(%error, "storing a peer's registration failed");
                return Err(PeerRefusal::Unavailable);
            }
        };
        match outcome.verdict {
            // A lower seq than the one held: the caller is known under its current record.
            Verdict::Accept | Verdict::Duplicate | Verdict::Reject(RejectReason::Superseded) => {}
            Verdict::Reject(reason) => {
                let fault = if reason == RejectReason::BadSignature {
                    PeerFault::BadSignature
                } else {
                    PeerFault::InvalidMessage
                };
                let refusal = PeerRefusal::InvalidRegistration(reason.as_str().to_owned());
                return Err(self.refuse(caller, fault, refusal));
            }
        }
        self.peers.offer(&record);
        self.peers.with(|table, now| {
            table.seen(&caller, now, None);
            table.connect(&caller, now);
        });
        tracing::debug!(caller = %caller, version = %version.chars().take(32).collect::<String>(), "hello");
        let own = match self.store.current_registrations().await {
            Ok(records) => records
                .into_iter()
                .find(|record| record.registration.node == self.own)
                .map(|record| record.message),
            Err(error) => {
                tracing::warn!(%error, "reading the own registration failed");
                return Err(PeerRefusal::Unavailable);
            }
        };
        Ok(HelloAnswer { registration: own, current_slot: self.params.time.slot_of(now).ok() })
    }
}
