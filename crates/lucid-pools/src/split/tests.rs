//! Tests of the pool share split: exact table cases, the error when nobody contributed, and the
//! property I7 (Σ shares == amount, within one micro of proportional, deterministic ties).

use lucid_core::{ErrorKind, HasKind, MicroUsdt, NodeId};
use proptest::prelude::*;

use super::*;
use crate::test_support::node;

fn sorted_nodes(count: usize) -> Vec<NodeId> {
    let mut nodes: Vec<NodeId> = (0..count).map(node).collect();
    nodes.sort();
    nodes
}

#[test]
fn equal_contributions_give_the_remainder_to_the_smallest_node_ids() {
    let n = sorted_nodes(3);
    // Input order must not matter: pass them largest id first.
    let shares = split_pool_share(MicroUsdt(100), &[(n[2], 5), (n[0], 5), (n[1], 5)]).unwrap();
    assert_eq!(shares, vec![(n[0], MicroUsdt(34)), (n[1], MicroUsdt(33)), (n[2], MicroUsdt(33))]);
    let shares = split_pool_share(MicroUsdt(101), &[(n[2], 5), (n[0], 5), (n[1], 5)]).unwrap();
    assert_eq!(shares, vec![(n[0], MicroUsdt(34)), (n[1], MicroUsdt(34)), (n[2], MicroUsdt(33))]);
}

#[test]
fn proportional_split_with_largest_remainders() {
    let n = sorted_nodes(3);
    // 1_000_000 · (1, 2, 4) / 7 = 142_857.14, 285_714.28, 571_428.57: the largest remainder (n2)
    // gets the one leftover micro.
    let shares =
        split_pool_share(MicroUsdt(1_000_000), &[(n[0], 1), (n[1], 2), (n[2], 4)]).unwrap();
    assert_eq!(
        shares,
        vec![(n[0], MicroUsdt(142_857)), (n[1], MicroUsdt(285_714)), (n[2], MicroUsdt(571_429))]
    );
}

#[test]
fn zero_contributors_are_left_out_and_duplicates_add_up() {
    let n = sorted_nodes(3);
    let shares =
        split_pool_share(MicroUsdt(90), &[(n[0], 0), (n[1], 1), (n[2], 1), (n[1], 1)]).unwrap();
    assert_eq!(shares, vec![(n[1], MicroUsdt(60)), (n[2], MicroUsdt(30))]);
}

#[test]
fn a_zero_amount_gives_zero_shares() {
    let n = sorted_nodes(2);
    let shares = split_pool_share(MicroUsdt(0), &[(n[0], 3), (n[1], 1)]).unwrap();
    assert_eq!(shares, vec![(n[0], MicroUsdt(0)), (n[1], MicroUsdt(0))]);
}

#[test]
fn no_contributor_is_an_error_so_money_never_vanishes() {
    let n = sorted_nodes(2);
    for contributions in [vec![], vec![(n[0], 0), (n[1], 0)]] {
        let error = split_pool_share(MicroUsdt(5_000_000), &contributions).unwrap_err();
        assert!(matches!(error, Error::NoContributors { amount: MicroUsdt(5_000_000) }));
        assert_eq!(error.kind(), ErrorKind::InvalidInput);
    }
}

#[test]
fn overflowing_duplicate_weights_are_an_error() {
    let n = sorted_nodes(1);
    let error = split_pool_share(MicroUsdt(1), &[(n[0], u64::MAX), (n[0], 1)]).unwrap_err();
    assert!(matches!(error, Error::Split { .. }));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// I7 for the pool split.
    #[test]
    fn shares_sum_to_the_amount_and_are_proportional(
        amount in prop_oneof![0..1_000u64, any::<u64>()],
        contributions in proptest::collection::vec((0..100usize, prop_oneof![Just(0u64), 1..1_000u64, 1..u64::MAX / 200]), 1..60),
        seed in any::<u64>(),
    ) {
        let contributions: Vec<(NodeId, u64)> =
            contributions.into_iter().map(|(i, w)| (node(i), w)).collect();
        let result = split_pool_share(MicroUsdt(amount), &contributions);
        let mut merged = std::collections::BTreeMap::new();
        for (n, w) in &contributions {
            if *w > 0 {
                *merged.entry(*n).or_insert(0u128) += u128::from(*w);
            }
        }
        if merged.is_empty() {
            let is_no_contributors = matches!(result, Err(Error::NoContributors { .. }));
            prop_assert!(is_no_contributors);
            return Ok(());
        }
        let shares = result.unwrap();
        // Only contributors, each once, ordered by NodeId.
        let ids: Vec<NodeId> = shares.iter().map(|(n, _)| *n).collect();
        prop_assert_eq!(ids, merged.keys().copied().collect::<Vec<_>>());
        // Σ shares == amount.
        let total: u128 = shares.iter().map(|(_, s)| u128::from(s.0)).sum();
        prop_assert_eq!(total, u128::from(amount));
        // Each share within one micro of the exact proportion.
        let weight_sum: u128 = merged.values().sum();
        for (n, share) in &shares {
            let exact_times_sum = u128::from(amount) * merged[n];
            let share_times_sum = u128::from(share.0) * weight_sum;
            prop_assert!(share_times_sum.abs_diff(exact_times_sum) < weight_sum);
        }
        // Deterministic: any input order gives the same shares.
        let mut rotated = contributions.clone();
        let len = rotated.len();
        rotated.rotate_left((seed as usize) % len);
        rotated.reverse();
        prop_assert_eq!(split_pool_share(MicroUsdt(amount), &rotated).unwrap(), shares);
    }
}
