Feature: Live task output
  Whoever follows a task's logs sees its job's output while the job runs, not only once it ended:
  the orchestrator reads it from the node that runs the job and relays it to the gateway, also when
  gateway, orchestrator and node are separate processes.

  Scenario: A running task's output streams through separate gateway, orchestrator and node processes
    Given an orchestrator process on a shared database
    And a gateway process that reaches that orchestrator over HTTP
    And a node process registered with that orchestrator that runs sandbox jobs
    And I am logged in to the gateway process as "admin"
    When I create a commands task "for i in 1 2 3; do echo line$i; sleep 1; done" and follow its logs
    Then the followed logs show "line1" before the task is completed
    And the followed stdout is the lines "line1 line2 line3"
