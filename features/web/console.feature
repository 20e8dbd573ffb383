Feature: Web console
  People use CyNode from a browser: the gateway serves a console at / where they sign in, run tasks
  and watch them finish, chat with a model, and where admins manage users and nodes, under the same
  rules as the API and the CLI. These
  scenarios drive a real Chromium against the all-in-one stack.

  Background:
    Given the all-in-one stack with its local node "web-node-01" ready
    And a browser

  Scenario: A signed-in user runs a commands task and watches it complete
    Given I am signed in to the console as "admin"
    When I create a commands task "echo hello from the console" in the console
    Then the task page shows the status "completed" without a reload by me
    And the task page's output is "hello from the console"

  Scenario: A running task's output appears on its page before the task completes
    Given I am signed in to the console as "admin"
    When I create a commands task "for i in 1 2 3 4 5; do echo line$i; sleep 2; done" in the console
    Then the task page shows "line1" in its output while the task is not yet completed
    And the task page shows the status "completed" without a reload by me
    And the task page's output is the lines "line1 line2 line3 line4 line5"

  Scenario: Job output that looks like a script is shown as text and runs nothing
    Given I am signed in to the console as "admin"
    When I create a commands task "printf '<script>alert(1)</script>'" in the console
    Then the task page shows the status "completed" without a reload by me
    And the task page's output is "<script>alert(1)</script>"
    And no dialog was opened

  Scenario: An admin creates a user, who sees no admin pages
    Given I am signed in to the console as "admin"
    When I create the user "dana" in the console
    And I sign in to the console as "dana"
    Then the console menu has no "Users" entry
    And the console menu has no "Nodes" entry
    And opening "/admin/users" answers 403 "Admin required"
    And opening "/admin/nodes" answers 403 "Admin required"
    And opening "/admin/credentials" answers 403 "Admin required"

  Scenario: After logging out, going back shows nothing private
    Given I am signed in to the console as "admin"
    And I created a commands task "echo private-marker" in the console
    When I open the task list
    And I log out of the console
    And I go back in the browser
    Then I see the login page without "private-marker"

  Scenario: A state-changing request without the CSRF token is refused
    Given I am signed in to the console as "admin"
    When the page posts a new task "echo forged-marker" without the CSRF token
    Then the answer is 403
    And the task list does not show "forged-marker"

  Scenario: A signed-in user asks a chat question and sees the answer stream in
    Given I am signed in to the console as "admin"
    When I ask "Count from 1 to 5, digits only." in the console chat with the model "gemma3-270m"
    Then the answer streams into the conversation as text
    And the stored conversation shows the same answer after a reload

  Scenario: An admin drains a node, then enables it again
    Given I am signed in to the console as "admin"
    When I drain the node "web-node-01" in the console
    Then the nodes page shows "web-node-01" as "draining"
    And the admin API shows the node "web-node-01" as "draining"
    When I enable the node "web-node-01" in the console
    Then the nodes page shows "web-node-01" as "enabled"
    And the admin API shows the node "web-node-01" as "enabled"

  Scenario: Without JavaScript the chat form still gets an answer, in one piece
    Given I am signed in to the console as "admin" in a browser without JavaScript
    When I send "Name one colour in one word." with the console's chat form
    Then the page that comes back shows my question and an answer
