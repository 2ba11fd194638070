//! The money metrics of `daemon.md` §4: `lucid_ledger_postings_total{kind}`,
//! `lucid_payouts_total{status}`, `lucid_payout_gross_micro`, `lucid_payout_circuit_open`, and on
//! the payer `lucid_hot_wallet_usdt_micro` / `lucid_hot_wallet_trx_sun` as the processor last
//! read them from the rail (`PayoutRail::hot_wallet`). The two wallet gauges are absent until a
//! read succeeded and on a node without a wallet: a made-up 0 would mislead.
//!
//! The counters move where the money moves: [`CountingPayoutStore`] and [`CountingLedger`]
//! wrap the node's `PayoutStore` and `LedgerStore` ports and count what each committed call
//! did (a posting written, a payout entering a status), so every path that writes money
//! (HTTP, gRPC, the sweep, the processor, the reward service) is counted once, in one place.
//! A call that fails or replays (an idempotent repeat) counts nothing.
//!
//! Labels are bounded: a posting kind or a payout status, never an id. Amounts are integer
//! micro-USDT; no float is involved, the histogram's sum included.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use lucid_core::{MicroUsdt, NodeId, UnixMillis};
use lucid_payouts::Error;
use lucid_payouts::ledger::{Account, Applied, NodeBalance, Posting, PostingKind};
use lucid_payouts::payout::PayoutStatus;
use lucid_payouts::rail::{SignedTransfer, Txid};
use lucid_payouts::store::{
    AttemptEnd, AttemptRecord, ClaimRequest, CreateOutcome, LedgerStore, NewPayout, NodeCredit,
    PayoutRecord, PayoutStore, Receipt, Resolution, Unclaim,
};

/// Upper bounds of the `lucid_payout_gross_micro` buckets: 10, 50, 100, 500, 1 000 and
/// 10 000 USDT, in micro-USDT.
pub const GROSS_BUCKETS_MICRO: [u64; 6] =
    [10_000_000, 50_000_000, 100_000_000, 500_000_000, 1_000_000_000, 10_000_000_000];

/// The money counters of one node process.
#[derive(Debug, Default)]
pub struct MoneyMetrics {
    /// Postings written, by [`PostingKind::ALL`] index.
    postings: [AtomicU64; PostingKind::ALL.len()],
    /// Payouts that entered a status, by [`PayoutStatus::ALL`] index.
    payouts: [AtomicU64; PayoutStatus::ALL.len()],
    /// Created payouts per gross bucket (not cumulative; summed when rendered).
    gross_buckets: [AtomicU64; GROSS_BUCKETS_MICRO.len()],
    /// Created payouts.
    gross_count: AtomicU64,
    /// Σ gross of created payouts, micro-USDT (saturating).
    gross_sum: AtomicU64,
    /// The processor's circuit is open (0/1).
    circuit_open: AtomicU64,
    /// The hot wallet's USDT (micro) and TRX (sun), with whether they were ever read.
    hot_wallet: std::sync::Mutex<Option<lucid_payouts::rail::HotWallet>>,
}

fn index_of<T: PartialEq + Copy>(all: &[T], item: T) -> usize {
    all.iter().position(|candidate| *candidate == item).unwrap_or(0)
}

impl MoneyMetrics {
    /// Every counter at zero.
    pub fn new() -> Self {
        MoneyMetrics::default()
    }

    /// One posting of `kind` was written.
    pub fn posted(&self, kind: PostingKind) {
        self.postings[index_of(&PostingKind::ALL, kind)].fetch_add(1, Ordering::Relaxed);
    }

    /// One payout entered `status`.
    pub fn entered(&self, status: PayoutStatus) {
        self.payouts[index_of(&PayoutStatus::ALL, status)].fetch_add(1, Ordering::Relaxed);
    }

    /// A payout of `gross` was created.
    pub fn created(&self, gross: MicroUsdt) {
        if let Some(bucket) = GROSS_BUCKETS_MICRO.iter().position(|bound| gross.0 <= *bound) {
            self.gross_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.gross_count.fetch_add(1, Ordering::Relaxed);
        // Saturating: a counter that stops is better than one that wraps to a small number.
        let _ = self.gross_sum.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |sum| {
            Some(sum.saturating_add(gross.0))
        });
    }

    /// The hot wallet's balances as last read (`None`: never read, or no wallet).
    pub fn set_hot_wallet(&self, wallet: Option<lucid_payouts::rail::HotWallet>) {
        *self.hot_wallet.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = wallet;
    }

    /// The processor's circuit opened or closed.
    pub fn set_circuit_open(&self, open: bool) {
        self.circuit_open.store(u64::from(open), Ordering::Relaxed);
    }

