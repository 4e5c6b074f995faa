-- hookbox.matches_any: event-type pattern matching in SQL, so the relay's fan-out can
-- claim events, match subscriptions and insert leased deliveries in ONE statement (one
-- round trip, no transaction held across the network). It mirrors matchesEventType in
-- packages/outbox/src/event-types.ts exactly; test/fanout-matching.test.ts checks the two
-- agree. Patterns: `*` (everything), `prefix.*` (types under prefix, not prefix itself),
-- or an exact type.
CREATE OR REPLACE FUNCTION "hookbox"."matches_any"(patterns text[], event_type text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT EXISTS (
    SELECT 1 FROM unnest(patterns) AS p
    WHERE p = '*'
       OR p = event_type
       OR (right(p, 2) = '.*'
           AND char_length(event_type) > char_length(p) - 1
           AND starts_with(event_type, left(p, -1)))
  )
$$;
