-- Records owned by consensus (consensus.md §7.4, §8.4 and §10): tallies with their entries and
-- pool contributions, leader schedules with their fallbacks, and slot results. Entities are
-- stored as their canonical bytes (0x01 ‖ node id, or 0x02 ‖ pool id). The constraints and
-- triggers are the backstop of the domain rules: schedules and results are write-once, a settled
-- tally is frozen, a stored tally revision never goes back and never changes its digest.
-- Trigger refusals are raised as check violations. Same numbering and semantics as
-- migrations/sqlite/0003_records.sql.

-- The current revision of each epoch's tally; entry_count lets a read notice missing entries.
CREATE TABLE tallies (
    epoch BIGINT NOT NULL PRIMARY KEY CHECK (epoch >= 0),
    window_start BIGINT NOT NULL CHECK (window_start >= 0),
    window_end BIGINT NOT NULL CHECK (window_end >= window_start),
    revision BIGINT NOT NULL CHECK (revision BETWEEN 0 AND 4294967295),
    digest BYTEA NOT NULL CHECK (length(digest) = 32),
    entry_count BIGINT NOT NULL CHECK (entry_count >= 0),
    computed_at BIGINT NOT NULL,
    settled_at BIGINT
);

-- The entries of the current revision, in tally order (`position`): ranked ones first.
CREATE TABLE tally_entries (
    epoch BIGINT NOT NULL REFERENCES tallies (epoch),
    position BIGINT NOT NULL CHECK (position >= 0),
    entity BYTEA NOT NULL CHECK (
        (length(entity) = 33 AND get_byte(entity, 0) = 1)
        OR (length(entity) = 17 AND get_byte(entity, 0) = 2)
    ),
    rank BIGINT CHECK (rank >= 1),
    credits BIGINT NOT NULL CHECK (credits >= 0),
    relay BIGINT NOT NULL CHECK (relay >= 0),
    storage BIGINT NOT NULL CHECK (storage >= 0),
    validation BIGINT NOT NULL CHECK (validation >= 0),
    beacon_slots BIGINT NOT NULL CHECK (beacon_slots >= 0),
    density_ppm BIGINT NOT NULL CHECK (density_ppm BETWEEN 0 AND 1000000),
    -- Ranked iff credits > 0 and density ≥ 200 000 ppm (§7.2); unranked entries carry no rank.
    CHECK (rank IS NULL OR (credits > 0 AND density_ppm >= 200000)),
    PRIMARY KEY (epoch, position),
    UNIQUE (epoch, entity),
    UNIQUE (epoch, rank)
);

-- Each member's own credits attributed to its pool, in the entry's order (`position`).
CREATE TABLE tally_contributions (
    epoch BIGINT NOT NULL,
    entity BYTEA NOT NULL,
    node_id BYTEA NOT NULL CHECK (length(node_id) = 32),
    position BIGINT NOT NULL CHECK (position >= 0),
    credits BIGINT NOT NULL CHECK (credits >= 0),
    PRIMARY KEY (epoch, entity, node_id),
    UNIQUE (epoch, entity, position),
    FOREIGN KEY (epoch, entity) REFERENCES tally_entries (epoch, entity)
);

-- A settled tally is frozen for ever (§7.4); a revision replaces only a lower one of the same
-- epoch, and a revision keeps its digest.
CREATE FUNCTION lucid_tallies_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.settled_at IS NOT NULL THEN
        RAISE EXCEPTION 'a settled tally is frozen' USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    IF NEW.epoch <> OLD.epoch OR NEW.revision < OLD.revision
        OR (NEW.revision = OLD.revision AND NEW.digest <> OLD.digest) THEN
        RAISE EXCEPTION 'a tally revision only moves forward and keeps its digest'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER tallies_guard BEFORE UPDATE OR DELETE ON tallies
    FOR EACH ROW EXECUTE FUNCTION lucid_tallies_guard();

-- Entries and contributions of a settled tally are frozen with it.
CREATE FUNCTION lucid_tally_rows_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    row_epoch BIGINT;
BEGIN
    IF TG_OP = 'INSERT' THEN
        row_epoch := NEW.epoch;
    ELSE
        row_epoch := OLD.epoch;
    END IF;
    IF EXISTS (SELECT 1 FROM tallies WHERE epoch = row_epoch AND settled_at IS NOT NULL) THEN
        RAISE EXCEPTION 'a settled tally is frozen' USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER tally_entries_frozen BEFORE INSERT OR UPDATE OR DELETE ON tally_entries
    FOR EACH ROW EXECUTE FUNCTION lucid_tally_rows_frozen();
