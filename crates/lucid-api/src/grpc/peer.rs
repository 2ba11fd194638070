//! The `Peer` service: the `Hello` handshake, proof batches in, anti-entropy digests and proofs
//! out, registrations.
//!
//! Every handler starts with [`PeerService::authenticate`]: the signed peer call in the
//! `lucid-peer-call-bin` metadata is checked by the node's [`PeerGate`] over the digest of the
//! request's protobuf encoding before anything else happens. A handler added later must do the
//! same; the tests call every method without and with a valid peer call.

use std::sync::Arc;

use lucid_consensus::ingest::{Outcome, RejectReason, Verdict};
use lucid_core::SignedMessage;
use lucid_core::message::message_digest;
use tonic::{Request, Response, Status};

use crate::Failure;
use crate::dto::PayoutQuery;

use super::convert::{
    FromProto as _, ToProto, digest_from_bytes, node_from_bytes, node_from_text, page_limit,
    slot_range,
};
use super::{EvidencePage, EvidenceQuery};
use super::{
    GrpcError, MAX_BATCH, MAX_DIGEST_SLOTS, MAX_PEERS_PAGE, MAX_PULL_PAGE, MAX_PULL_SLOTS,
    MAX_SEAL_BATCH, PEER_CALL_METADATA, PEER_FEATURES, PeerApi, PeerCallAttempt, PeerGate,
    PeerRefusal, PoolOpCursor, PoolOpsQuery, methods, pb, peer_refusal_status,
};

/// The `Peer` service over the node's [`PeerApi`], behind its [`PeerGate`].
#[derive(Clone)]
pub struct PeerService {
    peer: Arc<dyn PeerApi>,
    gate: Arc<dyn PeerGate>,
    /// The node's payout side (`ForwardWithdrawal`, `ForwardCancel`, `GetPayouts`); without it
    /// those calls are UNIMPLEMENTED.
    payer: Option<Arc<dyn crate::NodeApi>>,
}

impl PeerService {
    /// The service.
    pub fn new(peer: Arc<dyn PeerApi>, gate: Arc<dyn PeerGate>) -> Self {
        PeerService { peer, gate, payer: None }
    }

    /// This service with the payout calls answered by `payer` (the node's `NodeApi`, which
    /// refuses them unless the node is the payer).
    #[must_use]
    pub fn with_payer(mut self, payer: Arc<dyn crate::NodeApi>) -> Self {
        self.payer = Some(payer);
        self
    }

    fn payer(&self) -> Result<&Arc<dyn crate::NodeApi>, Status> {
        self.payer.as_ref().ok_or_else(|| Status::unimplemented("payouts are not served here"))
    }

    /// Checks the signed peer call of `request` for `method`; answers the authenticated
    /// caller, or the refusal as a status (UNAUTHENTICATED, RESOURCE_EXHAUSTED, …).
    async fn authenticate<T: prost::Message>(
        &self,
        request: &Request<T>,
        method: &'static str,
        messages: usize,
    ) -> Result<lucid_core::NodeId, Status> {
        // A value that is not valid base64 is as good as a malformed call.
        let metadata = request
            .metadata()
            .get_bin(PEER_CALL_METADATA)
            .map(|value| value.to_bytes().unwrap_or_default());
        let payload_digest =
            lucid_consensus::peer_call::payload_digest(&request.get_ref().encode_to_vec());
        let attempt = PeerCallAttempt {
            method,
            metadata: metadata.as_deref(),
            payload_digest,
            messages: u64::try_from(messages.max(1)).unwrap_or(u64::MAX),
            registered_only: method != methods::HELLO,
        };
        self.gate.admit(attempt).await.map_err(|refusal| peer_refusal_status(&refusal))
    }

