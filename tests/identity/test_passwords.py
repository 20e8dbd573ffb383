"""Password hashing: parameters, verification, the dummy verification, and staying off the event loop."""

from __future__ import annotations

import asyncio
import base64
import time

import argon2
import pytest

from cynode.identity import passwords
from cynode.identity.passwords import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    hash_password,
    password_problem,
    verify_password,
)


def b64_length(segment: str) -> int:
    return len(base64.b64decode(segment + "=" * (-len(segment) % 4)))


async def test_hash_is_an_argon2id_phc_string_with_the_contract_parameters() -> None:
    stored = await hash_password("correct horse")
    _, algorithm, version, params, salt, digest = stored.split("$")
    assert (algorithm, version, params) == ("argon2id", "v=19", "m=65536,t=3,p=2")
    assert b64_length(salt) == 16
    assert b64_length(digest) == 32
    assert argon2.extract_parameters(stored).type is argon2.Type.ID


async def test_each_hash_gets_its_own_salt() -> None:
    assert await hash_password("same password") != await hash_password("same password")


async def test_verify_accepts_only_the_right_password() -> None:
    stored = await hash_password("correct horse")
    assert await verify_password(stored, "correct horse") is True
    assert await verify_password(stored, "correct horsf") is False
    assert await verify_password(stored, "") is False


async def test_an_unreadable_stored_hash_is_a_mismatch_not_an_error() -> None:
    assert await verify_password("$argon2id$garbage", "anything") is False
    assert await verify_password("", "anything") is False


async def test_no_hash_costs_a_full_verification_with_the_real_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unknown handle must cost what a wrong password costs: the same Argon2id work, done once.

    Asserted by structure rather than by a stopwatch, which a loaded CI host cannot keep honest.
    """
    stored = await hash_password("correct horse")
    verified: list[argon2.Parameters] = []
    real_hasher = passwords._hasher

    class CountingHasher:
        def verify(self, stored_hash: str, password: str) -> bool:
            verified.append(argon2.extract_parameters(stored_hash))
            return real_hasher.verify(stored_hash, password)

    monkeypatch.setattr(passwords, "_hasher", CountingHasher())
    assert await verify_password(stored, "wrong guess") is False
    assert await verify_password(None, "wrong guess") is False
    assert len(verified) == 2
    assert verified[0] == verified[1] == argon2.extract_parameters(stored)
    _, _, _, _, salt, digest = passwords._DUMMY_HASH.split("$")
    assert (b64_length(salt), b64_length(digest)) == (16, 32)


async def test_hashing_leaves_the_event_loop_free() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        started = time.perf_counter()
        stored = await hash_password("correct horse")
        await verify_password(stored, "correct horse")
        elapsed = time.perf_counter() - started
    finally:
        task.cancel()
    # A blocked loop would tick at most once or twice in total.
    assert ticks >= min(5, int(elapsed / 0.005) // 4), (ticks, elapsed)


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("x" * (MIN_PASSWORD_LENGTH - 1), f"Password must be at least {MIN_PASSWORD_LENGTH} characters"),
        ("x" * (MAX_PASSWORD_LENGTH + 1), f"Password must be at most {MAX_PASSWORD_LENGTH} characters"),
        ("x" * MIN_PASSWORD_LENGTH, None),
        ("x" * MAX_PASSWORD_LENGTH, None),
    ],
)
def test_password_policy(password: str, problem: str | None) -> None:
    assert password_problem(password) == problem
