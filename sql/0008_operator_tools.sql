-- Operator tools: the admin's say over nodes, and a trail of every admin change.
--
-- A node's admin_state is the operator's decision and survives re-registration (which rewrites
-- nodes.status): 'enabled' nodes receive work; 'draining' and 'disabled' nodes receive no new jobs
-- while the jobs already running there finish.

ALTER TABLE nodes ADD COLUMN admin_state text NOT NULL DEFAULT 'enabled'
    CHECK (admin_state IN ('enabled', 'draining', 'disabled'));

-- Enabling a node may make queued work dispatchable at once.
CREATE TRIGGER nodes_enabled_notify
    AFTER UPDATE OF admin_state ON nodes
    FOR EACH ROW WHEN (NEW.admin_state = 'enabled' AND OLD.admin_state <> 'enabled')
    EXECUTE FUNCTION cynode_notify_dispatch();

-- Every change an admin makes through the admin API (never a secret in detail).
CREATE TABLE admin_audit_log (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    actor_user_id uuid REFERENCES users (id) ON DELETE SET NULL,
    actor_handle text NOT NULL,
    action text NOT NULL,
    target_type text NOT NULL,
    target text NOT NULL,
    detail jsonb,
    ip_address inet,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX admin_audit_log_created_idx ON admin_audit_log (created_at);