    /// The tonic server of this service, with the node's message size bound.
    pub fn into_server(self) -> pb::peer_server::PeerServer<Self> {
        pb::peer_server::PeerServer::new(self)
            .max_decoding_message_size(super::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(super::MAX_MESSAGE_BYTES)
    }
}

#[tonic::async_trait]
impl pb::peer_server::Peer for PeerService {
    async fn hello(
        &self,
        request: Request<pb::HelloRequest>,
    ) -> Result<Response<pb::HelloResponse>, Status> {
        let caller = self.authenticate(&request, methods::HELLO, 1).await?;
        let request = request.into_inner();
        let registration = request
            .registration
            .ok_or(GrpcError::InvalidField { field: "registration", reason: "missing".into() })?;
        let registration = SignedMessage::from_proto(registration).map_err(|_| {
            peer_refusal_status(&PeerRefusal::InvalidRegistration("malformed".into()))
        })?;
        let answer = self
            .gate
            .hello(caller, &request.network_id, &request.version, registration)
            .await
            .map_err(|refusal| peer_refusal_status(&refusal))?;
        Ok(Response::new(pb::HelloResponse {
            registration: answer.registration.map(|message| message.to_proto()),
            current_slot: answer.current_slot.map(|slot| slot.0),
            features: PEER_FEATURES.iter().map(|feature| (*feature).to_owned()).collect(),
        }))
    }

    async fn submit_proofs(
        &self,
        request: Request<pb::SubmitProofsRequest>,
    ) -> Result<Response<pb::SubmitProofsResponse>, Status> {
        let messages = request.get_ref().proofs.len();
        let caller = self.authenticate(&request, methods::SUBMIT_PROOFS, messages).await?;
        let proofs = request.into_inner().proofs;
        if proofs.len() > MAX_BATCH {
            return Err(
                GrpcError::TooMany { field: "proofs", len: proofs.len(), max: MAX_BATCH }.into()
            );
        }
        // A pair of the wrong shape is refused on its own (Malformed, identified by the digest
        // of its bytes); the well-formed rest of the batch goes to ingest together.
        let mut verdicts: Vec<Option<Outcome>> = Vec::with_capacity(proofs.len());
        let mut wellformed: Vec<SignedMessage> = Vec::with_capacity(proofs.len());
        for proof in proofs {
            let digest = message_digest(&proof.message);
            match SignedMessage::from_proto(proof) {
                Ok(message) => {
                    wellformed.push(message);
                    verdicts.push(None);
                }
                Err(_) => verdicts.push(Some(Outcome {
                    digest,
                    verdict: Verdict::Reject(RejectReason::Malformed),
                })),
            }
        }
        let expected = wellformed.len();
        let ingested = if wellformed.is_empty() {
            Vec::new()
        } else {
            self.peer.submit_proofs(Some(caller), wellformed).await.map_err(GrpcError::from)?
        };
        if ingested.len() != expected {
            return Err(GrpcError::Store(lucid_consensus::Error::Bug(lucid_core::internal!(
                "ingest returned {} outcomes for {expected} proofs",
                ingested.len()
            )))
            .into());
        }
        let mut ingested = ingested.into_iter();
        let verdicts = verdicts
            .into_iter()
            .filter_map(|verdict| verdict.or_else(|| ingested.next()))
            .map(|outcome| outcome.to_proto())
            .collect();
        Ok(Response::new(pb::SubmitProofsResponse { verdicts }))
    }

    async fn get_slot_digests(
        &self,
        request: Request<pb::GetSlotDigestsRequest>,
    ) -> Result<Response<pb::GetSlotDigestsResponse>, Status> {
        self.authenticate(&request, methods::GET_SLOT_DIGESTS, 1).await?;
        let request = request.into_inner();
        let range = slot_range(request.from_slot, request.to_slot, MAX_DIGEST_SLOTS)?;
        let digests = self.peer.slot_digests(range).await.map_err(GrpcError::from)?;
        Ok(Response::new(pb::GetSlotDigestsResponse {
            slots: digests.iter().map(|digest| digest.to_proto()).collect(),
        }))
    }

    async fn pull_proofs(
        &self,
        request: Request<pb::PullProofsRequest>,
    ) -> Result<Response<pb::PullProofsResponse>, Status> {
        self.authenticate(&request, methods::PULL_PROOFS, 1).await?;
        let request = request.into_inner();
        let range = slot_range(request.from_slot, request.to_slot, MAX_PULL_SLOTS)?;
        let limit = page_limit("limit", request.limit, MAX_PULL_PAGE)?;
        let after = request.after.map(lucid_consensus::ProofKey::from_proto).transpose()?;
        let proofs = self.peer.pull_proofs(range, after, limit).await.map_err(GrpcError::from)?;
        let next = if proofs.len() == limit {
            proofs.last().map(|last| last.key().to_proto())
        } else {
            None
        };
        Ok(Response::new(pb::PullProofsResponse {
            proofs: proofs.iter().map(|stored| stored.message.to_proto()).collect(),
            next,
        }))
    }

