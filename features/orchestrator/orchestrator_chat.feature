Feature: Orchestrator chat
  The chat scenario of the orchestrator task lifecycle: a signed-in user's chat message is answered
  by a node's model through the orchestrator.

  Background:
    Given a running PostgreSQL database
    And the orchestrator API is running
    And an admin user exists with handle "admin"
    And I am logged in as "admin"

  Scenario: Chat returns model response
    When I send a chat message "Hello"
    Then I receive a 200 response with non-empty response field
