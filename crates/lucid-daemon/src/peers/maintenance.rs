//! [`PeerMaintenance`]: service 10's loop (`daemon.md` §2). Every `exchange_every` (60 s; a test
//! network scales it down with its slot) it
//! 1. at its first tick, offers every current registration of the store to the peer table
//!    (what the node learnt before a restart);
//! 2. dials the queued addresses (`peers.bootstrap`, `POST /api/v1/peers`) and the known peers
//!    that are not connected, up to `max_connected`, with `Hello`: the answer's registration must
//!    be signed by the node dialled, goes through the node's ingest, and then connects the peer;
//! 3. asks every connected peer for its registrations (`ExchangePeers`, paged), each through
//!    the node's ingest; records that fail verification count against the peer that sent them;
//! 4. evicts entries unseen for 24 h.
//!
//! Without its own registration the node cannot introduce itself, so the tick only does steps 1
//! and 4 and says so in the log.

use std::sync::Arc;
use std::time::Duration;

use lucid_consensus::ConsensusParams;
use lucid_consensus::ingest::{RejectReason, Verdict};
use lucid_consensus::registration::Registration;
use lucid_consensus::store::ProofStore;
use lucid_core::message::Message as _;
use lucid_core::{NodeId, SignedMessage, UnixMillis};

use super::SharedPeers;
use super::client::PeerClient;
use crate::network::{PeerDirectory as _, PeerFault, PeerTransport as _};
use crate::services::runner::Service;
use crate::services::{ServiceError, SharedIngest};

/// Most pages of `ExchangePeers` read from one peer per tick (100 records each).
const MAX_EXCHANGE_PAGES: usize = 10;

/// What the maintenance loop needs.
pub struct MaintenanceDeps {
    /// Consensus parameters.
    pub params: ConsensusParams,
    /// This node.
    pub own: NodeId,
    /// The peer table.
    pub peers: Arc<SharedPeers>,
    /// The signed client.
    pub client: Arc<PeerClient>,
    /// The node's ingest (registrations are judged there).
    pub ingest: SharedIngest,
    /// The proof store (current registrations).
    pub store: Arc<dyn ProofStore>,
    /// Period of the loop.
    pub every: Duration,
    /// The software version sent in `Hello`.
    pub version: &'static str,
}

/// The peer maintenance loop.
pub struct PeerMaintenance {
    deps: MaintenanceDeps,
    /// Whether the table was filled from the store (once, at the first tick: afterwards records
    /// arrive through `Hello` and exchanges, and an evicted peer stays evicted until it shows up).
    synced: bool,
}

impl PeerMaintenance {
    /// The loop.
    pub fn new(deps: MaintenanceDeps) -> Self {
        PeerMaintenance { deps, synced: false }
    }

    /// Judges a received registration record; `Some(record)` if it is (now) current.
    async fn ingest(
        &self,
        signed: SignedMessage,
        now: UnixMillis,
    ) -> Result<Option<Registration>, RejectReason> {
        let record = match Registration::from_signed_bytes(signed.bytes()) {
            Ok((_, record)) => record,
            Err(_) => return Err(RejectReason::Malformed),
        };
        let judged = self
            .deps
            .ingest
            .lock()
            .await
            .ingest_registration(self.deps.store.as_ref(), now, signed)
            .await;
        match judged {
            Ok((outcome, _)) => match outcome.verdict {
                Verdict::Accept | Verdict::Duplicate => Ok(Some(record)),
                Verdict::Reject(RejectReason::Superseded) => Ok(None),
                Verdict::Reject(reason) => Err(reason),
            },
            Err(error) => {
                tracing::warn!(%error, "storing a received registration failed");
                Ok(None)
            }
        }
    }

    /// Counts a bad record against the peer that sent it.
    fn blame(&self, peer: NodeId, reason: RejectReason) {
        let fault = match reason {
            RejectReason::BadSignature => PeerFault::BadSignature,
            // Not the sender's fault: the record may be valid later, or for the author alone.
            RejectReason::UnknownNode | RejectReason::FromFuture | RejectReason::Equivocation => {
                return;
            }
            _ => PeerFault::InvalidMessage,
        };
        self.deps.peers.report(peer, fault);
    }

