//! The read and write operations of `/api/v1`, over the node's ports: each reads the stores
//! (never a cache) and turns domain answers into the DTOs of `lucid-api` and typed `Failure`s.

use std::collections::BTreeMap;
use std::fmt::Display;

use lucid_api::dto::{
    AttemptView, BalanceView, CapacityView, LedgerLineView, LedgerPageView, MemberView,
    NodeSummary, Page, PageQuery, PayoutQuery, PayoutStats, PayoutView, PoolView, ScheduleView,
    TallyEntryView, TallyView, Withdrawal,
};
use lucid_api::{Failure, Missing};
use lucid_consensus::leader::{LeaderReason, NoLeaderReason, Outcome, SlotResult};
use lucid_consensus::registration::Endpoint;
use lucid_consensus::store::StoredRegistration;
use lucid_core::{Epoch, HasKind, MicroUsdt, NodeId, PoolId, Slot, UnixMillis};
use lucid_payouts::payout::{Origin, PayoutLimits, PayoutStatus, Refusal};
use lucid_payouts::store::{AttemptRecord, CreateOutcome, LedgerPosition, NewPayout, PayoutRecord};
use lucid_pools::Pool;

use crate::node::State;

/// Logs a store error with its detail and answers without it.
pub(crate) fn store_failure<E: HasKind + Display>(
    action: &'static str,
) -> impl FnOnce(E) -> Failure {
    move |error| {
        tracing::warn!(%error, action, "store operation failed");
        match error.kind() {
            lucid_core::ErrorKind::StoreUnavailable | lucid_core::ErrorKind::TransientNetwork => {
                Failure::StoreUnavailable
            }
            _ => Failure::Internal,
        }
    }
}

/// A signed micro-USDT amount as a 6-decimal string.
pub(crate) fn amount(micro: i64) -> String {
    lucid_api::dto::signed_amount(micro)
}

/// Pages `items` (sorted by `key`) after `cursor`.
fn page<T, K: PartialOrd + Display>(
    items: Vec<T>,
    query: &PageQuery,
    key: impl Fn(&T) -> K,
) -> Result<(Vec<T>, Option<String>), Failure> {
    let limit = query.limit()?;
    let start = match &query.cursor {
        None => 0,
        Some(cursor) => {
            items.iter().position(|item| key(item).to_string() > *cursor).unwrap_or(items.len())
        }
    };
    let mut rest: Vec<T> = items.into_iter().skip(start).collect();
    let more = rest.len() > limit;
    rest.truncate(limit);
    let next = if more { rest.last().map(|item| key(item).to_string()) } else { None };
    Ok((rest, next))
}

fn endpoint_text(endpoint: &Endpoint) -> String {
    match endpoint {
        Endpoint::Onion { service_key, port } => {
            format!("onion:{}:{port}", lucid_core::ids::to_hex(service_key))
        }
        Endpoint::Direct(address) => address.clone(),
    }
}

fn summary(
    node: NodeId,
    registration: Option<&StoredRegistration>,
    pool: Option<PoolId>,
) -> NodeSummary {
    let record = registration.map(|r| &r.registration);
    NodeSummary {
        node_id: node.to_string(),
        endpoint: record.map(|r| endpoint_text(&r.endpoint)),
        payout_address: record.map(|r| lucid_core::ids::to_hex(&r.payout_address)),
        capabilities: record.map_or(0, |r| r.capabilities),
        registration_seq: record.map_or(0, |r| r.seq),
        pool_id: pool.map(|p| p.to_string()),
    }
}

async fn registrations(state: &State) -> Result<BTreeMap<NodeId, StoredRegistration>, Failure> {
    let all = state
        .ports
        .proofs
        .current_registrations()
        .await
        .map_err(store_failure("reading registrations"))?;
    Ok(all.into_iter().map(|r| (r.registration.node, r)).collect())
}

pub(crate) async fn nodes(state: &State, query: PageQuery) -> Result<Page<NodeSummary>, Failure> {
    let registrations = registrations(state).await?;
    let mut known: BTreeMap<NodeId, Option<PoolId>> =
        registrations.keys().map(|node| (*node, None)).collect();
    known.insert(state.key.node_id(), None);
    let pools = state.ports.pool_index.all_pools().await.map_err(store_failure("listing pools"))?;
    for pool in &pools {
        let members = state
            .ports
            .pools
            .members(&pool.pool_id)
            .await
            .map_err(store_failure("reading members"))?;
        for member in members.iter().filter(|m| m.is_seat()) {
            known.insert(member.node_id, Some(pool.pool_id));
        }
    }
    let all: Vec<NodeSummary> = known
        .into_iter()
        .map(|(node, pool)| summary(node, registrations.get(&node), pool))
        .collect();
    let (items, next_cursor) = page(all, &query, |n| n.node_id.clone())?;
    Ok(Page { items, next_cursor })
}

