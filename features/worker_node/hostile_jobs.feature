Feature: Hostile and broken jobs
  A job may print any bytes, write without end, fork without end or allocate without end. Such a
  job never takes its node down, never vanishes and never runs twice by accident: it ends with a
  machine-readable reason, its container and directories are removed, and the node keeps serving.
  The node here is small on purpose (32 MiB workspace, 256 MiB memory, 64 processes, 1 MiB log),
  so each flood proves its point in seconds.

  Background:
    Given an all-in-one node "hostile-node" with small per-job bounds
    And I am logged in as "admin"

  Scenario: Output with NUL bytes completes once, with its output visible
    When I create a task in commands mode with "printf 'before\000after\n'"
    Then the task completes within 60 seconds
    And the job's stdout is "before\ufffdafter\n" and says bytes were replaced
    And the job ran in exactly one container
    And the node is ready and a following "echo ok" task completes

  Scenario: Writing without end to the workspace stops at the quota
    When I create a task in commands mode with "yes > /workspace/f"
    Then the task ends "failed" with reason "disk_quota" within 60 seconds
    And the node's disk use grew by no more than the workspace quota
    And the job ran in exactly one container
    And the node is ready and a following "echo ok" task completes

  Scenario: Flooding stdout keeps the container log bounded
    When I create a task in commands mode with "timeout 8 yes; true"
    Then the job's container log never grows past its cap while it runs
    And the task completes within 60 seconds
    And the job's stdout is within the output limit and flagged truncated
    And the job ran in exactly one container
    And the node is ready and a following "echo ok" task completes

  Scenario: A fork bomb ends with pids
    When I create a task in commands mode with "bash -c ':(){ :|:& };:; sleep 60'"
    Then the task ends "failed" with reason "pids" within 60 seconds
    And the job ran in exactly one container
    And the node is ready and a following "echo ok" task completes

  Scenario: A 4 GiB allocation ends with memory
    When I create a task in commands mode with "python3 -c 'data = bytes(1) * (4 << 30)'"
    Then the task ends "failed" with reason "memory" within 60 seconds
    And the job ran in exactly one container
    And the node is ready and a following "echo ok" task completes
