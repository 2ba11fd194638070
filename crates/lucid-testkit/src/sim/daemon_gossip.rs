//! The daemon's own gossip (push, slot seals, anti-entropy with late acceptance, evidence) as
//! the protocol of a simulated node: the code a real node runs, over the simulated network.
//!
//! Each honest node's queue is made when its peer service is built ([`NodeProtocol::hook`]),
//! because the peer service must feed the queue what it accepts and the evidence it records;
//! [`NodeProtocol::start`] then hands the queue to `lucid_daemon::gossip::spawn` and forwards the
//! node's own proofs (its beacons and work proofs, from the harness's feed) to the queue's own
//! outbox, exactly as the daemon's beacon producer does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use lucid_consensus::ConsensusParams;
use lucid_core::NodeId;
use lucid_daemon::gossip::{GossipConfig, GossipDeps, GossipHook, GossipQueue, Supervision};
use lucid_daemon::network::PeerDirectory;
use lucid_daemon::services::metrics::ServiceMetrics;
use lucid_daemon::services::runner::ServiceStates;

use super::protocol::{NodeContext, NodeProtocol};

/// The daemon's gossip as a [`NodeProtocol`].
#[derive(Default)]
pub struct DaemonGossip {
    /// Queues made by `hook`, taken by `start`.
    queues: Mutex<HashMap<NodeId, (GossipQueue, GossipConfig)>>,
}

impl NodeProtocol for DaemonGossip {
    fn name(&self) -> &'static str {
        "daemon gossip"
    }

    fn hook(
        &self,
        params: &ConsensusParams,
        node: NodeId,
        directory: Arc<dyn PeerDirectory>,
    ) -> Option<GossipHook> {
        let config = GossipConfig::for_network(params);
        let queue = GossipQueue::new(node, directory, &config);
        let hook = queue.hook();
        self.queues.lock().unwrap_or_else(PoisonError::into_inner).insert(node, (queue, config));
        Some(hook)
    }

    fn start(&self, context: NodeContext) {
        let taken =
            self.queues.lock().unwrap_or_else(PoisonError::into_inner).remove(&context.node);
        let Some((queue, config)) = taken else {
            tracing::error!(node = %context.node, "no gossip queue was made for this node");
            return;
        };
        let outbox = queue.own_outbox();
        let mut accepted = context.accepted;
        let cancel = context.cancel.clone();
        context.tracker.spawn(async move {
            loop {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    next = accepted.recv() => match next {
                        // A full outbox drops, as the daemon's beacon producer does; anti-entropy
                        // repairs it.
                        Some(message) => { let _ = outbox.try_send(message); }
                        None => break,
                    },
                }
            }
        });
        lucid_daemon::gossip::spawn(
            GossipDeps {
                params: context.params,
                clock: context.clock,
                key: context.key,
                store: context.store,
                ingest: context.ingest,
                verifier: context.verifier,
                transport: context.transport,
                config,
            },
            queue,
            Supervision {
                tracker: &context.tracker,
                states: Arc::new(ServiceStates::new()),
                loops: Arc::new(ServiceMetrics::new()),
                cancel: &context.cancel,
            },
        );
    }
}
