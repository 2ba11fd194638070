//! The gRPC services end to end: a tonic server on loopback over the real consensus ingest and
//! the in-memory `ProofStore`, called through the real client.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use lucid_consensus::ingest::{Ingest, Outcome};
use lucid_consensus::store::{MemoryProofStore, ProofStore, StoredProof};
use lucid_consensus::verify::Verifier;
use lucid_consensus::{ConsensusParams, ProofKey, testing};
use lucid_core::message::Message as _;
use lucid_core::{NodeId, NodeKey, SignedMessage, Slot, SlotRange, UnixMillis};
use tonic::Code;

use super::convert::ToProto as _;
use super::*;
use crate::dto::*;
use crate::failure::{Failure, Missing};
use crate::{ClockInfo, ComponentHealth, HealthReport, HealthStatus, NodeInfo};
use lucid_core::{Epoch, MicroUsdt, PoolId, Signature};

const TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// The slot "now" lies in, for every test.
const NOW_SLOT: Slot = Slot(1_000);

fn params() -> ConsensusParams {
    testing::params()
}

fn now() -> UnixMillis {
    params().time.slot_start(NOW_SLOT).unwrap().saturating_add_ms(30_000)
}

/// `PeerApi` over the real ingest and the in-memory store, at a fixed `now`.
struct TestPeer {
    ingest: tokio::sync::Mutex<Ingest>,
    store: Arc<MemoryProofStore>,
    verifier: Verifier,
}

#[async_trait::async_trait]
impl PeerApi for TestPeer {
    async fn fetch_slot(&self, slot: Slot) -> Result<Option<SealedSlot>, lucid_consensus::Error> {
        // Serves the stored seal of node 1 with its stored proofs, as the daemon does for its own.
        let Some(stored) = self.store.get_seal(&testing::node(1), slot).await? else {
            return Ok(None);
        };
        let range = SlotRange { start: slot, end: Slot(slot.0 + 1) };
        let set = self.store.proofs_in_range(range, None, 1_024).await?;
        Ok(Some(SealedSlot {
            seal: stored.message,
            set: set.into_iter().map(|proof| proof.message).collect(),
        }))
    }

    async fn submit_evidence(
        &self,
        _caller: Option<NodeId>,
        first: SignedMessage,
        second: SignedMessage,
    ) -> Result<Outcome, lucid_consensus::Error> {
        let mut ingest = self.ingest.lock().await;
        let (outcome, _) = ingest
            .ingest_evidence(self.store.as_ref(), &self.verifier, now(), first, second)
            .await?;
        Ok(outcome)
    }

    async fn submit_proofs(
        &self,
        _caller: Option<NodeId>,
        proofs: Vec<SignedMessage>,
    ) -> Result<Vec<Outcome>, lucid_consensus::Error> {
        let mut ingest = self.ingest.lock().await;
        let report =
            ingest.ingest_batch(self.store.as_ref(), &self.verifier, now(), proofs).await?;
        Ok(report.outcomes)
    }

    async fn slot_digests(
        &self,
        range: SlotRange,
    ) -> Result<Vec<SlotDigest>, lucid_consensus::Error> {
        // A small page, so the grouping across pages is exercised.
        super::slot_digests(self.store.as_ref(), range, 2).await
    }

    async fn pull_proofs(
        &self,
        range: SlotRange,
        after: Option<ProofKey>,
        limit: usize,
    ) -> Result<Vec<StoredProof>, lucid_consensus::Error> {
        self.store.proofs_in_range(range, after, limit).await
    }

    async fn submit_registration(
        &self,
        registration: SignedMessage,
    ) -> Result<Outcome, lucid_consensus::Error> {
        let mut ingest = self.ingest.lock().await;
        Ok(ingest.ingest_registration(self.store.as_ref(), now(), registration).await?.0)
    }

    async fn registrations(
        &self,
        after: Option<NodeId>,
        limit: usize,
    ) -> Result<Vec<SignedMessage>, lucid_consensus::Error> {
        Ok(self
            .store
            .current_registrations()
            .await?
            .into_iter()
            .filter(|r| after.is_none_or(|after| r.registration.node > after))
            .take(limit)
            .map(|r| r.message)
            .collect())
    }

    async fn registration(
        &self,
        node: NodeId,
    ) -> Result<Option<SignedMessage>, lucid_consensus::Error> {
        Ok(self
            .store
            .current_registrations()
            .await?
            .into_iter()
            .find(|r| r.registration.node == node)
            .map(|r| r.message))
    }

    async fn registered_nodes(&self) -> Result<u64, lucid_consensus::Error> {
        Ok(self.ingest.lock().await.registered_count() as u64)
    }

    async fn submit_pool_ops(
        &self,
        _caller: Option<NodeId>,
        ops: Vec<SignedMessage>,
    ) -> Result<Vec<Outcome>, lucid_consensus::Error> {
        // Scripted (the wire layer is under test, the daemon judges ops): a message signed by
        // node 1 is accepted.
        Ok(ops
            .iter()
            .map(|op| {
                let verdict = if op.verify(&testing::node(1)) {
                    lucid_consensus::ingest::Verdict::Accept
                } else {
                    lucid_consensus::ingest::Verdict::Reject(
                        lucid_consensus::ingest::RejectReason::BadSignature,
                    )
                };
                Outcome { digest: op.digest(), verdict }
            })
            .collect())
    }

    async fn fetch_pool_ops(
        &self,
        query: super::PoolOpsQuery,
    ) -> Result<super::PoolOpsPage, lucid_consensus::Error> {
        // Scripted: in sync when the caller knows nothing; otherwise one op of node 1 and a
        // cursor that echoes the query, so every field crosses the wire both ways.
        if query.known_count == 0 {
            return Ok(super::PoolOpsPage { in_sync: true, ..Default::default() });
        }
        let op = testing::key(1).sign(b"scripted");
        let message = SignedMessage::new(b"scripted".to_vec(), op);
        Ok(super::PoolOpsPage {
            in_sync: false,
            ops: vec![message],
            next: Some(super::PoolOpCursor { slot: query.range.start, digest: query.known_root }),
        })
    }

    async fn submit_seals(
        &self,
        _caller: Option<NodeId>,
        seals: Vec<SignedMessage>,
    ) -> Result<Vec<Outcome>, lucid_consensus::Error> {
        Ok(seals
            .iter()
            .map(|seal| Outcome {
                digest: seal.digest(),
                verdict: lucid_consensus::ingest::Verdict::Duplicate,
            })
            .collect())
    }

    async fn fetch_evidence(
        &self,
        query: EvidenceQuery,
    ) -> Result<EvidencePage, lucid_consensus::Error> {
        evidence_page(self.store.as_ref(), query).await
    }
}

/// A node with fixed answers, for the operator service.
struct TestNode;

#[async_trait::async_trait]
impl crate::NodeApi for TestNode {
    fn health(&self) -> HealthReport {
        let mut components = BTreeMap::new();
        components.insert(
            "database",
            ComponentHealth { status: HealthStatus::Healthy, detail: "sqlite reachable".into() },
        );
        HealthReport {
            status: HealthStatus::Healthy,
            ready: true,
            version: "9.9.9",
            node_id: testing::node(7).to_string(),
            network: "lucid-test".into(),
            slot: Some(NOW_SLOT.0),
            epoch: Some(1),
            uptime_s: 42,
            components,
        }
    }

    fn node_info(&self) -> NodeInfo {
        unreachable!("not used by the gRPC services")
    }

    fn clock(&self) -> ClockInfo {
        ClockInfo {
            network: "lucid-test".into(),
            network_id: "00".into(),
            genesis_ms: 5,
            slot_ms: 120_000,
            slots_per_epoch: 720,
            slot: Some(NOW_SLOT.0),
            epoch: Some(1),
            slot_start_ms: Some(6),
            next_slot_start_ms: Some(7),
        }
    }

