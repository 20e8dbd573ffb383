"""Worker nodes as the control plane sees them: registration, capabilities, config, heartbeats.

For other domains:
- ``cynode.nodes.dispatchable.dispatchable_nodes(conn, secret_box, heartbeat_grace_seconds)``: the
  nodes that may receive work now, as ``DispatchableNode`` (slug, id, Worker API URL, bearer token
  accessor, sandbox concurrency, inference state, latest capability report).
- ``cynode.nodes.readiness.inference_path_problem(ctx)``: the ``/readyz`` reason, or None.

Modules: ``http`` (routes), ``auth`` (node JWTs), ``registration`` (PSK, bootstrap),
``capabilities`` (reports, hash, heartbeats), ``config`` (pure payload building and the inference
decision), ``delivery`` (config fetch and ack), ``project_manager`` (PM model selection),
``repository`` (SQL).
"""