    async fn sync_table(&self) -> Result<(), ServiceError> {
        let records = self
            .deps
            .store
            .current_registrations()
            .await
            .map_err(ServiceError::consensus("peers", "reading registrations"))?;
        for record in records {
            self.deps.peers.offer(&record.registration);
        }
        Ok(())
    }

    async fn dial(&self, own: &SignedMessage, now: UnixMillis) {
        let peers = &self.deps.peers;
        let queued = peers.queued_dials();
        let (room, known) = peers.with(|table, now| {
            let room = table.limits().max_connected.saturating_sub(table.connected_count());
            (room, table.dial_candidates(now, room))
        });
        let mut targets: Vec<NodeId> = Vec::new();
        for address in queued {
            let connected =
                peers.with(|table, now| table.connected_peers(now).contains(&address.node));
            if connected || address.node == self.deps.own {
                peers.dial_done(&address.node);
            } else {
                targets.push(address.node);
            }
        }
        for node in known {
            if !targets.contains(&node) {
                targets.push(node);
            }
        }
        for peer in targets.into_iter().take(room) {
            match self.deps.client.hello(peer, own, self.deps.version).await {
                Ok(reply) => {
                    let Some(registration) = reply.registration else {
                        tracing::debug!(peer = %peer, "peer is not registered yet");
                        continue;
                    };
                    let author = Registration::from_signed_bytes(registration.bytes())
                        .map(|(_, record)| record.node);
                    if author.ok() != Some(peer) {
                        // The address led to another node, or the reply is forged.
                        self.deps.peers.report(peer, PeerFault::BadSignature);
                        tracing::warn!(peer = %peer, "Hello answered with another node's record");
                        continue;
                    }
                    match self.ingest(registration, now).await {
                        Ok(record) => {
                            if let Some(record) = record {
                                peers.offer(&record);
                            }
                            let connected = peers.with(|table, now| {
                                table.seen(&peer, now, None);
                                table.connect(&peer, now)
                            });
                            if connected {
                                peers.dial_done(&peer);
                                tracing::info!(peer = %peer, "peer connected");
                            }
                        }
                        Err(reason) => self.blame(peer, reason),
                    }
                }
                Err(error) => tracing::debug!(peer = %peer, %error, "dial failed"),
            }
        }
    }

    async fn exchange(&self, now: UnixMillis) {
        let connected = self.deps.peers.gossip_peers();
        for peer in connected {
            let mut after = None;
            for _ in 0..MAX_EXCHANGE_PAGES {
                let page = match self
                    .deps
                    .client
                    .registrations(peer, after, lucid_api::grpc::MAX_PEERS_PAGE)
                    .await
                {
                    Ok(page) => page,
                    Err(error) => {
                        tracing::debug!(peer = %peer, %error, "peer exchange failed");
                        break;
                    }
                };
                let full = page.len() == lucid_api::grpc::MAX_PEERS_PAGE;
                for signed in page {
                    let node = Registration::from_signed_bytes(signed.bytes()).map(|(_, r)| r.node);
                    match self.ingest(signed, now).await {
                        Ok(Some(record)) => {
                            self.deps.peers.offer(&record);
                        }
                        Ok(None) => {}
                        Err(reason) => self.blame(peer, reason),
                    }
                    after = node.ok().or(after);
                }
                if !full {
                    break;
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl Service for PeerMaintenance {
    fn name(&self) -> &'static str {
        "peers"
    }

    fn next_due(&self, after: UnixMillis) -> UnixMillis {
        let every = i64::try_from(self.deps.every.as_millis()).unwrap_or(i64::MAX).max(1);
        after.saturating_add_ms(every)
    }

    async fn tick(&mut self, now: UnixMillis) -> Result<(), ServiceError> {
        if !self.synced {
            self.sync_table().await?;
            self.synced = true;
        }
        let own = self
            .deps
            .store
            .current_registrations()
            .await
            .map_err(ServiceError::consensus("peers", "reading the own registration"))?
            .into_iter()
            .find(|record| record.registration.node == self.deps.own)
            .map(|record| record.message);
        match own {
            Some(own) => {
                self.dial(&own, now).await;
                self.exchange(now).await;
            }
            None => tracing::info!("not registered yet: no peer can be dialled"),
        }
        let evicted = self.deps.peers.with(|table, now| table.evict_stale(now));
        if !evicted.is_empty() {
            tracing::info!(count = evicted.len(), "peers unseen for 24 h evicted");
        }
        Ok(())
    }
}
