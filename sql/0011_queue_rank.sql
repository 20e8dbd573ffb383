-- Fair share decided once, when a job is queued, so a claim is one step down one index.
--
-- Each queued job carries a rank: its owner's turn in a round-robin over users. A user's first
-- job queues at the rank now being served (the head of the queue), and each further job one rank
-- after that user's previous one, so a user with a long queue takes one job per round and a user
-- who arrives later joins the very next round. Claims take the lowest rank (oldest first within a
-- rank) that no other claimer holds: no per-user scan and no running-job counts per claim.
-- Jobs that need inference and jobs that do not are ranked apart, because one kind can wait
-- (no inference node) while the other is served. A requeued job keeps its rank, and so its place.

ALTER TABLE jobs ADD COLUMN queue_rank bigint;

-- Each user's last rank given out, per kind of job.
CREATE TABLE queue_turns (
    owner_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    needs_inference boolean NOT NULL,
    last_rank bigint NOT NULL,
    PRIMARY KEY (owner_id, needs_inference)
);
CREATE INDEX queue_turns_last_rank_idx ON queue_turns (needs_inference, last_rank);

WITH ranked AS (
    SELECT id, row_number() OVER (PARTITION BY owner_id, needs_inference ORDER BY created_at, id) - 1 AS queue_rank
    FROM jobs WHERE status = 'queued'
)
UPDATE jobs SET queue_rank = ranked.queue_rank FROM ranked WHERE jobs.id = ranked.id;
UPDATE jobs SET queue_rank = 0 WHERE queue_rank IS NULL;
ALTER TABLE jobs ALTER COLUMN queue_rank SET NOT NULL;
INSERT INTO queue_turns (owner_id, needs_inference, last_rank)
SELECT owner_id, needs_inference, max(queue_rank) FROM jobs GROUP BY owner_id, needs_inference;

-- The claim order. It replaces the per-user indexes the previous claim walked.
CREATE INDEX jobs_claim_idx ON jobs (needs_inference, queue_rank, created_at, id) WHERE status = 'queued';
DROP INDEX jobs_queued_owner_idx;
DROP INDEX jobs_running_owner_idx;

-- Runs after jobs_owner (BEFORE triggers fire in name order), so the owner is known. The rank
-- being served is the head of the queue of the job's kind; with that queue empty, the highest
-- rank given out so far, so a user who queued much earlier does not jump ahead of everyone.
CREATE FUNCTION cynode_job_queue_rank() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    served bigint;
BEGIN
    served := coalesce(
        (SELECT queue_rank FROM jobs
         WHERE status = 'queued' AND needs_inference = NEW.needs_inference
         ORDER BY queue_rank LIMIT 1),
        (SELECT max(last_rank) FROM queue_turns WHERE needs_inference = NEW.needs_inference),
        0
    );
    INSERT INTO queue_turns AS turns (owner_id, needs_inference, last_rank)
    VALUES (NEW.owner_id, NEW.needs_inference, served)
    ON CONFLICT (owner_id, needs_inference) DO UPDATE SET last_rank = greatest(turns.last_rank + 1, served)
    RETURNING last_rank INTO NEW.queue_rank;
    RETURN NEW;
END
$$;

CREATE TRIGGER jobs_queue_rank
    BEFORE INSERT ON jobs
    FOR EACH ROW EXECUTE FUNCTION cynode_job_queue_rank();
