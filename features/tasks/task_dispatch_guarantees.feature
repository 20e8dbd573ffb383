Feature: Task and dispatch guarantees beyond upstream

  Cancel really stops work, a late answer never rewrites a finished task, several orchestrators
  share one queue without running a job twice, tasks stay private, and bad requests change nothing.

Background:
  Given a running PostgreSQL database
  And the orchestrator API is running
  And I am logged in as "admin"

Scenario: Canceling a running task kills its container
  Given node "test-node-01" is registered and active with a real Worker API
  And a commands task "sleep 300" is running in a container on the node
  When I cancel the task
  Then no container of the task is left on the node
  And the task is still "canceled" after the worker answered

Scenario: Two orchestrators on one database run every job exactly once
  Given a second orchestrator runs on the same database
  And a scripted node with room for 3 jobs at a time
  When I create 24 commands tasks
  Then every task completes on its first attempt
  And the node ran each job exactly once and never more than 3 at a time

Scenario: Another user's task does not exist for me
  Given user "alice" has a task named "alices-task"
  Then reading alice's task by id or by name answers 404
  And canceling alice's task answers 404

Scenario: The status filter applies before paging
  Given I have 5 tasks of which 3 are canceled
  When I list my canceled tasks 2 at a time
  Then I get the 3 canceled tasks, newest first, on 2 pages

Scenario Outline: A bad request is a problem and changes nothing
  Given I submitted a task earlier
  When I send <request>
  Then the answer is a <status> problem
  And no task or job changed

  Examples:
    | request                                  | status |
    | a task body that is not JSON             | 400    |
    | a task body that is not declared JSON    | 415    |
    | a task with input_mode "shell"           | 400    |
    | a task with an empty prompt              | 400    |
    | a task with project_id "project-one"     | 400    |
    | a task list with limit 0                 | 400    |
    | a task list with limit 500               | 400    |
    | a task list with cursor "garbage"        | 400    |
    | task logs with stream "both"             | 400    |
