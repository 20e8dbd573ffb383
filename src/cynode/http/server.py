"""Serves several ASGI apps from one event loop, one listening socket each.

Owns socket binding and the uvicorn servers. Sockets are bound before serving starts so a busy
port fails fast with a clear message, and port 0 can be used (tests) with the real port reported.
Signal handling belongs to the caller: uvicorn's own handlers are disabled because several servers
share one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

import uvicorn
from litestar import Litestar

from cynode.http.deadlines import HEADER_READ_TIMEOUT_SECONDS, header_deadline_protocol
from cynode.tls import PlainHttpLoopbackOnly, ServerTls

MAX_CONNECTIONS = 2048
KEEP_ALIVE_TIMEOUT_SECONDS = 5


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class PortInUseError(RuntimeError):
    pass


@dataclass
class ServedApp:
    """An app bound to a listening socket, served until ``stop``."""

    name: str
    app: Litestar
    host: str
    port: int
    tls: ServerTls | None = None
    plain_http_loopback_only: bool = False
    """Without ``tls``, answer only loopback callers (for listeners whose requests carry tokens)."""
    _socket: socket.socket | None = field(default=None, repr=False)
    _server: _QuietServer | None = field(default=None, repr=False)
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host  # noqa: S104
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def bind(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # asyncio turns on TCP_NODELAY only for sockets whose protocol says TCP; without it a
        # response written in two parts waits ~40 ms for the client's delayed ACK on every
        # kept-alive request.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise PortInUseError(f"{self.name}: cannot listen on {self.host}:{self.port}: {exc.strerror}") from exc
        sock.listen(2048)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self._socket = sock

    async def start(self) -> None:
        if self._socket is None:
            self.bind()
        assert self._socket is not None
        app: object = self.app
        if self.tls is None and self.plain_http_loopback_only:
            app = PlainHttpLoopbackOnly(self.app, self.name)
        config = uvicorn.Config(
            app,  # type: ignore[arg-type]
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
            server_header=False,
            # Client addresses feed rate limits; only the app decides whether to trust forwarding headers.
            proxy_headers=False,
            date_header=False,
            # Abuse limits: past this many open connections requests get 503 instead of queueing;
            # idle kept-alive connections close after the keep-alive timeout, and connections
            # whose request headers come too slowly (slowloris) after the header deadline.
            limit_concurrency=MAX_CONNECTIONS,
            timeout_keep_alive=KEEP_ALIVE_TIMEOUT_SECONDS,
            http=header_deadline_protocol(HEADER_READ_TIMEOUT_SECONDS),
            ssl_certfile=self.tls.cert_file if self.tls else None,
            ssl_keyfile=self.tls.key_file if self.tls else None,
        )
        self._server = _QuietServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]), name=f"serve-{self.name}")
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError(f"{self.name}: server stopped during start-up")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        if self._socket is not None:
            self._socket.close()
            self._socket = None
