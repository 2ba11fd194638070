//! The gRPC API (tonic, port 50051): the `Operator` service for the node's operator and the `Peer`
//! service for other nodes, over the wire types of `lucid-proto`.
//!
//! Handlers reach the node through ports: [`NodeApi`](crate::NodeApi) (status, clock) and
//! [`PeerApi`] (proof and registration ingest and reads), which the daemon implements over its
//! `ProofStore`. Conversions from protobuf are `FromProto` impls in [`convert`] with typed
//! [`GrpcError`]s; every error becomes a `tonic::Status` through [`grpc_status`], the one
//! `ErrorKind` → gRPC code mapping.
//!
//! Every input is bounded: the encoded message ([`MAX_MESSAGE_BYTES`], server and client), the
//! proofs of one batch ([`MAX_BATCH`]), slot ranges and page sizes. Malformed, forged, replayed
//! and oversized proofs inside a batch get a typed verdict each, never a failed call or a panic.

use std::net::SocketAddr;
use std::sync::Arc;

use lucid_consensus::ProofKey;
use lucid_consensus::ingest::Outcome;
use lucid_consensus::store::StoredProof;
use lucid_core::{Digest, ErrorKind, HasKind, NodeId, SignedMessage, Slot, SlotRange};

pub mod convert;
mod operator;
mod peer;

pub use crate::auth::AdminToken;
pub use lucid_proto::MAX_MESSAGE_BYTES;
pub use lucid_proto::v1 as pb;
pub use operator::OperatorService;
pub use peer::PeerService;

/// Most proofs in one `SubmitProofs` batch (daemon.md §6).
pub const MAX_BATCH: usize = 1024;
/// Most slots in one `GetSlotDigests` or `GetSchedule` range: one epoch.
pub const MAX_DIGEST_SLOTS: u64 = 720;
/// Most slots in one `PullProofs` range: one work window.
pub const MAX_PULL_SLOTS: u64 = 5040;
/// Most proofs in one `PullProofs` page.
pub const MAX_PULL_PAGE: usize = 1024;
/// Most registration records in one `ExchangePeers` answer.
pub const MAX_PEERS_PAGE: usize = 100;
/// Most slot seals in one `SubmitSeals` batch.
pub const MAX_SEAL_BATCH: usize = 64;
/// Most evidence items in one `FetchEvidence` answer (and in the set a node summarises per
/// range): evidence is rare, and each item is two small task proofs.
pub const MAX_EVIDENCE_PAGE: usize = 256;

/// The binary metadata key of a signed peer call.
pub const PEER_CALL_METADATA: &str = "lucid-peer-call-bin";
/// What this node's peer service speaks (`Hello.features`).
pub const PEER_FEATURES: &[&str] = &["peer-call-v1"];

/// The full gRPC paths of the `Peer` methods, as signed in peer calls.
pub mod methods {
    /// `Peer.Hello`.
    pub const HELLO: &str = "/lucid.node.v1.Peer/Hello";
    /// `Peer.SubmitProofs`.
    pub const SUBMIT_PROOFS: &str = "/lucid.node.v1.Peer/SubmitProofs";
    /// `Peer.GetSlotDigests`.
    pub const GET_SLOT_DIGESTS: &str = "/lucid.node.v1.Peer/GetSlotDigests";
    /// `Peer.PullProofs`.
    pub const PULL_PROOFS: &str = "/lucid.node.v1.Peer/PullProofs";
    /// `Peer.SubmitRegistration`.
    pub const SUBMIT_REGISTRATION: &str = "/lucid.node.v1.Peer/SubmitRegistration";
    /// `Peer.GetRegistration`.
    pub const GET_REGISTRATION: &str = "/lucid.node.v1.Peer/GetRegistration";
    /// `Peer.ExchangePeers`.
    pub const EXCHANGE_PEERS: &str = "/lucid.node.v1.Peer/ExchangePeers";
    /// `Peer.FetchSlot`.
    pub const FETCH_SLOT: &str = "/lucid.node.v1.Peer/FetchSlot";
    /// `Peer.SubmitEvidence`.
    pub const SUBMIT_EVIDENCE: &str = "/lucid.node.v1.Peer/SubmitEvidence";
    /// `Peer.SubmitPoolOps`.
    pub const SUBMIT_POOL_OPS: &str = "/lucid.node.v1.Peer/SubmitPoolOps";
    /// `Peer.FetchPoolOps`.
    pub const FETCH_POOL_OPS: &str = "/lucid.node.v1.Peer/FetchPoolOps";
    /// `Peer.SubmitSeals`.
    pub const SUBMIT_SEALS: &str = "/lucid.node.v1.Peer/SubmitSeals";
    /// `Peer.FetchEvidence`.
    pub const FETCH_EVIDENCE: &str = "/lucid.node.v1.Peer/FetchEvidence";
    /// `Peer.ForwardWithdrawal`.
    pub const FORWARD_WITHDRAWAL: &str = "/lucid.node.v1.Peer/ForwardWithdrawal";
    /// `Peer.ForwardCancel`.
    pub const FORWARD_CANCEL: &str = "/lucid.node.v1.Peer/ForwardCancel";
    /// `Peer.GetPayouts`.
    pub const GET_PAYOUTS: &str = "/lucid.node.v1.Peer/GetPayouts";
    /// `Peer.GetLedger`.
    pub const GET_LEDGER: &str = "/lucid.node.v1.Peer/GetLedger";
    /// `Peer.GetPayoutStats`.
    pub const GET_PAYOUT_STATS: &str = "/lucid.node.v1.Peer/GetPayoutStats";
}