    async fn submit_registration(
        &self,
        request: Request<pb::SubmitRegistrationRequest>,
    ) -> Result<Response<pb::SubmitRegistrationResponse>, Status> {
        self.authenticate(&request, methods::SUBMIT_REGISTRATION, 1).await?;
        let registration = request
            .into_inner()
            .registration
            .ok_or(GrpcError::InvalidField { field: "registration", reason: "missing".into() })?;
        let digest = message_digest(&registration.message);
        let outcome = match SignedMessage::from_proto(registration) {
            Ok(message) => self.peer.submit_registration(message).await.map_err(GrpcError::from)?,
            Err(_) => Outcome { digest, verdict: Verdict::Reject(RejectReason::Malformed) },
        };
        Ok(Response::new(pb::SubmitRegistrationResponse { verdict: Some(outcome.to_proto()) }))
    }

    async fn get_registration(
        &self,
        request: Request<pb::GetRegistrationRequest>,
    ) -> Result<Response<pb::GetRegistrationResponse>, Status> {
        self.authenticate(&request, methods::GET_REGISTRATION, 1).await?;
        let node = node_from_text("node_id", &request.into_inner().node_id)?;
        let registration = self
            .peer
            .registration(node)
            .await
            .map_err(GrpcError::from)?
            .ok_or(GrpcError::NotFound { what: "registration" })?;
        Ok(Response::new(pb::GetRegistrationResponse {
            registration: Some(registration.to_proto()),
        }))
    }

    async fn exchange_peers(
        &self,
        request: Request<pb::ExchangePeersRequest>,
    ) -> Result<Response<pb::ExchangePeersResponse>, Status> {
        self.authenticate(&request, methods::EXCHANGE_PEERS, 1).await?;
        let request = request.into_inner();
        let limit = page_limit("limit", request.limit, MAX_PEERS_PAGE)?;
        let after = if request.after.is_empty() {
            None
        } else {
            Some(node_from_bytes("after", &request.after)?)
        };
        let records = self.peer.registrations(after, limit).await.map_err(GrpcError::from)?;
        Ok(Response::new(pb::ExchangePeersResponse {
            registrations: records.iter().map(|record| record.to_proto()).collect(),
        }))
    }

    async fn fetch_slot(
        &self,
        request: Request<pb::FetchSlotRequest>,
    ) -> Result<Response<pb::FetchSlotResponse>, Status> {
        self.authenticate(&request, methods::FETCH_SLOT, 1).await?;
        let slot = lucid_core::Slot(request.into_inner().slot);
        let sealed = self.peer.fetch_slot(slot).await.map_err(GrpcError::from)?;
        Ok(Response::new(match sealed {
            Some(sealed) => pb::FetchSlotResponse {
                seal: Some(sealed.seal.to_proto()),
                set: sealed.set.iter().map(|message| message.to_proto()).collect(),
            },
            None => pb::FetchSlotResponse { seal: None, set: Vec::new() },
        }))
    }

    async fn submit_evidence(
        &self,
        request: Request<pb::SubmitEvidenceRequest>,
    ) -> Result<Response<pb::SubmitEvidenceResponse>, Status> {
        let caller = self.authenticate(&request, methods::SUBMIT_EVIDENCE, 2).await?;
        let request = request.into_inner();
        let missing = |field| GrpcError::InvalidField { field, reason: "missing".into() };
        let first = request.first.ok_or(missing("first"))?;
        let second = request.second.ok_or(missing("second"))?;
        let digest = message_digest(&second.message);
        let outcome = match (SignedMessage::from_proto(first), SignedMessage::from_proto(second)) {
            (Ok(first), Ok(second)) => self
                .peer
                .submit_evidence(Some(caller), first, second)
                .await
                .map_err(GrpcError::from)?,
            _ => Outcome { digest, verdict: Verdict::Reject(RejectReason::Malformed) },
        };
        Ok(Response::new(pb::SubmitEvidenceResponse { verdict: Some(outcome.to_proto()) }))
    }

