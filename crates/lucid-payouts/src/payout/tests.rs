//! Tests of payout rules and the state machine (I11, I12, I16, I20).

use lucid_consensus::testing;
use lucid_core::{MicroUsdt, UnixMillis};
use proptest::prelude::*;

use super::*;

fn usdt(n: u64) -> MicroUsdt {
    MicroUsdt(n * 1_000_000)
}

#[test]
fn fee_examples() {
    // pools-payouts.md §5.2: gross → fee / net.
    for (gross, fee, net) in [
        (10, 100_000, 9_900_000),
        (500, 5_000_000, 495_000_000),
        (2_000, 10_000_000, 1_990_000_000),
        (10_000, 10_000_000, 9_990_000_000),
    ] {
        let amounts = Amounts::for_gross(usdt(gross), &PayoutLimits::default()).unwrap();
        assert_eq!((amounts.fee.0, amounts.net.0), (fee, net), "gross {gross}");
    }
    assert_eq!(fee_for(MicroUsdt(1)), FEE_MIN);
    assert_eq!(fee_for(MicroUsdt(u64::MAX)), FEE_MAX);
}

#[test]
fn limits_can_only_tighten() {
    assert!(PayoutLimits::new(usdt(9), usdt(100)).is_err());
    assert!(PayoutLimits::new(usdt(10), usdt(10_001)).is_err());
    assert!(PayoutLimits::new(usdt(50), usdt(20)).is_err());
    let limits = PayoutLimits::new(usdt(20), usdt(20)).unwrap();
    assert_eq!(
        Amounts::for_gross(usdt(19), &limits),
        Err(Refusal::BelowMinimum { minimum: usdt(20) })
    );
    assert_eq!(
        Amounts::for_gross(usdt(21), &limits),
        Err(Refusal::AboveMaximum { maximum: usdt(20) })
    );
}

#[test]
fn requests() {
    let limits = PayoutLimits::default();
    assert_eq!(Amounts::for_request(None, usdt(15), &limits).unwrap().gross, usdt(15));
    assert_eq!(Amounts::for_request(None, usdt(20_000), &limits).unwrap().gross, usdt(10_000));
    assert_eq!(
        Amounts::for_request(None, usdt(5), &limits),
        Err(Refusal::BelowMinimum { minimum: usdt(10) })
    );
    assert_eq!(
        Amounts::for_request(Some(usdt(12)), usdt(11), &limits),
        Err(Refusal::InsufficientBalance { available: usdt(11) })
    );
}

#[test]
fn keys_and_ids() {
    assert_eq!(withdrawal_key("abc-1_2").unwrap(), "wd:abc-1_2");
    for bad in ["", "a b", "ä", &"x".repeat(65)] {
        assert!(withdrawal_key(bad).is_err(), "{bad:?}");
    }
    let genesis = UnixMillis(1_000);
    assert_eq!(auto_key(UnixMillis(1_000), genesis, 3_600_000), "auto:0");
    assert_eq!(auto_key(UnixMillis(1_000 + 3_600_000 * 5 + 7), genesis, 3_600_000), "auto:5");
    let node = testing::node(1);
    let id = payout_id(&node, "wd:a");
    assert_eq!(id.len(), "payout_".len() + 24);
    assert_eq!(id, payout_id(&node, "wd:a"));
    assert_ne!(id, payout_id(&node, "wd:b"));
    assert_ne!(id, payout_id(&testing::node(2), "wd:a"));
    assert_eq!(replay(usdt(10), usdt(10)), Replay::Same);
    assert_eq!(replay(usdt(10), usdt(11)), Replay::Conflict);
}

#[test]
fn state_machine_table() {
    use PayoutStatus::*;
    let allowed = [
        (Pending, Processing),
        (Pending, Cancelled),
        (Processing, Signed),
        (Processing, Pending),
        (Processing, Failed),
        (Signed, Sent),
        (Signed, Pending),
        (Signed, Failed),
        (Sent, Confirmed),
        (Sent, Pending),
        (Sent, Failed),
    ];
    for from in PayoutStatus::ALL {
        for to in PayoutStatus::ALL {
            assert_eq!(from.can_become(to), allowed.contains(&(from, to)), "{from} -> {to}");
        }
    }
    // I16: cancel only from pending; signed and sent never cancel.
    for from in PayoutStatus::ALL {
        assert_eq!(from.transition(Cancelled).is_ok(), from == Pending);
    }
    assert!(
        PayoutStatus::ALL
            .iter()
            .filter(|s| s.is_terminal())
            .all(|s| PayoutStatus::ALL.iter().all(|t| !s.can_become(*t)))
    );
}

proptest! {
    // I11: no payout outside [minimum, maximum]; fee + net == gross; net > 0.
    #[test]
    fn amount_rules(gross in any::<u64>(), min in 10u64..10_000, extra in 0u64..10_000) {
        let limits = PayoutLimits::new(usdt(min), usdt((min + extra).min(10_000))).unwrap();
        match Amounts::for_gross(MicroUsdt(gross), &limits) {
            Ok(a) => {
                prop_assert!(a.gross >= limits.minimum() && a.gross <= limits.maximum());
                prop_assert_eq!(a.fee.0 + a.net.0, a.gross.0);
                prop_assert!(a.net.0 > 0);
                prop_assert!(a.fee >= FEE_MIN && a.fee <= FEE_MAX);
            }
            Err(Refusal::BelowMinimum { .. }) => prop_assert!(MicroUsdt(gross) < limits.minimum()),
            Err(Refusal::AboveMaximum { .. }) => prop_assert!(MicroUsdt(gross) > limits.maximum()),
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }

    // I20: daily caps hold over any sequence when enabled.
    #[test]
    fn daily_caps(max_count in 0u32..20, max_per_node in 0u32..5, requests in proptest::collection::vec(0u8..4, 0..100)) {
        let caps = DailyCaps { max_count, max_per_node };
        let mut total = 0u32;
        let mut per_node = [0u32; 4];
        for node in requests {
            if caps.allows(total, per_node[node as usize]) {
                total += 1;
                per_node[node as usize] += 1;
            }
            if max_count > 0 { prop_assert!(total <= max_count); }
            if max_per_node > 0 { prop_assert!(per_node.iter().all(|n| *n <= max_per_node)); }
        }
    }
}
