//! The node's money services as the binary configures them: the epoch reward distribution
//! (every node), and on the payer (`payouts.enabled`) the payout sweep and processor over the
//! configured rail, with the admin calls that act on them (`POST /api/v1/payouts/sweep`,
//! `POST /api/v1/payouts/{id}/resolve`).
//!
//! Which rail pays is decided by the binary: `LedgerOnlyRail` unless it was built with the
//! `blockchain` feature and `tron.*` is configured, then `TronRail`. This module only receives
//! the rail as the `PayoutRail` port.

use std::sync::Arc;
use std::time::Duration;

use lucid_api::Failure;
use lucid_api::dto::{PayoutView, ResolveOutcome, SweepStarted};
use lucid_api::{ComponentHealth, HealthStatus};
use lucid_core::MicroUsdt;
use lucid_payouts::payout::PayoutLimits;
use lucid_payouts::processor::{Processor, ProcessorConfig};
use lucid_payouts::rail::PayoutRail;
use lucid_payouts::store::{LedgerStore, Resolution};
use lucid_payouts::sweep::SweepSettings;

use crate::node::State;
use crate::services::payouts::{PayoutHealth, ProcessorService, SweepService, Sweeper};

/// The payer's loops (`payouts.enabled = true`).
pub struct PayoutLoops {
    /// The rail that moves the money.
    pub rail: Arc<dyn PayoutRail>,
    /// `payouts.interval`, the limits and `payouts.max_retries` (genesis is the network's).
    pub sweep: SweepSettings,
    /// `payouts.batch_size`, `payouts.lease`, caps, circuit, `tron.dead_margin`.
    pub processor: ProcessorConfig,
    /// `payouts.process_interval`.
    pub process_interval: Duration,
}

/// What [`crate::Node::spawn_money`] wires.
pub struct MoneyWiring {
    /// The ledger's credit port (the same database as the payout store).
    pub ledger: Arc<dyn LedgerStore>,
    /// `economy.epoch_reward_usdt`.
    pub epoch_reward: MicroUsdt,
    /// The amount limits in force (`payouts.minimum_usdt`, `payouts.maximum_usdt`), used by
    /// withdrawals and balances whether or not this node pays.
    pub limits: PayoutLimits,
    /// `payouts.max_retries` for withdrawals.
    pub max_retries: u32,
    /// `payouts.payer_node_id`: on a node that is not the payer, where signed withdrawals and
    /// cancels are forwarded and payout records read from (`pools-payouts.md` §5.1). `None` on
    /// the payer, and on a standalone node, which keeps its payouts in its own ledger.
    pub payer_node_id: Option<lucid_core::NodeId>,
    /// The payer's loops; `None` when this node is not the payer.
    pub payouts: Option<PayoutLoops>,
}

/// What the running node keeps of its money wiring.
pub(crate) struct MoneyRuntime {
    /// The ledger's credit port (pay stubs read the posted rewards from it).
    pub(crate) ledger: Arc<dyn LedgerStore>,
    /// `economy.epoch_reward_usdt` (pay stubs recompute the epoch's split with it).
    pub(crate) epoch_reward: MicroUsdt,
    pub(crate) limits: PayoutLimits,
    pub(crate) max_retries: u32,
    /// Where this node forwards payout requests (`payouts.payer_node_id`).
    pub(crate) payer_node_id: Option<lucid_core::NodeId>,
    payer: Option<Payer>,
}

struct Payer {
    /// The rail's name (`tron`, `ledger_only`, `fake`), for `GET /payouts/config`.
    rail: &'static str,
    sweeper: Arc<Sweeper>,
    health: Arc<PayoutHealth>,
    tracker: tokio_util::task::TaskTracker,
}

