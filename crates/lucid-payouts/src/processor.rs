//! The payout processor: the crash-safe send protocol of pools-payouts.md §5.6 as a step
//! function over the `PayoutStore` and `PayoutRail` ports, with restart recovery (§5.8),
//! retries and the circuit breaker (§5.7).
//!
//! Each store call is one commit, and the order of commits is the protocol: the attempt (txid,
//! raw bytes, signature) is committed before any broadcast, every broadcast begins with a
//! commit that counts it, and a new attempt exists only after the previous one is proven dead.
//! The processor keeps no state that matters for safety: dropping it at any point (a crash) and
//! starting a new one over the same store resumes the protocol. Time comes in as `now`.
//!
//! Hardening (§5.7): a signing failure is counted on the payout in the store
//! ([`Unclaim::SignFailed`]) and after `max_sign_failures` the payout fails with its reservation
//! released in that same commit, so a broken signer never retries forever and never releases
//! twice. A transport error while polling the chain does not stop the step: that payout waits
//! for a backoff computed from `now` ([`retry_delay_ms`], 2 s × 2^n capped at 60 s with
//! deterministic jitter; nothing sleeps here), and every rail failure (attempt failure, signing
//! failure, transport error) counts toward the worker's circuit breaker.

use std::collections::BTreeMap;
use std::sync::Arc;

use lucid_core::UnixMillis;

use crate::error::Error;
use crate::payout::{DailyCaps, PayoutStatus};
use crate::rail::{
    BroadcastOutcome, ChainStatus, ExpectedTransfer, HotWallet, PayoutRail, Preflight, RailKind,
    TransferIntent,
};
use crate::store::{
    AttemptEnd, AttemptRecord, CHAIN_MISMATCH, ClaimRequest, PayoutRecord, PayoutStore, Receipt,
    Unclaim,
};

/// Settings of the processor (`payouts.*`, `tron.dead_margin`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessorConfig {
    /// Most payouts claimed per step (`payouts.batch_size`, 10).
    pub batch_size: u32,
    /// How long a claim holds (`payouts.lease`, 5 min), in ms.
    pub lease_ms: i64,
    /// How long past its expiration an unknown txid must stay unknown to be dead
    /// (`tron.dead_margin`, 120 s), in ms.
    pub dead_margin_ms: i64,
    /// Daily caps (`payouts.daily_max_count`, `payouts.daily_max_per_node`).
    pub caps: DailyCaps,
    /// Consecutive attempt failures that open the circuit (`payouts.circuit_failures`, 10).
    pub circuit_failures: u32,
    /// How long an open circuit pauses claiming (`payouts.circuit_cooldown`, 120 s), in ms.
    pub circuit_cooldown_ms: i64,
    /// Signing failures after which a payout fails for good (≥ 1; 3).
    pub max_sign_failures: u32,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig {
            batch_size: 10,
            lease_ms: 300_000,
            dead_margin_ms: 120_000,
            caps: DailyCaps::default(),
            circuit_failures: 10,
            circuit_cooldown_ms: 120_000,
            max_sign_failures: 3,
        }
    }
}

/// The circuit breaker's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Circuit {
    /// Claiming normally; the count of consecutive attempt failures.
    Closed {
        /// Consecutive failures so far.
        failures: u32,
    },
    /// Claiming paused until this time (`lucid_payout_circuit_open = 1`, health degraded).
    Open {
        /// End of the cooldown.
        until: UnixMillis,
    },
    /// Cooldown over: one payout at a time until an attempt succeeds or fails.
    HalfOpen,
}

