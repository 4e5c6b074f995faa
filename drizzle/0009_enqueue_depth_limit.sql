-- hookbox.enqueue, second version: the same rules as the TypeScript path
-- (packages/outbox/src/validate.ts), now with its depth limit, and a size check whose cost
-- is proportional to the payload. 0002's size check walked every node with jsonpath
-- `$.**`, copying each subtree once per ancestor: a payload 9,000 levels deep cost seconds
-- of CPU inside the caller's transaction.
--
-- - Depth: no value more than 64 levels below the payload's root (MAX_PAYLOAD_DEPTH; in
--   {"a":{"b":[1]}} the 1 is three levels down). jsonpath `strict $.**{65}` walks only
--   the first 65 levels and stops at the first value it finds there, so a deeper payload
--   is refused after a bounded walk.
-- - Size: the payload limit (setting hookbox.max_payload_bytes, default 262144) counts
--   compact JSON text, as JSON.stringify writes it. jsonb's text form adds one space after
--   every ':' and ',' outside strings, so it is never shorter: when the text form fits,
--   the payload fits. Closing up every ', ' and ': ' (inside strings too) gives a lower
--   bound: when that does not fit, the payload does not. Only in between is it measured
--   exactly, by counting the spaces left once string literals are removed (one linear
--   regexp pass).

-- Bytes of `j` as compact JSON. Linear in the size of `j`.
CREATE OR REPLACE FUNCTION "hookbox"."json_compact_bytes"(j jsonb) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT octet_length(t) - (octet_length(s) - octet_length(replace(s, ' ', '')))
  FROM (SELECT j::text AS t) AS x,
       LATERAL (SELECT regexp_replace(x.t, '"(?:[^"\\]|\\.)*"', '', 'g') AS s) AS y
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
