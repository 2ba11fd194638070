//! The double-entry ledger: accounts, postings of entries that sum to zero, and the in-memory
//! `Ledger` whose semantics every persistent ledger must match (pools-payouts.md §4).
//!
//! Entries are immutable. A posting is identified by its key: posting it again with identical
//! entries is a no-op, with different entries a conflict. Balances change only through postings,
//! and a posting that would take a non-negative account below zero is refused whole.

use std::collections::BTreeMap;
use std::fmt;

use lucid_core::{Epoch, MicroUsdt, NodeId};

use crate::error::Error;

/// Commission on session revenue, in basis points (5 %).
pub const SESSION_COMMISSION_BPS: u32 = 500;
/// Longest posting key.
pub const MAX_POSTING_KEY: usize = 128;

/// A ledger account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Account {
    /// A node's available balance (never negative).
    Node(NodeId),
    /// Commission and payout fees (never negative).
    Treasury,
    /// Source of epoch rewards (goes negative by what was distributed).
    Rewards,
    /// Source of session revenue (goes negative by what was earned).
    Sessions,
    /// Gross reserved for payouts that are not final (never negative).
    InFlight,
    /// Net paid on chain (never negative).
    Chain,
}

impl Account {
    /// Whether the account may hold a negative balance (only the sources may).
    pub fn may_go_negative(&self) -> bool {
        matches!(self, Account::Rewards | Account::Sessions)
    }

    /// The stored name: `node:<node_id>`, `treasury`, `rewards`, `sessions`, `in_flight`, `chain`.
    pub fn name(&self) -> String {
        match self {
            Account::Node(node) => format!("node:{node}"),
            Account::Treasury => "treasury".to_owned(),
            Account::Rewards => "rewards".to_owned(),
            Account::Sessions => "sessions".to_owned(),
            Account::InFlight => "in_flight".to_owned(),
            Account::Chain => "chain".to_owned(),
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "treasury" => Some(Account::Treasury),
            "rewards" => Some(Account::Rewards),
            "sessions" => Some(Account::Sessions),
            "in_flight" => Some(Account::InFlight),
            "chain" => Some(Account::Chain),
            _ => name.strip_prefix("node:")?.parse().ok().map(Account::Node),
        }
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// What a posting records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PostingKind {
    /// An epoch's reward distribution (`epoch_reward:{e}`).
    EpochReward,
    /// Revenue of one session (`session:{id}`).
    SessionRevenue,
    /// Gross reserved for a payout (`payout_reserve:{payout_id}`).
    PayoutReserve,
    /// A reservation returned to the node (`payout_release:{payout_id}`).
    PayoutRelease,
    /// A confirmed payout: net to chain, fee to treasury (`payout_settle:{payout_id}`).
    PayoutSettle,
}

impl PostingKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            PostingKind::EpochReward => "epoch_reward",
            PostingKind::SessionRevenue => "session_revenue",
            PostingKind::PayoutReserve => "payout_reserve",
            PostingKind::PayoutRelease => "payout_release",
            PostingKind::PayoutSettle => "payout_settle",
        }
    }

    /// Every kind.
    pub const ALL: [PostingKind; 5] = [
        PostingKind::EpochReward,
        PostingKind::SessionRevenue,
        PostingKind::PayoutReserve,
        PostingKind::PayoutRelease,
        PostingKind::PayoutSettle,
    ];

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        PostingKind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// Whether postings of this kind credit earnings (epoch rewards, session revenue) rather
    /// than move a payout's reservation; only these may be posted on their own
    /// (`LedgerStore::apply_posting`), the others belong to a payout transition.
    pub fn is_credit(self) -> bool {
        matches!(self, PostingKind::EpochReward | PostingKind::SessionRevenue)
    }
}

/// One immutable line of a posting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    /// The account.
    pub account: Account,
    /// Signed micro-USDT; never zero.
    pub amount: i64,
}

/// A balanced set of entries under a unique key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Posting {
    key: String,
    kind: PostingKind,
    /// Sorted by account, one entry per account.
    entries: Vec<Entry>,
}

fn signed(amount: MicroUsdt, action: &'static str) -> Result<i64, Error> {
    amount.to_signed().map_err(|source| Error::Amount { action, source })
}