/// One incoming peer call as the [`PeerGate`] judges it.
#[derive(Clone, Copy, Debug)]
pub struct PeerCallAttempt<'a> {
    /// The full method path.
    pub method: &'static str,
    /// The `lucid-peer-call-bin` metadata, if present and valid base64.
    pub metadata: Option<&'a [u8]>,
    /// BLAKE3 of the request's protobuf encoding.
    pub payload_digest: Digest,
    /// Messages the call carries, for the per-peer rate limit (at least 1).
    pub messages: u64,
    /// Whether the caller must already be registered (every method but `Hello`).
    pub registered_only: bool,
}

/// Why the gate refused a peer call.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerRefusal {
    /// The call is not authenticated (UNAUTHENTICATED with the typed reason).
    #[error("peer call refused: {0}")]
    Unauthenticated(lucid_consensus::peer_call::RefusalReason),
    /// The caller exceeded its rate limit (RESOURCE_EXHAUSTED).
    #[error("rate limit exceeded")]
    RateLimited,
    /// The caller is banned (PERMISSION_DENIED).
    #[error("banned")]
    Banned,
    /// `Hello` from another network (FAILED_PRECONDITION).
    #[error("wrong network id")]
    WrongNetwork,
    /// `Hello` with a registration that is not the caller's valid record (INVALID_ARGUMENT).
    #[error("invalid registration: {0}")]
    InvalidRegistration(String),
    /// The node could not judge the call now (UNAVAILABLE).
    #[error("unavailable")]
    Unavailable,
}

/// The status of a refused peer call; the only place this mapping exists.
pub fn peer_refusal_status(refusal: &PeerRefusal) -> tonic::Status {
    let code = match refusal {
        PeerRefusal::Unauthenticated(_) => tonic::Code::Unauthenticated,
        PeerRefusal::RateLimited => tonic::Code::ResourceExhausted,
        PeerRefusal::Banned => tonic::Code::PermissionDenied,
        PeerRefusal::WrongNetwork => tonic::Code::FailedPrecondition,
        PeerRefusal::InvalidRegistration(_) => tonic::Code::InvalidArgument,
        PeerRefusal::Unavailable => tonic::Code::Unavailable,
    };
    tonic::Status::new(code, refusal.to_string())
}

/// What `Hello` answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelloAnswer {
    /// The callee's current registration record.
    pub registration: Option<SignedMessage>,
    /// The callee's current slot.
    pub current_slot: Option<Slot>,
}

