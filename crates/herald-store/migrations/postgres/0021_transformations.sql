-- Transformations (issue 25): an endpoint's JavaScript handler, as JSON
-- `{"code", "enabled", "updatedAt"}`, and its variables, sealed like the endpoint's other
-- secrets. Columns of `endpoints`, so the worker reads them in its one dispatch query and any
-- change to them reaches it the way changes to the endpoint do (the `herald_changed` trigger
-- of migration 0013 announces them).
ALTER TABLE endpoints ADD COLUMN transformation TEXT;
ALTER TABLE endpoints ADD COLUMN transformation_variables BYTEA;
