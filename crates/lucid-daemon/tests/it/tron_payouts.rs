//! The payout processor (with `MemoryPayoutStore`) paying through `TronRail`, the TRON client and
//! the reqwest transport against the FAKE TRON node of `lucid-testkit` over real loopback HTTP,
//! with each fault the fake injects. Time is the fake chain's: every step runs at the head
//! block's timestamp, and the test produces blocks; nothing sleeps.

use std::sync::Arc;
use std::time::Duration;

use lucid_consensus::testing;
use lucid_core::{Epoch, MicroUsdt, NodeId, UnixMillis};
use lucid_daemon::tron_transport::{ReqwestTronTransport, TronTransportConfig};
use lucid_payouts::ledger::Posting;
use lucid_payouts::payout::{Origin, PayoutLimits, PayoutStatus, withdrawal_key};
use lucid_payouts::processor::{Processor, ProcessorConfig, StepReport};
use lucid_payouts::rail::ChainAddress;
use lucid_payouts::store::{
    AttemptStatus, CreateOutcome, MemoryPayoutStore, NewPayout, PayoutStore,
};
use lucid_payouts::testing::{CrashSwitch, CrashingStore, Rng};
use lucid_payouts::tron::transport::{Endpoint, TronTransport};
use lucid_payouts::tron::tx::sign_transfer;
use lucid_payouts::tron::{
    BlockRef, BuildMode, HotWalletKey, TransferParams, TronAddress, TronClient, TronRail,
    TronRailConfig,
};
use lucid_testkit::fake_tron::{FakeTronConfig, FakeTronNode, FakeTxState, Fault};

const HOT_SECRET: [u8; 32] = [0x11; 32];
const NODE_SEED: [u8; 32] = [0x22; 32];
const USDT: &str = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t";
const DEAD_MARGIN_MS: i64 = 120_000;
const MAX_STEPS: usize = 300;

fn usdt(n: u64) -> u64 {
    n * 1_000_000
}

fn destination(index: u8) -> ChainAddress {
    let mut address = [0x30 + index; 21];
    address[0] = 0x41;
    address
}

struct Harness {
    fake: FakeTronNode,
    store: Arc<MemoryPayoutStore>,
    rail: Arc<TronRail>,
    config: ProcessorConfig,
    processor: Processor,
    hot_wallet: ChainAddress,
    nodes: Vec<NodeId>,
    ids: Vec<String>,
    /// Step errors seen (transport failures are retried by the next step).
    errors: Vec<lucid_payouts::Error>,
}

struct Setup {
    build: BuildMode,
    max_retries: u32,
    hot_usdt: u64,
    hot_trx_sun: u64,
    payouts: Vec<u64>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            build: BuildMode::Local,
            max_retries: 3,
            hot_usdt: usdt(1_000),
            hot_trx_sun: 1_000_000_000,
            payouts: vec![25],
        }
    }
}