/// Authentication, authorisation and rate limiting of `Peer` calls, and the `Hello` handshake;
/// the daemon implements it over its peer table and replay guard.
#[async_trait::async_trait]
pub trait PeerGate: Send + Sync + 'static {
    /// Checks one call (signed peer call, ban, registration, rate limit) and counts every
    /// refusal against the caller; answers the authenticated caller.
    async fn admit(&self, attempt: PeerCallAttempt<'_>) -> Result<NodeId, PeerRefusal>;

    /// `Hello` from the authenticated `caller`: checks the network id (hex), ingests the
    /// caller's `registration` (which must be the caller's own), and answers this node's facts.
    async fn hello(
        &self,
        caller: NodeId,
        network_id: &str,
        version: &str,
        registration: SignedMessage,
    ) -> Result<HelloAnswer, PeerRefusal>;
}

/// A refused or failed gRPC call, before it becomes a `tonic::Status`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GrpcError {
    /// A field is missing, malformed or out of range.
    #[error("{field}: {reason}")]
    InvalidField {
        /// The protobuf field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A list holds more items than allowed.
    #[error("{field}: {len} items, at most {max} allowed")]
    TooMany {
        /// The protobuf field.
        field: &'static str,
        /// How many items came.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The thing asked for does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for.
        what: &'static str,
    },
    /// No `authorization: Bearer …` metadata on an operator call.
    #[error("missing admin token (authorization: Bearer <token>)")]
    MissingToken,
    /// The presented admin token is wrong.
    #[error("wrong admin token")]
    WrongToken,
    /// The node's proof store or ingest failed (our fault, not the caller's).
    #[error("proof store failed")]
    Store(#[from] lucid_consensus::Error),
}

impl HasKind for GrpcError {
    fn kind(&self) -> ErrorKind {
        match self {
            GrpcError::InvalidField { .. } | GrpcError::TooMany { .. } => ErrorKind::InvalidInput,
            GrpcError::NotFound { .. } => ErrorKind::NotFound,
            GrpcError::MissingToken => ErrorKind::Unauthenticated,
            GrpcError::WrongToken => ErrorKind::Forbidden,
            GrpcError::Store(error) => error.kind(),
        }
    }
}

/// The gRPC code of a coarse error kind; the only place this mapping exists.
pub fn grpc_code(kind: ErrorKind) -> tonic::Code {
    match kind {
        ErrorKind::InvalidInput | ErrorKind::PeerMisbehaved => tonic::Code::InvalidArgument,
        ErrorKind::NotFound => tonic::Code::NotFound,
        ErrorKind::Conflict => tonic::Code::FailedPrecondition,
        ErrorKind::Unauthenticated => tonic::Code::Unauthenticated,
        ErrorKind::Forbidden => tonic::Code::PermissionDenied,
        ErrorKind::TransientNetwork | ErrorKind::StoreUnavailable | ErrorKind::ShuttingDown => {
            tonic::Code::Unavailable
        }
        ErrorKind::FeatureDisabled => tonic::Code::Unimplemented,
        ErrorKind::Internal => tonic::Code::Internal,
        // ErrorKind is non-exhaustive; an unknown kind is treated as our own failure.
        _ => tonic::Code::Internal,
    }
}

/// The `tonic::Status` of an error: the code from [`grpc_code`], and a message that names the
/// caller's mistake but never our internals (store failures are logged, not sent).
pub fn grpc_status(error: &GrpcError) -> tonic::Status {
    let kind = error.kind();
    let message = match error {
        GrpcError::Store(source) => {
            tracing::error!(error = %source, "gRPC call failed in the proof store");
            kind.to_string()
        }
        other => other.to_string(),
    };
    tonic::Status::new(grpc_code(kind), message)
}

impl From<GrpcError> for tonic::Status {
    fn from(error: GrpcError) -> Self {
        grpc_status(&error)
    }
}

/// The accepted task proofs of one slot, summarised for anti-entropy: their count and the seal
/// Merkle root over their message digests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotDigest {
    /// The slot.
    pub slot: Slot,
    /// Accepted proofs in the slot.
    pub count: u32,
    /// `seal_root` of their digests.
    pub root: Digest,
}

