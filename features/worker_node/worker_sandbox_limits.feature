Feature: Sandbox limits and Worker API refusals

  Whatever a job does, its result stays bounded, the container cannot reach the network or
  gain privileges, the node keeps serving, and a malformed or unwelcome call runs nothing.

  Background:
    Given a running Worker API whose node config has been applied

  # traces: spec_cynai_worker_workerapistdiocapturelimits
  Scenario: Large output is cut to the output limit as valid UTF-8
    When a job running "head -c 5242880 /dev/zero | tr '\0' 'x'; echo err >&2" is sent
    Then the job status is "completed" with exit code 0
    And the job stdout is exactly 262144 bytes of valid UTF-8
    And the job stdout is flagged as truncated
    And the job stderr is not flagged as truncated

  # traces: spec_cynai_worker_workerapistdiocapturelimits
  Scenario: A multi-byte character that straddles the cut is dropped whole
    When a job printing 262143 ASCII bytes and then "é" is sent
    Then the job stdout is exactly 262143 bytes of valid UTF-8
    And the job stdout does not end with a replacement character
    And the job stdout is flagged as truncated

  # traces: req_worker_0144
  Scenario: A job that outlives its timeout is killed and removed
    When a job running "sleep 600" is sent with a timeout of 2 seconds
    Then the job status is "timeout" with exit code -1
    And the call took less than 30 seconds
    And no sandbox container is left

  # traces: req_worker_0144
  Scenario: The config constraint caps the job timeout
    Given the node config limits jobs to 2 seconds
    When a job running "sleep 600" is sent with a timeout of 600 seconds
    Then the job status is "timeout" with exit code -1
    And the call took less than 30 seconds

  # traces: req_worker_0103 req_worker_0104
  Scenario: The sandbox cannot open a connection to the internet
    When a job running "python3 -c \"import socket; socket.create_connection(('1.1.1.1', 53), timeout=5)\"" is sent
    Then the job status is "failed"
    And the job stderr contains "Network is unreachable"

  # traces: req_worker_0103
  Scenario: The sandbox process holds no capabilities
    When a job running "grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status" is sent
    Then the job stdout shows every capability set empty

  # traces: req_worker_0103
  Scenario: A fork bomb hits the process limit and the node keeps serving
    When a fork bomb job is sent
    Then the job stdout reports fewer forks than the process limit
    And GET /healthz answers "ok"
    And a job running "echo still-serving" still completes
    And no sandbox container is left

  Scenario Outline: An unsafe job id is refused before anything runs
    When a job with job_id <job_id> is sent
    Then the call fails with status 400 as a problem
    And no sandbox container was created

    Examples:
      | job_id     |
      | ".."       |
      | "a/b"      |
      | "../etc"   |
      | "nul\u0000" |

  Scenario: The config constraint lowers the request size limit
    Given the node config limits request bodies to 4096 bytes
    When a job whose body is 8192 bytes is sent
    Then the call fails with status 413 as a problem
    And no sandbox container was created

  Scenario: Calls beyond the concurrency limit are refused with Retry-After
    Given a Worker API that runs at most 1 job at a time
    And a job running "sleep 60" has started
    When a job running "echo late" is sent
    Then the call fails with status 429 as a problem
    And the answer has a Retry-After header
    And the started job can still be canceled

  Scenario: Canceling a running job kills its container
    Given a job running "sleep 600" has started
    When that job is canceled
    Then the cancel answer says canceled
    And the started job ends with status "failed" and exit code -1
    And its stderr notes that the job was canceled
    And no sandbox container is left

  Scenario: Canceling a job that is not running changes nothing
    When job "no-such-job" is canceled
    Then the cancel answer says not canceled

  Scenario Outline: A malformed job call is refused before anything runs
    When the raw body <body> is sent as a job
    Then the call fails with status 400 as a problem
    And the problem detail mentions "<detail>"
    And no sandbox container was created

    Examples:
      | body                                                                                   | detail              |
      | {not json                                                                              | invalid JSON        |
      | {"version": 1, "task_id": "t"}                                                         | job_id              |
      | {"version": 2, "task_id": "t", "job_id": "j", "sandbox": {"image": "", "command": ["true"]}} | unsupported         |
      | {"version": 1, "task_id": "t", "job_id": "j", "sandbox": {"image": "", "command": []}}       | sandbox.command     |
      | {"version": 1, "task_id": "t", "job_id": "j", "sandbox": {"image": "", "command": ["true"], "network_policy": "open"}} | network_policy |

  Scenario: Readiness is 503 until the node config is applied
    Given a Worker API whose node config has not been applied
    When GET /readyz is called
    Then the answer is status 503 with a reason mentioning "config"
