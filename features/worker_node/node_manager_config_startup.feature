Feature: Node manager config fetch, apply and startup

  A worker node's manager registers with the orchestrator, fetches its configuration from the
  URL the bootstrap payload names, applies it (Worker API bearer token, constraints, inference
  backend) and acknowledges it. A node whose configured inference backend cannot start reports
  the failure and stops instead of serving. Managed services (Phase 7) are out of scope here.
  Traces: REQ-WORKER-0135 (config payload and ack), REQ-WORKER-0002 (fail-fast).

  Background:
    Given a running orchestrator control plane that advertises its own public URL
    And a worker node whose startup YAML registers at the orchestrator's loopback address

  Scenario: The node manager fetches its config from the bootstrap node_config_url
    When the node manager runs the startup sequence against the orchestrator
    Then the node manager requested config using the bootstrap node_config_url
    And the received config contains worker_api orchestrator_bearer_token

  Scenario: The node manager acknowledges the config once it is applied
    When the node manager runs the startup sequence against the orchestrator
    Then the node manager sent a config acknowledgement with status "applied"
    And the node is dispatchable and its Worker API is ready

  Scenario: The node manager fails fast when the inference backend cannot start
    Given the node reports inference support but the backend the orchestrator picks cannot start
    When the node manager runs the startup sequence against the orchestrator
    Then the node manager exits with an error
    And the error indicates inference startup failed
    And the node manager sent a config acknowledgement with status "failed" and the reason
    And the node never reports ready
