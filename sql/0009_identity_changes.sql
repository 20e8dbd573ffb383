-- Identity change notices: every process caches live sessions for its access-token checks and
-- must forget them the moment a user or a live session changes (logout, disable, password reset,
-- revocation, refresh-token reuse). Triggers send them, so no write path can forget to; the
-- payload is empty, so PostgreSQL folds the notices of one transaction into one.

CREATE FUNCTION cynode_notify_identity_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('cynode_identity', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER users_changed_notify
    AFTER UPDATE OR DELETE ON users
    FOR EACH ROW
    EXECUTE FUNCTION cynode_notify_identity_changed();

CREATE TRIGGER live_sessions_changed_notify
    AFTER UPDATE OR DELETE ON refresh_sessions
    FOR EACH ROW WHEN (OLD.is_active)
    EXECUTE FUNCTION cynode_notify_identity_changed();