/// What one step did, for logs, metrics and health.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepReport {
    /// Claims whose lease lapsed, back to pending.
    pub leases_released: usize,
    /// Payouts claimed.
    pub claimed: usize,
    /// Attempts committed.
    pub signed: usize,
    /// Broadcasts begun.
    pub broadcasts: usize,
    /// Payouts marked sent.
    pub sent: usize,
    /// Payouts confirmed and settled.
    pub confirmed: usize,
    /// Attempts that died (rejected, reverted, expired).
    pub attempts_failed: usize,
    /// Payouts that failed for good.
    pub failed: usize,
    /// Payouts flagged `CHAIN_MISMATCH`.
    pub mismatches: usize,
    /// Compare-and-set losses to another worker (harmless).
    pub lost_races: usize,
    /// Signing failures (each counted on its payout).
    pub signing_failures: usize,
    /// Chain reads that failed in transport (each payout then waits for its backoff).
    pub transport_errors: usize,
    /// Live payouts skipped because their backoff has not elapsed.
    pub backing_off: usize,
    /// The rail has no chain: this many payouts wait (`awaiting_chain`).
    pub awaiting_chain: Option<usize>,
    /// The preflight found the hot wallet too low (health `hot_wallet_low`).
    pub hot_wallet_low: bool,
    /// The hot wallet's balances as the step's preflight read them (`None` when no batch was
    /// checked, or the rail has no wallet).
    pub hot_wallet: Option<HotWallet>,
    /// The circuit breaker after the step.
    pub circuit: Option<Circuit>,
}

/// First retry delay of a failed transport call (§5.7).
pub const RETRY_BASE_MS: i64 = 2_000;
/// Longest retry delay.
pub const RETRY_MAX_MS: i64 = 60_000;

/// The delay before retrying a transport call after `failures` consecutive failures (≥ 1):
/// `min(2 s × 2^(failures − 1), 60 s)`, jittered down to between half and all of it by
/// `jitter_per_mille` (0..=1000), so that workers retrying together spread out. Pure: the
/// caller adds it to its `now`.
pub fn retry_delay_ms(failures: u32, jitter_per_mille: u16) -> i64 {
    let exponent = failures.saturating_sub(1).min(16);
    let base = RETRY_BASE_MS.saturating_mul(1_i64 << exponent).min(RETRY_MAX_MS);
    let jitter = i64::from(jitter_per_mille.min(1_000));
    base / 2 + base / 2 * jitter / 1_000
}

/// A deterministic jitter for `key`'s `failures`-th retry (FNV-1a), in 0..=1000.
fn jitter_for(key: &str, failures: u32) -> u16 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes().chain(failures.to_be_bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    u16::try_from(hash % 1_001).unwrap_or(0)
}

/// A payout whose chain reads failed in transport: retried no earlier than `not_before`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Backoff {
    failures: u32,
    not_before: UnixMillis,
}

/// One worker of the send protocol.
pub struct Processor {
    store: Arc<dyn PayoutStore>,
    rail: Arc<dyn PayoutRail>,
    config: ProcessorConfig,
    owner: String,
    circuit: Circuit,
    /// Per payout; lost with the process, which only makes the restarted one poll sooner.
    backoff: BTreeMap<String, Backoff>,
}

/// The error code of a payout whose rail could not sign it.
pub const SIGNING_FAILED: &str = "SIGNING_FAILED";

/// Whether an error is a lost compare-and-set (another worker got there first).
fn is_lost_race(error: &Error) -> bool {
    matches!(error, Error::StateChanged { .. } | Error::AttemptRefused { .. })
}

/// Counts a lost compare-and-set as a harmless race; any other error propagates.
fn lost_race_is_fine(result: Result<(), Error>, report: &mut StepReport) -> Result<(), Error> {
    match result {
        Err(error) if is_lost_race(&error) => {
            report.lost_races += 1;
            Ok(())
        }
        other => other,
    }
}

impl Processor {
    /// A worker named `owner` (its lease owner id; unique per worker).
    pub fn new(
        store: Arc<dyn PayoutStore>,
        rail: Arc<dyn PayoutRail>,
        config: ProcessorConfig,
        owner: String,
    ) -> Self {
        Processor {
            store,
            rail,
            config,
            owner,
            circuit: Circuit::Closed { failures: 0 },
            backoff: BTreeMap::new(),
        }
    }

    /// The circuit breaker's state.
    pub fn circuit(&self) -> Circuit {
        self.circuit
    }