/// What the peer service needs from the node; the daemon implements it over its `ProofStore`
/// and the consensus ingest.
#[async_trait::async_trait]
pub trait PeerApi: Send + Sync + 'static {
    /// Ingests task proofs received live from `caller` (the authenticated peer; `None` for
    /// the node itself); one outcome per message, in input order.
    async fn submit_proofs(
        &self,
        caller: Option<NodeId>,
        proofs: Vec<SignedMessage>,
    ) -> Result<Vec<Outcome>, lucid_consensus::Error>;
    /// Count and seal root of the accepted proofs of every slot in `range` that has any.
    async fn slot_digests(
        &self,
        range: SlotRange,
    ) -> Result<Vec<SlotDigest>, lucid_consensus::Error>;
    /// Up to `limit` accepted proofs of `range` after `after`, ordered by (slot, node, kind).
    async fn pull_proofs(
        &self,
        range: SlotRange,
        after: Option<ProofKey>,
        limit: usize,
    ) -> Result<Vec<StoredProof>, lucid_consensus::Error>;
    /// Ingests one registration record.
    async fn submit_registration(
        &self,
        registration: SignedMessage,
    ) -> Result<Outcome, lucid_consensus::Error>;
    /// The current registration records (highest seq) of up to `limit` nodes after `after`, by
    /// node id.
    async fn registrations(
        &self,
        after: Option<NodeId>,
        limit: usize,
    ) -> Result<Vec<SignedMessage>, lucid_consensus::Error>;
    /// The current registration record of `node`.
    async fn registration(
        &self,
        node: NodeId,
    ) -> Result<Option<SignedMessage>, lucid_consensus::Error>;
    /// Nodes with an accepted registration.
    async fn registered_nodes(&self) -> Result<u64, lucid_consensus::Error>;
    /// The node's own seal of `slot` and exactly the set of proofs it covers (`FetchSlot`);
    /// `None` when the node sealed nothing for the slot.
    async fn fetch_slot(&self, slot: Slot) -> Result<Option<SealedSlot>, lucid_consensus::Error>;
    /// Ingests equivocation evidence from `caller`: two proofs of one node under one key
    /// (`SubmitEvidence`).
    async fn submit_evidence(
        &self,
        caller: Option<NodeId>,
        first: SignedMessage,
        second: SignedMessage,
    ) -> Result<Outcome, lucid_consensus::Error>;
    /// Ingests signed pool ops pushed by `caller` (`SubmitPoolOps`); one outcome per op, in
    /// input order.
    async fn submit_pool_ops(
        &self,
        caller: Option<NodeId>,
        ops: Vec<SignedMessage>,
    ) -> Result<Vec<Outcome>, lucid_consensus::Error>;
    /// One page of the node's pool op log for `query` (`FetchPoolOps`).
    async fn fetch_pool_ops(
        &self,
        query: PoolOpsQuery,
    ) -> Result<PoolOpsPage, lucid_consensus::Error>;
    /// Ingests slot seals pushed by `caller` (`SubmitSeals`); one outcome per seal, in input
    /// order.
    async fn submit_seals(
        &self,
        caller: Option<NodeId>,
        seals: Vec<SignedMessage>,
    ) -> Result<Vec<Outcome>, lucid_consensus::Error>;
    /// The node's task-proof evidence of `query.range`, unless the caller holds the same set
    /// (`FetchEvidence`); [`evidence_page`] over the node's store.
    async fn fetch_evidence(
        &self,
        query: EvidenceQuery,
    ) -> Result<EvidencePage, lucid_consensus::Error>;
}

/// A `FetchEvidence` request: the evidence of task proofs of `range`, unless the caller already
/// holds the same set (`known_count` items whose [`evidence_summary`] root is `known_root`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvidenceQuery {
    /// Slots of the conflicting proofs (at most [`MAX_PULL_SLOTS`]).
    pub range: SlotRange,
    /// How many evidence items the caller holds in the range.
    pub known_count: u32,
    /// Their summary root (32 zero bytes for none).
    pub known_root: Digest,
}

impl EvidenceQuery {
    /// The `FetchEvidence` request carrying this query.
    pub fn to_proto(&self) -> pb::FetchEvidenceRequest {
        pb::FetchEvidenceRequest {
            from_slot: self.range.start.0,
            to_slot: self.range.end.0,
            known_count: self.known_count,
            known_root: self.known_root.as_bytes().to_vec(),
        }
    }
}

/// A peer's evidence of a range: at most [`MAX_EVIDENCE_PAGE`] conflicting pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EvidencePage {
    /// The caller already holds the callee's set of the range: nothing follows.
    pub in_sync: bool,
    /// The conflicting pairs (`first`, `second`), in digest-pair order.
    pub evidence: Vec<(SignedMessage, SignedMessage)>,
}

