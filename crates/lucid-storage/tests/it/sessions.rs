//! The spent-txid registry (feature `session`) on both backends: a txid pays for one session,
//! a retry by the same session is idempotent, the claim survives a reopen, concurrent claims of
//! one txid by many sessions leave exactly one owner, and the table refuses a second row for a
//! txid even behind the adapter's back.

use std::sync::Arc;

use lucid_core::UnixMillis;
use lucid_payouts::session::{SessionId, SpentTxids, Txid, TxidClaim};

use super::{databases, lit, raw};

fn session(n: u32) -> SessionId {
    SessionId::parse(&format!("s{n}")).unwrap()
}

#[tokio::test]
async fn a_txid_pays_for_one_session_on_both_backends() {
    for (test_db, db) in databases().await {
        let txid = Txid([7; 32]);
        assert_eq!(db.claim(&txid, &session(1), UnixMillis(1)).await.unwrap(), TxidClaim::Claimed);
        assert_eq!(db.claim(&txid, &session(1), UnixMillis(2)).await.unwrap(), TxidClaim::Claimed);
        assert_eq!(
            db.claim(&txid, &session(2), UnixMillis(3)).await.unwrap(),
            TxidClaim::SpentBy(session(1))
        );
        db.close().await;
        // A restart keeps the claim.
        let reopened = test_db.open().await.unwrap();
        assert_eq!(
            reopened.claim(&txid, &session(3), UnixMillis(4)).await.unwrap(),
            TxidClaim::SpentBy(session(1))
        );
        // The schema itself refuses a second row for the txid.
        let sql = format!(
            "INSERT INTO session_spent_txids (txid, session_id, claimed_at) VALUES ({}, 's9', 5)",
            lit(test_db.backend, &txid.0)
        );
        assert!(raw(&test_db, &sql).await.is_err(), "{:?}", test_db.backend);
        let short = format!(
            "INSERT INTO session_spent_txids (txid, session_id, claimed_at) VALUES ({}, 's9', 5)",
            lit(test_db.backend, &[1; 31])
        );
        assert!(raw(&test_db, &short).await.is_err(), "a 31-byte txid is refused");
        reopened.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_leave_exactly_one_owner() {
    for (_test_db, db) in databases().await {
        let db = Arc::new(db);
        let txid = Txid([9; 32]);
        let mut tasks = Vec::new();
        for n in 0..16 {
            let db = Arc::clone(&db);
            tasks.push(tokio::spawn(async move {
                db.claim(&txid, &session(n), UnixMillis(i64::from(n))).await.unwrap()
            }));
        }
        let mut claimed = 0;
        let mut owners = std::collections::BTreeSet::new();
        for task in tasks {
            match task.await.unwrap() {
                TxidClaim::Claimed => claimed += 1,
                TxidClaim::SpentBy(owner) => {
                    owners.insert(owner);
                }
            }
        }
        assert_eq!(claimed, 1);
        assert!(owners.len() <= 1, "{owners:?}");
        db.close().await;
    }
}
