//! The simulated network: a [`PeerTransport`] per node that routes each call to the target
//! node's `PeerApi` after a seeded latency, with seeded loss, duplication and reordering,
//! partitions that heal, a per-sender inbound rate limit, and traffic counters.
//!
//! # Model
//! A call is a request and a reply. The request leaves at once; with probability `loss_ppm` it
//! is lost, otherwise it arrives after a latency drawn uniformly from the link profile (plus, with
//! probability `reorder_ppm`, an extra hold-back so that later messages overtake it). A request
//! may be delivered a second time (`duplicate_ppm`, as a client retry after a lost reply would):
//! the receiver executes it twice and the second reply is discarded. The reply faces the same
//! loss and latency. A partition drops everything between its isolated group and the rest while
//! it lasts, checked when a message leaves and when it arrives. A caller whose request or reply
//! was dropped waits for its timeout, exactly as a real client would.
//!
//! The receiver side models what the real gRPC peer service and peer table do before and after
//! the node's `PeerApi`: the bounds of `lucid-api` (batch size, slot ranges, page size), a
//! per-sender rate limit in signed messages per slot (refused beyond it and reported as
//! [`PeerFault::Flooding`]), and scoring of the sender for verdicts that prove misbehaviour
//! (reported to the receiver's [`PeerDirectory`]).
//!
//! Time is tokio's (paused in a simulation), and the partitions and rate-limit slots follow the
//! network's own unskewed reference clock, not any node's.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use lucid_api::grpc::convert::ToProto as _;
use lucid_api::grpc::{
    EvidencePage, EvidenceQuery, MAX_BATCH, MAX_DIGEST_SLOTS, MAX_PEERS_PAGE, MAX_PULL_PAGE,
    MAX_PULL_SLOTS, PeerApi, SealedSlot, SlotDigest, pb,
};
use lucid_consensus::ProofKey;
use lucid_consensus::ingest::{Outcome, RejectReason, Verdict};
use lucid_core::{Clock, NodeId, SignedMessage, Slot, SlotRange, TimeParams, UnixMillis};
use lucid_daemon::network::{PeerDirectory, PeerFault, PeerTransport, TransportError};
use prost::Message as _;

use super::rng::SimRng;
use super::traffic::{GRPC_FRAME_BYTES, NetworkStats, NodeTraffic, TrafficReport};

/// The behaviour of every link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkProfile {
    /// Shortest one-way latency.
    pub latency_min_ms: u64,
    /// Longest one-way latency (before any reordering hold-back).
    pub latency_max_ms: u64,
    /// Chance that a request or a reply is lost, parts per million.
    pub loss_ppm: u32,
    /// Chance that a request is delivered twice, parts per million.
    pub duplicate_ppm: u32,
    /// Chance that a message is held back so that later ones overtake it, parts per million.
    pub reorder_ppm: u32,
    /// Longest hold-back of a reordered message.
    pub reorder_delay_ms: u64,
    /// How long a caller waits for a reply.
    pub call_timeout_ms: u64,
}

impl LinkProfile {
    /// A perfect network: fixed 10 ms latency, nothing lost, duplicated or reordered.
    pub const PERFECT: LinkProfile = LinkProfile {
        latency_min_ms: 10,
        latency_max_ms: 10,
        loss_ppm: 0,
        duplicate_ppm: 0,
        reorder_ppm: 0,
        reorder_delay_ms: 0,
        call_timeout_ms: 2_000,
    };

    /// An unreliable wide-area network: 20–200 ms, `loss_ppm` loss, 1 % duplication, 5 %
    /// reordering by up to 300 ms, 2 s timeout.
    pub fn lossy(loss_ppm: u32) -> LinkProfile {
        LinkProfile {
            latency_min_ms: 20,
            latency_max_ms: 200,
            loss_ppm,
            duplicate_ppm: 10_000,
            reorder_ppm: 50_000,
            reorder_delay_ms: 300,
            call_timeout_ms: 2_000,
        }
    }
}

/// A group of nodes cut off from all others from `start` until `heal` (reference time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// The isolated group.
    pub isolated: BTreeSet<NodeId>,
    /// When the cut begins.
    pub start: UnixMillis,
    /// When it heals.
    pub heal: UnixMillis,
}

impl Partition {
    /// Whether the partition separates `a` and `b` at `at`.
    pub fn separates(&self, a: &NodeId, b: &NodeId, at: UnixMillis) -> bool {
        at >= self.start && at < self.heal && self.isolated.contains(a) != self.isolated.contains(b)
    }
}

