//! [`PeerClient`]: the tonic client of the `Peer` service, the node's `PeerTransport`.
//!
//! One lazily connected channel per peer (re-made when the peer's address changes), connect and
//! call timeouts, the 4 MiB message caps of the server, and every call signed as a `peer-call`
//! (caller, callee, method, time, a fresh random nonce, the digest of the request's encoding).
//! Peers are resolved through the peer table (their registration's endpoint) or, for dials not
//! backed by a registration yet, through the dial queue. Onion endpoints answer
//! [`TransportError::UnknownPeer`] until the Tor transport exists.
//!
//! Replies are bounded and checked: a verdict list of the wrong length, a malformed verdict, or
//! more records than asked for is [`TransportError::Malformed`], never trusted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use lucid_api::grpc::convert::{FromProto as _, ToProto as _};
use lucid_api::grpc::{
    EvidencePage, EvidenceQuery, PoolOpCursor, PoolOpsPage, PoolOpsQuery, SealedSlot, SlotDigest,
    methods, pb, sign_peer_call,
};
use lucid_consensus::ProofKey;
use lucid_consensus::ingest::Outcome;
use lucid_consensus::registration::Endpoint;
use lucid_core::{Clock, NetworkId, NodeId, NodeKey, SignedMessage, SlotRange};
use tonic::transport::Channel;

use super::SharedPeers;
use crate::network::{PeerTransport, TransportError};

/// What `Hello` returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelloReply {
    /// The peer's registration record (absent while it is unregistered).
    pub registration: Option<SignedMessage>,
    /// The peer's current slot.
    pub current_slot: Option<u64>,
    /// What the peer speaks.
    pub features: Vec<String>,
}

/// The signed tonic client of the `Peer` service.
pub struct PeerClient {
    key: Arc<NodeKey>,
    network: NetworkId,
    peers: Arc<SharedPeers>,
    clock: Arc<dyn Clock>,
    connect_timeout: Duration,
    call_timeout: Duration,
    /// Per peer: the address the channel was made for, and the channel.
    channels: Mutex<HashMap<NodeId, (String, Channel)>>,
}

impl PeerClient {
    /// A client signing as `key` on `network`.
    pub fn new(
        key: Arc<NodeKey>,
        network: NetworkId,
        peers: Arc<SharedPeers>,
        clock: Arc<dyn Clock>,
        connect_timeout: Duration,
        call_timeout: Duration,
    ) -> Self {
        PeerClient {
            key,
            network,
            peers,
            clock,
            connect_timeout,
            call_timeout,
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// Where `peer` is reached: its registration's endpoint, else a queued dial.
    fn address(&self, peer: &NodeId) -> Result<String, TransportError> {
        let endpoint =
            self.peers.with(|table, _| table.registration(peer).map(|r| r.endpoint.clone()));
        match endpoint {
            Some(Endpoint::Direct(addr)) => Ok(addr),
            // Tor is not built yet: an onion endpoint cannot be dialled.
            Some(Endpoint::Onion { .. }) => Err(TransportError::UnknownPeer),
            None => self.peers.queued_addr(peer).ok_or(TransportError::UnknownPeer),
        }
    }

    /// The peer's channel, made lazily (it connects on the first call).
    fn channel(&self, peer: &NodeId) -> Result<Channel, TransportError> {
        let addr = self.address(peer)?;
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((known, channel)) = channels.get(peer)
            && *known == addr
        {
            return Ok(channel.clone());
        }
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|_| TransportError::UnknownPeer)?
            .connect_timeout(self.connect_timeout)
            .timeout(self.call_timeout)
            .tcp_nodelay(true);
        let channel = endpoint.connect_lazy();
        channels.insert(*peer, (addr, channel.clone()));
        Ok(channel)
    }

    fn client(
        &self,
        peer: &NodeId,
    ) -> Result<pb::peer_client::PeerClient<Channel>, TransportError> {
        Ok(lucid_api::grpc::peer_client(self.channel(peer)?))
    }

    /// `request` signed as a peer call of `method` to `peer`.
    fn signed<T: prost::Message>(
        &self,
        peer: NodeId,
        method: &str,
        message: T,
    ) -> Result<tonic::Request<T>, TransportError> {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce)
            .map_err(|_| TransportError::Unreachable("no randomness for the nonce".into()))?;
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.call_timeout);
        sign_peer_call(
            &mut request,
            &self.key,
            &self.network,
            peer,
            method,
            self.clock.wall(),
            nonce,
        );
        Ok(request)
    }

    /// Runs one call with the call timeout, recording liveness and latency on success and
    /// dropping the connection state on a transport failure.
    async fn call<R>(
        &self,
        peer: NodeId,
        call: impl std::future::Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    ) -> Result<R, TransportError> {
        let started = self.clock.monotonic();
        let answer = tokio::time::timeout(self.call_timeout, call).await;
        let answer = match answer {
            Err(_) => Err(TransportError::Timeout),
            Ok(Err(status)) => Err(status_error(&status)),
            Ok(Ok(response)) => Ok(response.into_inner()),
        };
        match &answer {
            Ok(_) => {
                let latency = self.clock.monotonic().saturating_sub(started);
                let latency = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
                self.peers.with(|table, now| table.seen(&peer, now, Some(latency)));
            }
            Err(TransportError::Unreachable(_) | TransportError::Timeout) => {
                self.peers.with(|table, _| table.disconnect(&peer));
                self.channels.lock().unwrap_or_else(PoisonError::into_inner).remove(&peer);
            }
            Err(_) => {}
        }
        answer
    }

    /// `Hello`: introduces this node with its registration.
    pub async fn hello(
        &self,
        peer: NodeId,
        registration: &SignedMessage,
        version: &str,
    ) -> Result<HelloReply, TransportError> {
        let mut client = self.client(&peer)?;
        let request = self.signed(
            peer,
            methods::HELLO,
            pb::HelloRequest {
                network_id: self.network.to_string(),
                version: version.to_owned(),
                registration: Some(registration.to_proto()),
            },
        )?;
        let reply = self.call(peer, client.hello(request)).await?;
        let registration = reply
            .registration
            .map(SignedMessage::from_proto)
            .transpose()
            .map_err(|error| TransportError::Malformed(error.to_string()))?;
        Ok(HelloReply { registration, current_slot: reply.current_slot, features: reply.features })
    }
}

