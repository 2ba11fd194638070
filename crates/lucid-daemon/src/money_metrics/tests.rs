//! The counting wrappers over the in-memory money stores: what a committed call did is counted
//! once, a replay, a refusal or a failed call counts nothing, and the text is Prometheus'.

use std::sync::Arc;

use lucid_consensus::testing;
use lucid_core::{Epoch, MicroUsdt, UnixMillis};
use lucid_payouts::ledger::{Posting, PostingKind};
use lucid_payouts::payout::{Origin, PayoutLimits, PayoutStatus};
use lucid_payouts::store::{CreateOutcome, LedgerStore, MemoryPayoutStore, NewPayout, PayoutStore};

use super::*;

fn usdt(n: u64) -> MicroUsdt {
    MicroUsdt(n * 1_000_000)
}

fn request(node: u64, key: &str, gross: MicroUsdt) -> NewPayout {
    NewPayout {
        node: testing::node(node),
        origin: Origin::Withdrawal,
        idempotency_key: format!("wd:{key}"),
        requested: Some(gross),
        to_address: Some([0x41; 21]),
        limits: PayoutLimits::default(),
        max_retries: 3,
        now: UnixMillis(1_000),
    }
}

/// The value of the one sample line that starts with `series ` in `text`.
fn sample(text: &str, series: &str) -> u64 {
    let prefix = format!("{series} ");
    let line = text.lines().find(|line| line.starts_with(&prefix)).unwrap_or_else(|| {
        panic!("no sample {series} in\n{text}");
    });
    line[prefix.len()..].parse().unwrap()
}

#[tokio::test]
async fn committed_postings_and_transitions_are_counted_once_and_replays_not_at_all() {
    let memory = Arc::new(MemoryPayoutStore::new());
    let metrics = Arc::new(MoneyMetrics::new());
    let ledger = CountingLedger::new(memory.clone(), Arc::clone(&metrics));
    let payouts = CountingPayoutStore::new(memory.clone(), Arc::clone(&metrics));

    let reward = Posting::epoch_reward(
        Epoch(1),
        &[(testing::node(1), usdt(700)), (testing::node(2), usdt(30))],
    )
    .unwrap();
    ledger.apply_posting(&reward, UnixMillis(10)).await.unwrap();
    // The identical posting again is a no-op in the ledger, and counts nothing.
    ledger.apply_posting(&reward, UnixMillis(11)).await.unwrap();

    // 600 USDT, then 12.5 USDT: one in the 1 000 USDT bucket, one in the 50 USDT bucket.
    let first = payouts.create_payout(&request(1, "a", usdt(600))).await.unwrap();
    let CreateOutcome::Created(first) = first else { panic!("{first:?}") };
    let second = payouts.create_payout(&request(2, "b", MicroUsdt(12_500_000))).await.unwrap();
    assert!(matches!(second, CreateOutcome::Created(_)), "{second:?}");
    // A replay answers the original payout and counts nothing; so do a conflict and a refusal.
    let replay = payouts.create_payout(&request(1, "a", usdt(600))).await.unwrap();
    assert!(matches!(replay, CreateOutcome::Replayed(_)), "{replay:?}");
    let conflict = payouts.create_payout(&request(1, "a", usdt(601))).await.unwrap();
    assert!(matches!(conflict, CreateOutcome::Conflict(_)), "{conflict:?}");
    let refused = payouts.create_payout(&request(1, "c", usdt(500))).await.unwrap();
    assert!(matches!(refused, CreateOutcome::Refused(_)), "{refused:?}");

    let cancelled = payouts.cancel(&first.payout_id, UnixMillis(20)).await.unwrap();
    assert_eq!(cancelled.status, PayoutStatus::Cancelled);
    // A second cancel is refused by the store and counts nothing.
    assert!(payouts.cancel(&first.payout_id, UnixMillis(21)).await.is_err());

    let text = metrics.render();
    assert_eq!(sample(&text, "lucid_ledger_postings_total{kind=\"epoch_reward\"}"), 1);
    assert_eq!(sample(&text, "lucid_ledger_postings_total{kind=\"payout_reserve\"}"), 2);
    assert_eq!(sample(&text, "lucid_ledger_postings_total{kind=\"payout_release\"}"), 1);
    assert_eq!(sample(&text, "lucid_ledger_postings_total{kind=\"payout_settle\"}"), 0);
    assert_eq!(sample(&text, "lucid_ledger_postings_total{kind=\"session_revenue\"}"), 0);
    assert_eq!(sample(&text, "lucid_payouts_total{status=\"pending\"}"), 2);
    assert_eq!(sample(&text, "lucid_payouts_total{status=\"cancelled\"}"), 1);
    assert_eq!(sample(&text, "lucid_payouts_total{status=\"confirmed\"}"), 0);
    assert_eq!(sample(&text, "lucid_payout_gross_micro_bucket{le=\"10000000\"}"), 0);
    assert_eq!(sample(&text, "lucid_payout_gross_micro_bucket{le=\"50000000\"}"), 1);
    assert_eq!(sample(&text, "lucid_payout_gross_micro_bucket{le=\"500000000\"}"), 1);
    assert_eq!(sample(&text, "lucid_payout_gross_micro_bucket{le=\"1000000000\"}"), 2);
    assert_eq!(sample(&text, "lucid_payout_gross_micro_bucket{le=\"10000000000\"}"), 2);
    assert_eq!(sample(&text, "lucid_payout_gross_micro_bucket{le=\"+Inf\"}"), 2);
    assert_eq!(sample(&text, "lucid_payout_gross_micro_sum"), 612_500_000);
    assert_eq!(sample(&text, "lucid_payout_gross_micro_count"), 2);
    assert_eq!(sample(&text, "lucid_payout_circuit_open"), 0);
    // Bounded labels: no id of a node or a payout appears anywhere.
    assert!(!text.contains("node_"), "{text}");
    assert!(!text.contains(&first.payout_id), "{text}");
    assert!(!text.contains("lucid_hot_wallet"), "no rail reported the hot wallet: {text}");
    memory.audit().unwrap();
}

