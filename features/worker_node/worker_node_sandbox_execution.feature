Feature: Sandboxed job execution through the Worker API

  The orchestrator hands a job to a node's Worker API; the node checks who is calling,
  runs the command in a locked-down podman container and answers with a bounded result.

  Background:
    Given a running Worker API whose node config has been applied

  # traces: req_worker_0100 req_worker_0101 req_worker_0102 spec_cynai_worker_workerauth
  Scenario: A job call without a bearer token is refused
    When a job running "echo hello" is sent without a bearer token
    Then the call fails with status 401 as a problem
    And no sandbox container was created

  # traces: req_worker_0100 req_worker_0101 req_worker_0102 spec_cynai_worker_workerauth
  Scenario: A job call with the wrong bearer token is refused
    When a job running "echo hello" is sent with the bearer token "not-the-token"
    Then the call fails with status 401 as a problem
    And no sandbox container was created

  # traces: req_worker_0103 req_worker_0106 req_worker_0107 spec_cynai_worker_sandboxexec spec_cynai_worker_loglimits
  Scenario: A job's stdout and exit code come back in the result
    When a job running "echo hello" is sent
    Then the job status is "completed" with exit code 0
    And the job stdout contains "hello"

  # traces: req_worker_0103 req_worker_0104 spec_cynai_worker_sandboxexec phase1_sandbox
  Scenario Outline: Both network policies run the job without a network
    When a job running "echo ok" is sent with network policy "<policy>"
    Then the job status is "completed" with exit code 0

    Examples:
      | policy     |
      | none       |
      | restricted |

  # traces: req_worker_0103 req_worker_0104 spec_cynai_worker_sandboxexec phase1_sandbox
  Scenario: The job sees its task context in the environment
    When a job running "echo task=$CYNODE_TASK_ID job=$CYNODE_JOB_ID dir=$CYNODE_WORKSPACE_DIR; pwd" is sent
    Then the job stdout contains "task=bdd-task"
    And the job stdout contains "job=bdd-job"
    And the job stdout contains "dir=/workspace"

  # traces: req_worker_0104 spec_cynai_worker_sandboxexec phase1_sandbox
  Scenario: The request's env cannot replace the task context
    When a job running "echo $CYNODE_TASK_ID $CYNODE_JOB_ID" is sent with env "CYNODE_TASK_ID=forged,CYNODE_JOB_ID=forged"
    Then the job stdout contains "bdd-task bdd-job"
    And the job stdout does not contain "forged"

  # traces: req_worker_0140 req_worker_0142 spec_cynai_worker_workerapihealthchecks
  Scenario: Readiness says ready when the runtime can run containers
    When GET /readyz is called
    Then the answer is status 200 with body "ready"

  # traces: req_worker_0145 spec_cynai_worker_workerapirequestsizelimits
  Scenario: A body larger than the request limit is refused
    When a job whose body is larger than 10 MiB is sent
    Then the call fails with status 413 as a problem
    And no sandbox container was created
