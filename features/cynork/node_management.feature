Feature: Node management from the cynode CLI

  An admin drains, disables and re-enables worker nodes. A draining or disabled node receives
  no new jobs, while the jobs already running there finish; enabling it lets queued work flow
  again. Non-admins are refused with 403 and the node stays as it was.

  Background:
    Given an orchestrator and gateway with a registration PSK
    And I am logged in to the CLI as "admin"
    And a task API for the admin

  Scenario: Draining a node stops new jobs while its running job completes
    Given a worker node "slow-1" whose jobs take 2 seconds
    And the task "first" is running on "slow-1"
    When I run "cynode node drain slow-1"
    Then the command succeeds
    And "cynode node get slow-1 --json" shows admin state "draining" and not dispatchable
    When I submit the task "second"
    Then the task "first" completes
    And the task "second" stays queued
    When I run "cynode node enable slow-1"
    Then the task "second" completes on "slow-1"

  Scenario: A disabled node gets no work until it is enabled
    Given a worker node "fast-1" whose jobs take 0 seconds
    When I run "cynode node disable fast-1"
    Then the command succeeds
    And "cynode node list --json" shows "fast-1" with admin state "disabled" and not dispatchable
    When I submit the task "third"
    Then the task "third" stays queued
    When I run "cynode node enable fast-1"
    Then the task "third" completes on "fast-1"

  Scenario: A non-admin cannot drain, disable or enable a node
    Given a worker node "fast-1" whose jobs take 0 seconds
    And the user "dave" is logged in
    Then dave gets 403 for listing, getting, draining, disabling and enabling "fast-1"
    And "fast-1" is still enabled and dispatchable

  Scenario: Draining the node of a real cynode serve process from the CLI
    Given a real "cynode serve --role=all" process
    And the node of that process is ready
    When I log in to that process with the CLI as "admin"
    And I drain the node of that process with the CLI
    Then "cynode node list --json" shows the node of that process draining and not dispatchable
    When I submit the commands task "echo drained" named "held" with the CLI
    Then the task "held" stays queued on that process
    When I enable the node of that process with the CLI
    Then the task "held" completes on that process printing "drained"
