//! The spent-txid registry of hosted sessions (feature `session`): `SpentTxids` of
//! `lucid-payouts` over the `session_spent_txids` table (migration 0009), whose primary key
//! refuses a second session for one payment on both backends, across restarts and processes.
//!
//! A claim is insert-if-absent and then a read of the owner, in one write transaction: the
//! owner read is the row that won, whichever transaction inserted it.

use async_trait::async_trait;
use lucid_core::{HasKind, UnixMillis};
use lucid_payouts::Error as PayoutError;
use lucid_payouts::session::{SessionId, SpentTxids, Txid, TxidClaim};

use crate::database::Database;
use crate::error::Error;
use crate::sql::{Columns, Value};

const ACTION: &str = "claiming a session txid";

#[async_trait]
impl SpentTxids for Database {
    async fn claim(
        &self,
        txid: &Txid,
        session: &SessionId,
        now: UnixMillis,
    ) -> Result<TxidClaim, PayoutError> {
        let owner = async {
            let mut tx = self.begin_write().await.map_err(Error::query(ACTION))?;
            let mut insert = self
                .query("INSERT INTO session_spent_txids (txid, session_id, claimed_at) VALUES ");
            insert.tuple([
                Value::Blob(txid.0.to_vec()),
                Value::Text(session.as_str().to_owned()),
                Value::Int(now.0),
            ]);
            insert.push(" ON CONFLICT (txid) DO NOTHING");
            tx.execute(&mut insert).await.map_err(Error::query(ACTION))?;
            let mut select = self.query("SELECT session_id FROM session_spent_txids WHERE txid = ");
            select.bind(Value::Blob(txid.0.to_vec()));
            let rows = tx.fetch_all(&mut select).await.map_err(Error::query(ACTION))?;
            tx.commit().await.map_err(Error::query(ACTION))?;
            let row = rows.first().ok_or_else(|| Error::InvalidRow {
                table: "session_spent_txids",
                key: txid.to_string(),
                detail: "no row after an insert-if-absent".to_owned(),
            })?;
            let text = Columns::new(row, "session_spent_txids", ACTION).text(0)?;
            SessionId::parse(&text).ok_or_else(|| Error::InvalidRow {
                table: "session_spent_txids",
                key: txid.to_string(),
                detail: "session_id is not a session id".to_owned(),
            })
        }
        .await
        .map_err(|error: Error| PayoutError::Store {
            action: ACTION,
            kind: error.kind(),
            message: error.to_string(),
        })?;
        Ok(if &owner == session { TxidClaim::Claimed } else { TxidClaim::SpentBy(owner) })
    }
}
