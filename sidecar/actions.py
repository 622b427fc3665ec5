"""Running a drive's `on_trigger` command when its trigger fires.

A fired trigger of a drive that has a command (its own `on_trigger`, else the
`[actions]` default) starts it — argv, never a shell string — with the drive in
its environment (AGENTCTX_DRIVE, _PRESSURE, _THRESHOLD, _PROMPT, _RATIO, _BAND).
At most one runs per drive: a trigger that fires while the last one still runs
starts nothing (and says so). Each run gets `timeout_s`, then SIGTERM to its
whole process group and SIGKILL 10 s later. Its exit status goes into the history
(`action_started` / `action_finished` events); the tail of its output into the log.

Nothing here runs on the tick loop, and nothing here kills a command because the
daemon stops: commands run in their own session (an agent session spawned on a
trigger outlives a daemon restart), their output goes to a file rather than a pipe
(a pipe would break when the daemon dies), and a marker file per running command
lets a restarted daemon adopt it instead of starting a second one. The trigger
itself is saved before the command starts, so a restart never fires it again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import anyio
from anyio.abc import TaskGroup

from agentctx._core.errors import RequestFailed, StoreError
from agentctx._core.files import atomic_write, ensure_private_dir, read_file
from agentctx._core.protocol import Event, EventKind
from sidecar.hub import Hub

__all__ = ["KILL_GRACE_S", "OUTPUT_MAX_BYTES", "Actions"]

log = logging.getLogger(__name__)

KILL_GRACE_S: Final = 10.0  # between SIGTERM and SIGKILL at the timeout
OUTPUT_MAX_BYTES: Final = 1 << 20  # a command's output file is cut back to zero past this
OUTPUT_LOGGED_BYTES: Final = 4096  # the tail of the output that goes into the log
WATCH_INTERVAL_S: Final = 5.0  # how often a running command's output size is checked
# Never handed to a command: they belong to the daemon (a child that sent READY=1 or
# WATCHDOG=1 on our behalf, or took our listening socket, would confuse systemd).
PRIVATE_ENV: Final = (
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
)


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (None: gone): with the pid it
    names one process, even after the pid is reused."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ")"
    return int(stat.rsplit(")", 1)[1].split()[19])


class _Running:
    """One running command, ours or adopted after a restart."""

    def __init__(
        self, drive: str, pid: int, timeout_s: float, started: float, proc: Any = None
    ) -> None:
        self.drive = drive
        self.pid = pid
        self.deadline = started + timeout_s
        self.timeout_s = timeout_s
        self.proc: subprocess.Popen[bytes] | None = proc  # None: adopted, not our child


class Actions:
    def __init__(self, hub: Hub, directory: Path) -> None:
        self.hub = hub
        self.directory = directory  # markers DRIVE.json and output DRIVE.out
        self.running: dict[str, _Running] = {}
        self._fired: list[Event] = []
        self._wake = anyio.Event()
        hub.listeners.append(self._on_events)

    def _on_events(self, events: Sequence[Event]) -> None:
        """(Called by the hub while it publishes: only queue, never block.)"""
        fired = [e for e in events if e.kind == "triggered"]
        if fired:
            self._fired.extend(fired)
            self._wake.set()

    async def run(self) -> None:
        """Adopt what a previous daemon left running, then run each fired trigger's
        command, for the life of the daemon."""
        await anyio.to_thread.run_sync(ensure_private_dir, self.directory)
        async with anyio.create_task_group() as tg:
            for marker in await anyio.to_thread.run_sync(self._markers):
                await self._adopt(marker, tg)
            while True:
                await self._wake.wait()
                self._wake = anyio.Event()
                fired, self._fired = self._fired, []
                for event in fired:
                    self._start(event, tg)

    # --- starting ---------------------------------------------------------------------

    def _start(self, event: Event, tg: TaskGroup) -> None:
        if event.drive not in self.hub.config.drives:
            return  # removed by a reload meanwhile
        argv, timeout_s = self.hub.config.action(event.drive)
        if argv is None:
            return
        if event.drive in self.running:
            log.warning(
                "%s fired again while its command (pid %d) still runs: nothing started",
                event.drive,
                self.running[event.drive].pid,
            )
            return
        running = _Running(event.drive, 0, timeout_s, time.time())  # pid once started
        self.running[event.drive] = running
        tg.start_soon(self._run_command, event, argv, running)

    async def _run_command(self, event: Event, argv: list[str], running: _Running) -> None:
        drive = event.drive
        try:
            await self._durable(event.seq)  # a restart must never fire this trigger again
            spec = self.hub.config.drives[drive]
            env = {k: v for k, v in os.environ.items() if k not in PRIVATE_ENV}
            env.update(
                AGENTCTX_DRIVE=drive,
                AGENTCTX_PRESSURE=f"{event.pressure:.6g}",
                AGENTCTX_THRESHOLD=f"{spec.threshold:g}",
                AGENTCTX_RATIO=f"{event.ratio:.6g}",
                AGENTCTX_BAND=event.band,
                AGENTCTX_PROMPT=spec.prompt,
            )
            try:
                proc = await anyio.to_thread.run_sync(self._spawn, drive, argv, env)
            except OSError as exc:
                log.error("%s: could not start %s: %s", drive, shlex.join(argv), exc.strerror)
                await self._record("action_finished", drive, None, f"could not start: {exc}")
                return
            running.pid, running.proc = proc.pid, proc
            running.deadline = time.time() + running.timeout_s
            marker = {
                "pid": proc.pid,
                "start_ticks": _start_ticks(proc.pid),
                "started_at": time.time(),
                "timeout_s": running.timeout_s,
                "fired_seq": event.seq,
                "argv": argv,
            }
            await anyio.to_thread.run_sync(self._write_marker, drive, marker)
            log.info("%s: started %s (pid %d)", drive, shlex.join(argv), proc.pid)
            await self._record("action_started", drive, None, shlex.join(argv))
            await self._watch(running)
        finally:
            if running.pid == 0 and self.running.get(drive) is running:  # never started
                del self.running[drive]

    def _spawn(self, drive: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        out = self.directory / f"{drive}.out"
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            return subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, outside the daemon's
                close_fds=True,
            )
        finally:
            os.close(fd)

    async def _durable(self, seq: int) -> None:
        while True:
            try:
                await self.hub.wait_durable(seq)
                return
            except RequestFailed:  # the disk is failing: wait until a save succeeds
                await self.hub.durable_writer.recovered()

    # --- waiting, timing out ----------------------------------------------------------

    async def _watch(self, running: _Running) -> None:
        """Wait for the command to end, cutting its output back and killing its group
        at the timeout; then record how it ended. A daemon stop cancels the wait and
        leaves the command (and its marker) as they are."""
        try:
            pidfd = os.pidfd_open(running.pid)
        except ProcessLookupError:
            await self._finished(running, None, "ended while the sidecar was down")
            return
        try:
            detail = await self._wait(running, pidfd)
        finally:
            os.close(pidfd)
        code = None
        if running.proc is not None:
            code = await anyio.to_thread.run_sync(running.proc.wait)
        elif detail is None:
            detail = "exit status unknown (the sidecar restarted while it ran)"
        await self._finished(running, code, detail)

    async def _wait(self, running: _Running, pidfd: int) -> str | None:
        """Until the process ends; a note when it had to be killed."""
        while True:
            left = running.deadline - time.time()
            if left <= 0:
                break
            with anyio.move_on_after(min(left, WATCH_INTERVAL_S)):
                await anyio.wait_readable(pidfd)
                return None
            await anyio.to_thread.run_sync(self._bound_output, running.drive)
        log.warning("%s: command timed out after %gs: SIGTERM", running.drive, running.timeout_s)
        self._signal_group(running.pid, signal.SIGTERM)
        with anyio.move_on_after(KILL_GRACE_S):
            await anyio.wait_readable(pidfd)
            return f"timed out after {running.timeout_s:g}s: stopped (SIGTERM)"
        log.warning("%s: still running %gs after SIGTERM: SIGKILL", running.drive, KILL_GRACE_S)
        self._signal_group(running.pid, signal.SIGKILL)
        await anyio.wait_readable(pidfd)
        return f"timed out after {running.timeout_s:g}s: killed (SIGKILL)"

    @staticmethod
    def _signal_group(pid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)  # its session leader's pid is its group id

    def _bound_output(self, drive: str) -> None:
        out = self.directory / f"{drive}.out"
        with contextlib.suppress(OSError):
            if out.stat().st_size > OUTPUT_MAX_BYTES:
                os.truncate(out, 0)  # the command appends: it carries on at the new end

    async def _finished(self, running: _Running, code: int | None, detail: str | None) -> None:
        drive = running.drive
        tail = await anyio.to_thread.run_sync(self._output_tail, drive)
        how = detail or f"exit {code}"
        log.info("%s: command (pid %d) ended: %s%s", drive, running.pid, how, tail)
        await self._record("action_finished", drive, code, how)
        await anyio.to_thread.run_sync(self._remove_marker, drive)
        if self.running.get(drive) is running:
            del self.running[drive]

    def _output_tail(self, drive: str) -> str:
        try:
            with open(self.directory / f"{drive}.out", "rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - OUTPUT_LOGGED_BYTES))
                text = f.read().decode(errors="replace").strip()
        except OSError:
            return ""
        return f"; output ends:\n{text}" if text else ""

    # --- events, markers --------------------------------------------------------------

    async def _record(self, kind: EventKind, drive: str, code: int | None, detail: str) -> None:
        if drive not in self.hub.engine.names:
            return
        eng = self.hub.engine
        event = Event(
            seq=0,
            kind=kind,
            drive=drive,
            ts=time.time(),
            pressure=eng.pressure(drive),
            ratio=eng.ratio(drive),
            band=eng.band(drive),
            exit_code=code,
            detail=detail,
        )
        await self.hub.record([event])

    def _markers(self) -> list[tuple[str, dict[str, Any]]]:
        found = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                data = read_file(path)
                marker = json.loads(data) if data else None
            except (StoreError, ValueError):
                marker = None
            if isinstance(marker, dict) and isinstance(marker.get("pid"), int):
                found.append((path.stem, marker))
            else:
                log.warning("unreadable action marker %s: removed", path)
                path.unlink(missing_ok=True)
        return found

    async def _adopt(self, found: tuple[str, dict[str, Any]], tg: TaskGroup) -> None:
        drive, marker = found
        pid = marker["pid"]
        ticks = _start_ticks(pid)
        alive = ticks is not None and ticks == marker.get("start_ticks")
        running = _Running(
            drive, pid, float(marker.get("timeout_s", 0)), float(marker.get("started_at", 0))
        )
        if not alive:
            await self._finished(running, None, "ended while the sidecar was down")
            return
        log.info("%s: its command (pid %d) still runs since before this start: adopted", drive, pid)
        self.running[drive] = running
        tg.start_soon(self._watch, running)

    def _write_marker(self, drive: str, marker: dict[str, Any]) -> None:
        atomic_write(self.directory / f"{drive}.json", json.dumps(marker).encode(), durable=True)

    def _remove_marker(self, drive: str) -> None:
        (self.directory / f"{drive}.json").unlink(missing_ok=True)
