-- Per-node sums of the accepted proofs of each chunk of 720 slots (one mainnet epoch), written in
-- the transaction that inserts the proofs, so that a tally reads one row per node and chunk
-- instead of every proof of the window (consensus.md §7, issue 3 target: a full window of 1 000
-- entities in under 10 s on SQLite). The proofs stay the source of truth: a chunk whose sums are
-- not exact is read proof by proof, and the tally from sums is tested equal to TallyBuilder.
-- Same numbering and semantics as the other backend's 0007_proof_sums.sql.

CREATE TABLE proof_sums (
    chunk INTEGER NOT NULL CHECK (chunk >= 0),
    node_id BLOB NOT NULL CHECK (length(node_id) = 32),
    -- Credits of the chunk's relay, storage and validation proofs (ProofValue::credits, summed).
    relay INTEGER NOT NULL CHECK (relay >= 0),
    storage INTEGER NOT NULL CHECK (storage >= 0),
    validation INTEGER NOT NULL CHECK (validation >= 0),
    -- One bit per slot of the chunk (bit i of byte i / 8 is slot chunk * 720 + i): a beacon.
    beacons BLOB NOT NULL CHECK (length(beacons) = 90),
    -- 0 when a sum would have overflowed: the chunk is then read proof by proof.
    exact INTEGER NOT NULL CHECK (exact IN (0, 1)),
    PRIMARY KEY (chunk, node_id)
) STRICT, WITHOUT ROWID;
