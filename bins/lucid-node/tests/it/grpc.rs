//! `lucid-node status` against a running node over gRPC, and against a closed port.

use std::time::Duration;

use crate::harness::{Running, TempDir, command, free_addr, run_to_end};

fn init(dir: &TempDir) -> String {
    let output = run_to_end({
        let mut c = command(dir.path());
        c.arg("init");
        c
    });
    assert!(output.status.success(), "init failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn status(dir: &TempDir, grpc_addr: &str, json: bool) -> std::process::Output {
    let mut c = command(dir.path());
    c.args(["status", "--grpc-addr", grpc_addr]);
    if json {
        c.arg("--json");
    }
    run_to_end(c)
}

#[test]
fn status_asks_the_running_node_over_grpc() {
    let dir = TempDir::new();
    let node_id = init(&dir);
    let node = Running::start(dir.path());
    node.wait_for("/health/ready", 200, Duration::from_secs(5));
    let grpc = node.grpc_addr.to_string();

    let text = status(&dir, &grpc, false);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(text.status.success(), "status failed: {}", String::from_utf8_lossy(&text.stderr));
    assert!(stdout.contains(&format!("node_id: {node_id}")), "{stdout}");
    assert!(stdout.contains("ready: yes"), "{stdout}");
    assert!(stdout.contains("database: healthy"), "{stdout}");

    let json = status(&dir, &grpc, true);
    assert!(
        json.status.success(),
        "status --json failed: {}",
        String::from_utf8_lossy(&json.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(answer["node_id"], node_id.as_str());
    assert_eq!(answer["ready"], true);
    assert_eq!(answer["network"], "mainnet");
    assert!(answer["slot"].as_u64().is_some(), "{answer}");
    assert_eq!(answer["components"]["database"]["status"], "healthy");

    // The token is the data directory's: another directory's token is refused.
    let other = TempDir::new();
    init(&other);
    let refused = status(&other, &grpc, false);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("wrong admin token"), "{stderr}");
}

#[test]
fn status_fails_clearly_when_no_node_listens() {
    let dir = TempDir::new();
    init(&dir);
    let closed = free_addr().to_string();
    let output = status(&dir, &closed, false);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot reach the node"), "{stderr}");
    assert!(stderr.contains(&closed), "{stderr}");
    assert!(output.stdout.is_empty());
}

/// The operator's gRPC calls on the real binary: balances, withdrawals, cancels, pool ops, the
/// sweep trigger and `Shutdown`; every call refuses a missing and a wrong token; malformed,
/// forged and replayed inputs get a clear status and change nothing; the money metrics move.
mod operator {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use lucid_api::grpc::{connect, operator_client, pb};
    use lucid_consensus::registration::Registration;
    use lucid_consensus::store::{ProofStore as _, StoredRegistration};
    use lucid_consensus::testing;
    use lucid_core::message::Message as _;
    use lucid_core::{Epoch, MicroUsdt, NodeId, NodeKey, Slot, UnixMillis};
    use lucid_payouts::ledger::Posting;
    use lucid_payouts::store::LedgerStore as _;
    use lucid_pools::{Op, PoolOp};
    use tonic::Code;

    use crate::harness::{Running, TempDir, command, get, run_to_end};

    type Client = pb::operator_client::OperatorClient<
        tonic::service::interceptor::InterceptedService<
            tonic::transport::Channel,
            lucid_api::grpc::BearerToken,
        >,
    >;

    /// The network of `lucid_consensus::testing::params()`, so the registrations written
    /// before the start belong to it.
    fn lucid_test_network() -> Vec<(&'static str, String)> {
        vec![
            ("LUCID_NETWORK_KIND", "test".to_owned()),
            ("LUCID_NETWORK_NAME", "lucid-test".to_owned()),
        ]
    }

    fn init(dir: &TempDir) -> String {
        let output = run_to_end({
            let mut c = command(dir.path());
            c.arg("init");
            c
        });
        assert!(output.status.success(), "init: {}", String::from_utf8_lossy(&output.stderr));
        std::fs::read_to_string(dir.path().join("admin.token")).unwrap().trim().to_owned()
    }

    /// Credits `shares` (node index, micro-USDT) as epoch 1's reward and registers each node
    /// with a payout address, in the SQLite database of `dir`, before the node starts.
    fn prepare(runtime: &tokio::runtime::Runtime, dir: &Path, shares: &[(u64, u64)]) {
        runtime.block_on(async {
            let clock: Arc<dyn lucid_core::Clock> =
                Arc::new(lucid_daemon::clock::SystemClock::new());
            let url = format!("sqlite://{}", dir.join("lucid.db").display());
            let db = lucid_storage::Database::open(&url, clock).await.unwrap();
            let params = testing::params();
            let credits: Vec<(NodeId, MicroUsdt)> =
                shares.iter().map(|(i, micro)| (testing::node(*i), MicroUsdt(*micro))).collect();
            let posting = Posting::epoch_reward(Epoch(1), &credits).unwrap();
            db.apply_posting(&posting, UnixMillis(params.time.genesis().0 + 1)).await.unwrap();
            for (i, _) in shares {
                let message = testing::signed_registration(&params, &testing::key(*i), 1);
                let (_, registration) = Registration::from_signed_bytes(message.bytes()).unwrap();
                let digest = message.digest();
                db.insert_registration(&StoredRegistration { registration, message, digest })
                    .await
                    .unwrap();
            }
            db.close().await;
        });
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    async fn client(node: &Running, token: &str) -> Client {
        let channel = connect(node.grpc_addr).await.unwrap();
        operator_client(channel, token).unwrap()
    }

    /// A client that sends no `authorization` metadata at all.
    async fn anonymous(
        node: &Running,
    ) -> pb::operator_client::OperatorClient<tonic::transport::Channel> {
        pb::operator_client::OperatorClient::new(connect(node.grpc_addr).await.unwrap())
    }

    /// The refusal of a call, with its code and message.
    fn refused<T: std::fmt::Debug>(
        answer: Result<tonic::Response<T>, tonic::Status>,
    ) -> tonic::Status {
        answer.expect_err("the call was refused")
    }

    fn assert_refused<T: std::fmt::Debug>(
        answer: Result<tonic::Response<T>, tonic::Status>,
        code: Code,
        text: &str,
    ) {
        let status = refused(answer);
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().contains(text), "{text} not in {status:?}");
    }

    /// The value of the one metrics sample `series`.
    fn metric(node: &Running, series: &str) -> u64 {
        let (status, text) = get(node.addr, "/metrics").unwrap();
        assert_eq!(status, 200);
        let prefix = format!("{series} ");
        let line = text
            .lines()
            .find(|line| line.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"));
        line[prefix.len()..].parse().unwrap()
    }

    fn balance_of(
        runtime: &tokio::runtime::Runtime,
        client: &mut Client,
        node: NodeId,
    ) -> pb::GetBalanceResponse {
        runtime
            .block_on(client.get_balance(pb::GetBalanceRequest { node_id: node.to_string() }))
            .unwrap()
            .into_inner()
    }

    fn withdraw(key: &str, node: NodeId, amount: Option<&str>) -> pb::RequestWithdrawalRequest {
        pb::RequestWithdrawalRequest {
            node_id: node.to_string(),
            idempotency_key: key.to_owned(),
            amount_usdt: amount.map(str::to_owned),
        }
    }

    /// Every operator call with `client`; each must be refused with `code`.
    macro_rules! every_call_refused {
        ($runtime:expr, $client:expr, $code:expr) => {{
            let runtime = $runtime;
            let client = $client;
            let code = $code;
            let codes = [
                runtime
                    .block_on(client.get_status(pb::GetStatusRequest {}))
                    .err()
                    .map(|s| s.code()),
                runtime.block_on(client.get_clock(pb::GetClockRequest {})).err().map(|s| s.code()),
                runtime
                    .block_on(client.list_pools(pb::ListPoolsRequest::default()))
                    .err()
                    .map(|s| s.code()),
                runtime
                    .block_on(client.list_payouts(pb::ListPayoutsRequest::default()))
                    .err()
                    .map(|s| s.code()),
                runtime
                    .block_on(client.get_tally(pb::GetTallyRequest { epoch: 0 }))
                    .err()
                    .map(|s| s.code()),
                runtime
                    .block_on(
                        client.get_schedule(pb::GetScheduleRequest { from_slot: 0, to_slot: 1 }),
                    )
                    .err()
                    .map(|s| s.code()),
                runtime
                    .block_on(client.get_identity(pb::GetIdentityRequest {}))
                    .err()
                    .map(|s| s.code()),
                runtime
                    .block_on(client.set_payout_address(pb::SetPayoutAddressRequest::default()))
                    .err()
                    .map(|s| s.code()),
                runtime
                    .block_on(client.list_peers(pb::ListPeersRequest {}))
                    .err()
                    .map(|s| s.code()),
                runtime
                    .block_on(client.add_peer(pb::AddPeerRequest::default()))
                    .err()
                    .map(|s| s.code()),
                runtime
                    .block_on(client.submit_pool_op(pb::SubmitPoolOpRequest::default()))
                    .err()
                    .map(|s| s.code()),
                runtime
                    .block_on(client.get_balance(pb::GetBalanceRequest::default()))
                    .err()
                    .map(|s| s.code()),
                runtime
                    .block_on(client.request_withdrawal(withdraw("k", testing::node(1), None)))
                    .err()
                    .map(|s| s.code()),
                runtime
                    .block_on(client.cancel_payout(pb::CancelPayoutRequest::default()))
                    .err()
                    .map(|s| s.code()),
                runtime
                    .block_on(client.trigger_sweep(pb::TriggerSweepRequest {}))
                    .err()
                    .map(|s| s.code()),
                runtime.block_on(client.shutdown(pb::ShutdownRequest {})).err().map(|s| s.code()),
            ];
            for (index, answer) in codes.iter().enumerate() {
                assert_eq!(*answer, Some(code), "call #{index}");
            }
        }};
    }

    #[test]
    fn money_calls_work_refuse_bad_tokens_and_bad_inputs_change_nothing_then_shutdown_drains() {
        let runtime = runtime();
        let dir = TempDir::new();
        let token = init(&dir);
        // Node 1: 30 USDT; node 2: 5 USDT, below the minimum.
        prepare(&runtime, dir.path(), &[(1, 30_000_000), (2, 5_000_000)]);
        let mut node = Running::start_with(dir.path(), &lucid_test_network());
        node.wait_for("/health/ready", 200, Duration::from_secs(10));
        let mut client = runtime.block_on(client(&node, &token));
        let (one, two) = (testing::node(1), testing::node(2));

        // Tokens: none at all, an empty bearer, and another node's token.
        let mut nobody = runtime.block_on(anonymous(&node));
        every_call_refused!(&runtime, &mut nobody, Code::Unauthenticated);
        let mut wrong = runtime.block_on(self::client(&node, "not-the-token"));
        every_call_refused!(&runtime, &mut wrong, Code::PermissionDenied);

        // Balances: node 1's credit, this node's own (empty id) with nothing earned.
        let before = balance_of(&runtime, &mut client, one);
        assert_eq!(
            (
                before.earned_usdt.as_str(),
                before.available_usdt.as_str(),
                before.reserved_usdt.as_str()
            ),
            ("30.000000", "30.000000", "0.000000")
        );
        assert!(!before.authoritative, "this node is not the payer");
        let own = runtime
            .block_on(client.get_balance(pb::GetBalanceRequest::default()))
            .unwrap()
            .into_inner();
        assert_ne!(own.node_id, one.to_string());
        assert_eq!(own.earned_usdt, "0.000000");
        assert_refused(
            runtime
                .block_on(client.get_balance(pb::GetBalanceRequest { node_id: "node_zz".into() })),
            Code::InvalidArgument,
            "node_id",
        );
        assert_eq!(metric(&node, "lucid_payouts_total{status=\"pending\"}"), 0);

        // Malformed withdrawals: refused, nothing reserved, nothing counted.
        let long_key = "k".repeat(65);
        for (request, text) in [
            (withdraw("bad key!", one, None), "INVALID_INPUT"),
            (withdraw("", one, None), "INVALID_INPUT"),
            (withdraw(&long_key, one, None), "INVALID_INPUT"),
            (withdraw("k1", one, Some("12.1234567")), "INVALID_INPUT"),
            (withdraw("k1", one, Some("-3")), "INVALID_INPUT"),
            (withdraw("k1", one, Some("1e3")), "INVALID_INPUT"),
            (withdraw("k1", two, Some("5")), "BELOW_MINIMUM"),
            (withdraw("k1", one, Some("30.000001")), "INSUFFICIENT_BALANCE"),
            (withdraw("k1", one, Some("10001")), "ABOVE_MAXIMUM"),
        ] {
            assert_refused(
                runtime.block_on(client.request_withdrawal(request)),
                Code::InvalidArgument,
                text,
            );
        }
        let mut bad_node = withdraw("k1", one, None);
        bad_node.node_id = "node_".to_owned() + &"g".repeat(64);
        assert_refused(
            runtime.block_on(client.request_withdrawal(bad_node)),
            Code::InvalidArgument,
            "node_id",
        );
        assert_eq!(balance_of(&runtime, &mut client, one), before);
        assert_eq!(metric(&node, "lucid_ledger_postings_total{kind=\"payout_reserve\"}"), 0);

        // A withdrawal, its replay (the same payout), and the key reused for another amount.
        let created = runtime
            .block_on(client.request_withdrawal(withdraw("k1", one, Some("12.5"))))
            .unwrap()
            .into_inner();
        assert!(created.created);
        let payout = created.payout.unwrap();
        assert_eq!((payout.state.as_str(), payout.gross_usdt.as_str()), ("pending", "12.500000"));
        assert_eq!(payout.node_id, one.to_string());
        let replay = runtime
            .block_on(client.request_withdrawal(withdraw("k1", one, Some("12.5"))))
            .unwrap()
            .into_inner();
        assert!(!replay.created);
        assert_eq!(replay.payout.unwrap().payout_id, payout.payout_id);
        assert_refused(
            runtime.block_on(client.request_withdrawal(withdraw("k1", one, Some("13")))),
            Code::FailedPrecondition,
            "IDEMPOTENCY_CONFLICT",
        );
        let reserved = balance_of(&runtime, &mut client, one);
        assert_eq!(
            (reserved.available_usdt.as_str(), reserved.reserved_usdt.as_str()),
            ("17.500000", "12.500000")
        );
        let listed = runtime
            .block_on(
                client.list_payouts(pb::ListPayoutsRequest { node_id: one.to_string(), limit: 0 }),
            )
            .unwrap()
            .into_inner();
        assert_eq!(listed.payouts.len(), 1, "the replay created nothing");
        assert_eq!(metric(&node, "lucid_payouts_total{status=\"pending\"}"), 1);
        assert_eq!(metric(&node, "lucid_ledger_postings_total{kind=\"payout_reserve\"}"), 1);
        assert_eq!(metric(&node, "lucid_payout_gross_micro_bucket{le=\"50000000\"}"), 1);
        assert_eq!(metric(&node, "lucid_payout_gross_micro_bucket{le=\"10000000\"}"), 0);
        assert_eq!(metric(&node, "lucid_payout_gross_micro_sum"), 12_500_000);

        // Cancels: malformed and unknown ids, then the payout, then again (not pending).
        assert_refused(
            runtime.block_on(
                client.cancel_payout(pb::CancelPayoutRequest { payout_id: "../x".into() }),
            ),
            Code::InvalidArgument,
            "payout_id",
        );
        assert_refused(
            runtime.block_on(client.cancel_payout(pb::CancelPayoutRequest {
                payout_id: "payout_000000000000000000000000".into(),
            })),
            Code::NotFound,
            "PAYOUT_NOT_FOUND",
        );
        let cancelled = runtime
            .block_on(
                client
                    .cancel_payout(pb::CancelPayoutRequest { payout_id: payout.payout_id.clone() }),
            )
            .unwrap()
            .into_inner();
        assert_eq!(cancelled.state, "cancelled");
        assert_refused(
            runtime.block_on(
                client.cancel_payout(pb::CancelPayoutRequest { payout_id: payout.payout_id }),
            ),
            Code::FailedPrecondition,
            "INVALID_STATE",
        );
        assert_eq!(balance_of(&runtime, &mut client, one).available_usdt, "30.000000");
        assert_eq!(metric(&node, "lucid_payouts_total{status=\"cancelled\"}"), 1);
        assert_eq!(metric(&node, "lucid_ledger_postings_total{kind=\"payout_release\"}"), 1);
        assert_eq!(metric(&node, "lucid_payout_circuit_open"), 0);

        // This node is not the payer: the sweep is not its to start.
        assert_refused(
            runtime.block_on(client.trigger_sweep(pb::TriggerSweepRequest {})),
            Code::Unimplemented,
            "FEATURE_DISABLED",
        );

        // `lucid-node status` shows the node's own balance, marked not authoritative.
        let status = run_to_end({
            let mut c = command(dir.path());
            c.args(["status", "--grpc-addr", &node.grpc_addr.to_string()]);
            c
        });
        let text = String::from_utf8_lossy(&status.stdout);
        assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
        assert!(text.contains("balance: earned 0.000000 / available 0.000000"), "{text}");
        assert!(text.contains("not authoritative"), "{text}");

        // Shutdown: the call is answered, readiness is false at once, the drain ends in exit 0.
        runtime.block_on(client.shutdown(pb::ShutdownRequest {})).unwrap();
        // Readiness was false before the answer left: the first probe is 503 (or the listener
        // is already closed by the drain).
        let probe = get(node.addr, "/health/ready");
        assert!(matches!(probe, Some((503, _)) | None), "{probe:?}");
        let exit = node.wait_exit(Duration::from_secs(30));
        assert_eq!(exit.code(), Some(0), "{}", node.stderr());
    }

    /// The payer (ledger-only rail: a binary without `blockchain`): `TriggerSweep` starts the
    /// single-flight sweep, the automatic payout appears once, and balances are authoritative.
    #[cfg(not(feature = "blockchain"))]
    #[test]
    fn the_payer_starts_a_sweep_and_answers_authoritative_balances() {
        let runtime = runtime();
        let dir = TempDir::new();
        let token = init(&dir);
        prepare(&runtime, dir.path(), &[(1, 25_000_000)]);
        let mut env = lucid_test_network();
        env.push(("LUCID_PAYOUTS_ENABLED", "true".to_owned()));
        let node = Running::start_with(dir.path(), &env);
        node.wait_for("/health/ready", 200, Duration::from_secs(10));
        let mut client = runtime.block_on(client(&node, &token));
        let answer = runtime.block_on(client.trigger_sweep(pb::TriggerSweepRequest {})).unwrap();
        // Started now, or already running since the start: either way single flight.
        let _started: bool = answer.into_inner().started;
        let start = Instant::now();
        let payouts = loop {
            let listed = runtime
                .block_on(client.list_payouts(pb::ListPayoutsRequest::default()))
                .unwrap()
                .into_inner();
            if !listed.payouts.is_empty() {
                break listed.payouts;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "no sweep payout");
            std::thread::sleep(Duration::from_millis(50));
        };
        runtime.block_on(client.trigger_sweep(pb::TriggerSweepRequest {})).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let again = runtime
            .block_on(client.list_payouts(pb::ListPayoutsRequest::default()))
            .unwrap()
            .into_inner();
        assert_eq!(again.payouts.len(), 1, "one automatic payout per period: {payouts:?}");
        assert_eq!(again.payouts[0].gross_usdt, "25.000000");
        let balance = balance_of(&runtime, &mut client, testing::node(1));
        assert!(balance.authoritative);
        assert_eq!(
            (balance.available_usdt.as_str(), balance.reserved_usdt.as_str()),
            ("0.000000", "25.000000")
        );
        assert_eq!(metric(&node, "lucid_payouts_total{status=\"pending\"}"), 1);
        assert_eq!(metric(&node, "lucid_ledger_postings_total{kind=\"payout_reserve\"}"), 1);
        assert_eq!(metric(&node, "lucid_payout_gross_micro_count"), 1);
    }

    /// `SubmitPoolOp` verifies like `POST /pools/ops`: a signed Create is accepted and applied,
    /// its replay answers the same digest, and forged, malformed, foreign and stale ops are
    /// refused and change nothing.
    #[test]
    fn signed_pool_ops_are_verified_like_the_http_route() {
        let runtime = runtime();
        let dir = TempDir::new();
        let token = init(&dir);
        let node = Running::start_with(dir.path(), &crate::harness::test_network("grpc-it", None));
        node.wait_for("/health/ready", 200, Duration::from_secs(10));
        let mut client = runtime.block_on(client(&node, &token));
        let (_, clock) = get(node.addr, "/api/v1/poot/clock").unwrap();
        let clock: serde_json::Value = serde_json::from_str(&clock).unwrap();
        let network: lucid_core::NetworkId = clock["network_id"].as_str().unwrap().parse().unwrap();
        let genesis = clock["genesis_ms"].as_i64().unwrap();
        let founder = NodeKey::from_seed(&[42; 32]);
        let signed_now = |network: &lucid_core::NetworkId, back_slots: i64| {
            let now = lucid_core::Clock::wall(&lucid_daemon::clock::SystemClock::new()).0
                - back_slots * 1000;
            let slot = Slot(u64::try_from((now - genesis) / 1000).unwrap());
            let op = PoolOp {
                node: founder.node_id(),
                slot,
                ts: UnixMillis(now),
                op: Op::Create { name: "grpc-pool".into(), max_nodes: 10 },
            };
            let signed = op.sign(network, &founder);
            pb::SignedMessage {
                message: signed.bytes().to_vec(),
                signature: signed.signature().as_bytes().to_vec(),
            }
        };
        let submit = |client: &mut Client, op: Option<pb::SignedMessage>| {
            runtime.block_on(client.submit_pool_op(pb::SubmitPoolOpRequest { op }))
        };

        // Refused: no op, malformed bytes, a short signature, a forged signature, another
        // network's op, an op of a slot long past.
        assert_refused(submit(&mut client, None), Code::InvalidArgument, "MALFORMED_MESSAGE");
        assert_refused(
            submit(
                &mut client,
                Some(pb::SignedMessage { message: vec![1, 2, 3], signature: vec![0; 64] }),
            ),
            Code::InvalidArgument,
            "MALFORMED_MESSAGE",
        );
        let mut short = signed_now(&network, 0);
        short.signature.truncate(63);
        assert_refused(
            submit(&mut client, Some(short)),
            Code::InvalidArgument,
            "MALFORMED_MESSAGE",
        );
        let mut forged = signed_now(&network, 0);
        forged.signature[0] ^= 1;
        assert_refused(submit(&mut client, Some(forged)), Code::InvalidArgument, "BAD_SIGNATURE");
        let foreign = lucid_core::NetworkId::derive("other", UnixMillis(genesis));
        assert_refused(
            submit(&mut client, Some(signed_now(&foreign, 0))),
            Code::InvalidArgument,
            "network",
        );
        assert_refused(
            submit(&mut client, Some(signed_now(&network, 30))),
            Code::InvalidArgument,
            "slot",
        );
        let pools = runtime.block_on(client.list_pools(pb::ListPoolsRequest::default())).unwrap();
        assert!(pools.into_inner().pools.is_empty(), "a refused op changed nothing");

        // Accepted, and its replay answers the same.
        let op = signed_now(&network, 0);
        let accepted = submit(&mut client, Some(op.clone())).unwrap().into_inner();
        assert_eq!(accepted.op_digest.len(), 64);
        let replayed = submit(&mut client, Some(op)).unwrap().into_inner();
        assert_eq!(replayed, accepted);

        // Applied at its effective slot: exactly one pool, led by the founder.
        let start = Instant::now();
        let pools = loop {
            let pools = runtime
                .block_on(client.list_pools(pb::ListPoolsRequest::default()))
                .unwrap()
                .into_inner()
                .pools;
            if !pools.is_empty() {
                break pools;
            }
            assert!(start.elapsed() < Duration::from_secs(15), "the pool was never applied");
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(pools.len(), 1);
        assert_eq!(pools[0].pool_id, accepted.pool_id);
        assert_eq!(pools[0].leader, founder.node_id().to_string());
    }
}
