//! Tests of the node's services under a manual clock.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use lucid_api::dto::{CreatePoolRequest, PageQuery, PayoutQuery, UpdatePoolRequest};
use lucid_consensus::ConsensusParams;
use lucid_core::clock::ManualClock;
use lucid_core::{Epoch, NodeKey, PoolId, Signature, Slot, TimeParams, UnixMillis};
use lucid_pools::Op;

use super::*;

/// A database whose answers the test controls.
struct FakeDatabase {
    up: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl DatabaseProbe for FakeDatabase {
    fn backend(&self) -> &'static str {
        "fake"
    }
    async fn ping(&self) -> Result<(), String> {
        if self.up.load(Ordering::SeqCst) { Ok(()) } else { Err("down".into()) }
    }
}

fn database(up: bool) -> Arc<FakeDatabase> {
    Arc::new(FakeDatabase { up: std::sync::atomic::AtomicBool::new(up) })
}

fn config() -> Config {
    let time = TimeParams::test_network(UnixMillis(1_000_000), 1_000, 8).unwrap();
    Config {
        data_dir: std::env::temp_dir(),
        network_name: "unit".into(),
        consensus: ConsensusParams::test_network("unit", time),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        shutdown_grace: Duration::from_secs(5),
        verify_threads: 1,
    }
}

#[test]
fn readiness_follows_start_and_drain_and_the_clock() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let clock = Arc::new(ManualClock::new(UnixMillis(999_000)));
        let db = database(true);
        let node = Node::build(
            config(),
            NodeKey::from_seed(&[1; 32]),
            clock.clone(),
            db.clone(),
            Ports::in_memory(),
        );
        let api = node.api();
        node.spawn();
        assert!(node.check_database().await);
        node.mark_ready();
        // Before genesis: not ready, consensus unhealthy.
        let report = api.health();
        assert!(!report.ready);
        assert_eq!(report.components["consensus"].status, HealthStatus::Unhealthy);
        clock.set_wall(UnixMillis(1_005_500));
        let report = api.health();
        assert!(report.ready);
        assert_eq!((report.slot, report.epoch), (Some(5), Some(0)));
        assert_eq!(api.clock().next_slot_start_ms, Some(1_006_000));
        assert!(api.metrics().contains("lucid_ready 1"));
        // The database goes away: after the freshness window readiness and health follow.
        db.up.store(false, Ordering::SeqCst);
        clock.advance(Duration::from_secs(11));
        assert!(!node.check_database().await);
        let report = api.health();
        assert!(!report.ready);
        assert_eq!(report.status, HealthStatus::Unhealthy);
        assert_eq!(report.components["database"].detail, "fake not reachable");
        db.up.store(true, Ordering::SeqCst);
        assert!(node.check_database().await);
        assert!(api.health().ready);
        node.drain().await.unwrap();
        assert!(!api.health().ready);
        assert!(api.metrics().contains("lucid_ready 0"));
    });
}

#[test]
fn the_slot_clock_publishes_slots_from_the_wall_clock() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let clock = Arc::new(ManualClock::new(UnixMillis(1_003_200)));
        let node = Node::build(
            config(),
            NodeKey::from_seed(&[1; 32]),
            clock.clone(),
            database(true),
            Ports::in_memory(),
        );
        let api = node.api();
        node.spawn();
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(api.metrics().contains("lucid_slot 3\n"), "{}", api.metrics());
        // The wall clock jumps ahead by several slots; the loop wakes and re-reads it instead of
        // counting one slot per sleep.
        clock.set_wall(UnixMillis(1_009_000));
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert!(api.metrics().contains("lucid_slot 9\n"), "{}", api.metrics());
        assert!(api.metrics().contains("lucid_epoch 1\n"));
        node.drain().await.unwrap();
    });
}

fn member(i: u8) -> NodeKey {
    NodeKey::from_seed(&[i; 32])
}

