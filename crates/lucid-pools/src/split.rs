//! The split of a pool's reward share among its members (`pools-payouts.md` §3.1 step 3).
//!
//! `split_exact(entity_share, members weighted by their contribution credits)`, ties by `NodeId`:
//! only members with a contribution above zero take part, so the weights sum to the pool's
//! credits. Members who left or were banned since still receive what they earned; this function
//! does not look at membership at all. A share with no contributing member is an error, never an
//! empty split: the earlier implementation let such money vanish.

use std::collections::BTreeMap;

use lucid_core::money::split_exact;
use lucid_core::{MicroUsdt, NodeId};

use crate::error::Error;

/// Splits `amount` among the nodes of `contributions` in proportion to their credits.
///
/// Nodes with zero credits are left out; a node listed twice counts with the sum of its entries.
/// The result is ordered by `NodeId`, its shares sum to `amount` exactly, and each share is
/// within one micro-USDT of the exact proportion (largest remainder, ties by `NodeId`).
pub fn split_pool_share(
    amount: MicroUsdt,
    contributions: &[(NodeId, u64)],
) -> Result<Vec<(NodeId, MicroUsdt)>, Error> {
    let mut weights: BTreeMap<NodeId, u64> = BTreeMap::new();
    for (node, credits) in contributions.iter().filter(|(_, credits)| *credits > 0) {
        let weight = weights.entry(*node).or_insert(0);
        *weight = weight
            .checked_add(*credits)
            .ok_or(Error::Split { amount, source: lucid_core::AmountError::Overflow })?;
    }
    if weights.is_empty() {
        return Err(Error::NoContributors { amount });
    }
    let weights: Vec<(NodeId, u64)> = weights.into_iter().collect();
    let shares =
        split_exact(amount.0, &weights).map_err(|source| Error::Split { amount, source })?;
    Ok(shares.into_iter().map(|(node, share)| (node, MicroUsdt(share))).collect())
}

#[cfg(test)]
mod tests;
