"""Who may use `agentctx web`, and through which name (docs/web.md, "Security").

Three threats, one rule each:

- Anyone else who can reach the port (another local user; the network, with
  --allow-remote): every request needs a random token. A GET may present it as
  `?token=`, which is then swapped for an HttpOnly SameSite=Strict cookie.
- A hostile page in the user's own browser sending requests to 127.0.0.1 (CSRF):
  the browser may attach our cookie to those, so a cookie never authorises a
  change. POSTs need the token in a header, which a cross-site page can only set
  after a CORS preflight this server never answers (it sends no CORS headers).
- DNS rebinding: a hostile name re-resolved to 127.0.0.1 makes its page
  same-origin with us; its requests carry that name in `Host`, answered 403.

Loopback is the default; any other address needs --allow-remote (address.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import hmac
import ipaddress
import logging
import os
import secrets
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Final
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentctx._core.errors import StoreError
from agentctx._core.files import atomic_write, ensure_private_dir, read_file
from agentctx.web.address import ListenAddress

__all__ = [
    "COOKIE_PREFIX",
    "TOKEN_FILE",
    "TOKEN_HEADER",
    "Guard",
    "HostCheck",
    "new_token",
    "shared_token",
]

log = logging.getLogger(__name__)

TOKEN_BYTES: Final = 32  # 256 random bits: never guessed, whatever the request rate
TOKEN_FILE: Final = "web.token"  # in the runtime dir, 0600, for scripts and a lost URL
TOKEN_LOCK: Final = "web.lock"  # held shared by every running web view (shared_token)
TOKEN_HEADER: Final = "x-agentctx-token"
TOKEN_QUERY: Final = "token"
BEARER: Final = "bearer "
# Cookies ignore ports: two web views on one host must not overwrite each other's.
COOKIE_PREFIX: Final = "agentctx_token_"
LOOPBACK_NAMES: Final = frozenset({"127.0.0.1", "localhost"})
READ_METHODS: Final = frozenset({"GET", "HEAD"})
# Sent with every answer: no sniffing, no framing (the page has buttons worth
# clickjacking), nothing loaded from elsewhere, no token leaking in a Referer,
# nothing cached (the page carries the token, the JSON is live).
SECURITY_HEADERS: Final[Mapping[str, str]] = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "content-security-policy": (
        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
}


def host_name(header: str) -> str:
    """The name in a `Host` header, without its port, lower-cased (`[::1]:80` -> `::1`)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rpartition(":")[0] if header.count(":") == 1 else header


class HostCheck:
    """The names a request may call us by: the listen address, 127.0.0.1, localhost.
    Listening on a wildcard (with --allow-remote) also admits this machine's hostname
    and any IP literal: a rebinding attack needs a *name*, an address cannot rebind."""

    def __init__(self, listen: ListenAddress) -> None:
        self.names = set(LOOPBACK_NAMES) | {listen.host.lower()}
        self.any_address = listen.wildcard
        if listen.wildcard:
            self.names.add(socket.gethostname().lower())

    def allows(self, header: str | None) -> bool:
        if not header:
            return False
        name = host_name(header)
        if name in self.names:
            return True
        if not self.any_address:
            return False
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


@contextlib.contextmanager
def shared_token(directory: Path) -> Iterator[tuple[str, Path]]:
    """(token, its file) for one `agentctx web` while it runs. Every web view of this
    runtime dir shares one token, kept in TOKEN_FILE (0600): the first to start makes
    it, the last to stop removes it, so the file always opens every running view. Each
    holds a shared flock on TOKEN_LOCK while it runs; whoever can take it exclusively
    is alone."""
    ensure_private_dir(directory)
    path = directory / TOKEN_FILE
    fd = os.open(
        directory / TOKEN_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600
    )
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # others run: theirs, once the first has written it
                fcntl.flock(fd, fcntl.LOCK_SH)
                token = _read_token(path)
                if token:
                    break
                fcntl.flock(fd, fcntl.LOCK_UN)  # the last one was leaving: again
                continue
            token = new_token()  # alone: a file left by a crash is replaced
            atomic_write(path, f"{token}\n".encode(), durable=False, mode=0o600)
            fcntl.flock(fd, fcntl.LOCK_SH)
            break
        yield token, path
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # others still run with it
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not remove %s: %s", path, exc)
    finally:
        os.close(fd)  # releases the lock


def _read_token(path: Path) -> str:
    try:
        data = read_file(path)
    except StoreError:
        return ""
    token = "" if data is None else data.decode(errors="replace").strip()
    return token if len(token) >= TOKEN_BYTES else ""


def _error(status: int, code: str, message: str) -> Response:
    return JSONResponse({"code": code, "message": message}, status_code=status)


class Guard:
    """ASGI middleware in front of every route: Host first (403), then the token (401),
    then the security headers on whatever the app answers."""

    def __init__(self, app: ASGIApp, *, token: str, hosts: HostCheck, cookie: str) -> None:
        self.app = app
        self.token = token
        self.hosts = hosts
        self.cookie = cookie

    def _matches(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(
            presented.encode(), self.token.encode()
        )

    def _judge(self, method: str, headers: Headers, from_query: str | None) -> Response | bool:
        """A refusal to send, else whether the token came in the query (and so is to be
        swapped for the cookie)."""
        if not self.hosts.allows(headers.get("host")):
            name = headers.get("host", "(none)")
            return _error(403, "forbidden_host", f"not served under the name {name!r}")
        auth = headers.get("authorization", "")
        bearer = auth[len(BEARER) :] if auth.lower().startswith(BEARER) else None
        if self._matches(headers.get(TOKEN_HEADER)) or self._matches(bearer):
            return False
        if method not in READ_METHODS:
            # A change needs the header: a cookie alone is what a CSRF request carries.
            return _error(401, "unauthorized", f"send the token in the {TOKEN_HEADER} header")
        if self._matches(from_query):
            return True
        if self._matches(_cookie(headers, self.cookie)):
            return False
        return _error(401, "unauthorized", "open the URL `agentctx web` printed (?token=...)")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan; uvicorn runs without websockets
            await self.app(scope, receive, send)
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"))
        verdict = self._judge(scope["method"], Headers(scope=scope), dict(query).get(TOKEN_QUERY))
        if isinstance(verdict, Response):
            await verdict(scope, receive, self._secure(send, False))
            return
        if verdict and scope["path"] == "/":
            # Swap the token in the address bar for the cookie, so it does not stay in
            # the history or go out in a Referer.
            rest = urlencode([(k, v) for k, v in query if k != TOKEN_QUERY])
            redirect = RedirectResponse("/" + (f"?{rest}" if rest else ""), status_code=303)
            redirect.headers.append("set-cookie", self._cookie_header())
            await redirect(scope, receive, self._secure(send, False))
            return
        await self.app(scope, receive, self._secure(send, verdict))

    def _cookie_header(self) -> str:
        return f"{self.cookie}={self.token}; Path=/; HttpOnly; SameSite=Strict"

    def _secure(self, send: Send, set_cookie: bool) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    out.setdefault(name, value)
                if set_cookie:
                    out.append("set-cookie", self._cookie_header())
            await send(message)

        return wrapped


def _cookie(headers: Headers, name: str) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value
    return None