/// One tick of the pool health loop at the start of `slot`, as the running node does it.
async fn apply_due(state: &Arc<State>, slot: Slot) {
    use crate::services::pools::{PoolHealthDeps, PoolHealthService};
    use crate::services::runner::Service as _;
    let mut service = PoolHealthService::new(PoolHealthDeps {
        params: state.config.consensus,
        pools: Arc::clone(&state.ports.pools),
        proofs: Arc::clone(&state.ports.proofs),
        metrics: Arc::clone(&state.service_metrics),
        report: Arc::clone(&state.pool_health),
        apply: Arc::clone(&state.pool_ops.apply),
    });
    service.tick(state.config.consensus.time.slot_start(slot).unwrap()).await.unwrap();
}

/// `key`'s op signed at `now` (slot of `now` on the unit network).
fn signed(key: &NodeKey, now: i64, op: Op) -> (Vec<u8>, Signature) {
    use lucid_core::message::Message as _;
    let time = config().consensus.time;
    let slot = time.slot_of(UnixMillis(now)).unwrap();
    let pool_op = lucid_pools::PoolOp { node: key.node_id(), slot, ts: UnixMillis(now), op };
    pool_op.sign(&config().consensus.network, key).into_parts()
}

#[test]
fn pool_ops_are_checked_refused_early_when_full_and_applied_at_their_effect_slot() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let clock = Arc::new(ManualClock::new(UnixMillis(1_005_500)));
        let node =
            Node::build(config(), member(1), clock.clone(), database(true), Ports::in_memory());
        let api = node.api();
        let request = CreatePoolRequest { name: "pool-a".into(), max_nodes: Some(3) };
        let created = api.create_pool(request).await.unwrap();
        assert_eq!(created.effective_slot, 8);
        let pool: PoolId = created.pool_id.parse().unwrap();
        assert_eq!(api.pool(pool).await.unwrap_err(), Failure::NotFound(lucid_api::Missing::Pool));
        // A second Create by the same node while the first waits is refused.
        let again = CreatePoolRequest { name: "pool-b".into(), max_nodes: None };
        assert_eq!(api.create_pool(again).await.unwrap_err(), Failure::AlreadyInPool);
        let bad = CreatePoolRequest { name: "Pool A".into(), max_nodes: None };
        assert_eq!(api.create_pool(bad).await.unwrap_err(), Failure::InvalidName);
        let bad = CreatePoolRequest { name: "pool-c".into(), max_nodes: Some(0) };
        assert_eq!(api.create_pool(bad).await.unwrap_err(), Failure::InvalidMaxNodes);
        clock.set_wall(UnixMillis(1_008_000));
        apply_due(&node.state, Slot(8)).await;
        let view = api.pool(pool).await.unwrap();
        assert_eq!(
            (view.seats, view.status.as_str(), view.leader.clone()),
            (1, "forming", member(1).node_id().to_string())
        );

        let now = 1_008_200;
        for i in [2, 3] {
            let (bytes, signature) = signed(&member(i), now, Op::Join { pool });
            let accepted = api.submit_pool_op(bytes.clone(), signature).await.unwrap();
            assert_eq!(accepted.effective_slot, 11);
            // The same signed op again: the same answer, nothing more pending.
            assert_eq!(
                api.submit_pool_op(bytes, signature).await.unwrap().op_digest,
                accepted.op_digest
            );
        }
        let capacity = api.pool_capacity(pool).await.unwrap();
        assert_eq!((capacity.seats, capacity.pending_joins, capacity.remaining), (1, 2, 0));
        let (bytes, signature) = signed(&member(4), now, Op::Join { pool });
        assert_eq!(api.submit_pool_op(bytes, signature).await.unwrap_err(), Failure::PoolFull);
        // Forged, other-network, stale and undecodable ops are refused.
        let (bytes, _) = signed(&member(5), now, Op::Join { pool });
        let (_, other_signature) = signed(&member(6), now, Op::Join { pool });
        assert_eq!(
            api.submit_pool_op(bytes, other_signature).await.unwrap_err(),
            Failure::BadSignature
        );
        let (bytes, signature) = signed(&member(5), 1_002_100, Op::Join { pool });
        assert!(matches!(
            api.submit_pool_op(bytes, signature).await,
            Err(Failure::InvalidInput(_))
        ));
        let foreign = lucid_pools::PoolOp {
            node: member(5).node_id(),
            slot: Slot(8),
            ts: UnixMillis(now),
            op: Op::Join { pool },
        };
        let other_network = ConsensusParams::test_network("other", config().consensus.time).network;
        let (bytes, signature) =
            lucid_core::message::Message::sign(&foreign, &other_network, &member(5)).into_parts();
        assert!(matches!(
            api.submit_pool_op(bytes, signature).await,
            Err(Failure::InvalidInput(_))
        ));
        let (mut bytes, signature) = signed(&member(5), now, Op::Join { pool });
        bytes.push(0);
        assert!(matches!(
            api.submit_pool_op(bytes, signature).await,
            Err(Failure::MalformedMessage(_))
        ));
        // Only the leader may change max_nodes, never below the seats.
        let (bytes, signature) = signed(&member(2), now, Op::SetMaxNodes { pool, max: 50 });
        assert_eq!(api.submit_pool_op(bytes, signature).await.unwrap_err(), Failure::NotLeader);

        clock.set_wall(UnixMillis(1_011_000));
        apply_due(&node.state, Slot(11)).await;
        let view = api.pool(pool).await.unwrap();
        assert_eq!((view.seats, view.pending_joins, view.status.as_str()), (3, 0, "active"));
        assert!(view.is_at_capacity);
        let members = api.pool_members(pool).await.unwrap();
        assert_eq!(members.len(), 3);
        let update = UpdatePoolRequest { max_nodes: 2 };
        assert_eq!(api.update_pool(pool, update).await.unwrap_err(), Failure::BelowSeats);
        let (bytes, signature) = signed(&member(4), 1_011_100, Op::Leave { pool });
        assert_eq!(api.submit_pool_op(bytes, signature).await.unwrap_err(), Failure::NotMember);
        let (bytes, signature) = signed(&member(3), 1_011_100, Op::Leave { pool });
        api.submit_pool_op(bytes, signature).await.unwrap();
        clock.set_wall(UnixMillis(1_014_000));
        apply_due(&node.state, Slot(14)).await;
        assert_eq!(api.pool(pool).await.unwrap().seats, 2);
        let page = api.pools(PageQuery::default()).await.unwrap();
        assert_eq!(page.items.len(), 1);
        assert!(page.next_cursor.is_none());
        let nodes = api.nodes(PageQuery { limit: Some(1), cursor: None }).await.unwrap();
        assert_eq!(nodes.items.len(), 1);
        assert!(nodes.next_cursor.is_some());
    });
}

