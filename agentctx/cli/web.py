"""`agentctx web`: serve the live page; print (and with --open, open) its URL.

The server lives in `agentctx.web` and needs the `web` extra; this module only
reads the command line, reports, and is importable without the extra.
"""

from __future__ import annotations

from agentctx._core.errors import ServeError
from agentctx.web.address import DEFAULT_LISTEN, parse_listen

# typing, argparse and logging are not imported at run time: every `agentctx`
# command builds its parser with this module's add_arguments().
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Final

__all__ = ["HELP", "add_arguments", "web"]

HELP: Final = "a live page in the browser (needs the web extra: pip install '.[web]')"
LOG_FORMAT: Final = "agentctx web: %(message)s"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"address to serve on (default {DEFAULT_LISTEN}; port 0: any free one)",
    )
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --listen address other machines can reach (still token-guarded)",
    )


def _open_browser(url: str) -> None:
    # webbrowser.open() waits for a text-mode browser to exit: never on the way of
    # serving or stopping, so in a daemon thread of its own.
    import threading
    import webbrowser

    threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()


def web(args: argparse.Namespace) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
    address = parse_listen(args.listen, args.allow_remote)
    try:
        import anyio

        from agentctx.web.security import TOKEN_FILE
        from agentctx.web.server import WebServer
    except ModuleNotFoundError as exc:
        if (exc.name or "").startswith("agentctx"):
            raise  # our own bug, not a missing extra
        raise ServeError(
            f"{exc.name or 'a module'} is missing: install the web extra "
            "(from the checkout: pip install '.[web]')"
        ) from None

    with WebServer.open(address) as server:

        async def main() -> None:
            async with anyio.create_task_group() as tg:
                url = await tg.start(server.run)
                print(f"agentctx web: the token is also in {server.layout.runtime / TOKEN_FILE}")
                print(f"agentctx web: open {url}", flush=True)
                if args.open:
                    _open_browser(url)

        anyio.run(main, backend="asyncio")  # uvicorn runs on asyncio only
    return 0
