//! The `Operator` service over `NodeApi`: the same daemon operations as the HTTP routes, with
//! the same input checks; every call needs the admin token.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{AdminToken, GrpcError, PeerApi, pb};
use lucid_core::{Epoch, HasKind as _, NodeId, SignedMessage, Slot};

use super::convert::FromProto as _;

use crate::dto::{MAX_PAGE, PageQuery, PayoutQuery};
use crate::failure::{Failure, Missing};
use crate::{HealthStatus, NodeApi};

/// The `Operator` service over the node's ports.
#[derive(Clone)]
pub struct OperatorService {
    node: Arc<dyn NodeApi>,
    peer: Arc<dyn PeerApi>,
    token: AdminToken,
}

impl OperatorService {
    /// The service; `token` is what every call must present.
    pub fn new(node: Arc<dyn NodeApi>, peer: Arc<dyn PeerApi>, token: AdminToken) -> Self {
        OperatorService { node, peer, token }
    }

    /// The tonic server of this service, with the node's message size bound.
    pub fn into_server(self) -> pb::operator_server::OperatorServer<Self> {
        pb::operator_server::OperatorServer::new(self)
            .max_decoding_message_size(super::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(super::MAX_MESSAGE_BYTES)
    }

    /// Refuses a call without `authorization: Bearer <token>` (unauthenticated) or with another
    /// token (permission denied).
    fn authorize<T>(&self, request: &Request<T>) -> Result<(), GrpcError> {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .ok_or(GrpcError::MissingToken)?;
        let presented = header.strip_prefix("Bearer ").ok_or(GrpcError::MissingToken)?;
        if self.token.matches(presented.as_bytes()) { Ok(()) } else { Err(GrpcError::WrongToken) }
    }
}

fn health_name(status: HealthStatus) -> &'static str {
    match status {
        HealthStatus::Healthy => "healthy",
        HealthStatus::Degraded => "degraded",
        HealthStatus::Unhealthy => "unhealthy",
    }
}

#[tonic::async_trait]
impl pb::operator_server::Operator for OperatorService {
    async fn get_status(
        &self,
        request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        self.authorize(&request)?;
        let report = self.node.health();
        let registered_nodes = self.peer.registered_nodes().await.map_err(GrpcError::from)?;
        Ok(Response::new(pb::GetStatusResponse {
            node_id: report.node_id,
            version: report.version.to_owned(),
            network: report.network,
            ready: report.ready,
            health: health_name(report.status).to_owned(),
            slot: report.slot,
            epoch: report.epoch,
            uptime_s: report.uptime_s,
            components: report
                .components
                .into_iter()
                .map(|(name, component)| pb::ComponentStatus {
                    name: name.to_owned(),
                    status: health_name(component.status).to_owned(),
                    detail: component.detail,
                })
                .collect(),
            registered_nodes,
        }))
    }

    async fn get_clock(
        &self,
        request: Request<pb::GetClockRequest>,
    ) -> Result<Response<pb::GetClockResponse>, Status> {
        self.authorize(&request)?;
        let clock = self.node.clock();
        Ok(Response::new(pb::GetClockResponse {
            network: clock.network,
            genesis_ms: clock.genesis_ms,
            slot_ms: clock.slot_ms,
            slots_per_epoch: clock.slots_per_epoch,
            slot: clock.slot,
            epoch: clock.epoch,
            slot_start_ms: clock.slot_start_ms,
            next_slot_start_ms: clock.next_slot_start_ms,
        }))
    }

    async fn list_pools(
        &self,
        request: Request<pb::ListPoolsRequest>,
    ) -> Result<Response<pb::ListPoolsResponse>, Status> {
        self.authorize(&request)?;
        let request = request.into_inner();
        let query = PageQuery {
            limit: Some(page_limit(request.limit)),
            cursor: (!request.after.is_empty()).then_some(request.after),
        };
        let page = self.node.pools(query).await.map_err(|failure| failure_status(&failure))?;
        let pools = page
            .items
            .into_iter()
            .map(|pool| pb::Pool {
                pool_id: pool.pool_id,
                name: pool.name,
                status: pool.status,
                seats: pool.seats,
                max_nodes: u32::from(pool.max_nodes),
                leader: pool.leader,
            })
            .collect();
        Ok(Response::new(pb::ListPoolsResponse { pools }))
    }

    async fn list_payouts(
        &self,
        request: Request<pb::ListPayoutsRequest>,
    ) -> Result<Response<pb::ListPayoutsResponse>, Status> {
        self.authorize(&request)?;
        let request = request.into_inner();
        let node = if request.node_id.is_empty() {
            None
        } else {
            let node = request
                .node_id
                .parse::<NodeId>()
                .map_err(|error| Status::invalid_argument(format!("node_id: {error}")))?;
            Some(node)
        };
        let query =
            PayoutQuery { limit: Some(page_limit(request.limit)), cursor: None, status: None };
        let page =
            self.node.payouts(node, query).await.map_err(|failure| failure_status(&failure))?;
        let payouts = page.items.into_iter().map(payout).collect();
        Ok(Response::new(pb::ListPayoutsResponse { payouts }))
    }