/// An op accepted less than three slots before a restart is applied at its effect slot by the
/// next process: the ops wait in the store's op log, not in memory. The same signed op submitted
/// again after the restart is a no-op, and a second op of the same signer and slot is refused.
#[test]
fn accepted_ops_survive_a_restart_before_their_effect_slot() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let clock = Arc::new(ManualClock::new(UnixMillis(1_005_500)));
        // The store outlives the node, as a database does.
        let ports = Ports::in_memory();
        let first = Node::build(config(), member(1), clock.clone(), database(true), ports.clone());
        let request = CreatePoolRequest { name: "pool-a".into(), max_nodes: Some(5) };
        let created = first.api().create_pool(request).await.unwrap();
        let pool: PoolId = created.pool_id.parse().unwrap();
        clock.set_wall(UnixMillis(1_008_000));
        apply_due(&first.state, Slot(8)).await;
        let (bytes, signature) = signed(&member(2), 1_008_200, Op::Join { pool });
        let accepted = first.api().submit_pool_op(bytes.clone(), signature).await.unwrap();
        assert_eq!(accepted.effective_slot, 11);
        assert_eq!(ports.pools.pending_ops().await.unwrap().len(), 1);
        drop(first);

        let second = Node::build(config(), member(1), clock.clone(), database(true), ports.clone());
        apply_due(&second.state, Slot(8)).await;
        assert_eq!(second.state.pool_health.summary().pending_ops, 1);
        let api = second.api();
        assert_eq!(api.pool(pool).await.unwrap().pending_joins, 1);
        // Submitted again after the restart: the same answer, nothing more pending.
        let again = api.submit_pool_op(bytes, signature).await.unwrap();
        assert_eq!(again.op_digest, accepted.op_digest);
        assert_eq!(api.pool(pool).await.unwrap().pending_joins, 1);
        // Another op of the same node in the same slot is refused (the advisory check already
        // refuses this one; the log would refuse it as an equivocation).
        let (bytes, signature) = signed(&member(2), 1_008_300, Op::Leave { pool });
        assert!(api.submit_pool_op(bytes, signature).await.is_err());
        clock.set_wall(UnixMillis(1_011_000));
        apply_due(&second.state, Slot(11)).await;
        let view = api.pool(pool).await.unwrap();
        assert_eq!((view.seats, view.pending_joins), (2, 0));
        assert_eq!(second.state.pool_health.summary().pending_ops, 0);
        let log = ports.pools.op_log().await.unwrap();
        assert_eq!(log.len(), 2);
        assert!(log.iter().all(|l| matches!(l.state, lucid_pools::OpState::Applied { .. })));
    });
}