impl PeerClient {
    /// `ForwardWithdrawal`: hands a node-signed `withdrawal` to the payer `payer`; its answer,
    /// checked (a payout record that breaks a bound, or a refusal code a payout request cannot
    /// end in, is [`TransportError::Malformed`]).
    pub async fn forward_withdrawal(
        &self,
        payer: NodeId,
        withdrawal: &SignedMessage,
    ) -> Result<PayerAnswer, TransportError> {
        let mut client = self.client(&payer)?;
        let request = self.signed(
            payer,
            methods::FORWARD_WITHDRAWAL,
            pb::ForwardWithdrawalRequest { withdrawal: Some(withdrawal.to_proto()) },
        )?;
        let reply = self.call(payer, client.forward_withdrawal(request)).await?;
        lucid_api::grpc::convert::payout_answer(reply).map_err(malformed)
    }

    /// `ForwardCancel`: hands a node-signed `payout-cancel` to the payer `payer`.
    pub async fn forward_cancel(
        &self,
        payer: NodeId,
        cancel: &SignedMessage,
    ) -> Result<PayerAnswer, TransportError> {
        let mut client = self.client(&payer)?;
        let request = self.signed(
            payer,
            methods::FORWARD_CANCEL,
            pb::ForwardCancelRequest { cancel: Some(cancel.to_proto()) },
        )?;
        let reply = self.call(payer, client.forward_cancel(request)).await?;
        lucid_api::grpc::convert::payout_answer(reply).map_err(malformed)
    }

    /// `GetPayouts`: the payer's records for `request`, each checked; more than the page asked
    /// for (or than 100) is [`TransportError::Malformed`].
    pub async fn get_payouts(
        &self,
        payer: NodeId,
        request: pb::GetPayoutsRequest,
    ) -> Result<lucid_api::dto::Page<lucid_api::dto::PayoutView>, TransportError> {
        let most = match request.limit {
            0 if request.payout_id.is_empty() => lucid_api::dto::DEFAULT_PAGE,
            0 => 1,
            limit => limit.min(lucid_api::dto::MAX_PAGE),
        };
        let mut client = self.client(&payer)?;
        let request = self.signed(payer, methods::GET_PAYOUTS, request)?;
        let reply = self.call(payer, client.get_payouts(request)).await?;
        if reply.payouts.len() > most as usize {
            return Err(malformed(format!("{} payouts in a page of {most}", reply.payouts.len())));
        }
        if reply.next_cursor.as_ref().is_some_and(|cursor| cursor.len() > 128) {
            return Err(malformed("cursor longer than 128 bytes"));
        }
        let items = reply
            .payouts
            .into_iter()
            .map(lucid_api::dto::PayoutView::from_proto)
            .collect::<Result<Vec<_>, _>>()
            .map_err(malformed)?;
        Ok(lucid_api::dto::Page { items, next_cursor: reply.next_cursor })
    }

