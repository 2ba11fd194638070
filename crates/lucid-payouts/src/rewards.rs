//! Epoch rewards and pay stubs (pools-payouts.md §3.1, §3.3): the budget of an epoch split across
//! the ranked entities of its settled tally by credits, then each pool's share split across its
//! members by their own credits, as one `epoch_reward:{e}` posting plus one stub per node that
//! explains the number.

use lucid_consensus::params::D_MIN_PPM;
use lucid_consensus::tally::{Tally, TallyEntry};
use lucid_core::money::split_exact;
use lucid_core::{Digest, EntityId, Epoch, MicroUsdt, NodeId, PoolId};

use crate::error::Error;
use crate::ledger::Posting;

/// Why an epoch paid nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoReward {
    /// `economy.epoch_reward_usdt` is zero.
    NoBudget,
    /// The tally ranks no entity.
    NoRankedEntities,
}

impl NoReward {
    /// The wire name (`no_budget`, `no_ranked_entities`).
    pub fn as_str(self) -> &'static str {
        match self {
            NoReward::NoBudget => "no_budget",
            NoReward::NoRankedEntities => "no_ranked_entities",
        }
    }
}

/// Why an entity received nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unranked {
    /// It earned no credits in the window.
    NoCredits,
    /// Its beacon density was below the eligibility line.
    DensityBelowMinimum {
        /// Its density, parts per million.
        density_ppm: u32,
    },
}

impl Unranked {
    /// The wire name (`no_credits`, `density_below_minimum`).
    pub fn as_str(self) -> &'static str {
        match self {
            Unranked::NoCredits => "no_credits",
            Unranked::DensityBelowMinimum { .. } => "density_below_minimum",
        }
    }
}

/// A node's part of a pool's reward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolPart {
    /// The pool.
    pub pool: PoolId,
    /// The pool's credits.
    pub pool_credits: u64,
    /// The node's own credits attributed to the pool.
    pub contribution: u64,
}

/// Why a node was paid what it was paid in one epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochStub {
    /// The node.
    pub node: NodeId,
    /// The epoch.
    pub epoch: Epoch,
    /// The settled tally the reward was computed from.
    pub tally_digest: Digest,
    /// The node's entity (itself, or its pool).
    pub entity: EntityId,
    /// The entity's credits.
    pub entity_credits: u64,
    /// The entity's rank, if ranked.
    pub rank: Option<u32>,
    /// The entity's beacon density.
    pub density_ppm: u32,
    /// The epoch's budget.
    pub budget: MicroUsdt,
    /// What the entity received.
    pub entity_reward: MicroUsdt,
    /// For a pool member: the pool, its credits and the node's contribution.
    pub pool: Option<PoolPart>,
    /// What the node received.
    pub node_reward: MicroUsdt,
    /// Why the entity received nothing, if it did not.
    pub unranked: Option<Unranked>,
    /// Why the whole epoch paid nothing, if it did not.
    pub no_reward: Option<NoReward>,
    /// The posting key (`epoch_reward:{e}`).
    pub posting_key: String,
}

/// The epoch's reward: the posting to apply (if anything is paid) and every node's stub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochReward {
    /// The epoch.
    pub epoch: Epoch,
    /// `None` when nothing is paid; the reason is then `no_reward`.
    pub posting: Option<Posting>,
    /// Why nothing is paid.
    pub no_reward: Option<NoReward>,
    /// One stub per node appearing in the tally, by node.
    pub stubs: Vec<EpochStub>,
}

impl EpochReward {
    /// The stubs of `node`, one per entity its credits counted for in the epoch (itself, a
    /// pool, or both when it joined or left a pool inside the window); empty when the node
    /// does not appear in the tally.
    pub fn stubs_of(&self, node: &NodeId) -> &[EpochStub] {
        let start = self.stubs.partition_point(|stub| stub.node < *node);
        let end = start + self.stubs[start..].partition_point(|stub| stub.node == *node);
        &self.stubs[start..end]
    }
}

fn unranked_reason(entry: &TallyEntry) -> Option<Unranked> {
    if entry.rank.is_some() {
        None
    } else if entry.credits == 0 {
        Some(Unranked::NoCredits)
    } else {
        debug_assert!(entry.density_ppm < D_MIN_PPM);
        Some(Unranked::DensityBelowMinimum { density_ppm: entry.density_ppm })
    }
}

