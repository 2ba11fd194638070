//! The `LedgerStore` and `PayoutStore` ports (pools-payouts.md §8, T3–T8) and
//! `MemoryPayoutStore`, the in-memory reference of both whose semantics the SQL adapter must
//! match.
//!
//! Why two ports over one store: credits (epoch rewards, session revenue) are posted by the
//! reward and session services, which have no business with payout transitions, while the
//! payout postings (reserve, release, settle) exist only inside a payout transaction. So
//! [`LedgerStore::apply_posting`] accepts credit postings alone and refuses payout postings,
//! which [`PayoutStore`] writes in the same commit as the state change they account for. Both
//! ports are implemented by the same store over one ledger, so a balance read by either is the
//! same number.
//!
//! Every method is one transaction and every state change a compare-and-set on the expected
//! state, so concurrent workers, a cancel and a lease release can race safely: the loser gets
//! [`Error::StateChanged`] or [`Error::AttemptRefused`] and nothing of its change is applied.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use lucid_core::{MicroUsdt, NodeId, UnixMillis};

use crate::error::Error;
use crate::ledger::{Account, Applied, Ledger, NodeBalance, Posting, PostingKind};
use crate::payout::{
    Amounts, DailyCaps, Origin, PayoutLimits, PayoutStatus, Refusal, Replay, payout_id, replay,
    utc_day,
};
use crate::rail::{ChainAddress, SignedTransfer, Txid};

/// The most retries a payout may have (`payouts.max_retries ≤ 5`).
pub const MAX_RETRIES: u32 = 5;
/// The error code of a payout whose solidified SUCCESS receipt lacks the matching Transfer.
pub const CHAIN_MISMATCH: &str = "CHAIN_MISMATCH";

/// A payout row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayoutRecord {
    /// `payout_…`, derived from (node, idempotency key).
    pub payout_id: String,
    /// The node paid.
    pub node: NodeId,
    /// Sweep or withdrawal.
    pub origin: Origin,
    /// `auto:{period}` or `wd:{client key}`.
    pub idempotency_key: String,
    /// Gross, fee and net.
    pub amounts: Amounts,
    /// Destination snapshotted at creation.
    pub to_address: ChainAddress,
    /// Current state.
    pub status: PayoutStatus,
    /// Attempts created so far (signed at least once).
    pub attempt_count: u32,
    /// Retries allowed: at most `1 + max_retries` attempts.
    pub max_retries: u32,
    /// The worker holding the claim (`processing` only).
    pub lease_owner: Option<String>,
    /// When the claim lapses (`processing` only).
    pub lease_until: Option<UnixMillis>,
    /// Machine-readable reason of the last failure or anomaly.
    pub error_code: Option<String>,
    /// Human-readable detail.
    pub error_message: Option<String>,
    /// Creation time.
    pub created_at: UnixMillis,
    /// Last change.
    pub updated_at: UnixMillis,
    /// When the first attempt was signed (daily caps count this day).
    pub first_signed_at: Option<UnixMillis>,
    /// When it became terminal.
    pub completed_at: Option<UnixMillis>,
    /// Signing failures so far ([`Unclaim::SignFailed`]); at the bound the payout fails.
    pub sign_failures: u32,
}

impl PayoutRecord {
    /// Whether another attempt may be created after the current one dies.
    pub fn has_retries_left(&self) -> bool {
        self.attempt_count < 1 + self.max_retries
    }
}

/// The state of one attempt (§5.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttemptStatus {
    /// Committed, maybe broadcast, no broadcast accepted yet.
    Signed,
    /// A broadcast was accepted.
    Sent,
    /// Solidified SUCCESS with the matching Transfer.
    Confirmed,
    /// Solidified failure receipt (REVERT, OUT_OF_ENERGY, …).
    Reverted,
    /// Definitively refused on its first broadcast.
    Rejected,
    /// Proven dead: past expiration + margin and unknown to the chain.
    Expired,
}

impl AttemptStatus {
    /// Every status, in the order of the state machine.
    pub const ALL: [AttemptStatus; 6] = [
        AttemptStatus::Signed,
        AttemptStatus::Sent,
        AttemptStatus::Confirmed,
        AttemptStatus::Reverted,
        AttemptStatus::Rejected,
        AttemptStatus::Expired,
    ];

    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptStatus::Signed => "signed",
            AttemptStatus::Sent => "sent",
            AttemptStatus::Confirmed => "confirmed",
            AttemptStatus::Reverted => "reverted",
            AttemptStatus::Rejected => "rejected",
            AttemptStatus::Expired => "expired",
        }
    }

    /// Whether the attempt may still reach the chain (`signed`, `sent`).
    pub fn is_live(self) -> bool {
        matches!(self, AttemptStatus::Signed | AttemptStatus::Sent)
    }
}

/// An attempt row: the signed bytes are stored before any broadcast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The payout.
    pub payout_id: String,
    /// 1-based.
    pub attempt_no: u32,
    /// The signed transaction.
    pub transfer: SignedTransfer,
    /// Current state.
    pub status: AttemptStatus,
    /// Broadcasts begun (recorded before each broadcast), so that a rejection after an earlier
    /// broadcast with unknown outcome is known to prove nothing, even across a crash.
    pub broadcasts: u32,
    /// First broadcast begun.
    pub broadcast_at: Option<UnixMillis>,
    /// Block of the solidified receipt.
    pub block: Option<u64>,
    /// The refusal or receipt code of a dead attempt.
    pub result_code: Option<String>,
    /// Energy used.
    pub energy_used: Option<u64>,
    /// TRX burned, in sun.
    pub fee_sun: Option<u64>,
    /// Signing time.
    pub created_at: UnixMillis,
}

