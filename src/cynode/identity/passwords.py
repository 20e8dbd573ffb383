"""Password hashing: Argon2id PHC strings, computed off the event loop.

Owns the hashing parameters (CONTRACT §4: m=64 MiB, t=3, p=2, salt 16, hash 32) and the password
policy. Hashing costs tens of milliseconds of CPU and 64 MiB of memory, so both directions run in
a worker thread.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

log = logging.getLogger(__name__)

HASH_ALGORITHM: Final = "argon2id"
MIN_PASSWORD_LENGTH: Final = 8
MAX_PASSWORD_LENGTH: Final = 1024

_TIME_COST: Final = 3
_MEMORY_COST_KIB: Final = 64 * 1024
_PARALLELISM: Final = 2
_HASH_BYTES: Final = 32
_SALT_BYTES: Final = 16

_hasher = PasswordHasher(
    time_cost=_TIME_COST,
    memory_cost=_MEMORY_COST_KIB,
    parallelism=_PARALLELISM,
    hash_len=_HASH_BYTES,
    salt_len=_SALT_BYTES,
)


def _unpadded_b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii").rstrip("=")


# Verified against when a login names no usable credential, so an unknown handle costs the same
# time as a wrong password. Random salt and digest: it matches no password, and building it costs
# nothing, so even the first such login is not faster.
_DUMMY_HASH: Final = (
    f"$argon2id$v=19$m={_MEMORY_COST_KIB},t={_TIME_COST},p={_PARALLELISM}"
    f"${_unpadded_b64(secrets.token_bytes(_SALT_BYTES))}${_unpadded_b64(secrets.token_bytes(_HASH_BYTES))}"
)


def password_problem(password: str) -> str | None:
    """Why ``password`` is not acceptable as a new password, or None when it is."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Password must be at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"Password must be at most {MAX_PASSWORD_LENGTH} characters"
    return None


async def hash_password(password: str) -> str:
    """The PHC string for ``password`` with a fresh salt."""
    return await asyncio.to_thread(_hasher.hash, password)


def _matches(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except InvalidHashError:
        log.warning("password_hash_unreadable")
        return False
    except VerificationError:
        return False


async def verify_password(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash``; with no hash, spend the same time and say no."""
    if stored_hash is None:
        await asyncio.to_thread(_matches, _DUMMY_HASH, password)
        return False
    return await asyncio.to_thread(_matches, stored_hash, password)
