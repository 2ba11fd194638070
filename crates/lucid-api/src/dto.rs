//! The JSON shapes of `/api/v1` (requests deny unknown fields). Amounts are 6-decimal strings,
//! slots and epochs numbers, credits strings, ids their text forms.

use serde::{Deserialize, Serialize};

/// Page parameters: `?limit=1..100 (20)&cursor=<opaque>`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Items per page, 1..=100; 20 when absent.
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The largest page.
pub const MAX_PAGE: u32 = 100;
/// The page size when none is asked for.
pub const DEFAULT_PAGE: u32 = 20;

impl PageQuery {
    /// The validated page size.
    pub fn limit(&self) -> Result<usize, crate::Failure> {
        match self.limit {
            None => Ok(DEFAULT_PAGE as usize),
            Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n as usize),
            Some(_) => Err(crate::Failure::InvalidInput("limit must be 1..=100".to_owned())),
        }
    }
}

/// Payout list parameters.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayoutQuery {
    /// Items per page, 1..=100; 20 when absent.
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only payouts in this status.
    pub status: Option<String>,
}

impl PayoutQuery {
    /// The page part.
    pub fn page(&self) -> PageQuery {
        PageQuery { limit: self.limit, cursor: self.cursor.clone() }
    }
}

/// One page of a list.
#[derive(Clone, Debug, Serialize)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A known node (from its registration and the pool tables).
#[derive(Clone, Debug, Serialize)]
pub struct NodeSummary {
    /// `node_…`.
    pub node_id: String,
    /// How peers reach it, when registered.
    pub endpoint: Option<String>,
    /// TRON payout address bytes (hex, `41…`), when registered.
    pub payout_address: Option<String>,
    /// Capability bits of the registration.
    pub capabilities: u32,
    /// Sequence number of the current registration (0 when unregistered).
    pub registration_seq: u64,
    /// The pool where it holds a seat.
    pub pool_id: Option<String>,
}

/// A pool with its capacity.
#[derive(Clone, Debug, Serialize)]
pub struct PoolView {
    /// `pool_…`.
    pub pool_id: String,
    /// Display name.
    pub name: String,
    /// `forming`, `active`, `degraded` or `disbanded`.
    pub status: String,
    /// The leader.
    pub leader: String,
    /// The founder.
    pub founder: String,
    /// Seat limit.
    pub max_nodes: u8,
    /// Seats held.
    pub seats: u32,
    /// `max_nodes − seats − pending_joins`, at least 0.
    pub capacity_remaining: u32,
    /// Whether no join can be accepted now.
    pub is_at_capacity: bool,
    /// Joins accepted and not yet applied.
    pub pending_joins: u32,
    /// The slot the pool was created at.
    pub created_slot: u64,
    /// The slot it was disbanded at.
    pub disbanded_slot: Option<u64>,
}

/// A pool's capacity.
#[derive(Clone, Debug, Serialize)]
pub struct CapacityView {
    /// `pool_…`.
    pub pool_id: String,
    /// Seats held.
    pub seats: u32,
    /// Seat limit.
    pub max_nodes: u8,
    /// `max_nodes − seats − pending_joins`, at least 0.
    pub remaining: u32,
    /// Whether no join can be accepted now.
    pub is_at_capacity: bool,
    /// Joins accepted and not yet applied.
    pub pending_joins: u32,
}

/// A membership row.
#[derive(Clone, Debug, Serialize)]
pub struct MemberView {
    /// `node_…`.
    pub node_id: String,
    /// `leader` or `member`.
    pub role: String,
    /// Member status.
    pub status: String,
    /// First slot of the seat.
    pub from_slot: u64,
    /// Slot the seat closed at.
    pub to_slot: Option<u64>,
}

/// `POST /pools`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePoolRequest {
    /// 3..=64 characters of `[a-z0-9_-]`.
    pub name: String,
    /// Seat limit, 1..=100 (100 when absent).
    pub max_nodes: Option<u8>,
}