/// A payout request (T4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPayout {
    /// The node paid.
    pub node: NodeId,
    /// Sweep or withdrawal.
    pub origin: Origin,
    /// The full idempotency key (`auto:…` or `wd:…`).
    pub idempotency_key: String,
    /// Requested gross; `None` = everything available, capped at the maximum.
    pub requested: Option<MicroUsdt>,
    /// The node's current registered payout address, if any.
    pub to_address: Option<ChainAddress>,
    /// The amount limits.
    pub limits: PayoutLimits,
    /// `payouts.max_retries` (≤ 5).
    pub max_retries: u32,
    /// Creation time.
    pub now: UnixMillis,
}

/// What a payout request produced; refusals are verdicts, not failures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateOutcome {
    /// A new payout, its gross reserved.
    Created(PayoutRecord),
    /// The same request again: the original payout.
    Replayed(PayoutRecord),
    /// The key was used with another amount (409 `IDEMPOTENCY_CONFLICT`).
    Conflict(PayoutRecord),
    /// An amount or address rule refused it.
    Refused(Refusal),
}

/// What the creation rules (T4) decide about a request: an answer without writing, or the new
/// pending payout that the store records together with the reservation of its gross.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Creation {
    /// A replay, an idempotency conflict or a refusal: nothing is written.
    Answer(CreateOutcome),
    /// Record this payout and reserve its gross in the same transaction.
    Create(PayoutRecord),
}

/// The creation rules of T4, shared by every `PayoutStore` so that they exist once: `existing`
/// is what the store holds under `id` (the request's [`payout_id`]) and `available` the node's
/// balance, both read inside the transaction that will write the outcome.
pub fn decide_creation(
    request: &NewPayout,
    id: &str,
    existing: Option<&PayoutRecord>,
    available: i64,
) -> Result<Creation, Error> {
    if let Some(existing) = existing {
        let requested = request.requested.unwrap_or(existing.amounts.gross);
        return Ok(Creation::Answer(match replay(existing.amounts.gross, requested) {
            Replay::Same => CreateOutcome::Replayed(existing.clone()),
            Replay::Conflict => CreateOutcome::Conflict(existing.clone()),
        }));
    }
    let Some(to_address) = request.to_address else {
        return Ok(Creation::Answer(CreateOutcome::Refused(Refusal::NoPayoutAddress)));
    };
    if request.max_retries > MAX_RETRIES {
        return Err(Error::InvalidConfig {
            key: "payouts.max_retries",
            value: MicroUsdt(u64::from(request.max_retries)),
            rule: "must be at most 5",
        });
    }
    let available = MicroUsdt(u64::try_from(available).unwrap_or(0));
    let amounts = match Amounts::for_request(request.requested, available, &request.limits) {
        Ok(amounts) => amounts,
        Err(refusal) => return Ok(Creation::Answer(CreateOutcome::Refused(refusal))),
    };
    Ok(Creation::Create(PayoutRecord {
        payout_id: id.to_owned(),
        node: request.node,
        origin: request.origin,
        idempotency_key: request.idempotency_key.clone(),
        amounts,
        to_address,
        status: PayoutStatus::Pending,
        attempt_count: 0,
        max_retries: request.max_retries,
        lease_owner: None,
        lease_until: None,
        error_code: None,
        error_message: None,
        created_at: request.now,
        updated_at: request.now,
        first_signed_at: None,
        completed_at: None,
        sign_failures: 0,
    }))
}

/// A claim of pending payouts (T5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimRequest {
    /// At most this many.
    pub batch_size: u32,
    /// The worker claiming.
    pub lease_owner: String,
    /// When the claims lapse.
    pub lease_until: UnixMillis,
    /// Daily caps over the UTC day of `now`.
    pub caps: DailyCaps,
    /// Claim time.
    pub now: UnixMillis,
}

/// How a live attempt died (T7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptEnd {
    /// Failure receipt, solidified.
    Reverted {
        /// The receipt's result (OUT_OF_ENERGY, REVERT, …).
        code: String,
        /// The block.
        block: u64,
        /// Energy used.
        energy_used: u64,
        /// TRX burned, in sun.
        fee_sun: u64,
    },
    /// Definitive refusal on the attempt's only broadcast.
    Rejected {
        /// The chain's code.
        code: String,
        /// Whether a new attempt may succeed.
        retryable: bool,
    },
    /// Past expiration + dead margin and unknown to the chain.
    Expired,
}

/// A solidified SUCCESS receipt with the matching Transfer (T7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The block.
    pub block: u64,
    /// Energy used.
    pub energy_used: u64,
    /// TRX burned, in sun.
    pub fee_sun: u64,
}

/// What to do with a claim that signed nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unclaim {
    /// Back to `pending` (preflight, transient signing failure).
    Retry {
        /// Why.
        code: String,
    },
    /// Non-retryable (address or amount rule broken): `failed`, reservation released.
    Fail {
        /// Why.
        code: String,
    },
    /// The rail could not sign (nothing was committed or sent): the failure is counted on the
    /// payout, which goes back to `pending` until `max_failures` is reached, then fails with
    /// its reservation released, in the same transaction, so exactly once (§5.7: a signing
    /// error must not retry forever).
    SignFailed {
        /// Why (`SIGNING_FAILED`).
        code: String,
        /// Failures after which the payout fails (≥ 1).
        max_failures: u32,
        /// The rail's error, kept as the payout's `error_message` (never key material).
        message: String,
    },
}

/// How an administrator ends a payout stuck in `CHAIN_MISMATCH` (`POST /payouts/{id}/resolve`,
/// §5.6): the chain shows a successful transaction without the matching Transfer, and only a
/// person who looked at the chain can say whether the node was paid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resolution {
    /// The node was paid: attempt and payout confirmed, `payout_settle` posted.
    Settle,
    /// The node was not paid: attempt ended, payout failed, `payout_release` posted.
    Release,
}

impl Resolution {
    /// Both resolutions.
    pub const ALL: [Resolution; 2] = [Resolution::Settle, Resolution::Release];

