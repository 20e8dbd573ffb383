Feature: Task lifecycle through the user API

  A signed-in user hands the orchestrator work as tasks, follows their status, and reads what
  they produced. Each task becomes one job that the orchestrator sends to a worker node, here a
  real Worker API running real containers.
  Requirements: REQ-ORCHES-0121, 0122, 0123, 0124, 0125; REQ-WORKER-0100.

Background:
  Given a running PostgreSQL database
  And the orchestrator API is running
  And an admin user exists with handle "admin"
  And I am logged in as "admin"
  And node "test-node-01" is registered and active with a real Worker API
  And the config of node "test-node-01" carries its Worker API URL and bearer token

Scenario: A signed-in user creates a task
  When I submit a task with prompt "echo hello world"
  Then the answer carries a task id
  And the task's status is "queued"

Scenario: Reading a task shows its status
  Given I submitted a task earlier
  When I read that task
  Then I see its details with its status

Scenario: The result of a finished task holds the job output
  Given a task of mine has completed
  When I read the task result
  Then its job carries stdout and an exit code

Scenario: Dispatch uses the node's own Worker API URL and token
  When I submit the commands "echo hello" and the orchestrator dispatches them to the node
  Then the node's Worker API was called at the URL from its configuration
  And that call presented the bearer token from the node's configuration

Scenario: In commands mode the prompt is run as shell text
  When I submit a task in input mode "commands" with prompt "echo hello" and it is dispatched
  Then the worker was asked to run a command containing "echo hello"

Scenario: Listing my tasks
  When I submit a task with prompt "list me" and list my tasks 10 at a time
  Then the list holds that task

Scenario: The owner cancels a task
  When I submit a task with prompt "cancel me" and cancel it
  Then the task's status is "canceled"

Scenario: The logs of a finished task
  Given a task of mine has completed
  When I read the task logs
  Then they hold the job's stdout and stderr

Scenario: A task created with a name keeps it
  When I submit a task with prompt "echo named" and name "my-task"
  Then the answer carries a task id
  And the task is named "my-task"