#[test]
fn the_applier_applies_due_ops_when_the_slot_boundary_passes() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let clock = Arc::new(ManualClock::new(UnixMillis(1_005_500)));
        let node =
            Node::build(config(), member(1), clock.clone(), database(true), Ports::in_memory());
        let api = node.api();
        node.spawn();
        let request = CreatePoolRequest { name: "pool-a".into(), max_nodes: None };
        let pool: PoolId = api.create_pool(request).await.unwrap().pool_id.parse().unwrap();
        clock.set_wall(UnixMillis(1_007_999));
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(api.pool(pool).await.is_err(), "applied before its effect slot");
        clock.set_wall(UnixMillis(1_008_000));
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(api.pool(pool).await.unwrap().seats, 1);
        node.drain().await.unwrap();
    });
}

#[test]
fn tallies_schedules_balances_and_payouts_are_read_from_the_ports() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        use lucid_consensus::leader::{NoLeaderReason, Outcome, Schedule};
        let clock = Arc::new(ManualClock::new(UnixMillis(1_020_500)));
        let ports = Ports::in_memory();
        let node = Node::build(config(), member(1), clock.clone(), database(true), ports.clone());
        let api = node.api();
        assert_eq!(
            api.tally(Epoch(1)).await.unwrap_err(),
            Failure::NotFound(lucid_api::Missing::Tally)
        );
        let params = config().consensus;
        let window = params
            .time
            .window(Epoch(1))
            .unwrap_or(lucid_core::SlotRange { start: Slot(0), end: Slot(8) });
        let tally =
            lucid_consensus::tally::Tally::from_entries(&params, Epoch(1), window, 0, vec![]);
        ports.records.put_tally(&tally, UnixMillis(1)).await.unwrap();
        let view = api.tally(Epoch(1)).await.unwrap();
        assert_eq!(
            (view.epoch, view.settled, view.digest.clone()),
            (1, false, tally.digest.to_hex())
        );
        let schedule = Schedule {
            slot: Slot(19),
            epoch: Epoch(2),
            tally_digest: None,
            outcome: Outcome::NoLeader(NoLeaderReason::TallyPending),
        };
        ports.records.insert_schedule(&schedule).await.unwrap();
        let leader = api.leader(Slot(19)).await.unwrap();
        assert_eq!(leader.no_leader_reason.as_deref(), Some("tally_pending"));
        assert_eq!(
            api.leader(Slot(18)).await.unwrap_err(),
            Failure::NotFound(lucid_api::Missing::Slot)
        );
        // The future is never scheduled, even when a schedule is stored.
        let future = Schedule { slot: Slot(25), ..schedule };
        ports.records.insert_schedule(&future).await.unwrap();
        assert_eq!(
            api.leader(Slot(25)).await.unwrap_err(),
            Failure::NotFound(lucid_api::Missing::Slot)
        );
        let balance = api.balance(member(2).node_id()).await.unwrap();
        assert_eq!(
            (balance.available.as_str(), balance.minimum.as_str()),
            ("0.000000", "10.000000")
        );
        let refused = api.request_withdrawal(member(2).node_id(), "k1", None).await.unwrap_err();
        assert_eq!(refused, Failure::NoPayoutAddress);
        let bad_key = api.request_withdrawal(member(2).node_id(), "", None).await.unwrap_err();
        assert!(matches!(bad_key, Failure::InvalidInput(_)));
        assert_eq!(
            api.payout("payout_00").await.unwrap_err(),
            Failure::NotFound(lucid_api::Missing::Payout)
        );
        assert_eq!(
            api.cancel_payout("payout_00").await.unwrap_err(),
            Failure::NotFound(lucid_api::Missing::Payout)
        );
        let query = PayoutQuery { status: Some("nonsense".into()), ..PayoutQuery::default() };
        assert!(matches!(api.payouts(None, query).await, Err(Failure::InvalidInput(_))));
        assert!(api.payouts(None, PayoutQuery::default()).await.unwrap().items.is_empty());
        assert_eq!(api.payout_stats().await.unwrap().paid_gross, "0.000000");
    });
}

