-- From any language or tool that speaks SQL: the event commits or rolls back with the
-- business row. Run: psql "$DATABASE_URL" -f docs/examples/enqueue.sql
CREATE TABLE IF NOT EXISTS orders (id serial PRIMARY KEY, customer text NOT NULL, total_cents int NOT NULL);

BEGIN;
WITH o AS (
  INSERT INTO orders (customer, total_cents) VALUES ('edsger', 314) RETURNING id
)
SELECT hookbox.enqueue(
  'acme',                                         -- tenant
  'order.created',                                -- event type
  jsonb_build_object('orderId', o.id),            -- payload
  'order.created:' || o.id                        -- idempotency key (optional)
) AS event_id
FROM o;
COMMIT;
