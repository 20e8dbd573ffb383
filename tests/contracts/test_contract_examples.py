"""Every example payload decodes, re-encodes without loss, and together they exercise every field."""

import json
from collections import defaultdict
from typing import Any

import msgspec
import pytest

from cynode.contracts import codec, identity, nodes, problem, tasks, worker
from cynode.contracts.codec import PayloadError, UnsupportedVersionError, VersionedPayload

from .payload_examples import ALL_EXAMPLE_TYPES, load_example, normalise_timestamps

VERSIONED_EXAMPLES = {name: type_ for name, type_ in ALL_EXAMPLE_TYPES.items() if issubclass(type_, VersionedPayload)}


@pytest.mark.parametrize(("name", "type_"), ALL_EXAMPLE_TYPES.items(), ids=ALL_EXAMPLE_TYPES.keys())
def test_example_round_trips_without_loss(name: str, type_: type[Any]) -> None:
    original = load_example(name)

    decoded = codec.decode(json.dumps(original).encode(), type_)
    encoded = codec.encode(decoded)

    assert codec.decode(encoded, type_) == decoded
    assert normalise_timestamps(json.loads(encoded)) == normalise_timestamps(original)


@pytest.mark.parametrize(("name", "type_"), ALL_EXAMPLE_TYPES.items(), ids=ALL_EXAMPLE_TYPES.keys())
def test_convert_matches_decode(name: str, type_: type[Any]) -> None:
    original = load_example(name)

    assert codec.convert(original, type_) == codec.decode(json.dumps(original), type_)


def _record_fields(value: Any, seen: defaultdict[type, set[str]]) -> None:
    if isinstance(value, msgspec.Struct):
        seen[type(value)].update(codec.to_json_object(value))
        for field in msgspec.structs.fields(value):
            _record_fields(getattr(value, field.name), seen)
    elif isinstance(value, list):
        for item in value:
            _record_fields(item, seen)
    elif isinstance(value, dict):
        for item in value.values():
            _record_fields(item, seen)


def _contract_structs() -> list[type[msgspec.Struct]]:
    found = []
    for module in (identity, nodes, problem, tasks, worker):
        for name in module.__all__:
            member = getattr(module, name)
            if isinstance(member, type) and issubclass(member, msgspec.Struct):
                found.append(member)
    return found


def test_examples_exercise_every_field_of_every_struct() -> None:
    seen: defaultdict[type, set[str]] = defaultdict(set)
    for name, type_ in ALL_EXAMPLE_TYPES.items():
        _record_fields(codec.convert(load_example(name), type_), seen)

    missing = {
        struct.__name__: sorted({f.encode_name for f in msgspec.structs.fields(struct)} - seen[struct])
        for struct in _contract_structs()
    }
    assert {name: fields for name, fields in missing.items() if fields} == {}


@pytest.mark.parametrize(("name", "type_"), ALL_EXAMPLE_TYPES.items(), ids=ALL_EXAMPLE_TYPES.keys())
def test_unknown_fields_are_ignored_at_every_level(name: str, type_: type[Any]) -> None:
    original = load_example(name)
    extended = json.loads(json.dumps(original))
    extended["field_from_the_future"] = {"anything": [1, 2]}
    for value in extended.values():
        if isinstance(value, dict):
            value["nested_field_from_the_future"] = True

    assert codec.decode(json.dumps(extended), type_) == codec.decode(json.dumps(original), type_)


@pytest.mark.parametrize(("name", "type_"), VERSIONED_EXAMPLES.items(), ids=VERSIONED_EXAMPLES.keys())
def test_version_two_is_rejected_with_kind_and_versions(name: str, type_: type[VersionedPayload]) -> None:
    payload = load_example(name)
    payload["version"] = 2

    with pytest.raises(UnsupportedVersionError) as caught:
        codec.decode(json.dumps(payload), type_)

    assert str(caught.value) == f"unsupported {type_.payload_kind} version 2 (supported: 1)"
    assert (caught.value.kind, caught.value.received, caught.value.supported) == (type_.payload_kind, 2, 1)
    with pytest.raises(UnsupportedVersionError, match="version 2"):
        codec.convert(payload, type_)


@pytest.mark.parametrize(("name", "type_"), VERSIONED_EXAMPLES.items(), ids=VERSIONED_EXAMPLES.keys())
def test_unsupported_version_wins_over_shape_errors(name: str, type_: type[VersionedPayload]) -> None:
    # A newer peer's payload may have dropped or retyped fields; the version is what to report.
    payload = {"version": 7, "renamed_everything": True}

    with pytest.raises(UnsupportedVersionError, match="version 7"):
        codec.decode(json.dumps(payload), type_)
    with pytest.raises(UnsupportedVersionError, match="version 7"):
        codec.convert(payload, type_)


@pytest.mark.parametrize(("name", "type_"), VERSIONED_EXAMPLES.items(), ids=VERSIONED_EXAMPLES.keys())
def test_missing_version_is_a_payload_error(name: str, type_: type[VersionedPayload]) -> None:
    payload = load_example(name)
    del payload["version"]

    with pytest.raises(PayloadError, match="Object missing required field `version`"):
        codec.decode(json.dumps(payload), type_)