pub(crate) async fn node(state: &State, node: NodeId) -> Result<NodeSummary, Failure> {
    let registrations = registrations(state).await?;
    let pool = state.ports.pools.pool_of(&node).await.map_err(store_failure("reading a seat"))?;
    let registration = registrations.get(&node);
    if registration.is_none() && pool.is_none() && node != state.key.node_id() {
        return Err(Failure::NotFound(Missing::Node));
    }
    Ok(summary(node, registration, pool))
}

fn pool_view(pool: &Pool, pending: usize) -> PoolView {
    let pending = u32::try_from(pending).unwrap_or(u32::MAX);
    let remaining = u32::from(pool.max_nodes).saturating_sub(pool.seats).saturating_sub(pending);
    PoolView {
        pool_id: pool.pool_id.to_string(),
        name: pool.name.clone(),
        status: pool.status.as_str().to_owned(),
        leader: pool.leader.to_string(),
        founder: pool.founder.to_string(),
        max_nodes: pool.max_nodes,
        seats: pool.seats,
        capacity_remaining: remaining,
        is_at_capacity: remaining == 0 || pool.status == lucid_pools::PoolStatus::Disbanded,
        pending_joins: pending,
        created_slot: pool.created_slot.0,
        disbanded_slot: pool.disbanded_slot.map(|s| s.0),
    }
}

async fn pending_joins(state: &State, pool: &PoolId) -> Result<usize, Failure> {
    state.ports.pools.pending_joins(pool).await.map_err(store_failure("counting joins"))
}

pub(crate) async fn pools(state: &State, query: PageQuery) -> Result<Page<PoolView>, Failure> {
    let all = state.ports.pool_index.all_pools().await.map_err(store_failure("listing pools"))?;
    let (chosen, next_cursor) = page(all, &query, |p| p.pool_id.to_string())?;
    let mut items = Vec::with_capacity(chosen.len());
    for pool in &chosen {
        items.push(pool_view(pool, pending_joins(state, &pool.pool_id).await?));
    }
    Ok(Page { items, next_cursor })
}

async fn stored_pool(state: &State, pool: &PoolId) -> Result<Pool, Failure> {
    state
        .ports
        .pools
        .get_pool(pool)
        .await
        .map_err(store_failure("reading a pool"))?
        .map(|stored| stored.pool)
        .ok_or(Failure::NotFound(Missing::Pool))
}

pub(crate) async fn pool(state: &State, id: PoolId) -> Result<PoolView, Failure> {
    let pool = stored_pool(state, &id).await?;
    Ok(pool_view(&pool, pending_joins(state, &id).await?))
}

pub(crate) async fn pool_capacity(state: &State, id: PoolId) -> Result<CapacityView, Failure> {
    let view = pool(state, id).await?;
    Ok(CapacityView {
        pool_id: view.pool_id,
        seats: view.seats,
        max_nodes: view.max_nodes,
        remaining: view.capacity_remaining,
        is_at_capacity: view.is_at_capacity,
        pending_joins: view.pending_joins,
    })
}

pub(crate) async fn pool_members(state: &State, id: PoolId) -> Result<Vec<MemberView>, Failure> {
    stored_pool(state, &id).await?;
    let members = state.ports.pools.members(&id).await.map_err(store_failure("reading members"))?;
    Ok(members
        .into_iter()
        .map(|m| MemberView {
            node_id: m.node_id.to_string(),
            role: m.role.as_str().to_owned(),
            status: m.status.as_str().to_owned(),
            from_slot: m.from_slot.0,
            to_slot: m.to_slot.map(|s| s.0),
        })
        .collect())
}

/// The stored tally of `epoch` (404 `TALLY_NOT_FOUND` without one).
pub(crate) async fn stored_tally(
    state: &State,
    epoch: Epoch,
) -> Result<lucid_consensus::records::StoredTally, Failure> {
    state
        .ports
        .records
        .tally(epoch)
        .await
        .map_err(store_failure("reading a tally"))?
        .ok_or(Failure::NotFound(Missing::Tally))
}

