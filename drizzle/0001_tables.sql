CREATE SCHEMA IF NOT EXISTS "hookbox";
--> statement-breakpoint
CREATE TABLE "hookbox"."deliveries" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "hookbox"."deliveries_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"event_id" uuid NOT NULL,
	"subscription_id" uuid NOT NULL,
	"tenant_id" text NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"next_attempt_at" timestamp with time zone DEFAULT now() NOT NULL,
	"locked_until" timestamp with time zone,
	"last_status" integer,
	"last_error" text,
	"last_attempt_at" timestamp with time zone,
	"replay_of" bigint,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"completed_at" timestamp with time zone,
	CONSTRAINT "deliveries_status_ck" CHECK ("hookbox"."deliveries"."status" in ('pending', 'succeeded', 'dead', 'cancelled'))
);
--> statement-breakpoint
CREATE TABLE "hookbox"."delivery_attempts" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "hookbox"."delivery_attempts_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"delivery_id" bigint NOT NULL,
	"attempt" integer NOT NULL,
	"started_at" timestamp with time zone NOT NULL,
	"duration_ms" integer NOT NULL,
	"status_code" integer,
	"error_class" text,
	"error_message" text,
	"response_excerpt" text
);
--> statement-breakpoint
CREATE TABLE "hookbox"."events" (
	"id" uuid PRIMARY KEY DEFAULT hookbox.uuid_v7() NOT NULL,
	"tenant_id" text NOT NULL,
	"type" text NOT NULL,
	"payload" jsonb NOT NULL,
	"idempotency_key" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"fanned_out_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "hookbox"."subscriptions" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" text NOT NULL,
	"url" text NOT NULL,
	"event_types" text[] NOT NULL,
	"description" text,
	"secret" text NOT NULL,
	"previous_secret" text,
	"previous_secret_expires_at" timestamp with time zone,
	"headers" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"active" boolean DEFAULT true NOT NULL,
	"disabled_reason" text,
	"disabled_at" timestamp with time zone,
	"max_in_flight" integer,
	"failure_streak" integer DEFAULT 0 NOT NULL,
	"last_success_at" timestamp with time zone,
	"last_failure_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "hookbox"."deliveries" ADD CONSTRAINT "deliveries_event_id_events_id_fk" FOREIGN KEY ("event_id") REFERENCES "hookbox"."events"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "hookbox"."deliveries" ADD CONSTRAINT "deliveries_subscription_id_subscriptions_id_fk" FOREIGN KEY ("subscription_id") REFERENCES "hookbox"."subscriptions"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "hookbox"."delivery_attempts" ADD CONSTRAINT "delivery_attempts_delivery_id_deliveries_id_fk" FOREIGN KEY ("delivery_id") REFERENCES "hookbox"."deliveries"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "deliveries_due_idx" ON "hookbox"."deliveries" USING btree ("next_attempt_at") WHERE "hookbox"."deliveries"."status" = 'pending';--> statement-breakpoint
CREATE INDEX "deliveries_event_idx" ON "hookbox"."deliveries" USING btree ("event_id");--> statement-breakpoint
CREATE INDEX "deliveries_subscription_id_idx" ON "hookbox"."deliveries" USING btree ("subscription_id","id");--> statement-breakpoint
CREATE INDEX "deliveries_tenant_id_idx" ON "hookbox"."deliveries" USING btree ("tenant_id","id");--> statement-breakpoint
CREATE INDEX "delivery_attempts_delivery_idx" ON "hookbox"."delivery_attempts" USING btree ("delivery_id");--> statement-breakpoint
CREATE UNIQUE INDEX "events_tenant_idempotency_key_uq" ON "hookbox"."events" USING btree ("tenant_id","idempotency_key") WHERE "hookbox"."events"."idempotency_key" is not null;--> statement-breakpoint
CREATE INDEX "events_pending_idx" ON "hookbox"."events" USING btree ("id") WHERE "hookbox"."events"."fanned_out_at" is null;--> statement-breakpoint
CREATE INDEX "events_tenant_id_idx" ON "hookbox"."events" USING btree ("tenant_id","id");--> statement-breakpoint
CREATE INDEX "subscriptions_tenant_active_idx" ON "hookbox"."subscriptions" USING btree ("tenant_id") WHERE "hookbox"."subscriptions"."active";--> statement-breakpoint
CREATE INDEX "subscriptions_tenant_id_idx" ON "hookbox"."subscriptions" USING btree ("tenant_id","id");