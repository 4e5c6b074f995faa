-- Operational event `hookbox.ordering.blocked` (docs/operational-events.md, docs/ordering.md):
-- an ordered delivery went dead while its subscription's policy is `block`, so the key's
-- later deliveries to that subscription wait until it is replayed. Emitted by the same
-- trigger as `hookbox.delivery.dead` (one trigger call per dead delivery, in the statement
-- that wrote the outcome), after it. Operational events carry no ordering key, so this
-- cannot loop; fan-out never delivers it to the subscription it is about
-- (data.subscriptionId), like every operational event.
CREATE OR REPLACE FUNCTION "hookbox"."delivery_dead_event"() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  ev_type text;
  sub_url text;
  sub_policy text;
BEGIN
  SELECT type INTO ev_type FROM hookbox.events WHERE id = NEW.event_id;
  IF ev_type IS NULL OR ev_type = 'hookbox.delivery.dead' THEN
    RETURN NULL;
  END IF;
  SELECT url, ordering_on_dead INTO sub_url, sub_policy FROM hookbox.subscriptions WHERE id = NEW.subscription_id;
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
  IF NEW.ordering_key IS NOT NULL AND sub_policy = 'block' THEN
    PERFORM hookbox.emit_operational_event(NEW.tenant_id, 'hookbox.ordering.blocked', jsonb_build_object(
      'subscriptionId', NEW.subscription_id,
      'tenantId', NEW.tenant_id,
      'url', sub_url,
      'orderingKey', NEW.ordering_key,
      'orderingSeq', NEW.ordering_seq,
      'deliveryId', NEW.id,
      'eventId', NEW.event_id,
      'eventType', ev_type));
  END IF;
  RETURN NULL;
END
$$;