pub(crate) async fn tally(state: &State, epoch: Epoch) -> Result<TallyView, Failure> {
    let stored = stored_tally(state, epoch).await?;
    let tally = &stored.tally;
    Ok(TallyView {
        epoch: tally.epoch.0,
        window_start: tally.window.start.0,
        window_end: tally.window.end.0,
        revision: tally.revision,
        settled: stored.settled_at.is_some(),
        digest: tally.digest.to_hex(),
        entries: tally
            .entries
            .iter()
            .map(|e| TallyEntryView {
                entity: e.entity.to_string(),
                rank: e.rank,
                credits: e.credits.to_string(),
                relay: e.relay.to_string(),
                storage: e.storage.to_string(),
                validation: e.validation.to_string(),
                beacon_slots: e.beacon_slots,
                density_ppm: e.density_ppm,
            })
            .collect(),
    })
}

fn leader_reason(reason: LeaderReason) -> &'static str {
    match reason {
        LeaderReason::HighestCredits => "highest_credits",
        LeaderReason::CooldownSkip => "cooldown_skip",
        LeaderReason::RotatedTie => "rotated_tie",
    }
}

fn no_leader_reason(reason: NoLeaderReason) -> &'static str {
    match reason {
        NoLeaderReason::TallyPending => "tally_pending",
        NoLeaderReason::NoRankedEntity => "no_ranked_entity",
        NoLeaderReason::AllInCooldown => "all_in_cooldown",
    }
}

fn result_text(result: &SlotResult) -> String {
    match result {
        SlotResult::Success { winner } => format!("success:{winner}"),
        SlotResult::FallbackSuccess { winner, .. } => format!("fallback_success:{winner}"),
        SlotResult::Missed => "missed".to_owned(),
        SlotResult::NoLeader(reason) => format!("no_leader:{}", no_leader_reason(*reason)),
    }
}

pub(crate) async fn leader(state: &State, slot: Slot) -> Result<ScheduleView, Failure> {
    let now =
        state.config.consensus.time.slot_of(state.clock.wall()).map_err(|_| Failure::NotReady)?;
    if slot > now {
        return Err(Failure::NotFound(Missing::Slot));
    }
    let records = &state.ports.records;
    let schedule = records
        .schedule(slot)
        .await
        .map_err(store_failure("reading a schedule"))?
        .ok_or(Failure::NotFound(Missing::Slot))?;
    let range = lucid_core::SlotRange { start: slot, end: Slot(slot.0.saturating_add(1)) };
    let result = records.results(range).await.map_err(store_failure("reading a slot result"))?;
    let (primary, fallbacks, reason, no_leader) = match &schedule.outcome {
        Outcome::Leader { primary, fallbacks, reason } => (
            Some(primary.to_string()),
            fallbacks.iter().map(ToString::to_string).collect(),
            Some(leader_reason(*reason).to_owned()),
            None,
        ),
        Outcome::NoLeader(reason) => {
            (None, Vec::new(), None, Some(no_leader_reason(*reason).to_owned()))
        }
    };
    Ok(ScheduleView {
        slot: schedule.slot.0,
        epoch: schedule.epoch.0,
        tally_digest: schedule.tally_digest.map(|d| d.to_hex()),
        primary,
        fallbacks,
        reason,
        no_leader_reason: no_leader,
        result: result.first().map(|(_, r)| result_text(r)),
    })
}

/// The payout limits in force: `payouts.minimum_usdt` / `payouts.maximum_usdt` once the money
/// services are wired, else the defaults of `pools-payouts.md` §5.2 (10 and 10 000 USDT).
fn limits(state: &State) -> PayoutLimits {
    state.money().map_or_else(PayoutLimits::default, |money| money.limits)
}

pub(crate) async fn balance(state: &State, node: NodeId) -> Result<BalanceView, Failure> {
    let balance =
        state.ports.payouts.balance(&node).await.map_err(store_failure("reading a balance"))?;
    Ok(BalanceView {
        node_id: node.to_string(),
        earned: amount(balance.earned),
        reserved: amount(balance.reserved),
        paid: amount(balance.paid),
        available: amount(balance.available),
        minimum: limits(state).minimum().to_string(),
        // Only a payer's ledger is authoritative (`pools-payouts.md` §5.1).
        authoritative: state.money().is_some_and(crate::money::MoneyRuntime::is_payer),
    })
}

