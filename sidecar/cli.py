"""`agentctx-sidecar`: run the daemon (or a follower of one on another host), check a
config, install the systemd units.

Exit codes: 0 ok; 1 the daemon could not start or stopped on an error (already
running, unsafe runtime dir, ...); 2 bad usage or an invalid config.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
from pathlib import Path

from agentctx._core import paths
from agentctx._core.config import Config, load_config
from agentctx._core.errors import AgentctxError, ConfigError, UsageError
from agentctx._core.layout import Layout
from agentctx._core.version import __version__
from sidecar import nats_config
from sidecar.nats_config import NatsSettings

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
  socket    {paths.runtime_base()}/{paths.SOCKET_NAME}
  snapshot  {paths.runtime_base()}/{paths.SNAPSHOT_NAME}   (cat it to see the state)
  state     {paths.state_base()}/{paths.DURABLE_NAME}
  (with --agent NAME: in a NAME/ subdirectory of the socket's and the state's dirs)
exit codes: 0 ok, 1 could not start / failed, 2 bad usage or invalid config
"""
AGENT_HELP = "the agent (its own sidecar and files); default $AGENTCTX_AGENT, else none"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="agentctx-sidecar",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    # Read before parsing (paths.take_agent_flag), before or after the command; here
    # for --help, and for an --agent without a name (an argparse error).
    p.add_argument("--agent", metavar="NAME", help=AGENT_HELP)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    command = sub.add_parser
    run = command(
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
    _dirs_and_log(run)
    nats_config.add_options(run, home=True)
    follow = command(
        "follow",
        help="serve an agent whose home sidecar runs on another host (NATS)",
        description="Follow an agent's state from NATS JetStream and serve it here, on the "
        "same socket and snapshot a sidecar would: hooks and clients work unchanged. "
        "satisfy/bump/reset are forwarded to the agent's home sidecar.",
    )
    follow.add_argument("url", metavar="URL[,URL...]", help="NATS server(s)")
    _dirs_and_log(follow)
    nats_config.add_options(follow, home=False)
    inst = command(
        "install",
        help="install and enable the systemd user units",
        description="Write agentctx-sidecar.service and .socket to ~/.config/systemd/user "
        "(ExecStart = this Python), daemon-reload, and enable them. Idempotent.",
    )
    inst.add_argument("--now", action="store_true", help="also start them now")
    inst.add_argument("--config", type=Path, metavar="PATH", help="config file for the service")
    inst.add_argument("--follow", metavar="URL[,URL...]", help="install a follower of NATS")
    nats_config.add_options(inst, home=True)
    command(
        "uninstall",
        help="stop, disable and remove the systemd user units",
        description="Reverse `install`. Idempotent.",
    )
    check = command(
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


def _dirs_and_log(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--runtime-dir",
        type=Path,
        metavar="DIR",
        help="socket + snapshot dir (default $XDG_RUNTIME_DIR/agentctx)",
    )
    cmd.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="durable state + spool dir (default $XDG_STATE_HOME/agentctx)",
    )
    cmd.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="default: info",
    )


def _nats(args: argparse.Namespace, urls: str | None) -> NatsSettings | None:
    """The NATS settings of the command line (None without URLs); UsageError /
    ConfigError for bad ones, or when nats-py (the `nats` extra) is not installed."""
    if urls is None:
        for flag in ("nats_creds", "nats_tls_ca", "nats_tls_cert", "nats_tls_key"):
            if getattr(args, flag, None) is not None:
                raise UsageError(f"--{flag.replace('_', '-')} needs NATS server URLs")
        return None
    if args.command != "install" and importlib.util.find_spec("nats") is None:
        raise UsageError(
            "NATS needs nats-py: install the nats extra (from the checkout: pip install '.[nats]')"
        )
    return NatsSettings.parse(
        urls,
        creds=args.nats_creds,
        tls_ca=args.nats_tls_ca,
        tls_cert=args.nats_tls_cert,
        tls_key=args.nats_tls_key,
        replicas=getattr(args, "nats_replicas", None),
    )


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
    # watchfiles says "N changes detected" at INFO for every spool write it sees
    logging.getLogger("watchfiles").setLevel(max(logging.WARNING, logging.getLogger().level))


def _describe(cfg: Config) -> str:
    lines = [f"{cfg.source}: OK, {len(cfg.drives)} drive(s)"]
    for name, d in cfg.drives.items():
        growth = "activity-driven" if d.activity_driven else f"{d.rate_per_hour:g}/h"
        lines.append(f"  {name:<14} threshold {d.threshold:g}, {growth}")
    return "\n".join(lines)


def _check_config(args: argparse.Namespace) -> int:
    path, required = _config_source(args.path)
    if not path.exists():
        defaults = "`agentctx-sidecar run` without --config uses the built-in default drives"
        if required:
            print(f"agentctx-sidecar: {path}: no such file ({defaults})", file=sys.stderr)
            return EXIT_USAGE
        print(f"no config file at {path}; {defaults}:")
        print(_describe(load_config(None, required=False)))
        return EXIT_OK
    print(_describe(load_config(path, required=True)))  # ConfigError: exit 2
    return EXIT_OK


def _install(args: argparse.Namespace, agent: str | None) -> int:
    from sidecar import install

    try:
        if args.command == "install":
            if args.follow is not None and args.nats is not None:
                raise UsageError("install: give --nats (a home) or --follow (a follower), not both")
            install.install(
                now=args.now,
                config=args.config,
                agent=agent,
                nats=_nats(args, args.nats),
                follow=_nats(args, args.follow),
            )
        else:
            install.uninstall(agent=agent)
    except (UsageError, ConfigError):
        raise
    except AgentctxError as exc:
        print(f"agentctx-sidecar: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _serve(args: argparse.Namespace, agent: str | None) -> None:
    """`run` or `follow`, until stopped; AgentctxError / OSError when it cannot start."""
    layout = Layout.resolve(args.runtime_dir, args.state_dir, agent=agent or "")
    if args.command == "follow":
        settings = _nats(args, args.url)
        assert settings is not None
        _setup_logging(args.log_level)
        from sidecar.follow import Follower  # nats-py: only for a follower

        Follower(settings, layout, agent).run()
        return
    settings = _nats(args, args.nats)
    path, required = _config_source(args.config)
    cfg = load_config(path, required=required)  # ConfigError: exit 2
    _setup_logging(args.log_level)
    from sidecar.daemon import Daemon  # the heavy imports only when running

    Daemon(cfg, layout, config_path=path, nats=settings, agent=agent).run()


def main(argv: list[str] | None = None) -> int:
    flag, argv = paths.take_agent_flag(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    try:
        agent = paths.agent_name(flag)
        # = AGENTCTX_AGENT=NAME: what the daemon's actions start talks to this agent too
        os.environ[paths.AGENT_ENV] = agent or ""
        if args.command == "check-config":
            return _check_config(args)
        if args.command in ("install", "uninstall"):
            return _install(args, agent)
        _serve(args, agent)
    except UsageError as exc:
        print(f"agentctx-sidecar: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        print(f"agentctx-sidecar: invalid config: {exc}", file=sys.stderr)
        return EXIT_USAGE
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
