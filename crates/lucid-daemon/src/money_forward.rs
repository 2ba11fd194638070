//! Who decides a payout request (`pools-payouts.md` §5.1): the payer decides in its own ledger;
//! every node configured with `payouts.payer_node_id` forwards the node-signed `withdrawal` and
//! `payout-cancel` requests it receives to the payer over the peer service
//! (`ForwardWithdrawal`, `ForwardCancel`), shows the payer's payout records (`GetPayouts`), and
//! never creates a payout of its own. A node with neither role (standalone, no payer known)
//! keeps its payouts in its own ledger, where they wait `awaiting_chain` as before.
//!
//! On the payer a signed request passes [`lucid_payouts::request::check_request`] (strict
//! decoding, the signature of the node whose money moves, this network, ±300 s) and then the
//! same rules as the admin's withdrawal and cancel (idempotency, minimum, maximum, available
//! balance, cancel only from `pending`); a cancel of another node's payout is 403. A
//! forwarding node runs the same check before it forwards, so forgeries never leave it, and
//! answers exactly what the payer answered, or 503 `PAYER_UNREACHABLE` when the payer did not
//! answer: nothing is created or cancelled on the forwarding node either way.
//!
//! The operator's admin calls on a forwarding node act for its own node only: the node signs
//! the request with its identity key and forwards it like any other.

use lucid_api::dto::{
    LedgerPageView, Page, PageQuery, PayoutConfigView, PayoutQuery, PayoutStats, PayoutView,
    Withdrawal,
};
use lucid_api::grpc::pb;
use lucid_api::{Failure, Missing};
use lucid_core::message::Message;
use lucid_core::{MicroUsdt, NodeId, SignedMessage, UnixMillis};
use lucid_payouts::payout::PayoutStatus;
use lucid_payouts::request::{
    CancelRequest, HasTimestamp, RequestRefusal, WithdrawalRequest, check_request,
};

use crate::network::TransportError;
use crate::node::State;
use crate::operator;

/// Where this node's payout requests are decided.
enum Role {
    /// This node pays: it decides in its own ledger.
    Payer,
    /// This node forwards to the payer with this id.
    Forwarder(NodeId),
    /// No payer is known: the node keeps its payouts in its own ledger (`awaiting_chain`).
    Standalone,
}

fn role(state: &State) -> Role {
    match state.money() {
        Some(money) if money.is_payer() => Role::Payer,
        Some(money) => money.payer_node_id.map_or(Role::Standalone, Role::Forwarder),
        None => Role::Standalone,
    }
}

fn refusal(refusal: RequestRefusal) -> Failure {
    match refusal {
        RequestRefusal::Malformed(detail) => Failure::MalformedMessage(detail),
        RequestRefusal::BadSignature => Failure::BadSignature,
        other => Failure::InvalidInput(other.to_string()),
    }
}

/// `signed` as a request of type `M`, checked for this network at this node's time.
fn checked<M: Message + HasTimestamp>(state: &State, signed: &SignedMessage) -> Result<M, Failure> {
    check_request(signed, &state.config.consensus.network, state.clock.wall()).map_err(refusal)
}

/// The payer's side of the peer calls answers only on the payer: any other node refuses and
/// never forwards again (no loops between misconfigured nodes).
fn require_payer(state: &State) -> Result<(), Failure> {
    match role(state) {
        Role::Payer => Ok(()),
        Role::Forwarder(_) | Role::Standalone => {
            Err(Failure::FeatureDisabled("this node is not the payer".to_owned()))
        }
    }
}

/// A transport failure towards the payer: logged with its detail, answered without it.
fn unreachable(payer: NodeId, call: &'static str) -> impl FnOnce(TransportError) -> Failure {
    move |error| {
        tracing::warn!(%payer, call, %error, "the payer did not answer a forwarded payout call");
        Failure::PayerUnreachable
    }
}

fn client(state: &State) -> Result<&crate::peers::client::PeerClient, Failure> {
    state.peers.get().map(|peers| peers.client.as_ref()).ok_or(Failure::PayerUnreachable)
}

/// `POST /api/v1/withdrawals`: a node-signed withdrawal, decided here on the payer, forwarded
/// on any other node that knows the payer.
pub(crate) async fn submit_withdrawal(
    state: &State,
    signed: SignedMessage,
) -> Result<Withdrawal, Failure> {
    let request: WithdrawalRequest = checked(state, &signed)?;
    match role(state) {
        Role::Payer | Role::Standalone => decide_withdrawal(state, &request).await,
        Role::Forwarder(payer) => forward_withdrawal(state, payer, &signed).await,
    }
}

