"""Wire rules of individual payloads that a round trip alone would not catch."""

import json
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from cynode.contracts import codec
from cynode.contracts.codec import PayloadError, UnsupportedVersionError
from cynode.contracts.identity import LogoutRequest, TokenPair
from cynode.contracts.nodes import NodeConfigAck, NodeConfigurationPayload
from cynode.contracts.problem import (
    TYPE_UNSUPPORTED_PAYLOAD_VERSION,
    Problem,
    problem_for,
    problem_from_payload_error,
)
from cynode.contracts.tasks import CreateTaskRequest
from cynode.contracts.worker import ImagePull, OutputTruncation, RunJobRequest, RunJobResponse, SandboxSpec

from .payload_examples import load_example


def _successful_response() -> RunJobResponse:
    moment = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
    return RunJobResponse(
        version=1,
        task_id="task-a",
        job_id="job-a",
        status="completed",
        exit_code=0,
        stdout="",
        stderr="",
        started_at=moment,
        ended_at=moment,
        truncated=OutputTruncation(stdout=False, stderr=False),
    )


def test_zero_exit_code_empty_output_and_false_flags_are_all_on_the_wire() -> None:
    wire = json.loads(codec.encode(_successful_response()))

    assert wire["exit_code"] == 0
    assert wire["stdout"] == ""
    assert wire["stderr"] == ""
    assert wire["truncated"] == {"stdout": False, "stderr": False}
    assert wire["version"] == 1
    assert "artifacts" not in wire
    assert "run_diagnostics" not in wire
    assert "image_pull" not in wire


def test_an_image_pull_travels_with_a_response_and_its_unknown_parts_stay_out() -> None:
    pulled = ImagePull(image="r:5000/app:1", registry="r:5000", layers=2, seconds=0.5)
    wire = json.loads(codec.encode(msgspec.structs.replace(_successful_response(), image_pull=pulled)))

    # Neither the digest nor the size is claimed when podman could not tell them.
    assert wire["image_pull"] == {"image": "r:5000/app:1", "registry": "r:5000", "layers": 2, "seconds": 0.5}
    assert codec.convert(wire, RunJobResponse).image_pull == pulled


def test_response_without_exit_code_is_rejected() -> None:
    wire = json.loads(codec.encode(_successful_response()))
    del wire["exit_code"]

    with pytest.raises(PayloadError, match="Object missing required field `exit_code`"):
        codec.convert(wire, RunJobResponse)


@pytest.mark.parametrize("flag", ["stdout", "stderr"])
def test_response_without_a_truncation_flag_is_rejected(flag: str) -> None:
    wire = json.loads(codec.encode(_successful_response()))
    del wire["truncated"][flag]

    with pytest.raises(PayloadError, match=rf"missing required field `{flag}` - at `\$.truncated`"):
        codec.convert(wire, RunJobResponse)


def test_unknown_job_status_is_rejected() -> None:
    wire = json.loads(codec.encode(_successful_response()))
    wire["status"] = "exploded"

    with pytest.raises(PayloadError, match=r"Invalid enum value 'exploded' - at `\$.status`"):
        codec.convert(wire, RunJobResponse)


def test_minimal_job_request_omits_unset_sandbox_options() -> None:
    request = RunJobRequest(version=1, task_id="t", job_id="j", sandbox=SandboxSpec(image="alpine", command=["true"]))

    assert json.loads(codec.encode(request)) == {
        "version": 1,
        "task_id": "t",
        "job_id": "j",
        "sandbox": {"image": "alpine", "command": ["true"]},
    }


@pytest.mark.parametrize("unsafe_id", ["", ".", "..", "../etc", "a/b", "x..y", "nul\x00byte"])
@pytest.mark.parametrize("field", ["task_id", "job_id"])
def test_job_ids_must_be_safe_path_components(field: str, unsafe_id: str) -> None:
    request: dict[str, Any] = load_example("run_job_request")
    request[field] = unsafe_id

    with pytest.raises(PayloadError, match=f"{field} must be a non-empty path component"):
        codec.decode(json.dumps(request), RunJobRequest)


def test_opaque_non_uuid_job_ids_are_accepted() -> None:
    request: dict[str, Any] = load_example("run_job_request")
    request["task_id"], request["job_id"] = "bdd-task", "job.v2_final"

    decoded = codec.decode(json.dumps(request), RunJobRequest)

    assert (decoded.task_id, decoded.job_id) == ("bdd-task", "job.v2_final")


@pytest.mark.parametrize("policy", ["open", "allowlist", ""])
def test_network_policy_outside_phase_one_values_is_rejected(policy: str) -> None:
    request: dict[str, Any] = load_example("run_job_request")
    request["sandbox"]["network_policy"] = policy

    with pytest.raises(PayloadError, match=r"at `\$.sandbox.network_policy`"):
        codec.decode(json.dumps(request), RunJobRequest)


