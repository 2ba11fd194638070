//! Per-node sums of the accepted proofs of each chunk of [`CHUNK_SLOTS`] slots (table
//! `proof_sums`, migration 0007), kept in the transaction that inserts the proofs, and the tally
//! of an epoch computed from them ([`Database::tally_from_sums`]).
//!
//! Why: a tally over a full window of 1 000 nodes reads ≈ 6.3 M proofs, and on SQLite the driver
//! hands over every row one at a time (≈ 5–30 µs per row here), which alone misses the issue 3
//! target (under 10 s). The sums make the read one row per (node, chunk): 7 000 rows for a mainnet
//! window of 1 000 nodes. The beacon slots are kept as a bitmap so that pool entities (whose
//! density counts distinct slots over all members) come out exactly.
//!
//! The proofs stay the source of truth. A (node, chunk) is read proof by proof instead when the
//! node's entity changes inside the chunk, when the node has equivocation evidence in the window,
//! when a sum would have overflowed (`exact = 0`), and for the parts of the window that do not
//! cover a whole chunk; the result is tested equal to `TallyBuilder` over every proof.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use lucid_consensus::ConsensusParams;
use lucid_consensus::proof::{ProofKey, ProofKind};
use lucid_consensus::store::{ProofStore as _, StoredProof};
use lucid_consensus::tally::{CountedProof, MembershipView, Tally, TallyBuilder};
use lucid_core::{Epoch, NodeId, Slot, SlotRange};

use crate::database::Database;
use crate::error::Error;
use crate::sql::{Columns, Tx, Value, row_chunks};

/// Slots per chunk: one mainnet epoch, so a mainnet window is exactly seven chunks.
pub const CHUNK_SLOTS: u64 = 720;
/// Slots per beacon word: 60 bits, so a word is a non-negative BIGINT and a chunk is 12 words.
const WORD_SLOTS: u64 = 60;
/// Beacon words of a chunk (`beacons_0` … `beacons_11`).
const WORDS: usize = (CHUNK_SLOTS / WORD_SLOTS) as usize;
/// Columns of a `proof_sums` row.
const SUM_COLUMNS: usize = 6 + WORDS;
/// Proofs read per page on the proof-by-proof paths.
const PAGE: usize = 50_000;
/// The largest value a BIGINT sum may take.
const SUM_MAX: &str = "9223372036854775807";

/// The columns of a `proof_sums` row, in [`read_sums`] and insert order.
const SUM_SELECT: &str = "SELECT chunk, node_id, relay, storage, validation, beacons_0, beacons_1, \
     beacons_2, beacons_3, beacons_4, beacons_5, beacons_6, beacons_7, beacons_8, beacons_9, \
     beacons_10, beacons_11, exact FROM proof_sums ";
const SUM_INSERT: &str = "INSERT INTO proof_sums (chunk, node_id, relay, storage, validation, \
     beacons_0, beacons_1, beacons_2, beacons_3, beacons_4, beacons_5, beacons_6, beacons_7, \
     beacons_8, beacons_9, beacons_10, beacons_11, exact) VALUES ";

/// The sums a write adds, by (chunk, node): the map's order is the order rows are merged in.
pub(crate) type Deltas = BTreeMap<(u64, NodeId), ChunkSums>;

/// The sums of one (chunk, node).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ChunkSums {
    /// Relay, storage and validation credits.
    credits: [u64; 3],
    /// Bit `j` of word `i` is the slot at offset `60 i + j` of the chunk.
    beacons: [u64; WORDS],
    exact: bool,
}

impl Default for ChunkSums {
    fn default() -> Self {
        ChunkSums { credits: [0; 3], beacons: [0; WORDS], exact: true }
    }
}

impl ChunkSums {
    fn add_credits(&mut self, index: usize, credits: u64) {
        // Sums must fit a BIGINT; a chunk that would not is read proof by proof. The SQL merge of
        // `MERGE_CLAUSE` keeps exactly this rule.
        match self.credits[index].checked_add(credits).filter(|sum| i64::try_from(*sum).is_ok()) {
            Some(sum) => self.credits[index] = sum,
            None => self.exact = false,
        }
    }