/// `Peer.ForwardWithdrawal` on this node: only the payer decides.
pub(crate) async fn payer_withdrawal(
    state: &State,
    signed: SignedMessage,
) -> Result<Withdrawal, Failure> {
    require_payer(state)?;
    let request: WithdrawalRequest = checked(state, &signed)?;
    decide_withdrawal(state, &request).await
}

async fn decide_withdrawal(
    state: &State,
    request: &WithdrawalRequest,
) -> Result<Withdrawal, Failure> {
    let withdrawal =
        operator::request_withdrawal(state, request.node, &request.idempotency_key, request.amount)
            .await?;
    if withdrawal.created {
        tracing::info!(
            node = %request.node,
            payout_id = %withdrawal.payout.payout_id,
            gross = %withdrawal.payout.gross,
            "signed withdrawal created a payout"
        );
    }
    Ok(withdrawal)
}

async fn forward_withdrawal(
    state: &State,
    payer: NodeId,
    signed: &SignedMessage,
) -> Result<Withdrawal, Failure> {
    let answer = client(state)?
        .forward_withdrawal(payer, signed)
        .await
        .map_err(unreachable(payer, "ForwardWithdrawal"))?;
    let (created, payout) = answer?;
    Ok(Withdrawal { created, payout })
}

/// `POST /api/v1/payouts/{payout_id}/cancel` with a node-signed `payout-cancel`: the id in the
/// path must be the one signed.
pub(crate) async fn submit_cancel(
    state: &State,
    payout_id: &str,
    signed: SignedMessage,
) -> Result<PayoutView, Failure> {
    let request: CancelRequest = checked(state, &signed)?;
    if request.payout_id != payout_id {
        return Err(Failure::InvalidInput(
            "the signed payout-cancel names another payout than the path".to_owned(),
        ));
    }
    match role(state) {
        Role::Payer | Role::Standalone => decide_cancel(state, &request).await,
        Role::Forwarder(payer) => forward_cancel(state, payer, &signed).await,
    }
}

/// `Peer.ForwardCancel` on this node: only the payer decides.
pub(crate) async fn payer_cancel(
    state: &State,
    signed: SignedMessage,
) -> Result<PayoutView, Failure> {
    require_payer(state)?;
    let request: CancelRequest = checked(state, &signed)?;
    decide_cancel(state, &request).await
}

/// Cancels the payout if its owner signed the request.
async fn decide_cancel(state: &State, request: &CancelRequest) -> Result<PayoutView, Failure> {
    let record = state
        .ports
        .payouts
        .get(&request.payout_id)
        .await
        .map_err(operator::payout_error("reading a payout"))?;
    if record.node != request.node {
        tracing::warn!(
            signer = %request.node,
            owner = %record.node,
            payout_id = %request.payout_id,
            "signed cancel of another node's payout refused"
        );
        return Err(Failure::Forbidden);
    }
    let view = operator::cancel_payout(state, &request.payout_id).await?;
    tracing::info!(node = %request.node, payout_id = %request.payout_id, "signed cancel");
    Ok(view)
}

async fn forward_cancel(
    state: &State,
    payer: NodeId,
    signed: &SignedMessage,
) -> Result<PayoutView, Failure> {
    let answer = client(state)?
        .forward_cancel(payer, signed)
        .await
        .map_err(unreachable(payer, "ForwardCancel"))?;
    answer.map(|(_, payout)| payout)
}

/// The admin's withdrawal (`POST /nodes/{node_id}/withdrawals`, `Operator.RequestWithdrawal`):
/// decided here on the payer and on a standalone node; on a forwarding node only for its own
/// node, signed with its identity key and forwarded.
pub(crate) async fn admin_withdrawal(
    state: &State,
    node: NodeId,
    client_key: &str,
    amount: Option<MicroUsdt>,
) -> Result<Withdrawal, Failure> {
    let Role::Forwarder(payer) = role(state) else {
        return operator::request_withdrawal(state, node, client_key, amount).await;
    };
    if node != state.node_id {
        return Err(Failure::FeatureDisabled(
            "this node is not the payer: it forwards withdrawals of its own node only; \
             send the node's signed withdrawal to POST /api/v1/withdrawals"
                .to_owned(),
        ));
    }
    lucid_payouts::payout::withdrawal_key(client_key)
        .map_err(|_| Failure::InvalidInput("Idempotency-Key is not valid".to_owned()))?;
    let request = WithdrawalRequest {
        node,
        amount,
        idempotency_key: client_key.to_owned(),
        ts: state.clock.wall(),
    };
    let signed = request.sign(&state.config.consensus.network, &state.key);
    forward_withdrawal(state, payer, &signed).await
}