/// Limits the receivers apply per sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InboundLimits {
    /// Signed messages (a request without any counts as one) a node accepts from one sender per
    /// slot of the reference clock; beyond it calls are refused and reported as flooding.
    pub messages_per_slot: u64,
}

/// One RPC of the `Peer` service, as the simulated wire carries it.
#[derive(Clone, Debug)]
pub(crate) enum Call {
    Submit(Vec<SignedMessage>),
    Digests(SlotRange),
    Pull { range: SlotRange, after: Option<ProofKey>, limit: usize },
    Registrations { after: Option<NodeId>, limit: usize },
    FetchSlot(Slot),
    Evidence(SignedMessage, SignedMessage),
    Seals(Vec<SignedMessage>),
    FetchEvidence(EvidenceQuery),
}

/// The answer to a [`Call`].
#[derive(Clone, Debug)]
pub(crate) enum Reply {
    Outcomes(Vec<Outcome>),
    Digests(Vec<SlotDigest>),
    Messages(Vec<SignedMessage>),
    Sealed(Option<SealedSlot>),
    Evidence(EvidencePage),
}

impl Call {
    /// The encoded size of the request and the number of signed messages in it.
    fn size(&self) -> (u64, u64) {
        let (bytes, items) = match self {
            // Field 1 of `SubmitProofsRequest`, repeated.
            Call::Submit(proofs) => (messages_len(proofs), proofs.len()),
            Call::Digests(range) => {
                let request =
                    pb::GetSlotDigestsRequest { from_slot: range.start.0, to_slot: range.end.0 };
                (request.encoded_len(), 0)
            }
            Call::Pull { range, after, limit } => {
                let request = pb::PullProofsRequest {
                    from_slot: range.start.0,
                    to_slot: range.end.0,
                    after: after.map(|key| key.to_proto()),
                    limit: u32::try_from(*limit).unwrap_or(u32::MAX),
                };
                (request.encoded_len(), 0)
            }
            Call::Registrations { after, limit } => {
                let request = pb::ExchangePeersRequest {
                    after: after.map(|node| node.as_bytes().to_vec()).unwrap_or_default(),
                    limit: u32::try_from(*limit).unwrap_or(u32::MAX),
                };
                (request.encoded_len(), 0)
            }
            Call::FetchSlot(slot) => (pb::FetchSlotRequest { slot: slot.0 }.encoded_len(), 0),
            Call::Evidence(first, second) => {
                let request = pb::SubmitEvidenceRequest {
                    first: Some(first.to_proto()),
                    second: Some(second.to_proto()),
                };
                (request.encoded_len(), 2)
            }
            // Field 1 of `SubmitSealsRequest`, repeated.
            Call::Seals(seals) => (messages_len(seals), seals.len()),
            Call::FetchEvidence(query) => (query.to_proto().encoded_len(), 0),
        };
        (as_u64(bytes) + GRPC_FRAME_BYTES, as_u64(items))
    }

    /// How many messages the rate limit counts for this call.
    fn weight(&self) -> u64 {
        match self {
            Call::Submit(proofs) | Call::Seals(proofs) => as_u64(proofs.len()).max(1),
            Call::Evidence(..) => 2,
            _ => 1,
        }
    }

    /// The bounds the real peer service enforces before the call reaches the node.
    fn check_bounds(&self) -> Result<(), String> {
        let slots = |range: &SlotRange| range.end.0.saturating_sub(range.start.0);
        match self {
            Call::Submit(proofs) if proofs.len() > MAX_BATCH => {
                Err(format!("batch of {} proofs exceeds {MAX_BATCH}", proofs.len()))
            }
            Call::Digests(range) if range.end < range.start || slots(range) > MAX_DIGEST_SLOTS => {
                Err("digest range out of bounds".to_owned())
            }
            Call::Pull { range, limit, .. }
                if range.end < range.start
                    || slots(range) > MAX_PULL_SLOTS
                    || *limit > MAX_PULL_PAGE =>
            {
                Err("pull range or page out of bounds".to_owned())
            }
            Call::Registrations { limit, .. } if *limit > MAX_PEERS_PAGE => {
                Err("page out of bounds".to_owned())
            }
            Call::Seals(seals) if seals.len() > lucid_api::grpc::MAX_SEAL_BATCH => {
                Err(format!("batch of {} seals out of bounds", seals.len()))
            }
            Call::FetchEvidence(query)
                if query.range.end <= query.range.start || slots(&query.range) > MAX_PULL_SLOTS =>
            {
                Err("evidence range out of bounds".to_owned())
            }
            _ => Ok(()),
        }
    }