/// `PATCH /pools/{pool_id}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdatePoolRequest {
    /// The new seat limit, 1..=100 and at least the seats held.
    pub max_nodes: u8,
}

/// A signed message in its JSON form (consensus.md §4.6): the exact signed bytes and the
/// Ed25519 signature.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedBody {
    /// Signed bytes, standard base64 with padding.
    pub message: String,
    /// Signature, 128 hex.
    pub signature: String,
}

/// An accepted pool op.
#[derive(Clone, Debug, Serialize)]
pub struct OpAccepted {
    /// The op's message digest.
    pub op_digest: String,
    /// The pool it concerns (the derived id for a Create).
    pub pool_id: String,
    /// The slot it takes effect at.
    pub effective_slot: u64,
}

/// One entry of a tally.
#[derive(Clone, Debug, Serialize)]
pub struct TallyEntryView {
    /// `node_…` or `pool_…`.
    pub entity: String,
    /// Rank, when ranked.
    pub rank: Option<u32>,
    /// Total credits.
    pub credits: String,
    /// Relay credits.
    pub relay: String,
    /// Storage credits.
    pub storage: String,
    /// Validation credits.
    pub validation: String,
    /// Window slots with a beacon.
    pub beacon_slots: u64,
    /// Beacon density in parts per million.
    pub density_ppm: u32,
}

/// `GET /poot/epochs/{epoch}/tally`.
#[derive(Clone, Debug, Serialize)]
pub struct TallyView {
    /// The epoch.
    pub epoch: u64,
    /// First slot of the work window.
    pub window_start: u64,
    /// One past the last slot of the window.
    pub window_end: u64,
    /// Revision.
    pub revision: u32,
    /// Whether the tally is frozen.
    pub settled: bool,
    /// The tally digest.
    pub digest: String,
    /// Entries: ranked first.
    pub entries: Vec<TallyEntryView>,
}

/// `GET /poot/slots/{slot}/leader`.
#[derive(Clone, Debug, Serialize)]
pub struct ScheduleView {
    /// The slot.
    pub slot: u64,
    /// Its epoch.
    pub epoch: u64,
    /// The tally the schedule was computed from.
    pub tally_digest: Option<String>,
    /// The primary, when a leader exists.
    pub primary: Option<String>,
    /// Ordered fallbacks.
    pub fallbacks: Vec<String>,
    /// Why the primary was chosen.
    pub reason: Option<String>,
    /// Why there is no leader.
    pub no_leader_reason: Option<String>,
    /// The recorded result, once known.
    pub result: Option<String>,
}

/// `GET /nodes/{node_id}/balance`.
#[derive(Clone, Debug, Serialize)]
pub struct BalanceView {
    /// `node_…`.
    pub node_id: String,
    /// Everything credited.
    pub earned: String,
    /// Gross of payouts not yet final.
    pub reserved: String,
    /// Gross of settled payouts.
    pub paid: String,
    /// Available balance.
    pub available: String,
    /// The payout minimum.
    pub minimum: String,
    /// Whether this node's ledger is the payer's (authoritative) one.
    pub authoritative: bool,
}

/// `GET /nodes/{node_id}/stubs/epochs/{epoch}`: why a node was paid what it was paid in one
/// settled epoch (`pools-payouts.md` §3.3), recomputed from the settled tally.
#[derive(Clone, Debug, Serialize)]
pub struct EpochStubView {
    /// `node_…`.
    pub node_id: String,
    /// The epoch.
    pub epoch: u64,
    /// The settled tally the reward is computed from.
    pub tally_digest: String,
    /// `economy.epoch_reward_usdt` of this node.
    pub budget: String,
    /// Why the whole epoch pays nothing (`no_budget`, `no_ranked_entities`), if it does not.
    pub no_reward: Option<String>,
    /// The ledger posting of the epoch (`epoch_reward:{e}`).
    pub posting_key: String,
    /// The node's reward by the stub: the sum of `parts[].node_reward`.
    pub reward: String,
    /// What this node's ledger holds for the node under `posting_key`; `null` while the posting
    /// does not exist. A value other than `reward` means the budget changed after posting.
    pub posted: Option<String>,
    /// One part per entity the node's credits counted for (itself, a pool, or both when it
    /// joined or left a pool inside the window); empty when the node is not in the tally.
    pub parts: Vec<EpochStubPart>,
}