    /// Adds the partial sums `other`: credits by the rule of [`ChunkSums::add_credits`], beacon
    /// bits OR-ed, exact only if both are. The result is exact exactly when adding the proofs
    /// one by one would have kept it exact (credits are never negative), and then equal to it;
    /// the credits of a non-exact chunk may differ, which is harmless because such a chunk is
    /// read proof by proof.
    fn merge(&mut self, other: &ChunkSums) {
        for (index, credits) in other.credits.iter().enumerate() {
            self.add_credits(index, *credits);
        }
        for (bits, other) in self.beacons.iter_mut().zip(other.beacons) {
            *bits |= other;
        }
        self.exact &= other.exact;
    }

    fn add_beacon(&mut self, offset: u64) {
        let word = usize::try_from(offset / WORD_SLOTS).unwrap_or(WORDS);
        if let Some(bits) = self.beacons.get_mut(word) {
            *bits |= 1 << (offset % WORD_SLOTS);
        }
    }

    fn beacon_slots(&self, chunk: u64) -> impl Iterator<Item = Slot> + '_ {
        let base = chunk * CHUNK_SLOTS;
        (0..CHUNK_SLOTS)
            .filter(|offset| {
                let word = (*offset / WORD_SLOTS) as usize;
                self.beacons[word] & (1 << (offset % WORD_SLOTS)) != 0
            })
            .map(move |offset| Slot(base + offset))
    }
}

fn work_index(kind: ProofKind) -> Option<usize> {
    match kind {
        ProofKind::RelayBandwidth => Some(0),
        ProofKind::StorageAvailability => Some(1),
        ProofKind::ValidationSignature => Some(2),
        ProofKind::UptimeBeacon => None,
    }
}

/// The sums the counted proofs `inserted` add, by (chunk, node).
///
/// Consecutive proofs of one (chunk, node), as a batch in table key order has them (the kinds
/// of one node and slot), are added up before one lookup in the map.
fn deltas(inserted: impl Iterator<Item = CountedProof>) -> Deltas {
    let mut deltas = Deltas::new();
    let mut run: Option<((u64, NodeId), ChunkSums)> = None;
    for proof in inserted {
        let key = (proof.slot.0 / CHUNK_SLOTS, proof.node);
        let sums = match &mut run {
            Some((run_key, sums)) if *run_key == key => sums,
            _ => {
                if let Some((run_key, sums)) = run.take() {
                    deltas.entry(run_key).or_default().merge(&sums);
                }
                &mut run.insert((key, ChunkSums::default())).1
            }
        };
        match work_index(proof.value.kind()) {
            Some(index) => sums.add_credits(index, proof.value.credits()),
            None => sums.add_beacon(proof.slot.0 % CHUNK_SLOTS),
        }
    }
    if let Some((run_key, sums)) = run {
        deltas.entry(run_key).or_default().merge(&sums);
    }
    deltas
}

/// The sums of the stored proofs `inserted` (see [`deltas`]).
pub(crate) fn sum_deltas<'a>(inserted: impl Iterator<Item = &'a StoredProof>) -> Deltas {
    deltas(inserted.map(|stored| CountedProof {
        node: stored.proof.node,
        slot: stored.proof.slot,
        value: stored.proof.value,
    }))
}

/// The `ON CONFLICT` clause that merges an incoming row into the stored one: credits added
/// unless the sum would pass a BIGINT (then the stored sum stays and the row is no longer
/// exact, as [`ChunkSums::add_credits`] does), beacon words OR-ed. Every right-hand side sees the
/// stored row as it was before the update, on both backends.
fn merge_clause_text() -> String {
    let fits = |column: &str| format!("excluded.{column} <= {SUM_MAX} - proof_sums.{column}");
    let mut clause = String::from(" ON CONFLICT (chunk, node_id) DO UPDATE SET ");
    for column in ["relay", "storage", "validation"] {
        clause.push_str(&format!(
            "{column} = CASE WHEN {} THEN proof_sums.{column} + excluded.{column} \
             ELSE proof_sums.{column} END, ",
            fits(column)
        ));
    }
    for word in 0..WORDS {
        clause.push_str(&format!(
            "beacons_{word} = proof_sums.beacons_{word} | excluded.beacons_{word}, "
        ));
    }
    clause.push_str(&format!(
        "exact = CASE WHEN proof_sums.exact = 1 AND excluded.exact = 1 AND {} AND {} AND {} \
         THEN 1 ELSE 0 END",
        fits("relay"),
        fits("storage"),
        fits("validation")
    ));
    clause
}