    /// `GetLedger`: a page of one node's entries in the payer's ledger, each checked; more
    /// lines than the page asked for, a kind that is no posting kind, or a cursor longer than
    /// a ledger cursor is [`TransportError::Malformed`].
    pub async fn get_ledger(
        &self,
        payer: NodeId,
        request: pb::GetLedgerRequest,
    ) -> Result<(Vec<lucid_api::dto::LedgerLineView>, Option<String>), TransportError> {
        let most = match request.limit {
            0 => lucid_api::dto::DEFAULT_PAGE,
            limit => limit.min(lucid_api::dto::MAX_PAGE),
        };
        let mut client = self.client(&payer)?;
        let request = self.signed(payer, methods::GET_LEDGER, request)?;
        let reply = self.call(payer, client.get_ledger(request)).await?;
        if reply.lines.len() > most as usize {
            return Err(malformed(format!(
                "{} ledger lines in a page of {most}",
                reply.lines.len()
            )));
        }
        if reply.next_cursor.as_ref().is_some_and(|cursor| cursor.len() > MAX_LEDGER_CURSOR) {
            return Err(malformed("ledger cursor too long"));
        }
        let mut lines = Vec::with_capacity(reply.lines.len());
        for line in reply.lines {
            let line = lucid_api::dto::LedgerLineView::from_proto(line).map_err(malformed)?;
            if lucid_payouts::ledger::PostingKind::parse(&line.kind).is_none() {
                return Err(malformed(format!("{:?} is not a posting kind", line.kind)));
            }
            lines.push(line);
        }
        Ok((lines, reply.next_cursor))
    }

    /// `GetPayoutStats`: the payer's payout counts by status (each a payout status) and the
    /// gross it paid.
    pub async fn get_payout_stats(
        &self,
        payer: NodeId,
    ) -> Result<lucid_api::dto::PayoutStats, TransportError> {
        let mut client = self.client(&payer)?;
        let request =
            self.signed(payer, methods::GET_PAYOUT_STATS, pb::GetPayoutStatsRequest {})?;
        let reply = self.call(payer, client.get_payout_stats(request)).await?;
        let statuses = lucid_payouts::payout::PayoutStatus::ALL;
        if let Some(unknown) =
            reply.by_status.keys().find(|name| !statuses.iter().any(|s| s.as_str() == *name))
        {
            return Err(malformed(format!("{unknown:?} is not a payout status")));
        }
        Ok(lucid_api::dto::PayoutStats {
            by_status: reply.by_status.into_iter().collect(),
            paid_gross: lucid_core::MicroUsdt(reply.paid_gross_micro).to_string(),
        })
    }
}

/// Longest ledger cursor a payer may hand out (as the HTTP route accepts).
const MAX_LEDGER_CURSOR: usize = 160;

/// What the payer answered to a forwarded request: the payout and whether the request created
/// it, or the payer's refusal.
pub type PayerAnswer = Result<(bool, lucid_api::dto::PayoutView), lucid_api::Failure>;

/// A refusal or failure status as a transport error.
fn status_error(status: &tonic::Status) -> TransportError {
    use tonic::Code;
    match status.code() {
        Code::DeadlineExceeded => TransportError::Timeout,
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::Aborted => {
            TransportError::Unreachable(status.message().chars().take(200).collect())
        }
        _ => TransportError::Refused(format!(
            "{:?}: {}",
            status.code(),
            status.message().chars().take(200).collect::<String>()
        )),
    }
}

fn malformed(error: impl std::fmt::Display) -> TransportError {
    TransportError::Malformed(error.to_string())
}

/// The verdicts of a submit call: one per message sent (`what` names them in the error), each
/// decoded, or the whole answer is malformed.
fn verdicts(
    verdicts: Vec<pb::MessageVerdict>,
    sent: usize,
    what: &str,
) -> Result<Vec<Outcome>, TransportError> {
    if verdicts.len() != sent {
        return Err(malformed(format!("{} verdicts for {sent} {what}", verdicts.len())));
    }
    verdicts.into_iter().map(|v| Outcome::from_proto(v).map_err(malformed)).collect()
}