/// One entity's part of an [`EpochStubView`].
#[derive(Clone, Debug, Serialize)]
pub struct EpochStubPart {
    /// `node_…` or `pool_…`.
    pub entity: String,
    /// The entity's credits (a string: may exceed 2^53).
    pub entity_credits: String,
    /// The entity's rank, if ranked.
    pub rank: Option<u32>,
    /// The entity's beacon density, parts per million.
    pub density_ppm: u32,
    /// What the entity received.
    pub entity_reward: String,
    /// For a pool: its credits and the node's contribution.
    pub pool: Option<PoolPartView>,
    /// What the node received of it.
    pub node_reward: String,
    /// Why the entity received nothing (`no_credits`, `density_below_minimum`), if it did not.
    pub unranked: Option<String>,
}

/// A node's share of a pool in an [`EpochStubPart`].
#[derive(Clone, Debug, Serialize)]
pub struct PoolPartView {
    /// `pool_…`.
    pub pool_id: String,
    /// The pool's credits.
    pub pool_credits: String,
    /// The node's own credits attributed to the pool.
    pub contribution: String,
}

/// `GET /payouts/{payout_id}/stub`: why a payout is what it is (`pools-payouts.md` §3.3): the
/// payout with every attempt (txid, status, fee, energy), its chain cost, and the credits the
/// node accrued since its previous payout.
#[derive(Clone, Debug, Serialize)]
pub struct PayoutStubView {
    /// The payout (on a forwarding node, the payer's record), with its attempts.
    pub payout: PayoutView,
    /// TRX the hot wallet burned over every attempt, in sun (a string: may exceed 2^53).
    pub chain_fee_sun: String,
    /// Energy used over every attempt (a string).
    pub chain_energy_used: String,
    /// The node's previous payout that was not failed or cancelled, where the credits below
    /// start; `null` for its first.
    pub previous_payout_id: Option<String>,
    /// The credits posted to the node after the previous payout was created and up to this one's
    /// creation, oldest first, from this node's ledger.
    pub credits: Vec<NodeCreditView>,
    /// Their sum.
    pub credits_total: String,
    /// Whether more credits exist than are listed (at most 1 000 are).
    pub credits_truncated: bool,
}

/// One credit in a [`PayoutStubView`].
#[derive(Clone, Debug, Serialize)]
pub struct NodeCreditView {
    /// `epoch_reward:{e}` or `session:{id}`.
    pub posting_key: String,
    /// `epoch_reward` or `session_revenue`.
    pub kind: String,
    /// What the node received.
    pub amount: String,
    /// When it was posted (Unix milliseconds).
    pub posted_at: i64,
}

/// `POST /nodes/{node_id}/withdrawals`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WithdrawalRequest {
    /// Gross as a decimal string; everything available (capped at the maximum) when absent.
    pub amount: Option<String>,
}

/// `POST /payouts/{payout_id}/resolve`: how an administrator ends a `CHAIN_MISMATCH` payout.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// `settle` (the node was paid) or `release` (it was not).
    pub outcome: ResolveOutcome,
}

/// The two ways to end a `CHAIN_MISMATCH` payout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolveOutcome {
    /// The node was paid: confirmed and settled.
    Settle,
    /// The node was not paid: failed and its reservation released.
    Release,
}

/// `POST /payouts/sweep` → 202.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SweepStarted {
    /// `true` if this request started a sweep, `false` if one was already running.
    pub started: bool,
}

