-- The delivery log without a foreign key to deliveries. The check it made (a FOR KEY SHARE
-- row lock on the delivery, for every attempt logged) cost more than the rest of the
-- relay's outcome write, on a row that same statement had just updated. The relay logs an
-- attempt only for a delivery it holds locked, and this trigger keeps the other half of
-- the guarantee: a delivery's attempts go with it, however it is deleted (retention, a
-- deleted subscription or event cascading), once per statement, not once per row.
ALTER TABLE "hookbox"."delivery_attempts" DROP CONSTRAINT "delivery_attempts_delivery_id_deliveries_id_fk";
--> statement-breakpoint
CREATE FUNCTION "hookbox"."delete_delivery_attempts"() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM hookbox.delivery_attempts a USING gone g WHERE a.delivery_id = g.id;
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "deliveries_delete_attempts" AFTER DELETE ON "hookbox"."deliveries"
REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION "hookbox"."delete_delivery_attempts"();
