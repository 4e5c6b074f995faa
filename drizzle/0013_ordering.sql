CREATE TABLE "hookbox"."ordering_keys" (
	"tenant_id" text NOT NULL,
	"key" text NOT NULL,
	"seq" bigint NOT NULL,
	CONSTRAINT "ordering_keys_tenant_id_key_pk" PRIMARY KEY("tenant_id","key")
);
--> statement-breakpoint
ALTER TABLE "hookbox"."deliveries" ADD COLUMN "ordering_key" text;--> statement-breakpoint
ALTER TABLE "hookbox"."deliveries" ADD COLUMN "ordering_seq" bigint;--> statement-breakpoint
ALTER TABLE "hookbox"."events" ADD COLUMN "ordering_key" text;--> statement-breakpoint
ALTER TABLE "hookbox"."events" ADD COLUMN "ordering_seq" bigint;--> statement-breakpoint
ALTER TABLE "hookbox"."subscriptions" ADD COLUMN "ordering_on_dead" text DEFAULT 'block' NOT NULL;--> statement-breakpoint
CREATE INDEX "deliveries_ordering_idx" ON "hookbox"."deliveries" USING btree ("tenant_id","ordering_key","subscription_id","ordering_seq") WHERE "hookbox"."deliveries"."ordering_key" is not null and "hookbox"."deliveries"."status" in ('pending', 'dead');--> statement-breakpoint
CREATE INDEX "events_pending_ordering_idx" ON "hookbox"."events" USING btree ("tenant_id","ordering_key","ordering_seq") WHERE "hookbox"."events"."fanned_out_at" is null and "hookbox"."events"."ordering_key" is not null;--> statement-breakpoint
ALTER TABLE "hookbox"."subscriptions" ADD CONSTRAINT "subscriptions_ordering_on_dead_ck" CHECK ("hookbox"."subscriptions"."ordering_on_dead" in ('block', 'skip'));--> statement-breakpoint
ALTER TABLE "hookbox"."ordering_keys" SET (fillfactor = 70);--> statement-breakpoint
-- hookbox.enqueue, third version: an optional ordering key (the same rules as the
-- TypeScript path, packages/outbox/src/validate.ts validateOrderingKey). Dropped and created
-- again because a parameter is added; every call that worked before still works
-- (positional with 3 or 4 arguments, or named).
--
-- Ordering: the key's row in hookbox.ordering_keys is incremented in the caller's
-- transaction and its row lock is held until that transaction ends, so a second
-- transaction on the same key waits here until the first commits or rolls back, and the
-- sequence numbers follow commit order without gaps. An idempotent repeat (the event
-- exists) gives its number back: this transaction still holds the row lock, so nobody
-- took a number after it.
DROP FUNCTION "hookbox"."enqueue"(text, text, jsonb, text);--> statement-breakpoint
CREATE FUNCTION "hookbox"."enqueue"(
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
  v_seq bigint;
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
    INSERT INTO "hookbox"."ordering_keys" AS k ("tenant_id", "key", "seq")
    VALUES (enqueue.tenant_id, enqueue.ordering_key, 1)
    ON CONFLICT ("tenant_id", "key") DO UPDATE SET "seq" = k."seq" + 1
    RETURNING k."seq" INTO v_seq;
  END IF;

  INSERT INTO "hookbox"."events" AS e ("tenant_id", "type", "payload", "idempotency_key", "ordering_key", "ordering_seq")
  VALUES (enqueue.tenant_id, enqueue.type, enqueue.payload, enqueue.idempotency_key, enqueue.ordering_key, v_seq)
  ON CONFLICT ("tenant_id", "idempotency_key") WHERE "idempotency_key" IS NOT NULL DO NOTHING
  RETURNING e."id" INTO v_id;

  IF v_id IS NULL THEN
    IF v_seq IS NOT NULL THEN
      UPDATE "hookbox"."ordering_keys" k SET "seq" = k."seq" - 1
       WHERE k."tenant_id" = enqueue.tenant_id AND k."key" = enqueue.ordering_key;
    END IF;
    -- Same key enqueued before (or by a concurrent transaction that has now committed).
    SELECT e."id" INTO v_id FROM "hookbox"."events" e
     WHERE e."tenant_id" = enqueue.tenant_id AND e."idempotency_key" = enqueue.idempotency_key;
  END IF;
  RETURN v_id::text;
END
$$;
