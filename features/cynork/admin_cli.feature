Feature: Operator administration from the cynode CLI

  An admin manages users and system settings with `cynode` commands instead of SQL or curl.
  Every admin command needs an admin: anyone else is refused with HTTP 403 and exit status 3,
  and nothing changes.

  Background:
    Given an orchestrator and gateway with a registration PSK
    And I am logged in to the CLI as "admin"

  Scenario: An admin creates a user who then logs in
    When I run "cynode user create carol" with the new password "carol-password-1"
    Then the command succeeds
    And "carol" can log in to the gateway with "carol-password-1"
    And "carol" appears in "cynode user list --json"
    And the auth audit log records "user_created" for "carol"

  Scenario: Setting the PM execution mode moves readiness
    Given a node "gpu-1" that serves the Project Manager model
    Then the gateway is ready
    When I run "cynode settings set agents.project_manager.model.selection.execution_mode force_external"
    Then the command succeeds
    And the gateway is not ready because "force_external"
    When I run "cynode settings set agents.project_manager.model.selection.execution_mode null"
    Then the gateway is ready

  Scenario Outline: A non-admin is refused every admin command
    Given a node "gpu-1" that serves the Project Manager model
    And the user "dave" is logged in to the CLI
    When I run "<command>"
    Then the command exits with status 3 and reports HTTP 403
    And nothing was changed by the refused command

    Examples:
      | command                                                                          |
      | cynode user list                                                                 |
      | cynode user disable admin                                                        |
      | cynode node list                                                                 |
      | cynode node drain gpu-1                                                          |
      | cynode node disable gpu-1                                                        |
      | cynode settings get                                                              |
      | cynode settings set agents.project_manager.model.selection.execution_mode force_local |
      | cynode credentials list                                                          |

  Scenario: An admin manages users through a real cynode serve process
    Given a real "cynode serve --role=gateway,orchestrator" process
    When I log in to that process with the CLI as "admin"
    And I run "cynode user create erin" with the new password "erin-password-1"
    Then the command succeeds
    And "erin" can log in to that process with "erin-password-1"
    When I run "cynode user disable erin"
    Then "erin" cannot log in to that process with "erin-password-1"
