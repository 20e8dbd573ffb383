"""Encode wire Structs to JSON and decode JSON into them, with errors a client can act on.

Decoding checks field types (msgspec) and, for versioned payloads anywhere in the target type,
that `version` is the supported one. A wrong version is reported before any other problem:
a payload from a newer peer usually fails validation only because its shape moved with its
version, and the version is the cause worth telling the operator about.
"""

import functools
from datetime import datetime
from typing import Annotated, Any, ClassVar, TypeVar, cast

import msgspec

__all__ = [
    "SUPPORTED_VERSION",
    "PayloadError",
    "Timestamp",
    "UnsupportedVersionError",
    "VersionedPayload",
    "convert",
    "decode",
    "encode",
    "encode_canonical",
    "to_json_object",
]

T = TypeVar("T")

SUPPORTED_VERSION = 1

# Requiring an offset on decode keeps naive datetimes out of the system; msgspec writes UTC as `Z`.
Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]


class PayloadError(ValueError):
    """A body that is not JSON or does not fit the expected payload; the message names the path."""


class UnsupportedVersionError(PayloadError):
    """A versioned payload whose `version` this build does not speak."""

    def __init__(self, kind: str, received: int, supported: int = SUPPORTED_VERSION) -> None:
        super().__init__(f"unsupported {kind} version {received} (supported: {supported})")
        self.kind = kind
        self.received = received
        self.supported = supported


class VersionedPayload(msgspec.Struct, kw_only=True):
    """Base of every payload that carries `version`; subclasses name their kind for error messages."""

    payload_kind: ClassVar[str]
    version: int


_encoder = msgspec.json.Encoder()
_canonical_encoder = msgspec.json.Encoder(order="sorted")
_untyped_decoder = msgspec.json.Decoder()
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def _decoder(type_: Any) -> msgspec.json.Decoder[Any]:
    decoder = _decoders.get(type_)
    if decoder is None:
        decoder = _decoders[type_] = msgspec.json.Decoder(type_)
    return decoder


# One hop = (Python attribute name, JSON key), so a path can be followed on a Struct or a dict.
_Path = tuple[tuple[str, str], ...]


@functools.cache
def _versioned_locations(type_: Any) -> tuple[tuple[_Path, type[VersionedPayload]], ...]:
    """Where versioned payloads sit inside `type_`: at the root or behind nested Struct fields."""
    found: list[tuple[_Path, type[VersionedPayload]]] = []

    def visit(info: msgspec.inspect.Type, path: _Path, enclosing: frozenset[type]) -> None:
        if isinstance(info, msgspec.inspect.Metadata):
            visit(info.type, path, enclosing)
        elif isinstance(info, msgspec.inspect.UnionType):
            for member in info.types:
                visit(member, path, enclosing)
        elif isinstance(info, msgspec.inspect.StructType) and info.cls not in enclosing:
            if issubclass(info.cls, VersionedPayload):
                found.append((path, info.cls))
            for field in info.fields:
                visit(field.type, (*path, (field.name, field.encode_name)), enclosing | {info.cls})

    visit(msgspec.inspect.type_info(type_), (), frozenset())
    return tuple(found)


def _member(node: Any, attribute: str, key: str) -> Any:
    if isinstance(node, dict):
        return node.get(key)
    if isinstance(node, msgspec.Struct):
        return getattr(node, attribute, None)
    return None


def _check_versions(value: Any, type_: Any) -> None:
    """Raise UnsupportedVersionError for the first versioned payload in `value` with a foreign version.

    `value` is either raw parsed JSON or an already decoded Struct. Anything that is not an
    integer version is left for type validation to report.
    """
    for path, payload_cls in _versioned_locations(type_):
        node = value
        for attribute, key in path:
            node = _member(node, attribute, key)
        version = _member(node, "version", "version")
        if isinstance(version, int) and not isinstance(version, bool) and version != SUPPORTED_VERSION:
            raise UnsupportedVersionError(payload_cls.payload_kind, version)


def _parse(data: bytes | str) -> Any:
    try:
        return _untyped_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise PayloadError(f"invalid JSON: {exc}") from exc


def encode(obj: Any) -> bytes:
    """Serialize a Struct (or builtins holding Structs) to compact JSON bytes."""
    return _encoder.encode(obj)


def encode_canonical(obj: Any) -> bytes:
    """Serialize with object keys sorted and no whitespace: stable bytes for hashing."""
    return _canonical_encoder.encode(obj)


def to_json_object(payload: msgspec.Struct) -> dict[str, Any]:
    """The JSON object a Struct encodes to, as builtins (for jsonb columns or embedding in another payload)."""
    return cast(dict[str, Any], msgspec.to_builtins(payload))


def decode(data: bytes | str, type_: type[T]) -> T:
    """Parse and validate JSON into `type_`.

    Raises UnsupportedVersionError for a versioned payload with a version other than 1, and
    PayloadError for malformed JSON or a shape mismatch (message carries the JSON path).
    """
    try:
        value = _decoder(type_).decode(data)
    except msgspec.ValidationError as exc:
        _check_versions(_parse(data), type_)
        raise PayloadError(str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise PayloadError(f"invalid JSON: {exc}") from exc
    _check_versions(value, type_)
    return cast(T, value)


def convert(obj: dict[str, Any], type_: type[T]) -> T:
    """Validate already parsed JSON (e.g. a jsonb column) into `type_`; same errors as `decode`."""
    _check_versions(obj, type_)
    try:
        return msgspec.convert(obj, type_)
    except msgspec.ValidationError as exc:
        raise PayloadError(str(exc)) from exc
