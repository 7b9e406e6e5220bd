-- Every change to an endpoint or an application is announced on `herald_changed`, at commit:
-- each node's worker keeps what it loaded of an endpoint (its `dispatch_version`) until such a
-- notice arrives, instead of reading the endpoint, its secrets and its application for every
-- wave of attempts. A row trigger, so that an UPDATE that changes nothing announces nothing;
-- Postgres folds identical notices of one transaction into one.
CREATE FUNCTION herald_notify_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('herald_changed', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER endpoints_changed AFTER INSERT OR UPDATE OR DELETE ON endpoints
    FOR EACH ROW EXECUTE FUNCTION herald_notify_changed();
CREATE TRIGGER applications_changed AFTER INSERT OR UPDATE OR DELETE ON applications
    FOR EACH ROW EXECUTE FUNCTION herald_notify_changed();
