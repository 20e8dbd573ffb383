-- Why a job or task ended other than 'completed', node dispatch holds, and fair claiming.
--
-- reason: a machine-readable word (timeout, canceled, node_lost, lease_expired, result_not_stored,
-- disk_quota, memory, pids, image_missing, ...) next to every terminal status but 'completed';
-- the task copies its job's reason when it follows the job's status.
ALTER TABLE jobs ADD COLUMN reason text;
ALTER TABLE tasks ADD COLUMN reason text;

-- Set just before the Worker API call is sent: an attempt whose lease expires without it never
-- reached a node and may safely run again; one with it may have run and is never re-run blindly.
ALTER TABLE jobs ADD COLUMN run_sent_at timestamptz;

-- A node that refused a connection, answered 503/429 before a run, stopped answering during one,
-- or said it is shutting down gets no jobs until it is heard from again (nodes.last_seen_at moves
-- past since). A row is replaced by the next hold of the same node.
CREATE TABLE node_dispatch_holds (
    node_id uuid PRIMARY KEY REFERENCES nodes (id) ON DELETE CASCADE,
    reason text NOT NULL,
    since timestamptz NOT NULL DEFAULT now()
);

-- Counting a user's unfinished tasks (the per-user cap) and interleaving users when claiming.
CREATE INDEX tasks_active_by_user_idx ON tasks (created_by) WHERE status IN ('queued', 'running');