    /// The name used on the wire and in the attempt's result code.
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Settle => "settle",
            Resolution::Release => "release",
        }
    }

    /// The result code the resolved attempt keeps.
    pub fn attempt_code(self) -> &'static str {
        match self {
            Resolution::Settle => "RESOLVED_SETTLE",
            Resolution::Release => "RESOLVED_RELEASE",
        }
    }
}

/// The refusal of a resolve for a payout that is not flagged `CHAIN_MISMATCH`.
pub fn refuse_unless_mismatch(payout: &PayoutRecord) -> Result<(), Error> {
    if payout.status == PayoutStatus::Sent && payout.error_code.as_deref() == Some(CHAIN_MISMATCH) {
        Ok(())
    } else {
        Err(Error::AttemptRefused {
            payout_id: payout.payout_id.clone(),
            rule: "only a sent payout flagged CHAIN_MISMATCH can be resolved",
        })
    }
}

/// The persistence port of the ledger's credits (§8 T3): postings applied idempotently by key.
///
/// Semantics of [`Ledger::apply`]: the same key with the same posting is a no-op
/// ([`Applied::AlreadyPosted`]), the same key with a different posting is
/// [`Error::PostingConflict`], and a posting that would overdraw a non-negative account is
/// refused whole ([`Error::Overdraft`]); nothing of a refused posting is written.
#[async_trait]
pub trait LedgerStore: Send + Sync {
    /// Applies a credit posting (epoch reward, session revenue) in one transaction: entries,
    /// account balances and the posting row together. Payout postings are refused
    /// ([`Error::InvalidPosting`]): they are written only with their payout transition.
    async fn apply_posting(&self, posting: &Posting, now: UnixMillis) -> Result<Applied, Error>;

    /// The posting recorded under `key`, if any.
    async fn posting(&self, key: &str) -> Result<Option<Posting>, Error>;

    /// The balance of one account (0 if it never had an entry).
    async fn account_balance(&self, account: &Account) -> Result<i64, Error>;

    /// Every node whose available balance is at least `minimum`, by node id: the candidates of
    /// the automatic sweep.
    async fn nodes_with_available(
        &self,
        minimum: MicroUsdt,
    ) -> Result<Vec<(NodeId, MicroUsdt)>, Error>;

    /// The credits (epoch rewards, session revenue) of `node` posted in `(after, until]` (up to
    /// `until` when `after` is `None`), ordered by (posting time, posting key), at most `limit`:
    /// what a payout stub lists as accrued since the node's previous payout.
    async fn node_credits(
        &self,
        node: &NodeId,
        after: Option<UnixMillis>,
        until: UnixMillis,
        limit: usize,
    ) -> Result<Vec<NodeCredit>, Error>;

    /// The entries of `node`'s account, newest first in the order (posting time, posting key
    /// in byte order) reversed, strictly before `before` when given, at most `limit`; each
    /// with the account's balance right after it (the sum of the account's entries up to and
    /// including it, read in the same statement as the page).
    async fn node_ledger(
        &self,
        node: &NodeId,
        before: Option<&LedgerPosition>,
        limit: usize,
    ) -> Result<Vec<NodeLedgerLine>, Error>;
}

/// A place in a node's ledger: the (posting time, posting key) of one of its entries, where a
/// page of [`LedgerStore::node_ledger`] continues (keys compare by bytes).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LedgerPosition {
    /// When the posting was applied.
    pub posted_at: UnixMillis,
    /// The posting key.
    pub posting_key: String,
}

/// One entry of a node's account, as [`LedgerStore::node_ledger`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLedgerLine {
    /// The posting (`epoch_reward:{e}`, `payout_reserve:{id}`, …).
    pub posting_key: String,
    /// Its kind.
    pub kind: PostingKind,
    /// The signed amount of the node's entry in it (credit > 0, debit < 0), micro-USDT.
    pub amount: i64,
    /// When it was applied.
    pub posted_at: UnixMillis,
    /// The posting's memo, if it has one.
    pub memo: Option<String>,
    /// The node's available balance right after this entry.
    pub balance_after: i64,
}

impl NodeLedgerLine {
    /// Where the page after this line starts.
    pub fn position(&self) -> LedgerPosition {
        LedgerPosition { posted_at: self.posted_at, posting_key: self.posting_key.clone() }
    }
}

/// One credit to a node's account, as [`LedgerStore::node_credits`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeCredit {
    /// The posting (`epoch_reward:{e}`, `session:{id}`).
    pub posting_key: String,
    /// Its kind (a credit kind).
    pub kind: PostingKind,
    /// What the node received in it.
    pub amount: MicroUsdt,
    /// When it was applied.
    pub posted_at: UnixMillis,
}

/// The refusal of a payout posting offered to [`LedgerStore::apply_posting`].
pub fn refuse_payout_posting(posting: &Posting) -> Result<(), Error> {
    if posting.kind().is_credit() {
        Ok(())
    } else {
        Err(Error::InvalidPosting {
            key: posting.key().to_owned(),
            rule: "payout postings are written only with their payout transition",
        })
    }
}

/// The persistence port of payouts: one method per transaction of §8.
#[async_trait]
pub trait PayoutStore: Send + Sync {
    /// T4: idempotency on (node, key), amount rules against the available balance, insert and
    /// `payout_reserve`, all in one transaction.
    async fn create_payout(&self, request: &NewPayout) -> Result<CreateOutcome, Error>;

    /// T5: CAS pending→processing for up to `batch_size` payouts ordered by (created_at,
    /// payout_id), skipping those the daily caps hold back.
    async fn claim(&self, request: &ClaimRequest) -> Result<Vec<PayoutRecord>, Error>;

    /// Processing→pending or →failed (+ `payout_release`) for a claim that signed nothing.
    async fn unclaim(
        &self,
        payout_id: &str,
        lease_owner: &str,
        what: &Unclaim,
        now: UnixMillis,
    ) -> Result<PayoutRecord, Error>;

