Feature: The node control plane keeps its secrets and its config versions honest

  Registration admits only holders of the PSK; node routes take only node JWTs; a node speaks only
  for itself; secrets appear only in the one response that delivers them and never in logs; a
  config_version changes exactly when the configuration does; the inference backend instruction
  follows the capability report and orchestrator policy; bad input is a 4xx problem and stores nothing.

  Background:
    Given the control plane runs on its own fresh database

  Scenario Outline: A wrong or empty PSK is refused and nothing is stored
    When node "intruder" registers with the PSK "<psk>"
    Then the answer is a 401 problem
    And nothing is stored about nodes

    Examples:
      | psk               |
      |                   |
      | not-the-right-psk |

  Scenario Outline: A malformed registration is a 4xx problem and nothing is stored
    When a registration is sent whose <flaw>
    Then the answer is a <status> problem
    And nothing is stored about nodes

    Examples:
      | flaw                               | status |
      | body is not JSON                   | 400    |
      | capability is missing              | 400    |
      | capability has version 2           | 400    |
      | compute.cpu_cores is a string      | 400    |
      | node slug is missing               | 400    |
      | body is larger than the body limit | 413    |

  Scenario: A user access token does not open a node route
    Given "user-probe" has registered
    When the configuration is requested with a user access token
    Then the answer is a 401 problem

  Scenario: A node cannot report capabilities in another node's name
    Given "victim-node" has registered
    And "honest-node" has registered
    When the node sends a capability report for "victim-node"
    Then the answer is a 400 problem
    And the capability snapshot of "victim-node" is unchanged

  Scenario: Secrets appear only in the response that delivers them and never in logs
    Given the control plane logs everything
    When node "secret-node" registers, fetches its configuration and acknowledges it
    Then the PSK appears in no response and no log line
    And the node JWT appears only in the registration response and in no log line
    And the Worker API bearer token appears only in the configuration response and in no log line
    And the bearer token column of "secret-node" holds ciphertext that opens to that token

  Scenario: The config_version changes exactly when the configuration does
    Given "versioned-node" has registered
    When the node fetches its configuration twice
    Then both fetches carry the same config_version
    When the operator sets "nodes.inference_image_cpu" to "quay.io/example/ollama:2" and restarts the orchestrator
    And the node fetches its configuration
    Then the config_version is a new ULID that sorts after the previous one
    And the configuration tells the node to start "quay.io/example/ollama:2"

  Scenario Outline: The inference backend instruction follows the report and policy
    Given the orchestrator setting "nodes.inference_image_cuda" is "registry.example/ollama:cuda"
    And the node has registered as "<slug>" reporting <report>
    When the node fetches its configuration
    Then the inference backend instruction is <instruction>

    Examples:
      | slug        | report                        | instruction                                      |
      | cpu-node    | inference supported           | variant cpu                                      |
      | cuda-node   | a GPU with cuda_capability    | variant cuda with "registry.example/ollama:cuda" |
      | host-ollama | an existing inference service | absent                                           |
      | sandbox-box | the label sandbox_only        | absent                                           |

  Scenario Outline: A malformed config ack is refused and nothing is recorded
    Given "ack-node" has registered and fetched its configuration
    When the node sends an acknowledgement whose <flaw>
    Then the answer is a 400 problem
    And no ack is recorded for "ack-node"

    Examples:
      | flaw                      |
      | version is 2              |
      | status is "rolled_back"   |
      | node_slug is "other-node" |
      | body is not JSON          |
