Feature: Admin user management

  Admins (users with is_admin, whatever their handle) create users, disable and re-enable them,
  reset their passwords and revoke their sessions. Every action takes effect at once and is
  audited. Other users get 403 from these routes.

  Background:
    Given a running PostgreSQL database
    And the orchestrator API is running
    And an admin user exists with handle "admin"
    And I am logged in as "admin"

  Scenario: An admin creates a user who can then log in
    When I create the user "alice"
    Then the response is 201 with the user "alice"
    And "alice" can log in
    And "alice" is not an admin
    And the audit log records a successful "user_created" for "alice"

  Scenario: A disabled user is shut out at once, and let back in when enabled
    Given the user "bob" exists and is logged in
    When I disable "bob"
    Then the session of "bob" is refused
    And "bob" cannot log in
    And the audit log records a successful "user_disabled" for "bob"
    When I enable "bob"
    Then "bob" can log in
    And the audit log records a successful "user_reenabled" for "bob"

  Scenario: Resetting a password ends the user's sessions
    Given the user "carol" exists and is logged in
    When I reset the password of "carol" to "a-brand-new-password"
    Then the session of "carol" is refused
    And "carol" cannot log in
    And "carol" can log in with password "a-brand-new-password"
    And the audit log records a successful "password_reset" for "carol"

  Scenario: Revoking a user's sessions
    Given the user "dave" exists and is logged in
    When I revoke the sessions of "dave"
    Then the session of "dave" is refused
    And "dave" can log in
    And the audit log records a successful "session_revoked" for "dave"

  Scenario Outline: Users who are not admins get 403 from every admin route
    Given the user "erin" exists and is logged in
    When "erin" calls the admin route <route>
    Then the response is a 403 problem
    And nothing about the admin account changed

    Examples:
      | route                                  |
      | POST /v1/users                         |
      | POST /v1/users/{admin}/disable         |
      | POST /v1/users/{admin}/enable          |
      | POST /v1/users/{admin}/reset_password  |
      | POST /v1/users/{admin}/revoke_sessions |

  Scenario: Admin rights come from is_admin, not from the handle
    Given the admin user "frank" exists and is logged in
    When "frank" creates the user "grace"
    Then the response is 201 with the user "grace"

  Scenario Outline: Handles that cannot be created
    When I create the user "<handle>"
    Then the response is a <status> problem
    And no user was created

    Examples:
      | handle   | status |
      | admin    | 409    |
      | system   | 400    |
      | Mallory  | 400    |
      | -dash    | 400    |

  Scenario: The reserved system user exists and cannot log in
    Then the user "system" exists as the reserved system user
    And "system" cannot log in
