Feature: Initial User Authentication

  A user of the gateway signs in with a local account, keeps working by refreshing the
  short-lived access token, reads their own account, and ends the session with logout.
  Requirements: REQ-IDENTY-0104, 0105, 0106, 0119, 0122.

  Background:
    Given a running PostgreSQL database
    And the orchestrator API is running
    And an admin user exists with handle "admin"

  Scenario: User login with valid credentials
    When I login as "admin" with password "admin123"
    Then I receive an access token
    And I receive a refresh token

  Scenario: Token refresh returns new tokens
    Given I am logged in as "admin"
    When I refresh my token
    Then I receive a new access token
    And I receive a new refresh token
    And the old refresh token is invalidated

  Scenario: User logout revokes session
    Given I am logged in as "admin"
    When I logout
    Then my refresh token is invalidated
    And I cannot use the old access token

  Scenario: Get current user info
    Given I am logged in as "admin"
    When I request my user info
    Then I receive my user details including handle "admin"
