"""The machine-readable reasons a job or task ends other than ``completed`` (CONTRACT.md section 8).

Workers put one in ``RunJobResponse.reason``; the orchestrator stores it next to the job's and the
task's status, and the task API and the CLI show it.
"""

from typing import Literal

__all__ = ["EndReason"]

EndReason = Literal[
    "timeout",
    "canceled",
    "shutdown",
    "exit_nonzero",
    "not_started",
    "disk_quota",
    "memory",
    "pids",
    "image_missing",
    "image_not_allowed",
    "image_pull_failed",
    "node_lost",
    "node_unreachable",
    "node_untrusted",
    "lease_expired",
    "result_not_stored",
    "worker_refused",
    "invalid_response",
    "invalid_payload",
]
"""
- ``timeout``, ``canceled``, ``shutdown``: the container was killed by its deadline, a cancel, or
  the worker stopping.
- ``exit_nonzero``: the command ran and exited non-zero; ``not_started``: it never ran.
- ``disk_quota``, ``memory``, ``pids``: the job hit its workspace quota, memory or process limit.
- ``image_missing``, ``image_not_allowed``: the image is not on the node, or not allowed there;
  ``image_pull_failed``: it was missing and could not be pulled from the allowed registries.
- ``node_lost``: the node stopped answering while it ran the job; ``node_unreachable``: no node
  took the job; ``node_untrusted``: its Worker API's TLS certificate was refused (CA or pin);
  ``lease_expired``: the orchestrator that held the job went away after sending it.
- ``result_not_stored``: the node answered, but the answer could not be stored.
- ``worker_refused``, ``invalid_response``: the Worker API refused the job or answered nonsense;
  ``invalid_payload``: the stored job could not be turned into a Worker API request.
"""
