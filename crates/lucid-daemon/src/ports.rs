//! The stores the node works over, handed in by the binary: `Ports`.
//!
//! Each store is a port owned by its domain crate (`ProofStore` and `RecordStore` by
//! `lucid-consensus`, `PoolStore` by `lucid-pools`, `PayoutStore` by `lucid-payouts`); the binary
//! wires the `lucid-storage` adapter, tests wire the in-memory references. `PoolIndex` is the one
//! read the pool port lacks (listing pools) and is owned here.

use std::sync::Arc;

use lucid_consensus::records::RecordStore;
use lucid_consensus::store::ProofStore;
use lucid_payouts::store::PayoutStore;
use lucid_pools::{Pool, PoolStore};

/// Lists pools; the API pages through it.
#[async_trait::async_trait]
pub trait PoolIndex: Send + Sync {
    /// Every pool, ordered by id.
    async fn all_pools(&self) -> Result<Vec<Pool>, lucid_pools::Error>;
}

#[async_trait::async_trait]
impl PoolIndex for lucid_pools::MemoryPoolStore {
    async fn all_pools(&self) -> Result<Vec<Pool>, lucid_pools::Error> {
        let mut pools = self.pools();
        pools.sort_by_key(|pool| pool.pool_id);
        Ok(pools)
    }
}

/// The node's stores.
#[derive(Clone)]
pub struct Ports {
    /// Accepted proofs, registrations and evidence.
    pub proofs: Arc<dyn ProofStore>,
    /// Tallies, schedules and slot results.
    pub records: Arc<dyn RecordStore>,
    /// Pools and memberships.
    pub pools: Arc<dyn PoolStore>,
    /// Listing of pools.
    pub pool_index: Arc<dyn PoolIndex>,
    /// Payouts, their attempts and the ledger behind them.
    pub payouts: Arc<dyn PayoutStore>,
}

impl Ports {
    /// Every store in memory: for tests and simulations; nothing survives the process.
    pub fn in_memory() -> Ports {
        let pools = Arc::new(lucid_pools::MemoryPoolStore::new());
        Ports {
            proofs: Arc::new(lucid_consensus::store::MemoryProofStore::new()),
            records: Arc::new(lucid_consensus::records::MemoryRecordStore::new()),
            pools: pools.clone(),
            pool_index: pools,
            payouts: Arc::new(lucid_payouts::store::MemoryPayoutStore::new()),
        }
    }
}
