//! Pay stubs (`pools-payouts.md` §3.3, DECISIONS.md: operators can see why they were paid what
//! they were paid).
//!
//! An epoch stub is recomputed from the settled tally with this node's budget: the settled tally
//! never changes, so the stub is the computation the reward service posted, and it is shown next
//! to what the ledger actually holds under the epoch's posting (they differ only if the budget
//! was changed after posting). A payout stub is the payout with its attempts (on a forwarding
//! node the payer's record), its chain cost, and the node's credits since its previous payout
//! that was not failed or cancelled, read from this node's ledger (every node computes the same
//! earnings, `pools-payouts.md` §5.1).

use lucid_api::Failure;
use lucid_api::dto::{EpochStubPart, EpochStubView, NodeCreditView, PayoutStubView, PoolPartView};
use lucid_core::{Epoch, MicroUsdt, NodeId, UnixMillis};

use crate::money::MoneyRuntime;
use crate::node::State;
use crate::operator::{amount, store_failure, stored_tally};

/// Credits listed on one payout stub at most.
const STUB_CREDITS: usize = 1_000;

fn money(state: &State) -> Result<&MoneyRuntime, Failure> {
    state.money().ok_or_else(|| Failure::FeatureDisabled("the ledger is not wired".to_owned()))
}

/// `GET /nodes/{id}/stubs/epochs/{e}`: the node's stub of a settled epoch, recomputed from the
/// settled tally with this node's budget (the computation the reward service posted), next to
/// what the ledger actually holds under the epoch's posting.
pub(crate) async fn epoch_stub(
    state: &State,
    node: NodeId,
    epoch: Epoch,
) -> Result<EpochStubView, Failure> {
    let money = money(state)?;
    let stored = stored_tally(state, epoch).await?;
    if stored.settled_at.is_none() {
        return Err(Failure::InvalidState(format!(
            "the tally of epoch {} is not settled yet; its stubs exist once it is",
            epoch.0
        )));
    }
    let reward = lucid_payouts::rewards::epoch_reward(&stored.tally, money.epoch_reward).map_err(
        |error| {
            tracing::warn!(%error, %epoch, "computing an epoch reward for a stub failed");
            Failure::Internal
        },
    )?;
    let posting_key = lucid_payouts::ledger::Posting::epoch_reward_key(epoch);
    let posted = money
        .ledger
        .posting(&posting_key)
        .await
        .map_err(store_failure("reading a posting"))?
        .map(|posting| amount(posting.amount_for(&lucid_payouts::ledger::Account::Node(node))));
    let stubs = reward.stubs_of(&node);
    let mut total = MicroUsdt::ZERO;
    for stub in stubs {
        total = total.checked_add(stub.node_reward).map_err(|_| Failure::Internal)?;
    }
    Ok(EpochStubView {
        node_id: node.to_string(),
        epoch: epoch.0,
        tally_digest: stored.tally.digest.to_hex(),
        budget: money.epoch_reward.to_string(),
        no_reward: reward.no_reward.map(|reason| reason.as_str().to_owned()),
        posting_key,
        reward: total.to_string(),
        posted,
        parts: stubs
            .iter()
            .map(|stub| EpochStubPart {
                entity: stub.entity.to_string(),
                entity_credits: stub.entity_credits.to_string(),
                rank: stub.rank,
                density_ppm: stub.density_ppm,
                entity_reward: stub.entity_reward.to_string(),
                pool: stub.pool.map(|part| PoolPartView {
                    pool_id: part.pool.to_string(),
                    pool_credits: part.pool_credits.to_string(),
                    contribution: part.contribution.to_string(),
                }),
                node_reward: stub.node_reward.to_string(),
                unranked: stub.unranked.map(|reason| reason.as_str().to_owned()),
            })
            .collect(),
    })
}

/// `GET /payouts/{id}/stub`.
pub(crate) async fn payout_stub(state: &State, payout_id: &str) -> Result<PayoutStubView, Failure> {
    let money = money(state)?;
    let payout = crate::money_forward::payout(state, payout_id).await?;
    let node: NodeId = payout.node_id.parse().map_err(|error| {
        tracing::warn!(%error, payout_id, "a payout record names no valid node");
        Failure::Internal
    })?;
    let previous = crate::money_forward::previous_paying_payout(state, node, &payout).await?;
    let mut credits = money
        .ledger
        .node_credits(
            &node,
            previous.as_ref().map(|(_, created_at)| *created_at),
            UnixMillis(payout.created_at),
            STUB_CREDITS + 1,
        )
        .await
        .map_err(store_failure("listing a node's credits"))?;
    let credits_truncated = credits.len() > STUB_CREDITS;
    credits.truncate(STUB_CREDITS);
    let mut total = MicroUsdt::ZERO;
    for credit in &credits {
        total = total.checked_add(credit.amount).map_err(|_| Failure::Internal)?;
    }
    // u128: a sum of u64 figures over a handful of attempts cannot overflow it.
    let chain_fee: u128 = payout.attempts.iter().filter_map(|a| a.fee_sun).map(u128::from).sum();
    let energy: u128 = payout.attempts.iter().filter_map(|a| a.energy_used).map(u128::from).sum();
    Ok(PayoutStubView {
        chain_fee_sun: chain_fee.to_string(),
        chain_energy_used: energy.to_string(),
        previous_payout_id: previous.map(|(payout_id, _)| payout_id),
        credits: credits
            .into_iter()
            .map(|credit| NodeCreditView {
                posting_key: credit.posting_key,
                kind: credit.kind.as_str().to_owned(),
                amount: credit.amount.to_string(),
                posted_at: credit.posted_at.0,
            })
            .collect(),
        credits_total: total.to_string(),
        credits_truncated,
        payout,
    })
}
