Feature: Long-poll on a task
  A client that asks for a task with ?wait=N is answered the moment the task ends, whichever
  process ended it: the ending reaches every gateway process as a PostgreSQL notice.

  Scenario: A long-poll on a gateway process is answered when its task ends
    Given an orchestrator process on a shared database
    And a gateway process that reaches that orchestrator over HTTP
    When I create a commands task "sleep 600" on the gateway process and long-poll it for 30 seconds
    And I cancel that task
    Then the long-poll answers with the task "canceled"