fn payout_view(record: &PayoutRecord, attempts: &[AttemptRecord]) -> PayoutView {
    PayoutView {
        payout_id: record.payout_id.clone(),
        node_id: record.node.to_string(),
        origin: record.origin.as_str().to_owned(),
        status: record.status.as_str().to_owned(),
        gross: record.amounts.gross.to_string(),
        fee: record.amounts.fee.to_string(),
        net: record.amounts.net.to_string(),
        to_address: lucid_core::ids::to_hex(&record.to_address),
        idempotency_key: record.idempotency_key.clone(),
        attempts: attempts
            .iter()
            .map(|a| AttemptView {
                attempt_no: a.attempt_no,
                txid: lucid_core::ids::to_hex(&a.transfer.txid),
                status: a.status.as_str().to_owned(),
                fee_limit_sun: a.transfer.fee_limit_sun,
                expiration: a.transfer.expiration.0,
                broadcast_at: a.broadcast_at.map(|t| t.0),
                block_number: a.block,
                energy_used: a.energy_used,
                fee_sun: a.fee_sun,
            })
            .collect(),
        error_code: record.error_code.clone(),
        created_at: record.created_at.0,
        updated_at: record.updated_at.0,
        completed_at: record.completed_at.map(|t| t.0),
    }
}

pub(crate) fn payout_error<E: HasKind + Display>(
    action: &'static str,
) -> impl FnOnce(E) -> Failure {
    move |error| match error.kind() {
        lucid_core::ErrorKind::NotFound => Failure::NotFound(Missing::Payout),
        lucid_core::ErrorKind::Conflict => {
            Failure::InvalidState("the payout is not in a state that allows this".to_owned())
        }
        _ => store_failure(action)(error),
    }
}

pub(crate) async fn view_of(state: &State, record: &PayoutRecord) -> Result<PayoutView, Failure> {
    let attempts = state
        .ports
        .payouts
        .attempts(&record.payout_id)
        .await
        .map_err(store_failure("reading attempts"))?;
    Ok(payout_view(record, &attempts))
}

pub(crate) fn parse_status(text: &str) -> Result<PayoutStatus, Failure> {
    PayoutStatus::ALL
        .iter()
        .copied()
        .find(|s| s.as_str() == text)
        .ok_or_else(|| Failure::InvalidInput("status is not a payout status".to_owned()))
}

pub(crate) async fn payouts(
    state: &State,
    node: Option<NodeId>,
    query: PayoutQuery,
) -> Result<Page<PayoutView>, Failure> {
    let status = query.status.as_deref().map(parse_status).transpose()?;
    let mut all =
        state.ports.payouts.list(status).await.map_err(store_failure("listing payouts"))?;
    if let Some(node) = node {
        all.retain(|p| p.node == node);
    }
    // Paged by (created_at, payout_id), the order of the store.
    let (chosen, next_cursor) =
        page(all, &query.page(), |p| format!("{:020}:{}", p.created_at.0, p.payout_id))?;
    let mut items = Vec::with_capacity(chosen.len());
    for record in &chosen {
        items.push(view_of(state, record).await?);
    }
    Ok(Page { items, next_cursor })
}

pub(crate) async fn payout(state: &State, payout_id: &str) -> Result<PayoutView, Failure> {
    let record =
        state.ports.payouts.get(payout_id).await.map_err(payout_error("reading a payout"))?;
    view_of(state, &record).await
}

pub(crate) async fn payout_stats(state: &State) -> Result<PayoutStats, Failure> {
    let all = state.ports.payouts.list(None).await.map_err(store_failure("listing payouts"))?;
    let mut by_status = BTreeMap::new();
    let mut paid = MicroUsdt(0);
    for record in &all {
        *by_status.entry(record.status.as_str().to_owned()).or_insert(0) += 1;
        if record.status == PayoutStatus::Confirmed {
            paid = paid.checked_add(record.amounts.gross).map_err(|_| Failure::Internal)?;
        }
    }
    Ok(PayoutStats { by_status, paid_gross: paid.to_string() })
}