/// [`merge_clause_text`], built once.
static MERGE_CLAUSE: std::sync::LazyLock<String> = std::sync::LazyLock::new(merge_clause_text);

fn read_sums(
    row: &crate::sql::Row,
    nodes: &mut HashMap<Vec<u8>, NodeId>,
) -> Result<(u64, NodeId, ChunkSums), Error> {
    let c = Columns::new(row, "proof_sums", "reading proof sums");
    let raw = c.blob(1)?;
    let node = match nodes.get(&raw) {
        Some(node) => *node,
        None => {
            // Validated once per distinct node (a curve point decompression).
            let node = c.node(1, "node_id")?;
            nodes.insert(raw, node);
            node
        }
    };
    let chunk = c.unsigned(0, "chunk")?;
    let credits =
        [c.unsigned(2, "relay")?, c.unsigned(3, "storage")?, c.unsigned(4, "validation")?];
    let mut beacons = [0u64; WORDS];
    for (word, bits) in beacons.iter_mut().enumerate() {
        *bits = c.unsigned(5 + word, "beacons")?;
        if *bits >> WORD_SLOTS != 0 {
            return Err(c.invalid(format!("beacons_{word} has bits beyond its 60 slots")));
        }
    }
    let exact = match c.int(5 + WORDS)? {
        0 => false,
        1 => true,
        other => return Err(c.invalid(format!("exact is {other}"))),
    };
    Ok((chunk, node, ChunkSums { credits, beacons, exact }))
}

/// A `proof_sums` row as bound values, in [`SUM_INSERT`] order.
fn sum_row(chunk: u64, node: &NodeId, sums: &ChunkSums) -> Result<[Value; SUM_COLUMNS], Error> {
    let to_sql = crate::consensus::to_sql;
    let mut row: [Value; SUM_COLUMNS] = std::array::from_fn(|_| Value::Int(0));
    row[0] = Value::Int(to_sql("chunk", chunk)?);
    row[1] = Value::Blob(node.as_bytes().to_vec());
    row[2] = Value::Int(to_sql("relay", sums.credits[0])?);
    row[3] = Value::Int(to_sql("storage", sums.credits[1])?);
    row[4] = Value::Int(to_sql("validation", sums.credits[2])?);
    for (word, bits) in sums.beacons.iter().enumerate() {
        row[5 + word] = Value::Int(to_sql("beacons", *bits)?);
    }
    row[5 + WORDS] = Value::Int(i64::from(sums.exact));
    Ok(row)
}

/// [`Database::merge_sums`] on PostgreSQL: one statement with one array per column (18 binds
/// instead of 18 per row, and a short statement to parse and plan), merged by the same clause.
async fn merge_sums_unnest(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    deltas: &Deltas,
) -> Result<(), Error> {
    let to_sql = crate::consensus::to_sql;
    let n = deltas.len();
    let (mut chunks, mut nodes, mut exact) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let mut credits: [Vec<i64>; 3] = Default::default();
    let mut words: [Vec<i64>; WORDS] = Default::default();
    for ((chunk, node), sums) in deltas {
        chunks.push(to_sql("chunk", *chunk)?);
        nodes.push(node.as_bytes().to_vec());
        for (column, value) in credits.iter_mut().zip(sums.credits) {
            column.push(to_sql("credits", value)?);
        }
        for (column, bits) in words.iter_mut().zip(sums.beacons) {
            column.push(to_sql("beacons", bits)?);
        }
        exact.push(i64::from(sums.exact));
    }
    let arrays: Vec<String> = (1..=SUM_COLUMNS)
        .map(|i| if i == 2 { "$2::bytea[]".to_owned() } else { format!("${i}::int8[]") })
        .collect();
    let sql = format!(
        "{}SELECT * FROM UNNEST({}){}",
        SUM_INSERT.trim_end_matches("VALUES "),
        arrays.join(", "),
        *MERGE_CLAUSE
    );
    let mut query = sqlx::query(&sql).bind(chunks).bind(nodes);
    for column in credits {
        query = query.bind(column);
    }
    for column in words {
        query = query.bind(column);
    }
    query.bind(exact).execute(&mut **tx).await.map_err(Error::query("writing proof sums"))?;
    Ok(())
}