    async fn get_tally(
        &self,
        request: Request<pb::GetTallyRequest>,
    ) -> Result<Response<pb::GetTallyResponse>, Status> {
        self.authorize(&request)?;
        let epoch = Epoch(request.into_inner().epoch);
        let tally = self.node.tally(epoch).await.map_err(|failure| failure_status(&failure))?;
        let entries = tally
            .entries
            .into_iter()
            .map(|entry| pb::TallyEntry {
                entity: entry.entity,
                credits: entry.credits,
                density_ppm: entry.density_ppm,
                rank: entry.rank.unwrap_or(0),
            })
            .collect();
        Ok(Response::new(pb::GetTallyResponse {
            epoch: tally.epoch,
            digest: tally.digest,
            entries,
        }))
    }

    async fn get_schedule(
        &self,
        request: Request<pb::GetScheduleRequest>,
    ) -> Result<Response<pb::GetScheduleResponse>, Status> {
        self.authorize(&request)?;
        let request = request.into_inner();
        let range = super::convert::slot_range(
            request.from_slot,
            request.to_slot,
            super::MAX_DIGEST_SLOTS,
        )?;
        let mut slots = Vec::new();
        for slot in range.start.0..range.end.0 {
            match self.node.leader(Slot(slot)).await {
                Ok(schedule) => slots.push(pb::ScheduledSlot {
                    slot: schedule.slot,
                    leader: schedule.primary.unwrap_or_default(),
                    no_leader_reason: schedule.no_leader_reason.unwrap_or_default(),
                }),
                // A slot without a stored schedule (not reached yet, or before this node ran)
                // is left out rather than failing the whole range.
                Err(Failure::NotFound(Missing::Slot)) => {}
                Err(failure) => return Err(failure_status(&failure)),
            }
        }
        Ok(Response::new(pb::GetScheduleResponse { slots }))
    }

    async fn get_identity(
        &self,
        request: Request<pb::GetIdentityRequest>,
    ) -> Result<Response<pb::GetIdentityResponse>, Status> {
        self.authorize(&request)?;
        let info = self.node.identity().await.map_err(|failure| failure_status(&failure))?;
        Ok(Response::new(identity(info)))
    }

    async fn set_payout_address(
        &self,
        request: Request<pb::SetPayoutAddressRequest>,
    ) -> Result<Response<pb::GetIdentityResponse>, Status> {
        self.authorize(&request)?;
        let address = request.into_inner().payout_address;
        if address.len() > 64 {
            return Err(failure_status(&Failure::InvalidInput(
                "payout_address is not a TRON address".to_owned(),
            )));
        }
        let info = self
            .node
            .set_payout_address(&address)
            .await
            .map_err(|failure| failure_status(&failure))?;
        Ok(Response::new(identity(info)))
    }

    async fn list_peers(
        &self,
        request: Request<pb::ListPeersRequest>,
    ) -> Result<Response<pb::ListPeersResponse>, Status> {
        self.authorize(&request)?;
        let peers = self.node.peers().await.map_err(|failure| failure_status(&failure))?;
        Ok(Response::new(pb::ListPeersResponse {
            peers: peers
                .into_iter()
                .map(|peer| pb::PeerEntry {
                    node_id: peer.node_id,
                    endpoint: peer.endpoint,
                    state: peer.state,
                    score: peer.score,
                    last_seen_ms: peer.last_seen,
                    latency_ms: peer.latency_ms,
                })
                .collect(),
        }))
    }

    async fn add_peer(
        &self,
        request: Request<pb::AddPeerRequest>,
    ) -> Result<Response<pb::AddPeerResponse>, Status> {
        self.authorize(&request)?;
        let endpoint = request.into_inner().endpoint;
        if endpoint.len() > 512 {
            return Err(failure_status(&Failure::InvalidInput("endpoint is too long".to_owned())));
        }
        let node =
            self.node.add_peer(&endpoint).await.map_err(|failure| failure_status(&failure))?;
        Ok(Response::new(pb::AddPeerResponse { node_id: node.to_string() }))
    }

    async fn submit_pool_op(
        &self,
        request: Request<pb::SubmitPoolOpRequest>,
    ) -> Result<Response<pb::SubmitPoolOpResponse>, Status> {
        self.authorize(&request)?;
        let op = request.into_inner().op.ok_or_else(|| {
            failure_status(&Failure::MalformedMessage("op is required".to_owned()))
        })?;
        // The shape check of every signed message; decoding and verification are the same
        // daemon operation as `POST /api/v1/pools/ops`.
        let op = SignedMessage::from_proto(op)
            .map_err(|error| failure_status(&Failure::MalformedMessage(error.to_string())))?;
        let accepted = self
            .node
            .submit_pool_op(op.bytes().to_vec(), *op.signature())
            .await
            .map_err(|failure| failure_status(&failure))?;
        Ok(Response::new(pb::SubmitPoolOpResponse {
            op_digest: accepted.op_digest,
            pool_id: accepted.pool_id,
            effective_slot: accepted.effective_slot,
        }))
    }

