//! `kill -9` in the middle of a payout batch (issue 4 item 5): the real `lucid-node` binary,
//! built with the `blockchain` feature, pays through `TronRail` and the reqwest transport to the
//! FAKE TRON node of `lucid-testkit` on loopback. The test prepares the SQLite database before
//! the first start (balances posted through `lucid-storage`'s ledger, payout addresses
//! registered), lets the sweep create the payouts and the processor start its batches, sends
//! SIGKILL when the fake has seen the k-th broadcast (for some runs a second SIGKILL after the
//! restart), restarts the process, and waits until every payout is final. Then the fake chain
//! holds exactly one successful transfer per confirmed payout (to its address, of its net) and
//! none for a failed one, every payout is confirmed or failed, each reservation was settled or
//! released at most once, and `earned == available + reserved + paid` for every node.
//!
//! Deterministic enough never to flake: the kill points are counted in broadcasts the fake saw,
//! never in time; the chain produces a block every 250 ms of real time (12× real time at 3 s
//! per block), so the node's wall clock stays behind every expiration and no attempt is
//! declared dead by the clock; waits have generous deadlines and assert on outcomes only.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lucid_consensus::registration::Registration;
use lucid_consensus::store::{ProofStore, StoredRegistration};
use lucid_consensus::testing;
use lucid_core::message::Message as _;
use lucid_core::{Epoch, MicroUsdt, NodeId, UnixMillis};
use lucid_payouts::ledger::{Account, Posting};
use lucid_payouts::payout::PayoutStatus;
use lucid_payouts::store::{LedgerStore, PayoutStore};
use lucid_storage::Database;
use lucid_testkit::fake_tron::{FakeTronConfig, FakeTronNode, address_of_secret};

use crate::harness::{Running, TempDir, command, get, run_to_end};

const HOT_SECRET: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const USDT: &str = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t";
/// Nodes with a balance and a payout address; one payout each.
const NODES: u64 = 6;
/// Longest wait for the payouts to become final after the last start.
const SETTLE_WITHIN: Duration = Duration::from_secs(90);

fn database_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("lucid.db").display())
}

async fn open(dir: &Path) -> Database {
    let clock: Arc<dyn lucid_core::Clock> = Arc::new(lucid_daemon::clock::SystemClock::new());
    Database::open(&database_url(dir), clock).await.unwrap()
}

fn gross(index: u64) -> MicroUsdt {
    MicroUsdt((20 + 7 * index) * 1_000_000 + index)
}

/// Balances through the ledger and payout addresses through signed registrations, written
/// before the node ever starts.
async fn prepare(dir: &Path) {
    let db = open(dir).await;
    let params = testing::params();
    let shares: Vec<(NodeId, MicroUsdt)> =
        (1..=NODES).map(|i| (testing::node(i), gross(i))).collect();
    let posting = Posting::epoch_reward(Epoch(1), &shares).unwrap();
    db.apply_posting(&posting, UnixMillis(params.time.genesis().0 + 1)).await.unwrap();
    for i in 1..=NODES {
        let message = testing::signed_registration(&params, &testing::key(i), 1);
        let (_network, registration) = Registration::from_signed_bytes(message.bytes()).unwrap();
        let digest = message.digest();
        let stored = StoredRegistration { registration, message, digest };
        db.insert_registration(&stored).await.unwrap();
    }
    db.close().await;
}

fn write_config(dir: &Path, fake_url: &str, key_file: &Path) {
    // The test network of `lucid_consensus::testing::params()`: the same network id, so the
    // registrations written above belong to it.
    let config = format!(
        "[network]\nname = \"lucid-test\"\nkind = \"test\"\n\n\
         [payouts]\nenabled = true\ninterval = \"1h\"\nprocess_interval = \"200ms\"\nbatch_size = 2\nlease = \"1m\"\n\n\
         [tron]\nnetwork = \"shasta\"\napi_url = \"{fake_url}\"\nusdt_contract = \"{USDT}\"\n\
         hot_wallet_key_file = \"{}\"\ntx_expiration = \"10m\"\npoll_interval = \"200ms\"\n\
         dead_margin = \"120s\"\nrequest_timeout = \"2s\"\n",
        key_file.display()
    );
    std::fs::write(dir.join("lucid.toml"), config).unwrap();
}