    /// The counters of a payout transition's outcome: the status entered and the posting it
    /// wrote with it (a release on failed or cancelled, a settle on confirmed).
    fn transition(&self, record: &PayoutRecord) {
        self.entered(record.status);
        match record.status {
            PayoutStatus::Confirmed => self.posted(PostingKind::PayoutSettle),
            PayoutStatus::Failed | PayoutStatus::Cancelled => {
                self.posted(PostingKind::PayoutRelease);
            }
            _ => {}
        }
    }

    /// The Prometheus text of the money metrics.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP lucid_ledger_postings_total Ledger postings written, by kind.\n");
        out.push_str("# TYPE lucid_ledger_postings_total counter\n");
        for (kind, count) in PostingKind::ALL.iter().zip(&self.postings) {
            let _ = writeln!(
                out,
                "lucid_ledger_postings_total{{kind=\"{}\"}} {}",
                kind.as_str(),
                count.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP lucid_payouts_total Payouts that entered a status, by status.\n");
        out.push_str("# TYPE lucid_payouts_total counter\n");
        for (status, count) in PayoutStatus::ALL.iter().zip(&self.payouts) {
            let _ = writeln!(
                out,
                "lucid_payouts_total{{status=\"{}\"}} {}",
                status.as_str(),
                count.load(Ordering::Relaxed)
            );
        }
        out.push_str(
            "# HELP lucid_payout_gross_micro Gross of created payouts, micro-USDT.\n\
             # TYPE lucid_payout_gross_micro histogram\n",
        );
        let mut cumulative = 0u64;
        for (bound, count) in GROSS_BUCKETS_MICRO.iter().zip(&self.gross_buckets) {
            cumulative = cumulative.saturating_add(count.load(Ordering::Relaxed));
            let _ = writeln!(out, "lucid_payout_gross_micro_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.gross_count.load(Ordering::Relaxed);
        let _ = writeln!(out, "lucid_payout_gross_micro_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "lucid_payout_gross_micro_sum {}",
            self.gross_sum.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "lucid_payout_gross_micro_count {count}");
        let _ = writeln!(
            out,
            "# HELP lucid_payout_circuit_open Whether the payout circuit is open.\n\
             # TYPE lucid_payout_circuit_open gauge\nlucid_payout_circuit_open {}",
            self.circuit_open.load(Ordering::Relaxed)
        );
        let wallet = *self.hot_wallet.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(wallet) = wallet {
            let _ = writeln!(
                out,
                "# HELP lucid_hot_wallet_usdt_micro The payer's hot wallet USDT, micro-USDT.\n\
                 # TYPE lucid_hot_wallet_usdt_micro gauge\nlucid_hot_wallet_usdt_micro {}\n\
                 # HELP lucid_hot_wallet_trx_sun The payer's hot wallet TRX, sun.\n\
                 # TYPE lucid_hot_wallet_trx_sun gauge\nlucid_hot_wallet_trx_sun {}",
                wallet.usdt.0, wallet.trx_sun
            );
        }
        out
    }
}

/// The node's `PayoutStore` with every committed transition counted in [`MoneyMetrics`].
pub struct CountingPayoutStore {
    inner: Arc<dyn PayoutStore>,
    metrics: Arc<MoneyMetrics>,
}

impl CountingPayoutStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn PayoutStore>, metrics: Arc<MoneyMetrics>) -> Self {
        CountingPayoutStore { inner, metrics }
    }
}

#[async_trait]
impl PayoutStore for CountingPayoutStore {
    async fn create_payout(&self, request: &NewPayout) -> Result<CreateOutcome, Error> {
        let outcome = self.inner.create_payout(request).await?;
        if let CreateOutcome::Created(record) = &outcome {
            self.metrics.entered(PayoutStatus::Pending);
            self.metrics.posted(PostingKind::PayoutReserve);
            self.metrics.created(record.amounts.gross);
        }
        Ok(outcome)
    }