/// One payout attempt.
#[derive(Clone, Debug, Serialize)]
pub struct AttemptView {
    /// 1-based.
    pub attempt_no: u32,
    /// Transaction id, hex.
    pub txid: String,
    /// Attempt status.
    pub status: String,
    /// Fee limit, sun.
    pub fee_limit_sun: u64,
    /// Expiration, unix ms.
    pub expiration: i64,
    /// First broadcast, unix ms.
    pub broadcast_at: Option<i64>,
    /// Block of the receipt.
    pub block_number: Option<u64>,
    /// Energy used.
    pub energy_used: Option<u64>,
    /// TRX burned, sun.
    pub fee_sun: Option<u64>,
}

/// A payout.
#[derive(Clone, Debug, Serialize)]
pub struct PayoutView {
    /// `payout_…`.
    pub payout_id: String,
    /// `node_…`.
    pub node_id: String,
    /// `auto` or `withdrawal`.
    pub origin: String,
    /// Status.
    pub status: String,
    /// Gross.
    pub gross: String,
    /// Fee.
    pub fee: String,
    /// Net.
    pub net: String,
    /// Destination (hex of the 21 address bytes).
    pub to_address: String,
    /// The idempotency key.
    pub idempotency_key: String,
    /// Attempts.
    pub attempts: Vec<AttemptView>,
    /// Last failure code.
    pub error_code: Option<String>,
    /// Creation, unix ms.
    pub created_at: i64,
    /// Last change, unix ms.
    pub updated_at: i64,
    /// Terminal, unix ms.
    pub completed_at: Option<i64>,
}

/// Whether a withdrawal created a payout or replayed one.
#[derive(Clone, Debug)]
pub struct Withdrawal {
    /// `true`: 201, `false`: 200 replay.
    pub created: bool,
    /// The payout.
    pub payout: PayoutView,
}

/// `GET /payouts/stats`.
#[derive(Clone, Debug, Serialize)]
pub struct PayoutStats {
    /// Payouts by status.
    pub by_status: std::collections::BTreeMap<String, u64>,
    /// Gross of confirmed payouts.
    pub paid_gross: String,
}

/// One resource sample.
#[derive(Clone, Debug, Serialize)]
pub struct ResourceSample {
    /// Sample time, unix ms.
    pub ts: i64,
    /// CPU, percent × 100 (basis points of one core set).
    pub cpu_bps: u32,
    /// Memory, basis points.
    pub memory_bps: u32,
    /// Disk of the data directory, basis points.
    pub disk_bps: u32,
    /// Free bytes of the data directory's filesystem.
    pub disk_free_bytes: String,
    /// Network throughput, kilobits per second.
    pub network_kbps: u64,
    /// Sessions hosted now (0 without the `session` feature).
    pub sessions_active: u64,
}

/// An open resource alert.
#[derive(Clone, Debug, Serialize)]
pub struct ResourceAlert {
    /// `cpu`, `memory`, `disk` or `network`.
    pub resource: String,
    /// `warning` or `critical`.
    pub level: String,
    /// Since, unix ms.
    pub since: i64,
}

/// `GET /resources`: whatever the resource monitor published.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ResourcesView {
    /// Whether a resource monitor runs in this node.
    pub monitor_running: bool,
    /// The latest sample.
    pub latest: Option<ResourceSample>,
    /// Open alerts.
    pub alerts: Vec<ResourceAlert>,
}

/// The body of `POST /api/v1/node/payout-address`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayoutAddressRequest {
    /// A TRON address in Base58Check text form (`T…`).
    pub payout_address: String,
}

/// One entry of `GET /api/v1/peers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PeerView {
    /// `node_…` id.
    pub node_id: String,
    /// How the peer is reached (`host:port`, or the onion address).
    pub endpoint: String,
    /// `connected`, `known` or `banned`.
    pub state: String,
    /// Misbehaviour score (ban at 100).
    pub score: u32,
    /// Last time the peer answered or called, unix milliseconds (absent if never).
    pub last_seen: Option<i64>,
    /// Round trip of the last call to the peer, milliseconds (absent if never measured).
    pub latency_ms: Option<u64>,
}