async fn harness(setup: Setup) -> Harness {
    let contract = TronAddress::from_base58(USDT).unwrap();
    let key = HotWalletKey::from_bytes(&HOT_SECRET, &NODE_SEED).unwrap();
    let hot_wallet = *key.address().as_bytes();
    // Two derivations of the hot wallet's address, written independently, must agree.
    assert_eq!(lucid_testkit::fake_tron::address_of_secret(&HOT_SECRET), Some(hot_wallet));

    let fake = FakeTronNode::start(FakeTronConfig::new(*contract.as_bytes())).await.unwrap();
    fake.produce_blocks(5);
    fake.set_usdt(hot_wallet, setup.hot_usdt);
    fake.set_trx(hot_wallet, setup.hot_trx_sun);

    let transport = ReqwestTronTransport::new(&TronTransportConfig {
        // Long enough for a loaded machine, short enough for the timeout fault's one wait.
        request_timeout: Duration::from_secs(2),
        ..TronTransportConfig::new(&fake.url())
    })
    .unwrap();
    // No immediate retries inside the client: the processor sees every unknown outcome.
    let client = TronClient::new(Arc::new(transport), 0);
    let config = TronRailConfig { build: setup.build, ..TronRailConfig::new(contract) };
    let rail = TronRail::new(client, key, config).unwrap();

    let store = Arc::new(MemoryPayoutStore::new());
    let nodes: Vec<NodeId> = (1..=4).map(testing::node).collect();
    let credits: Vec<_> = nodes.iter().map(|node| (*node, MicroUsdt(usdt(10_000)))).collect();
    store.post(&Posting::epoch_reward(Epoch(1), &credits).unwrap()).unwrap();
    let mut ids = Vec::new();
    for (index, gross) in setup.payouts.iter().enumerate() {
        let request = NewPayout {
            node: nodes[index % nodes.len()],
            origin: Origin::Withdrawal,
            idempotency_key: withdrawal_key(&format!("k{index}")).unwrap(),
            requested: Some(MicroUsdt(usdt(*gross))),
            to_address: Some(destination(u8::try_from(index).unwrap())),
            limits: PayoutLimits::default(),
            max_retries: setup.max_retries,
            now: UnixMillis(fake.head().1),
        };
        match store.create_payout(&request).await.unwrap() {
            CreateOutcome::Created(payout) => ids.push(payout.payout_id),
            other => panic!("{other:?}"),
        }
    }
    let config = ProcessorConfig {
        dead_margin_ms: DEAD_MARGIN_MS,
        lease_ms: 30_000,
        ..ProcessorConfig::default()
    };
    let rail = Arc::new(rail);
    let processor = Processor::new(store.clone(), rail.clone(), config, "worker-1".to_owned());
    Harness { fake, store, rail, config, processor, hot_wallet, nodes, ids, errors: Vec::new() }
}

impl Harness {
    fn now(&self) -> UnixMillis {
        UnixMillis(self.fake.head().1)
    }

    /// One processor step at the chain's time, then one block.
    async fn step(&mut self) -> Option<StepReport> {
        let report = match self.processor.step(self.now()).await {
            Ok(report) => Some(report),
            Err(error) => {
                self.errors.push(error);
                None
            }
        };
        self.store.audit().unwrap();
        self.fake.produce_blocks(1);
        report
    }

    async fn status(&self, index: usize) -> PayoutStatus {
        self.store.get(&self.ids[index]).await.unwrap().status
    }

    async fn all_terminal(&self) -> bool {
        for index in 0..self.ids.len() {
            if !self.status(index).await.is_terminal() {
                return false;
            }
        }
        true
    }

    async fn run_to_end(&mut self) {
        for _ in 0..MAX_STEPS {
            if self.all_terminal().await {
                return;
            }
            self.step().await;
        }
        panic!("payouts not final after {MAX_STEPS} steps; errors: {:?}", self.errors);
    }

    /// Every confirmed payout has exactly one successful transfer on the fake chain, to its
    /// address, of its net, by the attempt the store confirmed; nothing is reserved at the end.
    async fn check_final(&self) {
        self.store.audit().unwrap();
        let transfers = self.fake.successful_transfers();
        for id in &self.ids {
            let payout = self.store.get(id).await.unwrap();
            let attempts = self.store.attempts(id).await.unwrap();
            let txids: Vec<[u8; 32]> = attempts.iter().map(|a| a.transfer.txid).collect();
            let landed: Vec<_> = transfers.iter().filter(|tx| txids.contains(&tx.txid)).collect();
            match payout.status {
                PayoutStatus::Confirmed => {
                    assert_eq!(landed.len(), 1, "{id}: {landed:?}");
                    assert_eq!(landed[0].to, payout.to_address);
                    assert_eq!(landed[0].amount, payout.amounts.net.0);
                    assert_eq!(landed[0].owner, self.hot_wallet);
                    let confirmed: Vec<_> =
                        attempts.iter().filter(|a| a.status == AttemptStatus::Confirmed).collect();
                    assert_eq!(confirmed.len(), 1);
                    assert_eq!(confirmed[0].transfer.txid, landed[0].txid);
                }
                PayoutStatus::Failed => assert!(landed.is_empty(), "{id} failed but paid"),
                other => panic!("{id} ended {other:?}"),
            }
        }
        for node in &self.nodes {
            let balance = self.store.balance(node).await.unwrap();
            assert_eq!(balance.reserved, 0, "{node:?}");
            assert_eq!(balance.earned, balance.available + balance.paid, "{node:?}");
        }
    }
}