    fn metrics(&self) -> String {
        String::new()
    }

    fn resources(&self) -> ResourcesView {
        unreachable!("not used by the gRPC services")
    }

    async fn nodes(&self, _page: PageQuery) -> Result<Page<NodeSummary>, Failure> {
        unreachable!("not used by the gRPC services")
    }

    async fn node(&self, _node: NodeId) -> Result<NodeSummary, Failure> {
        unreachable!("not used by the gRPC services")
    }

    async fn pools(&self, _page: PageQuery) -> Result<Page<PoolView>, Failure> {
        assert_eq!(_page.limit, Some(100), "0 asks for the maximum page");
        Ok(Page {
            items: vec![PoolView {
                pool_id: "pool_x".into(),
                name: "alpha".into(),
                status: "active".into(),
                leader: "node_l".into(),
                founder: "node_l".into(),
                max_nodes: 100,
                seats: 3,
                capacity_remaining: 97,
                is_at_capacity: false,
                pending_joins: 0,
                created_slot: 1,
                disbanded_slot: None,
            }],
            next_cursor: None,
        })
    }

    async fn pool(&self, _pool: PoolId) -> Result<PoolView, Failure> {
        unreachable!("not used by the gRPC services")
    }

    async fn pool_members(&self, _pool: PoolId) -> Result<Vec<MemberView>, Failure> {
        unreachable!("not used by the gRPC services")
    }

    async fn pool_capacity(&self, _pool: PoolId) -> Result<CapacityView, Failure> {
        unreachable!("not used by the gRPC services")
    }

    async fn create_pool(&self, _request: CreatePoolRequest) -> Result<OpAccepted, Failure> {
        unreachable!("not used by the gRPC services")
    }

    async fn join_pool(&self, _pool: PoolId) -> Result<OpAccepted, Failure> {
        unreachable!("not used by the gRPC services")
    }

    async fn leave_pool(&self, _pool: PoolId) -> Result<OpAccepted, Failure> {
        unreachable!("not used by the gRPC services")
    }

    async fn update_pool(
        &self,
        _pool: PoolId,
        _request: UpdatePoolRequest,
    ) -> Result<OpAccepted, Failure> {
        unreachable!("not used by the gRPC services")
    }

    async fn submit_pool_op(
        &self,
        _message: Vec<u8>,
        _signature: Signature,
    ) -> Result<OpAccepted, Failure> {
        unreachable!("not used by the gRPC services")
    }

    async fn remove_member(
        &self,
        _pool: PoolId,
        _member: NodeId,
        _request: crate::dto::RemoveMemberRequest,
    ) -> Result<OpAccepted, Failure> {
        unreachable!("not used by the gRPC services")
    }

    async fn disband_pool(&self, _pool: PoolId) -> Result<OpAccepted, Failure> {
        unreachable!("not used by the gRPC services")
    }

    async fn ledger(
        &self,
        _node: NodeId,
        _page: PageQuery,
    ) -> Result<crate::dto::LedgerPageView, Failure> {
        unreachable!("the peer service asks payer_ledger")
    }

    async fn payout_config(&self) -> Result<crate::dto::PayoutConfigView, Failure> {
        unreachable!("not used by the gRPC services")
    }

    async fn tally(&self, _epoch: Epoch) -> Result<TallyView, Failure> {
        if _epoch != Epoch(1) {
            return Err(Failure::NotFound(Missing::Tally));
        }
        Ok(TallyView {
            epoch: 1,
            window_start: 0,
            window_end: 720,
            revision: 0,
            settled: true,
            digest: "ab".repeat(32),
            entries: vec![TallyEntryView {
                entity: "node_e".into(),
                rank: Some(1),
                credits: "18446744073709551616".into(),
                relay: "0".into(),
                storage: "0".into(),
                validation: "0".into(),
                beacon_slots: 700,
                density_ppm: 972_222,
            }],
        })
    }

    async fn leader(&self, _slot: Slot) -> Result<ScheduleView, Failure> {
        if _slot != NOW_SLOT {
            return Err(Failure::NotFound(Missing::Slot));
        }
        Ok(ScheduleView {
            slot: NOW_SLOT.0,
            epoch: 1,
            tally_digest: None,
            primary: Some("node_l".into()),
            fallbacks: vec![],
            reason: None,
            no_leader_reason: None,
            result: None,
        })
    }

    async fn balance(&self, _node: NodeId) -> Result<BalanceView, Failure> {
        unreachable!("not used by the gRPC services")
    }

    async fn payouts(
        &self,
        _node: Option<NodeId>,
        _query: PayoutQuery,
    ) -> Result<Page<PayoutView>, Failure> {
        assert_eq!(_node, Some(testing::node(7)));
        Ok(Page {
            items: vec![PayoutView {
                payout_id: "po_1".into(),
                node_id: testing::node(7).to_string(),
                origin: "withdrawal".into(),
                status: "pending".into(),
                gross: "10.000000".into(),
                fee: "0.100000".into(),
                net: "9.900000".into(),
                to_address: "41".into(),
                idempotency_key: "wd:k".into(),
                attempts: vec![],
                error_code: None,
                created_at: 1,
                updated_at: 1,
                completed_at: None,
            }],
            next_cursor: None,
        })
    }

    async fn payout(&self, _payout_id: &str) -> Result<PayoutView, Failure> {
        unreachable!("not used by the gRPC services")
    }

    async fn payout_stats(&self) -> Result<PayoutStats, Failure> {
        unreachable!("not used by the gRPC services")
    }

    async fn request_withdrawal(
        &self,
        _node: NodeId,
        _idempotency_key: &str,
        _amount: Option<MicroUsdt>,
    ) -> Result<Withdrawal, Failure> {
        unreachable!("not used by the gRPC services")
    }

    async fn cancel_payout(&self, _payout_id: &str) -> Result<PayoutView, Failure> {
        unreachable!("not used by the gRPC services")
    }

    /// The payer of these tests: a withdrawal whose bytes start with `ok` creates `po_1`, any
    /// other is below the minimum.
    async fn payer_withdrawal(&self, withdrawal: SignedMessage) -> Result<Withdrawal, Failure> {
        if withdrawal.bytes().starts_with(b"ok") {
            Ok(Withdrawal { created: true, payout: test_payout("po_1") })
        } else {
            Err(Failure::BelowMinimum("10.000000".into()))
        }
    }

    /// A cancel of anything but `po_1` signed bytes is forbidden.
    async fn payer_cancel(&self, cancel: SignedMessage) -> Result<PayoutView, Failure> {
        if cancel.bytes() == b"po_1" {
            let mut payout = test_payout("po_1");
            payout.status = "cancelled".into();
            Ok(payout)
        } else {
            Err(Failure::Forbidden)
        }
    }

    async fn payer_payouts(
        &self,
        node: Option<NodeId>,
        query: PayoutQuery,
    ) -> Result<Page<PayoutView>, Failure> {
        assert_eq!(node, Some(testing::node(7)));
        assert_eq!(query.status.as_deref(), Some("pending"));
        Ok(Page { items: vec![test_payout("po_1")], next_cursor: Some("c1".into()) })
    }

    /// Node 7's ledger holds one credit and one reserve; any other node's is empty.
    async fn payer_ledger(
        &self,
        node: NodeId,
        page: PageQuery,
    ) -> Result<crate::dto::LedgerPageView, Failure> {
        let line = |key: &str, kind: &str, amount: &str, after: &str| crate::dto::LedgerLineView {
            posting_key: key.into(),
            kind: kind.into(),
            amount: amount.into(),
            created_at: 9,
            memo: None,
            balance_after: after.into(),
        };
        let items = if node == testing::node(7) {
            vec![
                line("payout_reserve:po_1", "payout_reserve", "-10.000000", "2.500000"),
                line("epoch_reward:1", "epoch_reward", "12.500000", "12.500000"),
            ]
        } else {
            Vec::new()
        };
        let next_cursor = page.cursor.is_none().then(|| "9:epoch_reward:1".to_owned());
        Ok(crate::dto::LedgerPageView {
            node_id: node.to_string(),
            items,
            next_cursor,
            authoritative: true,
        })
    }

