-- Task ending notices: a long-poll (GET /v1/tasks/{id}?wait=N, /result?wait=N) or a followed log
-- stream answers the moment its task ends instead of on its next re-read. A trigger sends them, so
-- every path that ends a task (a stored result, a failure, a cancel, a reaped lease) does; the
-- payload is the task id, for the gateway processes that hold waiters keyed by it.

-- Notifies the channel named by the trigger's argument with the row's id. The job-cancel notice of
-- sql/0004 has the same shape, so it moves onto this function too.
CREATE FUNCTION cynode_notify_row_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_ARGV[0], NEW.id::text);
    RETURN NULL;
END
$$;

-- Tasks are inserted queued, so only an update can end one.
CREATE TRIGGER tasks_ended_notify
    AFTER UPDATE OF status ON tasks
    FOR EACH ROW WHEN (NEW.closed AND NOT OLD.closed)
    EXECUTE FUNCTION cynode_notify_row_id('cynode_task_ended');

DROP TRIGGER jobs_canceled_notify ON jobs;
CREATE TRIGGER jobs_canceled_notify
    AFTER UPDATE OF status ON jobs
    FOR EACH ROW WHEN (OLD.status = 'running' AND NEW.status = 'canceled')
    EXECUTE FUNCTION cynode_notify_row_id('cynode_job_canceled');
DROP FUNCTION cynode_notify_job_canceled();