#[async_trait::async_trait]
impl PeerTransport for PeerClient {
    async fn submit_proofs(
        &self,
        peer: NodeId,
        proofs: Vec<SignedMessage>,
    ) -> Result<Vec<Outcome>, TransportError> {
        let sent = proofs.len();
        let mut client = self.client(&peer)?;
        let request = self.signed(
            peer,
            methods::SUBMIT_PROOFS,
            pb::SubmitProofsRequest { proofs: proofs.iter().map(|p| p.to_proto()).collect() },
        )?;
        let reply = self.call(peer, client.submit_proofs(request)).await?;
        verdicts(reply.verdicts, sent, "proofs")
    }

    async fn slot_digests(
        &self,
        peer: NodeId,
        range: SlotRange,
    ) -> Result<Vec<SlotDigest>, TransportError> {
        let mut client = self.client(&peer)?;
        let request = self.signed(
            peer,
            methods::GET_SLOT_DIGESTS,
            pb::GetSlotDigestsRequest { from_slot: range.start.0, to_slot: range.end.0 },
        )?;
        let reply = self.call(peer, client.get_slot_digests(request)).await?;
        let bound = usize::try_from(lucid_api::grpc::MAX_DIGEST_SLOTS).unwrap_or(usize::MAX);
        if reply.slots.len() > bound {
            return Err(malformed("more slot digests than slots"));
        }
        let digests: Vec<SlotDigest> = reply
            .slots
            .into_iter()
            .map(|d| SlotDigest::from_proto(d).map_err(malformed))
            .collect::<Result<_, _>>()?;
        if digests.iter().any(|d| d.slot < range.start || d.slot >= range.end) {
            return Err(malformed("slot digest outside the range asked for"));
        }
        Ok(digests)
    }

    async fn pull_proofs(
        &self,
        peer: NodeId,
        range: SlotRange,
        after: Option<ProofKey>,
        limit: usize,
    ) -> Result<Vec<SignedMessage>, TransportError> {
        let limit = limit.clamp(1, lucid_api::grpc::MAX_PULL_PAGE);
        let mut client = self.client(&peer)?;
        let request = self.signed(
            peer,
            methods::PULL_PROOFS,
            pb::PullProofsRequest {
                from_slot: range.start.0,
                to_slot: range.end.0,
                after: after.map(|key| key.to_proto()),
                limit: u32::try_from(limit).unwrap_or(u32::MAX),
            },
        )?;
        let reply = self.call(peer, client.pull_proofs(request)).await?;
        if reply.proofs.len() > limit {
            return Err(malformed("more proofs than asked for"));
        }
        reply.proofs.into_iter().map(|p| SignedMessage::from_proto(p).map_err(malformed)).collect()
    }

    async fn registrations(
        &self,
        peer: NodeId,
        after: Option<NodeId>,
        limit: usize,
    ) -> Result<Vec<SignedMessage>, TransportError> {
        let limit = limit.clamp(1, lucid_api::grpc::MAX_PEERS_PAGE);
        let mut client = self.client(&peer)?;
        let request = self.signed(
            peer,
            methods::EXCHANGE_PEERS,
            pb::ExchangePeersRequest {
                after: after.map(|node| node.as_bytes().to_vec()).unwrap_or_default(),
                limit: u32::try_from(limit).unwrap_or(u32::MAX),
            },
        )?;
        let reply = self.call(peer, client.exchange_peers(request)).await?;
        if reply.registrations.len() > limit {
            return Err(malformed("more registrations than asked for"));
        }
        reply
            .registrations
            .into_iter()
            .map(|r| SignedMessage::from_proto(r).map_err(malformed))
            .collect()
    }

