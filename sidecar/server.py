"""The socket server: accept connections, admit them, run one Session each.

Admission happens before a byte is sent: a peer of another uid (SO_PEERCRED) is
closed at once, and past `max_clients` a connection gets one `too_many_clients`
error and is closed. Every session runs under a guard, so nothing one client does
can take the listener or another client down.
"""

from __future__ import annotations

import logging
import os
from typing import Final

import anyio
from anyio.abc import SocketAttribute, SocketListener, SocketStream

from agentctx._core.errors import E_TOO_MANY_CLIENTS
from agentctx._core.peercred import peer_uid
from agentctx._core.protocol import Error, encode_message
from sidecar.hub import Serving
from sidecar.outbox import FINAL_FRAME_TIMEOUT
from sidecar.session import Session

__all__ = ["ACCEPT_BACKOFF", "Server"]

log = logging.getLogger(__name__)

ACCEPT_BACKOFF: Final = 0.1  # after a failed accept (EMFILE...): let descriptors free up


class Server:
    def __init__(self, hub: Serving) -> None:
        self.hub = hub
        self.clients = 0
        self.uid = os.getuid()

    async def serve(self, listener: SocketListener) -> None:
        async with anyio.create_task_group() as tg:
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:  # EMFILE and friends: back off, keep serving
                    log.error("accept failed: %s", exc)
                    await anyio.sleep(ACCEPT_BACKOFF)
                    continue
                tg.start_soon(self._guarded, stream)

    async def _guarded(self, stream: SocketStream) -> None:
        """Admit one client and run it; whatever happens stays inside this connection."""
        settings = self.hub.config.sidecar
        try:
            try:
                uid: int | None = peer_uid(stream.extra(SocketAttribute.raw_socket))
            except OSError:
                uid = None  # gone already
            if uid != self.uid:
                log.warning("refused a connection from uid %s", uid)
                return  # closed in finally, before a single byte is sent
            if self.clients >= settings.max_clients:
                log.warning("connection cap of %d reached: refusing one", settings.max_clients)
                refusal = Error(
                    code=E_TOO_MANY_CLIENTS,
                    message=f"connection cap of {settings.max_clients} reached",
                )
                with anyio.move_on_after(FINAL_FRAME_TIMEOUT):
                    await stream.send(encode_message(refusal))
                return
            self.clients += 1
            try:
                session = Session(
                    stream,
                    self.hub,
                    max_frame=settings.max_frame_bytes,
                    send_timeout=settings.client_send_timeout,
                )
                await session.serve()
            finally:
                self.clients -= 1
        except Exception:
            log.exception("client connection failed (closed; the server is unaffected)")
        finally:
            with anyio.CancelScope(shield=True):
                await stream.aclose()
