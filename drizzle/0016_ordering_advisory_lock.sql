-- Ordered delivery, cheaper at enqueue (issue #16, docs/ordering.md "The guarantee").
--
-- Before: enqueue numbered an ordered event by incrementing its key's row in
-- hookbox.ordering_keys, holding that row lock to commit (an extra tuple and its WAL per
-- transaction). Now: enqueue takes the key's transaction-level advisory lock
-- pg_advisory_xact_lock(1751868015, hashtext(tenant_id || E'\x1f' || ordering_key)) and only
-- then draws events.pos from events_pos_seq. The lock is held to commit, so a later
-- transaction on the key draws a higher pos only after the earlier one committed: per key,
-- pos order is commit order. The relay's fan-out numbers ordering_seq (gapless, from
-- ordering_keys) in pos order as it fans events out; rollbacks and idempotent repeats
-- leave only gaps in pos, never in ordering_seq.
--
-- events_pos_seq has CACHE 1 (the default): with per-session cached ranges a session
-- could draw a lower number after another session's later commit.
--
-- No table rewrite: the column is added without a default (existing rows keep a null pos:
-- the fan-out takes them first, NULLS FIRST), then given its default for new rows.
-- events_pending_tenant_idx becomes (tenant_id, pos): the fan-out's pick in pos order, and
-- its deferral probe (a tenant's pending events below a pos, bounded by it); only this
-- index gives that order, which keeps cached plans on it (see migration 0015).
-- events_pending_ordering_idx is replaced by events_pending_numbered_idx: an ordered event
-- has no number until fan-out, so only events numbered before this migration can be
-- pending with one. No index is added that every ordered enqueue would pay for. Events
-- numbered under the old scheme and still pending keep their ordering_seq;
-- events_pending_numbered_idx (only such rows) lets the relay's head check wait for them.
-- events_pending_numbered_idx is created last: where a cached generic plan (made while
-- the table was empty) finds several indexes equally cheap, it takes the one created last,
-- and the head check must probe this one, not every pending event of the tenant.
CREATE SEQUENCE "hookbox"."events_pos_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1;--> statement-breakpoint
ALTER TABLE "hookbox"."events" ADD COLUMN "pos" bigint;--> statement-breakpoint
ALTER TABLE "hookbox"."events" ALTER COLUMN "pos" SET DEFAULT nextval('hookbox.events_pos_seq'::regclass);--> statement-breakpoint
DROP INDEX "hookbox"."events_pending_ordering_idx";--> statement-breakpoint
DROP INDEX "hookbox"."events_pending_tenant_idx";--> statement-breakpoint
CREATE INDEX "events_pending_tenant_idx" ON "hookbox"."events" USING btree ("tenant_id","pos" NULLS FIRST) WHERE "hookbox"."events"."fanned_out_at" is null;--> statement-breakpoint
CREATE INDEX "events_pending_numbered_idx" ON "hookbox"."events" USING btree ("tenant_id","ordering_key","ordering_seq") WHERE "hookbox"."events"."fanned_out_at" is null and "hookbox"."events"."ordering_seq" is not null;--> statement-breakpoint
-- hookbox.enqueue, fourth version: same signature and validation; an ordered event takes
-- its key's advisory lock (above) instead of a number.
CREATE OR REPLACE FUNCTION "hookbox"."enqueue"(
  tenant_id text,
  type text,
  payload jsonb,
  idempotency_key text DEFAULT NULL,
  ordering_key text DEFAULT NULL
) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
  v_id uuid;
  v_max_bytes bigint := coalesce(nullif(current_setting('hookbox.max_payload_bytes', true), '')::bigint, 262144);
  v_bytes bigint;
  v_text text;
BEGIN
  IF tenant_id IS NULL OR tenant_id ~ '^[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*$' THEN
    RAISE EXCEPTION 'hookbox: tenantId is required and must not be empty' USING ERRCODE = '22023';
  END IF;
  IF char_length(tenant_id) > 255 THEN
    RAISE EXCEPTION 'hookbox: tenantId must be at most 255 characters' USING ERRCODE = '22023';
  END IF;
  IF type IS NULL OR type !~ '^[a-z0-9_-]+(\.[a-z0-9_-]+)*$' THEN
    RAISE EXCEPTION 'hookbox: type must be dot-separated lowercase segments of a-z, 0-9, _ or - (e.g. message.new)' USING ERRCODE = '22023';
  END IF;
  IF char_length(type) > 255 THEN
    RAISE EXCEPTION 'hookbox: type must be at most 255 characters' USING ERRCODE = '22023';
  END IF;
  IF payload IS NULL THEN
    RAISE EXCEPTION 'hookbox: payload is required' USING ERRCODE = '22023';
  END IF;
  IF jsonb_path_exists(payload, 'strict $.**{65}') THEN
    RAISE EXCEPTION 'hookbox: payload must not nest values more than 64 levels below the payload (objects and arrays)' USING ERRCODE = '22023';
  END IF;
  v_text := payload::text;
  IF octet_length(v_text) > v_max_bytes THEN
    v_bytes := octet_length(replace(replace(v_text, ', ', ','), ': ', ':'));
    IF v_bytes > v_max_bytes THEN
      RAISE EXCEPTION 'hookbox: payload must be at most % bytes of JSON (got % or more)', v_max_bytes, v_bytes USING ERRCODE = '22023';
    END IF;
    v_bytes := octet_length(v_text) - (
      SELECT octet_length(t) - octet_length(replace(t, ' ', ''))
      FROM regexp_replace(v_text, '"(?:[^"\\]|\\.)*"', '', 'g') AS t);
    IF v_bytes > v_max_bytes THEN
      RAISE EXCEPTION 'hookbox: payload must be at most % bytes of JSON (got %)', v_max_bytes, v_bytes USING ERRCODE = '22023';
    END IF;
  END IF;
  IF idempotency_key IS NOT NULL AND (idempotency_key = '' OR char_length(idempotency_key) > 255) THEN
    RAISE EXCEPTION 'hookbox: idempotencyKey must be 1 to 255 characters' USING ERRCODE = '22023';
  END IF;
  IF ordering_key IS NOT NULL AND (ordering_key = '' OR char_length(ordering_key) > 255) THEN
    RAISE EXCEPTION 'hookbox: orderingKey must be 1 to 255 characters' USING ERRCODE = '22023';
  END IF;
  IF ordering_key ~ '[\u0001-\u001f\u007f-\u009f]' THEN
    RAISE EXCEPTION 'hookbox: orderingKey must not contain control characters' USING ERRCODE = '22023';
  END IF;

  IF ordering_key IS NOT NULL THEN
    -- Held until this transaction ends; events.pos (the column default) is drawn after it.
    PERFORM pg_advisory_xact_lock(1751868015, hashtext(enqueue.tenant_id || E'\x1f' || enqueue.ordering_key));
  END IF;

  INSERT INTO "hookbox"."events" AS e ("tenant_id", "type", "payload", "idempotency_key", "ordering_key")
  VALUES (enqueue.tenant_id, enqueue.type, enqueue.payload, enqueue.idempotency_key, enqueue.ordering_key)
  ON CONFLICT ("tenant_id", "idempotency_key") WHERE "idempotency_key" IS NOT NULL DO NOTHING
  RETURNING e."id" INTO v_id;

  IF v_id IS NULL THEN
    -- Same key enqueued before (or by a concurrent transaction that has now committed).
    SELECT e."id" INTO v_id FROM "hookbox"."events" e
     WHERE e."tenant_id" = enqueue.tenant_id AND e."idempotency_key" = enqueue.idempotency_key;
  END IF;
  RETURN v_id::text;
END
$$;
