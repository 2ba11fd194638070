//! The peer service end to end on loopback: real tonic `Peer` servers behind the node's gate,
//! over the real ingest and in-memory stores, called through the signed client; and the
//! maintenance loop's ticks discovering peers through bootstrap, `Hello` and peer exchange.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lucid_api::grpc::{PeerGate, methods, pb, sign_peer_call};
use lucid_consensus::registration::{Endpoint, Registration};
use lucid_consensus::store::{MemoryProofStore, ProofStore};
use lucid_consensus::verify::Verifier;
use lucid_consensus::{ConsensusParams, testing};
use lucid_core::clock::ManualClock;
use lucid_core::message::Message as _;
use lucid_core::{Clock, NodeKey, SignedMessage, Slot, UnixMillis};

use super::client::PeerClient;
use super::gate::NodeGate;
use super::maintenance::{MaintenanceDeps, PeerMaintenance};
use super::table::{PeerLimits, PeerState};
use super::*;
use crate::network::{PeerTransport as _, TransportError};
use crate::services::SharedIngest;
use crate::services::runner::Service as _;

const TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn params() -> ConsensusParams {
    testing::params()
}

fn start_time() -> UnixMillis {
    params().time.slot_start(Slot(10_000)).unwrap()
}

/// A node on loopback: its `Peer` service behind its gate, its table and its client.
struct TestNode {
    key: Arc<NodeKey>,
    addr: SocketAddr,
    store: Arc<MemoryProofStore>,
    ingest: SharedIngest,
    table: Arc<SharedPeers>,
    client: Arc<PeerClient>,
    registration: SignedMessage,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestNode {
    async fn start(index: u64, clock: Arc<ManualClock>, registered: bool) -> TestNode {
        let params = params();
        let key = Arc::new(testing::key(index));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let store = Arc::new(MemoryProofStore::new());
        let clock_dyn: Arc<dyn Clock> = clock.clone();
        let peer = crate::peer::StorePeer::load(
            params,
            store.clone(),
            Arc::new(Verifier::single_threaded()),
            Arc::clone(&clock_dyn),
        )
        .await
        .unwrap();
        let ingest = peer.ingest();
        let record = Registration {
            node: key.node_id(),
            seq: 1,
            ts: clock.wall(),
            payout_address: [0x41; 21],
            endpoint: Endpoint::Direct(addr.to_string()),
            capabilities: 0,
            storage_capacity_bytes: 0,
        };
        let registration = record.sign(&params.network, &key);
        if registered {
            let (outcome, _) = ingest
                .lock()
                .await
                .ingest_registration(store.as_ref(), clock.wall(), registration.clone())
                .await
                .unwrap();
            assert_eq!(outcome.verdict, lucid_consensus::ingest::Verdict::Accept);
        }
        let limits = PeerLimits { max_known: 100, max_connected: 8, max_messages_per_minute: 1000 };
        let table = Arc::new(SharedPeers::new(key.node_id(), limits, Arc::clone(&clock_dyn)));
        let gate: Arc<dyn PeerGate> = Arc::new(NodeGate::new(
            params,
            key.node_id(),
            Arc::clone(&table),
            Arc::clone(&ingest),
            store.clone(),
            Arc::clone(&clock_dyn),
        ));
        let client = Arc::new(PeerClient::new(
            Arc::clone(&key),
            params.network,
            Arc::clone(&table),
            Arc::clone(&clock_dyn),
            Duration::from_secs(2),
            Duration::from_secs(5),
        ));
        let node = crate::Node::build(
            crate::Config {
                data_dir: std::env::temp_dir(),
                network_name: "lucid-test".into(),
                consensus: params,
                http_addr: "127.0.0.1:0".parse().unwrap(),
                shutdown_grace: Duration::from_secs(5),
                verify_threads: 1,
            },
            testing::key(index),
            clock_dyn,
            Arc::new(NoDatabase),
            crate::Ports::in_memory(),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(lucid_api::grpc::serve(
            listener,
            node.api(),
            Arc::new(peer),
            gate,
            lucid_api::AdminToken::new(TOKEN).unwrap(),
            async move {
                let _ = stopped.await;
            },
        ));
        TestNode { key, addr, store, ingest, table, client, registration, stop: Some(stop) }
    }

    fn id(&self) -> lucid_core::NodeId {
        self.key.node_id()
    }

    fn address(&self) -> PeerAddress {
        PeerAddress { node: self.id(), addr: self.addr.to_string() }
    }

    fn maintenance(&self) -> PeerMaintenance {
        PeerMaintenance::new(MaintenanceDeps {
            params: params(),
            own: self.id(),
            peers: Arc::clone(&self.table),
            client: Arc::clone(&self.client),
            ingest: Arc::clone(&self.ingest),
            store: self.store.clone(),
            every: Duration::from_secs(1),
            version: "test",
        })
    }

    fn state_of(&self, peer: &TestNode) -> Option<PeerState> {
        self.table.rows().into_iter().find(|row| row.node == peer.id()).map(|row| row.state)
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

struct NoDatabase;

#[async_trait::async_trait]
impl crate::DatabaseProbe for NoDatabase {
    fn backend(&self) -> &'static str {
        "none"
    }
    async fn ping(&self) -> Result<(), String> {
        Ok(())
    }
}

#[test]
fn peer_addresses_parse_strictly() {
    let id = testing::key(1).node_id();
    let good: PeerAddress = format!("{id}@127.0.0.1:50051").parse().unwrap();
    assert_eq!(good.addr, "127.0.0.1:50051");
    assert_eq!(good.to_string(), format!("{id}@127.0.0.1:50051"));
    assert!(format!("{id}@[::1]:7").parse::<PeerAddress>().is_ok());
    assert!(format!("{id}@abc.onion:50051").parse::<PeerAddress>().is_ok());
    let long_host = "h".repeat(300);
    for bad in [
        String::new(),
        "127.0.0.1:1".to_owned(),
        format!("{id}127.0.0.1:1"),
        "node_zz@127.0.0.1:1".to_owned(),
        format!("{id}@127.0.0.1"),
        format!("{id}@127.0.0.1:0"),
        format!("{id}@127.0.0.1:70000"),
        format!("{id}@:1"),
        format!("{id}@a b:1"),
        format!("{id}@{long_host}:1"),
        format!("{id}@host/x:1"),
    ] {
        assert!(bad.parse::<PeerAddress>().is_err(), "{bad:?}");
    }
}

#[tokio::test]
async fn hello_introduces_both_sides_and_the_client_calls_every_method_signed() {
    let clock = Arc::new(ManualClock::new(start_time()));
    let a = TestNode::start(1, clock.clone(), true).await;
    let b = TestNode::start(2, clock.clone(), true).await;
    // A knows B only by address: a queued dial.
    a.table.queue_dial(b.address());
    let reply = a.client.hello(b.id(), &a.registration, "test").await.unwrap();
    assert_eq!(reply.registration.as_ref(), Some(&b.registration));
    assert_eq!(reply.current_slot, Some(10_000));
    assert_eq!(reply.features, vec!["peer-call-v1".to_owned()]);
    // B now knows A from its Hello, and holds its record.
    assert_eq!(b.state_of(&a), Some(PeerState::Connected));
    assert!(b.ingest.lock().await.is_registered(&a.id()));
    // ExchangePeers, slot digests, pulls and proof pushes are signed and answered.
    let records = a.client.registrations(b.id(), None, 100).await.unwrap();
    assert_eq!(records.len(), 2);
    let beacon = testing::signed_beacon(&params(), &a.key, Slot(10_000));
    let outcomes = a.client.submit_proofs(b.id(), vec![beacon.clone()]).await.unwrap();
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].verdict, lucid_consensus::ingest::Verdict::Accept, "{outcomes:?}");
    let range = lucid_core::SlotRange { start: Slot(9_999), end: Slot(10_001) };
    let digests = a.client.slot_digests(b.id(), range).await.unwrap();
    assert_eq!(digests.len(), 1);
    assert_eq!(digests[0].count, 1);
    let pulled = a.client.pull_proofs(b.id(), range, None, 10).await.unwrap();
    assert_eq!(pulled, vec![beacon]);
    // B saw A call (liveness), A measured B's latency.
    let row = a.table.rows().into_iter().find(|row| row.node == b.id());
    assert!(row.is_none(), "A's table fills from registrations, not from calls alone");
    a.table.offer(&Registration::from_signed_bytes(b.registration.bytes()).unwrap().1);
    a.client.registrations(b.id(), None, 1).await.unwrap();
    let row = a.table.rows().into_iter().find(|row| row.node == b.id()).unwrap();
    assert!(row.latency_ms.is_some() && row.last_seen.is_some());
}

#[tokio::test]
async fn unregistered_replayed_and_flooding_callers_are_refused_and_scored() {
    let clock = Arc::new(ManualClock::new(start_time()));
    let a = TestNode::start(1, clock.clone(), true).await;
    let b = TestNode::start(2, clock.clone(), true).await;
    let stranger = TestNode::start(3, clock.clone(), false).await;
    // An unregistered caller may not exchange peers.
    stranger.table.queue_dial(b.address());
    let refused = stranger.client.registrations(b.id(), None, 10).await.unwrap_err();
    assert!(
        matches!(&refused, TransportError::Refused(text) if text.contains("unregistered")),
        "{refused:?}"
    );
    // A says Hello, then replays one signed call: +50 twice bans it for an hour.
    a.table.queue_dial(b.address());
    a.client.hello(b.id(), &a.registration, "test").await.unwrap();
    let channel = lucid_api::grpc::connect(b.addr).await.unwrap();
    let mut raw = lucid_api::grpc::peer_client(channel);
    let request = || pb::ExchangePeersRequest { after: Vec::new(), limit: 1 };
    let mut first = tonic::Request::new(request());
    sign_peer_call(
        &mut first,
        &a.key,
        &params().network,
        b.id(),
        methods::EXCHANGE_PEERS,
        clock.wall(),
        [7; 16],
    );
    let metadata = first.metadata().clone();
    raw.exchange_peers(first).await.unwrap();
    for _ in 0..2 {
        let mut replay = tonic::Request::new(request());
        *replay.metadata_mut() = metadata.clone();
        let status = raw.exchange_peers(replay).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert!(status.message().contains("replayed"), "{status:?}");
    }
    assert_eq!(b.state_of(&a), Some(PeerState::Banned));
    assert!(b.table.render_metrics().contains("lucid_peer_bans_total 1"));
    let banned = a.client.registrations(b.id(), None, 10).await.unwrap_err();
    assert!(
        matches!(&banned, TransportError::Refused(text) if text.contains("banned")),
        "{banned:?}"
    );
    // The ban lasts exactly one hour.
    clock.advance(Duration::from_millis(u64::try_from(table::BAN_MS).unwrap() - 1));
    assert_eq!(b.state_of(&a), Some(PeerState::Banned));
    clock.advance(Duration::from_millis(1));
    assert!(a.client.registrations(b.id(), None, 10).await.is_ok());
    // Flooding: a batch beyond the per-minute budget is refused with RESOURCE_EXHAUSTED.
    let beacon = testing::signed_beacon(&params(), &a.key, Slot(10_030));
    let flood = vec![beacon; 1001];
    let refused = a.client.submit_proofs(b.id(), flood).await.unwrap_err();
    assert!(
        matches!(&refused, TransportError::Refused(text) if text.contains("ResourceExhausted")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn unknown_onion_and_unreachable_peers_are_transport_errors() {
    let clock = Arc::new(ManualClock::new(start_time()));
    let a = TestNode::start(1, clock.clone(), true).await;
    let nobody = testing::key(8).node_id();
    assert!(matches!(
        a.client.registrations(nobody, None, 1).await,
        Err(TransportError::UnknownPeer)
    ));
    let onion = Registration {
        node: nobody,
        seq: 1,
        ts: clock.wall(),
        payout_address: [0x41; 21],
        endpoint: Endpoint::Onion { service_key: [3; 32], port: 50051 },
        capabilities: 0,
        storage_capacity_bytes: 0,
    };
    a.table.offer(&onion);
    assert!(matches!(
        a.client.registrations(nobody, None, 1).await,
        Err(TransportError::UnknownPeer)
    ));
    // A closed port: the dial fails quickly, as a transport error, never a panic.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let gone = testing::key(7).node_id();
    a.table.queue_dial(PeerAddress { node: gone, addr: closed.to_string() });
    let error = a.client.registrations(gone, None, 1).await.unwrap_err();
    assert!(matches!(error, TransportError::Unreachable(_) | TransportError::Timeout), "{error:?}");
}

#[tokio::test]
async fn maintenance_ticks_discover_peers_through_bootstrap_and_exchange() {
    let clock = Arc::new(ManualClock::new(start_time()));
    let hub = TestNode::start(1, clock.clone(), true).await;
    let b = TestNode::start(2, clock.clone(), true).await;
    let c = TestNode::start(3, clock.clone(), true).await;
    b.table.queue_dial(hub.address());
    c.table.queue_dial(hub.address());
    let mut hub_loop = hub.maintenance();
    let mut b_loop = b.maintenance();
    let mut c_loop = c.maintenance();
    b_loop.tick(clock.wall()).await.unwrap();
    c_loop.tick(clock.wall()).await.unwrap();
    hub_loop.tick(clock.wall()).await.unwrap();
    assert_eq!(b.state_of(&hub), Some(PeerState::Connected));
    assert_eq!(hub.state_of(&b), Some(PeerState::Connected));
    assert_eq!(hub.state_of(&c), Some(PeerState::Connected));
    // B learns C from the hub's exchange, then dials it on its next tick.
    clock.advance(Duration::from_secs(1));
    b_loop.tick(clock.wall()).await.unwrap();
    b_loop.tick(clock.wall()).await.unwrap();
    assert_eq!(b.state_of(&c), Some(PeerState::Connected));
    assert_eq!(b.table.gossip_peers().len(), 2);
    assert_eq!(b.store.current_registrations().await.unwrap().len(), 3);
    let metrics = b.table.render_metrics();
    assert!(metrics.contains("lucid_peers{state=\"connected\"} 2"), "{metrics}");
    // A day without contact evicts C from B's table once it is no longer connected.
    b.table.with(|table, _| table.disconnect(&c.id()));
    clock.advance(Duration::from_millis(u64::try_from(table::EVICT_UNSEEN_MS).unwrap()));
    b.table.with(|table, now| table.evict_stale(now));
    assert_eq!(b.state_of(&c), None);
}

/// A registration of `index` with `seq`, advertising `addr`, signed by `signer`.
fn registration_of(index: u64, seq: u64, addr: &str, signer: &NodeKey) -> SignedMessage {
    Registration {
        node: testing::key(index).node_id(),
        seq,
        ts: start_time(),
        payout_address: [0x41; 21],
        endpoint: Endpoint::Direct(addr.to_owned()),
        capabilities: 0,
        storage_capacity_bytes: 0,
    }
    .sign(&params().network, signer)
}

#[tokio::test]
async fn submitted_registrations_reach_the_peer_table_directly_and_only_the_newest_own_record() {
    use lucid_api::grpc::PeerApi as _;
    use lucid_consensus::ingest::{RejectReason, Verdict};
    let clock = Arc::new(ManualClock::new(start_time()));
    let clock_dyn: Arc<dyn Clock> = clock.clone();
    let own = testing::key(0).node_id();
    let limits = PeerLimits { max_known: 2, max_connected: 2, max_messages_per_minute: 1000 };
    let table = Arc::new(SharedPeers::new(own, limits, Arc::clone(&clock_dyn)));
    let config = crate::gossip::GossipConfig::for_network(&params());
    let queue = crate::gossip::GossipQueue::new(own, table.clone(), &config);
    let peer = crate::peer::StorePeer::load(
        params(),
        Arc::new(MemoryProofStore::new()),
        Arc::new(Verifier::single_threaded()),
        clock_dyn,
    )
    .await
    .unwrap()
    .with_gossip(queue.hook());
    let endpoint_of = |index: u64| {
        table.with(|table, _| {
            table.registration(&testing::key(index).node_id()).map(|r| (r.seq, r.endpoint.clone()))
        })
    };
    let direct = |addr: &str| Some(Endpoint::Direct(addr.to_owned()));
    let key1 = testing::key(1);

    // Accepted: in the table at once, without a Hello.
    let first = registration_of(1, 1, "127.0.0.1:1001", &key1);
    assert_eq!(peer.submit_registration(first.clone()).await.unwrap().verdict, Verdict::Accept);
    assert_eq!(endpoint_of(1), Some((1, direct("127.0.0.1:1001").unwrap())));
    // A newer record replaces it.
    let second = registration_of(1, 2, "127.0.0.1:2002", &key1);
    assert_eq!(peer.submit_registration(second).await.unwrap().verdict, Verdict::Accept);
    assert_eq!(endpoint_of(1), Some((2, direct("127.0.0.1:2002").unwrap())));
    // Replayed older, replayed same, forged by another key, garbage: the table keeps seq 2.
    let replayed = peer.submit_registration(first).await.unwrap().verdict;
    assert_eq!(replayed, Verdict::Reject(RejectReason::Superseded));
    let genuine = registration_of(1, 3, "127.0.0.1:6666", &key1);
    let forged =
        SignedMessage::new(genuine.bytes().to_vec(), testing::key(5).sign(genuine.bytes()));
    assert_eq!(
        peer.submit_registration(forged).await.unwrap().verdict,
        Verdict::Reject(RejectReason::BadSignature)
    );
    let garbage = SignedMessage::new(b"junk".to_vec(), key1.sign(b"junk"));
    assert!(matches!(peer.submit_registration(garbage).await.unwrap().verdict, Verdict::Reject(_)));
    assert_eq!(endpoint_of(1), Some((2, direct("127.0.0.1:2002").unwrap())));
    // The node's own record never enters its table.
    let mine = registration_of(0, 1, "127.0.0.1:1000", &testing::key(0));
    assert_eq!(peer.submit_registration(mine).await.unwrap().verdict, Verdict::Accept);
    assert_eq!(endpoint_of(0), None);
    // Bounded: with `max_known` 2 the table never holds more than 2 records, however many
    // valid registrations arrive.
    for index in 2..6 {
        let record = registration_of(index, 1, "127.0.0.1:3003", &testing::key(index));
        assert_eq!(peer.submit_registration(record).await.unwrap().verdict, Verdict::Accept);
        assert!(table.rows().len() <= 2);
    }
    assert_eq!(table.rows().len(), 2);
}

/// The payout calls over real signed peer calls: a node that is not the payer refuses them
/// (it never forwards them again), a replayed call is refused like any replayed peer call, and
/// a body that is not the one the peer call signed is refused before anyone looks at it.
#[tokio::test]
async fn forwarded_payout_calls_reach_only_a_payer_and_are_never_replayed() {
    use lucid_api::Failure;
    use lucid_api::grpc::convert::ToProto as _;
    use lucid_payouts::request::{CancelRequest, WithdrawalRequest};

    let clock = Arc::new(ManualClock::new(start_time()));
    let a = TestNode::start(1, clock.clone(), true).await;
    let b = TestNode::start(2, clock.clone(), true).await;
    a.table.queue_dial(b.address());
    a.client.hello(b.id(), &a.registration, "test").await.unwrap();
    let network = params().network;
    let withdrawal = WithdrawalRequest {
        node: a.id(),
        amount: None,
        idempotency_key: "k".into(),
        ts: clock.wall(),
    }
    .sign(&network, &a.key);
    let cancel = CancelRequest {
        node: a.id(),
        payout_id: "payout_000000000000000000000000".into(),
        ts: clock.wall(),
    }
    .sign(&network, &a.key);

    // B is not the payer: the signed requests are refused in the answer, reads as a transport
    // error (the forwarding node answers PAYER_UNREACHABLE for those).
    let answer = a.client.forward_withdrawal(b.id(), &withdrawal).await.unwrap();
    assert!(matches!(answer, Err(Failure::FeatureDisabled(_))), "{answer:?}");
    let answer = a.client.forward_cancel(b.id(), &cancel).await.unwrap();
    assert!(matches!(answer, Err(Failure::FeatureDisabled(_))), "{answer:?}");
    let read = a.client.get_payouts(b.id(), pb::GetPayoutsRequest::default()).await;
    assert!(read.is_err(), "{read:?}");

    let channel = lucid_api::grpc::connect(b.addr).await.unwrap();
    let mut raw = lucid_api::grpc::peer_client(channel);
    let body = |signed: &SignedMessage| pb::ForwardWithdrawalRequest {
        withdrawal: Some(signed.to_proto()),
    };
    // A body other than the one the peer call signed.
    let mut swapped = tonic::Request::new(body(&withdrawal));
    let call = (&a.key, &network, b.id(), methods::FORWARD_WITHDRAWAL);
    sign_peer_call(&mut swapped, call.0, call.1, call.2, call.3, clock.wall(), [8; 16]);
    *swapped.get_mut() = body(&cancel);
    let status = raw.forward_withdrawal(swapped).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    // A call answered once, then replayed with the same metadata.
    let mut first = tonic::Request::new(body(&withdrawal));
    sign_peer_call(&mut first, call.0, call.1, call.2, call.3, clock.wall(), [9; 16]);
    let metadata = first.metadata().clone();
    let answer = raw.forward_withdrawal(first).await.unwrap().into_inner();
    let refusal = match answer.outcome {
        Some(pb::payout_answer::Outcome::Refusal(refusal)) => refusal.code,
        other => panic!("{other:?}"),
    };
    assert_eq!(refusal, "FEATURE_DISABLED");
    let mut replay = tonic::Request::new(body(&withdrawal));
    *replay.metadata_mut() = metadata;
    let status = raw.forward_withdrawal(replay).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert!(status.message().contains("replayed"), "{status:?}");
}
