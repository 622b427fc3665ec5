"""NATS options on the command line and in the units `install` writes (no server needed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support import run_module

from sidecar.install import render_drop_in, render_service
from sidecar.nats_config import NatsSettings


def sidecar(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_module("sidecar", env, *args)


def test_bad_nats_options_stop_the_start_in_one_line(env: dict[str, str], tmp_path: Path) -> None:
    bad_creds = tmp_path / "user.creds"
    bad_creds.write_text("not a creds file\n")
    for args, says in (
        (["run", "--nats-creds", str(bad_creds)], "needs NATS server URLs"),
        (["run", "--nats", "127.0.0.1:4222"], "expected nats://"),
        (["run", "--nats", "nats://a:1", "--nats-replicas", "4"], "expected 1 to 3"),
        (["run", "--nats", "nats://a:1", "--nats-creds", str(bad_creds)], "not a NATS .creds"),
        (["run", "--nats", "nats://a:1", "--nats-tls-ca", "/nonexistent"], "not found"),
        (["follow", "nats://a:1", "--nats-tls-key", str(bad_creds)], "needs --nats-tls-cert"),
    ):
        result = sidecar(env, *args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and says in lines[0], (args, result)


def test_replicas_default_to_the_servers_given_at_most_three() -> None:
    assert NatsSettings.parse("nats://a:1").replicas == 1
    assert NatsSettings.parse("nats://a:1,nats://b:1,nats://c:1,nats://d:1").replicas == 3
    assert NatsSettings.parse("nats://a:1,nats://b:1", replicas=1).replicas == 1


@pytest.mark.parametrize("mode", ["nats", "follow"])
def test_units_with_nats_may_use_tcp(mode: str) -> None:
    settings = NatsSettings.parse("nats://h1:4222,nats://h2:4222")
    kwargs = {mode: settings}
    unit = render_service(python="/py", **kwargs)  # type: ignore[arg-type]
    assert "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6" in unit
    command = "follow nats://h1:4222,nats://h2:4222" if mode == "follow" else "run --nats"
    assert f"ExecStart=/py -m sidecar {command}" in unit
    drop_in = render_drop_in("ada", python="/py", **kwargs)  # type: ignore[arg-type]
    assert "ExecStart=\n" in drop_in and "-m sidecar --agent ada" in drop_in
    assert "AF_INET" in drop_in
    plain = render_service(python="/py")
    assert "RestrictAddressFamilies=AF_UNIX\n" in plain
    assert "ExecStart=/py -m sidecar run\n" in plain
    template = render_service(python="/py", agent="ada")
    assert "ExecStart=/py -m sidecar --agent %i run" in template
