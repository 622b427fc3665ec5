"""Test helpers for `agentctx web`: the real command as a subprocess, an SSE reader."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from support import REPO

START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
READ_TIMEOUT = 5.0
URL_LINE = re.compile(r"(http://\S+)/\?token=(\S+)")


class WebProcess:
    """`python -m agentctx web` with the test's environment (runtime and state dirs)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = ""
        self.token = ""
        self.stdout: list[str] = []

    @property
    def url(self) -> str:
        return f"{self.base}/?token={self.token}"

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])

    def start(self, *args: str) -> WebProcess:
        argv = [sys.executable, "-m", "agentctx", "web", "--listen", "127.0.0.1:0", *args]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                argv, env=self.env, stdout=subprocess.PIPE, stderr=log, bufsize=0, cwd=REPO
            )
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        pending = b""  # raw reads: a buffered readline would hide lines from select()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                self.stdout.append(line.decode())
                if m := URL_LINE.search(self.stdout[-1]):
                    self.base, self.token = m.group(1), m.group(2)
                    return self
        self.kill()  # a start that failed leaves nothing running
        raise RuntimeError(f"agentctx web did not start: {self.stdout}\n{self.log_text()}")

    def wait_state(self) -> WebProcess:
        """Wait until the web view has its first drive state (it may start before its
        subscription has one)."""
        deadline = time.monotonic() + START_TIMEOUT
        with self.client() as c:
            while c.get("/state").status_code != 200:
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(f"agentctx web has no state:\n{self.log_text()}")
                time.sleep(0.02)
        return self

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(STOP_TIMEOUT)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def client(self, **kwargs: Any) -> httpx.Client:
        """An HTTP client that sends the token in the header (as the page's POSTs do)."""
        headers = {"X-Agentctx-Token": self.token, **kwargs.pop("headers", {})}
        return httpx.Client(base_url=self.base, headers=headers, timeout=READ_TIMEOUT, **kwargs)

    def anonymous(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=READ_TIMEOUT, **kwargs)


class SseReader:
    """The messages of one `GET /events` response, parsed as a browser would."""

    def __init__(self, lines: Iterator[str]) -> None:
        self.lines = lines
        self.retry: int | None = None

    def next(self) -> dict[str, Any]:
        """The next message: {"event", "id", "data"} (comments and retry: skipped).
        httpx's read timeout bounds the wait."""
        fields: dict[str, Any] = {}
        for line in self.lines:
            if line == "":
                if "data" in fields:
                    fields["data"] = json.loads(fields["data"])
                    return fields
                fields = {}
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "retry":
                self.retry = int(value)
            elif name in ("event", "id", "data"):
                fields[name] = value
        raise EOFError("the stream ended")

    def until(self, event: str, within: float = READ_TIMEOUT, **match: Any) -> dict[str, Any]:
        """Read until a message of type *event* whose data has the *match* fields."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            msg = self.next()
            data = msg["data"]
            if msg.get("event") == event and all(data.get(k) == v for k, v in match.items()):
                return msg
        raise TimeoutError(f"no {event} {match} within {within}s")