    async fn fetch_slot(
        &self,
        peer: NodeId,
        slot: lucid_core::Slot,
    ) -> Result<Option<SealedSlot>, TransportError> {
        let mut client = self.client(&peer)?;
        let request =
            self.signed(peer, methods::FETCH_SLOT, pb::FetchSlotRequest { slot: slot.0 })?;
        let reply = self.call(peer, client.fetch_slot(request)).await?;
        // The reply is bounded by the 4 MiB message cap of the channel; a set without a seal
        // breaks the contract ("nothing sealed" is an empty reply).
        let Some(seal) = reply.seal else {
            if reply.set.is_empty() {
                return Ok(None);
            }
            return Err(malformed("a sealed set without its seal"));
        };
        let seal = SignedMessage::from_proto(seal).map_err(malformed)?;
        let set = reply
            .set
            .into_iter()
            .map(|p| SignedMessage::from_proto(p).map_err(malformed))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(SealedSlot { seal, set }))
    }

    async fn submit_evidence(
        &self,
        peer: NodeId,
        first: SignedMessage,
        second: SignedMessage,
    ) -> Result<Outcome, TransportError> {
        let mut client = self.client(&peer)?;
        let request = self.signed(
            peer,
            methods::SUBMIT_EVIDENCE,
            pb::SubmitEvidenceRequest {
                first: Some(first.to_proto()),
                second: Some(second.to_proto()),
            },
        )?;
        let reply = self.call(peer, client.submit_evidence(request)).await?;
        let verdict = reply.verdict.ok_or_else(|| malformed("a reply without a verdict"))?;
        Outcome::from_proto(verdict).map_err(malformed)
    }

    async fn submit_pool_ops(
        &self,
        peer: NodeId,
        ops: Vec<SignedMessage>,
    ) -> Result<Vec<Outcome>, TransportError> {
        let sent = ops.len();
        let mut client = self.client(&peer)?;
        let request = self.signed(
            peer,
            methods::SUBMIT_POOL_OPS,
            pb::SubmitPoolOpsRequest { ops: ops.iter().map(|op| op.to_proto()).collect() },
        )?;
        let reply = self.call(peer, client.submit_pool_ops(request)).await?;
        verdicts(reply.verdicts, sent, "pool ops")
    }

    async fn fetch_pool_ops(
        &self,
        peer: NodeId,
        query: PoolOpsQuery,
    ) -> Result<PoolOpsPage, TransportError> {
        let limit = query.limit.clamp(1, lucid_api::grpc::MAX_PULL_PAGE);
        let mut client = self.client(&peer)?;
        let request = self.signed(
            peer,
            methods::FETCH_POOL_OPS,
            pb::FetchPoolOpsRequest {
                from_slot: query.range.start.0,
                to_slot: query.range.end.0,
                known_count: query.known_count,
                known_root: query.known_root.as_bytes().to_vec(),
                after: query.after.map(|after| after.to_proto()),
                limit: u32::try_from(limit).unwrap_or(u32::MAX),
            },
        )?;
        let reply = self.call(peer, client.fetch_pool_ops(request)).await?;
        if reply.ops.len() > limit {
            return Err(malformed("more pool ops than asked for"));
        }
        if reply.in_sync && !reply.ops.is_empty() {
            return Err(malformed("pool ops in an in-sync answer"));
        }
        let ops = reply
            .ops
            .into_iter()
            .map(|op| SignedMessage::from_proto(op).map_err(malformed))
            .collect::<Result<Vec<_>, _>>()?;
        let next = reply.next.map(PoolOpCursor::from_proto).transpose().map_err(malformed)?;
        Ok(PoolOpsPage { in_sync: reply.in_sync, ops, next })
    }

    async fn submit_seals(
        &self,
        peer: NodeId,
        seals: Vec<SignedMessage>,
    ) -> Result<Vec<Outcome>, TransportError> {
        let sent = seals.len();
        let mut client = self.client(&peer)?;
        let request = self.signed(
            peer,
            methods::SUBMIT_SEALS,
            pb::SubmitSealsRequest { seals: seals.iter().map(|seal| seal.to_proto()).collect() },
        )?;
        let reply = self.call(peer, client.submit_seals(request)).await?;
        verdicts(reply.verdicts, sent, "seals")
    }

    async fn fetch_evidence(
        &self,
        peer: NodeId,
        query: EvidenceQuery,
    ) -> Result<EvidencePage, TransportError> {
        let mut client = self.client(&peer)?;
        let request = self.signed(peer, methods::FETCH_EVIDENCE, query.to_proto())?;
        let reply = self.call(peer, client.fetch_evidence(request)).await?;
        evidence_page(reply)
    }
}

/// A `FetchEvidence` answer checked against the contract ([`EvidencePage::shape_is_valid`]),
/// and both messages of every pair present and well-formed.
fn evidence_page(reply: pb::FetchEvidenceResponse) -> Result<EvidencePage, TransportError> {
    if !EvidencePage::shape_is_valid(reply.evidence.len(), reply.in_sync) {
        return Err(malformed(
            "an evidence answer breaks its bounds (too many, or items when in sync)",
        ));
    }
    let evidence = reply
        .evidence
        .into_iter()
        .map(|pair| {
            let (Some(first), Some(second)) = (pair.first, pair.second) else {
                return Err(malformed("an evidence pair without both messages"));
            };
            Ok((
                SignedMessage::from_proto(first).map_err(malformed)?,
                SignedMessage::from_proto(second).map_err(malformed)?,
            ))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(EvidencePage { in_sync: reply.in_sync, evidence })
}
