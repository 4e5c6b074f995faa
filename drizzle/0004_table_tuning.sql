-- Storage settings for the hot tables. Custom migration (drizzle-kit generate --custom).
-- events and deliveries churn: every event is updated once when fanned out and every
-- delivery at least once when its outcome is recorded. Vacuum them after 2 % of rows
-- change, not the default 20 %, so dead entries at the head of the pending indexes (which
-- every claim scans) are cleared while the tables are large.
ALTER TABLE "hookbox"."events" SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.05);
--> statement-breakpoint
ALTER TABLE "hookbox"."deliveries" SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.05);
--> statement-breakpoint
-- Each outcome batch updates its subscriptions' failure streak and last success/failure,
-- none of them indexed: free space on the page keeps those updates HOT.
ALTER TABLE "hookbox"."subscriptions" SET (fillfactor = 70);
