#!/usr/bin/env python3
"""Latency a job's inference proxy adds to a chat completion.

Starts the embedded llama.cpp backend (the same ``NodeInference`` a node runs) and one per-job
``InferenceProxy`` in front of it, then times, in one run and alternating so both see the same
machine state: a chat completion sent straight to the backend's socket, and the same request
through the proxy's socket. Generation is fixed (``temperature`` 0, ``max_tokens``, a seed) so
both paths do the same work. Prints both medians and their ratio, and what starting and stopping
a job's proxy costs. This is a measurement, not a test: it never fails on a slow result.

Usage: .venv/bin/python scripts/bench/inference_proxy.py [--iterations N] [--max-tokens N] [--model PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from cynode.inference.node import InferenceStartError, NodeInference
from cynode.inference.proxy import InferenceProxy
from cynode.inference.settings import InferenceSettings, default_model_path
from cynode.inference.upstream import client_for, unix_socket_url


async def time_completion(client: httpx.AsyncClient, body: dict[str, object]) -> float:
    started = time.perf_counter()
    response = await client.post("/v1/chat/completions", json=body)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise SystemExit(f"chat completion failed: {response.status_code} {response.text[:300]}")
    return elapsed


async def time_proxy_lifecycle(proxy: InferenceProxy) -> float:
    started = time.perf_counter()
    await proxy.start()
    await proxy.stop()
    return time.perf_counter() - started


async def bench(iterations: int, max_tokens: int, model: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="cynode-bench-") as state:
        inference = NodeInference(InferenceSettings(backend="embedded", embedded_model_path=model), Path(state))
        try:
            await inference.apply(None)
        except InferenceStartError as exc:
            raise SystemExit(str(exc)) from exc
        upstream = inference.upstream()
        assert upstream is not None
        proxy = InferenceProxy(Path(state) / "inference.sock", upstream, job_id="bench")
        await proxy.start()
        body: dict[str, object] = {
            "messages": [{"role": "user", "content": "The capital of France is"}],
            "max_tokens": max_tokens,
            "temperature": 0,
            "seed": 1,
        }
        direct_times: list[float] = []
        proxied_times: list[float] = []
        try:
            async with (
                client_for(upstream.base_url, timeout=120) as direct,
                client_for(unix_socket_url(str(proxy.socket_path)), timeout=120) as proxied,
            ):
                # The direct request names the model; the proxy fills it in, as it does for sandboxes.
                await time_completion(direct, {**body, "model": upstream.model})
                await time_completion(proxied, body)
                for _ in range(iterations):
                    direct_times.append(await time_completion(direct, {**body, "model": upstream.model}))
                    proxied_times.append(await time_completion(proxied, body))
            await proxy.stop()
            lifecycle_times = [await time_proxy_lifecycle(proxy) for _ in range(iterations)]
        finally:
            await proxy.stop()
            await inference.stop()
    direct_ms = statistics.median(direct_times) * 1000
    proxied_ms = statistics.median(proxied_times) * 1000
    print(f"chat completion, {max_tokens} tokens, {iterations} iterations each")
    print(f"direct to backend  median {direct_ms:8.1f} ms")
    print(f"through job proxy  median {proxied_ms:8.1f} ms  ({proxied_ms - direct_ms:+.1f} ms)")
    print(f"ratio proxy/direct {proxied_ms / direct_ms:.3f}")
    print(f"job proxy start+stop median {statistics.median(lifecycle_times) * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--model", type=Path, default=default_model_path())
    args = parser.parse_args()
    asyncio.run(bench(args.iterations, args.max_tokens, args.model))


if __name__ == "__main__":
    main()
