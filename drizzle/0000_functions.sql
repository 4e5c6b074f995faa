-- hookbox: schema and id generator. Custom migration (drizzle-kit generate --custom).
CREATE SCHEMA IF NOT EXISTS "hookbox";
--> statement-breakpoint
-- UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then 12 bits of sub-millisecond time
-- (RFC 9562 §6.2 method 3) so ids from one session sort in creation order, then random
-- bits. Used as the default event id for the SQL enqueue path; the TypeScript path makes
-- the same format in process (packages/outbox/src/id.ts).
CREATE OR REPLACE FUNCTION "hookbox"."uuid_v7"() RETURNS uuid
LANGUAGE plpgsql VOLATILE PARALLEL SAFE AS $$
DECLARE
  v_us bigint := floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint;
  v_frac int := ((v_us % 1000) * 4096 / 1000)::int;
  v_b bytea := uuid_send(gen_random_uuid());
BEGIN
  v_b := overlay(v_b PLACING substring(int8send(v_us / 1000) FROM 3) FROM 1 FOR 6);
  v_b := set_byte(v_b, 6, 112 | (v_frac >> 8));
  v_b := set_byte(v_b, 7, v_frac & 255);
  v_b := set_byte(v_b, 8, (get_byte(v_b, 8) & 63) | 128);
  RETURN encode(v_b, 'hex')::uuid;
END
$$;
