CREATE TABLE "hookbox"."rate_windows" (
	"subscription_id" uuid PRIMARY KEY NOT NULL,
	"window_start" timestamp with time zone NOT NULL,
	"used" integer DEFAULT 0 NOT NULL
);
--> statement-breakpoint
DROP INDEX "hookbox"."events_pending_idx";--> statement-breakpoint
ALTER TABLE "hookbox"."subscriptions" ADD COLUMN "rate_limit" integer;--> statement-breakpoint
ALTER TABLE "hookbox"."subscriptions" ADD COLUMN "request_timeout_ms" integer;--> statement-breakpoint
ALTER TABLE "hookbox"."subscriptions" ADD COLUMN "retry_schedule_ms" integer[];--> statement-breakpoint
ALTER TABLE "hookbox"."rate_windows" ADD CONSTRAINT "rate_windows_subscription_id_subscriptions_id_fk" FOREIGN KEY ("subscription_id") REFERENCES "hookbox"."subscriptions"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "events_pending_tenant_idx" ON "hookbox"."events" USING btree ("tenant_id","id") WHERE "hookbox"."events"."fanned_out_at" is null;
--> statement-breakpoint
-- A subscription's rate limit, shared by every relay: up to p_want requests allowed now in
-- the current one-second window of the database's clock (row-locked, so two relays never
-- both take the last one). Returns how many were granted and the milliseconds until the
-- window ends. A subscription without a limit (or gone) grants everything.
CREATE OR REPLACE FUNCTION hookbox.take_rate_tokens(p_subscription uuid, p_want integer)
RETURNS TABLE (granted integer, wait_ms integer)
LANGUAGE plpgsql AS $$
DECLARE
  lim integer;
  win timestamptz;
  n integer;
  sec timestamptz;
BEGIN
  SELECT s.rate_limit INTO lim FROM hookbox.subscriptions s WHERE s.id = p_subscription;
  IF lim IS NULL THEN
    granted := p_want;
    wait_ms := 0;
    RETURN NEXT;
    RETURN;
  END IF;
  INSERT INTO hookbox.rate_windows (subscription_id, window_start, used)
  VALUES (p_subscription, '-infinity', 0)
  ON CONFLICT (subscription_id) DO NOTHING;
  SELECT w.window_start, w.used INTO win, n
  FROM hookbox.rate_windows w WHERE w.subscription_id = p_subscription FOR UPDATE;
  -- read after the lock: a relay that waited for it sees the window the other one moved to
  sec := date_trunc('second', clock_timestamp());
  IF win < sec THEN
    win := sec;
    n := 0;
  END IF;
  granted := least(p_want, greatest(0, lim - n));
  UPDATE hookbox.rate_windows SET window_start = win, used = n + granted WHERE subscription_id = p_subscription;
  wait_ms := greatest(1, ceil(extract(epoch FROM win + interval '1 second' - clock_timestamp()) * 1000))::int;
  RETURN NEXT;
END
$$;