#[test]
fn spawn_services_runs_gossip_when_wired_and_renders_its_metrics() {
    use crate::gossip::tests::{Directory, Loopback, Net};
    use crate::gossip::{GossipConfig, GossipQueue, GossipWiring};
    use crate::services::registration::RegistrationConfig;
    use crate::services::time::TokioClock;
    use lucid_api::grpc::PeerApi as _;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let config = config();
        let params = config.consensus;
        let start = params.time.slot_start(Slot(10)).unwrap();
        let clock = Arc::new(TokioClock::new(start));
        let net = Arc::new(Net::default());
        let mut nodes = Vec::new();
        for index in 0..2u64 {
            let key = lucid_consensus::testing::key(index);
            let me = key.node_id();
            let ports = Ports::in_memory();
            let verifier = Arc::new(lucid_consensus::verify::Verifier::single_threaded());
            let peer = crate::peer::StorePeer::load(
                params,
                Arc::clone(&ports.proofs),
                Arc::clone(&verifier),
                clock.clone(),
            )
            .await
            .unwrap();
            for other in 0..2u64 {
                let record = lucid_consensus::testing::signed_registration(
                    &params,
                    &lucid_consensus::testing::key(other),
                    1,
                );
                peer.submit_registration(record).await.unwrap();
            }
            let directory = Arc::new(Directory {
                me,
                net: net.clone(),
                faults: std::sync::Mutex::new(Vec::new()),
            });
            let gossip_config = GossipConfig::for_network(&params);
            let queue = GossipQueue::new(me, directory, &gossip_config);
            let peer = Arc::new(peer.with_gossip(queue.hook()));
            net.peers.lock().unwrap().insert(me, peer.clone());
            let proofs = Arc::clone(&ports.proofs);
            let node = Node::build(config.clone(), key, clock.clone(), database(true), ports);
            node.spawn_services(ServiceWiring {
                ingest: peer.ingest(),
                verifier,
                registration: RegistrationConfig {
                    payout_address: None,
                    endpoint: None,
                    capabilities: lucid_consensus::registration::CAP_ALL,
                    storage_capacity_bytes: 1 << 30,
                },
                gossip: Some(GossipWiring {
                    transport: Arc::new(Loopback { me, net: net.clone() }),
                    queue,
                    config: gossip_config,
                }),
            })
            .unwrap();
            nodes.push((node, proofs));
        }
        tokio::time::sleep(Duration::from_millis(6_500)).await;
        let range = lucid_core::SlotRange { start: Slot(10), end: Slot(16) };
        let first = lucid_api::grpc::slot_digests(nodes[0].1.as_ref(), range, 16).await.unwrap();
        let second = lucid_api::grpc::slot_digests(nodes[1].1.as_ref(), range, 16).await.unwrap();
        assert_eq!(first, second);
        assert_eq!(first.len(), 6);
        assert!(first.iter().all(|digest| digest.count == 2), "{first:?}");
        for (node, _) in nodes {
            let metrics = node.api().metrics();
            assert!(metrics.contains("lucid_gossip_bytes_total{direction=\"out\"}"), "{metrics}");
            assert!(
                !metrics.contains("lucid_gossip_bytes_total{direction=\"out\"} 0\n"),
                "{metrics}"
            );
            assert!(!metrics.contains("lucid_seals_signed_total 0\n"), "{metrics}");
            assert!(metrics.contains("lucid_loop_ticks_total{loop=\"anti_entropy\""), "{metrics}");
            node.drain().await.unwrap();
        }
    });
}

