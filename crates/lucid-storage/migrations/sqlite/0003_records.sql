-- Records owned by consensus (consensus.md §7.4, §8.4 and §10): tallies with their entries and
-- pool contributions, leader schedules with their fallbacks, and slot results. Entities are
-- stored as their canonical bytes (0x01 ‖ node id, or 0x02 ‖ pool id). The constraints and
-- triggers are the backstop of the domain rules: schedules and results are write-once, a settled
-- tally is frozen, a stored tally revision never goes back and never changes its digest.
-- Same numbering and semantics as migrations/postgres/0003_records.sql.

-- The current revision of each epoch's tally; entry_count lets a read notice missing entries.
CREATE TABLE tallies (
    epoch INTEGER NOT NULL PRIMARY KEY CHECK (epoch >= 0),
    window_start INTEGER NOT NULL CHECK (window_start >= 0),
    window_end INTEGER NOT NULL CHECK (window_end >= window_start),
    revision INTEGER NOT NULL CHECK (revision BETWEEN 0 AND 4294967295),
    digest BLOB NOT NULL CHECK (length(digest) = 32),
    entry_count INTEGER NOT NULL CHECK (entry_count >= 0),
    computed_at INTEGER NOT NULL,
    settled_at INTEGER
) STRICT;

-- The entries of the current revision, in tally order (`position`): ranked ones first.
CREATE TABLE tally_entries (
    epoch INTEGER NOT NULL REFERENCES tallies (epoch),
    position INTEGER NOT NULL CHECK (position >= 0),
    entity BLOB NOT NULL CHECK (
        (length(entity) = 33 AND substr(entity, 1, 1) = X'01')
        OR (length(entity) = 17 AND substr(entity, 1, 1) = X'02')
    ),
    rank INTEGER CHECK (rank >= 1),
    credits INTEGER NOT NULL CHECK (credits >= 0),
    relay INTEGER NOT NULL CHECK (relay >= 0),
    storage INTEGER NOT NULL CHECK (storage >= 0),
    validation INTEGER NOT NULL CHECK (validation >= 0),
    beacon_slots INTEGER NOT NULL CHECK (beacon_slots >= 0),
    density_ppm INTEGER NOT NULL CHECK (density_ppm BETWEEN 0 AND 1000000),
    -- Ranked iff credits > 0 and density ≥ 200 000 ppm (§7.2); unranked entries carry no rank.
    CHECK (rank IS NULL OR (credits > 0 AND density_ppm >= 200000)),
    PRIMARY KEY (epoch, position),
    UNIQUE (epoch, entity),
    UNIQUE (epoch, rank)
) STRICT;

-- Each member's own credits attributed to its pool, in the entry's order (`position`).
CREATE TABLE tally_contributions (
    epoch INTEGER NOT NULL,
    entity BLOB NOT NULL,
    node_id BLOB NOT NULL CHECK (length(node_id) = 32),
    position INTEGER NOT NULL CHECK (position >= 0),
    credits INTEGER NOT NULL CHECK (credits >= 0),
    PRIMARY KEY (epoch, entity, node_id),
    UNIQUE (epoch, entity, position),
    FOREIGN KEY (epoch, entity) REFERENCES tally_entries (epoch, entity)
) STRICT;

-- A settled tally is frozen for ever (§7.4): its row, entries and contributions.
CREATE TRIGGER tallies_frozen_update BEFORE UPDATE ON tallies
    WHEN OLD.settled_at IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'a settled tally is frozen');
END;
CREATE TRIGGER tallies_frozen_delete BEFORE DELETE ON tallies
    WHEN OLD.settled_at IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'a settled tally is frozen');
END;
-- A revision replaces only a lower one of the same epoch, and a revision keeps its digest.
CREATE TRIGGER tallies_revision_forward BEFORE UPDATE ON tallies
    WHEN NEW.epoch <> OLD.epoch
        OR NEW.revision < OLD.revision
        OR (NEW.revision = OLD.revision AND NEW.digest <> OLD.digest)
BEGIN
    SELECT RAISE(ABORT, 'a tally revision only moves forward and keeps its digest');
END;
CREATE TRIGGER tally_entries_frozen_insert BEFORE INSERT ON tally_entries
    WHEN (SELECT settled_at FROM tallies WHERE epoch = NEW.epoch) IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'a settled tally is frozen');
END;
CREATE TRIGGER tally_entries_frozen_update BEFORE UPDATE ON tally_entries
    WHEN (SELECT settled_at FROM tallies WHERE epoch = OLD.epoch) IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'a settled tally is frozen');
END;
CREATE TRIGGER tally_entries_frozen_delete BEFORE DELETE ON tally_entries
    WHEN (SELECT settled_at FROM tallies WHERE epoch = OLD.epoch) IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'a settled tally is frozen');
END;
CREATE TRIGGER tally_contributions_frozen_insert BEFORE INSERT ON tally_contributions
    WHEN (SELECT settled_at FROM tallies WHERE epoch = NEW.epoch) IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'a settled tally is frozen');