#[tokio::test]
async fn several_payouts_are_paid_exactly_once() {
    let payouts = vec![10, 25, 250, 10_000, 42];
    let mut h = harness(Setup { payouts, hot_usdt: usdt(20_000), ..Setup::default() }).await;
    let hot_before = h.fake.usdt(&h.hot_wallet);
    h.run_to_end().await;
    h.check_final().await;
    let mut net_total = 0;
    for index in 0..h.ids.len() {
        assert_eq!(h.status(index).await, PayoutStatus::Confirmed);
        let payout = h.store.get(&h.ids[index]).await.unwrap();
        assert_eq!(h.fake.usdt(&payout.to_address), payout.amounts.net.0);
        net_total += payout.amounts.net.0;
    }
    assert_eq!(h.fake.transactions().len(), 5);
    assert_eq!(h.fake.usdt(&h.hot_wallet), hot_before - net_total);
    // Energy was paid for in burned TRX, within the signed fee limits.
    assert!(h.fake.trx(&h.hot_wallet) < 1_000_000_000);
}

#[tokio::test]
async fn a_lost_broadcast_response_never_leads_to_a_second_transaction() {
    let mut h = harness(Setup::default()).await;
    h.fake.inject(Fault::DropResponseAfterAccept);
    let report = h.step().await.unwrap();
    assert_eq!((report.signed, report.broadcasts, report.sent), (1, 1, 0));
    // The fake accepted it, the processor does not know: the payout stays signed.
    assert_eq!(h.fake.transactions().len(), 1);
    assert_eq!(h.status(0).await, PayoutStatus::Signed);
    h.run_to_end().await;
    h.check_final().await;
    assert_eq!(h.status(0).await, PayoutStatus::Confirmed);
    assert_eq!(h.fake.transactions().len(), 1, "a second transaction was built");
    assert_eq!(h.store.attempts(&h.ids[0]).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_timed_out_broadcast_is_sent_again_with_the_same_bytes() {
    let mut h = harness(Setup::default()).await;
    h.fake.inject(Fault::Timeout);
    h.step().await;
    assert_eq!(h.fake.pending_faults(), 0);
    assert_eq!(h.fake.transactions().len(), 0, "the timed-out broadcast was not accepted");
    assert_eq!(h.status(0).await, PayoutStatus::Signed);
    h.run_to_end().await;
    h.check_final().await;
    assert_eq!(h.status(0).await, PayoutStatus::Confirmed);
    let attempts = h.store.attempts(&h.ids[0]).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(h.fake.transactions().len(), 1);
    assert_eq!(h.fake.transactions()[0].txid, attempts[0].transfer.txid);
    assert!(h.fake.broadcast_calls() >= 2);
}

#[tokio::test]
async fn an_expired_transaction_is_replaced_only_after_it_is_proven_dead() {
    let mut h = harness(Setup::default()).await;
    h.fake.inject(Fault::Expire);
    let mut second_seen_at = None;
    for _ in 0..MAX_STEPS {
        if h.all_terminal().await {
            break;
        }
        h.step().await;
        if second_seen_at.is_none() && h.fake.transactions().len() >= 2 {
            // The step that built it ran at the previous head time.
            second_seen_at = Some(h.fake.head().1 - 3_000);
        }
    }
    h.check_final().await;
    assert_eq!(h.status(0).await, PayoutStatus::Confirmed);
    let txs = h.fake.transactions();
    assert_eq!(txs.len(), 2);
    assert_eq!(txs[0].state, FakeTxState::Dropped);
    assert!(second_seen_at.unwrap() > txs[0].expiration + DEAD_MARGIN_MS);
    let attempts = h.store.attempts(&h.ids[0]).await.unwrap();
    let statuses: Vec<_> = attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [AttemptStatus::Expired, AttemptStatus::Confirmed]);
}

#[tokio::test]
async fn out_of_energy_fails_the_payout_and_releases_the_reservation_once() {
    let mut h = harness(Setup { max_retries: 0, ..Setup::default() }).await;
    let trx_before = h.fake.trx(&h.hot_wallet);
    h.fake.inject(Fault::OutOfEnergy);
    h.run_to_end().await;
    h.check_final().await;
    assert_eq!(h.status(0).await, PayoutStatus::Failed);
    let txs = h.fake.transactions();
    assert_eq!(txs.len(), 1);
    assert!(matches!(txs[0].state, FakeTxState::Included { result: "OUT_OF_ENERGY", .. }));
    assert!(h.fake.trx(&h.hot_wallet) < trx_before, "the fee limit burned");
    let attempts = h.store.attempts(&h.ids[0]).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status, AttemptStatus::Reverted);
    let balance = h.store.balance(&h.nodes[0]).await.unwrap();
    assert_eq!((balance.reserved, balance.paid), (0, 0));
    assert_eq!(balance.available, balance.earned);
    // More steps change nothing: released exactly once.
    for _ in 0..5 {
        h.step().await;
    }
    assert_eq!(h.store.balance(&h.nodes[0]).await.unwrap(), balance);
}

