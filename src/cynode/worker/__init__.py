"""The Worker API of a node: authenticated ``jobs:run``, job cancel, job state and result ack over the
sandbox executor; finished jobs' answers are kept (``kept_results``) until acknowledged.

The node's composition root builds ``WorkerService.from_settings(sandbox_settings, state_dir=...,
owner=<node slug>, max_request_bytes=<YAML worker_api.max_request_bytes>)``, awaits ``start()``,
serves ``create_worker_app(service)``, calls ``apply_config(...)`` once the orchestrator's config
arrives (until then ``/readyz`` is 503 and job calls are refused), and on exit awaits ``stop()``
before stopping the HTTP server, so calls of jobs killed by the shutdown still get their answer.
"""

from cynode.worker.http import create_worker_app
from cynode.worker.service import WorkerService

__all__ = ["WorkerService", "create_worker_app"]
