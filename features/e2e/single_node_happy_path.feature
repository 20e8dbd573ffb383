Feature: Single-node happy path
  A team runs the orchestrator, the gateway and a worker node in one `cynode serve --role=all`
  process. Tasks they submit run on that local node, in a network-less sandbox, and prompts are
  answered by the node's own model.

  Background:
    Given a running PostgreSQL database
    And the orchestrator API is running
    And an admin user exists with handle "admin"
    And the local node "test-node-01" registered with the PSK, fetched its configuration and acknowledged it as applied

  Scenario: A command task runs in the local node's sandbox
    Given I am logged in as "admin"
    When I create a task in commands mode with "echo hello"
    Then the task status becomes "completed"
    And the job ran on node "test-node-01"
    And the job result's stdout is "hello\n" with exit code 0

  Scenario: A sandbox job that asks for inference gets the proxy socket URL
    Given I am logged in as "admin"
    When I create a task in commands mode with "echo $INFERENCE_PROXY_URL" that uses inference
    Then the task status becomes "completed"
    And the job result's stdout contains "http+unix://"

  Scenario: A prompt is answered by the node's model, not run as shell
    Given I am logged in as "admin"
    When I create a task with the prompt "The capital of France is"
    Then the task status becomes "completed"
    And the job result's stdout is the model's non-empty answer
    And the job asked for inference and ran "python3" rather than a shell