    async fn get_balance(
        &self,
        request: Request<pb::GetBalanceRequest>,
    ) -> Result<Response<pb::GetBalanceResponse>, Status> {
        self.authorize(&request)?;
        let node = self.named_node(&request.into_inner().node_id)?;
        let balance = self.node.balance(node).await.map_err(|failure| failure_status(&failure))?;
        Ok(Response::new(pb::GetBalanceResponse {
            node_id: balance.node_id,
            earned_usdt: balance.earned,
            available_usdt: balance.available,
            reserved_usdt: balance.reserved,
            paid_usdt: balance.paid,
            minimum_usdt: balance.minimum,
            authoritative: balance.authoritative,
        }))
    }

    async fn request_withdrawal(
        &self,
        request: Request<pb::RequestWithdrawalRequest>,
    ) -> Result<Response<pb::RequestWithdrawalResponse>, Status> {
        self.authorize(&request)?;
        let request = request.into_inner();
        let node = self.named_node(&request.node_id)?;
        let key = crate::routes::checked_idempotency_key(&request.idempotency_key)
            .map_err(|failure| failure_status(&failure))?;
        let amount = crate::routes::withdrawal_amount(request.amount_usdt.as_deref())
            .map_err(|failure| failure_status(&failure))?;
        let withdrawal = self
            .node
            .request_withdrawal(node, key, amount)
            .await
            .map_err(|failure| failure_status(&failure))?;
        Ok(Response::new(pb::RequestWithdrawalResponse {
            created: withdrawal.created,
            payout: Some(payout(withdrawal.payout)),
        }))
    }

    async fn cancel_payout(
        &self,
        request: Request<pb::CancelPayoutRequest>,
    ) -> Result<Response<pb::Payout>, Status> {
        self.authorize(&request)?;
        let request = request.into_inner();
        let payout_id = crate::routes::payout_id(&request.payout_id)
            .map_err(|failure| failure_status(&failure))?;
        let view =
            self.node.cancel_payout(payout_id).await.map_err(|failure| failure_status(&failure))?;
        Ok(Response::new(payout(view)))
    }

    async fn trigger_sweep(
        &self,
        request: Request<pb::TriggerSweepRequest>,
    ) -> Result<Response<pb::TriggerSweepResponse>, Status> {
        self.authorize(&request)?;
        let started =
            self.node.trigger_sweep().await.map_err(|failure| failure_status(&failure))?;
        Ok(Response::new(pb::TriggerSweepResponse { started: started.started }))
    }

    async fn shutdown(
        &self,
        request: Request<pb::ShutdownRequest>,
    ) -> Result<Response<pb::ShutdownResponse>, Status> {
        self.authorize(&request)?;
        self.node.request_shutdown().map_err(|failure| failure_status(&failure))?;
        Ok(Response::new(pb::ShutdownResponse {}))
    }
}

impl OperatorService {
    /// The node a balance or withdrawal call names: its text form, or this node when empty.
    fn named_node(&self, text: &str) -> Result<NodeId, Status> {
        if text.is_empty() {
            self.node.own_node().map_err(|failure| failure_status(&failure))
        } else {
            super::convert::node_from_text("node_id", text).map_err(Status::from)
        }
    }
}

fn payout(view: crate::dto::PayoutView) -> pb::Payout {
    pb::Payout {
        txid: view.attempts.last().map(|a| a.txid.clone()).unwrap_or_default(),
        payout_id: view.payout_id,
        node_id: view.node_id,
        state: view.status,
        gross_usdt: view.gross,
        fee_usdt: view.fee,
        net_usdt: view.net,
    }
}

fn identity(info: crate::NodeInfo) -> pb::GetIdentityResponse {
    pb::GetIdentityResponse {
        node_id: info.node_id,
        public_key: info.public_key,
        network: info.network,
        version: info.version.to_owned(),
        payout_address: info.payout_address,
        endpoint: info.endpoint,
        registration_seq: info.registration_seq,
        ready: info.ready,
    }
}

/// A request's page size: 0 means the maximum, anything larger is clamped to it.
fn page_limit(requested: u32) -> u32 {
    if requested == 0 { MAX_PAGE } else { requested.min(MAX_PAGE) }
}

/// An API failure as a gRPC status: the code from its kind, the text its stable code and
/// client-facing message (never internal detail, as for HTTP).
pub(super) fn failure_status(failure: &Failure) -> Status {
    Status::new(super::grpc_code(failure.kind()), format!("{}: {failure}", failure.code()))
}