/// Computes the reward of the settled `tally` with `budget`.
///
/// Entity shares: `split_exact(budget, ranked entities weighted by credits)`, ties by entity
/// bytes. A node entity receives its share; a pool's share is split again among members with a
/// contribution above zero (ties by `NodeId`). Members who have left since still receive what
/// they earned, because contributions come from the tally, not from current membership.
pub fn epoch_reward(tally: &Tally, budget: MicroUsdt) -> Result<EpochReward, Error> {
    let epoch = tally.epoch;
    let ranked = tally.ranked();
    let no_reward = if budget.0 == 0 {
        Some(NoReward::NoBudget)
    } else if ranked.is_empty() {
        Some(NoReward::NoRankedEntities)
    } else {
        None
    };
    let entity_shares: Vec<(EntityId, u64)> = if no_reward.is_none() {
        let weights: Vec<(EntityId, u64)> = ranked.iter().map(|e| (e.entity, e.credits)).collect();
        split_exact(budget.0, &weights)
            .map_err(|source| Error::Amount { action: "splitting the epoch budget", source })?
    } else {
        Vec::new()
    };
    // Ranked entries come first in the tally, in rank order, so the i-th share belongs to the
    // i-th entry; unranked entries receive nothing.
    let share_of =
        |index: usize| entity_shares.get(index).map_or(MicroUsdt::ZERO, |(_, s)| MicroUsdt(*s));

    let posting_key = Posting::epoch_reward_key(epoch);
    let mut stubs: Vec<EpochStub> = Vec::new();
    let mut node_shares: Vec<(NodeId, MicroUsdt)> = Vec::new();
    for (index, entry) in tally.entries.iter().enumerate() {
        let entity_reward = share_of(index);
        debug_assert!(entity_shares.get(index).is_none_or(|(e, _)| *e == entry.entity));
        let stub = |node: NodeId, pool: Option<PoolPart>, node_reward: MicroUsdt| EpochStub {
            node,
            epoch,
            tally_digest: tally.digest,
            entity: entry.entity,
            entity_credits: entry.credits,
            rank: entry.rank,
            density_ppm: entry.density_ppm,
            budget,
            entity_reward,
            pool,
            node_reward,
            unranked: unranked_reason(entry),
            no_reward,
            posting_key: posting_key.clone(),
        };
        match entry.entity {
            EntityId::Node(node) => {
                node_shares.push((node, entity_reward));
                stubs.push(stub(node, None, entity_reward));
            }
            EntityId::Pool(pool) => {
                let members = if entity_reward.0 > 0 {
                    lucid_pools::split_pool_share(entity_reward, &entry.contributions).map_err(
                        |error| Error::PoolSplit {
                            epoch,
                            pool,
                            reason: crate::error::PoolSplitFailure::of(&error),
                        },
                    )?
                } else {
                    Vec::new()
                };
                for (node, contribution) in &entry.contributions {
                    // Shares come back ordered by node id.
                    let reward = members
                        .binary_search_by(|(member, _)| member.cmp(node))
                        .map_or(MicroUsdt::ZERO, |at| members[at].1);
                    node_shares.push((*node, reward));
                    let part =
                        PoolPart { pool, pool_credits: entry.credits, contribution: *contribution };
                    stubs.push(stub(*node, Some(part), reward));
                }
            }
        }
    }
    stubs.sort_by(|a, b| a.node.cmp(&b.node).then_with(|| a.entity.cmp(&b.entity)));
    let posting =
        if no_reward.is_none() { Some(Posting::epoch_reward(epoch, &node_shares)?) } else { None };
    if let Some(posting) = &posting {
        // The posting distributes exactly the budget: split_exact sums to it at both levels.
        debug_assert_eq!(
            -posting.amount_for(&crate::ledger::Account::Rewards),
            i64::try_from(budget.0).unwrap_or(i64::MAX)
        );
    }
    Ok(EpochReward { epoch, posting, no_reward, stubs })
}

#[cfg(test)]
mod tests;