/// Name of the `derived_state` row that marks `proof_sums` as complete.
const PROOF_SUMS_MARK: &str = "proof_sums";

impl Database {
    /// Merges `deltas` into `proof_sums` (see [`MERGE_CLAUSE`]), in the inserting transaction:
    /// one row per (chunk, node) touched, merged into the stored row by the database.
    pub(crate) async fn merge_sums(&self, tx: &mut Tx, deltas: &Deltas) -> Result<(), Error> {
        if deltas.is_empty() {
            return Ok(());
        }
        if let Some(pg) = tx.postgres() {
            return merge_sums_unnest(pg, deltas).await;
        }
        let rows: Vec<[Value; SUM_COLUMNS]> = deltas
            .iter()
            .map(|((chunk, node), sums)| sum_row(*chunk, node, sums))
            .collect::<Result<_, Error>>()?;
        let total = rows.len();
        let mut rows = rows.into_iter();
        for count in row_chunks(total, self.max_binds() / SUM_COLUMNS) {
            let mut query = self.query(SUM_INSERT);
            for (position, row) in rows.by_ref().take(count).enumerate() {
                if position > 0 {
                    query.push(", ");
                }
                query.tuple(row);
            }
            query.push(&MERGE_CLAUSE);
            tx.execute(&mut query).await.map_err(Error::query("writing proof sums"))?;
        }
        Ok(())
    }

    /// Recomputes `proof_sums` from every stored proof unless `derived_state` says it is
    /// complete, in one write transaction that ends by writing that mark (migration 0008: a
    /// database that held proofs before 0007 has none of their sums). Uses the incremental
    /// path's own code ([`deltas`], [`Database::merge_sums`]), so both give the same rows.
    /// `true` when it recomputed.
    ///
    /// On PostgreSQL the sums table is locked first, so proof inserts of other connections wait
    /// at their sums update until the recomputation is committed, and two processes opening one
    /// database recompute once.
    pub(crate) async fn backfill_proof_sums(&self) -> Result<bool, Error> {
        let action = "recomputing the proof sums";
        let marked = || {
            let mut query = self.query("SELECT name FROM derived_state WHERE name = ");
            query.bind(Value::Text(PROOF_SUMS_MARK.to_owned()));
            query
        };
        // The common case, without taking the writer or a lock: already complete.
        if !self.reader().fetch_all(&mut marked()).await.map_err(Error::query(action))?.is_empty() {
            return Ok(false);
        }
        let mut tx = self.begin_write().await.map_err(Error::query(action))?;
        if tx.postgres().is_some() {
            let mut lock = self.query("LOCK TABLE proof_sums IN EXCLUSIVE MODE");
            tx.execute(&mut lock).await.map_err(Error::query(action))?;
        }
        // Checked again under the lock: another process may have finished meanwhile.
        if !tx.fetch_all(&mut marked()).await.map_err(Error::query(action))?.is_empty() {
            tx.commit().await.map_err(Error::query(action))?;
            return Ok(false);
        }
        let mut clear = self.query("DELETE FROM proof_sums");
        tx.execute(&mut clear).await.map_err(Error::query(action))?;
        let mut after = None;
        let mut proofs = 0usize;
        loop {
            let page = self.counted_page(&mut tx, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.key());
            proofs += page.len();
            self.merge_sums(&mut tx, &deltas(page.into_iter())).await?;
        }
        let mut done = self.query("INSERT INTO derived_state (name, built_at) VALUES ");
        done.tuple([Value::Text(PROOF_SUMS_MARK.to_owned()), Value::Int(self.clock.wall().0)]);
        tx.execute(&mut done).await.map_err(Error::query(action))?;
        tx.commit().await.map_err(Error::query(action))?;
        tracing::info!(proofs, "proof sums recomputed from the stored proofs");
        Ok(true)
    }