@pytest.mark.parametrize("timeout", [0, -5])
def test_non_positive_timeout_is_rejected(timeout: int) -> None:
    request: dict[str, Any] = load_example("run_job_request")
    request["sandbox"]["timeout_seconds"] = timeout

    with pytest.raises(PayloadError, match=r"Expected `int` >= 1 - at `\$.sandbox.timeout_seconds`"):
        codec.decode(json.dumps(request), RunJobRequest)


@pytest.mark.parametrize(
    "config_version",
    [
        "1",
        "01jtb3q2vx8m4k7r9n5p6w0yzb",
        "01JTB3Q2VX8M4K7R9N5P6W0YZ",
        "01JTB3Q2VX8M4K7R9N5P6W0YZI",
        "01JTB3Q2VX8M4K7R9N5P6W0YZB\n",
    ],
)
def test_config_version_must_be_a_canonical_ulid(config_version: str) -> None:
    payload: dict[str, Any] = load_example("node_configuration_payload")
    payload["config_version"] = config_version

    with pytest.raises(PayloadError, match=r"at `\$.config_version`"):
        codec.decode(json.dumps(payload), NodeConfigurationPayload)


def test_config_ack_status_accepts_only_applied_or_failed() -> None:
    ack: dict[str, Any] = load_example("node_config_ack")
    ack["status"] = "applied"
    assert codec.convert(ack, NodeConfigAck).status == "applied"

    ack["status"] = "rolled_back"
    with pytest.raises(PayloadError, match=r"Invalid enum value 'rolled_back' - at `\$.status`"):
        codec.convert(ack, NodeConfigAck)


def test_unknown_input_mode_is_rejected() -> None:
    with pytest.raises(PayloadError, match=r"Invalid enum value 'shell' - at `\$.input_mode`"):
        codec.decode(b'{"prompt": "ls", "input_mode": "shell"}', CreateTaskRequest)


def test_input_mode_defaults_to_prompt() -> None:
    request = codec.decode(b'{"prompt": "What is podman?"}', CreateTaskRequest)

    assert request.input_mode == "prompt"
    assert request.use_inference is False
    assert request.attachments == []


def test_token_type_is_always_sent() -> None:
    tokens = TokenPair(access_token="a", refresh_token="r", expires_in=900)

    assert json.loads(codec.encode(tokens))["token_type"] == "Bearer"


def test_logout_accepts_an_empty_object() -> None:
    assert codec.decode(b"{}", LogoutRequest) == LogoutRequest()


@pytest.mark.parametrize(
    ("status", "type_", "title"),
    [
        (400, "urn:cynodeai:error:validation", "Bad Request"),
        (401, "urn:cynodeai:error:authentication", "Unauthorized"),
        (403, "urn:cynodeai:error:authorization", "Forbidden"),
        (404, "urn:cynodeai:error:not_found", "Not Found"),
        (409, "https://cynode.ai/specs/conflict", "Conflict"),
        (413, "urn:cynodeai:error:validation", "Request Entity Too Large"),
        (429, "urn:cynodeai:error:rate_limit", "Too Many Requests"),
        (500, "urn:cynodeai:error:internal", "Internal Server Error"),
        (503, "urn:cynodeai:error:unavailable", "Service Unavailable"),
        (502, "about:blank", "Bad Gateway"),
        (499, "about:blank", "Client Error"),
        (599, "about:blank", "Server Error"),
    ],
)
def test_problem_for_fills_type_and_title_by_status(status: int, type_: str, title: str) -> None:
    assert problem_for(status, "why") == Problem(type=type_, title=title, status=status, detail="why")


def test_problem_without_detail_or_instance_omits_them() -> None:
    assert json.loads(codec.encode(problem_for(404))) == {
        "type": "urn:cynodeai:error:not_found",
        "title": "Not Found",
        "status": 404,
    }


@pytest.mark.parametrize("status", [200, 302, 600])
def test_problem_for_refuses_non_error_statuses(status: int) -> None:
    with pytest.raises(ValueError, match="4xx or 5xx"):
        problem_for(status)


def test_problem_from_payload_error_distinguishes_unsupported_versions() -> None:
    version_problem = problem_from_payload_error(UnsupportedVersionError("node_config_ack", 2))
    shape_problem = problem_from_payload_error(PayloadError("Expected `int`, got `str` - at `$.port`"))

    assert version_problem == Problem(
        type=TYPE_UNSUPPORTED_PAYLOAD_VERSION,
        title="Unsupported payload version",
        status=400,
        detail="unsupported node_config_ack version 2 (supported: 1)",
    )
    assert shape_problem == problem_for(400, "Invalid request body: Expected `int`, got `str` - at `$.port`")
