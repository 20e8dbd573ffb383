Feature: A job's image pulled from a registry, and the pull reported
  A node that lacks a job's image pulls it from the orchestrator's registries before the job runs.
  The job's result says so (registry, digest, layers, size, seconds) and its stderr starts with the
  node's pull notes, which a user following the task sees; a job whose image is present reports no
  pull. The registry's pull token shows nowhere.

  Background:
    Given lab certificates made by "cynode tls selfsigned"

  Scenario: A task whose image the node lacks reports the pull, and the next one does not
    Given an image of its own in the login registry and not on this host
    And a gateway process serving HTTPS whose tasks run that image
    And an orchestrator process whose nodes pull from that registry with its token
    And a node process "pull-node" trusting the control plane by its CA file
    And I am logged in to the gateway as the admin
    When I create a task in commands mode with "echo from the pulled image"
    Then the task completes on node "pull-node" with stdout "from the pulled image\n"
    And its result reports the image pulled from that registry with the registry's digest
    And its stderr starts with the node's notes on pulling that image
    When I create a task in commands mode with "echo again"
    Then the task completes on node "pull-node" with stdout "again\n"
    And its result reports no image pull
    And the registry's token shows in no task result