    async fn submit_pool_ops(
        &self,
        request: Request<pb::SubmitPoolOpsRequest>,
    ) -> Result<Response<pb::SubmitPoolOpsResponse>, Status> {
        let messages = request.get_ref().ops.len();
        let caller = self.authenticate(&request, methods::SUBMIT_POOL_OPS, messages).await?;
        let ops = request.into_inner().ops;
        let verdicts = judge_batch("ops", ops, MAX_BATCH, |wellformed| async move {
            self.peer.submit_pool_ops(Some(caller), wellformed).await
        })
        .await?;
        Ok(Response::new(pb::SubmitPoolOpsResponse { verdicts }))
    }

    async fn fetch_pool_ops(
        &self,
        request: Request<pb::FetchPoolOpsRequest>,
    ) -> Result<Response<pb::FetchPoolOpsResponse>, Status> {
        self.authenticate(&request, methods::FETCH_POOL_OPS, 1).await?;
        let request = request.into_inner();
        let range = slot_range(request.from_slot, request.to_slot, MAX_PULL_SLOTS)?;
        let limit = page_limit("limit", request.limit, MAX_PULL_PAGE)?;
        let known_root = if request.known_root.is_empty() {
            lucid_core::Digest::from_bytes([0; 32])
        } else {
            digest_from_bytes("known_root", &request.known_root)?
        };
        let after = request.after.map(PoolOpCursor::from_proto).transpose()?;
        let query =
            PoolOpsQuery { range, known_count: request.known_count, known_root, after, limit };
        let page = self.peer.fetch_pool_ops(query).await.map_err(GrpcError::from)?;
        if page.ops.len() > limit {
            return Err(GrpcError::Store(lucid_consensus::Error::Bug(lucid_core::internal!(
                "{} pool ops in a page of {limit}",
                page.ops.len()
            )))
            .into());
        }
        Ok(Response::new(pb::FetchPoolOpsResponse {
            in_sync: page.in_sync,
            ops: page.ops.iter().map(|op| op.to_proto()).collect(),
            next: page.next.map(|next| next.to_proto()),
        }))
    }

    async fn submit_seals(
        &self,
        request: Request<pb::SubmitSealsRequest>,
    ) -> Result<Response<pb::SubmitSealsResponse>, Status> {
        let messages = request.get_ref().seals.len();
        let caller = self.authenticate(&request, methods::SUBMIT_SEALS, messages).await?;
        let seals = request.into_inner().seals;
        let verdicts = judge_batch("seals", seals, MAX_SEAL_BATCH, |wellformed| async move {
            self.peer.submit_seals(Some(caller), wellformed).await
        })
        .await?;
        Ok(Response::new(pb::SubmitSealsResponse { verdicts }))
    }

    async fn fetch_evidence(
        &self,
        request: Request<pb::FetchEvidenceRequest>,
    ) -> Result<Response<pb::FetchEvidenceResponse>, Status> {
        self.authenticate(&request, methods::FETCH_EVIDENCE, 1).await?;
        let request = request.into_inner();
        let range = slot_range(request.from_slot, request.to_slot, MAX_PULL_SLOTS)?;
        let known_root = if request.known_root.is_empty() {
            lucid_core::Digest::from_bytes([0; 32])
        } else {
            digest_from_bytes("known_root", &request.known_root)?
        };
        let query = EvidenceQuery { range, known_count: request.known_count, known_root };
        let page = self.peer.fetch_evidence(query).await.map_err(GrpcError::from)?;
        if !EvidencePage::shape_is_valid(page.evidence.len(), page.in_sync) {
            return Err(GrpcError::Store(lucid_consensus::Error::Bug(lucid_core::internal!(
                "{} evidence items in an answer (in sync: {})",
                page.evidence.len(),
                page.in_sync
            )))
            .into());
        }
        Ok(Response::new(page.to_proto()))
    }

