"""Secret redaction for chat content, applied before anything is stored or sent to a model.

Each detector names the kind of secret it finds (the chat audit log records kinds, never values)
and replaces only the secret itself with ``SECRET_REDACTED``, keeping the surrounding words (the
``Bearer`` in a header, the user and host of a URL) so the model still understands the message.
Already redacted text is left alone, so redacting twice changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

REDACTED: Final = "SECRET_REDACTED"


@dataclass(frozen=True)
class _Detector:
    kind: str
    pattern: re.Pattern[str]
    group: int = 0
    """The capture group holding the secret (0: the whole match)."""


_DETECTORS: Final = (
    _Detector(
        "private_key",
        re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.DOTALL),
    ),
    _Detector("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+")),
    _Detector("openai_api_key", re.compile(r"\bsk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_-]{16,}")),
    _Detector("github_token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})")),
    _Detector("aws_access_key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    _Detector("google_api_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    _Detector("slack_token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
    _Detector("bearer_token", re.compile(r"(?i)\bbearer\s+([A-Za-z0-9._~+/-]{12,}=*)"), group=1),
    _Detector("url_password", re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s:/@]+:([^\s@/]+)@"), group=1),
    _Detector(
        "assigned_secret",
        re.compile(r"(?i)\b(?:password|passwd|secret|api[_-]?key|access[_-]?token)\s*[:=]\s*[\"']?([^\s\"',;]{6,})"),
        group=1,
    ),
)


@dataclass(frozen=True)
class Redaction:
    text: str
    kinds: frozenset[str]


def redact(text: str) -> Redaction:
    """``text`` with every detected secret replaced by ``SECRET_REDACTED``, and the kinds found."""
    kinds: set[str] = set()
    for detector in _DETECTORS:

        def replace(match: re.Match[str], detector: _Detector = detector) -> str:
            secret = match.group(detector.group)
            if secret == REDACTED:
                return match.group(0)
            kinds.add(detector.kind)
            start, end = match.span(detector.group)
            offset = match.start(0)
            whole = match.group(0)
            return whole[: start - offset] + REDACTED + whole[end - offset :]

        text = detector.pattern.sub(replace, text)
    return Redaction(text, frozenset(kinds))