impl EvidencePage {
    /// Whether an answer of `items` pairs keeps the contract: at most [`MAX_EVIDENCE_PAGE`],
    /// and none when in sync. Checked by the server before sending and by every client before
    /// trusting an answer.
    pub fn shape_is_valid(items: usize, in_sync: bool) -> bool {
        items <= MAX_EVIDENCE_PAGE && !(in_sync && items > 0)
    }

    /// The `FetchEvidence` answer carrying this page.
    pub fn to_proto(&self) -> pb::FetchEvidenceResponse {
        use convert::ToProto as _;
        pb::FetchEvidenceResponse {
            in_sync: self.in_sync,
            evidence: self
                .evidence
                .iter()
                .map(|(first, second)| pb::EvidencePair {
                    first: Some(first.to_proto()),
                    second: Some(second.to_proto()),
                })
                .collect(),
        }
    }
}

/// The count and root by which two nodes compare their evidence of a range: the seal Merkle root
/// over the digests of every pair in order (`first`, `second`, next item…); 32 zero bytes for
/// none. `evidence` must be in digest-pair order, as the store returns it.
pub fn evidence_summary(evidence: &[lucid_consensus::store::Evidence]) -> (u32, Digest) {
    if evidence.is_empty() {
        return (0, Digest::from_bytes([0; 32]));
    }
    let digests: Vec<Digest> = evidence
        .iter()
        .flat_map(|item| {
            let (first, second) = item.digests();
            [first, second]
        })
        .collect();
    let count = u32::try_from(evidence.len()).unwrap_or(u32::MAX);
    (count, lucid_consensus::seal::seal_root(&digests))
}

/// Answers `query` from `store`: in sync when the caller's count and root equal the node's own,
/// otherwise the node's evidence of the range (at most [`MAX_EVIDENCE_PAGE`] items).
pub async fn evidence_page(
    store: &dyn lucid_consensus::store::ProofStore,
    query: EvidenceQuery,
) -> Result<EvidencePage, lucid_consensus::Error> {
    let evidence = store.evidence_in_range(query.range, MAX_EVIDENCE_PAGE).await?;
    if evidence_summary(&evidence) == (query.known_count, query.known_root) {
        return Ok(EvidencePage { in_sync: true, evidence: Vec::new() });
    }
    Ok(EvidencePage {
        in_sync: false,
        evidence: evidence.into_iter().map(|item| (item.first, item.second)).collect(),
    })
}

/// The position after the last op of a `FetchPoolOps` page: ops are ordered by (signing slot,
/// message digest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PoolOpCursor {
    /// The signing slot of the last op returned.
    pub slot: Slot,
    /// Its message digest.
    pub digest: Digest,
}

/// A `FetchPoolOps` request: the logged pool ops signed in `range`, unless the caller already
/// holds the same set (`known_count` ops whose `seal_root` is `known_root`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolOpsQuery {
    /// Signing slots (at most [`MAX_PULL_SLOTS`]).
    pub range: SlotRange,
    /// How many ops the caller holds in the range.
    pub known_count: u32,
    /// `seal_root` of their digests (32 zero bytes for none).
    pub known_root: Digest,
    /// Ops after this position only; `None` for the first page.
    pub after: Option<PoolOpCursor>,
    /// Most ops in the page (at most [`MAX_PULL_PAGE`]).
    pub limit: usize,
}

/// One page of a peer's pool op log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolOpsPage {
    /// The caller already holds the callee's set of the range: nothing follows.
    pub in_sync: bool,
    /// The ops, as their logged signed bytes, in (slot, digest) order.
    pub ops: Vec<SignedMessage>,
    /// Where the next page starts, when more ops may follow.
    pub next: Option<PoolOpCursor>,
}

/// A node's own seal of one slot with the proofs it covers, as served by `FetchSlot`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedSlot {
    /// The signed `slot-seal`.
    pub seal: SignedMessage,
    /// The proofs the seal covers, exactly (their digests hash to the seal's root).
    pub set: Vec<SignedMessage>,
}