    async fn claim(&self, request: &ClaimRequest) -> Result<Vec<PayoutRecord>, Error> {
        let claimed = self.inner.claim(request).await?;
        for record in &claimed {
            self.metrics.transition(record);
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
        let record = self.inner.unclaim(payout_id, lease_owner, what, now).await?;
        self.metrics.transition(&record);
        Ok(record)
    }

    async fn record_signed(
        &self,
        payout_id: &str,
        lease_owner: &str,
        attempt_no: u32,
        transfer: &SignedTransfer,
        now: UnixMillis,
    ) -> Result<AttemptRecord, Error> {
        let attempt =
            self.inner.record_signed(payout_id, lease_owner, attempt_no, transfer, now).await?;
        self.metrics.entered(PayoutStatus::Signed);
        Ok(attempt)
    }

    async fn begin_broadcast(
        &self,
        payout_id: &str,
        txid: &Txid,
        now: UnixMillis,
    ) -> Result<u32, Error> {
        self.inner.begin_broadcast(payout_id, txid, now).await
    }

    async fn mark_sent(
        &self,
        payout_id: &str,
        txid: &Txid,
        now: UnixMillis,
    ) -> Result<PayoutRecord, Error> {
        // A repeat for an attempt already sent is a no-op in the store: count the first only.
        let before = self.inner.get(payout_id).await.map(|record| record.status).ok();
        let record = self.inner.mark_sent(payout_id, txid, now).await?;
        if before != Some(PayoutStatus::Sent) {
            self.metrics.entered(record.status);
        }
        Ok(record)
    }

    async fn finalize_confirmed(
        &self,
        payout_id: &str,
        txid: &Txid,
        receipt: &Receipt,
        now: UnixMillis,
    ) -> Result<PayoutRecord, Error> {
        let record = self.inner.finalize_confirmed(payout_id, txid, receipt, now).await?;
        self.metrics.transition(&record);
        Ok(record)
    }

    async fn finalize_failed_or_retry(
        &self,
        payout_id: &str,
        txid: &Txid,
        end: &AttemptEnd,
        now: UnixMillis,
    ) -> Result<PayoutRecord, Error> {
        let record = self.inner.finalize_failed_or_retry(payout_id, txid, end, now).await?;
        self.metrics.transition(&record);
        Ok(record)
    }

    async fn mark_chain_mismatch(
        &self,
        payout_id: &str,
        txid: &Txid,
        now: UnixMillis,
    ) -> Result<PayoutRecord, Error> {
        self.inner.mark_chain_mismatch(payout_id, txid, now).await
    }

    async fn resolve_chain_mismatch(
        &self,
        payout_id: &str,
        resolution: Resolution,
        now: UnixMillis,
    ) -> Result<PayoutRecord, Error> {
        let record = self.inner.resolve_chain_mismatch(payout_id, resolution, now).await?;
        self.metrics.transition(&record);
        Ok(record)
    }

    async fn cancel(&self, payout_id: &str, now: UnixMillis) -> Result<PayoutRecord, Error> {
        let record = self.inner.cancel(payout_id, now).await?;
        self.metrics.transition(&record);
        Ok(record)
    }

    async fn release_expired_leases(&self, now: UnixMillis) -> Result<Vec<String>, Error> {
        let released = self.inner.release_expired_leases(now).await?;
        for _ in &released {
            self.metrics.entered(PayoutStatus::Pending);
        }
        Ok(released)
    }

    async fn get(&self, payout_id: &str) -> Result<PayoutRecord, Error> {
        self.inner.get(payout_id).await
    }

    async fn list(&self, status: Option<PayoutStatus>) -> Result<Vec<PayoutRecord>, Error> {
        self.inner.list(status).await
    }

    async fn attempts(&self, payout_id: &str) -> Result<Vec<AttemptRecord>, Error> {
        self.inner.attempts(payout_id).await
    }

    async fn balance(&self, node: &NodeId) -> Result<NodeBalance, Error> {
        self.inner.balance(node).await
    }
}

/// The node's `LedgerStore` with every new posting counted in [`MoneyMetrics`].
pub struct CountingLedger {
    inner: Arc<dyn LedgerStore>,
    metrics: Arc<MoneyMetrics>,
}

impl CountingLedger {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn LedgerStore>, metrics: Arc<MoneyMetrics>) -> Self {
        CountingLedger { inner, metrics }
    }
}

#[async_trait]
impl LedgerStore for CountingLedger {
    async fn apply_posting(&self, posting: &Posting, now: UnixMillis) -> Result<Applied, Error> {
        let applied = self.inner.apply_posting(posting, now).await?;
        if applied == Applied::Posted {
            self.metrics.posted(posting.kind());
        }
        Ok(applied)
    }

    async fn posting(&self, key: &str) -> Result<Option<Posting>, Error> {
        self.inner.posting(key).await
    }

    async fn account_balance(&self, account: &Account) -> Result<i64, Error> {
        self.inner.account_balance(account).await
    }

    async fn nodes_with_available(
        &self,
        minimum: MicroUsdt,
    ) -> Result<Vec<(NodeId, MicroUsdt)>, Error> {
        self.inner.nodes_with_available(minimum).await
    }

    async fn node_credits(
        &self,
        node: &NodeId,
        after: Option<UnixMillis>,
        until: UnixMillis,
        limit: usize,
    ) -> Result<Vec<NodeCredit>, Error> {
        self.inner.node_credits(node, after, until, limit).await
    }

    async fn node_ledger(
        &self,
        node: &NodeId,
        before: Option<&lucid_payouts::store::LedgerPosition>,
        limit: usize,
    ) -> Result<Vec<lucid_payouts::store::NodeLedgerLine>, Error> {
        self.inner.node_ledger(node, before, limit).await
    }
}

#[cfg(test)]
mod tests;
