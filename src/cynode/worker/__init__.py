"""The Worker API of a node: authenticated ``jobs:run`` and job cancel over the sandbox executor.

The node's composition root builds ``WorkerService.from_settings(sandbox_settings, state_dir=...,
owner=<node slug>, max_request_bytes=<YAML worker_api.max_request_bytes>)``, awaits ``start()``,
serves ``create_worker_app(service)``, calls ``apply_config(...)`` once the orchestrator's config
arrives (until then ``/readyz`` is 503 and job calls are refused), and awaits ``stop()`` on exit.
"""

from cynode.worker.http import create_worker_app
from cynode.worker.service import AppliedConfig, WorkerService

__all__ = ["AppliedConfig", "WorkerService", "create_worker_app"]
