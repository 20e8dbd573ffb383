Feature: Chat across a split deployment
  The gateway, the orchestrator and a node run as separate `cynode serve` processes that talk over
  HTTP: the gateway hands each chat to the control plane, which routes it to the node's Worker API
  inference route.

  Scenario: A chat completes through separate gateway, orchestrator and node processes
    Given an orchestrator process on a shared database
    And a gateway process that reaches that orchestrator over HTTP
    And a node process registered with that orchestrator, serving its embedded model
    And I am logged in to the gateway process as "admin"
    When I send a chat message "Hello" through the gateway process
    Then I receive a 200 response with non-empty response field
    And the orchestrator process routed the chat to the node over its Worker API