    async fn serve(
        &self,
        from: NodeId,
        api: &dyn PeerApi,
    ) -> Result<Reply, lucid_consensus::Error> {
        Ok(match self {
            Call::Submit(proofs) => {
                Reply::Outcomes(api.submit_proofs(Some(from), proofs.clone()).await?)
            }
            Call::Digests(range) => Reply::Digests(api.slot_digests(*range).await?),
            Call::Pull { range, after, limit } => {
                // 0 means a full page, as on the wire.
                let limit = if *limit == 0 { MAX_PULL_PAGE } else { *limit };
                let proofs = api.pull_proofs(*range, *after, limit).await?;
                Reply::Messages(proofs.into_iter().map(|p| p.message).collect())
            }
            Call::Registrations { after, limit } => {
                let limit = if *limit == 0 { MAX_PEERS_PAGE } else { *limit };
                Reply::Messages(api.registrations(*after, limit).await?)
            }
            Call::FetchSlot(slot) => Reply::Sealed(api.fetch_slot(*slot).await?),
            Call::Evidence(first, second) => Reply::Outcomes(vec![
                api.submit_evidence(Some(from), first.clone(), second.clone()).await?,
            ]),
            Call::Seals(seals) => {
                Reply::Outcomes(api.submit_seals(Some(from), seals.clone()).await?)
            }
            Call::FetchEvidence(query) => Reply::Evidence(api.fetch_evidence(*query).await?),
        })
    }
}

impl Reply {
    /// The encoded size of the reply and the number of signed messages in it.
    fn size(&self) -> (u64, u64) {
        let (bytes, items) = match self {
            Reply::Outcomes(outcomes) => {
                let bytes = outcomes.iter().map(|o| embedded_len(o.to_proto().encoded_len())).sum();
                (bytes, 0)
            }
            Reply::Digests(digests) => {
                let reply = pb::GetSlotDigestsResponse {
                    slots: digests.iter().map(|d| d.to_proto()).collect(),
                };
                (reply.encoded_len(), 0)
            }
            // Field 1 of `PullProofsResponse` (and of `ExchangePeersResponse`), repeated.
            Reply::Messages(messages) => (messages_len(messages), messages.len()),
            Reply::Sealed(sealed) => {
                let reply = match sealed {
                    Some(sealed) => pb::FetchSlotResponse {
                        seal: Some(sealed.seal.to_proto()),
                        set: sealed.set.iter().map(|message| message.to_proto()).collect(),
                    },
                    None => pb::FetchSlotResponse { seal: None, set: Vec::new() },
                };
                let items = sealed.as_ref().map_or(0, |sealed| sealed.set.len() + 1);
                (reply.encoded_len(), items)
            }
            Reply::Evidence(page) => (page.to_proto().encoded_len(), page.evidence.len() * 2),
        };
        (as_u64(bytes) + GRPC_FRAME_BYTES, as_u64(items))
    }
}

/// The protobuf length of an embedded message field (tag below 16) whose body is `len` bytes.
fn embedded_len(len: usize) -> usize {
    1 + prost::encoding::encoded_len_varint(as_u64(len)) + len
}

/// The protobuf length of a `bytes` field (tag below 16): proto3 leaves an empty one out.
fn bytes_field_len(len: usize) -> usize {
    if len == 0 { 0 } else { embedded_len(len) }
}

/// The protobuf length of `messages` as a repeated `SignedMessage` field (tag below 16):
/// computed from the sizes, because building the wire structs for every delivery would cost
/// more than the simulated node's own work (a test compares it with the real encoding).
pub(crate) fn messages_len(messages: &[SignedMessage]) -> usize {
    messages
        .iter()
        .map(|m| {
            embedded_len(
                bytes_field_len(m.bytes().len()) + bytes_field_len(m.signature().as_bytes().len()),
            )
        })
        .sum()
}

fn as_u64(value: usize) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

/// The size of a refusal (a gRPC status without a body).
const STATUS_BYTES: u64 = GRPC_FRAME_BYTES;

/// What the network knows of a node that serves calls.
struct Endpoint {
    api: Arc<dyn PeerApi>,
    directory: Arc<dyn PeerDirectory>,
}

#[derive(Default)]
struct State {
    traffic: BTreeMap<NodeId, NodeTraffic>,
    stats: NetworkStats,
    /// Messages counted per (receiver, sender) in the current rate-limit slot.
    inbound: BTreeMap<(NodeId, NodeId), (u64, u64)>,
}