CREATE TRIGGER tally_contributions_frozen BEFORE INSERT OR UPDATE OR DELETE ON tally_contributions
    FOR EACH ROW EXECUTE FUNCTION lucid_tally_rows_frozen();

-- The leader schedule of each slot (§8.2); fallbacks in their own table, fallback_count of them.
CREATE TABLE schedules (
    slot BIGINT NOT NULL PRIMARY KEY CHECK (slot >= 0),
    epoch BIGINT NOT NULL CHECK (epoch >= 0),
    tally_digest BYTEA CHECK (length(tally_digest) = 32),
    outcome TEXT NOT NULL CHECK (outcome IN ('leader', 'no_leader')),
    reason TEXT NOT NULL CHECK (reason IN ('highest_credits', 'cooldown_skip', 'rotated_tie',
        'tally_pending', 'no_ranked_entity', 'all_in_cooldown')),
    primary_entity BYTEA CHECK (
        (length(primary_entity) = 33 AND get_byte(primary_entity, 0) = 1)
        OR (length(primary_entity) = 17 AND get_byte(primary_entity, 0) = 2)
    ),
    fallback_count BIGINT NOT NULL CHECK (fallback_count BETWEEN 0 AND 5),
    CHECK ((outcome = 'leader') = (primary_entity IS NOT NULL)),
    CHECK ((outcome = 'leader') = (reason IN ('highest_credits', 'cooldown_skip', 'rotated_tie'))),
    CHECK (outcome = 'leader' OR fallback_count = 0)
);

CREATE TABLE schedule_fallbacks (
    slot BIGINT NOT NULL REFERENCES schedules (slot),
    position BIGINT NOT NULL CHECK (position BETWEEN 1 AND 5),
    entity BYTEA NOT NULL CHECK (
        (length(entity) = 33 AND get_byte(entity, 0) = 1)
        OR (length(entity) = 17 AND get_byte(entity, 0) = 2)
    ),
    PRIMARY KEY (slot, position),
    UNIQUE (slot, entity)
);

-- A fallback lies within its schedule's fallback_count, so none can be added afterwards.
CREATE FUNCTION lucid_fallback_within_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.position > (SELECT fallback_count FROM schedules WHERE slot = NEW.slot) THEN
        RAISE EXCEPTION 'a fallback beyond the schedule''s fallback_count'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER schedule_fallbacks_within_count BEFORE INSERT ON schedule_fallbacks
    FOR EACH ROW EXECUTE FUNCTION lucid_fallback_within_count();

-- What the node recorded for each slot (§8.3); fixed once recorded.
CREATE TABLE slot_results (
    slot BIGINT NOT NULL PRIMARY KEY CHECK (slot >= 0),
    outcome TEXT NOT NULL CHECK (outcome IN ('success', 'fallback_success', 'missed', 'no_leader')),
    winner BYTEA CHECK (
        (length(winner) = 33 AND get_byte(winner, 0) = 1)
        OR (length(winner) = 17 AND get_byte(winner, 0) = 2)
    ),
    attempt BIGINT CHECK (attempt BETWEEN 1 AND 3),
    reason TEXT CHECK (reason IN ('tally_pending', 'no_ranked_entity', 'all_in_cooldown')),
    CHECK ((outcome IN ('success', 'fallback_success')) = (winner IS NOT NULL)),
    CHECK ((outcome = 'fallback_success') = (attempt IS NOT NULL)),
    CHECK ((outcome = 'no_leader') = (reason IS NOT NULL))
);

-- Schedules, their fallbacks and results are never updated or deleted once written (§8.4).
CREATE FUNCTION lucid_write_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are write-once', TG_TABLE_NAME USING ERRCODE = 'check_violation';
END
$$;
CREATE TRIGGER schedules_write_once BEFORE UPDATE OR DELETE ON schedules
    FOR EACH ROW EXECUTE FUNCTION lucid_write_once();
CREATE TRIGGER schedule_fallbacks_write_once BEFORE UPDATE OR DELETE ON schedule_fallbacks
    FOR EACH ROW EXECUTE FUNCTION lucid_write_once();
CREATE TRIGGER slot_results_write_once BEFORE UPDATE OR DELETE ON slot_results
    FOR EACH ROW EXECUTE FUNCTION lucid_write_once();
