Feature: The Ollama backend, pulled from a registry on the orchestrator's say-so
  A node with no inference service of its own reports so; the orchestrator answers with the
  Ollama image to run (its per-variant inference image setting) and the registries to pull from.
  The node pulls that image from the registry, starts it on Ollama's port, probes it and serves
  prompt tasks through it. The image is an Ollama-API-compatible stand-in built locally on the
  embedded Gemma model (no Ollama image can be pulled on the test host).

  Scenario: A prompt task is answered by the Ollama container the orchestrator chose
    Given the Ollama-compatible image is in the local registry and not on this host
    And a gateway process serving HTTPS
    And an orchestrator process whose nodes run that image for inference, pulled from that registry
    When a node process "ollama-node" with no inference service of its own starts
    Then the node pulled the image and runs it as its inference container
    And the container serves the image's model on the node's Ollama port
    And the orchestrator has the node's report that its own backend runs that model
    Given I am logged in to the gateway as the admin
    When I create a task with the prompt "The capital of France is"
    Then the task completes on node "ollama-node" with the model's non-empty answer
    And the inference container answered the task's chat completion