/// A fresh member key for `i` beyond the 255 of [`member`].
fn many(i: u16) -> NodeKey {
    let mut seed = [9u8; 32];
    seed[..2].copy_from_slice(&i.to_le_bytes());
    NodeKey::from_seed(&seed)
}

/// 300 distinct nodes join one pool of 100 concurrently, each Join sent twice: the group commit
/// accepts exactly 99 (the founder holds the 100th seat), answers both copies of a Join alike,
/// refuses the rest `POOL_FULL`, and the store holds exactly the Joins answered 202.
#[test]
fn concurrent_joins_through_the_group_commit_fill_a_pool_exactly() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let clock = Arc::new(ManualClock::new(UnixMillis(1_005_500)));
        let ports = Ports::in_memory();
        let node = Node::build(config(), member(1), clock.clone(), database(true), ports.clone());
        let api = node.api();
        let request = CreatePoolRequest { name: "crowded".into(), max_nodes: Some(100) };
        let pool: PoolId = api.create_pool(request).await.unwrap().pool_id.parse().unwrap();
        clock.set_wall(UnixMillis(1_008_000));
        apply_due(&node.state, Slot(8)).await;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..300u16 {
            let (bytes, signature) = signed(&many(i), 1_008_200, Op::Join { pool });
            for _copy in 0..2 {
                let api = api.clone();
                let bytes = bytes.clone();
                tasks.spawn(async move { (i, api.submit_pool_op(bytes, signature).await) });
            }
        }
        let mut answers: BTreeMap<u16, Vec<Result<String, Failure>>> = BTreeMap::new();
        while let Some(answer) = tasks.join_next().await {
            let (i, answer) = answer.unwrap();
            answers.entry(i).or_default().push(answer.map(|a| a.op_digest));
        }
        let mut accepted = Vec::new();
        for (i, pair) in &answers {
            match (&pair[0], &pair[1]) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a, b, "both copies of Join {i} answer the same digest");
                    accepted.push(a.clone());
                }
                // A copy whose advisory check ran while its twin waited for the commit may be
                // refused (the pool filled meanwhile, or the twin's seat request just landed).
                (Ok(a), Err(Failure::PoolFull | Failure::AlreadyInPool))
                | (Err(Failure::PoolFull | Failure::AlreadyInPool), Ok(a)) => {
                    accepted.push(a.clone());
                }
                (Err(Failure::PoolFull), Err(Failure::PoolFull)) => {}
                other => panic!("Join {i}: {other:?}"),
            }
        }
        assert_eq!(accepted.len(), 99);
        let pending: Vec<String> = ports
            .pools
            .pending_ops()
            .await
            .unwrap()
            .iter()
            .map(|op| op.digest().to_hex())
            .collect();
        accepted.sort();
        let mut pending = pending;
        pending.sort();
        assert_eq!(pending, accepted, "the log holds exactly the Joins answered 202");
        let capacity = api.pool_capacity(pool).await.unwrap();
        assert_eq!((capacity.seats, capacity.pending_joins, capacity.remaining), (1, 99, 0));
    });
}

