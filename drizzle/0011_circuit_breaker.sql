ALTER TABLE "hookbox"."subscriptions" ADD COLUMN "failing_since" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "hookbox"."subscriptions" ADD COLUMN "circuit_open_until" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "hookbox"."subscriptions" ADD COLUMN "circuit_cooldown_ms" integer;--> statement-breakpoint
ALTER TABLE "hookbox"."subscriptions" ADD COLUMN "probe_until" timestamp with time zone;--> statement-breakpoint
CREATE INDEX "subscriptions_circuit_idx" ON "hookbox"."subscriptions" USING btree ("circuit_open_until") WHERE "hookbox"."subscriptions"."circuit_open_until" is not null;