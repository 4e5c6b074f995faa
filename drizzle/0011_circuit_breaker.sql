ALTER TABLE "hookbox"."subscriptions" ADD COLUMN "failing_since" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "hookbox"."subscriptions" ADD COLUMN "circuit_open_until" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "hookbox"."subscriptions" ADD COLUMN "circuit_cooldown_ms" integer;--> statement-breakpoint
ALTER TABLE "hookbox"."subscriptions" ADD COLUMN "probe_until" timestamp with time zone;--> statement-breakpoint
CREATE INDEX "subscriptions_circuit_idx" ON "hookbox"."subscriptions" USING btree ("circuit_open_until") WHERE "hookbox"."subscriptions"."circuit_open_until" is not null;--> statement-breakpoint
-- Operational events (docs/operational-events.md): `*` and other patterns that do not name
-- them do not match `hookbox.*` types; only `hookbox.*`, a narrower `hookbox.x.*` or the
-- exact type do. Same rule as matchesEventType (test/fanout-matching.test.ts).
CREATE OR REPLACE FUNCTION "hookbox"."matches_any"(patterns text[], event_type text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
  p text;
BEGIN
  IF patterns IS NULL THEN
    RETURN false;
  END IF;
  FOREACH p IN ARRAY patterns LOOP
    IF (p = '*' AND NOT starts_with(event_type, 'hookbox.'))
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
--> statement-breakpoint
-- Enqueues one operational event in `tenant`, and a copy in the operator tenant when the
-- database names one (ALTER DATABASE … SET hookbox.operator_tenant = 'ops'); the payload
-- carries the tenant id either way. Runs inside the statement that changed the state.
CREATE OR REPLACE FUNCTION "hookbox"."emit_operational_event"(tenant text, event_type text, payload jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  operator_tenant text := nullif(current_setting('hookbox.operator_tenant', true), '');
BEGIN
  INSERT INTO hookbox.events (tenant_id, type, payload) VALUES (tenant, event_type, payload);
  IF operator_tenant IS NOT NULL AND operator_tenant <> tenant THEN
    INSERT INTO hookbox.events (tenant_id, type, payload) VALUES (operator_tenant, event_type, payload);
  END IF;
END
$$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "hookbox"."subscription_operational_events"() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  base jsonb := jsonb_build_object('subscriptionId', NEW.id, 'tenantId', NEW.tenant_id, 'url', NEW.url);
BEGIN
  IF OLD.active AND NOT NEW.active THEN
    PERFORM hookbox.emit_operational_event(NEW.tenant_id, 'hookbox.subscription.disabled', base || jsonb_build_object(
      'reason', NEW.disabled_reason,
      'automatic', coalesce(NEW.disabled_reason LIKE 'auto-disabled:%', false),
      'disabledAt', to_char(coalesce(NEW.disabled_at, now()) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
      'failingSince', to_char(NEW.failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')));
  ELSIF NOT OLD.active AND NEW.active THEN
    PERFORM hookbox.emit_operational_event(NEW.tenant_id, 'hookbox.subscription.enabled', base);
  ELSIF NEW.active AND OLD.circuit_open_until IS NULL AND NEW.circuit_open_until IS NOT NULL THEN
    PERFORM hookbox.emit_operational_event(NEW.tenant_id, 'hookbox.circuit.opened', base || jsonb_build_object(
      'failureStreak', NEW.failure_streak,
      'openUntil', to_char(NEW.circuit_open_until AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
      'cooldownMs', NEW.circuit_cooldown_ms));
  ELSIF NEW.active AND OLD.circuit_open_until IS NOT NULL AND NEW.circuit_open_until IS NULL THEN
    PERFORM hookbox.emit_operational_event(NEW.tenant_id, 'hookbox.circuit.closed', base);
  END IF;
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "subscriptions_operational_events"
AFTER UPDATE OF active, circuit_open_until ON "hookbox"."subscriptions"
FOR EACH ROW
WHEN (OLD.active IS DISTINCT FROM NEW.active
      OR (OLD.circuit_open_until IS NULL) IS DISTINCT FROM (NEW.circuit_open_until IS NULL))
EXECUTE FUNCTION "hookbox"."subscription_operational_events"();
--> statement-breakpoint
-- A delivery gone dead, except one of a `hookbox.delivery.dead` event itself (no loops).
-- The WHEN clause keeps the trigger off every other outcome write.
CREATE OR REPLACE FUNCTION "hookbox"."delivery_dead_event"() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  ev_type text;
  sub_url text;
BEGIN
  SELECT type INTO ev_type FROM hookbox.events WHERE id = NEW.event_id;
  IF ev_type IS NULL OR ev_type = 'hookbox.delivery.dead' THEN
    RETURN NULL;
  END IF;
  SELECT url INTO sub_url FROM hookbox.subscriptions WHERE id = NEW.subscription_id;
  PERFORM hookbox.emit_operational_event(NEW.tenant_id, 'hookbox.delivery.dead', jsonb_build_object(
    'deliveryId', NEW.id,
    'eventId', NEW.event_id,
    'eventType', ev_type,
    'subscriptionId', NEW.subscription_id,
    'tenantId', NEW.tenant_id,
    'url', sub_url,
    'attempts', NEW.attempts,
    'lastStatus', NEW.last_status,
    'lastError', NEW.last_error));
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "deliveries_dead_event"
AFTER UPDATE OF status ON "hookbox"."deliveries"
FOR EACH ROW
WHEN (NEW.status = 'dead' AND OLD.status IS DISTINCT FROM 'dead')
EXECUTE FUNCTION "hookbox"."delivery_dead_event"();
