//! Signature verification of many messages on all cores.
//!
//! Every item is checked with the one validity rule, `verify_strict`, independently; the verdict
//! of each item is exactly what a single check would give (tested). Batch verification is never
//! used: it is cofactored and can accept signatures that strict verification rejects, which would
//! let two nodes disagree about validity. Throughput comes from spreading items over a CPU pool.

use lucid_core::keys::PublicKey;
use lucid_core::{Signature, SignedMessage};
use rayon::prelude::*;

/// Below this many items the work is not split: thread hand-off would cost more than it saves.
const MIN_ITEMS_PER_TASK: usize = 32;

/// One signature check: a key, the signed bytes and the signature.
#[derive(Clone, Copy, Debug)]
pub struct VerifyItem<'a> {
    /// The signer's public key.
    pub key: &'a PublicKey,
    /// The signed bytes.
    pub bytes: &'a [u8],
    /// The signature to check.
    pub signature: &'a Signature,
}

impl<'a> VerifyItem<'a> {
    /// The check of `message` under `key`.
    pub fn of(key: &'a PublicKey, message: &'a SignedMessage) -> Self {
        VerifyItem { key, bytes: message.bytes(), signature: message.signature() }
    }

    fn check(&self) -> bool {
        self.key.verify_strict(self.bytes, self.signature)
    }
}

/// A CPU pool for signature checks.
#[derive(Debug)]
pub struct Verifier {
    pool: Option<rayon::ThreadPool>,
}

/// The verifier's thread pool could not be started.
#[derive(Debug, thiserror::Error)]
#[error("could not start {threads} verification threads")]
pub struct VerifierStartError {
    threads: usize,
    #[source]
    source: rayon::ThreadPoolBuildError,
}

impl Verifier {
    /// A verifier with its own pool of `threads` threads; 0 means one per core.
    pub fn new(threads: usize) -> Result<Self, VerifierStartError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("lucid-verify-{i}"))
            .build()
            .map_err(|source| VerifierStartError { threads, source })?;
        Ok(Verifier { pool: Some(pool) })
    }

    /// A verifier that checks every item on the calling thread (for one-core measurements and
    /// callers that already run on a worker thread).
    pub fn single_threaded() -> Self {
        Verifier { pool: None }
    }

    /// Number of threads checks run on.
    pub fn threads(&self) -> usize {
        self.pool.as_ref().map_or(1, rayon::ThreadPool::current_num_threads)
    }

    /// Checks every item; `result[i]` is the strict verdict of `items[i]`.
    pub fn verify_all(&self, items: &[VerifyItem<'_>]) -> Vec<bool> {
        match &self.pool {
            Some(pool) if items.len() > MIN_ITEMS_PER_TASK => pool.install(|| {
                items.par_iter().with_min_len(MIN_ITEMS_PER_TASK).map(VerifyItem::check).collect()
            }),
            _ => items.iter().map(VerifyItem::check).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use lucid_core::keys::PublicKey;

    use super::*;
    use crate::testing;

    #[test]
    fn parallel_verdicts_equal_strict_verdicts() {
        let params = testing::params();
        let keys: Vec<_> = (0..8).map(testing::key).collect();
        let publics: Vec<_> = keys.iter().map(|k| PublicKey::of(&k.node_id())).collect();
        let mut messages = Vec::new();
        for i in 0..200u64 {
            let k = (i % 8) as usize;
            let mut m = testing::signed_beacon(&params, &keys[k], lucid_core::Slot(i));
            if i % 7 == 0 {
                // Corrupt one byte of every seventh message.
                let (mut bytes, sig) = m.into_parts();
                let last = bytes.len() - 1;
                bytes[last] ^= 1;
                m = SignedMessage::new(bytes, sig);
            }
            messages.push((k, m));
        }
        // Every fifth item is checked under the wrong key.
        let items: Vec<_> = messages
            .iter()
            .enumerate()
            .map(|(i, (k, m))| {
                VerifyItem::of(&publics[if i % 5 == 0 { (k + 1) % 8 } else { *k }], m)
            })
            .collect();
        let expected: Vec<bool> = items
            .iter()
            .map(|item| lucid_core::verify_strict(&item.key.node_id(), item.bytes, item.signature))
            .collect();
        assert!(expected.iter().any(|v| *v) && expected.iter().any(|v| !*v));
        for verifier in
            [Verifier::new(2).unwrap(), Verifier::new(0).unwrap(), Verifier::single_threaded()]
        {
            assert_eq!(verifier.verify_all(&items), expected);
        }
    }
}
