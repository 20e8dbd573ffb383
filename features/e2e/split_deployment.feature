Feature: Split deployment over TLS
  An operator runs the gateway, the orchestrator and each worker node as separate `cynode serve`
  processes, as on separate hosts. Every call between them is HTTPS: nodes verify the control plane
  by a CA file or a certificate pin, the orchestrator verifies each Worker API by a CA file, and
  nothing that carries a token is served in clear text beyond loopback.

  Background:
    Given lab certificates made by "cynode tls selfsigned"

  Scenario: A commands task completes across three TLS processes
    Given a gateway process serving HTTPS
    And an orchestrator process serving HTTPS
    And a node process "split-node-1" trusting the control plane by its CA file
    And I am logged in to the gateway as the admin
    When I create a task in commands mode with "echo over tls"
    Then the task completes on node "split-node-1" with stdout "over tls\n"
    And every listener refuses plain HTTP

  Scenario: A prompt task is answered by the node's model across three TLS processes
    Given a gateway process serving HTTPS
    And an orchestrator process serving HTTPS
    And a node process "split-node-2" with a model, trusting the control plane by its CA file
    And I am logged in to the gateway as the admin
    When I create a task with the prompt "The capital of France is"
    Then the task completes on node "split-node-2" with the model's non-empty answer

  Scenario: A node refuses a control plane whose certificate does not match its pin
    Given an orchestrator process serving HTTPS
    When a node process "split-pinned" starts pinned to another certificate
    Then the node process exits naming the pin mismatch
    And node "split-pinned" never registered

  Scenario: The orchestrator refuses a Worker API whose certificate does not match its pin
    Given a gateway process serving HTTPS
    And an orchestrator process that pins Worker APIs to another certificate
    And a node process "split-node-x" registered with the first orchestrator, one job at a time
    And I am logged in to the gateway as the admin
    When I create a task in commands mode with "echo never"
    Then the task fails naming the Worker API's pin mismatch

  Scenario: A Worker API without TLS refuses callers from beyond loopback
    Given an orchestrator process serving HTTPS
    And a node process "split-plain" whose Worker API listens on every interface without TLS
    Then a Worker API call from this host's non-loopback address is refused for lack of TLS
    And a Worker API call from loopback is answered
    And the node process warned at start-up that its Worker API listens without TLS

  Scenario: Two orchestrators on one database share the work of two nodes
    Given a gateway process serving HTTPS
    And two orchestrator processes serving HTTPS on the same database
    And a node process "split-node-a" registered with the first orchestrator, one job at a time
    And a node process "split-node-b" registered with the second orchestrator, one job at a time
    And I am logged in to the gateway as the admin
    When I create 6 tasks in commands mode that each take a second
    Then every task completes with exactly one job attempt
    And the tasks ran on both nodes