/// Summarises the accepted proofs of `range` per slot (count and seal root), reading the store
/// in pages of `page` proofs; memory holds one slot's digests at a time.
pub async fn slot_digests(
    store: &dyn lucid_consensus::store::ProofStore,
    range: SlotRange,
    page: usize,
) -> Result<Vec<SlotDigest>, lucid_consensus::Error> {
    fn close(slot: Slot, digests: &mut Vec<Digest>, out: &mut Vec<SlotDigest>) {
        if !digests.is_empty() {
            let count = u32::try_from(digests.len()).unwrap_or(u32::MAX);
            out.push(SlotDigest { slot, count, root: lucid_consensus::seal::seal_root(digests) });
            digests.clear();
        }
    }
    let page = page.max(1);
    let mut out = Vec::new();
    let mut current = range.start;
    let mut digests = Vec::new();
    let mut after = None;
    loop {
        let proofs = store.proofs_in_range(range, after, page).await?;
        for proof in &proofs {
            if proof.proof.slot != current {
                close(current, &mut digests, &mut out);
                current = proof.proof.slot;
            }
            digests.push(proof.digest);
        }
        if proofs.len() < page {
            break;
        }
        after = proofs.last().map(StoredProof::key);
    }
    close(current, &mut digests, &mut out);
    Ok(out)
}

/// Serves both services on `listener` until `shutdown` completes; calls in flight then finish.
/// Every `Peer` call passes `gate` first.
pub async fn serve(
    listener: tokio::net::TcpListener,
    node: Arc<dyn crate::NodeApi>,
    peer: Arc<dyn PeerApi>,
    gate: Arc<dyn PeerGate>,
    token: AdminToken,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let payer = Arc::clone(&node);
    let operator = OperatorService::new(node, Arc::clone(&peer), token).into_server();
    let peer = PeerService::new(peer, gate).with_payer(payer).into_server();
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_service(operator)
        .add_service(peer)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

/// A client channel to `addr` with the node's message size bound.
pub async fn connect(
    addr: SocketAddr,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect()
        .await
}

/// An operator client on `channel` that sends the admin token `token` with every call.
pub fn operator_client(
    channel: tonic::transport::Channel,
    token: &str,
) -> Result<
    pb::operator_client::OperatorClient<
        tonic::service::interceptor::InterceptedService<tonic::transport::Channel, BearerToken>,
    >,
    GrpcError,
> {
    let header = zeroize::Zeroizing::new(format!("Bearer {}", token.trim()));
    let value = tonic::metadata::MetadataValue::try_from(header.as_str()).map_err(|_| {
        GrpcError::InvalidField { field: "authorization", reason: "not printable ASCII".into() }
    })?;
    let bearer = BearerToken(value);
    Ok(pb::operator_client::OperatorClient::with_interceptor(channel, bearer)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

/// Adds a signed peer call to `request`: `caller` (with `key`) calls `method` on `callee` at
/// `now` with `nonce`, over the digest of the request's protobuf encoding.
pub fn sign_peer_call<T: prost::Message>(
    request: &mut tonic::Request<T>,
    key: &lucid_core::NodeKey,
    network: &lucid_core::NetworkId,
    callee: NodeId,
    method: &str,
    now: lucid_core::UnixMillis,
    nonce: [u8; 16],
) {
    use lucid_core::message::Message as _;
    let call = lucid_consensus::peer_call::PeerCall {
        caller: key.node_id(),
        callee,
        method: method.to_owned(),
        ts: now,
        nonce,
        payload_digest: lucid_consensus::peer_call::payload_digest(
            &request.get_ref().encode_to_vec(),
        ),
    };
    let signed = call.sign(network, key);
    let value = tonic::metadata::MetadataValue::from_bytes(
        &lucid_consensus::peer_call::encode_signed(&signed),
    );
    request.metadata_mut().insert_bin(PEER_CALL_METADATA, value);
}

/// A peer client on `channel`, bounded like the server.
pub fn peer_client(
    channel: tonic::transport::Channel,
) -> pb::peer_client::PeerClient<tonic::transport::Channel> {
    pb::peer_client::PeerClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// Adds `authorization: Bearer <token>` to every request.
#[derive(Clone)]
pub struct BearerToken(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

impl tonic::service::Interceptor for BearerToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

#[cfg(test)]
mod tests;
