-- orch8 schema for PostgreSQL, version 8: rate limits hand out reservations.
--
-- A use of a key is given a place in the key's admission log: now when the
-- window has room, else the earliest instant after every place already given
-- at which it will (domain/rate_limits.py, `RateLimit.keep` and `reserve`).
-- The step waits for that instant and keeps its place on its node
-- (`reserved_at`), so it is not counted a second time. The log is spaced by window + grace, and a place
-- must be used within the grace after its instant (a twentieth of the window,
-- at most 25 ms), so uses never start more than max_count to a window.

ALTER TABLE execution_tree ADD COLUMN reserved_at TIMESTAMPTZ;

DROP FUNCTION orch8_rate_limit_acquire(TEXT, TEXT, TIMESTAMPTZ, INTEGER);

-- The place of one use asking at p_now: the held place when it can still be
-- used, else a new one, recorded (a lapsed held place, never used, is removed
-- from the log first). No row when the key has no limit. One call is
-- one round trip and one short transaction; the limit row's lock (FOR UPDATE)
-- serialises the uses of a key across every connection, and each later
-- statement of a PL/pgSQL function takes a fresh snapshot, so once the lock is
-- held the log reads include every place the previous holder recorded.
CREATE FUNCTION orch8_rate_limit_reserve(
    p_tenant TEXT, p_key TEXT, p_now TIMESTAMPTZ, p_kept INTEGER, p_held TIMESTAMPTZ
) RETURNS TABLE (reserved_for TIMESTAMPTZ, start_by TIMESTAMPTZ)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_max     INTEGER;
    v_window  INTERVAL;
    v_grace   INTERVAL;
    v_newest  TIMESTAMPTZ;
    v_full    TIMESTAMPTZ;
    v_at      TIMESTAMPTZ;
BEGIN
    SELECT l.max_count,
           l.window_us * INTERVAL '1 microsecond',
           LEAST(l.window_us / 20, 25000) * INTERVAL '1 microsecond'
    INTO v_max, v_window, v_grace
    FROM rate_limits AS l
    WHERE l.tenant_id = p_tenant AND l.resource_key = p_key
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF p_held IS NOT NULL AND p_now <= p_held + v_grace THEN
        RETURN QUERY SELECT p_held, p_held + v_grace;
        RETURN;
    END IF;
    IF p_held IS NOT NULL THEN
        -- Lapsed, so never used: given back (one entry of that instant).
        DELETE FROM rate_limit_admissions AS a
        WHERE a.ctid = (
            SELECT b.ctid FROM rate_limit_admissions AS b
            WHERE b.tenant_id = p_tenant AND b.resource_key = p_key AND b.admitted_at = p_held
            LIMIT 1
        );
    END IF;
    SELECT max(a.admitted_at) INTO v_newest
    FROM rate_limit_admissions AS a
    WHERE a.tenant_id = p_tenant AND a.resource_key = p_key;
    SELECT a.admitted_at INTO v_full
    FROM rate_limit_admissions AS a
    WHERE a.tenant_id = p_tenant AND a.resource_key = p_key
    ORDER BY a.admitted_at DESC
    OFFSET v_max - 1 LIMIT 1;
    -- GREATEST skips NULLs: no newest entry, or fewer than max_count in the log.
    v_at := GREATEST(p_now, v_newest, v_full + v_window + v_grace);
    INSERT INTO rate_limit_admissions (tenant_id, resource_key, admitted_at)
    VALUES (p_tenant, p_key, v_at);
    DELETE FROM rate_limit_admissions AS a
    WHERE a.tenant_id = p_tenant AND a.resource_key = p_key
      AND a.admitted_at <= p_now - p_kept * v_window;
    RETURN QUERY SELECT v_at, v_at + v_grace;
END
$$;

-- The places of several uses asking at p_now, in order (one per entry of
-- p_helds, each as orch8_rate_limit_reserve gives it, after the ones before it):
-- one round trip for a whole queue of asks. No rows when the key has no limit.
CREATE FUNCTION orch8_rate_limit_reserve_many(
    p_tenant TEXT, p_key TEXT, p_now TIMESTAMPTZ, p_kept INTEGER, p_helds TIMESTAMPTZ[]
) RETURNS TABLE (ord INTEGER, reserved_for TIMESTAMPTZ, start_by TIMESTAMPTZ)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_place RECORD;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_helds, 1), 0) LOOP
        SELECT * INTO v_place
        FROM orch8_rate_limit_reserve(p_tenant, p_key, p_now, p_kept, p_helds[i]);
        IF NOT FOUND THEN
            RETURN;
        END IF;
        ord := i;
        reserved_for := v_place.reserved_for;
        start_by := v_place.start_by;
        RETURN NEXT;
    END LOOP;
END
$$;
