Feature: Login abuse controls and bad input

  Logins are rate limited per client IP and per handle from one IP, and repeated credential
  failures lock the client IP (and the handle from that IP) out for a while, even for the right
  password; from other addresses the handle is slowed down. Every attempt is audited. Requests the gateway cannot read are refused with a problem and change nothing but
  the audit log.

  Background:
    Given a running PostgreSQL database

  Scenario: Wrong passwords from one IP lock it out until the lockout ends
    Given a gateway that locks out for 10 seconds after 3 failed logins
    When "admin" is tried with a wrong password 30 times from one IP
    Then the first 3 attempts are refused with 401
    And the other 27 attempts are refused with 429 and a Retry-After header
    And logging in as "admin" with the right password is refused with 429
    And the audit log holds a login_failure for each of the 31 attempts, 3 judged
    When the lockout has ended
    Then I can log in as "admin" again

  Scenario: Failures spread over many handles still lock out their IP
    Given a gateway that locks out for 60 seconds after 10 failed logins
    When 10 unknown handles are tried from one IP
    Then logging in as "admin" with the right password is refused with 429

  Scenario: Failures for one handle slow it down from every new IP
    Given a gateway behind a trusted proxy that locks out for 60 seconds after 10 failed logins
    And the user "olivia" exists
    When "admin" is tried with a wrong password from 10 different IPs
    Then logging in as "admin" with the right password from a new IP is refused with 429
    And "olivia" can log in from that IP

  Scenario: Too many attempts per minute from one IP
    Given a gateway that allows 3 login attempts per minute per IP
    When I log in as "admin" 3 times
    Then logging in as "admin" with the right password is refused with 429

  Scenario Outline: Unreadable login requests are refused and change nothing but the audit log
    Given a gateway that accepts request bodies of at most 2048 bytes
    When I send a login request with <body>
    Then the response is a <status> problem
    And no session, user or credential was written
    And the audit log holds <audited> login_failure rows for an invalid request

    Examples:
      | body                        | status | audited |
      | malformed JSON              | 400    | 1       |
      | a JSON array                | 400    | 1       |
      | a missing password          | 400    | 1       |
      | an empty handle             | 400    | 1       |
      | a number as the handle      | 400    | 1       |
      | a form content type         | 415    | 1       |
      | no body                     | 415    | 1       |
      | an oversized body           | 413    | 0       |

  Scenario Outline: Unreadable refresh requests are refused and change nothing but the audit log
    Given a gateway that accepts request bodies of at most 2048 bytes
    And I am logged in as "admin"
    When I send a refresh request with <body>
    Then the response is a <status> problem
    And my session still has its one refresh token
    And the audit log holds <audited> refresh_failure rows for an invalid request

    Examples:
      | body                        | status | audited |
      | malformed JSON              | 400    | 1       |
      | a missing refresh token     | 400    | 1       |
      | an empty refresh token      | 400    | 1       |
      | a form content type         | 415    | 1       |
      | an oversized body           | 413    | 0       |

  Scenario Outline: Unreadable admin requests are refused and change nothing
    Given a gateway that accepts request bodies of at most 2048 bytes
    And I am logged in as "admin"
    When I send a create-user request with <body>
    Then the response is a <status> problem
    And no session, user or credential was written

    Examples:
      | body                         | status |
      | malformed JSON               | 400    |
      | a missing password           | 400    |
      | a too short password         | 400    |
      | an invalid email             | 400    |
      | a string as is_admin         | 400    |
      | a form content type          | 415    |
      | an oversized body            | 413    |