    /// Restart recovery of this worker's own claims (§5.8): a payout in `processing` whose
    /// lease names this worker's owner was claimed by an earlier run of this same worker, which
    /// is gone. Nothing was signed for it (signing leaves `processing` in the same commit that
    /// stores the attempt), so it goes back to `pending` at once instead of waiting out a lease
    /// of minutes. Only sound when `owner` is unique to one worker at a time and stable across
    /// its restarts (the daemon uses its node id, and its data-directory lock keeps one process
    /// per node); claims of other owners are left to their leases. Returns how many were freed.
    pub async fn recover_own_claims(&self, now: UnixMillis) -> Result<usize, Error> {
        let mut freed = 0;
        for payout in self.store.list(Some(PayoutStatus::Processing)).await? {
            if payout.lease_owner.as_deref() != Some(self.owner.as_str()) {
                continue;
            }
            let what = Unclaim::Retry { code: "WORKER_RESTARTED".to_owned() };
            match self.store.unclaim(&payout.payout_id, &self.owner, &what, now).await {
                Ok(_) => freed += 1,
                Err(error) if is_lost_race(&error) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(freed)
    }

    /// One pass: release lapsed claims, advance every live attempt (broadcast, poll, confirm,
    /// prove dead), then claim, preflight, sign and broadcast a new batch unless the circuit is
    /// open. On an error the step stops; whatever was committed stays valid.
    pub async fn step(&mut self, now: UnixMillis) -> Result<StepReport, Error> {
        let mut report = StepReport {
            leases_released: self.store.release_expired_leases(now).await?.len(),
            ..StepReport::default()
        };
        if self.rail.kind() == RailKind::LedgerOnly {
            // No chain: nothing is claimed, so nothing can be half-sent.
            report.awaiting_chain = Some(self.store.list(Some(PayoutStatus::Pending)).await?.len());
            return Ok(report);
        }
        for status in [PayoutStatus::Signed, PayoutStatus::Sent] {
            for payout in self.store.list(Some(status)).await? {
                let result = self.advance(&payout, now, &mut report).await;
                lost_race_is_fine(result, &mut report)?;
            }
        }
        if let Circuit::Open { until } = self.circuit {
            if now < until {
                report.circuit = Some(self.circuit);
                return Ok(report);
            }
            self.circuit = Circuit::HalfOpen;
        }
        let batch_size = match self.circuit {
            Circuit::HalfOpen => 1,
            _ => self.config.batch_size,
        };
        let claimed = self
            .store
            .claim(&ClaimRequest {
                batch_size,
                lease_owner: self.owner.clone(),
                lease_until: now.saturating_add_ms(self.config.lease_ms),
                caps: self.config.caps,
                now,
            })
            .await?;
        report.claimed = claimed.len();
        if !claimed.is_empty() {
            self.send_batch(&claimed, now, &mut report).await?;
        }
        report.circuit = Some(self.circuit);
        Ok(report)
    }

    fn intent(payout: &PayoutRecord) -> TransferIntent {
        TransferIntent {
            payout_id: payout.payout_id.clone(),
            to_address: payout.to_address,
            net: payout.amounts.net,
            attempt_no: payout.attempt_count.saturating_add(1),
        }
    }

    fn expected(payout: &PayoutRecord) -> ExpectedTransfer {
        ExpectedTransfer { to_address: payout.to_address, net: payout.amounts.net }
    }

    async fn send_batch(
        &mut self,
        claimed: &[PayoutRecord],
        now: UnixMillis,
        report: &mut StepReport,
    ) -> Result<(), Error> {
        let intents: Vec<TransferIntent> = claimed.iter().map(Self::intent).collect();
        let preflight = self.rail.preflight(&intents).await;
        if let Ok(checked) = &preflight {
            report.hot_wallet = checked.wallet();
        }
        if !matches!(preflight, Ok(Preflight::Ok { .. })) {
            // Nothing signed: every claim goes back to pending, then the error (if any) surfaces.
            report.hot_wallet_low = matches!(preflight, Ok(Preflight::HotWalletLow { .. }));
            for payout in claimed {
                let code = Unclaim::Retry { code: "HOT_WALLET_LOW".to_owned() };
                let result = self.store.unclaim(&payout.payout_id, &self.owner, &code, now).await;
                lost_race_is_fine(result.map(drop), report)?;
            }
            return preflight.map(drop);
        }
        for (payout, intent) in claimed.iter().zip(&intents) {
            if matches!(self.circuit, Circuit::Open { .. }) {
                // The circuit opened during this batch: the rest waits, unsigned.
                let code = Unclaim::Retry { code: "CIRCUIT_OPEN".to_owned() };
                let result = self.store.unclaim(&payout.payout_id, &self.owner, &code, now).await;
                lost_race_is_fine(result.map(drop), report)?;
                continue;
            }
            let result = self.sign_and_send(payout, intent, now, report).await;
            lost_race_is_fine(result, report)?;
        }
        Ok(())
    }

    async fn sign_and_send(
        &mut self,
        payout: &PayoutRecord,
        intent: &TransferIntent,
        now: UnixMillis,
        report: &mut StepReport,
    ) -> Result<(), Error> {
        let transfer = match self.rail.build_and_sign(intent).await {
            Ok(transfer) => transfer,
            Err(error) => {
                // Nothing was committed or sent. The store counts the failure on the payout and,
                // at the bound, fails it and releases its reservation in the same commit.
                let what = Unclaim::SignFailed {
                    code: SIGNING_FAILED.to_owned(),
                    max_failures: self.config.max_sign_failures.max(1),
                    message: error.to_string(),
                };
                let payout = self.store.unclaim(&payout.payout_id, &self.owner, &what, now).await?;
                report.signing_failures += 1;
                if payout.status == PayoutStatus::Failed {
                    report.failed += 1;
                }
                self.rail_failed(now);
                return Ok(());
            }
        };
        let attempt = self
            .store
            .record_signed(&payout.payout_id, &self.owner, intent.attempt_no, &transfer, now)
            .await?;
        report.signed += 1;
        self.broadcast(payout, &attempt, now, report).await
    }

    /// Broadcasts the stored bytes of the live attempt, the count committed first.
    async fn broadcast(
        &mut self,
        payout: &PayoutRecord,
        attempt: &AttemptRecord,
        now: UnixMillis,
        report: &mut StepReport,
    ) -> Result<(), Error> {
        let id = &payout.payout_id;
        let txid = &attempt.transfer.txid;
        let before = self.store.begin_broadcast(id, txid, now).await?;
        report.broadcasts += 1;
        match self.rail.broadcast(&attempt.transfer).await {
            BroadcastOutcome::Accepted | BroadcastOutcome::Duplicate => {
                if attempt.status != crate::store::AttemptStatus::Sent {
                    self.store.mark_sent(id, txid, now).await?;
                    report.sent += 1;
                }
            }
            BroadcastOutcome::Rejected(code) if before == 0 && code.is_definitive() => {
                let end = AttemptEnd::Rejected {
                    code: code.as_str().to_owned(),
                    retryable: code.is_retryable(),
                };
                let payout = self.store.finalize_failed_or_retry(id, txid, &end, now).await?;
                self.attempt_failed(&payout, now, report);
            }
            // After an earlier broadcast with unknown outcome a rejection proves nothing, and an
            // unanswered broadcast may have landed: stay signed, poll, re-broadcast the same
            // bytes, and let only the proven-dead rule end the attempt.
            BroadcastOutcome::Rejected(_) | BroadcastOutcome::Unknown => {}
        }
        Ok(())
    }

    fn attempt_failed(&mut self, payout: &PayoutRecord, now: UnixMillis, report: &mut StepReport) {
        report.attempts_failed += 1;
        if payout.status == PayoutStatus::Failed {
            report.failed += 1;
        }
        self.rail_failed(now);
    }

    /// One more consecutive rail failure (attempt failure, signing failure, transport error):
    /// the circuit opens at `circuit_failures`, and any failure while half-open reopens it.
    fn rail_failed(&mut self, now: UnixMillis) {
        self.circuit = match self.circuit {
            Circuit::Closed { failures } => {
                let failures = failures.saturating_add(1);
                if failures >= self.config.circuit_failures {
                    Circuit::Open { until: now.saturating_add_ms(self.config.circuit_cooldown_ms) }
                } else {
                    Circuit::Closed { failures }
                }
            }
            Circuit::HalfOpen | Circuit::Open { .. } => {
                Circuit::Open { until: now.saturating_add_ms(self.config.circuit_cooldown_ms) }
            }
        };
    }

    /// Moves one `signed` or `sent` payout forward by what the chain says (restart recovery is
    /// the same code: the store says where each payout stands).
    async fn advance(
        &mut self,
        payout: &PayoutRecord,
        now: UnixMillis,
        report: &mut StepReport,
    ) -> Result<(), Error> {
        if payout.error_code.as_deref() == Some(CHAIN_MISMATCH) {
            // Polling stops; only an admin resolve ends it.
            return Ok(());
        }
        if self.backoff.get(&payout.payout_id).is_some_and(|b| now < b.not_before) {
            report.backing_off += 1;
            return Ok(());
        }
        let attempts = self.store.attempts(&payout.payout_id).await?;
        let Some(attempt) = attempts.into_iter().find(|a| a.status.is_live()) else {
            return Ok(());
        };
        let id = &payout.payout_id;
        let txid = &attempt.transfer.txid;
        let expiration = attempt.transfer.expiration;
        if attempt.broadcasts == 0 && now < expiration {
            // Signed, never broadcast (a crash after the sign commit): nothing can be on chain.
            return self.broadcast(payout, &attempt, now, report).await;
        }
        let status = match self.rail.status(txid, &Self::expected(payout)).await {
            Ok(status) => {
                self.backoff.remove(id);
                status
            }
            Err(Error::Rail { .. }) => {
                // Retry the same read later, not in a tight loop; the rest of the step goes on.
                let failures = self.backoff.get(id).map_or(0, |b| b.failures).saturating_add(1);
                let delay = retry_delay_ms(failures, jitter_for(id, failures));
                let not_before = now.saturating_add_ms(delay);
                self.backoff.insert(id.clone(), Backoff { failures, not_before });
                report.transport_errors += 1;
                self.rail_failed(now);
                return Ok(());
            }
            Err(other) => return Err(other),
        };
        match status {
            ChainStatus::Solidified {
                success: true,
                transfer_matches: true,
                block,
                energy_used,
                fee_sun,
            } => {
                if payout.status == PayoutStatus::Signed {
                    self.store.mark_sent(id, txid, now).await?;
                    report.sent += 1;
                }
                let receipt = Receipt { block, energy_used, fee_sun };
                self.store.finalize_confirmed(id, txid, &receipt, now).await?;
                report.confirmed += 1;
                if matches!(self.circuit, Circuit::Closed { .. } | Circuit::HalfOpen) {
                    self.circuit = Circuit::Closed { failures: 0 };
                }
            }
            ChainStatus::Solidified { success: true, transfer_matches: false, .. } => {
                if payout.status == PayoutStatus::Signed {
                    self.store.mark_sent(id, txid, now).await?;
                }
                self.store.mark_chain_mismatch(id, txid, now).await?;
                report.mismatches += 1;
            }
            ChainStatus::Solidified { success: false, block, energy_used, fee_sun, .. } => {
                if payout.status == PayoutStatus::Signed {
                    self.store.mark_sent(id, txid, now).await?;
                }
                let end = AttemptEnd::Reverted {
                    code: "REVERTED".to_owned(),
                    block,
                    energy_used,
                    fee_sun,
                };
                let payout = self.store.finalize_failed_or_retry(id, txid, &end, now).await?;
                self.attempt_failed(&payout, now, report);
            }
            ChainStatus::Pending => {
                if payout.status == PayoutStatus::Signed {
                    // The chain has the bytes: a broadcast evidently landed.
                    self.store.mark_sent(id, txid, now).await?;
                    report.sent += 1;
                }
            }
            ChainStatus::NotFound => {
                if now > expiration.saturating_add_ms(self.config.dead_margin_ms) {
                    // Proven dead: it can no longer be included, and it was not.
                    let payout = self
                        .store
                        .finalize_failed_or_retry(id, txid, &AttemptEnd::Expired, now)
                        .await?;
                    self.attempt_failed(&payout, now, report);
                } else if now < expiration {
                    // Maybe lost on the way: send the same bytes again, never new ones.
                    self.broadcast(payout, &attempt, now, report).await?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
