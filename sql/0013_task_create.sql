-- Creating a task in one round trip.
--
-- POST /v1/tasks checks the user's cap on active tasks, finds the project (creating the user's
-- default one on first use), picks a name no other task of the user has, and inserts the task, its
-- job and its attachments. From the gateway that was seven statements, each a round trip, and the
-- round trips were most of what a create cost. cynode_create_task does it all in one call; being one
-- statement, it is one transaction of its own.
--
-- cynode_create_task and cynode_default_project are VOLATILE plpgsql functions: each statement in
-- them sees what others committed before it started, which the cap check (after its lock) and the
-- default project (after a lost race) rely on.

-- The user's default project, created on first use. A racing creator's row is not visible to the
-- INSERT's snapshot, so the INSERT does nothing and the SELECT after it finds that row.
CREATE FUNCTION cynode_default_project(p_user uuid) RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    v_slug text := 'default-' || p_user;
    v_id uuid;
BEGIN
    SELECT id INTO v_id FROM projects WHERE slug = v_slug;
    IF FOUND THEN
        RETURN v_id;
    END IF;
    INSERT INTO projects (slug, display_name, owner_id) VALUES (v_slug, 'Default Project', p_user)
    ON CONFLICT (slug) DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        SELECT id INTO STRICT v_id FROM projects WHERE slug = v_slug;
    END IF;
    RETURN v_id;
END
$$;

-- Whether the user may put work in the project: it is active, and the user's own or shared (no owner).
CREATE FUNCTION cynode_project_usable(p_project uuid, p_user uuid) RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN EXISTS (
        SELECT FROM projects WHERE id = p_project AND is_active AND (owner_id IS NULL OR owner_id = p_user)
    );
END
$$;

-- A task name's parts: "deploy-docs-3" is base "deploy-docs" with suffix 3; a name without a
-- numeric suffix (up to 18 digits) is its own base. Indexed, so the highest suffix in use for a base
-- is one step down the index however many tasks share it.
CREATE FUNCTION cynode_task_name_base(p_name text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT regexp_replace(p_name, '-[0-9]{1,18}$', '')
$$;
CREATE FUNCTION cynode_task_name_suffix(p_name text) RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT substring(p_name from '-([0-9]{1,18})$')::bigint
$$;
CREATE INDEX tasks_name_suffix_idx
    ON tasks (created_by, cynode_task_name_base(task_name), cynode_task_name_suffix(task_name));

-- p_base if the user has no task of that name, else p_base-N with N one more than the highest
-- suffix the user has for p_base (2 at least).
-- (plpgsql, not sql: its plans are kept for the session instead of made again on every call.)
CREATE FUNCTION cynode_free_task_name(p_user uuid, p_base text) RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_highest bigint;
BEGIN
    IF NOT EXISTS (SELECT FROM tasks WHERE created_by = p_user AND task_name = p_base) THEN
        RETURN p_base;
    END IF;
    SELECT max(cynode_task_name_suffix(task_name)) INTO v_highest FROM tasks
    WHERE created_by = p_user AND cynode_task_name_base(task_name) = p_base;
    RETURN p_base || '-' || (greatest(v_highest, 1) + 1);
END
$$;

-- One row. refused is NULL when the task was created, else why not: 'cap_reached' (active says how
-- many of the user's tasks are queued or running) or 'project_unusable'. A name taken by a racing
-- create of the same user raises unique_violation; the caller tries again.
CREATE FUNCTION cynode_create_task(
    p_user uuid,
    p_project uuid,           -- NULL: the user's default project
    p_base_name text,
    p_prompt text,
    p_input_mode text,
    p_payload jsonb,
    p_use_inference boolean,
    p_attachments text[],     -- in the order the user listed them
    p_max_active integer      -- NULL: no cap
) RETURNS TABLE (
    refused text,
    active bigint,
    task_id uuid,
    job_id uuid,
    status text,
    task_name text,
    prompt text,
    summary text,
    created_at timestamptz,
    updated_at timestamptz,
    reason text,
    attachments text[]
) LANGUAGE plpgsql
-- Every statement here (and in the functions and triggers it calls) is a lookup by key or an insert:
-- a plan made once per connection serves every call, instead of five planned afresh first.
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    v_active bigint;
    v_project uuid := p_project;
    v_task tasks;
    v_job uuid;
BEGIN
    IF p_max_active IS NOT NULL THEN
        -- Serializes one user's creates, so two racing ones cannot both take the last place.
        PERFORM pg_advisory_xact_lock(hashtextextended('tasks-cap:' || p_user, 0));
        SELECT count(*) INTO v_active FROM tasks t WHERE t.created_by = p_user AND t.status IN ('queued', 'running');
        IF v_active >= p_max_active THEN
            RETURN QUERY SELECT 'cap_reached', v_active, NULL::uuid, NULL::uuid, NULL, NULL, NULL, NULL,
                NULL::timestamptz, NULL::timestamptz, NULL, NULL::text[];
            RETURN;
        END IF;
    END IF;
    IF v_project IS NULL THEN
        v_project := cynode_default_project(p_user);
    ELSIF NOT cynode_project_usable(v_project, p_user) THEN
        RETURN QUERY SELECT 'project_unusable', v_active, NULL::uuid, NULL::uuid, NULL, NULL, NULL, NULL,
            NULL::timestamptz, NULL::timestamptz, NULL, NULL::text[];
        RETURN;
    END IF;
    INSERT INTO tasks (created_by, project_id, task_name, prompt, input_mode, use_inference)
    VALUES (p_user, v_project, cynode_free_task_name(p_user, p_base_name), p_prompt, p_input_mode, p_use_inference)
    RETURNING * INTO v_task;
    -- After the task, so the job's triggers see it.
    INSERT INTO jobs (task_id, payload, needs_inference) VALUES (v_task.id, p_payload, p_use_inference)
    RETURNING id INTO v_job;
    -- One microsecond apart, so reading them back in created_at order keeps the user's order.
    INSERT INTO task_artifacts (task_id, path, created_at)
    SELECT v_task.id, a.path, now() + a.position * interval '1 microsecond'
    FROM unnest(p_attachments) WITH ORDINALITY AS a(path, position)
    ON CONFLICT (task_id, path) DO NOTHING;
    RETURN QUERY SELECT NULL::text, v_active, v_task.id, v_job, v_task.status, v_task.task_name, v_task.prompt,
        v_task.summary, v_task.created_at, v_task.updated_at, v_task.reason,
        ARRAY(SELECT a.path FROM task_artifacts a WHERE a.task_id = v_task.id ORDER BY a.created_at, a.path);
END
$$;
