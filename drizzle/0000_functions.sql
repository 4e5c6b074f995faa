-- hookbox: schema and id generator. Custom migration (drizzle-kit generate --custom).
CREATE SCHEMA IF NOT EXISTS "hookbox";
--> statement-breakpoint
-- UUIDv7 (RFC 9562): 48-bit Unix milliseconds, version and variant bits, random rest.
-- Used as the default event id for the SQL enqueue path; the TypeScript path makes the
-- same format in process (packages/outbox/src/id.ts).
CREATE OR REPLACE FUNCTION "hookbox"."uuid_v7"() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
  SELECT encode(
    set_bit(set_bit(
      overlay(uuid_send(gen_random_uuid())
              PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
              FROM 1 FOR 6),
      52, 1), 53, 1),
    'hex')::uuid
$$;
