-- Claiming at queue speed: a claim reads a handful of index entries, not every queued job, and
-- claimers on different nodes no longer wait for each other.

-- The user whose task a job belongs to, copied onto the job so fair share between users can pick
-- each user's oldest queued job from one index without joining tasks. A trigger always derives it
-- from the task, so it can never disagree with tasks.created_by (which never changes).
ALTER TABLE jobs ADD COLUMN owner_id uuid REFERENCES users (id);
UPDATE jobs j SET owner_id = t.created_by FROM tasks t WHERE t.id = j.task_id;
ALTER TABLE jobs ALTER COLUMN owner_id SET NOT NULL;

CREATE FUNCTION cynode_job_owner() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.owner_id := (SELECT created_by FROM tasks WHERE id = NEW.task_id);
    RETURN NEW;
END
$$;

CREATE TRIGGER jobs_owner
    BEFORE INSERT OR UPDATE OF task_id, owner_id ON jobs
    FOR EACH ROW EXECUTE FUNCTION cynode_job_owner();

-- Each user's queued jobs in claim order (skipping from one user to the next walks this index),
-- and each user's running jobs (fair share serves the user with the fewest first).
CREATE INDEX jobs_queued_owner_idx ON jobs (owner_id, created_at, id) WHERE status = 'queued';
CREATE INDEX jobs_running_owner_idx ON jobs (owner_id) WHERE status = 'running';
-- Superseded (by the index above and by node_running_jobs below); every claim would still pay to
-- keep them up to date.
DROP INDEX jobs_queued_idx;
DROP INDEX jobs_running_node_idx;

-- How many jobs run on each node (its used sandbox slots). A claim locks only the row of the node
-- it fills, and the row lock makes "is a slot free? take it" safe without a global lock. Triggers
-- keep the count, so no path that starts, ends, moves or deletes a running job can forget to.
CREATE TABLE node_running_jobs (
    node_id uuid PRIMARY KEY REFERENCES nodes (id) ON DELETE CASCADE,
    running integer NOT NULL DEFAULT 0
);
INSERT INTO node_running_jobs (node_id, running)
SELECT n.id, count(j.id) FROM nodes n LEFT JOIN jobs j ON j.node_id = n.id AND j.status = 'running'
GROUP BY n.id;

CREATE FUNCTION cynode_node_running_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO node_running_jobs (node_id) VALUES (NEW.id);
    RETURN NULL;
END
$$;

CREATE TRIGGER nodes_running_row
    AFTER INSERT ON nodes
    FOR EACH ROW EXECUTE FUNCTION cynode_node_running_row();

CREATE FUNCTION cynode_count_running_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.status = 'running' AND OLD.node_id IS NOT NULL THEN
        UPDATE node_running_jobs SET running = running - 1 WHERE node_id = OLD.node_id;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.status = 'running' AND NEW.node_id IS NOT NULL THEN
        UPDATE node_running_jobs SET running = running + 1 WHERE node_id = NEW.node_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_count_running
    AFTER INSERT OR DELETE OR UPDATE OF status, node_id ON jobs
    FOR EACH ROW EXECUTE FUNCTION cynode_count_running_jobs();
