-- Least-privilege roles for hookbox (docs/operations.md, "Database roles"); test/roles.test.ts
-- runs this file as written. Run it as the owner of schema hookbox after `hookbox migrate`,
-- and again after each upgrade (a release can add tables). Put your role names in place of
-- hookbox_relay and app_service.

-- The relay (and `hookbox serve`, and operators' CLI): every hookbox table and sequence.
-- Migrations are not its job: they run as the schema owner.
GRANT USAGE ON SCHEMA hookbox TO hookbox_relay;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA hookbox TO hookbox_relay;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA hookbox TO hookbox_relay;

-- A service that only enqueues, through the library or the SQL function hookbox.enqueue
-- (which runs with the caller's rights, so both paths need the same): it inserts events,
-- draws their position, and reads an event back for an idempotent repeat. It cannot read
-- subscriptions (their signing secrets) or the delivery log.
GRANT USAGE ON SCHEMA hookbox TO app_service;
GRANT SELECT, INSERT ON hookbox.events TO app_service;
GRANT USAGE ON SEQUENCE hookbox.events_pos_seq TO app_service;