impl MoneyRuntime {
    /// The loops to supervise and what the node keeps.
    pub(crate) fn build(
        state: &State,
        wiring: MoneyWiring,
        tracker: &tokio_util::task::TaskTracker,
    ) -> (MoneyRuntime, Option<(SweepService, ProcessorService)>) {
        let Some(loops) = wiring.payouts else {
            let runtime = MoneyRuntime {
                ledger: wiring.ledger,
                epoch_reward: wiring.epoch_reward,
                limits: wiring.limits,
                max_retries: wiring.max_retries,
                payer_node_id: wiring.payer_node_id,
                payer: None,
            };
            return (runtime, None);
        };
        let rail_name = loops.rail.kind().as_str();
        let health = Arc::new(PayoutHealth::new(rail_name));
        let sweeper = Arc::new(Sweeper::new(
            Arc::clone(&state.ports.proofs),
            Arc::clone(&wiring.ledger),
            Arc::clone(&state.ports.payouts),
            loops.sweep,
            Arc::clone(&health),
        ));
        // The lease owner is the node id: stable across restarts (so a restart frees its own
        // claims at once) and unique per process (the data-directory lock).
        let owner = state.key.node_id().to_string();
        let wallet = Arc::clone(&loops.rail);
        let processor =
            Processor::new(Arc::clone(&state.ports.payouts), loops.rail, loops.processor, owner);
        let services = (
            SweepService::new(Arc::clone(&sweeper)),
            ProcessorService::new(
                processor,
                Arc::clone(&state.ports.payouts),
                loops.process_interval,
                Arc::clone(&health),
            )
            .with_hot_wallet(wallet),
        );
        let payer = Payer { rail: rail_name, sweeper, health, tracker: tracker.clone() };
        let runtime = MoneyRuntime {
            ledger: wiring.ledger,
            epoch_reward: wiring.epoch_reward,
            limits: wiring.limits,
            max_retries: wiring.max_retries,
            payer_node_id: None,
            payer: Some(payer),
        };
        (runtime, Some(services))
    }

    /// Whether this node is the payer (its reserved and paid figures are authoritative).
    pub(crate) fn is_payer(&self) -> bool {
        self.payer.is_some()
    }

    /// The name of the rail this node pays with; `None` when it is not the payer.
    pub(crate) fn rail(&self) -> Option<&'static str> {
        self.payer.as_ref().map(|payer| payer.rail)
    }

    /// Whether the payer's processor has its circuit open (`lucid_payout_circuit_open`).
    pub(crate) fn circuit_open(&self) -> bool {
        self.payer.as_ref().is_some_and(|payer| payer.health.view().circuit_open)
    }

    /// The hot wallet's balances as the payer's processor last read them.
    pub(crate) fn hot_wallet(&self) -> Option<lucid_payouts::rail::HotWallet> {
        self.payer.as_ref().and_then(|payer| payer.health.view().hot_wallet)
    }

    /// The `payouts` component of `/health`.
    pub(crate) fn health(&self) -> ComponentHealth {
        let Some(payer) = &self.payer else {
            return ComponentHealth {
                status: HealthStatus::Healthy,
                detail: "disabled: this node is not the payer".into(),
            };
        };
        let view = payer.health.view();
        let mut problems = Vec::new();
        if view.circuit_open {
            problems.push("circuit open".to_owned());
        }
        if view.hot_wallet_low {
            problems.push("hot_wallet_low".to_owned());
        }
        if view.chain_mismatches > 0 {
            problems.push(format!("{} CHAIN_MISMATCH awaiting resolve", view.chain_mismatches));
        }
        if problems.is_empty() {
            let detail = match view.awaiting_chain {
                Some(waiting) => format!("{} rail: {waiting} payouts awaiting_chain", view.rail),
                None => format!("{} rail running", view.rail),
            };
            ComponentHealth { status: HealthStatus::Healthy, detail }
        } else {
            ComponentHealth {
                status: HealthStatus::Degraded,
                detail: format!("{} rail: {}", view.rail, problems.join(", ")),
            }
        }
    }
}

fn not_payer() -> Failure {
    Failure::FeatureDisabled("payouts are not enabled on this node".to_owned())
}

pub(crate) fn trigger_sweep(state: &State) -> Result<SweepStarted, Failure> {
    let payer = state.money().and_then(|m| m.payer.as_ref()).ok_or_else(not_payer)?;
    let started = payer.sweeper.trigger(&payer.tracker, state.clock.wall());
    Ok(SweepStarted { started })
}

pub(crate) async fn resolve_payout(
    state: &State,
    payout_id: &str,
    outcome: ResolveOutcome,
) -> Result<PayoutView, Failure> {
    if !state.money().is_some_and(MoneyRuntime::is_payer) {
        return Err(not_payer());
    }
    let resolution = match outcome {
        ResolveOutcome::Settle => Resolution::Settle,
        ResolveOutcome::Release => Resolution::Release,
    };
    let record = state
        .ports
        .payouts
        .resolve_chain_mismatch(payout_id, resolution, state.clock.wall())
        .await
        .map_err(crate::operator::payout_error("resolving a payout"))?;
    tracing::warn!(
        payout_id,
        resolution = resolution.as_str(),
        "CHAIN_MISMATCH resolved by the administrator"
    );
    crate::operator::view_of(state, &record).await
}

#[cfg(test)]
pub(crate) mod tests;
