//! The payout loops of a payer daemon (`pools-payouts.md` §5.3–§5.8, `daemon.md` §2 service 14):
//! the automatic sweep, which creates one `auto:{period}` payout per node whose available
//! balance reaches the minimum, and the processor, which runs the crash-safe send protocol of
//! `lucid_payouts::processor` over the configured rail.
//!
//! - [`Sweeper`] is the sweep with its single-flight lock, shared by [`SweepService`] (every
//!   `payouts.interval`, at period boundaries counted from genesis) and the admin trigger
//!   `POST /api/v1/payouts/sweep` ([`Sweeper::trigger`]): a trigger while a sweep runs starts
//!   nothing. The lock is in-process; two payer processes over one database stay safe because
//!   both create under the same key `auto:{period}`, which T4 decides inside one transaction.
//! - [`ProcessorService`] steps one [`Processor`] every `payouts.process_interval`. Its lease
//!   owner is the node id, stable across restarts, so its first tick frees the claims the
//!   previous run of this daemon held ([`Processor::recover_own_claims`]); everything else a
//!   crash leaves behind (`signed`, `sent`) is resumed by the protocol itself. With the
//!   ledger-only rail it signs nothing and counts the payouts awaiting a chain.
//!
//! What the loops last saw is published in a [`PayoutHealth`] for `/health` (`degraded` while
//! the circuit is open, the hot wallet is low, or a payout waits for an admin resolve).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use lucid_consensus::store::ProofStore;
use lucid_core::{NodeId, UnixMillis};
use lucid_payouts::processor::{Circuit, Processor, StepReport};
use lucid_payouts::rail::{ChainAddress, HotWallet, PayoutRail};
use lucid_payouts::store::{LedgerStore, PayoutStore};
use lucid_payouts::sweep::{SweepReport, SweepSettings, sweep};

use super::ServiceError;
use super::runner::Service;

fn payout_error(
    service: &'static str,
    action: &'static str,
) -> impl FnOnce(lucid_payouts::Error) -> ServiceError {
    move |source| ServiceError::Payouts { service, action, source }
}

/// What the payout loops last saw, for `/health` and logs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PayoutHealthView {
    /// Whether the loops run at all (`payouts.enabled`).
    pub enabled: bool,
    /// The rail's name (`ledger_only`, `tron`).
    pub rail: &'static str,
    /// The processor's circuit is open.
    pub circuit_open: bool,
    /// The last preflight found the hot wallet too low.
    pub hot_wallet_low: bool,
    /// Payouts flagged `CHAIN_MISMATCH` that wait for an admin resolve.
    pub chain_mismatches: usize,
    /// Payouts waiting for a chain (ledger-only rail).
    pub awaiting_chain: Option<usize>,
    /// The last sweep's key and how many payouts it created.
    pub last_sweep: Option<(String, usize)>,
    /// The hot wallet's balances as last read from the rail (`None` until read, and always on
    /// a rail without a wallet).
    pub hot_wallet: Option<HotWallet>,
}

/// The shared [`PayoutHealthView`].
#[derive(Debug, Default)]
pub struct PayoutHealth {
    view: Mutex<PayoutHealthView>,
}

impl PayoutHealth {
    /// Health of loops that run with `rail`.
    pub fn new(rail: &'static str) -> Self {
        PayoutHealth {
            view: Mutex::new(PayoutHealthView {
                enabled: true,
                rail,
                ..PayoutHealthView::default()
            }),
        }
    }