impl Posting {
    /// A posting after checking it: a printable key of at most 128 bytes, at least two entries,
    /// one per account, no zero amount, and a sum of exactly zero.
    pub fn new(key: String, kind: PostingKind, mut entries: Vec<Entry>) -> Result<Self, Error> {
        let invalid = |rule| Error::InvalidPosting { key: key.clone(), rule };
        if key.is_empty()
            || key.len() > MAX_POSTING_KEY
            || !key.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(invalid("the key must be 1..=128 printable ASCII characters"));
        }
        if entries.len() < 2 {
            return Err(invalid("a posting needs at least two entries"));
        }
        entries.sort_unstable_by_key(|entry| entry.account);
        if entries.windows(2).any(|pair| pair[0].account == pair[1].account) {
            return Err(invalid("each account may appear once"));
        }
        if entries.iter().any(|entry| entry.amount == 0) {
            return Err(invalid("entries must not be zero"));
        }
        let sum: i128 = entries.iter().map(|entry| i128::from(entry.amount)).sum();
        if sum != 0 {
            return Err(invalid("entries must sum to zero"));
        }
        Ok(Posting { key, kind, entries })
    }

    /// The unique key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The kind.
    pub fn kind(&self) -> PostingKind {
        self.kind
    }

    /// The entries, sorted by account.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The amount posted to `account` (0 if absent).
    pub fn amount_for(&self, account: &Account) -> i64 {
        self.entries.iter().find(|entry| entry.account == *account).map_or(0, |entry| entry.amount)
    }

    /// The key of epoch `epoch`'s reward posting, `epoch_reward:{e}`: one posting per epoch.
    pub fn epoch_reward_key(epoch: Epoch) -> String {
        format!("epoch_reward:{}", epoch.0)
    }

    /// `epoch_reward:{e}`: rewards −B; each recipient +share. Zero shares are left out; the
    /// budget posted is the sum of the shares, so it always balances.
    pub fn epoch_reward(epoch: Epoch, shares: &[(NodeId, MicroUsdt)]) -> Result<Self, Error> {
        let mut per_node: BTreeMap<NodeId, i64> = BTreeMap::new();
        let mut total: i64 = 0;
        for (node, share) in shares.iter().filter(|(_, share)| share.0 > 0) {
            let amount = signed(*share, "summing epoch reward shares")?;
            let slot = per_node.entry(*node).or_insert(0);
            *slot = slot.checked_add(amount).ok_or(Error::Amount {
                action: "summing epoch reward shares",
                source: lucid_core::AmountError::Overflow,
            })?;
            total = total.checked_add(amount).ok_or(Error::Amount {
                action: "summing epoch reward shares",
                source: lucid_core::AmountError::Overflow,
            })?;
        }
        let mut entries: Vec<Entry> = per_node
            .into_iter()
            .map(|(node, amount)| Entry { account: Account::Node(node), amount })
            .collect();
        entries.push(Entry { account: Account::Rewards, amount: -total });
        Posting::new(Posting::epoch_reward_key(epoch), PostingKind::EpochReward, entries)
    }

    /// `session:{id}`: sessions −r; node +(r − c); treasury +c with c = 5 % rounded half up.
    pub fn session_revenue(
        session_id: &str,
        node: NodeId,
        revenue: MicroUsdt,
    ) -> Result<Self, Error> {
        let commission = revenue
            .bps_round_half_up(SESSION_COMMISSION_BPS)
            .map_err(|source| Error::Amount { action: "computing the commission", source })?;
        let to_node = revenue
            .checked_sub(commission)
            .map_err(|source| Error::Amount { action: "computing the node's revenue", source })?;
        let mut entries = vec![
            Entry {
                account: Account::Sessions,
                amount: -signed(revenue, "posting session revenue")?,
            },
            Entry {
                account: Account::Node(node),
                amount: signed(to_node, "posting session revenue")?,
            },
        ];
        if commission.0 > 0 {
            entries.push(Entry {
                account: Account::Treasury,
                amount: signed(commission, "posting commission")?,
            });
        }
        Posting::new(format!("session:{session_id}"), PostingKind::SessionRevenue, entries)
    }

    /// `payout_reserve:{id}`: node −gross; in_flight +gross.
    pub fn payout_reserve(payout_id: &str, node: NodeId, gross: MicroUsdt) -> Result<Self, Error> {
        let gross = signed(gross, "reserving a payout")?;
        Posting::new(
            format!("payout_reserve:{payout_id}"),
            PostingKind::PayoutReserve,
            vec![
                Entry { account: Account::Node(node), amount: -gross },
                Entry { account: Account::InFlight, amount: gross },
            ],
        )
    }

    /// `payout_release:{id}`: in_flight −gross; node +gross.
    pub fn payout_release(payout_id: &str, node: NodeId, gross: MicroUsdt) -> Result<Self, Error> {
        let gross = signed(gross, "releasing a payout")?;
        Posting::new(
            format!("payout_release:{payout_id}"),
            PostingKind::PayoutRelease,
            vec![
                Entry { account: Account::InFlight, amount: -gross },
                Entry { account: Account::Node(node), amount: gross },
            ],
        )
    }

    /// `payout_settle:{id}`: in_flight −gross; chain +net; treasury +fee (gross = net + fee).
    pub fn payout_settle(payout_id: &str, net: MicroUsdt, fee: MicroUsdt) -> Result<Self, Error> {
        let gross = net
            .checked_add(fee)
            .map_err(|source| Error::Amount { action: "settling a payout", source })?;
        let mut entries = vec![
            Entry { account: Account::InFlight, amount: -signed(gross, "settling a payout")? },
            Entry { account: Account::Chain, amount: signed(net, "settling a payout")? },
        ];
        if fee.0 > 0 {
            entries.push(Entry {
                account: Account::Treasury,
                amount: signed(fee, "settling a payout")?,
            });
        }
        Posting::new(format!("payout_settle:{payout_id}"), PostingKind::PayoutSettle, entries)
    }
}

