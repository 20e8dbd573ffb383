Feature: Sandbox jobs that use the node's model

  A job with sandbox.use_inference runs in a container without network and still gets answers
  from the node's model, through its own Unix socket proxy, and through nothing else. The node
  itself runs the embedded llama.cpp backend where no Ollama exists, and fails fast when the
  backend its config asks for cannot start.

  Scenario: The sandbox receives the proxy URL when the job requests inference
    Given the node's inference backend is running
    And a Worker API on this node
    When a job using inference runs "echo $INFERENCE_PROXY_URL"
    Then the job completes
    And the job's stdout contains "http+unix://"

  Scenario: A network-less sandbox gets an answer from the model through the socket
    Given the node's inference backend is running
    And a Worker API on this node
    When a job using inference asks the model "The capital of France is" through its socket
    Then the job completes
    And the job printed status 200 and a non-empty answer

  Scenario: The proxy refuses other paths and oversize bodies from inside the sandbox
    Given the node's inference backend is running
    And a Worker API on this node
    When a job using inference probes its proxy
    Then the job completes
    And the job's stdout contains "GET /api/tags 404"
    And the job's stdout contains "POST /api/generate 404"
    And the job's stdout contains "POST /v1/chat/completions with 11 MiB 413"

  Scenario: The sandbox of an inference job still reaches no TCP address
    Given the node's inference backend is running
    And a Worker API on this node
    When a job using inference tries TCP connections to the host and the internet
    Then the job completes
    And every TCP connection attempt of the job failed
    And the job's only network interface is the loopback

  Scenario: The request cannot replace the proxy URL
    Given the node's inference backend is running
    And a Worker API on this node
    When a job using inference with env INFERENCE_PROXY_URL "http://10.0.0.1:11434" runs "echo $INFERENCE_PROXY_URL"
    Then the job's stdout contains "http+unix://%2Frun%2Fcynode%2Finference.sock"

  Scenario: The proxy is gone when the job is over
    Given the node's inference backend is running
    And a Worker API on this node
    When a job using inference runs "test -S /run/cynode/inference.sock && echo socket-present"
    Then the job's stdout contains "socket-present"
    And the job's proxy socket no longer exists on the host

  Scenario: A node without a running inference backend refuses inference jobs
    Given a Worker API on a node without an inference backend
    When a job using inference runs "echo $INFERENCE_PROXY_URL"
    Then the Worker API refuses the job with status 400 mentioning "use_inference"

  Scenario: A node running the embedded backend gets no container instruction
    Given the node's inference backend is running
    When the orchestrator decides the node's inference backend from its capability report
    Then the node is told to start no inference container

  Scenario: An Ollama image that cannot be pulled fails the config apply
    Given a node with no inference service and no embedded model
    When its config instructs an Ollama container from image "docker.io/ollama/ollama:cynode-unpullable"
    Then applying the config fails with an error naming "docker.io/ollama/ollama:cynode-unpullable"