pub(crate) async fn request_withdrawal(
    state: &State,
    node: NodeId,
    client_key: &str,
    requested: Option<MicroUsdt>,
) -> Result<Withdrawal, Failure> {
    let idempotency_key = lucid_payouts::payout::withdrawal_key(client_key)
        .map_err(|_| Failure::InvalidInput("Idempotency-Key is not valid".to_owned()))?;
    let registrations = registrations(state).await?;
    let to_address = registrations.get(&node).map(|r| r.registration.payout_address);
    let request = NewPayout {
        node,
        origin: Origin::Withdrawal,
        idempotency_key,
        requested,
        to_address,
        limits: limits(state),
        max_retries: state.money().map_or(3, |money| money.max_retries),
        now: state.clock.wall(),
    };
    let outcome = state
        .ports
        .payouts
        .create_payout(&request)
        .await
        .map_err(store_failure("creating a payout"))?;
    match outcome {
        CreateOutcome::Created(record) => {
            Ok(Withdrawal { created: true, payout: view_of(state, &record).await? })
        }
        CreateOutcome::Replayed(record) => {
            Ok(Withdrawal { created: false, payout: view_of(state, &record).await? })
        }
        CreateOutcome::Conflict(_) => Err(Failure::IdempotencyConflict),
        CreateOutcome::Refused(refusal) => Err(match refusal {
            Refusal::BelowMinimum { minimum } => Failure::BelowMinimum(minimum.to_string()),
            Refusal::AboveMaximum { maximum } => Failure::AboveMaximum(maximum.to_string()),
            Refusal::InsufficientBalance { available } => {
                Failure::InsufficientBalance(available.to_string())
            }
            Refusal::NoPayoutAddress => Failure::NoPayoutAddress,
        }),
    }
}

pub(crate) async fn cancel_payout(state: &State, payout_id: &str) -> Result<PayoutView, Failure> {
    let record = state
        .ports
        .payouts
        .cancel(payout_id, state.clock.wall())
        .await
        .map_err(payout_error("cancelling a payout"))?;
    view_of(state, &record).await
}

/// The ledger cursor of `position`: `{posted_at}:{posting_key}` (the key may hold `:`).
fn ledger_cursor(position: &LedgerPosition) -> String {
    format!("{}:{}", position.posted_at.0, position.posting_key)
}

/// The position a ledger cursor names; anything else is the client's mistake.
pub(crate) fn parse_ledger_cursor(cursor: &str) -> Result<LedgerPosition, Failure> {
    let invalid = || Failure::InvalidInput("cursor is not valid".to_owned());
    let (millis, key) = cursor.split_once(':').ok_or_else(invalid)?;
    if millis.is_empty() || !millis.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let posted_at = UnixMillis(millis.parse().map_err(|_| invalid())?);
    if key.is_empty() || key.len() > MAX_POSTING_KEY || key.chars().any(char::is_control) {
        return Err(invalid());
    }
    Ok(LedgerPosition { posted_at, posting_key: key.to_owned() })
}

/// Longest posting key (the schema's CHECK).
const MAX_POSTING_KEY: usize = 128;

/// `GET /nodes/{id}/ledger` from this node's own ledger: a page of the node's entries, newest
/// first. `authoritative` says whether this ledger is the payer's.
pub(crate) async fn ledger(
    state: &State,
    node: NodeId,
    query: &PageQuery,
) -> Result<LedgerPageView, Failure> {
    let limit = query.limit()?;
    let before = query.cursor.as_deref().map(parse_ledger_cursor).transpose()?;
    let money =
        state.money().ok_or_else(|| Failure::FeatureDisabled("the ledger is not wired".into()))?;
    // One line more than the page tells whether another page exists.
    let mut lines = money
        .ledger
        .node_ledger(&node, before.as_ref(), limit + 1)
        .await
        .map_err(store_failure("reading a node's ledger"))?;
    let more = lines.len() > limit;
    lines.truncate(limit);
    let next_cursor =
        if more { lines.last().map(|line| ledger_cursor(&line.position())) } else { None };
    Ok(LedgerPageView {
        node_id: node.to_string(),
        items: lines
            .into_iter()
            .map(|line| LedgerLineView {
                posting_key: line.posting_key,
                kind: line.kind.as_str().to_owned(),
                amount: amount(line.amount),
                created_at: line.posted_at.0,
                memo: line.memo,
                balance_after: amount(line.balance_after),
            })
            .collect(),
        next_cursor,
        authoritative: money.is_payer(),
    })
}
