//! A node of a real-process network stops in the middle of an epoch (SIGTERM, or SIGKILL as a
//! crash), the others go on for several slots with work submitted to node 0, and the node is
//! started again on the same data directory: it must catch up through anti-entropy within a
//! bounded number of slots and end identical to the others (the same proofs for every slot it
//! missed, the same settled tallies, schedules and balances), without ever signing a second
//! beacon for a slot it signed before it stopped (issue 6 item 5, `daemon.md` §12 items 5 and
//! 9, `consensus.md` §6.3).

use std::time::{Duration, Instant};

use lucid_consensus::proof::{ProofKind, TaskProof};
use lucid_core::message::Message as _;
use lucid_core::{Epoch, Slot, SlotRange};
use serde_json::Value;

use crate::convergence::{agreed_balances, agreed_schedules, tally_content};
use crate::network::{Profile, TestNet, TestPeer};
use crate::work::{WorkLog, assert_tally_credits, ranked_entities};

/// The node that stops and comes back (not node 0, the bootstrap that gets the work).
const RESTARTED: usize = 2;

/// Slots the network runs on without the node.
const DOWN_SLOTS: u64 = 5;

/// How the node stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// SIGTERM: the graceful path, exit 0.
    Term,
    /// SIGKILL: a crash, nothing drained.
    Kill,
}

/// Every node's slot digests over `range`, `None` where a node does not answer.
fn digests(
    net: &TestNet,
    peer: &TestPeer,
    range: SlotRange,
) -> Vec<Option<Vec<(u64, u32, String)>>> {
    net.nodes
        .iter()
        .map(|node| {
            let digests = peer.slot_digests(node, range).ok()?;
            Some(digests.iter().map(|d| (d.slot.0, d.count, d.root.to_string())).collect())
        })
        .collect()
}

fn restart_mid_epoch_catches_up(name: &str, stop: Stop) {
    let mut profile = Profile::fast(name);
    profile.extra_env.push(("LUCID_ECONOMY_EPOCH_REWARD_USDT", "10".to_owned()));
    let mut net = TestNet::start(3, profile);
    let spe = net.profile.slots_per_epoch;
    let time = net.profile.params().time;
    net.wait_for_registrations();
    // The test peer talks to the node that stops only after its restart: a connection it does
    // not drive would hold up the node's drain on SIGTERM.
    let peer = TestPeer::new(&net, 0x5e);
    peer.hello(&net.nodes[0]).unwrap();
    peer.hello(&net.nodes[1]).unwrap();
    let mut work = WorkLog::new(&net);

    // Stop in the middle of the first epoch that starts at least six slots from now (so that
    // the window of its tally holds enough beacon slots of every node to rank it), half-way
    // through a slot (beacons are signed in the first ~83 ms of each slot and pushed within
    // 50 ms), and come back in the next epoch, after its tally was computed without this node.
    let now = net.current_slot();
    let stop_slot = (now + 6).div_ceil(spe) * spe + spe / 2;
    let restart_slot = stop_slot + DOWN_SLOTS;
    let down_epoch = time.epoch_of(Slot(stop_slot));
    let back_epoch = time.epoch_of(Slot(restart_slot));
    assert_eq!(back_epoch.0, down_epoch.0 + 1);
    work.run_until(&net, &peer, 0, stop_slot, |_, _| {});
    let half = time.slot_start(Slot(stop_slot)).unwrap().0
        + i64::try_from(net.profile.slot_ms / 2).unwrap();
    while crate::work::now_ms() < half {
        std::thread::sleep(Duration::from_millis(10));
    }
    let node = &mut net.nodes[RESTARTED];
    match stop {
        Stop::Term => {
            let status = node.stop(Duration::from_secs(30));
            assert!(status.is_some_and(|s| s.success()), "SIGTERM: {status:?}");
        }
        Stop::Kill => node.kill(),
    }
    let stopped = net.current_slot();
    eprintln!("node {RESTARTED} stopped ({stop:?}) in slot {stopped}");

    // The others go on, and so does the work, the stopped node's own included.
    work.run_until(&net, &peer, 0, restart_slot, |_, _| {});
    let took = net.nodes[RESTARTED].restart(Duration::from_secs(30));
    let restarted = net.current_slot();
    eprintln!("node {RESTARTED} ready again after {took:?} in slot {restarted}");
    peer.hello(&net.nodes[RESTARTED]).unwrap();

    // Catch-up: every slot up to the restart holds the same proofs on every node. It must be
    // done before the tally of the epoch it came back in is settled, or that tally would be
    // frozen without what it missed.
    let settle_slot = time.epoch_start(Epoch(back_epoch.0 + 1)).unwrap().0;
    let missed = SlotRange { start: Slot(0), end: Slot(restarted + 1) };
    let mut caught_up = None;
    let started = Instant::now();
    work.run(&net, &peer, 0, Duration::from_secs(60), |_, _| {
        let all = digests(&net, &peer, missed);
        if all.iter().all(|d| d.is_some() && *d == all[0]) {
            caught_up = Some(net.current_slot());
            return false;
        }
        true
    });
    let caught_up = caught_up.unwrap();
    eprintln!(
        "node {RESTARTED} caught up slots 0..{} in {:?}, by slot {caught_up} ({} slots after its restart)",
        missed.end.0,
        started.elapsed(),
        caught_up - restarted,
    );
    assert!(
        caught_up < settle_slot,
        "caught up in slot {caught_up}, after the settlement at {settle_slot}"
    );
    let all = digests(&net, &peer, missed);
    let held = all[0].as_ref().unwrap();
    let down: Vec<&(u64, u32, String)> =
        held.iter().filter(|d| d.0 >= stopped && d.0 < restarted && d.1 > 0).collect();
    assert!(down.len() as u64 >= DOWN_SLOTS - 1, "proofs of the missed slots: {down:?}");

    if stop == Stop::Kill {
        crash_within_a_slot(&mut net, &peer);
    }

    // Work goes on until the epoch it came back in has ended; then both epochs' settled tallies,
    // the schedules of the next epoch and the balances must be identical everywhere.
    work.run_until(&net, &peer, 0, settle_slot, |_, _| {});
    let all = digests(&net, &peer, SlotRange { start: Slot(0), end: Slot(settle_slot - 3) });
    assert!(all.iter().all(|d| d.is_some() && *d == all[0]), "the nodes hold different proofs");
    drop(peer);
    net.wait_until("settled tallies on every node", Duration::from_secs(60), |net| {
        net.nodes.iter().all(|node| node.settled_tally(back_epoch.0).is_some())
    });
    for epoch in [down_epoch, back_epoch] {
        let tallies: Vec<Value> =
            net.nodes.iter().map(|node| node.settled_tally(epoch.0).unwrap()).collect();
        let expected = work.credits(time.window(epoch).unwrap());
        for (index, tally) in tallies.iter().enumerate() {
            assert_tally_credits(tally, &expected);
            assert_eq!(
                tally_content(tally),
                tally_content(&tallies[0]),
                "node {index}, epoch {epoch}"
            );
        }
        assert_eq!(ranked_entities(&tallies[0]).len(), 3, "{:#}", tallies[0]);
    }
    let first = settle_slot + 2;
    agreed_schedules(&net, first..first + spe - 2);
    let (balances, paid) = agreed_balances(&net, 10_000_000);
    assert!(paid >= 2, "{paid} epochs paid");
    assert_eq!(balances.values().sum::<u64>(), 10_000_000 * paid, "{balances:?}");
    assert!(balances.values().all(|earned| *earned > 0), "{balances:?}");

    // No node ever saw two different proofs of one signer for one key: the node did not sign a
    // second beacon for a slot it had signed before it stopped.
    for node in &net.nodes {
        assert_eq!(
            node.metric("lucid_gossip_evidence_forwarded_total"),
            Some(0.0),
            "{}",
            node.node_id
        );
    }
    net.stop();
}

