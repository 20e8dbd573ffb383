"""Codec behaviour: error messages, nested version checks, timestamps and helper encoders."""

import json
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from cynode.contracts import codec
from cynode.contracts.codec import PayloadError, UnsupportedVersionError
from cynode.contracts.nodes import NodeCapabilityReport, NodeHeartbeat, NodeRegistrationRequest
from cynode.contracts.tasks import TaskResultJob
from cynode.contracts.worker import OutputTruncation, RunJobResponse

from .payload_examples import load_example


def test_wrong_type_reports_the_json_path() -> None:
    report = load_example("node_capability_report")
    report["compute"]["cpu_cores"] = "eighty"

    with pytest.raises(PayloadError) as caught:
        codec.decode(json.dumps(report), NodeCapabilityReport)

    assert not isinstance(caught.value, UnsupportedVersionError)
    assert str(caught.value) == "Expected `int`, got `str` - at `$.compute.cpu_cores`"


def test_convert_reports_the_same_path() -> None:
    report = load_example("node_capability_report")
    report["gpu"]["devices"][1]["vram_mb"] = 8.5

    with pytest.raises(PayloadError, match=r"Expected `int \| null`, got `float` - at `\$.gpu.devices\[1\].vram_mb`"):
        codec.convert(report, NodeCapabilityReport)


def test_nested_capability_version_is_checked_in_registration() -> None:
    registration = load_example("node_registration_request")
    registration["capability"]["version"] = 2

    with pytest.raises(UnsupportedVersionError) as caught:
        codec.decode(json.dumps(registration), NodeRegistrationRequest)

    assert str(caught.value) == "unsupported node_capability_report version 2 (supported: 1)"


def test_nested_version_wins_over_nested_shape_errors() -> None:
    registration = {"psk": "x", "capability": {"version": 3, "platform": "not an object"}}

    with pytest.raises(UnsupportedVersionError, match="version 3"):
        codec.decode(json.dumps(registration), NodeRegistrationRequest)


def test_nested_type_error_carries_the_full_path() -> None:
    registration = load_example("node_registration_request")
    registration["capability"]["compute"]["ram_mb"] = None

    with pytest.raises(PayloadError, match=r"Expected `int`, got `null` - at `\$.capability.compute.ram_mb`"):
        codec.decode(json.dumps(registration), NodeRegistrationRequest)


def test_boolean_version_is_a_type_error_not_a_version_error() -> None:
    heartbeat = load_example("node_heartbeat")
    heartbeat["version"] = True

    with pytest.raises(PayloadError) as caught:
        codec.decode(json.dumps(heartbeat), NodeHeartbeat)

    assert not isinstance(caught.value, UnsupportedVersionError)
    assert "at `$.version`" in str(caught.value)


@pytest.mark.parametrize("body", [b"", b"{", b"not json", b'{"version": 1,}'])
def test_malformed_json_is_a_payload_error(body: bytes) -> None:
    with pytest.raises(PayloadError, match=r"^invalid JSON: ") as caught:
        codec.decode(body, NodeHeartbeat)

    assert not isinstance(caught.value, UnsupportedVersionError)


def test_validation_error_followed_by_malformed_json_reports_the_json() -> None:
    with pytest.raises(PayloadError, match=r"^invalid JSON: "):
        codec.decode(b'{"version": "one", ', NodeHeartbeat)


def test_payload_errors_are_value_errors() -> None:
    assert issubclass(UnsupportedVersionError, PayloadError)
    assert issubclass(PayloadError, ValueError)


def test_decode_accepts_str_and_bytes() -> None:
    text = json.dumps(load_example("node_heartbeat"))

    assert codec.decode(text, NodeHeartbeat) == codec.decode(text.encode(), NodeHeartbeat)


def test_utc_timestamps_encode_with_z() -> None:
    heartbeat = NodeHeartbeat(version=1, node_slug="n1", sent_at=datetime(2026, 5, 4, 12, 0, tzinfo=UTC))

    assert json.loads(codec.encode(heartbeat))["sent_at"] == "2026-05-04T12:00:00Z"


def test_offset_timestamps_keep_their_instant() -> None:
    decoded = codec.decode(b'{"version": 1, "node_slug": "n1", "sent_at": "2026-05-04T14:00:00+02:00"}', NodeHeartbeat)

    assert decoded.sent_at == datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
    assert decoded.sent_at.utcoffset() == timedelta(hours=2)


def test_timestamps_without_offset_are_rejected() -> None:
    with pytest.raises(PayloadError, match=r"timezone component - at `\$.sent_at`"):
        codec.decode(b'{"version": 1, "node_slug": "n1", "sent_at": "2026-05-04T12:00:00"}', NodeHeartbeat)


def test_encode_canonical_sorts_keys_without_whitespace() -> None:
    registration = codec.convert(load_example("node_registration_request"), NodeRegistrationRequest)

    canonical = codec.encode_canonical(registration.capability)

    parsed = json.loads(canonical)
    assert canonical == json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert list(parsed) == sorted(parsed)


def test_to_json_object_embeds_a_worker_response_as_an_object() -> None:
    response = RunJobResponse(
        version=1,
        task_id="t-1",
        job_id="j-1",
        status="completed",
        exit_code=0,
        stdout="hello\n",
        stderr="",
        started_at=datetime(2026, 5, 4, 12, 0, tzinfo=UTC),
        ended_at=datetime(2026, 5, 4, 12, 0, 1, tzinfo=UTC),
        truncated=OutputTruncation(stdout=False, stderr=False),
    )
    job = TaskResultJob(
        id=UUID("8e9f0a1b-3c4d-4e5f-8a6b-7c8d9e0f1a2b"),
        status="completed",
        attempt=1,
        result=codec.to_json_object(response),
    )

    wire = json.loads(codec.encode(job))

    assert wire["result"]["stdout"] == "hello\n"
    assert wire["result"]["started_at"] == "2026-05-04T12:00:00Z"
    assert codec.convert(wire["result"], RunJobResponse) == response
