//! The node's identity, payout address and peer table as the HTTP and gRPC APIs show and change
//! them (`GET /api/v1/node`, `POST /api/v1/node/payout-address`, `/api/v1/peers`).

use lucid_api::dto::PeerView;
use lucid_api::{Failure, NodeInfo};
use lucid_core::NodeId;

use super::{PeerAddress, endpoint_text};
use crate::node::State;
use crate::services::registration::{
    RegistrationConfig, RegistrationStatus, ensure_registration, parse_payout_address,
    payout_address_text,
};

/// `info` completed with the node's current own registration.
pub(crate) async fn identity(state: &State, mut info: NodeInfo) -> Result<NodeInfo, Failure> {
    let records = state.ports.proofs.current_registrations().await.map_err(|error| {
        tracing::warn!(%error, "reading the own registration failed");
        Failure::StoreUnavailable
    })?;
    if let Some(record) =
        records.into_iter().find(|record| record.registration.node == state.node_id)
    {
        let registration = record.registration;
        info.payout_address = Some(payout_address_text(&registration.payout_address));
        info.endpoint = Some(endpoint_text(&registration.endpoint));
        info.registration_seq = Some(registration.seq);
    }
    Ok(info)
}

/// Signs a new own registration with `text` as payout address (seq + 1; nothing if it is
/// already the current one).
pub(crate) async fn set_payout_address(state: &State, text: &str) -> Result<(), Failure> {
    let address = parse_payout_address(text)
        .map_err(|error| Failure::InvalidInput(format!("payout_address: {error}")))?;
    let Some(own) = state.own_registration.get() else {
        return Err(Failure::NotReady);
    };
    let config = RegistrationConfig { payout_address: Some(address), ..own.config.clone() };
    let status = ensure_registration(
        &state.config.consensus,
        &state.key,
        &config,
        state.ports.proofs.as_ref(),
        &own.ingest,
        state.clock.wall(),
    )
    .await
    .map_err(|error| {
        tracing::warn!(%error, "registering the new payout address failed");
        Failure::StoreUnavailable
    })?;
    match status {
        RegistrationStatus::Missing { missing } => {
            Err(Failure::InvalidState(format!("cannot register without an {missing}")))
        }
        RegistrationStatus::Current { seq } | RegistrationStatus::Published { seq } => {
            tracing::info!(seq, "payout address registered");
            Ok(())
        }
    }
}

/// The peer table.
pub(crate) fn peers(state: &State) -> Result<Vec<PeerView>, Failure> {
    let Some(handle) = state.peers.get() else {
        return Err(Failure::FeatureDisabled("the peer service is not running".into()));
    };
    Ok(handle
        .table
        .rows()
        .into_iter()
        .map(|row| PeerView {
            node_id: row.node.to_string(),
            endpoint: endpoint_text(&row.endpoint),
            state: row.state.as_str().to_owned(),
            score: row.score,
            last_seen: row.last_seen.map(|at| at.0),
            latency_ms: row.latency_ms,
        })
        .collect())
}

/// Queues a dial of `text` (`node_<hex>@host:port`).
pub(crate) fn add_peer(state: &State, text: &str) -> Result<NodeId, Failure> {
    let address: PeerAddress = text.parse().map_err(|error: super::PeerAddressError| {
        Failure::InvalidInput(format!("endpoint: {error}"))
    })?;
    if address.node == state.node_id {
        return Err(Failure::InvalidInput("endpoint: that is this node".into()));
    }
    let Some(handle) = state.peers.get() else {
        return Err(Failure::FeatureDisabled("the peer service is not running".into()));
    };
    let node = address.node;
    handle.table.queue_dial(address);
    Ok(node)
}