#[tokio::test]
async fn a_tampered_trigger_reply_is_refused_before_signing() {
    let mut h = harness(Setup { build: BuildMode::RemoteTrigger, ..Setup::default() }).await;
    h.fake.inject(Fault::TamperTrigger);
    // The refusal is a signing failure: counted on the payout (bounded, see the processor),
    // nothing committed or sent, and the payout back to pending for another try.
    let report = h.step().await.unwrap();
    assert_eq!(report.signing_failures, 1, "{report:?}");
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert_eq!(h.fake.trigger_calls(), 1);
    assert_eq!(h.fake.broadcast_calls(), 0);
    assert!(h.store.attempts(&h.ids[0]).await.unwrap().is_empty(), "something was signed");
    let payout = h.store.get(&h.ids[0]).await.unwrap();
    assert_eq!(payout.status, PayoutStatus::Pending);
    assert_eq!(payout.sign_failures, 1);
    let expected = lucid_payouts::Error::RemoteTransaction { field: "data" }.to_string();
    assert_eq!(
        payout.error_message.as_deref(),
        Some(expected.as_str()),
        "refused for the call data"
    );
    // An honest reply is then signed and paid.
    h.run_to_end().await;
    h.check_final().await;
    assert_eq!(h.status(0).await, PayoutStatus::Confirmed);
    assert_eq!(h.fake.transactions().len(), 1);
}

#[tokio::test]
async fn preflight_refuses_when_the_hot_wallet_lacks_usdt_or_trx() {
    for (hot_usdt, hot_trx_sun) in [(usdt(30), 1_000_000_000), (usdt(1_000), 1_000_000)] {
        let mut h =
            harness(Setup { hot_usdt, hot_trx_sun, payouts: vec![20, 20], ..Setup::default() })
                .await;
        let report = h.step().await.unwrap();
        assert!(report.hot_wallet_low, "{hot_usdt} {hot_trx_sun}: {report:?}");
        assert_eq!((report.claimed, report.signed, report.broadcasts), (2, 0, 0));
        assert_eq!(h.fake.broadcast_calls(), 0);
        assert_eq!(h.status(0).await, PayoutStatus::Pending);
        assert_eq!(h.status(1).await, PayoutStatus::Pending);
        // Funded, the same payouts go through.
        h.fake.set_usdt(h.hot_wallet, usdt(1_000));
        h.fake.set_trx(h.hot_wallet, 1_000_000_000);
        h.run_to_end().await;
        h.check_final().await;
        assert_eq!(h.fake.successful_transfers().len(), 2);
    }
}