/// The admin's cancel (`POST /payouts/{id}/cancel` with the token, `Operator.CancelPayout`):
/// decided here on the payer and on a standalone node; on a forwarding node signed by its own
/// node and forwarded (the payer refuses a payout of another node with 403).
pub(crate) async fn admin_cancel(state: &State, payout_id: &str) -> Result<PayoutView, Failure> {
    let Role::Forwarder(payer) = role(state) else {
        return operator::cancel_payout(state, payout_id).await;
    };
    let request = CancelRequest {
        node: state.node_id,
        payout_id: payout_id.to_owned(),
        ts: state.clock.wall(),
    };
    let signed = request.sign(&state.config.consensus.network, &state.key);
    forward_cancel(state, payer, &signed).await
}

/// `GET /payouts`, `GET /nodes/{id}/payouts`: the payer's records on a forwarding node, this
/// node's own elsewhere.
pub(crate) async fn payouts(
    state: &State,
    node: Option<NodeId>,
    query: PayoutQuery,
) -> Result<Page<PayoutView>, Failure> {
    let Role::Forwarder(payer) = role(state) else {
        return operator::payouts(state, node, query).await;
    };
    // A bad filter or page size is the client's mistake, answered here as the payer would
    // answer it, rather than sent on and its refusal mistaken for an unreachable payer.
    query.page().limit()?;
    query.status.as_deref().map(operator::parse_status).transpose()?;
    let request = pb::GetPayoutsRequest {
        payout_id: String::new(),
        node_id: node.map(|n| n.to_string()).unwrap_or_default(),
        status: query.status.unwrap_or_default(),
        limit: query.limit.unwrap_or(0),
        cursor: query.cursor.unwrap_or_default(),
    };
    client(state)?.get_payouts(payer, request).await.map_err(unreachable(payer, "GetPayouts"))
}

/// `GET /payouts/{id}`: the payer's record on a forwarding node, this node's own elsewhere.
pub(crate) async fn payout(state: &State, payout_id: &str) -> Result<PayoutView, Failure> {
    let Role::Forwarder(payer) = role(state) else {
        return operator::payout(state, payout_id).await;
    };
    let request = pb::GetPayoutsRequest { payout_id: payout_id.to_owned(), ..Default::default() };
    let page = client(state)?
        .get_payouts(payer, request)
        .await
        .map_err(unreachable(payer, "GetPayouts"))?;
    let mut items = page.items.into_iter();
    match (items.next(), items.next()) {
        (Some(view), None) if view.payout_id == payout_id => Ok(view),
        (None, _) => Err(Failure::NotFound(Missing::Payout)),
        _ => {
            tracing::warn!(%payer, payout_id, "the payer answered another payout than asked for");
            Err(Failure::PayerUnreachable)
        }
    }
}

/// `Peer.GetPayouts` on this node: the payer's own records.
pub(crate) async fn payer_payouts(
    state: &State,
    node: Option<NodeId>,
    query: PayoutQuery,
) -> Result<Page<PayoutView>, Failure> {
    require_payer(state)?;
    operator::payouts(state, node, query).await
}

