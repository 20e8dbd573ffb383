"""Wire format of every CyNode HTTP API: msgspec Structs for request and response bodies.

This package owns what travels as JSON between the user gateway, the orchestrator control plane,
node managers and Worker APIs, plus the codec that turns bytes into those Structs and back
(`cynode.contracts.codec`). Database rows and in-process domain objects live elsewhere; handlers
convert between them and these Structs at the edge.

Conventions shared by every module here: snake_case field names, unknown fields ignored on
decode, absent optional fields omitted on encode, timestamps as timezone-aware `datetime`
(UTC is written with a `Z`), and node/worker payloads carrying `version: 1`.
"""
