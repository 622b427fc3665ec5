"""`agentctx-sidecar`: run the daemon, check a config.

Exit codes: 0 ok; 1 the daemon could not start or stopped on an error (already
running, unsafe runtime dir, ...); 2 bad usage or an invalid config.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from agentctx._core import paths
from agentctx._core.config import Config, load_config
from agentctx._core.errors import AgentctxError, ConfigError
from agentctx._core.layout import Layout
from agentctx._core.version import __version__

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

DESCRIPTION = """\
The agentctx sidecar: ticks your agent's drives (CARE, REST, ...) and pushes
every change live to the agent sessions on this machine over a Unix socket,
with an atomically written JSON snapshot for when the socket is down.

With no config file it runs on the built-in default drives.
"""

EPILOG = f"""\
files:
  config    --config, else $AGENTCTX_CONFIG, else {paths.config_path()}
  socket    {paths.socket_path()}
  snapshot  {paths.snapshot_path()}   (cat it to see the state)
  state     {paths.state_dir()}/{paths.DURABLE_NAME}
exit codes: 0 ok, 1 could not start / failed, 2 bad usage or invalid config
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="agentctx-sidecar",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = sub.add_parser(
        "run",
        help="run the daemon in the foreground (logs to stderr)",
        description="Run the daemon in the foreground until SIGTERM/SIGINT. "
        "SIGHUP reloads the config without dropping clients or pressure.",
    )
    run.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="config file (TOML, or emergence drives.json); must exist if given",
    )
    run.add_argument(
        "--runtime-dir",
        type=Path,
        metavar="DIR",
        help="socket + snapshot dir (default $XDG_RUNTIME_DIR/agentctx)",
    )
    run.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="durable state + spool dir (default $XDG_STATE_HOME/agentctx)",
    )
    run.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="default: info",
    )
    inst = sub.add_parser(
        "install",
        help="install and enable the systemd user units",
        description="Write agentctx-sidecar.service and .socket to ~/.config/systemd/user "
        "(ExecStart = this Python), daemon-reload, and enable them. Idempotent.",
    )
    inst.add_argument("--now", action="store_true", help="also start them now")
    inst.add_argument("--config", type=Path, metavar="PATH", help="config file for the service")
    sub.add_parser(
        "uninstall",
        help="stop, disable and remove the systemd user units",
        description="Reverse `install`. Idempotent.",
    )
    check = sub.add_parser(
        "check-config",
        help="validate a config file and exit",
        description="Validate a config file without starting the daemon. "
        "Prints the drives it defines; exit 2 with one line if invalid.",
    )
    check.add_argument(
        "path",
        nargs="?",
        type=Path,
        help=f"config file (default: $AGENTCTX_CONFIG or {paths.config_path()})",
    )
    return p


def _config_source(explicit: Path | None) -> tuple[Path, bool]:
    """The config path and whether it must exist (explicitly named ones must)."""
    if explicit is not None:
        return explicit, True
    return Path(paths.config_path()), bool(os.environ.get("AGENTCTX_CONFIG"))


def _setup_logging(level: str) -> None:
    # Under systemd, journald stamps the time itself.
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not os.environ.get("JOURNAL_STREAM"):
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=level.upper(), format=fmt, stream=sys.stderr)


def _describe(cfg: Config) -> str:
    lines = [f"{cfg.source}: OK, {len(cfg.drives)} drive(s)"]
    for name, d in cfg.drives.items():
        growth = "activity-driven" if d.activity_driven else f"{d.rate_per_hour:g}/h"
        lines.append(f"  {name:<14} threshold {d.threshold:g}, {growth}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        path, required = _config_source(args.path)
        if not path.exists():
            defaults = "`agentctx-sidecar run` without --config uses the built-in default drives"
            if required:
                print(f"agentctx-sidecar: {path}: no such file ({defaults})", file=sys.stderr)
                return EXIT_USAGE
            print(f"no config file at {path}; {defaults}:")
            print(_describe(load_config(None, required=False)))
            return EXIT_OK
        try:
            cfg = load_config(path, required=True)
        except ConfigError as exc:
            print(f"agentctx-sidecar: invalid config: {exc}", file=sys.stderr)
            return EXIT_USAGE
        print(_describe(cfg))
        return EXIT_OK

    if args.command in ("install", "uninstall"):
        from sidecar import install

        try:
            if args.command == "install":
                install.install(now=args.now, config=args.config)
            else:
                install.uninstall()
        except AgentctxError as exc:
            print(f"agentctx-sidecar: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        return EXIT_OK

    _setup_logging(args.log_level)
    from sidecar.daemon import Daemon  # the heavy imports only when running

    path, required = _config_source(args.config)
    try:
        cfg = load_config(path, required=required)
    except ConfigError as exc:
        print(f"agentctx-sidecar: invalid config: {exc}", file=sys.stderr)
        return EXIT_USAGE
    daemon = Daemon(cfg, Layout.resolve(args.runtime_dir, args.state_dir), config_path=path)
    try:
        daemon.run()
    except AgentctxError as exc:
        print(f"agentctx-sidecar: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as exc:  # the last resort: what no boundary above named more precisely
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"agentctx-sidecar: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        pass
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
