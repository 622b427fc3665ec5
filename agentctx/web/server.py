"""`agentctx web` as a server: uvicorn embedded in a task group beside the bridge.

uvicorn runs asyncio only, so this runs on anyio's asyncio backend. The socket is
bound before uvicorn starts (the port is known, and a bind error is ours to report
instead of uvicorn's sys.exit()); uvicorn's own signal capture is switched off and
SIGINT/SIGTERM stop it in order: the SSE streams are ended first (an open stream
holds uvicorn's shutdown up), then uvicorn is told to exit, then the bridge goes.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
from collections.abc import Iterator
from typing import Final

import anyio
import uvicorn
from anyio.abc import TaskStatus

from agentctx._core.errors import ServeError
from agentctx._core.layout import Layout
from agentctx.web.address import ListenAddress
from agentctx.web.app import make_app
from agentctx.web.bridge import Bridge
from agentctx.web.security import COOKIE_PREFIX, HostCheck, shared_token

__all__ = ["BACKLOG", "MAX_CONNECTIONS", "WebServer", "bind"]

log = logging.getLogger(__name__)

BACKLOG: Final = 128
# Past this many open connections uvicorn answers 503: a runaway client (or a
# thousand forgotten tabs) cannot use up the process's file descriptors.
MAX_CONNECTIONS: Final = 1000
# What uvicorn waits at stop for requests still running (a POST waiting for its
# ack); the SSE streams are already ended by then.
GRACEFUL_STOP_S: Final = 3
STARTED_POLL_S: Final = 0.01  # uvicorn has no started event, only a flag
STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn.Server without its signal capture: the host task group owns signals
    (serve() would otherwise replace SIGINT/SIGTERM handlers and re-raise them)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(address: ListenAddress) -> socket.socket:
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if address.family == socket.AF_INET6 and address.wildcard:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # [::] takes IPv4 too
        sock.bind((address.host, address.port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        where = f"{address.host}:{address.port}"
        raise ServeError(f"cannot listen on {where}: {exc.strerror}") from None
    return sock


class WebServer:
    """One `agentctx web`. `WebServer.open()` claims the port and writes the token file
    (errors surface there, before any event loop); then `await tg.start(server.run)`
    gives the URL to open, with its token, and `run()` returns once stopped (SIGINT,
    SIGTERM or `stop()`)."""

    def __init__(
        self, sock: socket.socket, address: ListenAddress, layout: Layout, token: str
    ) -> None:
        self.sock = sock
        self.address = address
        self.layout = layout
        self.token = token
        self.port: int = sock.getsockname()[1]
        self.bridge = Bridge(layout.state)
        self._uvicorn: _EmbeddedUvicorn | None = None

    @classmethod
    @contextlib.contextmanager
    def open(cls, address: ListenAddress, layout: Layout | None = None) -> Iterator[WebServer]:
        layout = layout or Layout.resolve()
        with bind(address) as sock, shared_token(layout.runtime) as (token, _file):
            yield cls(sock, address, layout, token)

    @property
    def url(self) -> str:
        return f"{self.address.url(self.port)}?token={self.token}"

    def stop(self) -> None:
        self.bridge.close()
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True

    async def run(self, *, task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED) -> None:
        app = make_app(
            self.bridge,
            token=self.token,
            hosts=HostCheck(self.address),
            cookie=f"{COOKIE_PREFIX}{self.port}",
        )
        config = uvicorn.Config(
            app,
            http="h11",
            ws="none",
            lifespan="off",
            log_config=None,  # our logging setup stays as it is
            access_log=False,
            proxy_headers=False,  # nobody stands in front of us to be trusted
            server_header=False,
            limit_concurrency=MAX_CONNECTIONS,
            timeout_graceful_shutdown=GRACEFUL_STOP_S,
        )
        self._uvicorn = _EmbeddedUvicorn(config)
        async with anyio.create_task_group() as tg:
            await tg.start(self.bridge.run)
            await tg.start(self._stop_on_signals)
            tg.start_soon(self._serve, tg.cancel_scope)
            while not self._uvicorn.started:  # noqa: ASYNC110 - uvicorn has only a flag
                await anyio.sleep(STARTED_POLL_S)
            log.info("serving on %s", self.url.partition("?")[0])
            task_status.started(self.url)

    async def _serve(self, done: anyio.CancelScope) -> None:
        assert self._uvicorn is not None
        await self._uvicorn.serve([self.sock])
        done.cancel()  # uvicorn has stopped: so do the bridge and the signal watch

    async def _stop_on_signals(self, *, task_status: TaskStatus[None]) -> None:
        with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
            task_status.started()
            async for signum in signals:
                log.info("stopping on %s", signal.Signals(signum).name)
                self.stop()
                return
