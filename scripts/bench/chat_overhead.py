#!/usr/bin/env python3
"""What the gateway's chat path adds over asking the node's llama.cpp server directly.

Runs a real ``cynode serve --role=all`` (embedded PostgreSQL, the node's embedded llama.cpp model)
and measures, in one run and alternating so both paths see the same machine state:

1. a 16-token chat completion through the gateway (auth, redaction, thread storage, orchestrator
   routing, the node's inference route) vs the same generation sent straight to the node's
   llama.cpp socket: both medians, the added milliseconds and the ratio (target: <= 10 ms added);
2. time to the first streamed token, the same way (target: within 10 ms of direct);
3. 8 concurrent streams: tokens per second through the gateway vs direct (target: >= 0.95).

The direct request is exactly what the node sends its backend for that chat (the base model's
question/answer frame, temperature 0, a fixed seed), so both paths generate the same tokens. This is
a measurement, not a test: it never fails on a slow result.

On a shared machine one path can be unlucky for seconds at a time, so every comparison alternates
which path goes first, and the streams are compared over several rounds after a warm-up round: each
round runs both paths back to back, and the round's ratio compares what the machine just gave both.
The stream question asks for a list, which the base model keeps writing until ``--stream-tokens``;
tokens are counted from the first visible one on both paths (the node drops a leading blank token).

Usage: .venv/bin/python scripts/bench/chat_overhead.py [--iterations N] [--streams N] [--rounds N]
  [--stream-tokens N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
from report import print_ratio

from cynode.contracts.openai import ChatMessage
from cynode.inference.embedded import SOCKET_NAME
from cynode.inference.framing import STOP_SEQUENCES, question_answer_prompt
from cynode.inference.settings import default_model_path
from cynode.inference.sse import sse_data
from cynode.inference.upstream import client_for, unix_socket_url

ADMIN_PASSWORD = "bench-admin-password"  # noqa: S105 - a throwaway stack's password
QUESTION = "Tell me about the history of Paris."
# Answered with a long list by the base model: streams end at the token limit, not at a stop sequence.
STREAM_QUESTION = "List twenty facts about the ocean."
MAX_TOKENS = 16
FIRST_TOKEN_TOKENS = 8
READY_SECONDS = 180
TOKEN_SECONDS = 24 * 3600

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_serve(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    gateway, control_plane, worker = free_port(), free_port(), free_port()
    node_yaml = data_dir / "node.yaml"
    node_yaml.write_text(
        f"version: 1\norchestrator:\n  url: http://127.0.0.1:{control_plane}\nnode:\n  id: bench-node\n"
        f"inference:\n  backend: embedded\n  embedded_model_path: {default_model_path()}\n"
    )
    env = {
        **os.environ,
        "CYNODE_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "CYNODE_NODE_REGISTRATION_PSK": "bench-psk",
        "CYNODE_LOG_LEVEL": "warning",
    }
    command = [
        sys.executable, "-m", "cynode.cli", "serve", "--role=all", "--data-dir", str(data_dir),
        "--node-config", str(node_yaml),
        "--set", f"gateway.port={gateway}", "--set", f"control_plane.port={control_plane}",
        "--set", f"worker_api.port={worker}",
        # A run on a busy machine can outlast the default 15 minutes of one access token.
        "--set", f"identity.access_token_ttl_seconds={TOKEN_SECONDS}",
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, f"http://127.0.0.1:{gateway}"


def wait_for_chat(gateway: str) -> str:
    """Log in and wait until a chat answers; returns the access token."""
    deadline = time.monotonic() + READY_SECONDS
    with httpx.Client(base_url=gateway, timeout=60) as client:
        while True:
            try:
                login = client.post("/v1/auth/login", json={"handle": "admin", "password": ADMIN_PASSWORD})
                if login.status_code == 200:
                    token: str = login.json()["access_token"]
                    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
                    chat = client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {token}"})
                    if chat.status_code == 200:
                        return token
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the stack did not answer a chat in time")
            time.sleep(0.5)


def chat_body(max_tokens: int, stream: bool, question: str = QUESTION) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": question}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "seed": 1,
        "stream": stream,
    }


def backend_body(max_tokens: int, stream: bool, question: str = QUESTION) -> dict[str, Any]:
    """What the node sends its backend for ``chat_body`` (the base model has no chat template)."""
    return {
        "prompt": question_answer_prompt([ChatMessage(role="user", content=question)]),
        "stop": list(STOP_SEQUENCES),
        "max_tokens": max_tokens,
        "temperature": 0,
        "seed": 1,
        "stream": stream,
    }


async def timed(call: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


def event_text(data: str) -> str:
    """The text a gateway chunk (``delta.content``) or a llama.cpp completion chunk (``text``) carries."""
    choices = json.loads(data).get("choices") or [{}]
    text = choices[0].get("text") or (choices[0].get("delta") or {}).get("content") or ""
    return str(text)


async def first_token_and_tokens(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> tuple[float, int]:
    """Seconds to the first event carrying visible text, and how many text events came from it on."""
    started = time.perf_counter()
    first: float | None = None
    tokens = 0
    async with client.stream("POST", path, json=body) as response:
        if response.status_code != 200:
            raise SystemExit(f"{path} answered {response.status_code}: {(await response.aread())[:300]!r}")
        async for data in sse_data(response.aiter_lines()):
            text = event_text(data)
            if first is None and text.strip():  # the first token a reader sees (not a bare space)
                first = time.perf_counter() - started
            tokens += 1 if text and first is not None else 0
    return (first if first is not None else time.perf_counter() - started), tokens


async def alternating(first: Callable[[], Awaitable[T]], second: Callable[[], Awaitable[T]], turn: int) -> tuple[T, T]:
    """Both results, ``first``'s first on even turns and ``second``'s first on odd ones."""
    if turn % 2:
        later = await second()
        return await first(), later
    earlier = await first()
    return earlier, await second()


async def bench(gateway_url: str, token: str, socket_path: Path, args: argparse.Namespace) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    iterations, streams = args.iterations, args.streams
    async with (
        httpx.AsyncClient(base_url=gateway_url, headers=headers, timeout=300) as gateway,
        client_for(unix_socket_url(str(socket_path)), timeout=300) as direct,
    ):

        async def via_gateway() -> float:
            return await timed(lambda: checked(gateway.post("/v1/chat/completions", json=chat_body(MAX_TOKENS, False))))

        async def straight() -> float:
            return await timed(lambda: checked(direct.post("/v1/completions", json=backend_body(MAX_TOKENS, False))))

        async def gateway_first_token() -> float:
            body = chat_body(FIRST_TOKEN_TOKENS, True)
            return (await first_token_and_tokens(gateway, "/v1/chat/completions", body))[0]

        async def direct_first_token() -> float:
            return (await first_token_and_tokens(direct, "/v1/completions", backend_body(FIRST_TOKEN_TOKENS, True)))[0]

        await alternating(via_gateway, straight, 0)
        gateway_times, direct_times = [], []
        gateway_ttft, direct_ttft = [], []
        for turn in range(iterations):
            gateway_time, direct_time = await alternating(via_gateway, straight, turn)
            gateway_times.append(gateway_time)
            direct_times.append(direct_time)
            gateway_first, direct_first = await alternating(gateway_first_token, direct_first_token, turn)
            gateway_ttft.append(gateway_first)
            direct_ttft.append(direct_first)

        print(f"== {MAX_TOKENS}-token completion ==")
        ratio = print_ratio(iterations, ("through the gateway", gateway_times), ("straight to llama.cpp", direct_times))
        added = (statistics.median(gateway_times) - statistics.median(direct_times)) * 1000
        print(f"added: {added:.1f} ms at the median (target <= 10 ms), ratio {ratio:.3f}")

        print("== time to first streamed token ==")
        ratio = print_ratio(iterations, ("through the gateway", gateway_ttft), ("straight to llama.cpp", direct_ttft))
        added = (statistics.median(gateway_ttft) - statistics.median(direct_ttft)) * 1000
        print(f"added: {added:.1f} ms at the median (target <= 10 ms), ratio {ratio:.3f}")

        print(f"== {streams} concurrent streams, up to {args.stream_tokens} tokens each ==")

        async def rate(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> float:
            started = time.perf_counter()
            results = await asyncio.gather(*(first_token_and_tokens(client, path, body) for _ in range(streams)))
            return sum(tokens for _, tokens in results) / (time.perf_counter() - started)

        async def gateway_rate() -> float:
            return await rate(gateway, "/v1/chat/completions", chat_body(args.stream_tokens, True, STREAM_QUESTION))

        async def direct_rate() -> float:
            return await rate(direct, "/v1/completions", backend_body(args.stream_tokens, True, STREAM_QUESTION))

        await alternating(gateway_rate, direct_rate, 0)  # warm-up: both prompts cached, connections open
        gateway_rates, direct_rates, round_ratios = [], [], []
        for turn in range(args.rounds):
            gateway_round, direct_round = await alternating(gateway_rate, direct_rate, turn)
            gateway_rates.append(gateway_round)
            direct_rates.append(direct_round)
            round_ratios.append(gateway_round / direct_round)
            print(f"  round {turn + 1}: gateway {gateway_round:.1f}, direct {direct_round:.1f} tokens/s")
        print(f"rounds:                {args.rounds} (after a warm-up round)")
        print(f"through the gateway:   median {statistics.median(gateway_rates):.1f} tokens/s")
        print(f"straight to llama.cpp: median {statistics.median(direct_rates):.1f} tokens/s")
        print(f"gateway/direct: median of the rounds' ratios {statistics.median(round_ratios):.3f} (target >= 0.95)")


async def checked(request: Awaitable[httpx.Response]) -> None:
    (await request).raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--stream-tokens", type=int, default=64)
    args = parser.parse_args()
    if min(args.iterations, args.streams, args.rounds, args.stream_tokens) < 1:
        parser.error("--iterations, --streams, --rounds and --stream-tokens must be at least 1")
    data_dir = Path(tempfile.mkdtemp(prefix="cynode-bench-"))
    data_dir.chmod(0o755)  # the embedded PostgreSQL runs as its own user and must reach its directory
    process, gateway = start_serve(data_dir)
    try:
        token = wait_for_chat(gateway)
        socket_path = data_dir / "node" / "inference" / SOCKET_NAME
        asyncio.run(bench(gateway, token, socket_path, args))
    finally:
        process.terminate()
        process.wait(timeout=60)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