/// The node's latest payout before `this` (in the (created_at, payout_id) order of the
/// listings) that was not failed or cancelled, as its id and creation time: where a payout
/// stub's credits start, since the money of a failed or cancelled payout went back to the
/// balance and is part of the next one.
///
/// Where the payouts live (the payer, a standalone node) this is one read of the store and no
/// attempts; a forwarding node pages through the payer's listing of the node's payouts.
pub(crate) async fn previous_paying_payout(
    state: &State,
    node: NodeId,
    this: &PayoutView,
) -> Result<Option<(String, UnixMillis)>, Failure> {
    let before = |created_at: i64, id: &str| (created_at, id) < (this.created_at, &*this.payout_id);
    let paid =
        |status: PayoutStatus| !matches!(status, PayoutStatus::Failed | PayoutStatus::Cancelled);
    let Role::Forwarder(_) = role(state) else {
        let records = state
            .ports
            .payouts
            .list(None)
            .await
            .map_err(operator::store_failure("listing payouts"))?;
        return Ok(records
            .into_iter()
            .filter(|r| r.node == node && paid(r.status) && before(r.created_at.0, &r.payout_id))
            .max_by(|a, b| (a.created_at, &a.payout_id).cmp(&(b.created_at, &b.payout_id)))
            .map(|r| (r.payout_id, r.created_at)));
    };
    let mut previous = None;
    let mut cursor = None;
    loop {
        let query = PayoutQuery { limit: Some(PAYOUT_PAGE), cursor, status: None };
        let page = payouts(state, Some(node), query).await?;
        for candidate in page.items {
            if !before(candidate.created_at, &candidate.payout_id) {
                return Ok(previous);
            }
            if paid(operator::parse_status(&candidate.status)?) {
                previous = Some((candidate.payout_id, UnixMillis(candidate.created_at)));
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(previous),
        }
    }
}

/// Payouts asked of the payer per page (its largest page).
const PAYOUT_PAGE: u32 = 100;

/// `Peer.GetPayouts` for one payout id on this node.
pub(crate) async fn payer_payout(state: &State, payout_id: &str) -> Result<PayoutView, Failure> {
    require_payer(state)?;
    operator::payout(state, payout_id).await
}

#[cfg(test)]
mod tests;

/// `GET /nodes/{id}/ledger`: on a forwarding node a page of the payer's ledger (503
/// `PAYER_UNREACHABLE` without an answer, never this node's own entries instead); elsewhere
/// this node's own ledger. A node without any entry that this node does not know at all
/// (no registration, no seat, not itself) is 404 `NODE_NOT_FOUND`; a known node without
/// entries has an empty ledger.
pub(crate) async fn ledger(
    state: &State,
    node: NodeId,
    query: PageQuery,
) -> Result<LedgerPageView, Failure> {
    let first_page = query.cursor.is_none();
    let page = match role(state) {
        Role::Forwarder(payer) => forwarded_ledger(state, payer, node, query).await?,
        Role::Payer | Role::Standalone => operator::ledger(state, node, &query).await?,
    };
    if first_page && page.items.is_empty() {
        // Answers 404 for a node nobody registered.
        operator::node(state, node).await?;
    }
    Ok(page)
}

async fn forwarded_ledger(
    state: &State,
    payer: NodeId,
    node: NodeId,
    query: PageQuery,
) -> Result<LedgerPageView, Failure> {
    // A bad page size or cursor is the client's mistake, answered here as the payer would.
    query.limit()?;
    query.cursor.as_deref().map(operator::parse_ledger_cursor).transpose()?;
    let request = pb::GetLedgerRequest {
        node_id: node.to_string(),
        limit: query.limit.unwrap_or(0),
        cursor: query.cursor.unwrap_or_default(),
    };
    let (items, next_cursor) =
        client(state)?.get_ledger(payer, request).await.map_err(unreachable(payer, "GetLedger"))?;
    // The entries are the payer's ledger: the authoritative one.
    Ok(LedgerPageView { node_id: node.to_string(), items, next_cursor, authoritative: true })
}

/// `Peer.GetLedger` on this node: the payer's own ledger.
pub(crate) async fn payer_ledger(
    state: &State,
    node: NodeId,
    query: PageQuery,
) -> Result<LedgerPageView, Failure> {
    require_payer(state)?;
    operator::ledger(state, node, &query).await
}

/// `GET /payouts/stats`: the payer's figures on a forwarding node (503 `PAYER_UNREACHABLE`
/// without an answer), this node's own elsewhere.
pub(crate) async fn payout_stats(state: &State) -> Result<PayoutStats, Failure> {
    let Role::Forwarder(payer) = role(state) else {
        return operator::payout_stats(state).await;
    };
    client(state)?.get_payout_stats(payer).await.map_err(unreachable(payer, "GetPayoutStats"))
}

/// `Peer.GetPayoutStats` on this node: the payer's own figures.
pub(crate) async fn payer_payout_stats(state: &State) -> Result<PayoutStats, Failure> {
    require_payer(state)?;
    operator::payout_stats(state).await
}

/// `GET /payouts/config`: the limits in force, the fee policy (constants), and who pays. No
/// secret is part of it: the rail is named, its keys and endpoints are not.
pub(crate) fn payout_config(state: &State) -> PayoutConfigView {
    use lucid_payouts::payout::{FEE_BPS, FEE_MAX, FEE_MIN, PayoutLimits};
    let limits = state.money().map_or_else(PayoutLimits::default, |money| money.limits);
    let (role, payer) = match role(state) {
        Role::Payer => ("payer", Some(state.node_id)),
        Role::Forwarder(payer) => ("forwarder", Some(payer)),
        Role::Standalone => ("standalone", None),
    };
    PayoutConfigView {
        minimum_micro_usdt: limits.minimum().0,
        maximum_micro_usdt: limits.maximum().0,
        fee_bps: FEE_BPS,
        fee_min_micro_usdt: FEE_MIN.0,
        fee_max_micro_usdt: FEE_MAX.0,
        network: state.config.network_name.clone(),
        role: role.to_owned(),
        rail: state.money().and_then(crate::money::MoneyRuntime::rail).map(str::to_owned),
        payer_node_id: payer.map(|node| node.to_string()),
    }
}
