Feature: Web console of a running cynode serve
  The console is part of the gateway role of the real command, not only of an in-process stack.

  Scenario: An operator signs in to the console of cynode serve and cancels a queued task
    Given "cynode serve --role=gateway,orchestrator" is running
    And a browser
    And I am signed in to the console as "admin"
    When I create a commands task "echo waits for a node" in the console
    Then the task page shows the status "queued" without a reload by me
    When I cancel the task in the console
    Then the task page shows the status "canceled" without a reload by me

  Scenario: An admin changes a system setting in the console of cynode serve
    Given "cynode serve --role=gateway,orchestrator" is running
    And a browser
    And I am signed in to the console as "admin"
    When I set "agents.project_manager.model.selection.execution_mode" to "force_local" in the console
    Then the settings page shows "agents.project_manager.model.selection.execution_mode" as "force_local"
    And the status page shows the "gateway" and "orchestrator" roles healthy
