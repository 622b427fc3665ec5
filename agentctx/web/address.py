"""The address `agentctx web` listens on: `HOST:PORT`, loopback unless told otherwise.

Stdlib only and cheap to import (no dataclasses): the `agentctx` command line
builds its parser from DEFAULT_LISTEN for every command, and checks `--listen`
before the web extra is imported.
"""

from __future__ import annotations

import ipaddress
import socket

from agentctx._core.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

__all__ = ["DEFAULT_LISTEN", "ListenAddress", "parse_listen"]

DEFAULT_LISTEN: Final = "127.0.0.1:8765"


class ListenAddress:
    __slots__ = ("host", "port")

    def __init__(self, host: str, port: int) -> None:
        self.host = host  # an IP literal
        self.port = port

    def __repr__(self) -> str:
        return f"ListenAddress({self.host!r}, {self.port})"

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return ipaddress.ip_address(self.host)

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if self.ip.version == 6 else socket.AF_INET

    @property
    def loopback(self) -> bool:
        return self.ip.is_loopback

    @property
    def wildcard(self) -> bool:
        return self.ip.is_unspecified

    def url(self, port: int) -> str:
        """The base URL a browser on this machine opens (a wildcard listens on loopback too)."""
        host = "127.0.0.1" if self.wildcard else self.host
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def parse_listen(text: str, allow_remote: bool) -> ListenAddress:
    """`HOST:PORT` (`[::1]:8765` for IPv6; `localhost` means 127.0.0.1). A host that is
    not loopback is refused unless *allow_remote*."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host:
        raise UsageError(f"--listen {text!r}: expected HOST:PORT, e.g. {DEFAULT_LISTEN}")
    host = host.removeprefix("[").removesuffix("]")
    host = "127.0.0.1" if host.lower() == "localhost" else host
    try:
        ipaddress.ip_address(host)
        port = int(port_text)
    except ValueError:
        raise UsageError(
            f"--listen {text!r}: expected an IP address (or localhost) and a port"
        ) from None
    if not 0 <= port <= 65535:
        raise UsageError(f"--listen {text!r}: the port must be 0..65535")
    address = ListenAddress(host, port)
    if not address.loopback and not allow_remote:
        raise UsageError(
            f"--listen {text!r} is reachable from other machines; "
            "add --allow-remote if that is what you want"
        )
    return address
