Feature: Per-job inference proxy on a Unix socket

  A sandbox job that asks for inference reaches the node's model only through a proxy the worker
  serves on a Unix socket for that job. The proxy caps request size, keeps the sandbox on the
  socket (never a TCP address) and answers its own health check.

  Background:
    Given the node's inference backend is running

  Scenario: The proxy refuses a request body over 10 MiB
    Given an inference proxy for a job in front of the node's backend
    When a request whose body is over 10 MiB is sent to the proxy
    Then the proxy answers with status 413

  Scenario: The proxy listens on its Unix socket and answers health checks there
    Given an inference proxy for a job in front of the node's backend
    Then the proxy's socket file exists
    And GET /healthz over the proxy's socket answers 200 "ok"

  Scenario: The sandbox environment carries the socket URL and no TCP inference address
    Given a Worker API on this node
    When a job using inference runs "env"
    Then the job completes
    And the job's environment has INFERENCE_PROXY_URL with the http+unix scheme
    And the job's environment has no OLLAMA_BASE_URL with a TCP address