END;
CREATE TRIGGER tally_contributions_frozen_update BEFORE UPDATE ON tally_contributions
    WHEN (SELECT settled_at FROM tallies WHERE epoch = OLD.epoch) IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'a settled tally is frozen');
END;
CREATE TRIGGER tally_contributions_frozen_delete BEFORE DELETE ON tally_contributions
    WHEN (SELECT settled_at FROM tallies WHERE epoch = OLD.epoch) IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'a settled tally is frozen');
END;

-- The leader schedule of each slot (§8.2); fallbacks in their own table, fallback_count of them.
CREATE TABLE schedules (
    slot INTEGER NOT NULL PRIMARY KEY CHECK (slot >= 0),
    epoch INTEGER NOT NULL CHECK (epoch >= 0),
    tally_digest BLOB CHECK (length(tally_digest) = 32),
    outcome TEXT NOT NULL CHECK (outcome IN ('leader', 'no_leader')),
    reason TEXT NOT NULL CHECK (reason IN ('highest_credits', 'cooldown_skip', 'rotated_tie',
        'tally_pending', 'no_ranked_entity', 'all_in_cooldown')),
    primary_entity BLOB CHECK (
        (length(primary_entity) = 33 AND substr(primary_entity, 1, 1) = X'01')
        OR (length(primary_entity) = 17 AND substr(primary_entity, 1, 1) = X'02')
    ),
    fallback_count INTEGER NOT NULL CHECK (fallback_count BETWEEN 0 AND 5),
    CHECK ((outcome = 'leader') = (primary_entity IS NOT NULL)),
    CHECK ((outcome = 'leader') = (reason IN ('highest_credits', 'cooldown_skip', 'rotated_tie'))),
    CHECK (outcome = 'leader' OR fallback_count = 0)
) STRICT;

CREATE TABLE schedule_fallbacks (
    slot INTEGER NOT NULL REFERENCES schedules (slot),
    position INTEGER NOT NULL CHECK (position BETWEEN 1 AND 5),
    entity BLOB NOT NULL CHECK (
        (length(entity) = 33 AND substr(entity, 1, 1) = X'01')
        OR (length(entity) = 17 AND substr(entity, 1, 1) = X'02')
    ),
    PRIMARY KEY (slot, position),
    UNIQUE (slot, entity)
) STRICT;

-- A fallback lies within its schedule's fallback_count, so none can be added afterwards.
CREATE TRIGGER schedule_fallbacks_within_count BEFORE INSERT ON schedule_fallbacks
    WHEN NEW.position > (SELECT fallback_count FROM schedules WHERE slot = NEW.slot)
BEGIN
    SELECT RAISE(ABORT, 'a fallback beyond the schedule''s fallback_count');
END;

-- What the node recorded for each slot (§8.3); fixed once recorded.
CREATE TABLE slot_results (
    slot INTEGER NOT NULL PRIMARY KEY CHECK (slot >= 0),
    outcome TEXT NOT NULL CHECK (outcome IN ('success', 'fallback_success', 'missed', 'no_leader')),
    winner BLOB CHECK (
        (length(winner) = 33 AND substr(winner, 1, 1) = X'01')
        OR (length(winner) = 17 AND substr(winner, 1, 1) = X'02')
    ),
    attempt INTEGER CHECK (attempt BETWEEN 1 AND 3),
    reason TEXT CHECK (reason IN ('tally_pending', 'no_ranked_entity', 'all_in_cooldown')),
    CHECK ((outcome IN ('success', 'fallback_success')) = (winner IS NOT NULL)),
    CHECK ((outcome = 'fallback_success') = (attempt IS NOT NULL)),
    CHECK ((outcome = 'no_leader') = (reason IS NOT NULL))
) STRICT;

-- Schedules, their fallbacks and results are never updated or deleted once written (§8.4).
CREATE TRIGGER schedules_write_once_update BEFORE UPDATE ON schedules
BEGIN
    SELECT RAISE(ABORT, 'schedules are write-once');
END;
CREATE TRIGGER schedules_write_once_delete BEFORE DELETE ON schedules
BEGIN
    SELECT RAISE(ABORT, 'schedules are write-once');
END;
CREATE TRIGGER schedule_fallbacks_write_once_update BEFORE UPDATE ON schedule_fallbacks
BEGIN
    SELECT RAISE(ABORT, 'schedules are write-once');
END;
CREATE TRIGGER schedule_fallbacks_write_once_delete BEFORE DELETE ON schedule_fallbacks
BEGIN
    SELECT RAISE(ABORT, 'schedules are write-once');
END;
CREATE TRIGGER slot_results_write_once_update BEFORE UPDATE ON slot_results
BEGIN
    SELECT RAISE(ABORT, 'slot results are write-once');
END;
CREATE TRIGGER slot_results_write_once_delete BEFORE DELETE ON slot_results
BEGIN
    SELECT RAISE(ABORT, 'slot results are write-once');
END;