    /// The current view.
    pub fn view(&self) -> PayoutHealthView {
        self.view.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn update(&self, change: impl FnOnce(&mut PayoutHealthView)) {
        change(&mut self.view.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

/// The sweep over the ports, with its single-flight lock.
pub struct Sweeper {
    proofs: Arc<dyn ProofStore>,
    ledger: Arc<dyn LedgerStore>,
    payouts: Arc<dyn PayoutStore>,
    settings: SweepSettings,
    health: Arc<PayoutHealth>,
    running: Arc<tokio::sync::Mutex<()>>,
}

impl Sweeper {
    /// A sweeper; `proofs` holds the registrations that give each node's payout address.
    pub fn new(
        proofs: Arc<dyn ProofStore>,
        ledger: Arc<dyn LedgerStore>,
        payouts: Arc<dyn PayoutStore>,
        settings: SweepSettings,
        health: Arc<PayoutHealth>,
    ) -> Self {
        Sweeper {
            proofs,
            ledger,
            payouts,
            settings,
            health,
            running: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// The sweep's settings.
    pub fn settings(&self) -> &SweepSettings {
        &self.settings
    }

    /// Runs one sweep at `now`, waiting for a sweep in progress to end first.
    pub async fn sweep(&self, now: UnixMillis) -> Result<SweepReport, ServiceError> {
        let _flight = self.running.lock().await;
        self.sweep_locked(now).await
    }

    async fn sweep_locked(&self, now: UnixMillis) -> Result<SweepReport, ServiceError> {
        let registrations = self
            .proofs
            .current_registrations()
            .await
            .map_err(ServiceError::consensus("payout_sweep", "reading registrations"))?;
        let addresses: std::collections::BTreeMap<NodeId, ChainAddress> = registrations
            .into_iter()
            .map(|stored| (stored.registration.node, stored.registration.payout_address))
            .collect();
        let address_of = |node: &NodeId| addresses.get(node).copied();
        let report =
            sweep(self.ledger.as_ref(), self.payouts.as_ref(), &address_of, &self.settings, now)
                .await
                .map_err(payout_error("payout_sweep", "sweeping"))?;
        if !report.created.is_empty() || !report.refused.is_empty() {
            tracing::info!(
                key = %report.key,
                created = report.created.len(),
                already_swept = report.already_swept.len(),
                refused = report.refused.len(),
                without_address = report.without_address.len(),
                "payout sweep"
            );
        }
        let last = (report.key.clone(), report.created.len());
        self.health.update(|view| view.last_sweep = Some(last));
        Ok(report)
    }

    /// The admin trigger: starts a sweep at `now` on `tracker` unless one is running; `false`
    /// if one was (nothing new starts). The sweep's outcome is logged.
    pub fn trigger(
        self: &Arc<Self>,
        tracker: &tokio_util::task::TaskTracker,
        now: UnixMillis,
    ) -> bool {
        let Ok(flight) = Arc::clone(&self.running).try_lock_owned() else {
            return false;
        };
        let sweeper = Arc::clone(self);
        tracker.spawn(async move {
            let _flight = flight;
            if let Err(error) = sweeper.sweep_locked(now).await {
                tracing::warn!(%error, "triggered payout sweep failed");
            }
        });
        true
    }
}

/// The sweep loop: one sweep at start (catching up the current period) and one at every period
/// boundary `genesis + k × payouts.interval`.
pub struct SweepService {
    sweeper: Arc<Sweeper>,
}

impl SweepService {
    /// The loop over `sweeper`.
    pub fn new(sweeper: Arc<Sweeper>) -> Self {
        SweepService { sweeper }
    }
}

/// The first period boundary (`genesis + k × interval_ms`) strictly after `after`.
pub fn next_period_start(genesis: UnixMillis, interval_ms: u64, after: UnixMillis) -> UnixMillis {
    let interval = i64::try_from(interval_ms.max(1)).unwrap_or(i64::MAX);
    let since = after.0.saturating_sub(genesis.0);
    let periods = since.div_euclid(interval).saturating_add(1);
    UnixMillis(genesis.0.saturating_add(periods.saturating_mul(interval)))
}

#[async_trait::async_trait]
impl Service for SweepService {
    fn name(&self) -> &'static str {
        "payout_sweep"
    }

    fn next_due(&self, after: UnixMillis) -> UnixMillis {
        let settings = self.sweeper.settings();
        next_period_start(settings.genesis, settings.interval_ms, after)
    }

    async fn tick(&mut self, now: UnixMillis) -> Result<(), ServiceError> {
        self.sweeper.sweep(now).await.map(drop)
    }
}

/// The processor loop.
pub struct ProcessorService {
    processor: Processor,
    payouts: Arc<dyn PayoutStore>,
    interval: Duration,
    health: Arc<PayoutHealth>,
    recovered: bool,
    /// The rail whose hot wallet is read after every step (for the gauges).
    wallet: Option<Arc<dyn PayoutRail>>,
}

impl ProcessorService {
    /// The loop stepping `processor` (whose owner must be stable across restarts, see the
    /// module doc) every `interval`.
    pub fn new(
        processor: Processor,
        payouts: Arc<dyn PayoutStore>,
        interval: Duration,
        health: Arc<PayoutHealth>,
    ) -> Self {
        ProcessorService { processor, payouts, interval, health, recovered: false, wallet: None }
    }

    /// This loop, reading the hot wallet of `rail` after every step into the health view (the
    /// gauges `lucid_hot_wallet_usdt_micro` and `lucid_hot_wallet_trx_sun`).
    #[must_use]
    pub fn with_hot_wallet(mut self, rail: Arc<dyn PayoutRail>) -> Self {
        self.wallet = Some(rail);
        self
    }

    /// Reads the hot wallet; a failed read keeps the last balances (logged, not fatal: the
    /// payouts themselves do not depend on it).
    async fn read_hot_wallet(&self) {
        let Some(rail) = &self.wallet else { return };
        match rail.hot_wallet().await {
            Ok(wallet) => self.health.update(|view| view.hot_wallet = wallet),
            Err(error) => tracing::warn!(%error, "reading the hot wallet's balances failed"),
        }
    }

    fn publish(&self, report: &StepReport, mismatches: usize) {
        let circuit_open = matches!(self.processor.circuit(), Circuit::Open { .. });
        self.health.update(|view| {
            view.circuit_open = circuit_open;
            view.hot_wallet_low = report.hot_wallet_low;
            view.awaiting_chain = report.awaiting_chain;
            view.chain_mismatches = mismatches;
        });
    }
}

#[async_trait::async_trait]
impl Service for ProcessorService {
    fn name(&self) -> &'static str {
        "payout_processor"
    }

    fn next_due(&self, after: UnixMillis) -> UnixMillis {
        let step = i64::try_from(self.interval.as_millis()).unwrap_or(i64::MAX).max(1);
        after.saturating_add_ms(step)
    }

    async fn tick(&mut self, now: UnixMillis) -> Result<(), ServiceError> {
        if !self.recovered {
            let freed = self
                .processor
                .recover_own_claims(now)
                .await
                .map_err(payout_error("payout_processor", "recovering own claims"))?;
            if freed > 0 {
                tracing::info!(freed, "claims of this node's previous run returned to pending");
            }
            self.recovered = true;
        }
        let report = self
            .processor
            .step(now)
            .await
            .map_err(payout_error("payout_processor", "processing payouts"))?;
        let sent = self
            .payouts
            .list(Some(lucid_payouts::payout::PayoutStatus::Sent))
            .await
            .map_err(payout_error("payout_processor", "listing sent payouts"))?;
        let mismatches = sent
            .iter()
            .filter(|p| p.error_code.as_deref() == Some(lucid_payouts::store::CHAIN_MISMATCH))
            .count();
        if report.claimed + report.broadcasts + report.confirmed + report.failed > 0 {
            tracing::info!(
                claimed = report.claimed,
                signed = report.signed,
                broadcasts = report.broadcasts,
                confirmed = report.confirmed,
                failed = report.failed,
                attempts_failed = report.attempts_failed,
                "payout processor step"
            );
        }
        if report.hot_wallet_low {
            tracing::warn!("hot wallet too low for the batch; nothing signed");
        }
        if report.mismatches > 0 {
            tracing::error!(
                mismatches = report.mismatches,
                "solidified SUCCESS without the matching Transfer: payout held for an admin resolve (CHAIN_MISMATCH)"
            );
        }
        self.publish(&report, mismatches);
        match report.hot_wallet {
            // The step's preflight read the balances moments ago: no second read of the chain.
            Some(wallet) if self.wallet.is_some() => {
                self.health.update(|view| view.hot_wallet = Some(wallet));
            }
            _ => self.read_hot_wallet().await,
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests;