    async fn forward_withdrawal(
        &self,
        request: Request<pb::ForwardWithdrawalRequest>,
    ) -> Result<Response<pb::PayoutAnswer>, Status> {
        self.authenticate(&request, methods::FORWARD_WITHDRAWAL, 1).await?;
        let payer = self.payer()?;
        let decided = match forwarded(request.into_inner().withdrawal, "withdrawal")? {
            Ok(signed) => payer.payer_withdrawal(signed).await.map(|w| (w.created, w.payout)),
            Err(malformed) => Err(malformed),
        };
        Ok(Response::new(payout_answer(decided)))
    }

    async fn forward_cancel(
        &self,
        request: Request<pb::ForwardCancelRequest>,
    ) -> Result<Response<pb::PayoutAnswer>, Status> {
        self.authenticate(&request, methods::FORWARD_CANCEL, 1).await?;
        let payer = self.payer()?;
        let decided = match forwarded(request.into_inner().cancel, "cancel")? {
            Ok(signed) => payer.payer_cancel(signed).await.map(|payout| (false, payout)),
            Err(malformed) => Err(malformed),
        };
        Ok(Response::new(payout_answer(decided)))
    }

    async fn get_payouts(
        &self,
        request: Request<pb::GetPayoutsRequest>,
    ) -> Result<Response<pb::GetPayoutsResponse>, Status> {
        self.authenticate(&request, methods::GET_PAYOUTS, 1).await?;
        let payer = self.payer()?;
        let request = request.into_inner();
        let status = |failure: Failure| super::operator::failure_status(&failure);
        if !request.payout_id.is_empty() {
            if !request.node_id.is_empty()
                || !request.status.is_empty()
                || !request.cursor.is_empty()
                || request.limit != 0
            {
                return Err(GrpcError::InvalidField {
                    field: "payout_id",
                    reason: "asks for one payout: the other fields must be empty".into(),
                }
                .into());
            }
            let payout_id = crate::routes::payout_id(&request.payout_id).map_err(status)?;
            let payouts = match payer.payer_payout(payout_id).await {
                Ok(payout) => vec![payout.to_proto()],
                Err(Failure::NotFound(_)) => Vec::new(),
                Err(failure) => return Err(status(failure)),
            };
            return Ok(Response::new(pb::GetPayoutsResponse { payouts, next_cursor: None }));
        }
        let node = if request.node_id.is_empty() {
            None
        } else {
            Some(node_from_text("node_id", &request.node_id)?)
        };
        if request.cursor.len() > MAX_PAYOUT_CURSOR || request.status.len() > MAX_PAYOUT_CURSOR {
            return Err(GrpcError::InvalidField {
                field: "cursor",
                reason: "cursor or status longer than 128 bytes".into(),
            }
            .into());
        }
        let query = PayoutQuery {
            limit: (request.limit != 0).then_some(request.limit),
            cursor: (!request.cursor.is_empty()).then_some(request.cursor),
            status: (!request.status.is_empty()).then_some(request.status),
        };
        query.page().limit().map_err(status)?;
        let page = payer.payer_payouts(node, query).await.map_err(status)?;
        Ok(Response::new(pb::GetPayoutsResponse {
            payouts: page.items.iter().map(ToProto::to_proto).collect(),
            next_cursor: page.next_cursor,
        }))
    }

    async fn get_ledger(
        &self,
        request: Request<pb::GetLedgerRequest>,
    ) -> Result<Response<pb::GetLedgerResponse>, Status> {
        self.authenticate(&request, methods::GET_LEDGER, 1).await?;
        let payer = self.payer()?;
        let request = request.into_inner();
        let status = |failure: Failure| super::operator::failure_status(&failure);
        let node = node_from_text("node_id", &request.node_id)?;
        if request.cursor.len() > crate::routes::MAX_CURSOR {
            return Err(GrpcError::InvalidField {
                field: "cursor",
                reason: "longer than the longest ledger cursor".into(),
            }
            .into());
        }
        let page = crate::dto::PageQuery {
            limit: (request.limit != 0).then_some(request.limit),
            cursor: (!request.cursor.is_empty()).then_some(request.cursor),
        };
        page.limit().map_err(status)?;
        let answer = payer.payer_ledger(node, page).await.map_err(status)?;
        let lines = answer
            .items
            .iter()
            .map(super::convert::ledger_line_to_proto)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| Status::internal("a ledger line does not convert"))?;
        Ok(Response::new(pb::GetLedgerResponse { lines, next_cursor: answer.next_cursor }))
    }

