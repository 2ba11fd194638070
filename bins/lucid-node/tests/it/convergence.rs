//! Five real `lucid-node` processes on loopback gossip their proofs and must end with identical
//! state: the same settled tally, the same leader schedules and the same ledger balances,
//! compared through each node's HTTP API (issue 6, `consensus.md` §6–§8, `pools-payouts.md`
//! §3.1, `daemon.md` §12 item 9).
//!
//! The nodes sign beacons only, so the test supplies the work: each slot it signs relay,
//! storage and validation proofs in four nodes' names and submits them to node 0 alone, as a
//! registered peer through the real `Peer` service; gossip must carry them to the other four.
//! A second, adversarial peer submits forged, stale, future, over-cap, wrong-network and
//! equivocating proofs and replays a signed call through the same path; none of it may count.

use std::collections::BTreeMap;
use std::time::Duration;

use lucid_consensus::ConsensusParams;
use lucid_consensus::ingest::{RejectReason, Verdict};
use lucid_consensus::proof::{ProofValue, TaskProof};
use lucid_core::message::Message as _;
use lucid_core::{Epoch, Slot, UnixMillis};
use serde_json::Value;

use crate::network::{Profile, TestNet, TestPeer};
use crate::work::{WorkLog, assert_tally_credits, expected_earnings, micro, ranked_entities};

/// The epoch whose settled tally is compared: its window (slots 0..32) covers the slots in
/// which all five nodes were running and the test submitted work (nodes start around slot 10
/// of eight-slot epochs).
const EPOCH: u64 = 4;

/// `economy.epoch_reward_usdt` of every node.
const BUDGET_USDT: u64 = 100;

/// What every node must agree on in a tally: the entities with their credits, beacon slots,
/// density and rank, and the digest over them (the revision may differ: a node that saw a proof
/// late revised its tally before settling it).
pub(crate) fn tally_content(tally: &Value) -> Value {
    serde_json::json!({
        "epoch": tally["epoch"],
        "window_start": tally["window_start"],
        "window_end": tally["window_end"],
        "digest": tally["digest"],
        "entries": tally["entries"],
    })
}

/// A slot's schedule as every node must agree on it.
pub(crate) fn schedule_content(schedule: &Value) -> Value {
    serde_json::json!({
        "tally_digest": schedule["tally_digest"],
        "primary": schedule["primary"],
        "fallbacks": schedule["fallbacks"],
        "no_leader_reason": schedule["no_leader_reason"],
    })
}

/// The schedules of `slots` on every node, once every node has them; asserts they agree and
/// returns node 0's.
pub(crate) fn agreed_schedules(net: &TestNet, slots: std::ops::Range<u64>) -> Vec<Value> {
    slots
        .map(|slot| {
            let path = format!("/api/v1/poot/slots/{slot}/leader");
            net.wait_until("a schedule on every node", Duration::from_secs(60), |net| {
                net.nodes.iter().all(|node| node.json(&path).is_some())
            });
            let all: Vec<Value> =
                net.nodes.iter().map(|node| schedule_content(&node.json(&path).unwrap())).collect();
            for (index, schedule) in all.iter().enumerate() {
                assert_eq!(
                    schedule, &all[0],
                    "node {index} disagrees on the leader of slot {slot}"
                );
            }
            all[0].clone()
        })
        .collect()
}

/// Every node's `earned` per node id (`None` where a node does not answer).
pub(crate) fn balances(net: &TestNet) -> Vec<Option<BTreeMap<String, u64>>> {
    let ids: Vec<String> = net.nodes.iter().map(|node| node.node_id.to_string()).collect();
    net.nodes
        .iter()
        .map(|node| {
            ids.iter()
                .map(|id| {
                    let balance = node.json(&format!("/api/v1/nodes/{id}/balance"))?;
                    Some((id.clone(), micro(&balance["earned"])))
                })
                .collect()
        })
        .collect()
}

