-- Task ending notices: a long-poll (GET /v1/tasks/{id}?wait=N, /result?wait=N) or a followed log
-- stream answers the moment its task ends instead of on its next re-read. A trigger sends them, so
-- every path that ends a task (a stored result, a failure, a cancel, a reaped lease) does; the
-- payload is the task id, for the gateway processes that hold waiters keyed by it.

CREATE FUNCTION cynode_notify_task_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('cynode_task_ended', NEW.id::text);
    RETURN NULL;
END
$$;

-- Tasks are inserted queued, so only an update can end one.
CREATE TRIGGER tasks_ended_notify
    AFTER UPDATE OF status ON tasks
    FOR EACH ROW WHEN (NEW.closed AND NOT OLD.closed)
    EXECUTE FUNCTION cynode_notify_task_ended();
