"""How a sidecar reaches NATS: the servers, credentials and TLS files, replicas.

Stdlib only: the command line is parsed (and `install` writes units) without
nats-py, which is an optional dependency (the `nats` extra). Files are checked
here, at start, so a bad path stops the sidecar with one line: nats-py itself
retries a missing creds file forever and raises a bare TypeError on a malformed
one (docs/multi-host.md, "Securing NATS").
"""

from __future__ import annotations

import argparse
import os
import ssl
from dataclasses import dataclass
from typing import Final

from agentctx._core.errors import ConfigError, UsageError

__all__ = ["MAX_REPLICAS", "NatsSettings", "add_options"]

MAX_REPLICAS: Final = 3  # JetStream's useful maximum here; 2 is never better than 1 (no quorum)
_CREDS_MARKERS: Final = ("BEGIN NATS USER JWT", "BEGIN USER NKEY SEED")
_SCHEMES: Final = ("nats://", "tls://", "ws://", "wss://")


@dataclass(frozen=True)
class NatsSettings:
    urls: tuple[str, ...]
    creds: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    replicas: int = 1

    @classmethod
    def parse(
        cls,
        urls: str,
        *,
        creds: str | None = None,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        replicas: int | None = None,
    ) -> NatsSettings:
        """`URL[,URL...]` and the options as given; UsageError / ConfigError saying what
        is wrong. Replicas default to the number of servers, at most MAX_REPLICAS."""
        servers = tuple(u.strip() for u in urls.split(",") if u.strip())
        if not servers:
            raise UsageError("--nats: give at least one server URL, e.g. nats://127.0.0.1:4222")
        for url in servers:
            if not url.startswith(_SCHEMES):
                raise UsageError(f"NATS URL {url!r}: expected nats://HOST:PORT (or tls://)")
        n = min(len(servers), MAX_REPLICAS) if replicas is None else replicas
        if not 1 <= n <= MAX_REPLICAS:
            raise UsageError(f"--nats-replicas {n}: expected 1 to {MAX_REPLICAS}")
        if tls_key and not tls_cert:
            raise UsageError("--nats-tls-key needs --nats-tls-cert")
        settings = cls(servers, creds, tls_ca, tls_cert, tls_key, n)
        settings.check_files()
        return settings

    def check_files(self) -> None:
        for what, path in (
            ("creds", self.creds),
            ("TLS CA", self.tls_ca),
            ("TLS cert", self.tls_cert),
            ("TLS key", self.tls_key),
        ):
            if path is not None and not os.path.isfile(path):
                raise ConfigError(f"{path}: NATS {what} file not found")
        if self.creds is not None:
            try:
                with open(self.creds) as f:
                    text = f.read()
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{self.creds}: cannot read the NATS creds file: {exc}") from None
            if not all(marker in text for marker in _CREDS_MARKERS):
                raise ConfigError(f"{self.creds}: not a NATS .creds file (no user JWT and seed)")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The client TLS context, when a CA or a client certificate was given."""
        if self.tls_ca is None and self.tls_cert is None:
            return None
        try:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.tls_ca)
            if self.tls_cert is not None:
                ctx.load_cert_chain(certfile=self.tls_cert, keyfile=self.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"NATS TLS files: {exc}") from None
        return ctx

    def argv(self, *, replicas: bool = True) -> list[str]:
        """These settings as command-line options (what `install` puts in ExecStart)."""
        out = []
        for flag, value in (
            ("--nats-creds", self.creds),
            ("--nats-tls-ca", self.tls_ca),
            ("--nats-tls-cert", self.tls_cert),
            ("--nats-tls-key", self.tls_key),
        ):
            if value is not None:
                out += [flag, os.path.abspath(value)]
        if replicas:
            out += ["--nats-replicas", str(self.replicas)]
        return out


def add_options(parser: argparse.ArgumentParser, *, home: bool) -> None:
    """The NATS options of `run` (home: with --nats and --nats-replicas) and `follow`."""
    if home:
        parser.add_argument(
            "--nats",
            metavar="URL[,URL...]",
            help="also share this agent over NATS JetStream: states to the KV bucket "
            "`agentctx`, events and requests on agentctx.NAME.* (docs/multi-host.md)",
        )
        parser.add_argument(
            "--nats-replicas",
            type=int,
            metavar="N",
            help=f"JetStream replicas of the bucket and streams (default: the number of "
            f"servers given, at most {MAX_REPLICAS})",
        )
    parser.add_argument("--nats-creds", metavar="FILE", help="NATS user credentials (.creds)")
    parser.add_argument("--nats-tls-ca", metavar="FILE", help="CA to verify the servers with")
    parser.add_argument("--nats-tls-cert", metavar="FILE", help="client certificate (mutual TLS)")
    parser.add_argument("--nats-tls-key", metavar="FILE", help="the client certificate's key")
