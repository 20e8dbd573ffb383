"""The prompt job's fixed program, run with the host's python3 against a fake inference socket."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from socketserver import ThreadingUnixStreamServer
from typing import Any
from urllib.parse import quote

import pytest

from cynode.tasks.prompt_job import PROMPT_ENV, PROMPT_SCRIPT, prompt_sandbox

IMAGE = "localhost/cynode-sandbox:latest"


@dataclass
class FakeModel:
    """An OpenAI-compatible chat endpoint on a Unix socket that records what it was asked."""

    socket_path: Path
    status: int = HTTPStatus.OK
    answer: Any = "4"
    requests: list[tuple[str, str, str | None, dict[str, Any]]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return "http+unix://" + quote(str(self.socket_path), safe="")

    def body(self) -> bytes:
        if self.status != HTTPStatus.OK:
            return b'{"error": {"message": "model not loaded"}}'
        return json.dumps(
            {"choices": [{"index": 0, "message": {"role": "assistant", "content": self.answer}}]}
        ).encode()


@pytest.fixture
def fake_model(tmp_path: Path) -> Iterator[FakeModel]:
    model = FakeModel(tmp_path / "inference proxy.sock")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            return

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["content-length"]))
            model.requests.append((self.command, self.path, self.headers.get("host"), json.loads(raw)))
            data = model.body()
            self.send_response(model.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    class Server(ThreadingUnixStreamServer):
        daemon_threads = True

        def get_request(self) -> tuple[socket.socket, Any]:
            connection, _ = super().get_request()
            return connection, ("local", 0)  # BaseHTTPRequestHandler wants a (host, port) address

    server = Server(str(model.socket_path), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield model
    server.shutdown()
    server.server_close()


def run_prompt_job(prompt: str, proxy_url: str | None) -> subprocess.CompletedProcess[str]:
    sandbox = prompt_sandbox(prompt, IMAGE)
    env = {**sandbox.env, **({"INFERENCE_PROXY_URL": proxy_url} if proxy_url is not None else {})}
    command = [sys.executable, *sandbox.command[1:]]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=30, check=False)


def test_the_answer_is_printed_and_the_prompt_travels_in_the_environment(fake_model: FakeModel) -> None:
    prompt = 'What is 2+2? "quotes" and $(shell) stay text'

    finished = run_prompt_job(prompt, fake_model.url)

    assert (finished.returncode, finished.stdout, finished.stderr) == (0, "4\n", "")
    assert fake_model.requests == [
        ("POST", "/v1/chat/completions", "localhost", {"messages": [{"role": "user", "content": prompt}]})
    ]


def test_the_job_is_a_fixed_program_with_inference() -> None:
    sandbox = prompt_sandbox("rm -rf / # never run", IMAGE)

    assert sandbox.command == ["python3", "-c", PROMPT_SCRIPT]
    assert sandbox.env == {PROMPT_ENV: "rm -rf / # never run"}
    assert sandbox.use_inference is True
    assert sandbox.image == IMAGE


def test_model_error_fails_with_a_clear_message(fake_model: FakeModel) -> None:
    fake_model.status = HTTPStatus.SERVICE_UNAVAILABLE

    finished = run_prompt_job("hi", fake_model.url)

    assert finished.returncode == 1
    assert finished.stdout == ""
    assert finished.stderr.startswith("cynode prompt job: inference answered HTTP 503: ")
    assert "model not loaded" in finished.stderr


@pytest.mark.parametrize("answer", [None, "", " \n"])
def test_answer_without_text_fails(fake_model: FakeModel, answer: str | None) -> None:
    fake_model.answer = answer

    finished = run_prompt_job("hi", fake_model.url)

    assert (finished.returncode, finished.stderr) == (1, "cynode prompt job: the model returned an empty answer\n")


def test_no_socket_fails(tmp_path: Path) -> None:
    finished = run_prompt_job("hi", "http+unix://" + quote(str(tmp_path / "absent.sock"), safe=""))

    assert finished.returncode == 1
    assert finished.stderr.startswith("cynode prompt job: inference request failed: ")


@pytest.mark.parametrize("url", [None, "http://127.0.0.1:11434", "http+unix://"])
def test_missing_or_foreign_proxy_url_fails(url: str | None) -> None:
    finished = run_prompt_job("hi", url)

    assert finished.returncode == 1
    assert "INFERENCE_PROXY_URL must be an http+unix:// URL" in finished.stderr