fn init(dir: &TempDir) {
    let output = run_to_end({
        let mut c = command(dir.path());
        c.args(["init", "--network", "lucid-test"]);
        c
    });
    assert!(output.status.success(), "init: {}", String::from_utf8_lossy(&output.stderr));
}

fn write_hot_wallet_key(dir: &TempDir) -> std::path::PathBuf {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = dir.path().join("hot-wallet.key");
    let mut file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).unwrap();
    writeln!(file, "{HOT_SECRET}").unwrap();
    path
}

/// The payouts as the node's API lists them: id → status.
fn statuses(running: &Running) -> Option<BTreeMap<String, String>> {
    let (status, body) = get(running.addr, "/api/v1/payouts?limit=100")?;
    if status != 200 {
        return None;
    }
    let json: serde_json::Value = serde_json::from_str(&body).ok()?;
    let items = json["items"].as_array()?;
    Some(
        items
            .iter()
            .map(|p| {
                (
                    p["payout_id"].as_str().unwrap().to_owned(),
                    p["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect(),
    )
}

fn is_final(status: &str) -> bool {
    status == "confirmed" || status == "failed"
}

/// Waits until the fake has seen `broadcasts` broadcasts, then SIGKILLs the node.
fn kill_at(running: &mut Running, fake: &FakeTronNode, broadcasts: u64) {
    let started = Instant::now();
    while fake.broadcast_calls() < broadcasts {
        if let Ok(Some(status)) = running.child.try_wait() {
            panic!(
                "the node exited ({status}) before broadcast {broadcasts}: {}",
                running.stderr()
            );
        }
        assert!(started.elapsed() < SETTLE_WITHIN, "broadcast {broadcasts} never came");
        std::thread::sleep(Duration::from_millis(1));
    }
    running.signal("KILL");
    let status = running.wait_exit(Duration::from_secs(10));
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9), "{status}");
}

struct Outcome {
    kills: usize,
    confirmed: usize,
    failed: usize,
    in_flight_at_kill: usize,
}

/// One run: a fresh data directory and chain, SIGKILL at each of `kill_points` (counted in
/// broadcasts), then a last start that runs until every payout is final, then the checks.
fn run(runtime: &tokio::runtime::Runtime, kill_points: &[u64]) -> Outcome {
    let dir = TempDir::new();
    init(&dir);
    let key_file = write_hot_wallet_key(&dir);
    let hot = address_of_secret(&[0x11; 32]).unwrap();
    let contract = lucid_payouts::tron::TronAddress::from_base58(USDT).unwrap();
    let wall_now = i64::try_from(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis(),
    )
    .unwrap();
    let fake = runtime.block_on(async {
        let config =
            FakeTronConfig { genesis_ms: wall_now, ..FakeTronConfig::new(*contract.as_bytes()) };
        FakeTronNode::start(config).await.unwrap()
    });
    fake.produce_blocks(3);
    fake.set_usdt(hot, 1_000_000_000_000);
    fake.set_trx(hot, 100_000_000_000);
    let fake = Arc::new(fake);
    let producing = Arc::new(AtomicBool::new(true));
    let producer = {
        let (fake, producing) = (Arc::clone(&fake), Arc::clone(&producing));
        std::thread::spawn(move || {
            while producing.load(Ordering::SeqCst) {
                fake.produce_blocks(1);
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    write_config(dir.path(), &fake.url(), &key_file);
    runtime.block_on(prepare(dir.path()));

    let mut in_flight_at_kill = 0;
    for point in kill_points {
        let mut running = Running::start(dir.path());
        kill_at(&mut running, &fake, *point);
        // The kill came in the middle: something was not final yet. (The sweep and the
        // processor run side by side, so the sweep may not have created every payout yet; the
        // restarted node's sweep of the same period creates the rest, never a second one.)
        let db = runtime.block_on(open(dir.path()));
        let all = runtime.block_on(db.list(None)).unwrap();
        runtime.block_on(db.close());
        in_flight_at_kill += all.iter().filter(|p| !p.status.is_terminal()).count();
    }
    let mut running = Running::start(dir.path());
    let started = Instant::now();
    loop {
        if let Some(all) = statuses(&running)
            && all.len() == usize::try_from(NODES).unwrap()
            && all.values().all(|s| is_final(s))
        {
            break;
        }
        if let Ok(Some(status)) = running.child.try_wait() {
            panic!("the node exited ({status}): {}", running.stderr());
        }
        if started.elapsed() > SETTLE_WITHIN {
            let seen = statuses(&running);
            running.signal("TERM");
            panic!("payouts not final: {seen:?}\n{}", running.stderr());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    running.signal("TERM");
    let status = running.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status}: {}", running.stderr());
    producing.store(false, Ordering::SeqCst);
    producer.join().unwrap();

    // The chain and the ledger.
    let db = runtime.block_on(open(dir.path()));
    let payouts = runtime.block_on(db.list(None)).unwrap();
    let postings = runtime.block_on(db.ledger_postings()).unwrap();
    let keys: Vec<&str> = postings.iter().map(|p| p.key()).collect();
    assert_eq!(payouts.len(), usize::try_from(NODES).unwrap(), "one auto payout per node");
    let mut nodes: Vec<NodeId> = payouts.iter().map(|p| p.node).collect();
    nodes.sort();
    nodes.dedup();
    assert_eq!(nodes.len(), payouts.len(), "never two payouts for a node in one period");
    for payout in &payouts {
        let index = (1..=NODES).find(|i| testing::node(*i) == payout.node).unwrap();
        assert_eq!(payout.amounts.gross, gross(index), "the whole balance, once");
    }
    let transfers = fake.successful_transfers();
    let (mut confirmed, mut failed) = (0, 0);
    for payout in &payouts {
        let id = &payout.payout_id;
        let paid: Vec<_> = transfers
            .iter()
            .filter(|tx| tx.to == payout.to_address && tx.amount == payout.amounts.net.0)
            .collect();
        let settle = keys.iter().filter(|k| **k == format!("payout_settle:{id}")).count();
        let release = keys.iter().filter(|k| **k == format!("payout_release:{id}")).count();
        match payout.status {
            PayoutStatus::Confirmed => {
                confirmed += 1;
                assert_eq!(paid.len(), 1, "{id}: one transfer on chain, found {paid:?}");
                assert_eq!((settle, release), (1, 0), "{id}");
                let attempts = runtime.block_on(db.attempts(id)).unwrap();
                let confirmed_attempt: Vec<_> =
                    attempts.iter().filter(|a| a.status.as_str() == "confirmed").collect();
                assert_eq!(confirmed_attempt.len(), 1, "{id}");
                assert_eq!(paid[0].txid, confirmed_attempt[0].transfer.txid, "{id}");
            }
            PayoutStatus::Failed => {
                failed += 1;
                assert!(paid.is_empty(), "{id}: failed but paid {paid:?}");
                assert_eq!((settle, release), (0, 1), "{id}");
            }
            other => panic!("{id} ended {other:?}"),
        }
    }
    assert_eq!(transfers.len(), confirmed, "no transfer outside a confirmed payout");
    for i in 1..=NODES {
        let balance = runtime.block_on(db.balance(&testing::node(i))).unwrap();
        assert_eq!(balance.earned, balance.available + balance.reserved + balance.paid, "node {i}");
        assert_eq!(balance.reserved, 0, "node {i}");
    }
    assert_eq!(runtime.block_on(db.account_balance(&Account::InFlight)).unwrap(), 0);
    runtime.block_on(db.audit_ledger_and_payouts()).unwrap().unwrap();
    runtime.block_on(db.close());
    Outcome { kills: kill_points.len(), confirmed, failed, in_flight_at_kill }
}

#[test]
fn kill_dash_nine_mid_batch_never_pays_twice_and_loses_nothing() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // Kill points in broadcasts seen by the fake: the first broadcast, inside the second batch,
    // the last payout's broadcast, and twice in one run (the restarted process killed again).
    let plans: &[&[u64]] = &[&[1], &[3], &[6], &[2, 4]];
    for plan in plans {
        let outcome = run(&runtime, plan);
        eprintln!(
            "kill at broadcasts {plan:?}: {} kills, {} payouts not final at the kills, then {} confirmed and {} failed",
            outcome.kills, outcome.in_flight_at_kill, outcome.confirmed, outcome.failed
        );
        assert!(outcome.in_flight_at_kill > 0, "{plan:?}: the kill did not hit a batch in flight");
        assert_eq!(outcome.confirmed + outcome.failed, usize::try_from(NODES).unwrap());
    }
}
