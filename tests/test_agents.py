"""Named agents: several sidecars on one machine, each in its own NAME/ dirs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO, DaemonProcess, run_module


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_module("agentctx", env, *args)


def rest(state: dict[str, object]) -> float:
    drives = state["drives"]
    assert isinstance(drives, dict)
    return float(drives["REST"]["pressure"])


def test_two_agents_and_the_unnamed_one_side_by_side(
    env: dict[str, str], dirs: dict[str, Path]
) -> None:
    a = DaemonProcess(env, None, dirs["root"] / "a.log", agent="a")
    b = DaemonProcess(env, None, dirs["root"] / "b.log", agent="b")
    unnamed = DaemonProcess(env, None, dirs["root"] / "unnamed.log")
    try:
        a.start(extra_args=["--agent", "a"])  # after the command...
        b.start(command="--agent b run")  # ...or before it
        unnamed.start()
        for name, d in (("a", a), ("b", b)):
            assert d.socket == dirs["runtime"] / name / "sidecar.sock" and d.socket.exists()
            assert (dirs["state"] / name / "state.json").exists()
        assert (dirs["runtime"] / "sidecar.sock").exists()  # the unnamed one: where it was
        assert cli(env, "--agent", "a", "bump", "REST", "--amount", "2").returncode == 0
        assert cli(env, "bump", "REST", "--amount", "5", "--agent", "b").returncode == 0
        assert cli({**env, "AGENTCTX_AGENT": "b"}, "bump", "REST", "--amount", "1").returncode == 0
        assert rest(a.read_snapshot()) == 2.0
        wanted = {"a": 2.0, "b": 6.0, None: 0.0}
        listed = json.loads(cli(env, "status", "--all", "--json").stdout)
        assert {r["agent"]: rest(r) for r in listed} == wanted
        assert all(r["source"] == "socket" for r in listed)
        table = cli(env, "status", "--all").stdout.splitlines()
        assert [ln.split()[0] for ln in table] == ["(unnamed)", "a", "b"]
        a.stop()
        stopped = json.loads(cli(env, "status", "--all", "--json").stdout)
        assert [r["source"] for r in stopped] == ["socket", "file", "socket"]
    finally:
        for d in (a, b, unnamed):
            if d.proc is not None and d.proc.poll() is None:
                d.stop()


def test_the_python_api_takes_an_agent(
    env: dict[str, str], dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import agentctx

    d = DaemonProcess(env, None, dirs["root"] / "x.log", agent="x")
    d.start(extra_args=["--agent", "x"])
    try:
        receipt = agentctx.bump("REST", 3.0, agent="x")
        assert receipt.status == "acked"
        assert rest(agentctx.read(agent="x").data) == 3.0
        with agentctx.Live(agent="x") as live:
            assert live.state is not None and rest(live.state.data) == 3.0
        with pytest.raises(agentctx.DaemonUnavailable):
            agentctx.read(agent="")  # the unnamed agent has no sidecar here
        monkeypatch.setenv("AGENTCTX_AGENT", "x")
        assert agentctx.read().seq > 0  # the environment names it too
    finally:
        d.stop()


@pytest.mark.parametrize("name", ["../x", "a b", "default", "spool", "x" * 65, "é"])
def test_bad_agent_names_are_refused_in_one_line(env: dict[str, str], name: str) -> None:
    for argv in (
        [sys.executable, "-m", "agentctx", "--agent", name, "status"],
        [sys.executable, "-m", "agentctx", "context", "--agent", name],
        [sys.executable, "-m", "sidecar", "run", "--agent", name],
    ):
        result = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=30)
        assert result.returncode == 2, (argv, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "agent name" in lines[0], result.stderr


def test_hooks_of_a_named_agent_read_its_sidecar(
    env: dict[str, str], dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`agentctx --agent ada hooks install` writes hook commands that name ada, and
    such a hook (the fast path) reads ada's sidecar."""
    from agentctx.cli.hooks import hook_command

    monkeypatch.setenv("AGENTCTX_AGENT", "ada")
    command = hook_command("claude", changes_only=False)
    assert command.endswith("context --hook claude --agent ada")
    d = DaemonProcess(env, None, dirs["root"] / "ada.log", agent="ada")
    d.start(extra_args=["--agent", "ada"])
    try:
        assert cli(env, "--agent", "ada", "bump", "REST", "--amount", "4").returncode == 0
        stdin = json.dumps({"session_id": "s1", "hook_event_name": "UserPromptSubmit"})
        out = subprocess.run(
            [sys.executable, "-m", "agentctx", "context", "--hook", "claude", "--agent", "ada"],
            env=env,
            cwd=REPO,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=30,
        )
        context = json.loads(out.stdout)["hookSpecificOutput"]["additionalContext"]
        assert "REST" in context and "4.0" in context, context
    finally:
        d.stop()


def test_hints_name_the_agent(env: dict[str, str]) -> None:
    """With no sidecar for `ada`, every "start it" hint starts ada's, not the unnamed one."""
    status = cli(env, "--agent", "ada", "status")
    assert status.returncode == 3  # no state at all
    assert "(start it: agentctx-sidecar --agent ada run)" in status.stderr, status.stderr
    hook = cli(env, "context", "--hook", "claude", "--agent", "ada")
    assert hook.returncode == 0 and "agentctx-sidecar --agent ada run" in hook.stderr
    doctor = cli(env, "--agent", "ada", "doctor")
    assert "start it: agentctx-sidecar --agent ada run" in doctor.stdout + doctor.stderr
    assert "agentctx-sidecar@ada.service" in doctor.stdout + doctor.stderr
    assert "start it: agentctx-sidecar run" in cli(env, "status").stderr  # the unnamed one


def test_a_named_agent_reads_its_own_config_when_it_has_one(
    env: dict[str, str], tmp_path: Path
) -> None:
    base = Path(env["XDG_CONFIG_HOME"]) / "agentctx"
    (base / "ada").mkdir(parents=True)
    (base / "drives.toml").write_text("[drives.SHARED]\nthreshold = 5\n")
    (base / "ada" / "drives.toml").write_text("[drives.OWN]\nthreshold = 5\n")

    def checked(*agent: str) -> str:
        r = run_module("sidecar", env, *agent, "check-config")
        assert r.returncode == 0, r.stderr
        return r.stdout

    assert str(base / "ada" / "drives.toml") in checked("--agent", "ada")
    assert str(base / "drives.toml") in checked("--agent", "bob")  # none of its own: shared
    assert str(base / "drives.toml") in checked()