/// The fabric every simulated node's transport sends through.
pub struct SimNetwork {
    links: LinkProfile,
    limits: InboundLimits,
    time: TimeParams,
    partitions: Vec<Partition>,
    reference: Arc<dyn Clock>,
    endpoints: Mutex<BTreeMap<NodeId, Endpoint>>,
    rng: Mutex<SimRng>,
    state: Mutex<State>,
}

/// The fate of one message on a link.
struct Fate {
    lost: bool,
    latency: Duration,
    reordered: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SimNetwork {
    /// A network with the given link behaviour, receiver limits and partitions; randomness
    /// comes from `seed`, and time from `reference` (the unskewed clock of the run).
    pub fn new(
        seed: u64,
        links: LinkProfile,
        limits: InboundLimits,
        time: TimeParams,
        partitions: Vec<Partition>,
        reference: Arc<dyn Clock>,
    ) -> Arc<Self> {
        Arc::new(SimNetwork {
            links,
            limits,
            time,
            partitions,
            reference,
            endpoints: Mutex::new(BTreeMap::new()),
            rng: Mutex::new(SimRng::derive(seed, 0x006e_6574_776f_726b)),
            state: Mutex::new(State::default()),
        })
    }

    /// Makes `node` reachable: calls to it are served by `api`, and faults of its callers are
    /// reported to `directory` (the receiver's peer table).
    pub fn attach(&self, node: NodeId, api: Arc<dyn PeerApi>, directory: Arc<dyn PeerDirectory>) {
        lock(&self.endpoints).insert(node, Endpoint { api, directory });
    }

    /// The transport through which `node` calls its peers.
    pub fn transport(self: &Arc<Self>, node: NodeId) -> Arc<SimTransport> {
        Arc::new(SimTransport { from: node, network: Arc::clone(self) })
    }

    /// Every counter so far.
    pub fn traffic(&self) -> TrafficReport {
        let state = lock(&self.state);
        TrafficReport { nodes: state.traffic.clone(), network: state.stats }
    }

    /// Whether a partition separates `a` and `b` now.
    pub fn separated(&self, a: &NodeId, b: &NodeId) -> bool {
        let now = self.reference.wall();
        self.partitions.iter().any(|p| p.separates(a, b, now))
    }

    fn fate(&self) -> Fate {
        let links = self.links;
        let mut rng = lock(&self.rng);
        let lost = rng.chance_ppm(links.loss_ppm);
        let mut latency = rng.between(links.latency_min_ms, links.latency_max_ms);
        let reordered = rng.chance_ppm(links.reorder_ppm);
        if reordered {
            latency += rng.between(1, links.reorder_delay_ms.max(1));
        }
        Fate { lost, latency: Duration::from_millis(latency), reordered }
    }

    fn duplicate(&self) -> Option<Duration> {
        let links = self.links;
        let mut rng = lock(&self.rng);
        rng.chance_ppm(links.duplicate_ppm)
            .then(|| Duration::from_millis(rng.between(links.latency_min_ms, links.latency_max_ms)))
    }

    fn count<F: FnOnce(&mut State)>(&self, update: F) {
        update(&mut lock(&self.state));
    }

    fn sent(&self, node: NodeId, bytes: u64, items: u64) {
        self.count(|s| s.traffic.entry(node).or_default().sent.add(bytes, items));
    }

    fn received(&self, node: NodeId, bytes: u64, items: u64) {
        self.count(|s| s.traffic.entry(node).or_default().received.add(bytes, items));
    }

    /// Counts `weight` messages from `from` at `to` against the limit; `false` if over it.
    fn within_limit(&self, from: NodeId, to: NodeId, weight: u64) -> bool {
        let slot = self.time.slot_of(self.reference.wall()).map_or(0, |s| s.0);
        let limit = self.limits.messages_per_slot;
        let mut state = lock(&self.state);
        let entry = state.inbound.entry((to, from)).or_insert((slot, 0));
        if entry.0 != slot {
            *entry = (slot, 0);
        }
        if entry.1.saturating_add(weight) > limit {
            state.stats.rate_limited_items += weight;
            return false;
        }
        entry.1 += weight;
        true
    }

    /// Carries one message from `from` to `to`: `true` if it arrived.
    async fn carry(&self, from: &NodeId, to: &NodeId) -> bool {
        let fate = self.fate();
        if fate.reordered {
            self.count(|s| s.stats.reordered += 1);
        }
        if fate.lost {
            self.count(|s| s.stats.lost += 1);
            return false;
        }
        if self.separated(from, to) {
            self.count(|s| s.stats.partitioned += 1);
            return false;
        }
        tokio::time::sleep(fate.latency).await;
        if self.separated(from, to) {
            self.count(|s| s.stats.partitioned += 1);
            return false;
        }
        true
    }

    /// Runs `call` from `from` on `to` through the network.
    async fn call(
        self: &Arc<Self>,
        from: NodeId,
        to: NodeId,
        call: Call,
    ) -> Result<Reply, TransportError> {
        let (api, directory) = {
            let endpoints = lock(&self.endpoints);
            let endpoint = endpoints.get(&to).ok_or(TransportError::UnknownPeer)?;
            (Arc::clone(&endpoint.api), Arc::clone(&endpoint.directory))
        };
        // Monotonic time of the reference clock, which is tokio's (paused) time.
        let deadline =
            self.reference.monotonic() + Duration::from_millis(self.links.call_timeout_ms);
        let reference = Arc::clone(&self.reference);
        let timeout = || async move {
            tokio::time::sleep(deadline.saturating_sub(reference.monotonic())).await;
            Err(TransportError::Timeout)
        };
        self.count(|s| s.stats.calls += 1);
        let (request_bytes, request_items) = call.size();
        self.sent(from, request_bytes, request_items);
        if !self.carry(&from, &to).await {
            self.count(|s| s.stats.timeouts += 1);
            return timeout().await;
        }
        self.received(to, request_bytes, request_items);
        if let Some(extra) = self.duplicate() {
            self.count(|s| s.stats.duplicated += 1);
            let network = Arc::clone(self);
            let (api, directory, call) = (Arc::clone(&api), Arc::clone(&directory), call.clone());
            tokio::spawn(async move {
                tokio::time::sleep(extra).await;
                network.received(to, request_bytes, request_items);
                // The duplicate's reply goes nowhere: the caller already has (or lost) one.
                let _ = network.execute(from, to, &api, &directory, &call).await;
            });
        }
        let reply = self.execute(from, to, &api, &directory, &call).await;
        let (reply_bytes, reply_items) = match &reply {
            Ok(reply) => reply.size(),
            Err(_) => (STATUS_BYTES, 0),
        };
        self.sent(to, reply_bytes, reply_items);
        if !self.carry(&to, &from).await || self.reference.monotonic() > deadline {
            self.count(|s| s.stats.timeouts += 1);
            return timeout().await;
        }
        self.received(from, reply_bytes, reply_items);
        reply
    }

    /// The receiver's side of one delivered request: limits, bounds, the node's `PeerApi`, and
    /// scoring of the sender.
    async fn execute(
        &self,
        from: NodeId,
        to: NodeId,
        api: &Arc<dyn PeerApi>,
        directory: &Arc<dyn PeerDirectory>,
        call: &Call,
    ) -> Result<Reply, TransportError> {
        if !self.within_limit(from, to, call.weight()) {
            self.count(|s| s.stats.refused += 1);
            directory.report(from, PeerFault::Flooding);
            return Err(TransportError::Refused("rate limited".to_owned()));
        }
        if let Err(reason) = call.check_bounds() {
            self.count(|s| s.stats.refused += 1);
            directory.report(from, PeerFault::InvalidMessage);
            return Err(TransportError::Refused(reason));
        }
        let reply = call.serve(from, api.as_ref()).await.map_err(|error| {
            self.count(|s| s.stats.refused += 1);
            TransportError::Refused(error.to_string())
        })?;
        if let Reply::Outcomes(outcomes) = &reply {
            for outcome in outcomes {
                if let Some(fault) = fault_of(outcome.verdict) {
                    directory.report(from, fault);
                }
            }
        }
        Ok(reply)
    }
}

/// The fault a verdict proves against the peer that sent the message, if any.
///
/// An equivocation proves the signer's fault, not the sender's: an honest node relays the
/// second of two conflicting messages in good faith whenever it saw the other one first.
pub fn fault_of(verdict: Verdict) -> Option<PeerFault> {
    match verdict {
        Verdict::Reject(RejectReason::BadSignature) => Some(PeerFault::BadSignature),
        Verdict::Reject(RejectReason::Equivocation) => None,
        Verdict::Reject(reason) if reason.is_misbehaviour() => Some(PeerFault::InvalidMessage),
        _ => None,
    }
}

/// One node's [`PeerTransport`] over the [`SimNetwork`].
pub struct SimTransport {
    from: NodeId,
    network: Arc<SimNetwork>,
}

impl SimTransport {
    /// The calling node.
    pub fn node(&self) -> NodeId {
        self.from
    }
}

fn unexpected(reply: &Reply) -> TransportError {
    let kind = match reply {
        Reply::Outcomes(_) => "verdicts",
        Reply::Digests(_) => "digests",
        Reply::Messages(_) => "messages",
        Reply::Sealed(_) => "sealed slot",
        Reply::Evidence(_) => "evidence",
    };
    TransportError::Malformed(format!("unexpected reply: {kind}"))
}

#[async_trait::async_trait]
impl PeerTransport for SimTransport {
    async fn submit_proofs(
        &self,
        peer: NodeId,
        proofs: Vec<SignedMessage>,
    ) -> Result<Vec<Outcome>, TransportError> {
        let expected = proofs.len();
        match self.network.call(self.from, peer, Call::Submit(proofs)).await? {
            Reply::Outcomes(outcomes) if outcomes.len() == expected => Ok(outcomes),
            Reply::Outcomes(outcomes) => Err(TransportError::Malformed(format!(
                "{} verdicts for {expected} proofs",
                outcomes.len()
            ))),
            other => Err(unexpected(&other)),
        }
    }

