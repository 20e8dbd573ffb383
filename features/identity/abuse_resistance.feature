Feature: Abuse resistance

  No one can lock the admin out, flood the audit log, take over a node's slug, pass one kind of token
  for another, starve the server of connections or read secrets from the database server's
  environment.

  Scenario: A thousand wrong logins from fifty addresses do not lock the admin out
    Given a gateway
    And the admin has logged in from 127.0.10.10
    When "admin" is tried with a wrong password 1000 times from 50 addresses
    Then logging in as "admin" from the new address 127.0.99.99 is refused with 429
    And the admin can log in from 127.0.10.10
    And the lockouts are audited

  Scenario: An admin unlocks a handle through the API
    Given a gateway
    And the user "olivia" exists
    And the admin has logged in from 127.0.10.10
    When "olivia" is tried with a wrong password 20 times from 20 addresses
    Then logging in as "olivia" from the new address 127.0.99.99 is refused with 429
    When the admin unlocks "olivia"
    Then "olivia" can log in from 127.0.99.99
    And the unlock is audited as done by "admin"

  Scenario: The host unlocks the admin with cynode user unlock
    Given a real cynode serve gateway
    When "admin" is tried with a wrong password 20 times from 20 addresses
    Then logging in as "admin" from the new address 127.0.99.99 is refused with 429
    When I run "cynode user unlock admin" on the host
    Then the admin can log in from 127.0.99.99
    And the unlock is audited as done by "host"

  Scenario: A flood of refused logins leaves valid logins as fast and the audit log bounded
    Given a gateway that locks out a source after 3 failed logins
    And the user "valerie" exists
    When I measure the median time of 9 logins of "valerie"
    And 20000 refused logins arrive from 5 addresses
    Then the median time of 9 logins of "valerie" is within 2 times the first
    And the audit log grew by at most its threshold per address and minute
    And the refusals were counted

  Scenario: A handle that cannot be a handle is refused before it is stored
    Given a gateway
    When I log in with a handle of 65 characters
    Then the response is a 400 problem
    When I log in with a handle holding an escape sequence
    Then the response is a 400 problem
    When I log in with the unknown handle "correct-horse-battery-staple"
    Then no audit row and no log line holds "correct-horse-battery-staple"

  Scenario: A PSK holder cannot take over a registered node's slug
    Given a task stack with a real worker node "real-node"
    When someone with the PSK registers "real-node" at "http://203.0.113.66:12090" without its node secret
    Then the registration is refused with 409
    And the refusal is audited
    And "real-node" keeps its Worker API URL and token
    And a task runs to completion on "real-node"

  Scenario: Re-registering with the node secret rotates the Worker API token
    Given a gateway with a registered and configured node "rotating-node"
    When "rotating-node" registers again with its node secret
    Then its next config carries a new Worker API token

  Scenario: An admin rotates a node's Worker API token
    Given a gateway with a registered and configured node "rotated-node"
    And I am logged in as "admin"
    When the admin rotates the Worker API token of "rotated-node"
    Then the node's next heartbeat is refused with 401
    When "rotated-node" registers again with its node secret
    Then its next config carries a new Worker API token

  Scenario: User and node tokens are not interchangeable
    Given a gateway with a registered and configured node "token-node"
    And I am logged in as "admin"
    Then the node token is refused by the user API with 401
    And my user token is refused by the control plane with 401

  Scenario: Half-open connections do not stop a normal login
    Given a real cynode serve gateway
    When a client holds 500 half-open connections
    Then the admin can log in from 127.0.10.10

  Scenario: The embedded PostgreSQL server does not see CyNode's secrets
    Given a real cynode serve gateway
    Then no process of its PostgreSQL server has a CYNODE variable in its environment
