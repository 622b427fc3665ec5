"""`agentctx doctor`: check every piece of the setup and say what to fix."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Final

from agentctx._core import paths
from agentctx._core.config import load_config
from agentctx._core.errors import AgentctxError, UnsafePath
from agentctx._core.files import ensure_private_dir
from agentctx._core.spool import REJECTED_DIR, check_spool_dir, spool_files
from agentctx.oneshot import read_snapshot, read_socket

__all__ = ["doctor"]

SYSTEMCTL_TIMEOUT: Final = 5.0

# ok (True, False, or None: neither, just so you know), what we saw, what to do about it
Check = tuple[bool | None, str, str]
_MARK: Final = {True: "✓", False: "✗", None: "·"}


def _private(what: str, d: str, missing_fix: str) -> Check:
    if not os.path.lexists(d):
        return False, f"{what} {d} does not exist", missing_fix
    try:
        ensure_private_dir(d, create=False)
    except UnsafePath as exc:
        return False, str(exc), "fix it as said, or point the sidecar at another directory"
    if not os.access(d, os.W_OK):
        return False, f"{what} {d} is not writable", f"make {d} writable (is its disk read-only?)"
    return True, f"{what} {d} is private (0700)", ""


def _runtime_dir() -> Check:
    fix = f"start the sidecar ({paths.start_hint()})"
    return _private("runtime dir", paths.runtime_dir(), fix)


def _state_dir() -> Check:
    fix = f"start the sidecar once ({paths.start_hint()}): it creates it"
    return _private("state dir", paths.state_dir(), fix)


def _socket() -> Check:
    try:
        state = read_socket(1.0, client="agentctx-doctor")
    except AgentctxError as exc:
        return (
            False,
            f"no sidecar answering on {paths.socket_path()}: {exc}",
            f"start it: {paths.start_hint()} (or systemctl --user start {_unit()})",
        )
    return True, f"sidecar answering (seq {state.seq}, {len(state.drives)} drives)", ""


def _snapshot() -> Check:
    try:
        state = read_snapshot()
    except AgentctxError as exc:
        return False, f"snapshot: {exc}", "start the sidecar; it writes the snapshot on start"
    if state.stale:
        return (
            False,
            f"snapshot {paths.snapshot_path()} is stale ({state.age_s:.0f}s old)",
            "the sidecar is not ticking: check `journalctl --user -u agentctx-sidecar`",
        )
    return True, f"snapshot fresh ({state.age_s:.1f}s old)", ""


def _config() -> Check:
    path = Path(paths.config_path())
    try:
        cfg = load_config(path, required=path.exists())
    except AgentctxError as exc:
        return False, f"config: {exc}", f"fix {path} (agentctx-sidecar check-config)"
    return True, f"config: {cfg.source} ({len(cfg.drives)} drives)", ""


def _spool() -> Check:
    spool = Path(paths.spool_dir())
    if os.path.lexists(spool):
        try:
            check_spool_dir(spool)
        except UnsafePath as exc:
            return False, f"spool unsafe: {exc}", "the sidecar will not drain it until it is fixed"
    pending = len(spool_files(spool))
    rejected = len(spool_files(spool / REJECTED_DIR))
    if rejected:
        return (
            False,
            f"{rejected} spooled request(s) were rejected",
            f"inspect {spool / REJECTED_DIR} (unknown drive or damaged), then delete them",
        )
    if pending:
        return False, f"{pending} request(s) waiting in {spool}", "start the sidecar to apply them"
    return True, "spool empty", ""


def _install_hint() -> str:
    agent = paths.agent_name()
    return (
        f"agentctx-sidecar install --agent {agent} --now"
        if agent
        else "agentctx-sidecar install --now"
    )


def _unit() -> str:
    return paths.unit_name()


def _systemd() -> Check:
    unit = _unit()
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        return None, "systemd: not available here (run the sidecar by hand)", ""
    try:
        out = subprocess.run(
            [systemctl, "--user", "is-active", unit],
            capture_output=True,
            text=True,
            timeout=SYSTEMCTL_TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"systemd: no user manager reachable ({exc})", ""
    state = out.stdout.strip() or out.stderr.strip()
    if state == "active":
        return True, f"systemd: {unit} active", ""
    if "Failed to connect" in state or "No medium" in state:
        return None, "systemd: no user manager reachable (the sidecar runs by hand)", ""
    return (
        False,
        f"systemd: {unit} is {state or 'unknown'}",
        f"{_install_hint()} (or systemctl --user start {unit})",
    )


CHECKS: Final[list[Callable[[], Check]]] = [
    _runtime_dir,
    _state_dir,
    _socket,
    _snapshot,
    _config,
    _spool,
    _systemd,
]


def doctor() -> int:
    problems = 0
    for check in CHECKS:
        ok, seen, fix = check()
        print(f"{_MARK[ok]} {seen}")
        if ok is False:
            problems += 1
            print(f"    → {fix}")
    print("all good" if not problems else f"{problems} problem(s)")
    return 0 if not problems else 1