    async fn slot_digests(
        &self,
        peer: NodeId,
        range: SlotRange,
    ) -> Result<Vec<SlotDigest>, TransportError> {
        match self.network.call(self.from, peer, Call::Digests(range)).await? {
            Reply::Digests(digests) => Ok(digests),
            other => Err(unexpected(&other)),
        }
    }

    async fn pull_proofs(
        &self,
        peer: NodeId,
        range: SlotRange,
        after: Option<ProofKey>,
        limit: usize,
    ) -> Result<Vec<SignedMessage>, TransportError> {
        match self.network.call(self.from, peer, Call::Pull { range, after, limit }).await? {
            Reply::Messages(messages) => Ok(messages),
            other => Err(unexpected(&other)),
        }
    }

    async fn registrations(
        &self,
        peer: NodeId,
        after: Option<NodeId>,
        limit: usize,
    ) -> Result<Vec<SignedMessage>, TransportError> {
        match self.network.call(self.from, peer, Call::Registrations { after, limit }).await? {
            Reply::Messages(messages) => Ok(messages),
            other => Err(unexpected(&other)),
        }
    }

    async fn fetch_slot(
        &self,
        peer: NodeId,
        slot: Slot,
    ) -> Result<Option<SealedSlot>, TransportError> {
        match self.network.call(self.from, peer, Call::FetchSlot(slot)).await? {
            Reply::Sealed(sealed) => Ok(sealed),
            other => Err(unexpected(&other)),
        }
    }