#[test]
fn the_histogram_buckets_are_the_spec_s_and_cumulative_at_their_bounds() {
    let metrics = MoneyMetrics::new();
    for bound in GROSS_BUCKETS_MICRO {
        metrics.created(MicroUsdt(bound));
    }
    metrics.created(MicroUsdt(GROSS_BUCKETS_MICRO[5] + 1));
    metrics.set_circuit_open(true);
    let text = metrics.render();
    for (i, bound) in GROSS_BUCKETS_MICRO.iter().enumerate() {
        let series = format!("lucid_payout_gross_micro_bucket{{le=\"{bound}\"}}");
        assert_eq!(sample(&text, &series), u64::try_from(i).unwrap() + 1, "{text}");
    }
    assert_eq!(sample(&text, "lucid_payout_gross_micro_bucket{le=\"+Inf\"}"), 7);
    assert_eq!(sample(&text, "lucid_payout_gross_micro_count"), 7);
    assert_eq!(sample(&text, "lucid_payout_circuit_open"), 1);
    for kind in PostingKind::ALL {
        assert!(text.contains(&format!("kind=\"{}\"", kind.as_str())), "{text}");
    }
    for status in PayoutStatus::ALL {
        assert!(text.contains(&format!("status=\"{}\"", status.as_str())), "{text}");
    }
}

#[test]
fn the_hot_wallet_gauges_show_only_what_was_read_in_integer_units() {
    let metrics = MoneyMetrics::new();
    // Never read (or no wallet): no gauge at all rather than a made-up zero.
    assert!(!metrics.render().contains("lucid_hot_wallet"));
    let wallet = lucid_payouts::rail::HotWallet { usdt: usdt(12_345), trx_sun: u64::MAX };
    metrics.set_hot_wallet(Some(wallet));
    let text = metrics.render();
    assert_eq!(sample(&text, "lucid_hot_wallet_usdt_micro"), 12_345_000_000);
    assert_eq!(sample(&text, "lucid_hot_wallet_trx_sun"), u64::MAX);
    assert!(text.contains("# TYPE lucid_hot_wallet_usdt_micro gauge\n"));
    assert!(text.contains("# TYPE lucid_hot_wallet_trx_sun gauge\n"));
    metrics.set_hot_wallet(None);
    assert!(!metrics.render().contains("lucid_hot_wallet"));
}