    /// The tally of `epoch` from what the database holds, with `membership` attributing proofs
    /// to entities: equal to `TallyBuilder` fed every stored proof of the window, without the
    /// keys that have equivocation evidence (see the module doc for how). Everything is read
    /// first and the tally built without awaiting, so the future is `Send`.
    pub async fn tally_from_sums(
        &self,
        params: &ConsensusParams,
        epoch: Epoch,
        membership: &(dyn MembershipView + Sync),
        revision: u32,
    ) -> Result<Tally, Error> {
        let window = params.time.window(epoch).map_err(|error| {
            Error::from(lucid_core::internal!("epoch {epoch} has no window: {error}"))
        })?;
        let evidence: BTreeSet<ProofKey> = self
            .evidence_keys(window)
            .await
            .map_err(|error| lucid_core::internal!("reading evidence keys: {error}"))?
            .into_iter()
            .collect();
        let with_evidence: BTreeSet<NodeId> = evidence.iter().map(|key| key.node).collect();
        // Whole chunks inside the window come from the sums; the rest proof by proof.
        let first = window.start.0.div_ceil(CHUNK_SLOTS);
        let end = window.end.0 / CHUNK_SLOTS;
        let mut by_proof: Vec<SlotRange> = Vec::new();
        let mut blocks: Vec<(u64, NodeId, ChunkSums)> = Vec::new();
        let mut detail: BTreeMap<u64, Vec<NodeId>> = BTreeMap::new();
        if first >= end {
            by_proof.push(window);
        } else {
            by_proof.push(SlotRange { start: window.start, end: Slot(first * CHUNK_SLOTS) });
            by_proof.push(SlotRange { start: Slot(end * CHUNK_SLOTS), end: window.end });
            let mut query = self.query(SUM_SELECT);
            query.push("WHERE chunk >= ");
            query.bind(Value::Int(crate::consensus::to_sql("chunk", first)?));
            query.push(" AND chunk < ").bind(Value::Int(crate::consensus::to_sql("chunk", end)?));
            let rows = self.read(&mut query, "reading proof sums of a window").await?;
            let mut nodes: HashMap<Vec<u8>, NodeId> = HashMap::new();
            for row in &rows {
                let (chunk, node, sums) = read_sums(row, &mut nodes)?;
                // The node's entity must be the same over the whole chunk (the check
                // `TallyBuilder::push_block` makes again).
                let (_, same) = membership.seat_at(&node, Slot(chunk * CHUNK_SLOTS));
                let constant =
                    same.start.0 <= chunk * CHUNK_SLOTS && same.end.0 >= (chunk + 1) * CHUNK_SLOTS;
                if sums.exact && constant && !with_evidence.contains(&node) {
                    blocks.push((chunk, node, sums));
                } else {
                    detail.entry(chunk).or_default().push(node);
                }
            }
        }
        let mut proofs: Vec<CountedProof> = Vec::new();
        for range in by_proof.into_iter().filter(|r| !r.is_empty()) {
            let mut after = None;
            loop {
                let page = self.counted_proofs_in_range(range, after, PAGE).await?;
                let Some(last) = page.last() else { break };
                after = Some(last.key());
                proofs.extend(page);
            }
        }
        for (chunk, nodes) in detail {
            let range = SlotRange {
                start: Slot(chunk * CHUNK_SLOTS),
                end: Slot((chunk + 1) * CHUNK_SLOTS),
            };
            proofs.extend(self.counted_proofs_of_nodes(range, &nodes).await?);
        }
        let excluded = |key: &ProofKey| evidence.contains(key);
        let membership: &dyn MembershipView = membership;
        let mut builder = TallyBuilder::new(params, epoch, membership, &excluded)
            .map_err(|error| lucid_core::internal!("no tally builder: {error}"))?
            .with_revision(revision);
        for (chunk, node, sums) in &blocks {
            let range = SlotRange {
                start: Slot(chunk * CHUNK_SLOTS),
                end: Slot((chunk + 1) * CHUNK_SLOTS),
            };
            if !builder.push_block(node, range, sums.credits, sums.beacon_slots(*chunk)) {
                return Err(lucid_core::internal!(
                    "chunk {chunk} of {node} was judged whole but the builder refused it"
                )
                .into());
            }
        }
        builder.extend(proofs);
        Ok(builder.finish())
    }
}