/// What applying a posting did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The posting was new and is now recorded.
    Posted,
    /// The identical posting was recorded before; nothing changed.
    AlreadyPosted,
}

/// A node's money, as the operator sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeBalance {
    /// Everything credited by epoch rewards and session revenue.
    pub earned: i64,
    /// Gross of the node's payouts that are reserved and not yet final.
    pub reserved: i64,
    /// Gross of the node's settled payouts.
    pub paid: i64,
    /// The node account's balance.
    pub available: i64,
}

/// The in-memory ledger: the reference semantics of every persistent ledger.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    balances: BTreeMap<Account, i64>,
    postings: BTreeMap<String, Posting>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies `posting` atomically: all entries or none.
    pub fn apply(&mut self, posting: &Posting) -> Result<Applied, Error> {
        if let Some(existing) = self.postings.get(posting.key()) {
            return if existing == posting {
                Ok(Applied::AlreadyPosted)
            } else {
                Err(Error::PostingConflict { key: posting.key.clone() })
            };
        }
        let mut updated: Vec<(Account, i64)> = Vec::with_capacity(posting.entries.len());
        for entry in &posting.entries {
            let current = self.balance(&entry.account);
            let next = current.checked_add(entry.amount).ok_or(Error::Amount {
                action: "updating a balance",
                source: lucid_core::AmountError::Overflow,
            })?;
            if next < 0 && !entry.account.may_go_negative() {
                return Err(Error::Overdraft {
                    key: posting.key.clone(),
                    account: entry.account.name(),
                });
            }
            updated.push((entry.account, next));
        }
        self.balances.extend(updated);
        self.postings.insert(posting.key.clone(), posting.clone());
        Ok(Applied::Posted)
    }

    /// The balance of `account` (0 if it never had an entry).
    pub fn balance(&self, account: &Account) -> i64 {
        self.balances.get(account).copied().unwrap_or(0)
    }

    /// Every account that ever had an entry, with its balance, by account.
    pub fn balances(&self) -> impl Iterator<Item = (Account, i64)> + '_ {
        self.balances.iter().map(|(account, balance)| (*account, *balance))
    }

    /// The posting recorded under `key`.
    pub fn posting(&self, key: &str) -> Option<&Posting> {
        self.postings.get(key)
    }

    /// Every posting, by key.
    pub fn postings(&self) -> impl Iterator<Item = &Posting> {
        self.postings.values()
    }

    /// The node's balance view, derived from the postings.
    pub fn node_balance(&self, node: &NodeId) -> NodeBalance {
        let account = Account::Node(*node);
        let mut view = NodeBalance { available: self.balance(&account), ..NodeBalance::default() };
        for posting in self.postings.values() {
            let amount = posting.amount_for(&account);
            match posting.kind {
                PostingKind::EpochReward | PostingKind::SessionRevenue => view.earned += amount,
                PostingKind::PayoutReserve if amount != 0 => {
                    // A reservation is reserved until its release or settlement is posted.
                    let id = posting.key.trim_start_matches("payout_reserve:");
                    let released = self.postings.contains_key(&format!("payout_release:{id}"));
                    let settled = self.postings.contains_key(&format!("payout_settle:{id}"));
                    if settled {
                        view.paid -= amount;
                    } else if !released {
                        view.reserved -= amount;
                    }
                }
                _ => {}
            }
        }
        view
    }

    /// Checks the ledger's invariants: every posting balances, Σ balances == 0, balances equal the
    /// sums of their entries, non-negative accounts are non-negative.
    pub fn audit(&self) -> Result<(), String> {
        let mut sums: BTreeMap<Account, i128> = BTreeMap::new();
        for posting in self.postings.values() {
            let total: i128 = posting.entries.iter().map(|e| i128::from(e.amount)).sum();
            if total != 0 {
                return Err(format!("posting {} does not balance", posting.key));
            }
            for entry in &posting.entries {
                *sums.entry(entry.account).or_insert(0) += i128::from(entry.amount);
            }
        }
        for (account, balance) in &self.balances {
            if sums.get(account).copied().unwrap_or(0) != i128::from(*balance) {
                return Err(format!("balance of {account} differs from its entries"));
            }
            if *balance < 0 && !account.may_go_negative() {
                return Err(format!("{account} is negative"));
            }
        }
        let total: i128 = self.balances.values().map(|b| i128::from(*b)).sum();
        if total != 0 {
            return Err(format!("balances sum to {total}, not zero"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
