//! Five real `lucid-node` processes on loopback gossip their proofs and must end with identical
//! state: the same settled tally, the same leader schedules and the same ledger balances,
//! compared through each node's HTTP API (issue 6, `consensus.md` §6.3 and §7).

use std::time::Duration;

use serde_json::Value;

use crate::harness::get;
use crate::network::{NetNode, Profile, TestNet};

/// The epoch whose settled tally is compared: its window covers the slots in which all five
/// nodes were running and gossiping (nodes start around slot 10 of eight-slot epochs).
const EPOCH: u64 = 4;

fn json(node: &NetNode, path: &str) -> Option<Value> {
    match get(node.http, path) {
        Some((200, body)) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

fn settled_tally(node: &NetNode) -> Option<Value> {
    json(node, &format!("/api/v1/poot/epochs/{EPOCH}/tally")).filter(|t| t["settled"] == true)
}

/// What every node must agree on in a tally: the entities with their credits, beacon slots,
/// density and rank (the revision may differ: a node that saw a proof late revised its tally
/// before settling it).
fn tally_content(tally: &Value) -> Value {
    serde_json::json!({
        "epoch": tally["epoch"],
        "window_start": tally["window_start"],
        "window_end": tally["window_end"],
        "entries": tally["entries"],
    })
}

#[test]
fn five_processes_converge_on_tally_schedule_and_balances() {
    let mut profile = Profile::fast("converge-it");
    profile.extra_env.push(("LUCID_ECONOMY_EPOCH_REWARD_USDT", "100".to_owned()));
    let net = TestNet::start(5, profile);
    let ids: Vec<String> = net.nodes.iter().map(|node| node.node_id.to_string()).collect();

    let took = net.wait_until("a settled tally on every node", Duration::from_secs(180), |net| {
        net.nodes.iter().all(|node| settled_tally(node).is_some())
    });
    eprintln!("every node settled the tally of epoch {EPOCH} after {took:?}");

    let tallies: Vec<Value> =
        net.nodes.iter().map(|node| tally_content(&settled_tally(node).unwrap())).collect();
    // Every node's beacons reached every node: five entities, each with beacon slots.
    let entries = tallies[0]["entries"].as_array().unwrap();
    let mut entities: Vec<String> =
        entries.iter().map(|e| e["entity"].as_str().unwrap().to_owned()).collect();
    entities.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(entities, expected, "the tally names every node: {:#}", tallies[0]);
    assert!(entries.iter().all(|e| e["beacon_slots"].as_u64().unwrap() > 0), "{:#}", tallies[0]);
    let ranked = entries.iter().any(|e| !e["rank"].is_null());
    for (index, tally) in tallies.iter().enumerate() {
        assert_eq!(tally, &tallies[0], "node {index} disagrees on the tally of epoch {EPOCH}");
    }

    // The leader schedule of the epoch that the settled tally decides, slot by slot.
    let first = (EPOCH + 1) * net.profile.slots_per_epoch;
    for slot in first..first + net.profile.slots_per_epoch {
        let path = format!("/api/v1/poot/slots/{slot}/leader");
        net.wait_until("a schedule on every node", Duration::from_secs(60), |net| {
            net.nodes.iter().all(|node| json(node, &path).is_some())
        });
        let leaders: Vec<Value> = net
            .nodes
            .iter()
            .map(|node| {
                let schedule = json(node, &path).unwrap();
                serde_json::json!({
                    "primary": schedule["primary"],
                    "fallbacks": schedule["fallbacks"],
                    "no_leader_reason": schedule["no_leader_reason"],
                })
            })
            .collect();
        for (index, leader) in leaders.iter().enumerate() {
            assert_eq!(leader, &leaders[0], "node {index} disagrees on the leader of slot {slot}");
        }
    }

    // Ledger balances: every node posts the same epoch rewards from the same settled tallies.
    // Rewards go to ranked entities only (credits > 0), and these nodes sign beacons but no work
    // proofs yet, so nobody is ranked and every balance must be zero on every node; once work
    // proofs exist, some balance must be positive. Snapshots are polled until one is taken
    // while no node is between two postings.
    let balances = |node: &NetNode| -> Vec<Value> {
        ids.iter()
            .map(|id| json(node, &format!("/api/v1/nodes/{id}/balance")).unwrap_or(Value::Null))
            .map(|b| serde_json::json!({ "earned": b["earned"], "available": b["available"] }))
            .collect()
    };
    let mut agreed = None;
    net.wait_until("identical balances on every node", Duration::from_secs(60), |net| {
        let all: Vec<Vec<Value>> = net.nodes.iter().map(balances).collect();
        let earned = all[0].iter().any(|b| b["earned"].as_str().is_some_and(|e| e != "0.000000"));
        if earned == ranked && all.iter().all(|b| b == &all[0]) {
            agreed = Some(all[0].clone());
            true
        } else {
            false
        }
    });
    eprintln!("ranked entities: {ranked}; balances agreed: {:?}", agreed.unwrap());
    net.stop();
}
