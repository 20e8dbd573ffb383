"""Example payloads under `examples/` and the Struct each one decodes into."""

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from cynode.contracts import identity, nodes, problem, tasks, worker, worker_jobs

EXAMPLES_DIR = Path(__file__).parent / "examples"

EXAMPLE_TYPES: dict[str, type[Any]] = {
    "node_capability_report": nodes.NodeCapabilityReport,
    "node_bootstrap_payload": nodes.NodeBootstrapPayload,
    "node_configuration_payload": nodes.NodeConfigurationPayload,
    "node_config_ack": nodes.NodeConfigAck,
    "node_heartbeat": nodes.NodeHeartbeat,
    "run_job_request": worker.RunJobRequest,
    "run_job_response": worker.RunJobResponse,
    "cancel_job_response": worker.CancelJobResponse,
    "job_state_response": worker_jobs.JobStateResponse,
    "ack_job_response": worker_jobs.AckJobResponse,
    "problem": problem.Problem,
    "login_request": identity.LoginRequest,
    "token_pair": identity.TokenPair,
    "refresh_request": identity.RefreshRequest,
    "logout_request": identity.LogoutRequest,
    "user_response": identity.UserResponse,
    "create_user_request": identity.CreateUserRequest,
    "reset_password_request": identity.ResetPasswordRequest,
    "create_task_request": tasks.CreateTaskRequest,
    "task_response": tasks.TaskResponse,
    "task_list_response": tasks.TaskListResponse,
    "task_result_response": tasks.TaskResultResponse,
    "task_logs_response": tasks.TaskLogsResponse,
    "cancel_task_response": tasks.CancelTaskResponse,
}

# The registration body embeds the capability report example rather than repeating it in a file.
REGISTRATION_PSK = "psk-for-tests-only"
REGISTRATION_NODE_SECRET = "node-secret-for-tests-only"


def load_example(name: str) -> dict[str, Any]:
    if name == "node_registration_request":
        return {
            "psk": REGISTRATION_PSK,
            "capability": load_example("node_capability_report"),
            "node_secret": REGISTRATION_NODE_SECRET,
        }
    data: dict[str, Any] = json.loads((EXAMPLES_DIR / f"{name}.json").read_text(encoding="utf-8"))
    return data


ALL_EXAMPLE_TYPES: dict[str, type[Any]] = {
    **EXAMPLE_TYPES,
    "node_registration_request": nodes.NodeRegistrationRequest,
}

_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T")


def normalise_timestamps(value: Any) -> Any:
    """Parsed JSON with RFC 3339 strings turned into datetimes, so `Z` and `+00:00` compare equal."""
    if isinstance(value, dict):
        return {key: normalise_timestamps(item) for key, item in value.items()}
    if isinstance(value, list):
        return [normalise_timestamps(item) for item in value]
    if isinstance(value, str) and _TIMESTAMP.match(value):
        return datetime.fromisoformat(value)
    return value
