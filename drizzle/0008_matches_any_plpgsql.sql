-- hookbox.matches_any in PL/pgSQL, same rules as 0005 (test/fanout-matching.test.ts checks
-- it still agrees with matchesEventType). The SQL version, an EXISTS over unnest, cannot be
-- inlined, so Postgres parsed and planned its body again in every fan-out statement (PG 17
-- does not cache the plans of SQL functions): most of the matching step's time on a batch
-- of a few dozen events. PL/pgSQL evaluates these comparisons as cached simple expressions.
CREATE OR REPLACE FUNCTION "hookbox"."matches_any"(patterns text[], event_type text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
  p text;
BEGIN
  IF patterns IS NULL THEN
    RETURN false;
  END IF;
  FOREACH p IN ARRAY patterns LOOP
    IF p = '*'
       OR p = event_type
       OR (right(p, 2) = '.*'
           AND char_length(event_type) > char_length(p) - 1
           AND starts_with(event_type, left(p, -1))) THEN
      RETURN true;
    END IF;
  END LOOP;
  RETURN false;
END
$$;