    /// T6: insert the attempt and CAS processing→signed in one commit; at most one live attempt
    /// per payout, attempt numbers consecutive, txids unique.
    async fn record_signed(
        &self,
        payout_id: &str,
        lease_owner: &str,
        attempt_no: u32,
        transfer: &SignedTransfer,
        now: UnixMillis,
    ) -> Result<AttemptRecord, Error>;

    /// Records that a broadcast of the live attempt `txid` begins; returns the number of
    /// broadcasts begun before this one. Committed before the bytes leave, so a crash cannot
    /// hide an earlier broadcast.
    async fn begin_broadcast(
        &self,
        payout_id: &str,
        txid: &Txid,
        now: UnixMillis,
    ) -> Result<u32, Error>;

    /// CAS attempt signed→sent and payout signed→sent (a repeat for a sent attempt is a no-op).
    async fn mark_sent(
        &self,
        payout_id: &str,
        txid: &Txid,
        now: UnixMillis,
    ) -> Result<PayoutRecord, Error>;

    /// T7: attempt sent→confirmed, payout sent→confirmed and `payout_settle`, in one commit.
    async fn finalize_confirmed(
        &self,
        payout_id: &str,
        txid: &Txid,
        receipt: &Receipt,
        now: UnixMillis,
    ) -> Result<PayoutRecord, Error>;

    /// T7: the live attempt `txid` ends (reverted, rejected, expired); the payout goes back to
    /// pending when retryable with retries left, else to failed with `payout_release`.
    async fn finalize_failed_or_retry(
        &self,
        payout_id: &str,
        txid: &Txid,
        end: &AttemptEnd,
        now: UnixMillis,
    ) -> Result<PayoutRecord, Error>;

    /// SUCCESS without a matching Transfer: the payout stays `sent` with `CHAIN_MISMATCH` and
    /// polling stops until an admin resolves it.
    async fn mark_chain_mismatch(
        &self,
        payout_id: &str,
        txid: &Txid,
        now: UnixMillis,
    ) -> Result<PayoutRecord, Error>;

    /// T7 by an administrator for a payout flagged `CHAIN_MISMATCH` (sent, polling stopped):
    /// its live attempt ends and the payout becomes confirmed with `payout_settle`
    /// ([`Resolution::Settle`]) or failed with `payout_release` ([`Resolution::Release`]), in
    /// one commit. Any other payout is refused ([`Error::AttemptRefused`]) and nothing changes.
    async fn resolve_chain_mismatch(
        &self,
        payout_id: &str,
        resolution: Resolution,
        now: UnixMillis,
    ) -> Result<PayoutRecord, Error>;

    /// T8: CAS pending→cancelled and `payout_release`.
    async fn cancel(&self, payout_id: &str, now: UnixMillis) -> Result<PayoutRecord, Error>;

    /// Processing with `lease_until ≤ now` → pending (nothing was signed); returns their ids.
    async fn release_expired_leases(&self, now: UnixMillis) -> Result<Vec<String>, Error>;

    /// One payout.
    async fn get(&self, payout_id: &str) -> Result<PayoutRecord, Error>;

    /// Payouts in `status` (every status if `None`), ordered by (created_at, payout_id).
    async fn list(&self, status: Option<PayoutStatus>) -> Result<Vec<PayoutRecord>, Error>;

    /// A payout's attempts by number.
    async fn attempts(&self, payout_id: &str) -> Result<Vec<AttemptRecord>, Error>;

    /// A node's balance view.
    async fn balance(&self, node: &NodeId) -> Result<NodeBalance, Error>;
}

#[derive(Debug, Default)]
struct State {
    payouts: BTreeMap<String, PayoutRecord>,
    attempts: BTreeMap<String, Vec<AttemptRecord>>,
    ledger: Ledger,
    /// When each posting was applied (`LedgerStore::apply_posting`'s `now`, the `now` of the
    /// payout transition that wrote it; 0 for [`MemoryPayoutStore::post`]), as the SQL store's
    /// `ledger_postings.created_at`.
    posted_at: BTreeMap<String, UnixMillis>,
}

impl State {
    fn payout(&self, payout_id: &str) -> Result<&PayoutRecord, Error> {
        self.payouts
            .get(payout_id)
            .ok_or_else(|| Error::PayoutNotFound { payout_id: payout_id.to_owned() })
    }

    fn require(&self, payout_id: &str, expected: &[PayoutStatus]) -> Result<&PayoutRecord, Error> {
        let payout = self.payout(payout_id)?;
        if expected.contains(&payout.status) {
            Ok(payout)
        } else {
            Err(Error::StateChanged {
                payout_id: payout_id.to_owned(),
                expected: expected.first().copied().unwrap_or(payout.status),
                found: payout.status,
            })
        }
    }

    /// Index of the live attempt with `txid`.
    fn live_attempt(&self, payout_id: &str, txid: &Txid) -> Result<usize, Error> {
        let refused = |rule| Error::AttemptRefused { payout_id: payout_id.to_owned(), rule };
        let attempts = self.attempts.get(payout_id).ok_or(refused("the payout has no attempt"))?;
        let index = attempts
            .iter()
            .position(|attempt| attempt.transfer.txid == *txid)
            .ok_or(refused("no attempt has this txid"))?;
        if attempts[index].status.is_live() {
            Ok(index)
        } else {
            Err(refused("the attempt is no longer live"))
        }
    }

    fn set_status(
        &mut self,
        payout_id: &str,
        to: PayoutStatus,
        now: UnixMillis,
    ) -> Result<(), Error> {
        let payout = self
            .payouts
            .get_mut(payout_id)
            .ok_or_else(|| Error::PayoutNotFound { payout_id: payout_id.to_owned() })?;
        payout.status = payout.status.transition(to)?;
        payout.updated_at = now;
        if to != PayoutStatus::Processing {
            payout.lease_owner = None;
            payout.lease_until = None;
        }
        if to.is_terminal() {
            payout.completed_at = Some(now);
        }
        Ok(())
    }

