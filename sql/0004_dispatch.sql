-- Dispatch wake-ups and the indexes the dispatcher's queries need.
--
-- Dispatchers sleep on LISTEN and re-check the queue when something on channel cynode_dispatch
-- says work may have become possible: a job became queued (created or requeued), a job left
-- running (a node slot freed up), or a node acked a config as applied (a node may have become
-- dispatchable). Triggers send these, so no write path can forget to. A dispatcher also polls
-- slowly in case a notification was missed while it was reconnecting.

CREATE FUNCTION cynode_notify_dispatch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('cynode_dispatch', TG_TABLE_NAME);
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_queued_notify
    AFTER INSERT OR UPDATE OF status ON jobs
    FOR EACH ROW WHEN (NEW.status = 'queued')
    EXECUTE FUNCTION cynode_notify_dispatch();

CREATE TRIGGER jobs_slot_freed_notify
    AFTER UPDATE OF status ON jobs
    FOR EACH ROW WHEN (OLD.status = 'running' AND NEW.status <> 'running')
    EXECUTE FUNCTION cynode_notify_dispatch();

CREATE TRIGGER nodes_config_applied_notify
    AFTER UPDATE OF config_ack_status, config_ack_version ON nodes
    FOR EACH ROW WHEN (NEW.config_ack_status = 'applied')
    EXECUTE FUNCTION cynode_notify_dispatch();

-- A running job that is canceled (by the gateway, in any process) must have its container killed
-- on its node by the orchestrator that holds its lease; the payload is the job id.
CREATE FUNCTION cynode_notify_job_canceled() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('cynode_job_canceled', NEW.id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_canceled_notify
    AFTER UPDATE OF status ON jobs
    FOR EACH ROW WHEN (OLD.status = 'running' AND NEW.status = 'canceled')
    EXECUTE FUNCTION cynode_notify_job_canceled();

-- Counting a node's running jobs (its used sandbox slots) on every claim.
CREATE INDEX jobs_running_node_idx ON jobs (node_id) WHERE status = 'running';
