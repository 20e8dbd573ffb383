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

Usage: .venv/bin/python scripts/bench/chat_overhead.py [--iterations N] [--streams N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

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
MAX_TOKENS = 16
STREAM_TOKENS = 32
READY_SECONDS = 180


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


def chat_body(max_tokens: int, stream: bool) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": QUESTION}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "seed": 1,
        "stream": stream,
    }


def backend_body(max_tokens: int, stream: bool) -> dict[str, Any]:
    """What the node sends its backend for ``chat_body`` (the base model has no chat template)."""
    return {
        "prompt": question_answer_prompt([ChatMessage(role="user", content=QUESTION)]),
        "stop": list(STOP_SEQUENCES),
        "max_tokens": max_tokens,
        "temperature": 0,
        "seed": 1,
        "stream": stream,
    }


async def timed(call: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


def event_text(data: str) -> str:
    """The text a gateway chunk (``delta.content``) or a llama.cpp completion chunk (``text``) carries."""
    choices = json.loads(data).get("choices") or [{}]
    text = choices[0].get("text") or (choices[0].get("delta") or {}).get("content") or ""
    return str(text)


async def first_token_and_tokens(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> tuple[float, int]:
    """Seconds to the first event carrying text, and how many such events the stream had."""
    started = time.perf_counter()
    first: float | None = None
    tokens = 0
    async with client.stream("POST", path, json=body) as response:
        if response.status_code != 200:
            raise SystemExit(f"{path} answered {response.status_code}: {(await response.aread())[:300]!r}")
        async for data in sse_data(response.aiter_lines()):
            text = event_text(data)
            tokens += 1 if text else 0
            if first is None and text.strip():  # the first token a reader sees (not a bare space)
                first = time.perf_counter() - started
    return (first if first is not None else time.perf_counter() - started), tokens


async def bench(gateway_url: str, token: str, socket_path: Path, iterations: int, streams: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx.AsyncClient(base_url=gateway_url, headers=headers, timeout=120) as gateway,
        client_for(unix_socket_url(str(socket_path)), timeout=120) as direct,
    ):

        async def via_gateway() -> None:
            response = await gateway.post("/v1/chat/completions", json=chat_body(MAX_TOKENS, False))
            response.raise_for_status()

        async def straight() -> None:
            response = await direct.post("/v1/completions", json=backend_body(MAX_TOKENS, False))
            response.raise_for_status()

        await via_gateway()
        await straight()
        gateway_times, direct_times = [], []
        gateway_ttft, direct_ttft = [], []
        for _ in range(iterations):
            gateway_times.append(await timed(via_gateway))
            direct_times.append(await timed(straight))
            gateway_ttft.append((await first_token_and_tokens(gateway, "/v1/chat/completions", chat_body(8, True)))[0])
            direct_ttft.append((await first_token_and_tokens(direct, "/v1/completions", backend_body(8, True)))[0])

        print(f"== {MAX_TOKENS}-token completion ==")
        ratio = print_ratio(iterations, ("through the gateway", gateway_times), ("straight to llama.cpp", direct_times))
        added = (statistics.median(gateway_times) - statistics.median(direct_times)) * 1000
        print(f"added: {added:.1f} ms at the median (target <= 10 ms), ratio {ratio:.3f}")

        print("== time to first streamed token ==")
        ratio = print_ratio(iterations, ("through the gateway", gateway_ttft), ("straight to llama.cpp", direct_ttft))
        added = (statistics.median(gateway_ttft) - statistics.median(direct_ttft)) * 1000
        print(f"added: {added:.1f} ms at the median (target <= 10 ms), ratio {ratio:.3f}")

        async def concurrent(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> float:
            started = time.perf_counter()
            results = await asyncio.gather(*(first_token_and_tokens(client, path, body) for _ in range(streams)))
            elapsed = time.perf_counter() - started
            print(f"  {path}: {sum(tokens for _, tokens in results)} tokens in {elapsed:.2f} s")
            return sum(tokens for _, tokens in results) / elapsed

        gateway_rates, direct_rates = [], []
        for _ in range(max(1, iterations // 5)):
            gateway_rates.append(await concurrent(gateway, "/v1/chat/completions", chat_body(STREAM_TOKENS, True)))
            direct_rates.append(await concurrent(direct, "/v1/completions", backend_body(STREAM_TOKENS, True)))
        print(f"== {streams} concurrent streams ==")
        print(f"through the gateway:   median {statistics.median(gateway_rates):.1f} tokens/s")
        print(f"straight to llama.cpp: median {statistics.median(direct_rates):.1f} tokens/s")
        rate_ratio = statistics.median(gateway_rates) / statistics.median(direct_rates)
        print(f"gateway/direct: {rate_ratio:.3f} (target >= 0.95)")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--streams", type=int, default=8)
    args = parser.parse_args()
    if args.iterations < 1 or args.streams < 1:
        parser.error("--iterations and --streams must be at least 1")
    data_dir = Path(tempfile.mkdtemp(prefix="cynode-bench-"))
    data_dir.chmod(0o755)  # the embedded PostgreSQL runs as its own user and must reach its directory
    process, gateway = start_serve(data_dir)
    try:
        token = wait_for_chat(gateway)
        socket_path = data_dir / "node" / "inference" / SOCKET_NAME
        asyncio.run(bench(gateway, token, socket_path, args.iterations, args.streams))
    finally:
        process.terminate()
        process.wait(timeout=60)


if __name__ == "__main__":
    main()
