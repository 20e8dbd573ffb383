Feature: The orchestrator serves but reports not ready until it has an inference path

  An inference path is a dispatchable node whose inference backend (its own container or a service
  that already ran on the host) is running and lists the Project Manager model, or an external
  provider key. Without one, the orchestrator keeps serving so an operator can fix things, but its
  /readyz answers 503 with a reason an operator can act on.
  Traces: REQ-BOOTST-0002, REQ-ORCHES-0150, REQ-MODELS-0008.

  Scenario: No node and no provider key leave the orchestrator up but not ready
    Given no node runs local inference
    And no external provider key is configured
    When the orchestrator starts
    Then /readyz of the control plane and the gateway answers 503
    And the reason says that no inference path is available

  Scenario: A configured node serving the PM model makes the orchestrator ready
    Given the orchestrator is running
    When node "ready-node-01" registers, applies its configuration and reports inference running with the PM model
    Then /readyz of the control plane and the gateway answers 200 "ready"

  Scenario: Readiness goes 503, 200, and back to 503 when the node falls silent
    Given the orchestrator is running with a heartbeat grace of 2 seconds
    Then /readyz of the control plane and the gateway answers 503
    When node "ready-node-02" registers, applies its configuration and reports inference running with the PM model
    Then /readyz of the control plane and the gateway answers 200 "ready"
    When the node stays silent for longer than the grace period
    Then /readyz of the control plane and the gateway answers 503
    And the reason says that no inference path is available

  Scenario: A node that has not loaded the PM model yet is named in the reason
    Given the orchestrator is running
    When node "slow-node" registers, applies its configuration and reports inference running without any model
    Then /readyz of the control plane and the gateway answers 503
    And the reason is "PM model qwen3.5:0.8b not yet available on node slow-node (waiting for its inference backend to load it)"

  Scenario: An external provider key alone is no inference path (external providers are not called yet)
    Given an active external provider key is configured
    When the orchestrator starts
    Then /readyz of the control plane and the gateway answers 503
    And the reason is "no inference path available (external provider keys are configured, but CyNode does not call external providers yet; register and configure a worker node with inference)"

  Scenario: An unreachable database is named in the reason
    Given the orchestrator is running
    When its database goes away
    Then /readyz of the control plane and the gateway answers 503
    And the reason is "readiness check failed (database unreachable)"

  Scenario: The orchestrator refuses to start without a registration PSK
    When the orchestrator starts without CYNODE_NODE_REGISTRATION_PSK
    Then start-up fails with a message naming CYNODE_NODE_REGISTRATION_PSK
