//! The epoch reward distribution (`pools-payouts.md` §3.1, `daemon.md` §2 service 13): once the
//! tally of epoch e is settled (the tally keeper freezes it at `slot_start(720(e + 1))`), the
//! configured budget `economy.epoch_reward_usdt` is split over it by
//! [`lucid_payouts::rewards::epoch_reward`] and posted as the one posting `epoch_reward:{e}`
//! through the `LedgerStore` port.
//!
//! Exactly once: before computing anything the service asks the ledger whether
//! `epoch_reward:{e}` exists, and the posting itself is idempotent by its key (the store applies
//! a replayed identical posting as a no-op and refuses a different one under the same key). So a
//! tick that runs again after a failure, a restart between the settlement and the posting, or a
//! second daemon over the same database credit nothing twice; and a budget changed between two
//! runs never re-posts an epoch that was already paid.
//!
//! The service reads only settled tallies, so a tally revised by late proofs is never paid from
//! an earlier revision. It looks back at most [`REWARD_LOOKBACK_EPOCHS`] epochs, which covers a
//! daemon that was down for a while after settling but before posting, and the epochs that ended
//! while it was down, which the tally keeper settles (in order) once anti-entropy reconciled its
//! store; an epoch whose tally this node never settles is left alone (the tally keeper explains
//! why in its own log).

use std::sync::Arc;

use lucid_consensus::ConsensusParams;
use lucid_consensus::records::RecordStore;
use lucid_core::{Epoch, MicroUsdt, UnixMillis};
use lucid_payouts::ledger::{Applied, Posting};
use lucid_payouts::rewards::{NoReward, epoch_reward};
use lucid_payouts::store::LedgerStore;

use super::ServiceError;
use super::runner::Service;

/// How many epochs before the current one are looked at for a settled, unposted tally.
pub const REWARD_LOOKBACK_EPOCHS: u64 = 7;

/// What the service needs.
#[derive(Clone)]
pub struct RewardDeps {
    /// The network's parameters (slot and epoch arithmetic).
    pub params: ConsensusParams,
    /// Where settled tallies are.
    pub records: Arc<dyn RecordStore>,
    /// Where `epoch_reward:{e}` postings go.
    pub ledger: Arc<dyn LedgerStore>,
    /// `economy.epoch_reward_usdt`: the budget of every epoch.
    pub budget: MicroUsdt,
}

/// What happened to one epoch's reward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpochRewardOutcome {
    /// The tally is not settled (or not stored) yet: try again later.
    Waiting,
    /// This call posted `epoch_reward:{e}`.
    Posted,
    /// `epoch_reward:{e}` was posted before (by an earlier run); nothing changed.
    AlreadyPosted,
    /// The epoch pays nothing, for this reason (no budget, no ranked entity).
    NothingToPay(NoReward),
}

impl EpochRewardOutcome {
    fn is_final(self) -> bool {
        !matches!(self, EpochRewardOutcome::Waiting)
    }
}

/// Posts the reward of every settled epoch exactly once.
pub struct EpochRewardService {
    deps: RewardDeps,
    /// Every epoch up to this one is known to be final (posted, or paying nothing); kept only to
    /// save reads, so losing it with the process changes nothing but the first tick's work.
    final_through: Option<Epoch>,
}

fn ledger_error(action: &'static str) -> impl FnOnce(lucid_payouts::Error) -> ServiceError {
    move |source| ServiceError::Payouts { service: "epoch_rewards", action, source }
}

impl EpochRewardService {
    /// The service over `deps`.
    pub fn new(deps: RewardDeps) -> Self {
        EpochRewardService { deps, final_through: None }
    }

    /// Distributes the reward of `epoch` if its tally is settled and its posting does not exist
    /// yet. Idempotent.
    pub async fn distribute(&self, epoch: Epoch) -> Result<EpochRewardOutcome, ServiceError> {
        let key = Posting::epoch_reward_key(epoch);
        if self
            .deps
            .ledger
            .posting(&key)
            .await
            .map_err(ledger_error("reading a posting"))?
            .is_some()
        {
            return Ok(EpochRewardOutcome::AlreadyPosted);
        }
        let stored = self
            .deps
            .records
            .tally(epoch)
            .await
            .map_err(ServiceError::consensus("epoch_rewards", "reading a tally"))?;
        let Some(stored) = stored.filter(|stored| stored.settled_at.is_some()) else {
            return Ok(EpochRewardOutcome::Waiting);
        };
        let settled_at = stored.settled_at.unwrap_or(stored.computed_at);
        let reward = epoch_reward(&stored.tally, self.deps.budget)
            .map_err(ledger_error("computing the epoch reward"))?;
        let Some(posting) = reward.posting else {
            let reason = reward.no_reward.unwrap_or(NoReward::NoRankedEntities);
            tracing::info!(%epoch, ?reason, "epoch pays no reward");
            return Ok(EpochRewardOutcome::NothingToPay(reason));
        };
        let applied = self
            .deps
            .ledger
            .apply_posting(&posting, settled_at)
            .await
            .map_err(ledger_error("posting the epoch reward"))?;
        let recipients = reward.stubs.iter().filter(|stub| stub.node_reward.0 > 0).count();
        Ok(match applied {
            Applied::Posted => {
                tracing::info!(%epoch, budget = %self.deps.budget, recipients, "epoch reward posted");
                EpochRewardOutcome::Posted
            }
            Applied::AlreadyPosted => EpochRewardOutcome::AlreadyPosted,
        })
    }

    /// Distributes every settled epoch in the look-back window that is not final yet.
    pub async fn catch_up(&mut self, now: UnixMillis) -> Result<(), ServiceError> {
        let time = self.deps.params.time;
        let Ok(slot) = time.slot_of(now) else { return Ok(()) };
        let current = time.epoch_of(slot);
        let Some(last) = current.0.checked_sub(1) else { return Ok(()) };
        let mut first = current.0.saturating_sub(REWARD_LOOKBACK_EPOCHS);
        if let Some(done) = self.final_through {
            first = first.max(done.0.saturating_add(1));
        }
        let mut all_final = true;
        for epoch in (first..=last).map(Epoch) {
            let outcome = self.distribute(epoch).await?;
            // An unsettled epoch may still be settled by the tally keeper's catch-up (an epoch
            // that ended while the node was down), so it holds the mark back; the epochs after
            // it are still paid as they settle (the keeper settles in epoch order).
            all_final &= outcome.is_final();
            if all_final {
                self.final_through = Some(epoch);
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Service for EpochRewardService {
    fn name(&self) -> &'static str {
        "epoch_rewards"
    }

    fn next_due(&self, after: UnixMillis) -> UnixMillis {
        // Tallies are settled at slot starts; waking at every slot start also retries an epoch
        // whose settlement came after this loop's tick at the epoch's first slot.
        let time = self.deps.params.time;
        let next = match time.slot_of(after) {
            Ok(slot) => time.slot_start(lucid_core::Slot(slot.0.saturating_add(1))).ok(),
            Err(_) => Some(time.genesis()),
        };
        next.filter(|at| *at > after).unwrap_or_else(|| after.saturating_add_ms(1_000))
    }

    async fn tick(&mut self, now: UnixMillis) -> Result<(), ServiceError> {
        self.catch_up(now).await
    }
}

#[cfg(test)]
pub(crate) mod tests;
