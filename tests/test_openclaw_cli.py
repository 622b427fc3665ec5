"""`agentctx hooks install|uninstall|status openclaw` when OpenClaw is not there or
fails: the commands to run instead, or one line saying what went wrong."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from openclaw_rig import OPENCLAW_BIN_DIR, install, node_bin_dir

from agentctx._core.version import __version__
from agentctx.cli.openclaw import install_commands, plugin_dir, uninstall_commands

CLI_TIMEOUT = 120.0


def hooks(action: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentctx", "hooks", action, "openclaw"],
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )


@pytest.fixture
def no_openclaw(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH has no openclaw (nor anything else)."""
    empty = tmp_path / "bin"
    empty.mkdir()
    return {"PATH": str(empty), "HOME": str(tmp_path)}


def test_the_plugin_ships_in_the_package() -> None:
    directory = plugin_dir()
    manifest = json.loads((directory / "openclaw.plugin.json").read_text())
    package = json.loads((directory / "package.json").read_text())
    assert manifest["id"] == package["name"] == "agentctx"
    assert package["version"] == __version__
    for entry in package["openclaw"]["extensions"]:
        assert (directory / entry).is_file(), entry


def test_without_openclaw_install_and_uninstall_print_the_commands(
    no_openclaw: dict[str, str],
) -> None:
    for action, commands in (
        ("install", install_commands(plugin_dir())),
        ("uninstall", uninstall_commands()),
    ):
        result = hooks(action, no_openclaw)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert "`openclaw` is not on PATH" in lines[0]
        assert [f"  {shlex.join(argv)}" for argv in commands] == lines[1 : 1 + len(commands)]
    assert f"--link {plugin_dir()} " in hooks("install", no_openclaw).stdout


def test_without_openclaw_status_is_a_problem(no_openclaw: dict[str, str]) -> None:
    result = hooks("status", no_openclaw)
    assert result.returncode == 1
    assert result.stdout == "openclaw: `openclaw` is not on PATH; cannot check\n"


def test_a_failing_openclaw_is_one_line_never_a_traceback(tmp_path: Path) -> None:
    reason = install()
    if reason is not None:
        pytest.skip(reason)
    state = tmp_path / "state"
    state.mkdir()
    config = state / "openclaw.json"
    broken = {"logging": {"file": str(tmp_path / "openclaw.log")}, "gateway": {"mode": 42}}
    config.write_text(json.dumps(broken))
    env = {
        "PATH": f"{node_bin_dir()}:{OPENCLAW_BIN_DIR}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "OPENCLAW_STATE_DIR": str(state),
        "OPENCLAW_NO_AUTO_UPDATE": "1",
        "OPENCLAW_OFFLINE": "1",
    }
    result = hooks("install", env)
    assert result.returncode == 1 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("agentctx: openclaw: openclaw plugins install --link"), line
    assert "OpenClaw config is invalid" in line, line
    assert json.loads(config.read_text()) == broken  # nothing written
