-- Abuse resistance: throttle state apart from the audit trail, counted refusals, bounded sessions,
-- node identity proof.

-- What login throttling reads: one row per attempt that was judged (a success or a credential
-- failure) and one per lockout cleared by an admin. Attempts the throttle refused are not rows, so
-- a flood of them neither grows this table nor slows the checks. Handles are kept only as a keyed
-- digest (a password typed into the handle field must not be stored); sources are the client
-- address, IPv6 widened to its /64.
CREATE TABLE login_attempts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    outcome text NOT NULL CHECK (outcome IN ('success', 'credential_failure', 'lockout_cleared')),
    handle_digest bytea,
    user_id uuid REFERENCES users (id) ON DELETE CASCADE,
    source cidr,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- Each throttle check reads a bounded number of entries of one of these: O(log n) per check.
CREATE INDEX login_attempts_handle_failures_idx ON login_attempts (handle_digest, created_at)
    WHERE outcome = 'credential_failure';
CREATE INDEX login_attempts_handle_source_idx ON login_attempts (handle_digest, source, outcome, created_at);
CREATE INDEX login_attempts_source_idx ON login_attempts (source, created_at);
CREATE INDEX login_attempts_source_failures_idx ON login_attempts (source, created_at)
    WHERE outcome = 'credential_failure';
CREATE INDEX login_attempts_cleared_idx ON login_attempts (user_id, created_at)
    WHERE outcome = 'lockout_cleared';
CREATE INDEX login_attempts_created_idx ON login_attempts (created_at);

-- Refused requests without a valid identity, counted per source and minute; past a threshold a
-- refusal only increments its counter instead of adding an audit row.
CREATE TABLE auth_refusal_counts (
    minute timestamptz NOT NULL,
    source cidr,
    event_type text NOT NULL,
    refusals bigint NOT NULL,
    UNIQUE NULLS NOT DISTINCT (minute, source, event_type)
);
CREATE INDEX auth_refusal_counts_minute_idx ON auth_refusal_counts (minute);

-- The old throttle read the audit log; it no longer does, and the retention purge uses created_at.
DROP INDEX auth_audit_log_login_ip_idx;
DROP INDEX auth_audit_log_login_handle_idx;

-- Absolute session lifetime: every row of a refresh chain carries when its login happened.
ALTER TABLE refresh_sessions ADD COLUMN session_started_at timestamptz;
UPDATE refresh_sessions AS s
SET session_started_at = first.started_at
FROM (SELECT family_id, min(created_at) AS started_at FROM refresh_sessions GROUP BY family_id) AS first
WHERE s.family_id = first.family_id;
ALTER TABLE refresh_sessions ALTER COLUMN session_started_at SET NOT NULL;
ALTER TABLE refresh_sessions ALTER COLUMN session_started_at SET DEFAULT now();

-- Node identity: a per-node secret issued at first registration (SHA-256 only); re-registering the
-- slug needs it. NULL for nodes registered before this migration, which receive one on their next
-- registration.
ALTER TABLE nodes ADD COLUMN node_secret_hash bytea;
-- Set when an admin rotates the node's Worker API token: the node's control-plane calls are 401
-- until it registers again (and so fetches a config with the new token).
ALTER TABLE nodes ADD COLUMN reregistration_required boolean NOT NULL DEFAULT false;