#[tokio::test]
async fn staked_energy_counts_in_the_preflight() {
    let mut h = harness(Setup { hot_trx_sun: 0, ..Setup::default() }).await;
    h.fake.set_energy(h.hot_wallet, 1_000_000);
    h.run_to_end().await;
    h.check_final().await;
    assert_eq!(h.status(0).await, PayoutStatus::Confirmed);
}

#[tokio::test]
async fn the_fake_node_judges_signatures_and_txids_itself() {
    let mut h = harness(Setup::default()).await;
    h.step().await.unwrap();
    let attempt = h.store.attempts(&h.ids[0]).await.unwrap().remove(0);
    // Same txid computed by lucid-payouts' encoder and by the fake's own decoding.
    assert_eq!(h.fake.transactions()[0].txid, attempt.transfer.txid);

    let transport = ReqwestTronTransport::new(&TronTransportConfig::new(&h.fake.url())).unwrap();
    let envelope = |raw: &[u8], signature: &[u8]| {
        // Transaction { raw_data = 1 (bytes), signature = 2 (bytes) }, encoded by hand.
        let mut bytes = vec![0x0a];
        push_varint(&mut bytes, raw.len());
        bytes.extend_from_slice(raw);
        bytes.push(0x12);
        push_varint(&mut bytes, signature.len());
        bytes.extend_from_slice(signature);
        serde_json::json!({ "transaction": hex::encode(bytes) })
    };
    let broadcast = |body: serde_json::Value| {
        let transport = transport.clone();
        async move {
            let reply = transport.post(Endpoint::FullNode, "/wallet/broadcasthex", &body).await;
            reply.unwrap().body["code"].as_str().unwrap_or("").to_owned()
        }
    };
    let raw = &attempt.transfer.raw;
    let signature = &attempt.transfer.signature;
    assert_eq!(broadcast(envelope(raw, signature)).await, "DUP_TRANSACTION_ERROR");
    let mut forged = signature.clone();
    forged[5] ^= 1;
    let mut other_raw = raw.clone();
    let last = other_raw.len() - 1;
    other_raw[last] ^= 1; // the fee limit's last byte: a new txid the signature does not cover
    assert_eq!(broadcast(envelope(&other_raw, signature)).await, "SIGERROR");
    let other_key = HotWalletKey::from_bytes(&[0x33; 32], &NODE_SEED).unwrap();
    let txid = lucid_payouts::tron::Txid::of(&other_raw);
    let stranger = other_key.sign_txid(&txid.0).unwrap();
    assert_eq!(broadcast(envelope(&other_raw, stranger.as_bytes())).await, "SIGERROR");
    assert_eq!(broadcast(envelope(raw, &forged)).await, "DUP_TRANSACTION_ERROR");

    // Well signed but invalid for the chain: unknown reference block, expired, other contract.
    let key = HotWalletKey::from_bytes(&HOT_SECRET, &NODE_SEED).unwrap();
    let (number, head_time) = h.fake.head();
    let params = TransferParams {
        owner: key.address(),
        contract: TronAddress::from_base58(USDT).unwrap(),
        to: TronAddress::from_bytes(destination(9)).unwrap(),
        amount: MicroUsdt(1_000_000),
        reference: BlockRef { number, id: [0x77; 32] },
        timestamp: UnixMillis(head_time),
        expiration: UnixMillis(head_time + 60_000),
        fee_limit_sun: 50_000_000,
    };
    let signed_body = |params: &TransferParams| {
        let signed = sign_transfer(&key, params).unwrap();
        envelope(&signed.raw, signed.signature.as_bytes())
    };
    assert_eq!(broadcast(signed_body(&params)).await, "TAPOS_ERROR");
    let expired = TransferParams {
        timestamp: UnixMillis(head_time - 90_000),
        expiration: UnixMillis(head_time - 30_000),
        ..params
    };
    assert_eq!(broadcast(signed_body(&expired)).await, "TRANSACTION_EXPIRATION_ERROR");
    let other_contract =
        TransferParams { contract: TronAddress::from_bytes(destination(8)).unwrap(), ..params };
    assert_eq!(broadcast(signed_body(&other_contract)).await, "CONTRACT_VALIDATE_ERROR");
    let garbage = serde_json::json!({ "transaction": "zz" });
    assert_eq!(broadcast(garbage).await, "OTHER_ERROR");
    assert_eq!(h.fake.transactions().len(), 1, "a refused transaction was accepted");
    h.run_to_end().await;
    h.check_final().await;
    assert_eq!(h.fake.transactions().len(), 1);
}

