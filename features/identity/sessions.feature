Feature: Sessions end when they should

  A login starts a session. Each refresh continues it with a new token pair and retires the
  refresh token it was given. Logout or a replayed refresh token ends the session, and from
  that moment none of its tokens work, access tokens included.

  Background:
    Given a running PostgreSQL database
    And the orchestrator API is running
    And an admin user exists with handle "admin"

  Scenario: Replaying a rotated refresh token ends the whole session
    Given I am logged in as "admin"
    When I refresh my token
    And the old refresh token is presented again
    Then that refresh is refused with 401
    And the tokens the first refresh issued are refused too
    And the audit log records a failed "refresh_failure" with reason "refresh token reused"

  Scenario: Two refreshes racing with the same token
    Given I am logged in as "admin"
    When two clients refresh with the same refresh token at once
    Then exactly one refresh succeeds and the other is refused with 401

  Scenario: Logout ends only the session it is called from
    Given I am logged in as "admin" on two devices
    When I logout on the first device
    Then the tokens of the first device are refused
    And the second device can still call the API and refresh
    And the audit log records a successful "logout"

  Scenario: Logout with the refresh token of another of my sessions ends that one too
    Given I am logged in as "admin" on two devices
    When I logout on the first device handing in the refresh token of the second
    Then the tokens of the first device are refused
    And the tokens of the second device are refused
