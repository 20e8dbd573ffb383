-- Dispatchers keep the list of dispatchable nodes between passes (re-reading it at least once per
-- safety poll, for heartbeats that go stale). Any change to a node that can make it dispatchable
-- or not, or change how it is called or what it can run, tells them on cynode_dispatch (payload
-- 'nodes') to read the list again: registration and deletion, status, the operator's admin_state,
-- config versions and acks, the Worker API URL and token, and the capability report. A heartbeat
-- alone (last_seen_at) says nothing.
--
-- These replace the two narrower node triggers of 0004 and 0008 (config applied, node enabled),
-- which this covers.

DROP TRIGGER nodes_config_applied_notify ON nodes;
DROP TRIGGER nodes_enabled_notify ON nodes;

CREATE TRIGGER nodes_added_or_removed_notify
    AFTER INSERT OR DELETE ON nodes
    FOR EACH ROW EXECUTE FUNCTION cynode_notify_dispatch();

CREATE TRIGGER nodes_changed_notify
    AFTER UPDATE ON nodes
    FOR EACH ROW WHEN (
        (OLD.status, OLD.admin_state, OLD.reregistration_required, OLD.config_version, OLD.config_ack_status,
         OLD.config_ack_version, OLD.worker_api_target_url, OLD.worker_api_bearer_token_ciphertext, OLD.capability_hash)
        IS DISTINCT FROM
        (NEW.status, NEW.admin_state, NEW.reregistration_required, NEW.config_version, NEW.config_ack_status,
         NEW.config_ack_version, NEW.worker_api_target_url, NEW.worker_api_bearer_token_ciphertext, NEW.capability_hash)
    )
    EXECUTE FUNCTION cynode_notify_dispatch();