fn push_varint(out: &mut Vec<u8>, mut value: usize) {
    loop {
        let byte = u8::try_from(value & 0x7f).unwrap();
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Crashes at random commits (before or after each), restarting a fresh worker every time, with
/// random faults from the fake node: every payout still ends with exactly one transfer if
/// confirmed and none if failed, and every reservation is settled or released exactly once.
#[tokio::test]
async fn crashes_at_random_commits_never_pay_twice() {
    const RUNS: u64 = 40;
    let faults = [Fault::DropResponseAfterAccept, Fault::Expire, Fault::OutOfEnergy];
    let mut crashes = 0;
    let mut ends = std::collections::BTreeMap::new();
    for seed in 1..=RUNS {
        let mut rng = Rng::new(seed);
        let mut h = harness(Setup { payouts: vec![10, 30, 70], ..Setup::default() }).await;
        for _ in 0..rng.below(3) {
            h.fake.inject(faults[usize::try_from(rng.below(3)).unwrap()]);
        }
        let mut restarts = 0;
        let mut steps = 0;
        while !h.all_terminal().await {
            steps += 1;
            assert!(steps < 2 * MAX_STEPS, "seed {seed}: not final; errors {:?}", h.errors);
            // The worker dies at one of its next store commits; dying just before commit k + 1
            // is dying just after commit k, unaware of its outcome.
            let switch = Arc::new(CrashSwitch::default());
            switch.arm(Some(rng.below(12)));
            let store = Arc::new(CrashingStore::new(h.store.clone(), Arc::clone(&switch)));
            restarts += 1;
            let owner = format!("worker-{restarts}");
            let mut worker = Processor::new(store.clone(), h.rail.clone(), h.config, owner);
            // The worker runs until it crashes (then it is dropped, like a killed process).
            for _ in 0..20 {
                let result = worker.step(h.now()).await;
                h.store.audit().unwrap();
                h.fake.produce_blocks(1);
                for tx in h.fake.successful_transfers() {
                    let paying =
                        h.fake.successful_transfers().iter().filter(|t| t.to == tx.to).count();
                    assert_eq!(paying, 1, "seed {seed}: two transfers to one payout");
                }
                if switch.is_dead() {
                    crashes += 1;
                    break;
                }
                if let Err(error) = result {
                    h.errors.push(error);
                }
                if h.all_terminal().await {
                    break;
                }
            }
        }
        h.check_final().await;
        for index in 0..h.ids.len() {
            *ends.entry(format!("{:?}", h.status(index).await)).or_insert(0) += 1;
        }
    }
    eprintln!("{RUNS} runs, {crashes} crashes, payouts ended {ends:?}");
    assert!(crashes > RUNS, "only {crashes} crashes in {RUNS} runs");
}

#[tokio::test]
async fn four_concurrent_workers_never_send_a_payout_twice() {
    let payouts = vec![10, 11, 12, 13, 14, 15, 16, 17];
    let mut h = harness(Setup { payouts, ..Setup::default() }).await;
    h.fake.inject(Fault::DropResponseAfterAccept);
    let mut workers: Vec<Processor> = (1..=4)
        .map(|n| Processor::new(h.store.clone(), h.rail.clone(), h.config, format!("w{n}")))
        .collect();
    for _ in 0..MAX_STEPS {
        if h.all_terminal().await {
            break;
        }
        let now = h.now();
        let [a, b, c, d] = workers.as_mut_slice() else { unreachable!() };
        let results = tokio::join!(a.step(now), b.step(now), c.step(now), d.step(now));
        for result in [results.0, results.1, results.2, results.3] {
            if let Err(error) = result {
                h.errors.push(error);
            }
        }
        h.store.audit().unwrap();
        h.fake.produce_blocks(1);
    }
    h.check_final().await;
    for index in 0..h.ids.len() {
        assert_eq!(h.status(index).await, PayoutStatus::Confirmed);
    }
    assert_eq!(h.fake.transactions().len(), 8, "one transaction per payout");
}

/// The payer's processor loop reads the hot wallet from the chain after every step: the health
/// view (and with it the gauges `lucid_hot_wallet_usdt_micro`, `lucid_hot_wallet_trx_sun`)
/// shows the fake node's balances in integer units, and `hot_wallet_low` while the preflight
/// says the wallet cannot cover the batch.
#[tokio::test]
async fn the_processor_loop_publishes_the_hot_wallets_balances_and_low_state() {
    use lucid_daemon::money_metrics::MoneyMetrics;
    use lucid_daemon::services::payouts::{PayoutHealth, ProcessorService};
    use lucid_daemon::services::runner::Service as _;
    use lucid_payouts::rail::{HotWallet, PayoutRail};

    let h = harness(Setup {
        hot_usdt: usdt(30),
        hot_trx_sun: 1_234_567_891,
        payouts: vec![20, 20],
        ..Setup::default()
    })
    .await;
    let expected = HotWallet { usdt: MicroUsdt(usdt(30)), trx_sun: 1_234_567_891 };
    // `TronRail::hot_wallet` (inherent) is the address; the port's method reads the balances.
    assert_eq!(PayoutRail::hot_wallet(h.rail.as_ref()).await.unwrap(), Some(expected));
    let health = Arc::new(PayoutHealth::new("tron"));
    let processor = Processor::new(h.store.clone(), h.rail.clone(), h.config, "loop".to_owned());
    let mut service = ProcessorService::new(
        processor,
        h.store.clone(),
        Duration::from_secs(30),
        Arc::clone(&health),
    )
    .with_hot_wallet(h.rail.clone());
    assert_eq!(health.view().hot_wallet, None);
    let reads = h.fake.account_calls();
    service.tick(h.now()).await.unwrap();
    // The step's preflight read the balances; the gauges take them without a second read.
    assert_eq!(h.fake.account_calls() - reads, 1, "TRX balance reads in one step with a batch");
    let view = health.view();
    assert!(view.hot_wallet_low, "{view:?}");
    assert_eq!(view.hot_wallet, Some(expected));
    let metrics = MoneyMetrics::new();
    assert!(!metrics.render().contains("lucid_hot_wallet"), "no gauge before a read");
    metrics.set_hot_wallet(view.hot_wallet);
    let text = metrics.render();
    assert!(text.contains("\nlucid_hot_wallet_usdt_micro 30000000\n"), "{text}");
    assert!(text.contains("\nlucid_hot_wallet_trx_sun 1234567891"), "{text}");
    // Funded: the next step is not low, and the balances follow the chain.
    h.fake.set_usdt(h.hot_wallet, usdt(1_000));
    service.tick(h.now()).await.unwrap();
    let view = health.view();
    assert!(!view.hot_wallet_low, "{view:?}");
    // Whether or not the fake applied the two transfers yet, the wallet holds between the
    // funded amount less the batch's net and the funded amount.
    let held = view.hot_wallet.unwrap().usdt.0;
    assert!((usdt(1_000) - usdt(40)..=usdt(1_000)).contains(&held), "{held}");
}