    fn release(&mut self, payout_id: &str, now: UnixMillis) -> Result<(), Error> {
        let payout = self.payout(payout_id)?;
        let posting = Posting::payout_release(payout_id, payout.node, payout.amounts.gross)?;
        self.apply(&posting, now)?;
        Ok(())
    }

    /// Applies `posting` to the ledger and dates it `now` if it is new.
    fn apply(&mut self, posting: &Posting, now: UnixMillis) -> Result<Applied, Error> {
        let applied = self.ledger.apply(posting)?;
        if applied == Applied::Posted {
            self.posted_at.insert(posting.key().to_owned(), now);
        }
        Ok(applied)
    }

    fn signed_today(&self, day: i64, node: &NodeId) -> (u32, u32) {
        let mut all = 0u32;
        let mut for_node = 0u32;
        for payout in self.payouts.values() {
            // A claim not yet signed will most likely be signed today: count it, so that
            // concurrent claims cannot overshoot the cap.
            let counts = match payout.first_signed_at {
                Some(at) => utc_day(at) == day,
                None => payout.status == PayoutStatus::Processing,
            };
            if counts {
                all = all.saturating_add(1);
                if payout.node == *node {
                    for_node = for_node.saturating_add(1);
                }
            }
        }
        (all, for_node)
    }
}

/// The in-memory payout store: one mutex around payouts, attempts and the ledger, so every
/// method is one atomic transaction. It stands in for the database in tests (it survives a
/// dropped processor, as a database survives a crashed process).
#[derive(Debug, Default)]
pub struct MemoryPayoutStore {
    state: Mutex<State>,
}