    async fn payer_payout_stats(&self) -> Result<PayoutStats, Failure> {
        Ok(PayoutStats {
            by_status: BTreeMap::from([("confirmed".to_owned(), 2), ("pending".to_owned(), 1)]),
            paid_gross: "20.500000".into(),
        })
    }

    async fn payer_payout(&self, payout_id: &str) -> Result<PayoutView, Failure> {
        if payout_id == "po_1" {
            Ok(test_payout("po_1"))
        } else {
            Err(Failure::NotFound(Missing::Payout))
        }
    }
}

fn test_payout(id: &str) -> PayoutView {
    PayoutView {
        payout_id: id.into(),
        node_id: testing::node(7).to_string(),
        origin: "withdrawal".into(),
        status: "pending".into(),
        gross: "10.000000".into(),
        fee: "0.100000".into(),
        net: "9.900000".into(),
        to_address: "41".into(),
        idempotency_key: "wd:k".into(),
        attempts: vec![AttemptView {
            attempt_no: 1,
            txid: "ab".repeat(32),
            status: "signed".into(),
            fee_limit_sun: 5,
            expiration: 9,
            broadcast_at: None,
            block_number: Some(3),
            energy_used: None,
            fee_sun: Some(2),
        }],
        error_code: Some("X".into()),
        created_at: 1,
        updated_at: 2,
        completed_at: None,
    }
}

#[tokio::test]
async fn forwarded_payout_requests_carry_the_payers_answer_both_ways() {
    use super::convert::{FromProto as _, payout_answer};
    let server = Server::start().await;
    let mut client = server.peer().await;
    let signed =
        |bytes: &[u8]| pb::SignedMessage { message: bytes.to_vec(), signature: vec![0; 64] };
    // A created payout travels field by field; the same view comes out on the other side.
    let answer = client
        .forward_withdrawal(pb::ForwardWithdrawalRequest { withdrawal: Some(signed(b"ok-1")) })
        .await
        .unwrap()
        .into_inner();
    let (created, view) = payout_answer(answer).unwrap().unwrap();
    assert!(created);
    assert_eq!(
        serde_json::to_value(&view).unwrap(),
        serde_json::to_value(test_payout("po_1")).unwrap()
    );
    // A refusal keeps its code and detail.
    let answer = client
        .forward_withdrawal(pb::ForwardWithdrawalRequest { withdrawal: Some(signed(b"no")) })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        payout_answer(answer).unwrap().unwrap_err(),
        Failure::BelowMinimum("10.000000".into())
    );
    // A malformed pair is refused in the answer, before the payer sees it; a missing one is
    // an invalid argument.
    let short = pb::SignedMessage { message: b"ok".to_vec(), signature: vec![0; 3] };
    let answer = client
        .forward_withdrawal(pb::ForwardWithdrawalRequest { withdrawal: Some(short) })
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(payout_answer(answer).unwrap(), Err(Failure::MalformedMessage(_))));
    // Oversized (one byte over a signed message's maximum) and empty messages likewise, for
    // both calls; the test payer would have accepted the withdrawal's `ok` prefix.
    let mut oversized = b"ok".to_vec();
    oversized.resize(lucid_core::message::MAX_MESSAGE_BYTES + 1, 0);
    for message in [oversized, Vec::new()] {
        let wire = pb::SignedMessage { message, signature: vec![0; 64] };
        let answer = client
            .forward_withdrawal(pb::ForwardWithdrawalRequest { withdrawal: Some(wire.clone()) })
            .await
            .unwrap()
            .into_inner();
        assert!(matches!(payout_answer(answer).unwrap(), Err(Failure::MalformedMessage(_))));
        let answer = client
            .forward_cancel(pb::ForwardCancelRequest { cancel: Some(wire) })
            .await
            .unwrap()
            .into_inner();
        assert!(matches!(payout_answer(answer).unwrap(), Err(Failure::MalformedMessage(_))));
    }
    let missing = client.forward_withdrawal(pb::ForwardWithdrawalRequest::default()).await;
    assert_eq!(missing.unwrap_err().code(), Code::InvalidArgument);
    // Cancels.
    let answer = client
        .forward_cancel(pb::ForwardCancelRequest { cancel: Some(signed(b"po_1")) })
        .await
        .unwrap()
        .into_inner();
    let (created, view) = payout_answer(answer).unwrap().unwrap();
    assert_eq!((created, view.status.as_str()), (false, "cancelled"));
    let answer = client
        .forward_cancel(pb::ForwardCancelRequest { cancel: Some(signed(b"po_2")) })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(payout_answer(answer).unwrap().unwrap_err(), Failure::Forbidden);
    // Reads: one payout by id (none when unknown), a page of one node's.
    let by_id = |id: &str| pb::GetPayoutsRequest { payout_id: id.into(), ..Default::default() };
    let one = client.get_payouts(by_id("po_1")).await.unwrap().into_inner();
    assert_eq!(one.payouts.len(), 1);
    let none = client.get_payouts(by_id("po_9")).await.unwrap().into_inner();
    assert!(none.payouts.is_empty());
    let page = client
        .get_payouts(pb::GetPayoutsRequest {
            node_id: testing::node(7).to_string(),
            status: "pending".into(),
            limit: 5,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((page.payouts.len(), page.next_cursor.as_deref()), (1, Some("c1")));
    let record = PayoutView::from_proto(page.payouts[0].clone()).unwrap();
    assert_eq!(record.attempts.len(), 1);
    // The ledger of one node, newest first, and the payer's figures.
    let ledger = client
        .get_ledger(pb::GetLedgerRequest {
            node_id: testing::node(7).to_string(),
            limit: 2,
            cursor: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ledger.lines.len(), 2);
    assert_eq!(
        (ledger.lines[0].amount_micro, ledger.lines[0].balance_after_micro),
        (-10_000_000, 2_500_000)
    );
    assert_eq!(ledger.next_cursor.as_deref(), Some("9:epoch_reward:1"));
    let shown = crate::dto::LedgerLineView::from_proto(ledger.lines[0].clone()).unwrap();
    assert_eq!((shown.amount.as_str(), shown.balance_after.as_str()), ("-10.000000", "2.500000"));
    let stats = client.get_payout_stats(pb::GetPayoutStatsRequest {}).await.unwrap().into_inner();
    assert_eq!(stats.paid_gross_micro, 20_500_000);
    assert_eq!(stats.by_status.get("confirmed"), Some(&2));
    for bad in [
        pb::GetLedgerRequest::default(),
        pb::GetLedgerRequest { node_id: "node_zz".into(), ..Default::default() },
        pb::GetLedgerRequest {
            node_id: testing::node(7).to_string(),
            limit: 101,
            ..Default::default()
        },
        pb::GetLedgerRequest {
            node_id: testing::node(7).to_string(),
            cursor: "1".repeat(161),
            ..Default::default()
        },
    ] {
        let status = client.get_ledger(bad.clone()).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}: {status:?}");
    }
    // Malformed reads: an id with other fields, a bad id, a bad node, a page over 100.
    for bad in [
        pb::GetPayoutsRequest { payout_id: "po_1".into(), limit: 2, ..Default::default() },
        by_id("../etc"),
        pb::GetPayoutsRequest { node_id: "node_zz".into(), ..Default::default() },
        pb::GetPayoutsRequest { limit: 101, ..Default::default() },
        pb::GetPayoutsRequest { cursor: "c".repeat(129), ..Default::default() },
    ] {
        let status = client.get_payouts(bad.clone()).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}: {status:?}");
    }
    server.stop().await;
}

