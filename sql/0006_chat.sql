-- Chat threads and messages (OpenAI-compatible chat), and the chat audit log.
--
-- One active thread per (user, project): the newest thread of that scope, unless it has been idle
-- longer than the rotation threshold. Messages are append-only and hold only redacted content.
-- Times use clock_timestamp() so two rows written in one transaction still order correctly.

CREATE TABLE chat_threads (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id uuid REFERENCES projects (id) ON DELETE SET NULL,
    title text,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX chat_threads_user_updated_idx ON chat_threads (user_id, updated_at);
CREATE INDEX chat_threads_user_created_idx ON chat_threads (user_id, created_at DESC, id DESC);
CREATE INDEX chat_threads_scope_idx ON chat_threads (user_id, project_id, updated_at DESC);

CREATE TABLE chat_messages (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    thread_id uuid NOT NULL REFERENCES chat_threads (id) ON DELETE CASCADE,
    role text NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    content text NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX chat_messages_thread_created_idx ON chat_messages (thread_id, created_at, id);

CREATE TABLE chat_audit_log (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid REFERENCES users (id) ON DELETE SET NULL,
    project_id uuid REFERENCES projects (id) ON DELETE SET NULL,
    thread_id uuid REFERENCES chat_threads (id) ON DELETE SET NULL,
    model text NOT NULL,
    redaction_applied boolean NOT NULL,
    redaction_kinds text[] NOT NULL DEFAULT '{}',
    outcome text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX chat_audit_log_user_idx ON chat_audit_log (user_id, created_at);
