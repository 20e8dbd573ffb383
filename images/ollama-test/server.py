"""An Ollama-API-compatible test server: one GGUF model behind Ollama's port and routes.

Stands in for the ``ollama/ollama`` image where no Ollama can be installed or pulled (the test
host). It serves the routes the node and its sandboxes use: Ollama's own (``/api/tags``,
``/api/version``, ``/api/pull``, ``/api/generate``, ``/api/chat``) and the OpenAI-compatible ones
Ollama also serves (``/v1/models``, ``/v1/completions``, ``/v1/chat/completions``, streaming
included). Like Ollama, it applies the model's prompt template to chat requests itself: the test
model is a base model without one, so chat turns become a question/answer prompt.

Runs on the image's python3 with llama-cpp-python and its dependencies on ``PYTHONPATH``; the
standard library does the HTTP. Settings come from the environment: ``OLLAMA_TEST_MODEL`` (the
GGUF path), ``OLLAMA_TEST_MODEL_NAME`` (the name it is served under), ``OLLAMA_HOST`` (listen
address, Ollama's variable), ``OLLAMA_TEST_THREADS``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from llama_cpp import Llama

MODEL_PATH = Path(os.environ.get("OLLAMA_TEST_MODEL", "/models/model.gguf"))
MODEL_NAME = os.environ.get("OLLAMA_TEST_MODEL_NAME", "gemma3-270m")
THREADS = int(os.environ.get("OLLAMA_TEST_THREADS", "2"))
VERSION = "0.0.0-cynode-test"
QUESTION = "Question:"
STOP = ["\nQuestion:", "\n\n\n"]
# Bounded (Ollama's own default is unbounded): a test stand-in answers briefly.
DEFAULT_MAX_TOKENS = 64

# Ollama names a model "name:tag"; an untagged name means ":latest".
SERVED_NAMES = {MODEL_NAME, f"{MODEL_NAME}:latest"} if ":" not in MODEL_NAME else {MODEL_NAME}

_model = Llama(model_path=str(MODEL_PATH), n_ctx=2048, n_threads=THREADS, verbose=False)
# llama.cpp runs one generation at a time on a context.
_generation = threading.Lock()


def _chat_prompt(messages: list[dict[str, Any]]) -> str:
    """The question/answer frame the base model continues (its stand-in for a chat template)."""
    lines = []
    for message in messages:
        content = str(message.get("content") or "").strip()
        role = message.get("role")
        if role == "assistant":
            lines.append(f"Answer: {content}")
        elif role == "system":
            lines.append(content)
        else:
            lines.append(f"{QUESTION} {content}")
    return "\n".join([*lines, "Answer:"])


def _generate(prompt: str, body: dict[str, Any], *, stream: bool) -> Iterator[str]:
    """The completion's text pieces (one piece when not streaming)."""
    options = body.get("options") or {}
    max_tokens = int(body.get("max_tokens") or options.get("num_predict") or DEFAULT_MAX_TOKENS)
    stop = body.get("stop") or options.get("stop") or STOP
    temperature = float(body.get("temperature", options.get("temperature", 0.0)))
    with _generation:
        result = _model.create_completion(
            prompt, max_tokens=max_tokens, stop=stop, temperature=temperature, stream=stream
        )
        if not stream:
            yield str(result["choices"][0]["text"])  # type: ignore[index]
            return
        for chunk in result:
            yield str(chunk["choices"][0]["text"])  # type: ignore[index]


def _token_count(text: str) -> int:
    return len(_model.tokenize(text.encode("utf-8"), add_bos=False))


class OllamaHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ollama-cynode-test"

    def log_message(self, format: str, *args: Any) -> None:
        print(f"{self.address_string()} {format % args}", flush=True)

    # --- plumbing --------------------------------------------------------------------------------

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        loaded = json.loads(self.rfile.read(length) or b"{}")
        return loaded if isinstance(loaded, dict) else {}

    def _json(self, status: int, document: Any) -> None:
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _chunks(self, media_type: str, pieces: Iterator[bytes]) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", media_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for piece in pieces:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def _known_model(self, body: dict[str, Any]) -> bool:
        name = body.get("model") or MODEL_NAME
        if name in SERVED_NAMES:
            return True
        self._json(HTTPStatus.NOT_FOUND, {"error": f"model '{name}' not found"})
        return False

    # --- routes ----------------------------------------------------------------------------------

    def do_HEAD(self) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        if self.path == "/":
            self._json(HTTPStatus.OK, "Ollama is running")
        elif self.path == "/api/version":
            self._json(HTTPStatus.OK, {"version": VERSION})
        elif self.path == "/api/tags":
            entry = {"name": MODEL_NAME, "model": MODEL_NAME, "size": MODEL_PATH.stat().st_size}
            self._json(HTTPStatus.OK, {"models": [entry]})
        elif self.path == "/v1/models":
            entry = {"id": MODEL_NAME, "object": "model", "created": 0, "owned_by": "library"}
            self._json(HTTPStatus.OK, {"object": "list", "data": [entry]})
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def do_POST(self) -> None:
        try:
            body = self._body()
        except ValueError:
            self._json(HTTPStatus.BAD_REQUEST, {"error": "invalid JSON body"})
            return
        routes = {
            "/api/pull": self._pull,
            "/api/generate": self._ollama_generate,
            "/api/chat": self._ollama_chat,
            "/v1/completions": self._openai_completion,
            "/v1/chat/completions": self._openai_chat,
        }
        route = routes.get(self.path)
        if route is None:
            self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
        else:
            route(body)

    def _pull(self, body: dict[str, Any]) -> None:
        # Nothing is downloaded: the one model is in the image; any other cannot be fetched offline.
        if self._known_model(body):
            self._json(HTTPStatus.OK, {"status": "success"})

    def _ollama_generate(self, body: dict[str, Any]) -> None:
        if self._known_model(body):
            self._ollama_answer(str(body.get("prompt") or ""), body, lambda text: {"response": text})

    def _ollama_chat(self, body: dict[str, Any]) -> None:
        if self._known_model(body):
            prompt = _chat_prompt(body.get("messages") or [])
            self._ollama_answer(prompt, body, lambda text: {"message": {"role": "assistant", "content": text}})

    def _ollama_answer(self, prompt: str, body: dict[str, Any], shape: Any) -> None:
        """Ollama's answer form: NDJSON pieces unless ``stream`` is false, then a final ``done``."""

        def record(text: str, done: bool) -> dict[str, Any]:
            return {"model": body.get("model") or MODEL_NAME, "created_at": _now(), **shape(text), "done": done}

        if body.get("stream") is False:
            self._json(HTTPStatus.OK, record("".join(_generate(prompt, body, stream=False)), True))
            return

        def lines() -> Iterator[bytes]:
            for piece in _generate(prompt, body, stream=True):
                yield json.dumps(record(piece, False)).encode() + b"\n"
            yield json.dumps({**record("", True), "done_reason": "stop"}).encode() + b"\n"

        self._chunks("application/x-ndjson", lines())

    def _openai_completion(self, body: dict[str, Any]) -> None:
        if self._known_model(body):
            prompt = str(body.get("prompt") or "")
            self._openai_answer(prompt, body, "text_completion", lambda text: {"text": text})

    def _openai_chat(self, body: dict[str, Any]) -> None:
        if not self._known_model(body):
            return
        prompt = _chat_prompt(body.get("messages") or [])
        if body.get("stream"):
            self._openai_answer(prompt, body, "chat.completion.chunk", lambda text: {"delta": {"content": text}})
        else:
            self._openai_answer(
                prompt, body, "chat.completion", lambda text: {"message": {"role": "assistant", "content": text}}
            )

    def _openai_answer(self, prompt: str, body: dict[str, Any], kind: str, shape: Any) -> None:
        ident = f"cmpl-{uuid.uuid4().hex}"
        model = body.get("model") or MODEL_NAME

        def document(text: str, finish: str | None) -> dict[str, Any]:
            choice = {"index": 0, **shape(text), "finish_reason": finish}
            return {"id": ident, "object": kind, "created": int(time.time()), "model": model, "choices": [choice]}

        if not body.get("stream"):
            text = "".join(_generate(prompt, body, stream=False))
            prompt_tokens, completion_tokens = _token_count(prompt), _token_count(text)
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            }
            self._json(HTTPStatus.OK, {**document(text, "stop"), "usage": usage})
            return

        def events() -> Iterator[bytes]:
            for piece in _generate(prompt, body, stream=True):
                yield b"data: " + json.dumps(document(piece, None)).encode() + b"\n\n"
            yield b"data: " + json.dumps(document("", "stop")).encode() + b"\n\n"
            yield b"data: [DONE]\n\n"

        self._chunks("text/event-stream", events())


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def main() -> None:
    host, _, port = os.environ.get("OLLAMA_HOST", "0.0.0.0:11434").rpartition(":")
    server = ThreadingHTTPServer((host or "0.0.0.0", int(port)), OllamaHandler)  # noqa: S104 (a container)
    # PID 1 in a container ignores SIGTERM unless it handles it: stop at once, as Ollama does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"serving {MODEL_NAME} from {MODEL_PATH} on {host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
