//! The automatic sweep (pools-payouts.md §5.3): once per `payouts.interval`, every node whose
//! available balance reaches the minimum and whose payout address is known gets one payout of
//! `min(available, maximum)` under the idempotency key `auto:{period}`.
//!
//! [`plan_sweep`] is the pure part: which payouts a sweep at `now` asks for. [`sweep`] runs it
//! over the ports: candidates from [`LedgerStore::nodes_with_available`], then one
//! [`PayoutStore::create_payout`] (T4) per plan, which checks every rule again against the
//! balance it reserves in the same transaction.
//!
//! Single flight: two sweeps of one period, concurrent or replayed, never create two payouts for
//! a node, because both ask under the same key `auto:{period}` and T4 decides on that key inside
//! one transaction (same amount: the original payout; another amount: a conflict, nothing
//! created). A sweep that planned from a balance that changed meanwhile is refused or answered
//! with the original by T4, never paid twice.

use lucid_core::{MicroUsdt, NodeId, UnixMillis};

use crate::error::Error;
use crate::payout::{Origin, PayoutLimits, Refusal, auto_key};
use crate::rail::ChainAddress;
use crate::store::{CreateOutcome, LedgerStore, NewPayout, PayoutStore};

/// The sweep's settings (`payouts.interval`, limits, `payouts.max_retries`, genesis).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SweepSettings {
    /// The network's genesis: periods count from it.
    pub genesis: UnixMillis,
    /// `payouts.interval` in ms (1 h).
    pub interval_ms: u64,
    /// The amount limits.
    pub limits: PayoutLimits,
    /// `payouts.max_retries` (≤ 5).
    pub max_retries: u32,
}

/// A node the sweep may pay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SweepCandidate {
    /// The node.
    pub node: NodeId,
    /// Its available balance.
    pub available: MicroUsdt,
    /// Its current registered payout address, if any.
    pub payout_address: Option<ChainAddress>,
}

/// The payout requests of a sweep at `now`: one per candidate with `available ≥ minimum` and a
/// payout address, for `min(available, maximum)`, keyed `auto:{period}`, ordered by node.
pub fn plan_sweep(
    candidates: &[SweepCandidate],
    settings: &SweepSettings,
    now: UnixMillis,
) -> Vec<NewPayout> {
    let key = auto_key(now, settings.genesis, settings.interval_ms);
    let mut plans: Vec<NewPayout> = candidates
        .iter()
        .filter(|c| c.available >= settings.limits.minimum())
        .filter_map(|c| {
            let to_address = c.payout_address?;
            Some(NewPayout {
                node: c.node,
                origin: Origin::Auto,
                idempotency_key: key.clone(),
                requested: Some(c.available.min(settings.limits.maximum())),
                to_address: Some(to_address),
                limits: settings.limits,
                max_retries: settings.max_retries,
                now,
            })
        })
        .collect();
    plans.sort_by_key(|plan| plan.node);
    plans.dedup_by_key(|plan| plan.node);
    plans
}

/// What one sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// The `auto:{period}` key of this sweep.
    pub key: String,
    /// Payouts created, by id.
    pub created: Vec<String>,
    /// Nodes already swept in this period (the key was used: replay or other amount).
    pub already_swept: Vec<NodeId>,
    /// Nodes refused by the creating transaction (balance changed since the plan).
    pub refused: Vec<(NodeId, Refusal)>,
    /// Nodes over the minimum without a payout address (they wait for a registration).
    pub without_address: Vec<NodeId>,
}

/// Runs one sweep at `now`: the candidates from the ledger, their addresses from
/// `payout_address`, then T4 per plan.
pub async fn sweep(
    ledger: &dyn LedgerStore,
    payouts: &dyn PayoutStore,
    payout_address: &(dyn Fn(&NodeId) -> Option<ChainAddress> + Sync),
    settings: &SweepSettings,
    now: UnixMillis,
) -> Result<SweepReport, Error> {
    let candidates: Vec<SweepCandidate> = ledger
        .nodes_with_available(settings.limits.minimum())
        .await?
        .into_iter()
        .map(|(node, available)| SweepCandidate {
            node,
            available,
            payout_address: payout_address(&node),
        })
        .collect();
    let mut report = SweepReport {
        key: auto_key(now, settings.genesis, settings.interval_ms),
        without_address: candidates
            .iter()
            .filter(|c| c.payout_address.is_none())
            .map(|c| c.node)
            .collect(),
        ..SweepReport::default()
    };
    for plan in plan_sweep(&candidates, settings, now) {
        match payouts.create_payout(&plan).await? {
            CreateOutcome::Created(payout) => report.created.push(payout.payout_id),
            CreateOutcome::Replayed(_) | CreateOutcome::Conflict(_) => {
                report.already_swept.push(plan.node);
            }
            CreateOutcome::Refused(refusal) => report.refused.push((plan.node, refusal)),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests;