#[test]
fn a_ledger_line_from_another_node_is_checked_before_it_is_shown() {
    use super::convert::FromProto as _;
    let good = pb::LedgerLine {
        posting_key: "epoch_reward:3".into(),
        kind: "epoch_reward".into(),
        amount_micro: 1_500_000,
        created_at: 7,
        memo: None,
        balance_after_micro: 1_500_000,
    };
    let view = crate::dto::LedgerLineView::from_proto(good.clone()).unwrap();
    assert_eq!((view.amount.as_str(), view.balance_after.as_str()), ("1.500000", "1.500000"));
    type Change = Box<dyn Fn(&mut pb::LedgerLine)>;
    let broken: [Change; 7] = [
        Box::new(|l| l.posting_key = String::new()),
        Box::new(|l| l.posting_key = "k".repeat(129)),
        Box::new(|l| l.kind = "a\u{0}b".into()),
        Box::new(|l| l.amount_micro = 0),
        Box::new(|l| l.balance_after_micro = -1),
        Box::new(|l| l.created_at = -5),
        Box::new(|l| l.memo = Some("m".repeat(200))),
    ];
    for (index, change) in broken.iter().enumerate() {
        let mut line = good.clone();
        change(&mut line);
        assert!(crate::dto::LedgerLineView::from_proto(line).is_err(), "change {index}");
    }
    // The signed amount text round-trips, and nothing else parses as one.
    for micro in [i64::MIN + 1, -1, 1, 10_000_000, i64::MAX] {
        let text = crate::dto::signed_amount(micro);
        assert_eq!(crate::dto::parse_signed_amount(&text), Some(micro), "{text}");
    }
    for text in ["", "-", "--1", "+1", "1.0000001", "1e3", " 1"] {
        assert_eq!(crate::dto::parse_signed_amount(text), None, "{text:?}");
    }
}

#[test]
fn a_payout_record_from_another_node_is_checked_before_it_is_shown() {
    use super::convert::FromProto as _;
    let good = test_payout("po_1").to_proto();
    assert!(PayoutView::from_proto(good.clone()).is_ok());
    type Change = Box<dyn Fn(&mut pb::PayoutRecord)>;
    let broken: [Change; 6] = [
        Box::new(|r| r.payout_id = "../x".into()),
        Box::new(|r| r.node_id = "node_1".into()),
        Box::new(|r| r.gross = "1.0000001".into()),
        Box::new(|r| r.status = "x".repeat(129)),
        Box::new(|r| r.idempotency_key = "a\u{0}b".into()),
        Box::new(|r| r.attempts = vec![pb::PayoutAttemptRecord::default(); 17]),
    ];
    for (index, change) in broken.iter().enumerate() {
        let mut record = good.clone();
        change(&mut record);
        assert!(PayoutView::from_proto(record).is_err(), "case {index}");
    }
    // A refusal code a payout request cannot end in, or no outcome at all, is a broken answer.
    let odd = pb::PayoutAnswer {
        outcome: Some(pb::payout_answer::Outcome::Refusal(pb::PayoutRefusal {
            code: "POOL_FULL".into(),
            detail: String::new(),
        })),
        created: false,
    };
    assert!(super::convert::payout_answer(odd).is_err());
    assert!(super::convert::payout_answer(pb::PayoutAnswer::default()).is_err());
}

/// The gate of these tests. Open: admits every call as node 0 (the service tests above the
/// gate). Guarded: the real `PeerCallGuard` at the fixed `now`, every caller registered except
/// node 9, refusals recorded.
struct TestGate {
    guard: Option<std::sync::Mutex<lucid_consensus::peer_call::PeerCallGuard>>,
    store: Arc<MemoryProofStore>,
    refused: std::sync::Mutex<Vec<PeerRefusal>>,
}

