"""Codex's record that the user trusts a hook, kept in `$CODEX_HOME/config.toml`.

Codex skips a hook nobody trusted without a word. Accepting its hooks prompt
writes, per handler,

    [hooks.state."<abs hooks.json>:<event_snake>:<group index>:<handler index>"]
    trusted_hash = "sha256:<hex of the handler's normalised identity>"

`agentctx hooks install codex` is the user's decision to run exactly these
commands, so it writes the same entries for its own handlers (each under a marker
comment, so uninstall takes out exactly those lines); tests/test_agents_e2e.py
proves Codex then runs them without `--dangerously-bypass-hook-trust`. The TOML
is edited as text (no TOML writer in the stdlib) and every result is parsed back
with tomllib before it is written: an edit Codex could not read is never saved.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Final

from agentctx._core.errors import ConfigError, StoreError
from agentctx._core.files import read_file
from agentctx.cli.settings import Placed

__all__ = ["CONFIG_NAME", "MARK", "check", "entries", "is_trusted", "read", "retrust", "untrust"]

CONFIG_NAME: Final = "config.toml"
MARK: Final = "# agentctx hooks install: trust for its hook (removed by uninstall)"
CODEX_DEFAULT_TIMEOUT: Final = 600  # what Codex puts in the identity when none is set
_HEADER: Final = re.compile(r'^\[\s*hooks\s*\.\s*state\s*\.\s*"((?:[^"\\]|\\.)*)"\s*\]\s*$')

Entry = tuple[str, str]  # trust key, trusted_hash


def _snake(event: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", event).lower()


def entries(hooks_file: Path, placed: list[Placed]) -> list[Entry]:
    """The trust entries Codex expects for our *placed* handlers in *hooks_file*. Codex
    keys them by the file's canonical path: a symlinked $CODEX_HOME (dotfiles) must
    not leave the hooks untrusted."""
    where = os.path.realpath(hooks_file)
    out = []
    for event, group, index, handler in placed:
        identity: dict[str, Any] = {
            "event_name": _snake(event),
            "hooks": [
                {
                    "async": False,
                    "command": handler["command"],
                    "timeout": handler.get("timeout", CODEX_DEFAULT_TIMEOUT),
                    "type": "command",
                }
            ],
        }
        digest = hashlib.sha256(
            json.dumps(identity, separators=(",", ":"), sort_keys=True).encode()
        ).hexdigest()
        out.append((f"{where}:{_snake(event)}:{group}:{index}", f"sha256:{digest}"))
    return out


def _block(entry: Entry) -> str:
    key, digest = entry
    return f"\n{MARK}\n[hooks.state.{json.dumps(key)}]\ntrusted_hash = {json.dumps(digest)}\n"


def read(config: Path) -> tuple[str, dict[str, Any]]:
    """The text of config.toml ("" when absent) and what it says."""
    try:
        raw = read_file(config)
        text = "" if raw is None else raw.decode()
        return text, tomllib.loads(text)
    except StoreError as exc:
        raise ConfigError(f"{exc}; nothing changed") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{config}: not valid TOML ({exc}); nothing changed") from None


def _state(doc: dict[str, Any]) -> dict[str, Any]:
    hooks = doc.get("hooks")
    state = hooks.get("state") if isinstance(hooks, dict) else None
    return state if isinstance(state, dict) else {}


def is_trusted(doc: dict[str, Any], entry: Entry) -> bool:
    key, digest = entry
    record = _state(doc).get(key)
    return (
        isinstance(record, dict)
        and record.get("trusted_hash") == digest
        and record.get("enabled", True) is not False
    )


def untrust(text: str, keys: set[str] | None = None) -> str:
    """*text* without our marked trust blocks, and without any other block for one of
    *keys* (a stale entry for a position we now take: Codex keys trust by position)."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    i = 0
    while i < len(lines):
        key = _header_key(lines[i])
        ours = key is not None and bool(out) and out[-1].rstrip("\n") == MARK
        if key is not None and (ours or (keys is not None and key in keys)):
            if ours:
                out.pop()  # the marker
                if out and out[-1] == "\n":
                    out.pop()  # the blank line _block put before it
            i += 1
            # the table's `key = value` lines: ours has just its trusted_hash; a blank
            # line, a comment or a header ends one Codex wrote
            while i < len(lines) and (
                lines[i].startswith("trusted_hash")
                if ours
                else lines[i].strip() and lines[i].lstrip()[0] not in "#["
            ):
                i += 1
            continue
        out.append(lines[i])
        i += 1
    return "".join(out)


def _header_key(line: str) -> str | None:
    """The key of a `[hooks.state."KEY"]` header line, else None."""
    match = _HEADER.match(line.strip())
    if match is None:
        return None
    try:  # a TOML basic string's escapes are JSON's (but for \U, which no path needs)
        key = json.loads(f'"{match.group(1)}"')
    except ValueError:
        return None
    return key if isinstance(key, str) else None


def retrust(config: Path, text: str, wanted: list[Entry]) -> str:
    """*text* (valid TOML) with exactly *wanted* trusted for our handlers: our old
    blocks out, then one block for each entry Codex does not trust already."""
    old = untrust(text)
    doc = _parse(config, old)
    missing = [e for e in wanted if not is_trusted(doc, e)]
    # a block Codex wrote itself for an older command at one of our positions must go,
    # or ours would define that table a second time
    new = untrust(old, {key for key, _ in missing})
    if missing and new and not new.endswith("\n"):
        new += "\n"
    return new + "".join(_block(e) for e in missing)


def _parse(config: Path, text: str) -> dict[str, Any]:
    """*text* as TOML; ConfigError if editing trust entries broke it (say, a key the
    user wrote under one of our headers)."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{config}: editing its hook trust entries would make it invalid TOML ({exc}); "
            f"nothing changed: edit the blocks marked {MARK!r} by hand (or use --no-trust)"
        ) from None


def check(config: Path, text: str, wanted: list[Entry]) -> None:
    """Refuse (ConfigError) an edit Codex could not read or that does not say what we meant."""
    doc = _parse(config, text)
    if not all(is_trusted(doc, e) for e in wanted):
        raise ConfigError(
            f"{config}: its [hooks.state] is written in a form agentctx cannot edit; nothing "
            "changed: re-run with --no-trust and trust the hooks in codex"
        )