    async fn get_payout_stats(
        &self,
        request: Request<pb::GetPayoutStatsRequest>,
    ) -> Result<Response<pb::GetPayoutStatsResponse>, Status> {
        self.authenticate(&request, methods::GET_PAYOUT_STATS, 1).await?;
        let payer = self.payer()?;
        let stats = payer
            .payer_payout_stats()
            .await
            .map_err(|failure| super::operator::failure_status(&failure))?;
        let paid: lucid_core::MicroUsdt = stats
            .paid_gross
            .parse()
            .map_err(|_| Status::internal("the paid gross does not convert"))?;
        Ok(Response::new(pb::GetPayoutStatsResponse {
            by_status: stats.by_status.into_iter().collect(),
            paid_gross_micro: paid.0,
        }))
    }
}

/// Longest cursor or status text of a `GetPayouts` request.
const MAX_PAYOUT_CURSOR: usize = 128;

/// The node-signed request a forwarding node handed over in `field`: a missing one breaks the
/// protocol (the call is refused); bytes that are no signed message are the payer's refusal
/// (`MALFORMED_MESSAGE`), answered like any other.
fn forwarded(
    message: Option<pb::SignedMessage>,
    field: &'static str,
) -> Result<Result<SignedMessage, Failure>, GrpcError> {
    let message = message.ok_or(GrpcError::InvalidField { field, reason: "missing".into() })?;
    Ok(SignedMessage::from_proto(message)
        .map_err(|error| Failure::MalformedMessage(error.to_string())))
}

/// What the payer decided on a forwarded request: the payout (with whether the request created
/// it), or its refusal.
fn payout_answer(decided: Result<(bool, crate::dto::PayoutView), Failure>) -> pb::PayoutAnswer {
    match decided {
        Ok((created, payout)) => pb::PayoutAnswer {
            outcome: Some(pb::payout_answer::Outcome::Payout(payout.to_proto())),
            created,
        },
        Err(failure) => pb::PayoutAnswer {
            outcome: Some(pb::payout_answer::Outcome::Refusal(super::convert::payout_refusal(
                &failure,
            ))),
            created: false,
        },
    }
}

/// Judges a pushed batch of at most `max` signed messages: a pair of the wrong shape gets its
/// own `Malformed` verdict (identified by the digest of its bytes), the well-formed rest goes to
/// `ingest` together, and the verdicts come back in input order.
async fn judge_batch<F, Fut>(
    field: &'static str,
    messages: Vec<pb::SignedMessage>,
    max: usize,
    ingest: F,
) -> Result<Vec<pb::MessageVerdict>, Status>
where
    F: FnOnce(Vec<SignedMessage>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Outcome>, lucid_consensus::Error>>,
{
    if messages.len() > max {
        return Err(GrpcError::TooMany { field, len: messages.len(), max }.into());
    }
    let mut verdicts: Vec<Option<Outcome>> = Vec::with_capacity(messages.len());
    let mut wellformed: Vec<SignedMessage> = Vec::with_capacity(messages.len());
    for message in messages {
        let digest = message_digest(&message.message);
        match SignedMessage::from_proto(message) {
            Ok(message) => {
                wellformed.push(message);
                verdicts.push(None);
            }
            Err(_) => verdicts
                .push(Some(Outcome { digest, verdict: Verdict::Reject(RejectReason::Malformed) })),
        }
    }
    let expected = wellformed.len();
    let ingested = if wellformed.is_empty() {
        Vec::new()
    } else {
        ingest(wellformed).await.map_err(GrpcError::from)?
    };
    if ingested.len() != expected {
        return Err(GrpcError::Store(lucid_consensus::Error::Bug(lucid_core::internal!(
            "ingest returned {} outcomes for {expected} messages",
            ingested.len()
        )))
        .into());
    }
    let mut ingested = ingested.into_iter();
    Ok(verdicts
        .into_iter()
        .filter_map(|verdict| verdict.or_else(|| ingested.next()))
        .map(|outcome| outcome.to_proto())
        .collect())
}
