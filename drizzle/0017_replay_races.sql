-- Replays, retries and cleanup racing each other (found in review, reproduced):
--
-- 1. Cleanup deleted an old event whose only delivery a replay had just committed: its
--    "no delivery left" check ran on the statement's snapshot, taken before the replay
--    committed, and the ON DELETE CASCADE then removed the new pending delivery.
-- 2. Two replays of one event to one endpoint (or a retry and a replay) each found no
--    pending delivery on their own snapshots and both inserted one; for an ordered event
--    both were heads of their key and went out at once.
--
-- A VOLATILE function takes a fresh snapshot for each query it runs (READ COMMITTED), so a
-- check made through one, after the statement holds its lock, sees what others committed
-- since the statement began. plpgsql, so the planner never inlines it into the caller.

-- Whether an event has any delivery (cleanup, after it has locked the event: a replay that
-- commits later waits for that lock, then finds the event gone).
CREATE OR REPLACE FUNCTION "hookbox"."event_has_deliveries"(event uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  RETURN EXISTS (SELECT 1 FROM hookbox.deliveries d WHERE d.event_id = event);
END
$$;
--> statement-breakpoint
-- Whether a delivery of `event` to `subscription` in one of `statuses` exists, newer than
-- `after_id` and other than `except_id` (each ignored when null). Replays, retries and
-- recovery call it holding the event's advisory lock (classid 1751868016, objid
-- hashtext(event id)), which they all take.
CREATE OR REPLACE FUNCTION "hookbox"."delivery_exists"(event uuid, subscription uuid, statuses text[], after_id bigint, except_id bigint)
RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  RETURN EXISTS (
    SELECT 1 FROM hookbox.deliveries d
    WHERE d.event_id = event AND d.subscription_id = subscription AND d.status = ANY (statuses)
      AND (after_id IS NULL OR d.id > after_id) AND (except_id IS NULL OR d.id <> except_id)
  );
END
$$;
