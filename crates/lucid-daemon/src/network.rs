//! The ports through which the node's gossip and anti-entropy reach other nodes.
//!
//! Gossip is written against these two traits and nothing else, so that the same code runs over
//! the real gRPC peer client (`tonic`, signed peer calls) and over the simulated network of
//! `lucid-testkit` (seeded latency, loss, duplication, partitions) without knowing which.
//!
//! - [`PeerTransport`] calls one RPC of the `Peer` service on one peer, named by its `NodeId`;
//!   resolving the id to an endpoint (registration record, onion or direct address) and
//!   authenticating the call is the transport's business.
//! - [`PeerDirectory`] says which peers to talk to now and takes reports of misbehaviour, which
//!   the peer table scores (`daemon.md` §6: +1 invalid message, +20 bad signature or forged
//!   author, +50 replayed peer call; ban at 100).
//!
//! Errors of a remote peer are data ([`TransportError`]), never a panic: a peer that is slow,
//! gone or lying costs at most one call.

use lucid_api::grpc::{
    EvidencePage, EvidenceQuery, PoolOpsPage, PoolOpsQuery, SealedSlot, SlotDigest,
};
use lucid_consensus::ProofKey;
use lucid_consensus::ingest::Outcome;
use lucid_core::{NodeId, SignedMessage, SlotRange};

/// Why a call to a peer produced no answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// No endpoint is known for the peer (no registration, or an endpoint this transport cannot
    /// dial).
    #[error("no endpoint is known for the peer")]
    UnknownPeer,
    /// The peer could not be reached or the connection broke.
    #[error("peer unreachable: {0}")]
    Unreachable(String),
    /// The call took longer than the transport's timeout.
    #[error("the call to the peer timed out")]
    Timeout,
    /// The peer refused the call (authentication, rate limit, invalid request).
    #[error("the peer refused the call: {0}")]
    Refused(String),
    /// The peer answered something that does not parse or breaks a bound.
    #[error("malformed reply from the peer: {0}")]
    Malformed(String),
}

/// One RPC of the `Peer` service on one peer.
#[async_trait::async_trait]
pub trait PeerTransport: Send + Sync + 'static {
    /// `SubmitProofs`: pushes at most `lucid_api::grpc::MAX_BATCH` signed task proofs; the
    /// peer's verdict for each, in input order.
    async fn submit_proofs(
        &self,
        peer: NodeId,
        proofs: Vec<SignedMessage>,
    ) -> Result<Vec<Outcome>, TransportError>;

    /// `GetSlotDigests`: count and seal root of the proofs the peer holds for every slot of
    /// `range` that has any (at most `lucid_api::grpc::MAX_DIGEST_SLOTS` slots).
    async fn slot_digests(
        &self,
        peer: NodeId,
        range: SlotRange,
    ) -> Result<Vec<SlotDigest>, TransportError>;

    /// `PullProofs`: up to `limit` of the peer's stored proofs of `range` after `after`, ordered
    /// by (slot, node, kind), as the exact signed bytes it stored.
    async fn pull_proofs(
        &self,
        peer: NodeId,
        range: SlotRange,
        after: Option<ProofKey>,
        limit: usize,
    ) -> Result<Vec<SignedMessage>, TransportError>;

    /// `ExchangePeers`: up to `limit` current registration records the peer knows, after
    /// `after` by node id.
    async fn registrations(
        &self,
        peer: NodeId,
        after: Option<NodeId>,
        limit: usize,
    ) -> Result<Vec<SignedMessage>, TransportError>;

    /// `FetchSlot`: the peer's own seal of `slot` and exactly the set of proofs it covers;
    /// `None` when the peer sealed nothing for the slot. Used by anti-entropy for slots past
    /// the live grace (late acceptance).
    async fn fetch_slot(
        &self,
        peer: NodeId,
        slot: lucid_core::Slot,
    ) -> Result<Option<SealedSlot>, TransportError>;

    /// `SubmitEvidence`: forwards equivocation evidence (two proofs of one node under one key);
    /// the peer's verdict on it.
    async fn submit_evidence(
        &self,
        peer: NodeId,
        first: SignedMessage,
        second: SignedMessage,
    ) -> Result<Outcome, TransportError>;

    /// `SubmitPoolOps`: pushes at most `lucid_api::grpc::MAX_BATCH` signed pool ops; the
    /// peer's verdict for each, in input order. A transport that cannot carry them refuses.
    async fn submit_pool_ops(
        &self,
        peer: NodeId,
        ops: Vec<SignedMessage>,
    ) -> Result<Vec<Outcome>, TransportError> {
        let _ = (peer, ops);
        Err(TransportError::Refused("this transport does not carry pool ops".into()))
    }

    /// `FetchPoolOps`: one page of the peer's pool op log for `query`, nothing when the
    /// caller's count and root already match. A transport that cannot carry them refuses.
    async fn fetch_pool_ops(
        &self,
        peer: NodeId,
        query: PoolOpsQuery,
    ) -> Result<PoolOpsPage, TransportError> {
        let _ = (peer, query);
        Err(TransportError::Refused("this transport does not carry pool ops".into()))
    }

    /// `SubmitSeals`: pushes at most `lucid_api::grpc::MAX_SEAL_BATCH` slot seals; the peer's
    /// verdict for each, in input order. A transport that cannot carry them refuses.
    async fn submit_seals(
        &self,
        peer: NodeId,
        seals: Vec<SignedMessage>,
    ) -> Result<Vec<Outcome>, TransportError> {
        let _ = (peer, seals);
        Err(TransportError::Refused("this transport does not carry seals".into()))
    }

    /// `FetchEvidence`: the peer's equivocation evidence of `query.range` (at most
    /// `lucid_api::grpc::MAX_EVIDENCE_PAGE` pairs), nothing when the caller's count and root
    /// already match. A transport that cannot carry it refuses.
    async fn fetch_evidence(
        &self,
        peer: NodeId,
        query: EvidenceQuery,
    ) -> Result<EvidencePage, TransportError> {
        let _ = (peer, query);
        Err(TransportError::Refused("this transport does not carry evidence queries".into()))
    }
}

/// Something a peer did that counts against it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PeerFault {
    /// A message that does not decode or breaks a rule (+1).
    InvalidMessage,
    /// A bad signature, or a message whose author is not who it claims (+20).
    BadSignature,
    /// A replayed peer call (+50).
    ReplayedCall,
    /// More messages than the per-peer rate limit allows.
    Flooding,
}

/// Which peers to talk to, and where misbehaviour is reported.
pub trait PeerDirectory: Send + Sync + 'static {
    /// The peers gossip and anti-entropy may call now (connected, not banned), at most
    /// `peers.max_connected`.
    fn gossip_peers(&self) -> Vec<NodeId>;

    /// Counts `fault` against `peer`.
    fn report(&self, peer: NodeId, fault: PeerFault);

    /// A registration record the node's ingest just accepted as current (signed by the node
    /// itself, the highest sequence): a directory with a peer table takes it in at once.
    fn registration_accepted(&self, registration: &lucid_consensus::registration::Registration) {
        let _ = registration;
    }
}
