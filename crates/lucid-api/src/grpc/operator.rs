//! The `Operator` service: status and clock from `NodeApi`; every call needs the admin token.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{AdminToken, GrpcError, PeerApi, pb};
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
        Err(GrpcError::NotWired { what: "ListPools" }.into())
    }

    async fn list_payouts(
        &self,
        request: Request<pb::ListPayoutsRequest>,
    ) -> Result<Response<pb::ListPayoutsResponse>, Status> {
        self.authorize(&request)?;
        Err(GrpcError::NotWired { what: "ListPayouts" }.into())
    }

    async fn get_tally(
        &self,
        request: Request<pb::GetTallyRequest>,
    ) -> Result<Response<pb::GetTallyResponse>, Status> {
        self.authorize(&request)?;
        Err(GrpcError::NotWired { what: "GetTally" }.into())
    }

    async fn get_schedule(
        &self,
        request: Request<pb::GetScheduleRequest>,
    ) -> Result<Response<pb::GetScheduleResponse>, Status> {
        self.authorize(&request)?;
        let request = request.into_inner();
        super::convert::slot_range(request.from_slot, request.to_slot, super::MAX_DIGEST_SLOTS)?;
        Err(GrpcError::NotWired { what: "GetSchedule" }.into())
    }
}
