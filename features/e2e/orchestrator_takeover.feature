Feature: A job's answer survives the orchestrator that asked for it
  Two orchestrators share one database. When one is killed outright while its jobs run on a node,
  the other takes over each job once its lease runs out: it asks the node first, stores the answer
  the node kept for a job that finished meanwhile, adopts a run that is still going, and runs again
  only a job the node never got. No job runs twice on the node.

  Scenario: kill -9 of one of two orchestrators while 20 jobs run
    Given a gateway process serving HTTPS
    And two orchestrator processes with short leases on the same database
    And a node process "takeover-node" with 10 sandbox slots
    And I am logged in to the gateway as the admin
    When I create 20 tasks in commands mode that take between 2 and 10 seconds
    And the first orchestrator is killed with SIGKILL while it holds running jobs
    Then every task completes
    And no job ran more than once on node "takeover-node"
    And the surviving orchestrator took over every job the killed one had sent to the node