/// Waits until every node holds the same balances and they are exactly what the settled
/// tallies of node 0 pay with `budget` micro-USDT per epoch; returns the balances and how many
/// epochs paid. Polled, because a node may be between two postings at any one read.
pub(crate) fn agreed_balances(net: &TestNet, budget: u64) -> (BTreeMap<String, u64>, u64) {
    let mut agreed = None;
    net.wait_until(
        "identical balances paid by the settled tallies",
        Duration::from_secs(60),
        |net| {
            let epochs = net.current_slot() / net.profile.slots_per_epoch;
            let tallies: Vec<Value> =
                (0..=epochs).filter_map(|e| net.nodes[0].settled_tally(e)).collect();
            let all = balances(net);
            let Some(Some(first)) = all.first() else { return false };
            if !all.iter().all(|b| b.as_ref() == Some(first)) {
                return false;
            }
            let expected = expected_earnings(&tallies, budget);
            let matches =
                first.iter().all(|(id, earned)| expected.get(id).copied().unwrap_or(0) == *earned);
            let paid = tallies.iter().filter(|t| !ranked_entities(t).is_empty()).count() as u64;
            if matches && expected.keys().all(|id| first.contains_key(id)) {
                agreed = Some((first.clone(), paid));
                true
            } else {
                false
            }
        },
    );
    agreed.unwrap()
}

/// The adversary's submissions in `slot`, right after the honest work of `slot` was accepted by
/// node 0: every one must be refused with its reason, and none may ever count.
fn attack(net: &TestNet, honest: &TestPeer, adversary: &TestPeer, work: &mut WorkLog, slot: u64) {
    let node0 = &net.nodes[0];
    let time = work.time;
    let network = work.network;
    let slot = Slot(slot);
    let in_slot = |s: Slot| UnixMillis(time.slot_start(s).unwrap().0 + 1);
    let validator = work.keys[2].node_id();
    let idle = &work.keys[4];
    let honest_validation =
        *work.accepted.iter().find(|p| p.slot == slot && p.node == validator).unwrap();
    let honest_relay =
        *work.accepted.iter().find(|p| p.slot == slot && p.node == work.keys[0].node_id()).unwrap();

    // Node 2 signs a second, different validation proof for the same slot: an equivocation.
    let twin =
        TaskProof { value: ProofValue::Validation { validated_sessions: 3 }, ..honest_validation };
    // Work claimed in idle node 4's name but signed by the adversary: a forgery.
    let forged = TaskProof {
        node: idle.node_id(),
        slot,
        ts: honest_validation.ts,
        value: ProofValue::Relay { bytes_transferred: 0, sessions_relayed: 100 },
    };
    let validation = |slot: Slot, sessions| TaskProof {
        node: idle.node_id(),
        slot,
        ts: in_slot(slot),
        value: ProofValue::Validation { validated_sessions: sessions },
    };
    let other_network = ConsensusParams::test_network("elsewhere", time).network;
    let submitted = vec![
        crate::work::sign_as(&twin, &network, &work.keys[2]),
        crate::work::sign_as(&forged, &network, &adversary.key),
        validation(slot, 1).sign(&other_network, idle),
        validation(Slot(slot.0 - 4), 1).sign(&network, idle),
        validation(Slot(slot.0 + 20), 1).sign(&network, idle),
        TaskProof { ts: honest_validation.ts, ..validation(slot, 100_001) }.sign(&network, idle),
    ];
    let verdicts: Vec<Verdict> =
        adversary.submit(node0, submitted).unwrap().into_iter().map(|o| o.verdict).collect();
    assert_eq!(
        verdicts,
        [
            RejectReason::Equivocation,
            RejectReason::BadSignature,
            RejectReason::WrongNetwork,
            RejectReason::Stale,
            RejectReason::FromFuture,
            RejectReason::ValueOutOfRange,
        ]
        .map(Verdict::Reject)
    );
    work.voided.insert(twin.key());

    // A replayed proof is a no-op, and a replayed call is refused before its payload is read.
    let replay = honest_relay.sign(&network, &work.keys[0]);
    let verdicts = honest.submit(node0, vec![replay.clone()]).unwrap();
    assert_eq!(verdicts[0].verdict, Verdict::Duplicate);
    let [first, second] = adversary.replay_call(node0, &[replay]);
    assert_eq!(first, Ok(1));
    assert_eq!(second, Err(tonic::Code::Unauthenticated));
}

