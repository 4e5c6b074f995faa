-- The fan-out's per-tenant pick of pending events orders by (tenant_id, fanned_out_at, id)
-- (fanned_out_at is null in every row it reads), an order only this partial index gives.
-- With (tenant_id, id) the plain events_tenant_id_idx gave the same order and tied with it
-- on cost while the statistics still said most events were pending (after a burst): the
-- cached generic plan then walked every fanned-out event of each tenant in the batch
-- (~340 buffers a tenant after a 20,000-event drain), instead of the few pending ones.
DROP INDEX "hookbox"."events_pending_tenant_idx";--> statement-breakpoint
CREATE INDEX "events_pending_tenant_idx" ON "hookbox"."events" USING btree ("tenant_id","fanned_out_at","id") WHERE "hookbox"."events"."fanned_out_at" is null;