/// The body of `POST /api/v1/peers`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddPeerRequest {
    /// `node_<hex>@host:port` (test networks) or `node_<hex>@<onion>.onion:port`.
    pub endpoint: String,
}

/// The answer of `POST /api/v1/peers`: the dial was queued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PeerQueued {
    /// The peer's id.
    pub node_id: String,
    /// Always true: the maintenance loop dials it next.
    pub queued: bool,
}

/// `POST /pools/{pool_id}/members/{node_id}/remove`: whether the member is banned too (a ban
/// holds no seat and keeps the node from joining again until an Unban).
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveMemberRequest {
    /// Ban the member as well; `false` when absent.
    #[serde(default)]
    pub ban: bool,
}

/// One entry of a node's account (`GET /nodes/{node_id}/ledger`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LedgerLineView {
    /// The posting (`epoch_reward:{e}`, `session:{id}`, `payout_reserve:{payout_id}`, …).
    pub posting_key: String,
    /// `epoch_reward`, `session_revenue`, `payout_reserve`, `payout_release` or
    /// `payout_settle`.
    pub kind: String,
    /// The node's entry, signed (a debit starts with `-`), 6 decimals.
    pub amount: String,
    /// When the posting was applied, unix ms.
    pub created_at: i64,
    /// The posting's memo, if any.
    pub memo: Option<String>,
    /// The node's available balance right after this entry, 6 decimals.
    pub balance_after: String,
}

/// `GET /nodes/{node_id}/ledger`: a page of a node's entries, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LedgerPageView {
    /// `node_…`.
    pub node_id: String,
    /// The entries, newest first (by posting time, then posting key, both descending).
    pub items: Vec<LedgerLineView>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
    /// Whether the entries are the payer's ledger (read on the payer, or from it by a
    /// forwarding node); `false` on a node that keeps its own ledger without a payer.
    pub authoritative: bool,
}

/// `GET /payouts/config`: what a client needs to know before asking for a payout. Amounts are
/// integers in micro-USDT; nothing secret is in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PayoutConfigView {
    /// The smallest gross of a payout (`payouts.minimum_usdt`), micro-USDT.
    pub minimum_micro_usdt: u64,
    /// The largest gross of a payout (`payouts.maximum_usdt`), micro-USDT.
    pub maximum_micro_usdt: u64,
    /// The fee rate in basis points of the gross (a constant: 100).
    pub fee_bps: u32,
    /// The smallest fee, micro-USDT.
    pub fee_min_micro_usdt: u64,
    /// The largest fee, micro-USDT.
    pub fee_max_micro_usdt: u64,
    /// The Lucid network of this node.
    pub network: String,
    /// `payer` (this node pays), `forwarder` (it forwards to `payer_node_id`) or `standalone`
    /// (no payer is known: payouts wait `awaiting_chain` in this node's ledger).
    pub role: String,
    /// The rail this node pays with (`tron`, `ledger_only`), on the payer only.
    pub rail: Option<String>,
    /// The payer's id: this node's on the payer, `payouts.payer_node_id` on a forwarder.
    pub payer_node_id: Option<String>,
}

/// A signed micro-USDT amount as a 6-decimal string (`-` first for a debit).
pub fn signed_amount(micro: i64) -> String {
    let text = lucid_core::MicroUsdt(micro.unsigned_abs()).to_string();
    if micro < 0 { format!("-{text}") } else { text }
}

/// The micro-USDT of a [`signed_amount`] text; `None` for anything else.
pub fn parse_signed_amount(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let micro = i64::try_from(digits.parse::<lucid_core::MicroUsdt>().ok()?.0).ok()?;
    Some(if negative { -micro } else { micro })
}