#[test]
fn five_processes_rank_work_and_converge_on_tally_schedule_and_balances() {
    let mut profile = Profile::fast("converge-it");
    profile.extra_env.push(("LUCID_ECONOMY_EPOCH_REWARD_USDT", BUDGET_USDT.to_string()));
    let net = TestNet::start(5, profile);
    let ids: Vec<String> = net.nodes.iter().map(|node| node.node_id.to_string()).collect();
    let time = net.profile.params().time;

    // Work is signed in the nodes' names, so every node must know every registration first
    // (an unknown signer's proof is refused, not kept).
    net.wait_for_registrations();
    let honest = TestPeer::new(&net, 0x5e);
    let adversary = TestPeer::new(&net, 0xad);
    honest.hello(&net.nodes[0]).unwrap();
    adversary.hello(&net.nodes[0]).unwrap();

    let window = time.window(Epoch(EPOCH)).unwrap();
    let mut work = WorkLog::new(&net);
    let mut attacked = false;
    work.run_until(&net, &honest, 0, window.end.0, |work, slot| {
        if !attacked && slot >= 4 {
            attack(&net, &honest, &adversary, work, slot);
            attacked = true;
        }
    });
    assert!(attacked, "no slot of work was submitted");
    drop(honest);
    drop(adversary);
    let submitted_slots = window.end.0 - work.first_slot.unwrap();
    eprintln!(
        "work submitted to node 0 for {submitted_slots} slots, {} proofs accepted",
        work.accepted.len()
    );

    let took = net.wait_until("a settled tally on every node", Duration::from_secs(120), |net| {
        net.nodes.iter().all(|node| node.settled_tally(EPOCH).is_some())
    });
    eprintln!("every node settled the tally of epoch {EPOCH} {took:?} after the window closed");

    // Every node counts exactly the honest work it got through gossip, minus the equivocated
    // key; the idle node and everything the adversary sent count for nothing.
    let expected = work.credits(window);
    assert_eq!(expected.values().filter(|c| c.total() > 0).count(), 4, "{expected:?}");
    let tallies: Vec<Value> =
        net.nodes.iter().map(|node| node.settled_tally(EPOCH).unwrap()).collect();
    for (index, tally) in tallies.iter().enumerate() {
        assert_tally_credits(tally, &expected);
        assert_eq!(
            tally_content(tally),
            tally_content(&tallies[0]),
            "node {index} disagrees on the tally of epoch {EPOCH}"
        );
    }
    let ranked = ranked_entities(&tallies[0]);
    assert_eq!(ranked.len(), 4, "{:#}", tallies[0]);
    // Storage (14 a slot) leads, then validation (10, one slot voided), relay 7, relay 3.
    let order: Vec<String> = [1, 2, 3, 0].iter().map(|&i| ids[i].clone()).collect();
    assert_eq!(ranked, order);

    // The equivocation's evidence reached every node.
    net.wait_until("evidence on every node", Duration::from_secs(30), |net| {
        net.nodes.iter().all(|node| {
            node.metric("lucid_gossip_evidence_forwarded_total").is_some_and(|n| n >= 1.0)
        })
    });

    // The schedules of epoch EPOCH follow its tally (its first two slots wait for the tally):
    // nobody claims slots yet, so no entity cools down and the rank-1 entity leads every slot.
    let first = time.epoch_start(Epoch(EPOCH)).unwrap().0 + 2;
    for schedule in agreed_schedules(&net, first..first + net.profile.slots_per_epoch - 2) {
        assert_eq!(schedule["primary"], ranked[0], "{schedule:#}");
        assert_eq!(schedule["fallbacks"], serde_json::json!(ranked[1..]), "{schedule:#}");
        assert_eq!(schedule["tally_digest"], tallies[0]["digest"], "{schedule:#}");
    }

    // Every node posted the same epoch rewards from the same settled tallies: non-zero for the
    // four working nodes, zero for the idle one, and summing to the budget of every paid epoch.
    let budget = BUDGET_USDT * 1_000_000;
    let (balances, paid) = agreed_balances(&net, budget);
    assert!(paid >= 1, "no epoch paid");
    assert_eq!(balances.values().sum::<u64>(), budget * paid, "{balances:?}");
    for (index, id) in ids.iter().enumerate() {
        assert_eq!(balances[id] > 0, index < 4, "{id}: {balances:?}");
    }
    eprintln!("{paid} epochs paid; balances agreed: {balances:?}");
    net.stop();
}
