Feature: Worker nodes join the orchestrator and receive their configuration

  A worker node proves it may join by presenting the registration pre-shared key, tells the
  orchestrator what it can do, fetches a versioned configuration carrying the URL and token the
  orchestrator will dispatch work with, and reports back whether it applied that configuration.
  Traces: REQ-ORCHES-0112, REQ-ORCHES-0113, REQ-ORCHES-0148, REQ-ORCHES-0149, REQ-WORKER-0135,
  REQ-WORKER-0139.

  Background:
    Given the control plane runs on its own fresh database

  Scenario: A node joins with the pre-shared key
    Given a node "test-node-01" that knows the registration PSK
    When the node registers
    Then the node holds a node JWT
    And the database has a node row for "test-node-01"

  Scenario: The Worker API base URL a node reports is where work is sent
    Given a node "test-node-02" that knows the registration PSK and serves its Worker API at "http://worker-02.example.com:12090"
    When the node registers
    Then the database has a node row for "test-node-02"
    And the dispatch URL recorded for "test-node-02" is "http://worker-02.example.com:12090"

  Scenario: A registered node sends a capability report
    Given "test-node-01" has registered
    When the node sends a changed capability report
    Then that report is the latest capability snapshot of "test-node-01"
    And the capability hash of "test-node-01" matches that report

  Scenario: A node fetches its configuration straight after joining
    Given a node "test-node-01" that knows the registration PSK
    When the node registers and then fetches its configuration
    Then the configuration is addressed to "test-node-01"
    And the configuration has a ULID config_version and a Worker API bearer token

  Scenario: A node acknowledges the configuration it applied
    Given "test-node-01" has registered and fetched its configuration
    When the node acknowledges that configuration with status "applied"
    Then the ack status of "test-node-01" is "applied"
    And the acknowledged config_version of "test-node-01" is the one it fetched

  Scenario: Configuration is not handed out without a node JWT
    When the configuration is requested without a node JWT
    Then the answer is a 401 problem

  Scenario: An acknowledgement in another node's name is refused
    Given "test-node-01" has registered and fetched its configuration
    When the node acknowledges that configuration with status "applied" as node "wrong-slug"
    Then the answer is a 400 problem

  Scenario: A node able to run inference, with no service of its own, is told to start a backend
    Given a node "inference-node-01" that knows the registration PSK
    And the node has registered reporting inference supported and no existing service
    When the node fetches its configuration
    Then the configuration is addressed to "inference-node-01"
    And the configuration tells the node to start an inference backend
