Feature: OpenAI-compatible chat contract
  Open WebUI, the official OpenAI SDKs and `cynode chat` talk to a CyNode deployment through the
  gateway's OpenAI-compatible surface. Here the whole stack runs in one process and the answer comes
  from the node's embedded llama.cpp model.

  Background:
    Given a running PostgreSQL database
    And the orchestrator API is running
    And an admin user exists with handle "admin"
    And I am logged in as "admin"

  Scenario: OpenAI-compatible model listing is available
    When I call GET "/v1/models"
    Then the response status is 200
    And the response is a list-models payload
    And the list names "cynodeai.pm" and the node's model

  Scenario: OpenAI-compatible chat completion returns a completion response
    When I call POST "/v1/chat/completions" with OpenAI-format messages
    Then the response status is 200
    And the response contains a completion at "choices[0].message.content"

  Scenario: Chat does not imply one task per message
    When I call POST "/v1/chat/completions" with OpenAI-format messages
    Then the response is a chat completion
    And no task was created for the chat
