"""`agentctx-sidecar install|uninstall`: the systemd user units, written and enabled.

The unit templates ship inside the package (sidecar/units/). Installing rewrites
ExecStart to the absolute interpreter this command runs under, so it works for
pip, pipx and uv tool installs alike and execs Python directly (NotifyAccess=main).
Both commands are idempotent and refuse, with one line saying why, when there is
no systemd user manager to talk to.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Final

from agentctx._core import paths
from agentctx._core.errors import AgentctxError, NoUserManager, StoreError
from agentctx._core.files import atomic_write, read_file

__all__ = ["SERVICE", "SOCKET", "install", "render_service", "uninstall"]

SERVICE: Final = "agentctx-sidecar.service"
SOCKET: Final = "agentctx-sidecar.socket"
SYSTEMCTL_TIMEOUT: Final = 60.0

Say = Callable[[str], None]


def template(name: str) -> str:
    return resources.files("sidecar").joinpath("units", name).read_text()


def render_service(config: Path | None = None, python: str | None = None) -> str:
    """The service unit with ExecStart on this interpreter (and --config if given)."""
    argv = [python or sys.executable, "-m", "sidecar", "run"]
    if config is not None:
        argv += ["--config", str(config.resolve())]
    # systemd expands % specifiers in ExecStart: a literal % must be doubled
    exec_line = "ExecStart=" + shlex.join(argv).replace("%", "%%")
    lines = [
        exec_line if ln.startswith("ExecStart=") else ln for ln in template(SERVICE).splitlines()
    ]
    return "\n".join(lines) + "\n"


def _systemctl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("systemctl")
    if exe is None:
        raise NoUserManager("systemctl not found: this system does not run systemd")
    try:
        result = subprocess.run(
            [exe, "--user", *args], capture_output=True, text=True, timeout=SYSTEMCTL_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        raise AgentctxError(f"systemctl --user {' '.join(args)} timed out") from None
    if check and result.returncode != 0:
        raise AgentctxError(
            f"systemctl --user {' '.join(args)} failed: {(result.stderr or result.stdout).strip()}"
        )
    return result


def _require_manager() -> None:
    result = _systemctl("show-environment", check=False)
    if result.returncode != 0:
        why = (result.stderr or result.stdout).strip().splitlines()
        raise NoUserManager(
            "no systemd user manager reachable"
            + (f" ({why[0]})" if why else "")
            + "; log in to a session with systemd, or run `agentctx-sidecar run` by hand"
        )


def _write(path: Path, text: str, say: Say) -> bool:
    """Write *path* if its content differs; True when it changed. Atomic and durable:
    systemd must never read half a unit, and an enabled unit should survive a crash."""
    data = text.encode()
    try:
        if read_file(path) == data:
            say(f"unchanged {path}")
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
    except (OSError, StoreError) as exc:
        raise AgentctxError(f"{path}: {getattr(exc, 'strerror', None) or exc}") from None
    atomic_write(path, data, durable=True, mode=0o644)
    say(f"wrote {path}")
    return True


def install(*, now: bool = False, config: Path | None = None, say: Say = print) -> None:
    _require_manager()
    if config is not None and not config.exists():
        raise AgentctxError(f"{config}: no such config file")
    directory = Path(paths.unit_dir())
    changed = _write(directory / SOCKET, template(SOCKET), say)
    changed |= _write(directory / SERVICE, render_service(config), say)
    _systemctl("daemon-reload")
    say("ran systemctl --user daemon-reload")
    _systemctl("enable", SOCKET, SERVICE)
    say(f"enabled {SOCKET} and {SERVICE} (started at login from now on)")
    if now:
        active = _systemctl("is-active", SERVICE, check=False).stdout.strip() == "active"
        _systemctl("start", SOCKET)
        if active and changed:
            _systemctl("restart", SERVICE)
            say(f"restarted {SERVICE} (its unit changed)")
        else:
            _systemctl("start", SERVICE)
            say(f"started {SOCKET} and {SERVICE}")
    say(
        "check it: systemctl --user status agentctx-sidecar; "
        "logs: journalctl --user -u agentctx-sidecar"
    )


def uninstall(*, say: Say = print) -> None:
    _require_manager()
    directory = Path(paths.unit_dir())
    present = [n for n in (SERVICE, SOCKET) if (directory / n).exists()]
    if present:
        _systemctl("disable", "--now", *present, check=False)
        say(f"stopped and disabled {' and '.join(present)}")
    for name in (SERVICE, SOCKET):
        path = directory / name
        if path.exists():
            path.unlink()
            say(f"removed {path}")
    _systemctl("daemon-reload")
    say("ran systemctl --user daemon-reload" if present else "nothing was installed")