/// The own node, leader of its pool, removes a member (with a ban), then disbands the pool:
/// each op is refused early where the local view knows it would be rejected (not the leader,
/// not a seat holder, the leader itself, an unknown or disbanded pool), and takes effect three
/// slots later, as the pool's members and status show.
#[test]
fn the_leader_removes_a_member_with_a_ban_and_disbands_its_pool() {
    use lucid_api::dto::RemoveMemberRequest;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let clock = Arc::new(ManualClock::new(UnixMillis(1_005_500)));
        let ports = Ports::in_memory();
        let leader = Node::build(config(), member(1), clock.clone(), database(true), ports.clone());
        // Another node's daemon over the same stores: its own node is a member, not the leader.
        let other = Node::build(config(), member(2), clock.clone(), database(true), ports.clone());
        let api = leader.api();
        let request = CreatePoolRequest { name: "pool-a".into(), max_nodes: None };
        let pool: PoolId = api.create_pool(request).await.unwrap().pool_id.parse().unwrap();
        clock.set_wall(UnixMillis(1_008_000));
        apply_due(&leader.state, Slot(8)).await;
        for i in [2, 3, 4] {
            let (bytes, signature) = signed(&member(i), 1_008_200, Op::Join { pool });
            api.submit_pool_op(bytes, signature).await.unwrap();
        }
        clock.set_wall(UnixMillis(1_011_000));
        apply_due(&leader.state, Slot(11)).await;
        assert_eq!(api.pool(pool).await.unwrap().status, "active");

        clock.set_wall(UnixMillis(1_011_100));
        let ban = RemoveMemberRequest { ban: true };
        let unknown = PoolId::derive(&member(1).node_id(), Slot(1), "nowhere");
        let refusals = [
            (other.api().remove_member(pool, member(3).node_id(), ban).await, Failure::NotLeader),
            (other.api().disband_pool(pool).await, Failure::NotLeader),
            (api.remove_member(pool, member(1).node_id(), ban).await, Failure::NotMember),
            (api.remove_member(pool, member(7).node_id(), ban).await, Failure::NotMember),
            (
                api.remove_member(unknown, member(3).node_id(), ban).await,
                Failure::NotFound(lucid_api::Missing::Pool),
            ),
            (api.disband_pool(unknown).await, Failure::NotFound(lucid_api::Missing::Pool)),
        ];
        for (index, (answer, expected)) in refusals.into_iter().enumerate() {
            assert_eq!(answer.map(|op| op.op_digest).unwrap_err(), expected, "refusal {index}");
        }
        assert!(ports.pools.pending_ops().await.unwrap().is_empty(), "a refused op was logged");
        let removed = api.remove_member(pool, member(3).node_id(), ban).await.unwrap();
        assert_eq!((removed.effective_slot, removed.pool_id.clone()), (14, pool.to_string()));
        // Nothing changes before the effect slot.
        apply_due(&leader.state, Slot(12)).await;
        assert_eq!(api.pool(pool).await.unwrap().seats, 4);
        clock.set_wall(UnixMillis(1_014_000));
        apply_due(&leader.state, Slot(14)).await;
        let view = api.pool(pool).await.unwrap();
        // Three seats are left (whether they count as active depends on their beacons, which
        // this test does not send).
        assert_eq!(view.seats, 3);
        assert_ne!(view.status, "disbanded");
        let members = api.pool_members(pool).await.unwrap();
        let removed_member = members
            .iter()
            .find(|m| m.node_id == member(3).node_id().to_string())
            .expect("the banned member is listed");
        assert_eq!(removed_member.status, "banned");
        // Banned: its Join is refused; removing it again is refused (it holds no seat).
        let (bytes, signature) = signed(&member(3), 1_014_100, Op::Join { pool });
        assert_eq!(api.submit_pool_op(bytes, signature).await.unwrap_err(), Failure::Banned);
        clock.set_wall(UnixMillis(1_014_100));
        let again = api.remove_member(pool, member(3).node_id(), RemoveMemberRequest::default());
        assert_eq!(again.await.unwrap_err(), Failure::NotMember);

        let disbanded = api.disband_pool(pool).await.unwrap();
        assert_eq!(disbanded.effective_slot, 17);
        clock.set_wall(UnixMillis(1_017_000));
        apply_due(&leader.state, Slot(17)).await;
        let view = api.pool(pool).await.unwrap();
        assert_eq!(
            (view.status.as_str(), view.seats, view.disbanded_slot),
            ("disbanded", 0, Some(17))
        );
        assert!(
            api.pool_members(pool)
                .await
                .unwrap()
                .iter()
                .all(|m| m.to_slot.is_some() || m.status == "banned")
        );
        // A disbanded pool refuses both ops, and a seat is free again for its former members.
        clock.set_wall(UnixMillis(1_017_100));
        assert_eq!(api.disband_pool(pool).await.unwrap_err(), Failure::PoolDisbanded);
        let late = api.remove_member(pool, member(2).node_id(), RemoveMemberRequest::default());
        assert_eq!(late.await.unwrap_err(), Failure::PoolDisbanded);
        assert_eq!(ports.pools.pool_of(&member(2).node_id()).await.unwrap(), None);
    });
}