impl MemoryPayoutStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self, action: &'static str) -> Result<MutexGuard<'_, State>, Error> {
        // A poisoned lock means a panic inside a transaction: refuse rather than trust it.
        self.state
            .lock()
            .map_err(|_| Error::StoreUnavailable { action, message: "lock poisoned".to_owned() })
    }

    /// Posts a credit (epoch reward, session revenue) into the store's ledger, dated 0.
    pub fn post(&self, posting: &Posting) -> Result<(), Error> {
        self.credit(posting, UnixMillis(0))?;
        Ok(())
    }

    fn credit(&self, posting: &Posting, now: UnixMillis) -> Result<Applied, Error> {
        self.lock("posting")?.apply(posting, now)
    }

    /// A copy of the ledger.
    pub fn ledger(&self) -> Result<Ledger, Error> {
        Ok(self.lock("reading the ledger")?.ledger.clone())
    }

    /// Audits the store: the ledger audit, at most one live attempt per payout, attempts
    /// consecutive and only the last one live, and every payout's reservation held, settled or
    /// released exactly as its status says.
    pub fn audit(&self) -> Result<(), String> {
        let state = self.state.lock().map_err(|_| "lock poisoned".to_owned())?;
        state.ledger.audit()?;
        for payout in state.payouts.values() {
            let id = &payout.payout_id;
            let attempts = state.attempts.get(id).map(Vec::as_slice).unwrap_or_default();
            let live = attempts.iter().filter(|a| a.status.is_live()).count();
            if live > 1 {
                return Err(format!("{id} has {live} live attempts"));
            }
            for (index, attempt) in attempts.iter().enumerate() {
                if usize::try_from(attempt.attempt_no).ok() != Some(index + 1) {
                    return Err(format!("{id} attempts are not consecutive"));
                }
                if attempt.status.is_live() && index + 1 != attempts.len() {
                    return Err(format!("{id} has a live attempt that is not the last"));
                }
            }
            if usize::try_from(payout.attempt_count).ok() != Some(attempts.len()) {
                return Err(format!("{id} attempt_count differs from its attempts"));
            }
            let posted = |kind: &str| state.ledger.posting(&format!("{kind}:{id}")).is_some();
            let (reserved, settled, released) =
                (posted("payout_reserve"), posted("payout_settle"), posted("payout_release"));
            let expected = match payout.status {
                PayoutStatus::Confirmed => (true, true, false),
                PayoutStatus::Failed | PayoutStatus::Cancelled => (true, false, true),
                _ => (true, false, false),
            };
            if (reserved, settled, released) != expected {
                return Err(format!("{id} is {} but its postings disagree", payout.status));
            }
            let has_live = live == 1;
            let should_have_live =
                matches!(payout.status, PayoutStatus::Signed | PayoutStatus::Sent);
            if has_live != should_have_live {
                return Err(format!("{id} is {} with {live} live attempts", payout.status));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl PayoutStore for MemoryPayoutStore {
    async fn create_payout(&self, request: &NewPayout) -> Result<CreateOutcome, Error> {
        let mut state = self.lock("creating a payout")?;
        let id = payout_id(&request.node, &request.idempotency_key);
        // The balance is read inside the same transaction that reserves it (T4).
        let available = state.ledger.balance(&Account::Node(request.node));
        let record = match decide_creation(request, &id, state.payouts.get(&id), available)? {
            Creation::Answer(outcome) => return Ok(outcome),
            Creation::Create(record) => record,
        };
        let reserve = Posting::payout_reserve(&id, request.node, record.amounts.gross)?;
        state.apply(&reserve, request.now)?;
        state.payouts.insert(id, record.clone());
        Ok(CreateOutcome::Created(record))
    }

    async fn claim(&self, request: &ClaimRequest) -> Result<Vec<PayoutRecord>, Error> {
        let mut state = self.lock("claiming payouts")?;
        let mut pending: Vec<(UnixMillis, String)> = state
            .payouts
            .values()
            .filter(|p| p.status == PayoutStatus::Pending)
            .map(|p| (p.created_at, p.payout_id.clone()))
            .collect();
        pending.sort();
        let day = utc_day(request.now);
        let mut claimed = Vec::new();
        for (_, id) in pending {
            if claimed.len() >= usize::try_from(request.batch_size).unwrap_or(usize::MAX) {
                break;
            }
            let payout = state.payout(&id)?;
            // A retry was counted on the day of its first signed attempt; only a payout that was
            // never signed needs room under today's caps.
            if payout.first_signed_at.is_none() {
                let (all, for_node) = state.signed_today(day, &payout.node);
                if !request.caps.allows(all, for_node) {
                    continue;
                }
            }
            state.set_status(&id, PayoutStatus::Processing, request.now)?;
            let payout = state
                .payouts
                .get_mut(&id)
                .ok_or_else(|| Error::PayoutNotFound { payout_id: id.clone() })?;
            payout.lease_owner = Some(request.lease_owner.clone());
            payout.lease_until = Some(request.lease_until);
            claimed.push(payout.clone());
        }
        Ok(claimed)
    }

    async fn unclaim(
        &self,
        payout_id: &str,
        lease_owner: &str,
        what: &Unclaim,
        now: UnixMillis,
    ) -> Result<PayoutRecord, Error> {
        let mut state = self.lock("returning a claim")?;
        let payout = state.require(payout_id, &[PayoutStatus::Processing])?;
        if payout.lease_owner.as_deref() != Some(lease_owner) {
            return Err(Error::StateChanged {
                payout_id: payout_id.to_owned(),
                expected: PayoutStatus::Processing,
                found: payout.status,
            });
        }
        let code = match what {
            Unclaim::Retry { code } => {
                state.set_status(payout_id, PayoutStatus::Pending, now)?;
                code
            }
            Unclaim::Fail { code } => {
                state.release(payout_id, now)?;
                state.set_status(payout_id, PayoutStatus::Failed, now)?;
                code
            }
            Unclaim::SignFailed { code, max_failures, message } => {
                let failures = payout.sign_failures.saturating_add(1);
                if failures >= *max_failures {
                    state.release(payout_id, now)?;
                    state.set_status(payout_id, PayoutStatus::Failed, now)?;
                } else {
                    state.set_status(payout_id, PayoutStatus::Pending, now)?;
                }
                if let Some(payout) = state.payouts.get_mut(payout_id) {
                    payout.sign_failures = failures;
                    payout.error_message = Some(message.clone());
                }
                code
            }
        };
        let payout = state
            .payouts
            .get_mut(payout_id)
            .ok_or_else(|| Error::PayoutNotFound { payout_id: payout_id.to_owned() })?;
        payout.error_code = Some(code.clone());
        Ok(payout.clone())
    }

    async fn record_signed(
        &self,
        payout_id: &str,
        lease_owner: &str,
        attempt_no: u32,
        transfer: &SignedTransfer,
        now: UnixMillis,
    ) -> Result<AttemptRecord, Error> {
        let mut state = self.lock("recording a signed attempt")?;
        let payout = state.require(payout_id, &[PayoutStatus::Processing])?;
        let refused = |rule| Error::AttemptRefused { payout_id: payout_id.to_owned(), rule };
        if payout.lease_owner.as_deref() != Some(lease_owner) {
            return Err(Error::StateChanged {
                payout_id: payout_id.to_owned(),
                expected: PayoutStatus::Processing,
                found: payout.status,
            });
        }
        if attempt_no != payout.attempt_count.saturating_add(1) {
            return Err(refused("attempt numbers must be consecutive"));
        }
        if !payout.has_retries_left() {
            return Err(refused("no retries left"));
        }
        let attempts = state.attempts.get(payout_id).map(Vec::as_slice).unwrap_or_default();
        if attempts.iter().any(|a| a.status.is_live()) {
            return Err(refused("a live attempt exists"));
        }
        let txid_used =
            state.attempts.values().flatten().any(|attempt| attempt.transfer.txid == transfer.txid);
        if txid_used {
            return Err(refused("the txid is already recorded"));
        }
        state.set_status(payout_id, PayoutStatus::Signed, now)?;
        let payout = state
            .payouts
            .get_mut(payout_id)
            .ok_or_else(|| Error::PayoutNotFound { payout_id: payout_id.to_owned() })?;
        payout.attempt_count = attempt_no;
        payout.first_signed_at.get_or_insert(now);
        payout.error_code = None;
        payout.error_message = None;
        let attempt = AttemptRecord {
            payout_id: payout_id.to_owned(),
            attempt_no,
            transfer: transfer.clone(),
            status: AttemptStatus::Signed,
            broadcasts: 0,
            broadcast_at: None,
            block: None,
            result_code: None,
            energy_used: None,
            fee_sun: None,
            created_at: now,
        };
        state.attempts.entry(payout_id.to_owned()).or_default().push(attempt.clone());
        Ok(attempt)
    }

    async fn begin_broadcast(
        &self,
        payout_id: &str,
        txid: &Txid,
        now: UnixMillis,
    ) -> Result<u32, Error> {
        let mut state = self.lock("recording a broadcast")?;
        state.require(payout_id, &[PayoutStatus::Signed, PayoutStatus::Sent])?;
        let index = state.live_attempt(payout_id, txid)?;
        let attempt = state
            .attempts
            .get_mut(payout_id)
            .and_then(|attempts| attempts.get_mut(index))
            .ok_or_else(|| Error::PayoutNotFound { payout_id: payout_id.to_owned() })?;
        let before = attempt.broadcasts;
        attempt.broadcasts = before.saturating_add(1);
        attempt.broadcast_at.get_or_insert(now);
        Ok(before)
    }

    async fn mark_sent(
        &self,
        payout_id: &str,
        txid: &Txid,
        now: UnixMillis,
    ) -> Result<PayoutRecord, Error> {
        let mut state = self.lock("marking a payout sent")?;
        let payout = state.require(payout_id, &[PayoutStatus::Signed, PayoutStatus::Sent])?;
        let already_sent = payout.status == PayoutStatus::Sent;
        let index = state.live_attempt(payout_id, txid)?;
        if already_sent {
            return state.payout(payout_id).cloned();
        }
        if let Some(attempt) = state.attempts.get_mut(payout_id).and_then(|a| a.get_mut(index)) {
            attempt.status = AttemptStatus::Sent;
        }
        state.set_status(payout_id, PayoutStatus::Sent, now)?;
        state.payout(payout_id).cloned()
    }

    async fn finalize_confirmed(
        &self,
        payout_id: &str,
        txid: &Txid,
        receipt: &Receipt,
        now: UnixMillis,
    ) -> Result<PayoutRecord, Error> {
        let mut state = self.lock("confirming a payout")?;
        let payout = state.require(payout_id, &[PayoutStatus::Sent])?;
        let amounts = payout.amounts;
        let index = state.live_attempt(payout_id, txid)?;
        let settle = Posting::payout_settle(payout_id, amounts.net, amounts.fee)?;
        state.apply(&settle, now)?;
        if let Some(attempt) = state.attempts.get_mut(payout_id).and_then(|a| a.get_mut(index)) {
            attempt.status = AttemptStatus::Confirmed;
            attempt.block = Some(receipt.block);
            attempt.energy_used = Some(receipt.energy_used);
            attempt.fee_sun = Some(receipt.fee_sun);
            attempt.result_code = Some("SUCCESS".to_owned());
        }
        state.set_status(payout_id, PayoutStatus::Confirmed, now)?;
        state.payout(payout_id).cloned()
    }

    async fn finalize_failed_or_retry(
        &self,
        payout_id: &str,
        txid: &Txid,
        end: &AttemptEnd,
        now: UnixMillis,
    ) -> Result<PayoutRecord, Error> {
        let mut state = self.lock("ending an attempt")?;
        let payout = state.require(payout_id, &[PayoutStatus::Signed, PayoutStatus::Sent])?;
        let retries_left = payout.has_retries_left();
        let index = state.live_attempt(payout_id, txid)?;
        let refused = |rule| Error::AttemptRefused { payout_id: payout_id.to_owned(), rule };
        let attempt = state
            .attempts
            .get(payout_id)
            .and_then(|a| a.get(index))
            .ok_or(refused("no attempt"))?;
        let (status, code, retryable) = match end {
            AttemptEnd::Reverted { code, .. } => {
                if attempt.status != AttemptStatus::Sent {
                    return Err(refused("only a sent attempt can revert"));
                }
                (AttemptStatus::Reverted, code.clone(), true)
            }
            AttemptEnd::Rejected { code, retryable } => {
                // Only a refusal of the one and only broadcast proves the bytes never landed.
                if attempt.status != AttemptStatus::Signed || attempt.broadcasts != 1 {
                    return Err(refused("a rejection proves nothing after another broadcast"));
                }
                (AttemptStatus::Rejected, code.clone(), *retryable)
            }
            AttemptEnd::Expired => (AttemptStatus::Expired, "EXPIRED".to_owned(), true),
        };
        let to =
            if retryable && retries_left { PayoutStatus::Pending } else { PayoutStatus::Failed };
        if to == PayoutStatus::Failed {
            state.release(payout_id, now)?;
        }
        if let Some(attempt) = state.attempts.get_mut(payout_id).and_then(|a| a.get_mut(index)) {
            attempt.status = status;
            attempt.result_code = Some(code.clone());
            if let AttemptEnd::Reverted { block, energy_used, fee_sun, .. } = end {
                attempt.block = Some(*block);
                attempt.energy_used = Some(*energy_used);
                attempt.fee_sun = Some(*fee_sun);
            }
        }
        state.set_status(payout_id, to, now)?;
        let payout = state
            .payouts
            .get_mut(payout_id)
            .ok_or_else(|| Error::PayoutNotFound { payout_id: payout_id.to_owned() })?;
        payout.error_code = Some(code);
        Ok(payout.clone())
    }

    async fn mark_chain_mismatch(
        &self,
        payout_id: &str,
        txid: &Txid,
        now: UnixMillis,
    ) -> Result<PayoutRecord, Error> {
        let mut state = self.lock("flagging a chain mismatch")?;
        state.require(payout_id, &[PayoutStatus::Sent])?;
        state.live_attempt(payout_id, txid)?;
        let payout = state
            .payouts
            .get_mut(payout_id)
            .ok_or_else(|| Error::PayoutNotFound { payout_id: payout_id.to_owned() })?;
        payout.error_code = Some(CHAIN_MISMATCH.to_owned());
        payout.error_message =
            Some("solidified SUCCESS without the matching Transfer log".to_owned());
        payout.updated_at = now;
        Ok(payout.clone())
    }

    async fn resolve_chain_mismatch(
        &self,
        payout_id: &str,
        resolution: Resolution,
        now: UnixMillis,
    ) -> Result<PayoutRecord, Error> {
        let mut state = self.lock("resolving a chain mismatch")?;
        let payout = state.payout(payout_id)?;
        refuse_unless_mismatch(payout)?;
        let amounts = payout.amounts;
        let index = state
            .attempts
            .get(payout_id)
            .and_then(|attempts| attempts.iter().position(|a| a.status.is_live()))
            .ok_or_else(|| Error::AttemptRefused {
                payout_id: payout_id.to_owned(),
                rule: "the payout has no live attempt",
            })?;
        let (attempt_status, payout_status) = match resolution {
            Resolution::Settle => {
                let settle = Posting::payout_settle(payout_id, amounts.net, amounts.fee)?;
                state.apply(&settle, now)?;
                (AttemptStatus::Confirmed, PayoutStatus::Confirmed)
            }
            Resolution::Release => {
                state.release(payout_id, now)?;
                (AttemptStatus::Reverted, PayoutStatus::Failed)
            }
        };
        if let Some(attempt) = state.attempts.get_mut(payout_id).and_then(|a| a.get_mut(index)) {
            attempt.status = attempt_status;
            attempt.result_code = Some(resolution.attempt_code().to_owned());
        }
        state.set_status(payout_id, payout_status, now)?;
        let payout = state
            .payouts
            .get_mut(payout_id)
            .ok_or_else(|| Error::PayoutNotFound { payout_id: payout_id.to_owned() })?;
        payout.error_message =
            Some(format!("resolved by an administrator: {}", resolution.as_str()));
        Ok(payout.clone())
    }

    async fn cancel(&self, payout_id: &str, now: UnixMillis) -> Result<PayoutRecord, Error> {
        let mut state = self.lock("cancelling a payout")?;
        state.require(payout_id, &[PayoutStatus::Pending])?;
        state.release(payout_id, now)?;
        state.set_status(payout_id, PayoutStatus::Cancelled, now)?;
        state.payout(payout_id).cloned()
    }

    async fn release_expired_leases(&self, now: UnixMillis) -> Result<Vec<String>, Error> {
        let mut state = self.lock("releasing expired leases")?;
        let expired: Vec<String> = state
            .payouts
            .values()
            .filter(|p| p.status == PayoutStatus::Processing)
            .filter(|p| p.lease_until.is_none_or(|until| until <= now))
            .map(|p| p.payout_id.clone())
            .collect();
        for id in &expired {
            state.set_status(id, PayoutStatus::Pending, now)?;
        }
        Ok(expired)
    }

    async fn get(&self, payout_id: &str) -> Result<PayoutRecord, Error> {
        self.lock("reading a payout")?.payout(payout_id).cloned()
    }

    async fn list(&self, status: Option<PayoutStatus>) -> Result<Vec<PayoutRecord>, Error> {
        let state = self.lock("listing payouts")?;
        let mut payouts: Vec<PayoutRecord> = state
            .payouts
            .values()
            .filter(|p| status.is_none_or(|s| p.status == s))
            .cloned()
            .collect();
        payouts.sort_by(|a, b| (a.created_at, &a.payout_id).cmp(&(b.created_at, &b.payout_id)));
        Ok(payouts)
    }

    async fn attempts(&self, payout_id: &str) -> Result<Vec<AttemptRecord>, Error> {
        let state = self.lock("reading attempts")?;
        state.payout(payout_id)?;
        Ok(state.attempts.get(payout_id).cloned().unwrap_or_default())
    }

    async fn balance(&self, node: &NodeId) -> Result<NodeBalance, Error> {
        Ok(self.lock("reading a balance")?.ledger.node_balance(node))
    }
}

#[async_trait]
impl LedgerStore for MemoryPayoutStore {
    async fn apply_posting(&self, posting: &Posting, now: UnixMillis) -> Result<Applied, Error> {
        refuse_payout_posting(posting)?;
        self.credit(posting, now)
    }

    async fn node_credits(
        &self,
        node: &NodeId,
        after: Option<UnixMillis>,
        until: UnixMillis,
        limit: usize,
    ) -> Result<Vec<NodeCredit>, Error> {
        let state = self.lock("listing credits")?;
        let mut credits: Vec<NodeCredit> = state
            .ledger
            .postings()
            .filter(|posting| posting.kind().is_credit())
            .filter_map(|posting| {
                let posted_at = state.posted_at.get(posting.key()).copied()?;
                let amount = u64::try_from(posting.amount_for(&Account::Node(*node))).ok()?;
                let in_range = after.is_none_or(|after| posted_at > after) && posted_at <= until;
                (amount > 0 && in_range).then(|| NodeCredit {
                    posting_key: posting.key().to_owned(),
                    kind: posting.kind(),
                    amount: MicroUsdt(amount),
                    posted_at,
                })
            })
            .collect();
        credits.sort_by(|a, b| (a.posted_at, &a.posting_key).cmp(&(b.posted_at, &b.posting_key)));
        credits.truncate(limit);
        Ok(credits)
    }

    async fn posting(&self, key: &str) -> Result<Option<Posting>, Error> {
        Ok(self.lock("reading a posting")?.ledger.posting(key).cloned())
    }

    async fn node_ledger(
        &self,
        node: &NodeId,
        before: Option<&LedgerPosition>,
        limit: usize,
    ) -> Result<Vec<NodeLedgerLine>, Error> {
        let state = self.lock("reading a node's ledger")?;
        let account = Account::Node(*node);
        let mut lines: Vec<NodeLedgerLine> = state
            .ledger
            .postings()
            .filter_map(|posting| {
                let amount = posting.amount_for(&account);
                (amount != 0).then(|| NodeLedgerLine {
                    posting_key: posting.key().to_owned(),
                    kind: posting.kind(),
                    amount,
                    posted_at: state.posted_at.get(posting.key()).copied().unwrap_or(UnixMillis(0)),
                    memo: None,
                    balance_after: 0,
                })
            })
            .collect();
        // `String` orders by bytes, as the SQL stores order keys.
        lines.sort_by(|a, b| (a.posted_at, &a.posting_key).cmp(&(b.posted_at, &b.posting_key)));
        let mut balance = 0i64;
        for line in &mut lines {
            balance = balance.saturating_add(line.amount);
            line.balance_after = balance;
        }
        Ok(lines
            .into_iter()
            .rev()
            .filter(|line| before.is_none_or(|before| line.position() < *before))
            .take(limit)
            .collect())
    }

    async fn account_balance(&self, account: &Account) -> Result<i64, Error> {
        Ok(self.lock("reading a balance")?.ledger.balance(account))
    }

    async fn nodes_with_available(
        &self,
        minimum: MicroUsdt,
    ) -> Result<Vec<(NodeId, MicroUsdt)>, Error> {
        let state = self.lock("listing balances")?;
        Ok(state
            .ledger
            .balances()
            .filter_map(|(account, balance)| match account {
                Account::Node(node) => {
                    let available = MicroUsdt(u64::try_from(balance).ok()?);
                    (available >= minimum).then_some((node, available))
                }
                _ => None,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests;
