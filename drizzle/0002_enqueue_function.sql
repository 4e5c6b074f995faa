-- hookbox.enqueue: the outbox write for services in any language, inside their own
-- transaction (as graphile-worker's add_job). Same rules as the TypeScript path
-- (packages/outbox/src/validate.ts); a test checks the two agree.
-- The payload limit is read from the setting hookbox.max_payload_bytes (default 262144
-- bytes of compact JSON text, as JSON.stringify writes it), e.g.
-- ALTER DATABASE app SET hookbox.max_payload_bytes = '1048576'.

-- Bytes of `j` as compact JSON: jsonb's text form puts a space after every ':' and ','
-- between members and elements; subtract those so both paths measure the same thing.
CREATE OR REPLACE FUNCTION "hookbox"."json_compact_bytes"(j jsonb) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT octet_length(j::text) - coalesce((
    SELECT sum(CASE jsonb_typeof(v)
                 WHEN 'object' THEN 2 * (SELECT count(*) FROM jsonb_object_keys(v)) - 1
                 WHEN 'array' THEN jsonb_array_length(v) - 1
               END)
    FROM jsonb_path_query(j, 'strict $.**') AS v
    WHERE jsonb_typeof(v) IN ('object', 'array') AND v NOT IN ('{}'::jsonb, '[]'::jsonb)
  ), 0)
$$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "hookbox"."enqueue"(
  tenant_id text,
  type text,
  payload jsonb,
  idempotency_key text DEFAULT NULL
) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
  v_id uuid;
  v_max_bytes bigint := coalesce(nullif(current_setting('hookbox.max_payload_bytes', true), '')::bigint, 262144);
  v_bytes bigint;
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
  v_bytes := hookbox.json_compact_bytes(payload);
  IF v_bytes > v_max_bytes THEN
    RAISE EXCEPTION 'hookbox: payload must be at most % bytes of JSON (got %)', v_max_bytes, v_bytes USING ERRCODE = '22023';
  END IF;
  IF idempotency_key IS NOT NULL AND (idempotency_key = '' OR char_length(idempotency_key) > 255) THEN
    RAISE EXCEPTION 'hookbox: idempotencyKey must be 1 to 255 characters' USING ERRCODE = '22023';
  END IF;

  INSERT INTO "hookbox"."events" AS e ("tenant_id", "type", "payload", "idempotency_key")
  VALUES (enqueue.tenant_id, enqueue.type, enqueue.payload, enqueue.idempotency_key)
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
