"""`agentctx-sidecar install|uninstall`: the systemd user units, written and enabled.

The unit templates ship inside the package (sidecar/units/). Installing rewrites
ExecStart to the absolute interpreter this command runs under, so it works for
pip, pipx and uv tool installs alike and execs Python directly (NotifyAccess=main).
A named agent (`--agent NAME`) gets the template units `agentctx-sidecar@.service`
and `.socket`, enabled as instance NAME; what is particular to one agent (its
config, NATS) goes into a drop-in of that instance, so the template itself stays
usable as it is for any other name. With NATS (`--nats` or `--follow`) the unit
may also open IP sockets. Both commands are idempotent and refuse, with one line
saying why, when there is no systemd user manager to talk to.
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
from agentctx._core.config import load_config
from agentctx._core.errors import AgentctxError, NoUserManager, StoreError
from agentctx._core.files import atomic_write, read_file
from sidecar.nats_config import NatsSettings

__all__ = [
    "SERVICE",
    "SOCKET",
    "TEMPLATE_SERVICE",
    "TEMPLATE_SOCKET",
    "install",
    "render_drop_in",
    "render_service",
    "uninstall",
    "unit_names",
]

SERVICE: Final = "agentctx-sidecar.service"
SOCKET: Final = "agentctx-sidecar.socket"
TEMPLATE_SERVICE: Final = "agentctx-sidecar@.service"
TEMPLATE_SOCKET: Final = "agentctx-sidecar@.socket"
DROP_IN: Final = "install.conf"
SYSTEMCTL_TIMEOUT: Final = 60.0
# NATS needs TCP: the units allow only AF_UNIX otherwise (hardening).
NET_FAMILIES: Final = "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6"

Say = Callable[[str], None]


def template(name: str) -> str:
    return resources.files("sidecar").joinpath("units", name).read_text()


def unit_names(agent: str | None) -> tuple[str, str]:
    """The service and socket units of *agent* (an instance of the template if named)."""
    if agent is None:
        return SERVICE, SOCKET
    return f"agentctx-sidecar@{agent}.service", f"agentctx-sidecar@{agent}.socket"


def _command(
    python: str,
    agent: str | None,
    config: Path | None,
    nats: NatsSettings | None,
    follow: NatsSettings | None,
) -> list[str]:
    argv = [python, "-m", "sidecar"] + (["--agent", agent] if agent else [])
    if follow is not None:
        return [*argv, "follow", ",".join(follow.urls), *follow.argv(replicas=False)]
    argv.append("run")
    if config is not None:
        argv += ["--config", str(config.resolve())]
    if nats is not None:
        argv += ["--nats", ",".join(nats.urls), *nats.argv()]
    return argv


def _exec_line(argv: list[str]) -> str:
    # systemd expands % specifiers in ExecStart: a literal % must be doubled
    return "ExecStart=" + shlex.join(argv).replace("%", "%%")


def render_service(
    config: Path | None = None,
    python: str | None = None,
    *,
    agent: str | None = None,
    nats: NatsSettings | None = None,
    follow: NatsSettings | None = None,
) -> str:
    """The unnamed agent's service unit with ExecStart on this interpreter (and its
    options); with *agent*, the template, whose ExecStart runs instance %i."""
    python = python or sys.executable
    if agent is not None:
        exec_line = _exec_line([python, "-m", "sidecar"]) + " --agent %i run"
        name, networked = TEMPLATE_SERVICE, False
    else:
        exec_line = _exec_line(_command(python, None, config, nats, follow))
        name, networked = SERVICE, nats is not None or follow is not None
    lines = []
    for ln in template(name).splitlines():
        if ln.startswith("ExecStart="):
            ln = exec_line
        elif ln.startswith("RestrictAddressFamilies=") and networked:
            ln = NET_FAMILIES
        lines.append(ln)
    return "\n".join(lines) + "\n"


def render_drop_in(
    agent: str,
    config: Path | None = None,
    python: str | None = None,
    *,
    nats: NatsSettings | None = None,
    follow: NatsSettings | None = None,
) -> str:
    """The drop-in giving one named agent's instance its own command line."""
    argv = _command(python or sys.executable, agent, config, nats, follow)
    lines = ["# written by `agentctx-sidecar install`", "[Service]", "ExecStart=", _exec_line(argv)]
    if nats is not None or follow is not None:
        lines.append(NET_FAMILIES)  # merged with the template's AF_UNIX
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


def install(
    *,
    now: bool = False,
    config: Path | None = None,
    agent: str | None = None,
    nats: NatsSettings | None = None,
    follow: NatsSettings | None = None,
    say: Say = print,
) -> None:
    if config is not None:  # the file first: a unit that cannot start helps nobody
        load_config(config, required=True)  # ConfigError: the file, the field, the value
    _require_manager()
    directory = Path(paths.unit_dir())
    service, socket = unit_names(agent)
    if agent is None:
        changed = _write(directory / SOCKET, template(SOCKET), say)
        text = render_service(config, nats=nats, follow=follow)
        changed |= _write(directory / SERVICE, text, say)
    else:
        changed = _write(directory / TEMPLATE_SOCKET, template(TEMPLATE_SOCKET), say)
        changed |= _write(directory / TEMPLATE_SERVICE, render_service(agent=agent), say)
        drop_in = directory / f"{service}.d" / DROP_IN
        if config is not None or nats is not None or follow is not None:
            text = render_drop_in(agent, config, nats=nats, follow=follow)
            changed |= _write(drop_in, text, say)
        elif drop_in.exists():
            drop_in.unlink()
            say(f"removed {drop_in}")
            changed = True
    _systemctl("daemon-reload")
    say("ran systemctl --user daemon-reload")
    _systemctl("enable", socket, service)
    say(f"enabled {socket} and {service} (started at login from now on)")
    if now:
        active = _systemctl("is-active", service, check=False).stdout.strip() == "active"
        _systemctl("start", socket)
        if active and changed:
            _systemctl("restart", service)
            say(f"restarted {service} (its unit changed)")
        else:
            _systemctl("start", service)
            say(f"started {socket} and {service}")
    unit = service.removesuffix(".service")
    say(f"check it: systemctl --user status {unit}; logs: journalctl --user -u {unit}")


def _instances_left(directory: Path) -> bool:
    """Whether any named agent's instance is still enabled or configured."""
    return any(directory.glob("*.wants/agentctx-sidecar@?*")) or any(
        directory.glob("agentctx-sidecar@?*.service.d")
    )


def uninstall(*, agent: str | None = None, say: Say = print) -> None:
    _require_manager()
    directory = Path(paths.unit_dir())
    service, socket = unit_names(agent)
    files = [SERVICE, SOCKET] if agent is None else [TEMPLATE_SERVICE, TEMPLATE_SOCKET]
    present = agent is not None or any((directory / n).exists() for n in files)
    if present:
        _systemctl("disable", "--now", service, socket, check=False)
        say(f"stopped and disabled {service} and {socket}")
    if agent is not None:
        drop_ins = directory / f"{service}.d"
        if (drop_ins / DROP_IN).exists():
            (drop_ins / DROP_IN).unlink()
            say(f"removed {drop_ins / DROP_IN}")
        if drop_ins.is_dir() and not any(drop_ins.iterdir()):
            drop_ins.rmdir()
        if _instances_left(directory):
            files = []  # the templates serve the other agents still
    for name in files:
        path = directory / name
        if path.exists():
            path.unlink()
            say(f"removed {path}")
    _systemctl("daemon-reload")
    say("ran systemctl --user daemon-reload" if present else "nothing was installed")