/// Kills the restarted node right after it signed the beacon of a slot and starts it again
/// within that slot: it must find the beacon it signed and not sign a second one. Tried in up
/// to five slots, since a loaded machine may not restart it within one.
fn crash_within_a_slot(net: &mut TestNet, peer: &TestPeer) {
    let node = net.nodes[RESTARTED].node_id;
    for _ in 0..5 {
        let slot = net.current_slot() + 1;
        let range = SlotRange { start: Slot(slot), end: Slot(slot + 1) };
        let beacon = |net: &TestNet, index: usize| -> Option<Vec<u8>> {
            let proofs = peer.pull_all(&net.nodes[index], range).ok()?;
            let mine = proofs.into_iter().find(|p| {
                TaskProof::from_signed_bytes(p.bytes()).is_ok_and(|(_, proof)| {
                    proof.node == node && proof.kind() == ProofKind::UptimeBeacon
                })
            })?;
            Some(mine.bytes().to_vec())
        };
        // Its beacon of the slot reached node 0: signed, stored and pushed.
        net.wait_until("the node's beacon on node 0", Duration::from_secs(10), |net| {
            beacon(net, 0).is_some()
        });
        let signed = beacon(net, 0).unwrap();
        net.nodes[RESTARTED].kill();
        net.nodes[RESTARTED].restart(Duration::from_secs(30));
        if net.current_slot() != slot {
            eprintln!("the restart left slot {slot}; trying the next one");
            continue;
        }
        eprintln!("node {RESTARTED} crashed and restarted within slot {slot}");
        // Once the slot is over, the restarted node and every other hold the beacon signed
        // before the crash (a second one would also leave evidence, checked at the end).
        net.wait_until("the next slot", Duration::from_secs(10), |net| net.current_slot() > slot);
        for index in 0..net.nodes.len() {
            assert_eq!(beacon(net, index), Some(signed.clone()), "node {index}, slot {slot}");
        }
        return;
    }
    panic!("the node never restarted within one slot");
}

#[test]
fn a_node_stopped_with_sigterm_mid_epoch_catches_up_and_ends_identical() {
    restart_mid_epoch_catches_up("restart-term-it", Stop::Term);
}

#[test]
fn a_node_killed_mid_epoch_catches_up_and_ends_identical() {
    restart_mid_epoch_catches_up("restart-kill-it", Stop::Kill);
}