impl TestGate {
    fn refused(&self) -> Vec<PeerRefusal> {
        self.refused.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl PeerGate for TestGate {
    async fn admit(&self, attempt: PeerCallAttempt<'_>) -> Result<NodeId, PeerRefusal> {
        let Some(guard) = &self.guard else { return Ok(testing::key(0).node_id()) };
        let checked = guard.lock().unwrap().check(
            attempt.metadata,
            attempt.method,
            &attempt.payload_digest,
            now(),
        );
        let refusal = match checked {
            Ok(caller) if attempt.registered_only && caller == testing::key(9).node_id() => {
                PeerRefusal::Unauthenticated(
                    lucid_consensus::peer_call::RefusalReason::Unregistered,
                )
            }
            Ok(caller) => return Ok(caller),
            Err(refusal) => PeerRefusal::Unauthenticated(refusal.reason),
        };
        self.refused.lock().unwrap().push(refusal.clone());
        Err(refusal)
    }

    async fn hello(
        &self,
        caller: NodeId,
        network_id: &str,
        _version: &str,
        registration: SignedMessage,
    ) -> Result<HelloAnswer, PeerRefusal> {
        if network_id != params().network.to_string() {
            return Err(PeerRefusal::WrongNetwork);
        }
        let (_, record) =
            lucid_consensus::registration::Registration::from_signed_bytes(registration.bytes())
                .map_err(|_| PeerRefusal::InvalidRegistration("malformed".into()))?;
        if record.node != caller || !registration.verify(&caller) {
            return Err(PeerRefusal::InvalidRegistration("not the caller's".into()));
        }
        let own = self.store.current_registrations().await.unwrap().into_iter().next();
        Ok(HelloAnswer { registration: own.map(|r| r.message), current_slot: Some(NOW_SLOT) })
    }
}

struct Server {
    addr: SocketAddr,
    gate: Arc<TestGate>,
    store: Arc<MemoryProofStore>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Server {
    async fn start() -> Self {
        Self::start_with(false).await
    }

    /// A server whose gate checks signed peer calls to node 0.
    async fn start_guarded() -> Self {
        Self::start_with(true).await
    }

    async fn start_with(guarded: bool) -> Self {
        let store = Arc::new(MemoryProofStore::new());
        let guard = guarded.then(|| {
            std::sync::Mutex::new(lucid_consensus::peer_call::PeerCallGuard::new(
                params().network,
                testing::key(0).node_id(),
            ))
        });
        let gate = Arc::new(TestGate {
            guard,
            store: Arc::clone(&store),
            refused: std::sync::Mutex::new(Vec::new()),
        });
        let peer = Arc::new(TestPeer {
            ingest: tokio::sync::Mutex::new(Ingest::new(params())),
            store: Arc::clone(&store),
            verifier: Verifier::single_threaded(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(
            listener,
            Arc::new(TestNode),
            peer,
            Arc::clone(&gate) as Arc<dyn PeerGate>,
            AdminToken::new(TOKEN).unwrap(),
            async move {
                let _ = stopped.await;
            },
        ));
        Server { addr, gate, store, stop: Some(stop), task }
    }

    async fn peer(&self) -> pb::peer_client::PeerClient<tonic::transport::Channel> {
        peer_client(connect(self.addr).await.unwrap())
    }

    /// Stops the server and checks that it shut down cleanly.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap().unwrap();
    }
}

fn wire(message: &SignedMessage) -> pb::SignedMessage {
    message.to_proto()
}

async fn register(
    client: &mut pb::peer_client::PeerClient<tonic::transport::Channel>,
    key: &NodeKey,
) {
    let registration = testing::signed_registration(&params(), key, 1);
    let answer = client
        .submit_registration(pb::SubmitRegistrationRequest {
            registration: Some(wire(&registration)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.verdict.unwrap().verdict(), pb::Verdict::Accept);
}

fn verdict(v: &pb::MessageVerdict) -> (pb::Verdict, pb::RejectReason) {
    (v.verdict(), v.reason())
}

#[tokio::test]
async fn a_batch_gets_one_typed_verdict_per_proof_in_order() {
    let server = Server::start().await;
    let mut client = server.peer().await;
    let params = params();
    let alice = testing::key(1);
    let stranger = testing::key(2);
    register(&mut client, &alice).await;

    let beacon = testing::signed_beacon(&params, &alice, NOW_SLOT);
    let relay = testing::signed_relay(&params, &alice, NOW_SLOT, 1_000);
    // Forged: alice's bytes with the stranger's signature.
    let forged_bytes = testing::signed_relay(&params, &alice, Slot(NOW_SLOT.0 - 1), 5);
    let forged =
        SignedMessage::new(forged_bytes.bytes().to_vec(), stranger.sign(forged_bytes.bytes()));
    // Equivocation: a second, different beacon of alice for the same slot.
    let mut other = testing::proof(&params, &alice, NOW_SLOT, testing::BEACON);
    other.ts = other.ts.saturating_add_ms(1);
    let equivocating = other.sign(&params.network, &alice);
    let unknown = testing::signed_beacon(&params, &stranger, NOW_SLOT);
    let stale = testing::signed_beacon(&params, &alice, Slot(NOW_SLOT.0 - 10));
    let garbage =
        pb::SignedMessage { message: b"not a lucid message".to_vec(), signature: vec![0; 64] };
    let short_signature =
        pb::SignedMessage { message: beacon.bytes().to_vec(), signature: vec![0; 63] };
    let oversized = pb::SignedMessage { message: vec![0; 64 * 1024 + 1], signature: vec![0; 64] };

    let batch = vec![
        wire(&beacon),
        wire(&relay),
        wire(&forged),
        garbage,
        short_signature,
        oversized,
        wire(&unknown),
        wire(&stale),
        wire(&beacon),
        wire(&equivocating),
    ];
    let answer = client
        .submit_proofs(pb::SubmitProofsRequest { proofs: batch.clone() })
        .await
        .unwrap()
        .into_inner();
    let got: Vec<_> = answer.verdicts.iter().map(verdict).collect();
    use pb::RejectReason as R;
    use pb::Verdict as V;
    assert_eq!(
        got,
        vec![
            (V::Accept, R::Unspecified),
            (V::Accept, R::Unspecified),
            (V::Reject, R::BadSignature),
            (V::Reject, R::Malformed),
            (V::Reject, R::Malformed),
            (V::Reject, R::Malformed),
            (V::Reject, R::UnknownNode),
            (V::Reject, R::Stale),
            (V::Duplicate, R::Unspecified),
            (V::Reject, R::Equivocation),
        ]
    );
    for (sent, verdict) in batch.iter().zip(&answer.verdicts) {
        assert_eq!(verdict.digest, lucid_core::message::message_digest(&sent.message).as_bytes());
    }

    // Replaying the whole batch changes nothing: accepted proofs are now duplicates.
    let replay =
        client.submit_proofs(pb::SubmitProofsRequest { proofs: batch }).await.unwrap().into_inner();
    assert_eq!(verdict(&replay.verdicts[0]), (V::Duplicate, R::Unspecified));
    assert_eq!(verdict(&replay.verdicts[1]), (V::Duplicate, R::Unspecified));
    assert_eq!(verdict(&replay.verdicts[2]), (V::Reject, R::BadSignature));
    assert_eq!(server.store.proof_count(), 2);
    assert_eq!(server.store.all_evidence().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn oversized_batches_and_messages_are_refused_whole() {
    let server = Server::start().await;
    let mut client = server.peer().await;
    let alice = testing::key(1);
    let beacon = wire(&testing::signed_beacon(&params(), &alice, NOW_SLOT));

    let too_many = client
        .submit_proofs(pb::SubmitProofsRequest { proofs: vec![beacon.clone(); MAX_BATCH + 1] })
        .await
        .unwrap_err();
    assert_eq!(too_many.code(), Code::InvalidArgument, "{too_many:?}");

    // Past the 4 MiB message bound: an unbounded client sends it, the server refuses to decode it.
    let mut unbounded = pb::peer_client::PeerClient::new(connect(server.addr).await.unwrap());
    let huge = pb::SignedMessage { message: vec![7; 64 * 1024], signature: vec![0; 64] };
    let too_big = unbounded
        .submit_proofs(pb::SubmitProofsRequest { proofs: vec![huge; 70] })
        .await
        .unwrap_err();
    assert!(matches!(too_big.code(), Code::OutOfRange | Code::ResourceExhausted), "{too_big:?}");
    // The bounded client refuses to send it at all.
    let huge = pb::SignedMessage { message: vec![7; 64 * 1024], signature: vec![0; 64] };
    assert!(
        client.submit_proofs(pb::SubmitProofsRequest { proofs: vec![huge; 70] }).await.is_err()
    );
    assert_eq!(server.store.proof_count(), 0);

    // The server still serves after refusing.
    let ok = client.submit_proofs(pb::SubmitProofsRequest { proofs: vec![beacon] }).await.unwrap();
    assert_eq!(ok.into_inner().verdicts[0].reason(), pb::RejectReason::UnknownNode);
    server.stop().await;
}

#[tokio::test]
async fn pulls_return_exactly_the_stored_bytes_in_pages() {
    let server = Server::start().await;
    let mut client = server.peer().await;
    let params = params();
    let keys: Vec<NodeKey> = (1..=3).map(testing::key).collect();
    let mut sent = Vec::new();
    for key in &keys {
        register(&mut client, key).await;
        for slot in [NOW_SLOT.0 - 2, NOW_SLOT.0 - 1, NOW_SLOT.0] {
            sent.push(testing::signed_beacon(&params, key, Slot(slot)));
            sent.push(testing::signed_relay(&params, key, Slot(slot), slot));
        }
    }
    let answer = client
        .submit_proofs(pb::SubmitProofsRequest { proofs: sent.iter().map(wire).collect() })
        .await
        .unwrap()
        .into_inner();
    assert!(answer.verdicts.iter().all(|v| v.verdict() == pb::Verdict::Accept));

    let mut pulled = Vec::new();
    let mut after = None;
    loop {
        let page = client
            .pull_proofs(pb::PullProofsRequest {
                from_slot: NOW_SLOT.0 - 2,
                to_slot: NOW_SLOT.0 + 1,
                after: after.clone(),
                limit: 4,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.proofs.len() <= 4);
        pulled.extend(page.proofs);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    // Ordered by (slot, node, kind), byte for byte what was signed.
    let mut expected: Vec<(ProofKey, pb::SignedMessage)> = sent
        .iter()
        .map(|m| {
            let (_, proof) = lucid_consensus::TaskProof::from_signed_bytes(m.bytes()).unwrap();
            (proof.key(), wire(m))
        })
        .collect();
    expected.sort_by_key(|(key, _)| (key.slot, key.node, key.kind.tag()));
    let expected: Vec<_> = expected.into_iter().map(|(_, m)| m).collect();
    assert_eq!(pulled, expected);

    // Per-slot digests: one entry per slot with the seal root of that slot's digests.
    let digests = client
        .get_slot_digests(pb::GetSlotDigestsRequest {
            from_slot: NOW_SLOT.0 - 5,
            to_slot: NOW_SLOT.0 + 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(digests.slots.len(), 3);
    for entry in &digests.slots {
        let of_slot: Vec<_> = sent
            .iter()
            .filter(|m| {
                lucid_consensus::TaskProof::from_signed_bytes(m.bytes()).unwrap().1.slot.0
                    == entry.slot
            })
            .map(SignedMessage::digest)
            .collect();
        assert_eq!(entry.count as usize, of_slot.len());
        assert_eq!(entry.root, lucid_consensus::seal::seal_root(&of_slot).as_bytes());
    }

    // Bounds: empty and over-long ranges, and page sizes above the maximum, are refused.
    for (from, to, limit) in [(5, 5, 0), (5, 4, 0), (0, MAX_PULL_SLOTS + 1, 0), (0, 1, 1025)] {
        let refused = client
            .pull_proofs(pb::PullProofsRequest { from_slot: from, to_slot: to, after: None, limit })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{from}..{to} limit {limit}");
    }
    let bad_cursor = pb::ProofCursor { slot: 1, node: vec![1; 31], kind: 1 };
    let refused = client
        .pull_proofs(pb::PullProofsRequest {
            from_slot: 0,
            to_slot: 1,
            after: Some(bad_cursor),
            limit: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let refused = client
        .get_slot_digests(pb::GetSlotDigestsRequest { from_slot: 0, to_slot: MAX_DIGEST_SLOTS + 1 })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    server.stop().await;
}

#[tokio::test]
async fn fetch_slot_serves_the_seal_with_its_set_and_evidence_gets_a_verdict() {
    use lucid_consensus::seal::{SlotSeal, StoredSeal, seal_root};
    let server = Server::start().await;
    let mut client = server.peer().await;
    let params = params();
    let alice = testing::key(1);
    register(&mut client, &alice).await;
    let slot = NOW_SLOT;
    let beacon = testing::signed_beacon(&params, &alice, slot);
    let answer = client
        .submit_proofs(pb::SubmitProofsRequest { proofs: vec![wire(&beacon)] })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.verdicts[0].verdict(), pb::Verdict::Accept);

    // Nothing sealed yet: an answer without a seal.
    let empty =
        client.fetch_slot(pb::FetchSlotRequest { slot: slot.0 }).await.unwrap().into_inner();
    assert_eq!(empty, pb::FetchSlotResponse { seal: None, set: Vec::new() });

    let seal = SlotSeal {
        node: alice.node_id(),
        slot,
        count: 1,
        root: seal_root(&[beacon.digest()]),
        ts: now(),
    };
    let signed = seal.sign(&params.network, &alice);
    server.store.insert_seal(&StoredSeal::new(seal, signed.clone())).await.unwrap();
    let sealed =
        client.fetch_slot(pb::FetchSlotRequest { slot: slot.0 }).await.unwrap().into_inner();
    assert_eq!(sealed.seal, Some(wire(&signed)));
    assert_eq!(sealed.set, vec![wire(&beacon)]);

    // Evidence: a real equivocation is accepted once, then a duplicate; a malformed pair and a
    // missing half are refused.
    let other = testing::signed_beacon(&params, &alice, Slot(slot.0 - 1));
    let conflicting = {
        let mut proof =
            lucid_consensus::proof::TaskProof::from_signed_bytes(beacon.bytes()).unwrap().1;
        proof.ts = proof.ts.saturating_add_ms(1);
        proof.sign(&params.network, &alice)
    };
    let submit = |first: &SignedMessage, second: &SignedMessage| pb::SubmitEvidenceRequest {
        first: Some(wire(first)),
        second: Some(wire(second)),
    };
    for (request, expected) in [
        (submit(&beacon, &conflicting), (pb::Verdict::Accept, pb::RejectReason::Unspecified)),
        (submit(&conflicting, &beacon), (pb::Verdict::Duplicate, pb::RejectReason::Unspecified)),
        (submit(&beacon, &other), (pb::Verdict::Reject, pb::RejectReason::Malformed)),
        (
            pb::SubmitEvidenceRequest {
                first: Some(wire(&beacon)),
                second: Some(pb::SignedMessage { message: vec![1, 2], signature: vec![3] }),
            },
            (pb::Verdict::Reject, pb::RejectReason::Malformed),
        ),
    ] {
        let answer = client.submit_evidence(request).await.unwrap().into_inner();
        assert_eq!(verdict(&answer.verdict.unwrap()), expected);
    }
    let refused = client
        .submit_evidence(pb::SubmitEvidenceRequest { first: Some(wire(&beacon)), second: None })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(server.store.all_evidence().len(), 1);

    // Anti-entropy of evidence: ranges and roots are checked at the edge; a caller that holds
    // nothing gets the pair, a caller with the same summary gets nothing.
    let fetch = |from, to, count, root: Vec<u8>| pb::FetchEvidenceRequest {
        from_slot: from,
        to_slot: to,
        known_count: count,
        known_root: root,
    };
    let (from, to) = (slot.0 - 5, slot.0 + 5);
    for bad in [
        fetch(from, from, 0, Vec::new()),
        fetch(from, from + MAX_PULL_SLOTS + 1, 0, Vec::new()),
        fetch(from, to, 1, vec![1; 31]),
        fetch(from, to, 1, vec![1; 33]),
    ] {
        let status = client.fetch_evidence(bad.clone()).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}: {status:?}");
    }
    let stored = server.store.all_evidence();
    let page = client.fetch_evidence(fetch(from, to, 0, Vec::new())).await.unwrap().into_inner();
    assert!(!page.in_sync);
    assert_eq!(
        page.evidence,
        vec![pb::EvidencePair {
            first: Some(wire(&stored[0].first)),
            second: Some(wire(&stored[0].second))
        }]
    );
    let (count, root) = evidence_summary(&stored);
    let page =
        client.fetch_evidence(fetch(from, to, count, root.as_bytes().to_vec())).await.unwrap();
    assert_eq!(page.into_inner(), pb::FetchEvidenceResponse { in_sync: true, evidence: vec![] });
    // Another range holds none: a caller holding none is in sync there.
    let page = client.fetch_evidence(fetch(to, to + 10, 0, Vec::new())).await.unwrap();
    assert!(page.into_inner().in_sync);
    server.stop().await;
}

#[tokio::test]
async fn registrations_by_id_and_peer_exchange() {
    let server = Server::start().await;
    let mut client = server.peer().await;
    let params = params();
    let alice = testing::key(1);
    register(&mut client, &alice).await;

    let found = client
        .get_registration(pb::GetRegistrationRequest { node_id: alice.node_id().to_string() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.registration, Some(wire(&testing::signed_registration(&params, &alice, 1))));

    // Invalid and weak ids are refused; a valid id without a record is not found.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let weak = format!("node_{}", lucid_core::ids::to_hex(&identity));
    for bad in ["", "node_xyz", "NODE_00", weak.as_str()] {
        let refused = client
            .get_registration(pb::GetRegistrationRequest { node_id: bad.to_owned() })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{bad:?}");
    }
    let missing = client
        .get_registration(pb::GetRegistrationRequest { node_id: testing::node(9).to_string() })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    // A forged registration (signed by another key) and a replayed one get verdicts.
    let genuine = testing::signed_registration(&params, &testing::key(2), 1);
    let forged = SignedMessage::new(genuine.bytes().to_vec(), alice.sign(genuine.bytes()));
    let answer = client
        .submit_registration(pb::SubmitRegistrationRequest { registration: Some(wire(&forged)) })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.verdict.unwrap().reason(), pb::RejectReason::BadSignature);
    let replayed = client
        .submit_registration(pb::SubmitRegistrationRequest {
            registration: Some(wire(&testing::signed_registration(&params, &alice, 1))),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replayed.verdict.unwrap().verdict(), pb::Verdict::Duplicate);
    let missing_field = client
        .submit_registration(pb::SubmitRegistrationRequest { registration: None })
        .await
        .unwrap_err();
    assert_eq!(missing_field.code(), Code::InvalidArgument);

    register(&mut client, &testing::key(2)).await;
    let all = client
        .exchange_peers(pb::ExchangePeersRequest { after: Vec::new(), limit: 0 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.registrations.len(), 2);
    let first = lucid_consensus::registration::Registration::from_signed_bytes(
        &all.registrations[0].message,
    )
    .unwrap()
    .1
    .node;
    let rest = client
        .exchange_peers(pb::ExchangePeersRequest { after: first.as_bytes().to_vec(), limit: 1 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.registrations, all.registrations[1..].to_vec());
    for (after, limit) in [(vec![1u8; 31], 1), (Vec::new(), 101), (vec![0u8; 32], 1)] {
        let refused =
            client.exchange_peers(pb::ExchangePeersRequest { after, limit }).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
    }
    server.stop().await;
}

#[tokio::test]
async fn operator_calls_need_the_admin_token() {
    let server = Server::start().await;
    let channel = connect(server.addr).await.unwrap();
    let mut anonymous = pb::operator_client::OperatorClient::new(channel.clone());
    let refused = anonymous.get_status(pb::GetStatusRequest {}).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    let mut wrong = operator_client(channel.clone(), &TOKEN.replace('0', "1")).unwrap();
    assert_eq!(
        wrong.get_status(pb::GetStatusRequest {}).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    assert_eq!(
        wrong.get_clock(pb::GetClockRequest {}).await.unwrap_err().code(),
        Code::PermissionDenied
    );

    let mut operator = operator_client(channel, TOKEN).unwrap();
    let status = operator.get_status(pb::GetStatusRequest {}).await.unwrap().into_inner();
    assert_eq!(status.node_id, testing::node(7).to_string());
    assert!(status.ready);
    assert_eq!(status.health, "healthy");
    assert_eq!(status.slot, Some(NOW_SLOT.0));
    assert_eq!(status.registered_nodes, 0);
    assert_eq!(status.components.len(), 1);
    assert_eq!(status.components[0].name, "database");
    let clock = operator.get_clock(pb::GetClockRequest {}).await.unwrap().into_inner();
    assert_eq!((clock.genesis_ms, clock.slot_start_ms), (5, Some(6)));
    let pools = operator.list_pools(pb::ListPoolsRequest::default()).await.unwrap().into_inner();
    assert_eq!(pools.pools.len(), 1);
    assert_eq!((pools.pools[0].seats, pools.pools[0].max_nodes), (3, 100));
    let tally = operator.get_tally(pb::GetTallyRequest { epoch: 1 }).await.unwrap().into_inner();
    assert_eq!(tally.entries[0].credits, "18446744073709551616", "credits beyond 2^64 stay exact");
    assert_eq!(tally.entries[0].rank, 1);
    let missing = operator.get_tally(pb::GetTallyRequest { epoch: 2 }).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert!(missing.message().starts_with("TALLY_NOT_FOUND"), "{}", missing.message());
    let range = pb::GetScheduleRequest { from_slot: NOW_SLOT.0 - 2, to_slot: NOW_SLOT.0 + 2 };
    let schedule = operator.get_schedule(range).await.unwrap().into_inner();
    assert_eq!(schedule.slots.len(), 1, "slots without a stored schedule are left out");
    assert_eq!((schedule.slots[0].slot, schedule.slots[0].leader.as_str()), (NOW_SLOT.0, "node_l"));
    let for_node = pb::ListPayoutsRequest { node_id: testing::node(7).to_string(), limit: 0 };
    let payouts = operator.list_payouts(for_node).await.unwrap().into_inner();
    assert_eq!(
        (payouts.payouts[0].net_usdt.as_str(), payouts.payouts[0].txid.as_str()),
        ("9.900000", "")
    );
    let bad_node = pb::ListPayoutsRequest { node_id: "node_zz".into(), limit: 0 };
    assert_eq!(operator.list_payouts(bad_node).await.unwrap_err().code(), Code::InvalidArgument);
    server.stop().await;
}

#[test]
fn every_error_kind_has_one_grpc_code() {
    use lucid_core::ErrorKind as K;
    let table = [
        (K::InvalidInput, Code::InvalidArgument),
        (K::PeerMisbehaved, Code::InvalidArgument),
        (K::NotFound, Code::NotFound),
        (K::Conflict, Code::FailedPrecondition),
        (K::Unauthenticated, Code::Unauthenticated),
        (K::Forbidden, Code::PermissionDenied),
        (K::TransientNetwork, Code::Unavailable),
        (K::StoreUnavailable, Code::Unavailable),
        (K::ShuttingDown, Code::Unavailable),
        (K::FeatureDisabled, Code::Unimplemented),
        (K::Internal, Code::Internal),
    ];
    for (kind, code) in table {
        assert_eq!(grpc_code(kind), code, "{kind:?}");
    }
    // Store failures never leak their detail.
    let status = grpc_status(&GrpcError::Store(lucid_consensus::Error::Bug(
        lucid_core::internal!("secret detail"),
    )));
    assert_eq!(status.code(), Code::Internal);
    assert!(!status.message().contains("secret"));
}

#[test]
fn the_admin_token_is_never_printed() {
    let token = AdminToken::new(&format!("{TOKEN}\n")).unwrap();
    assert!(token.matches(TOKEN.as_bytes()));
    assert!(!token.matches(&TOKEN.as_bytes()[1..]));
    assert!(!format!("{token:?}").contains(&TOKEN[..8]));
}

/// A request signed as a peer call of `key` to node 0 for `method`, at `ts`, with `nonce`.
fn signed<T: prost::Message>(
    message: T,
    key: &NodeKey,
    method: &str,
    ts: UnixMillis,
    nonce: u8,
) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    sign_peer_call(
        &mut request,
        key,
        &params().network,
        testing::key(0).node_id(),
        method,
        ts,
        [nonce; 16],
    );
    request
}

#[tokio::test]
async fn every_peer_method_refuses_calls_without_a_valid_peer_call() {
    use lucid_consensus::peer_call::RefusalReason as R;
    let server = Server::start_guarded().await;
    let mut client = server.peer().await;
    let alice = testing::key(1);
    let exchange = || pb::ExchangePeersRequest { after: Vec::new(), limit: 5 };
    // Missing, for every method.
    let missing = [
        client.hello(pb::HelloRequest::default()).await.unwrap_err(),
        client.submit_proofs(pb::SubmitProofsRequest::default()).await.unwrap_err(),
        client.get_slot_digests(pb::GetSlotDigestsRequest::default()).await.unwrap_err(),
        client.pull_proofs(pb::PullProofsRequest::default()).await.unwrap_err(),
        client.submit_registration(pb::SubmitRegistrationRequest::default()).await.unwrap_err(),
        client.get_registration(pb::GetRegistrationRequest::default()).await.unwrap_err(),
        client.exchange_peers(exchange()).await.unwrap_err(),
        client.submit_pool_ops(pb::SubmitPoolOpsRequest::default()).await.unwrap_err(),
        client.fetch_pool_ops(pb::FetchPoolOpsRequest::default()).await.unwrap_err(),
        client.submit_seals(pb::SubmitSealsRequest::default()).await.unwrap_err(),
        client.fetch_evidence(pb::FetchEvidenceRequest::default()).await.unwrap_err(),
        client.forward_withdrawal(pb::ForwardWithdrawalRequest::default()).await.unwrap_err(),
        client.forward_cancel(pb::ForwardCancelRequest::default()).await.unwrap_err(),
        client.get_payouts(pb::GetPayoutsRequest::default()).await.unwrap_err(),
        client.get_ledger(pb::GetLedgerRequest::default()).await.unwrap_err(),
        client.get_payout_stats(pb::GetPayoutStatsRequest::default()).await.unwrap_err(),
    ];
    for status in &missing {
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        assert!(status.message().contains("missing"), "{status:?}");
    }
    // A genuine call passes.
    let ok = signed(exchange(), &alice, methods::EXCHANGE_PEERS, now(), 1);
    assert!(client.exchange_peers(ok).await.is_ok());
    // Replayed, wrong method, wrong digest, expired, future, wrong callee, forged, malformed,
    // oversized: each refused with its reason.
    let replayed = signed(exchange(), &alice, methods::EXCHANGE_PEERS, now(), 1);
    let wrong_method = signed(exchange(), &alice, methods::PULL_PROOFS, now(), 2);
    let mut wrong_digest = signed(exchange(), &alice, methods::EXCHANGE_PEERS, now(), 3);
    wrong_digest.get_mut().limit = 6;
    let expired =
        signed(exchange(), &alice, methods::EXCHANGE_PEERS, now().saturating_add_ms(-30_001), 4);
    let future =
        signed(exchange(), &alice, methods::EXCHANGE_PEERS, now().saturating_add_ms(30_001), 5);
    let mut wrong_callee = tonic::Request::new(exchange());
    sign_peer_call(
        &mut wrong_callee,
        &alice,
        &params().network,
        testing::key(3).node_id(),
        methods::EXCHANGE_PEERS,
        now(),
        [6; 16],
    );
    let mut forged = signed(exchange(), &alice, methods::EXCHANGE_PEERS, now(), 7);
    let mut bytes =
        forged.metadata().get_bin(PEER_CALL_METADATA).unwrap().to_bytes().unwrap().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    forged
        .metadata_mut()
        .insert_bin(PEER_CALL_METADATA, tonic::metadata::MetadataValue::from_bytes(&bytes));
    let mut malformed = tonic::Request::new(exchange());
    malformed
        .metadata_mut()
        .insert_bin(PEER_CALL_METADATA, tonic::metadata::MetadataValue::from_bytes(b"junk"));
    let mut oversized = tonic::Request::new(exchange());
    oversized
        .metadata_mut()
        .insert_bin(PEER_CALL_METADATA, tonic::metadata::MetadataValue::from_bytes(&[1u8; 2048]));
    let unregistered = signed(exchange(), &testing::key(9), methods::EXCHANGE_PEERS, now(), 8);
    let cases = [
        (replayed, R::Replayed),
        (wrong_method, R::WrongMethod),
        (wrong_digest, R::DigestMismatch),
        (expired, R::Expired),
        (future, R::FromFuture),
        (wrong_callee, R::WrongCallee),
        (forged, R::BadSignature),
        (malformed, R::Malformed),
        (oversized, R::Oversized),
        (unregistered, R::Unregistered),
    ];
    for (request, reason) in cases {
        let status = client.exchange_peers(request).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{reason:?}: {status:?}");
        assert!(status.message().contains(&reason.to_string()), "{reason:?}: {status:?}");
        assert_eq!(server.gate.refused().last(), Some(&PeerRefusal::Unauthenticated(reason)));
    }
    // Nothing a refused call carried reached the store.
    let registration = wire(&testing::signed_registration(&params(), &alice, 1));
    let unsigned = client
        .submit_registration(pb::SubmitRegistrationRequest { registration: Some(registration) })
        .await
        .unwrap_err();
    assert_eq!(unsigned.code(), Code::Unauthenticated);
    assert!(server.store.current_registrations().await.unwrap().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn hello_needs_the_callers_own_registration_and_the_same_network() {
    let server = Server::start_guarded().await;
    let mut client = server.peer().await;
    let alice = testing::key(1);
    let own = testing::signed_registration(&params(), &alice, 1);
    let hello = |network_id: String, registration: &SignedMessage| pb::HelloRequest {
        network_id,
        version: "test".into(),
        registration: Some(wire(registration)),
    };
    let good = signed(hello(params().network.to_string(), &own), &alice, methods::HELLO, now(), 1);
    let answer = client.hello(good).await.unwrap().into_inner();
    assert_eq!(answer.current_slot, Some(NOW_SLOT.0));
    assert_eq!(answer.features, vec!["peer-call-v1".to_owned()]);
    let wrong_network = signed(hello("00".repeat(32), &own), &alice, methods::HELLO, now(), 2);
    assert_eq!(client.hello(wrong_network).await.unwrap_err().code(), Code::FailedPrecondition);
    let someone_else = testing::signed_registration(&params(), &testing::key(2), 1);
    let borrowed = signed(
        hello(params().network.to_string(), &someone_else),
        &alice,
        methods::HELLO,
        now(),
        3,
    );
    assert_eq!(client.hello(borrowed).await.unwrap_err().code(), Code::InvalidArgument);
    // An unregistered caller may say Hello (it is how it registers), but nothing else.
    let newcomer = testing::key(9);
    let intro = testing::signed_registration(&params(), &newcomer, 1);
    let hello_ok =
        signed(hello(params().network.to_string(), &intro), &newcomer, methods::HELLO, now(), 4);
    assert!(client.hello(hello_ok).await.is_ok());
    // A Hello signed for another method is refused.
    let misdirected = signed(
        hello(params().network.to_string(), &own),
        &alice,
        methods::EXCHANGE_PEERS,
        now(),
        5,
    );
    assert_eq!(client.hello(misdirected).await.unwrap_err().code(), Code::Unauthenticated);
    server.stop().await;
}

#[tokio::test]
async fn pool_ops_and_seals_get_one_verdict_each_and_bounded_pages() {
    use pb::RejectReason as R;
    use pb::Verdict as V;
    let server = Server::start().await;
    let mut client = server.peer().await;
    let params = params();
    let alice = testing::key(1);
    // Any message of alice's stands in for an op: the scripted peer judges the signature only.
    let signed_op = testing::signed_beacon(&params, &alice, NOW_SLOT);
    let forged =
        SignedMessage::new(signed_op.bytes().to_vec(), testing::key(2).sign(signed_op.bytes()));
    let short = pb::SignedMessage { message: signed_op.bytes().to_vec(), signature: vec![0; 10] };
    let answer = client
        .submit_pool_ops(pb::SubmitPoolOpsRequest {
            ops: vec![wire(&signed_op), short.clone(), wire(&forged)],
        })
        .await
        .unwrap()
        .into_inner();
    let got: Vec<_> = answer.verdicts.iter().map(verdict).collect();
    assert_eq!(
        got,
        vec![(V::Accept, R::Unspecified), (V::Reject, R::Malformed), (V::Reject, R::BadSignature)]
    );
    // Oversized batches are refused whole.
    let too_many = client
        .submit_pool_ops(pb::SubmitPoolOpsRequest { ops: vec![wire(&signed_op); MAX_BATCH + 1] })
        .await
        .unwrap_err();
    assert_eq!(too_many.code(), Code::InvalidArgument);
    let seals = client
        .submit_seals(pb::SubmitSealsRequest { seals: vec![short.clone(), wire(&signed_op)] })
        .await
        .unwrap()
        .into_inner();
    let got: Vec<_> = seals.verdicts.iter().map(verdict).collect();
    assert_eq!(got, vec![(V::Reject, R::Malformed), (V::Duplicate, R::Unspecified)]);
    let too_many = client
        .submit_seals(pb::SubmitSealsRequest { seals: vec![short; super::MAX_SEAL_BATCH + 1] })
        .await
        .unwrap_err();
    assert_eq!(too_many.code(), Code::InvalidArgument);

    // Fetch: ranges, roots, cursors and limits are checked at the edge.
    let fetch = |from, to, root: Vec<u8>, limit| pb::FetchPoolOpsRequest {
        from_slot: from,
        to_slot: to,
        known_count: 1,
        known_root: root,
        after: None,
        limit,
    };
    for bad in [
        fetch(10, 10, Vec::new(), 0),
        fetch(10, 10 + MAX_PULL_SLOTS + 1, Vec::new(), 0),
        fetch(10, 11, vec![1; 31], 0),
        fetch(10, 11, Vec::new(), 1_025),
        pb::FetchPoolOpsRequest {
            after: Some(pb::PoolOpCursor { slot: 10, digest: vec![0; 5] }),
            ..fetch(10, 11, Vec::new(), 0)
        },
    ] {
        let status = client.fetch_pool_ops(bad.clone()).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}: {status:?}");
    }
    let in_sync = client
        .fetch_pool_ops(pb::FetchPoolOpsRequest { known_count: 0, ..fetch(10, 20, Vec::new(), 0) })
        .await
        .unwrap()
        .into_inner();
    assert!(in_sync.in_sync && in_sync.ops.is_empty() && in_sync.next.is_none());
    let page = client.fetch_pool_ops(fetch(10, 20, vec![9; 32], 1)).await.unwrap().into_inner();
    assert!(!page.in_sync);
    assert_eq!(page.ops.len(), 1);
    assert_eq!(page.next, Some(pb::PoolOpCursor { slot: 10, digest: vec![9; 32] }));
    server.stop().await;
}