    async fn submit_evidence(
        &self,
        peer: NodeId,
        first: SignedMessage,
        second: SignedMessage,
    ) -> Result<Outcome, TransportError> {
        match self.network.call(self.from, peer, Call::Evidence(first, second)).await? {
            Reply::Outcomes(mut outcomes) if outcomes.len() == 1 => {
                outcomes.pop().ok_or_else(|| TransportError::Malformed("no verdict".to_owned()))
            }
            other => Err(unexpected(&other)),
        }
    }

    async fn submit_seals(
        &self,
        peer: NodeId,
        seals: Vec<SignedMessage>,
    ) -> Result<Vec<Outcome>, TransportError> {
        let expected = seals.len();
        match self.network.call(self.from, peer, Call::Seals(seals)).await? {
            Reply::Outcomes(outcomes) if outcomes.len() == expected => Ok(outcomes),
            Reply::Outcomes(outcomes) => Err(TransportError::Malformed(format!(
                "{} verdicts for {expected} seals",
                outcomes.len()
            ))),
            other => Err(unexpected(&other)),
        }
    }

    async fn fetch_evidence(
        &self,
        peer: NodeId,
        query: EvidenceQuery,
    ) -> Result<EvidencePage, TransportError> {
        match self.network.call(self.from, peer, Call::FetchEvidence(query)).await? {
            Reply::Evidence(page)
                if EvidencePage::shape_is_valid(page.evidence.len(), page.in_sync) =>
            {
                Ok(page)
            }
            Reply::Evidence(_) => {
                Err(TransportError::Malformed("evidence answer breaks its bounds".to_owned()))
            }
            other => Err(unexpected(&other)),
        }
    }
}

#[cfg(test)]
mod tests;
