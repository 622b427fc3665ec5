"""Crash consistency: named fail-points, kill -9 under load, damaged files, full
disks and failing fsync. Each test can fail; none of them mocks the daemon."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import BUCKET
from support import DaemonProcess, Lines, RawClient, run_module, start_module, write_config

import agentctx
from agentctx._core.config import parse_config
from agentctx._core.files import FAILPOINT_EXIT, FAILPOINTS_ENV
from agentctx._core.layout import Layout
from sidecar.restore import restore
from sidecar.store import load_durable

Factory = Callable[..., DaemonProcess]


def rid() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def armed(env: dict[str, str], dirs: dict[str, Path]) -> Path:
    """The fail-point file the daemons of this test read (empty: nothing armed)."""
    path = dirs["root"] / "failpoints"
    env[FAILPOINTS_ENV] = str(path)
    return path


def no_temps(*dirs: Path) -> bool:
    return not any(p.name.endswith(".tmp") for d in dirs for p in d.iterdir())


@pytest.mark.parametrize(
    ("point", "survives"),
    [
        ("after-temp-write", False),
        ("after-fsync", False),
        ("after-rename", True),
        ("after-dir-fsync", True),
    ],
)
def test_crash_at_each_write_step_gives_old_or_new(
    make_daemon: Factory, armed: Path, point: str, survives: bool
) -> None:
    d = make_daemon({"B": BUCKET}, tick_interval=3600)
    with d.client(subscribe=False) as c:
        assert (
            c.request({"type": "bump", "request_id": rid(), "drive": "B", "amount": 1})["type"]
            == "ack"
        )
        armed.write_text(f"{point}@state.json")
        request = {"type": "bump", "request_id": rid(), "drive": "B", "amount": 10}
        c.send({**request, "id": 99})
        assert c.is_closed(timeout=10)  # died before any ack
    assert d.proc is not None and d.proc.wait(10) == FAILPOINT_EXIT
    armed.write_text("")
    d.start()
    assert "durable state unusable" not in d.log_text()  # never a torn durable file
    assert no_temps(d.state_dir, d.runtime)
    pressure = agentctx.read().drives["B"]["pressure"]
    assert pressure == (11.0 if survives else 1.0)
    # the client retries what it was never acked for: applied exactly once either way
    with d.client(subscribe=False) as c:
        assert c.request(request)["type"] == "ack"
        assert c.request({"type": "get"})["drives"]["B"]["pressure"] == 11.0


def test_crash_mid_drain_applies_each_spooled_request_once(
    make_daemon: Factory, armed: Path
) -> None:
    d = make_daemon({"B": BUCKET}, tick_interval=3600)
    d.stop()
    for _ in range(5):
        assert agentctx.bump("B", 1.0).status == "queued"
    armed.write_text("mid-drain")
    d.start(wait=False)
    assert d.proc is not None and d.proc.wait(15) == FAILPOINT_EXIT
    assert len(list((d.state_dir / "spool").glob("*.json"))) == 5  # none unlinked yet
    armed.write_text("")
    d.start()
    assert agentctx.read().drives["B"]["pressure"] == 5.0


def test_fsync_error_keeps_old_file_and_recovers(make_daemon: Factory, armed: Path) -> None:
    d = make_daemon({"B": BUCKET}, tick_interval=3600)
    with d.client(subscribe=False) as c:
        c.request({"type": "bump", "request_id": rid(), "drive": "B", "amount": 1})
        before = (d.state_dir / "state.json").read_bytes()
        armed.write_text("fsync-eio@state.json")
        request = {"type": "bump", "request_id": rid(), "drive": "B", "amount": 2}
        reply = c.request(request, timeout=10)
        assert reply["type"] == "error" and reply["code"] == "not_durable"
        assert (d.state_dir / "state.json").read_bytes() == before  # old file intact
        assert no_temps(d.state_dir)
        assert c.request({"type": "ping"})["type"] == "pong"  # still serving
        armed.write_text("")
        # the writer retries with backoff, each time with a fresh temp file
        again = c.request(request, timeout=15)
        assert again["type"] == "ack"  # the same request_id: answered, not re-applied
    durable = load_durable(d.state_dir / "state.json")
    assert durable is not None and durable.drives["B"].pressure == 3.0
    assert "write failed (retrying every" in d.log_text()
    assert "written again (" in d.log_text()


@pytest.fixture
def tiny_fs(dirs: dict[str, Path]) -> Iterator[Path]:
    """dirs['state'] on a 256 KiB tmpfs, for real ENOSPC."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    state = dirs["state"]
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(state)], check=True
    )
    try:
        yield state
    finally:
        subprocess.run(["umount", "-l", str(state)], check=False)


def test_full_disk_keeps_serving_and_recovers(make_daemon: Factory, tiny_fs: Path) -> None:
    d = make_daemon({"B": BUCKET}, tick_interval=0.05)
    with d.client() as watcher, d.client(subscribe=False) as c:
        c.request({"type": "bump", "request_id": rid(), "drive": "B", "amount": 1})
        before = (tiny_fs / "state.json").read_bytes()
        filler = tiny_fs / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:  # fill the disk to the last byte
            while os.write(fd, b"\0" * 512):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        request = {"type": "bump", "request_id": rid(), "drive": "B", "amount": 2}
        reply = c.request(request, timeout=10)
        assert reply["type"] == "error" and reply["code"] == "not_durable"
        assert (tiny_fs / "state.json").read_bytes() == before
        assert no_temps(tiny_fs)
        # ticks and pushes go on meanwhile
        seqs = [m["seq"] for m in (watcher.recv() for _ in range(10)) if m["type"] == "state"]
        assert seqs == sorted(seqs) and len(seqs) >= 5
        filler.unlink()
        assert c.request(request, timeout=15)["type"] == "ack"
    durable = load_durable(tiny_fs / "state.json")
    assert durable is not None and durable.drives["B"].pressure == 3.0


ROUNDS = int(os.environ.get("AGENTCTX_KILL_ROUNDS", "200"))
RACE_TIMEOUT_S = 30.0  # for the losers of a start race to see the lock and exit


@pytest.mark.slow
def test_200_kill9_under_load(make_daemon: Factory) -> None:
    """kill -9 at random instants while a client satisfies and bumps; after each restart
    it retries what it was not acked for, as agentctx does. Every snapshot read
    parses, nothing acked is lost, nothing is applied twice, seq never goes back."""
    d = make_daemon({"UP": BUCKET, "DOWN": BUCKET}, tick_interval=0.01)
    with d.client(subscribe=False) as c:
        c.request({"type": "bump", "request_id": "seed", "drive": "DOWN", "amount": 1e6})
    rng = random.Random(20261125)
    bumps = satisfies = acked = 0
    last_seq = 0
    for _ in range(ROUNDS):
        unacked: list[dict[str, object]] = []
        kill_at = time.monotonic() + rng.uniform(0.01, 0.25)
        try:
            with d.client(subscribe=False) as c:
                while time.monotonic() < kill_at:
                    kind = rng.choice(["bump", "satisfy"])
                    req = {
                        "type": kind,
                        "request_id": rid(),
                        "amount": 1.0,
                        "drive": "UP" if kind == "bump" else "DOWN",
                    }
                    bumps += kind == "bump"
                    satisfies += kind == "satisfy"
                    unacked.append(req)
                    c.send({**req, "id": 7})
                    reply, _ = c.recv_until(lambda m: m["type"] in ("ack", "error"))
                    assert reply["type"] == "ack", reply
                    assert reply["seq"] > last_seq
                    last_seq = reply["seq"]
                    unacked.pop()
                    acked += 1
        except (EOFError, ConnectionError, TimeoutError):
            pass
        d.kill9()
        json.loads(d.snapshot.read_bytes())  # never torn
        d.start()
        with d.client(subscribe=False) as c:
            for req in unacked:  # at most the one in flight: landed or not, retry it
                assert c.request(req)["type"] == "ack"
            state = c.request({"type": "get"})
        assert state["seq"] > last_seq
        last_seq = state["seq"]
        assert state["drives"]["UP"]["pressure"] == bumps
        assert state["drives"]["DOWN"]["pressure"] == 1e6 - satisfies
    assert acked > ROUNDS


CONFIG = parse_config(b"[drives.B]\nthreshold = 1e9\nactivity_driven = true\n", "t.toml")


def damaged_variants(data: bytes) -> Iterator[bytes]:
    yield b""
    for cut in range(1, len(data)):
        yield data[:cut]
    for i in range(len(data)):
        flipped = bytearray(data)
        flipped[i] ^= 0x04
        yield bytes(flipped)


def test_every_damaged_durable_file_is_survived(
    make_daemon: Factory, dirs: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """Truncated at every length, a bit flipped in every byte: restore never raises,
    reports one line, and falls back to the snapshot (never believes a bad file)."""
    d = make_daemon({"B": BUCKET}, tick_interval=3600)
    with d.client(subscribe=False) as c:
        c.request({"type": "bump", "request_id": rid(), "drive": "B", "amount": 4})
    d.stop()
    good = (d.state_dir / "state.json").read_bytes()
    paths = Layout(dirs["runtime"], dirs["state"])
    believed = 0
    tried = 0
    for variant in damaged_variants(good):
        (d.state_dir / "state.json").write_bytes(variant)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            restored = restore(CONFIG, paths, time.time())
        tried += 1
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        if "durable state" in restored.source:
            believed += 1  # only possible if the damage left the meaning intact
            assert restored.engine.pressure("B") == 4.0
        else:
            assert len(errors) == 1 and "durable state unusable" in errors[0].getMessage()
            assert restored.engine.pressure("B") == 4.0  # from the snapshot
    assert tried == 2 * len(good)  # empty, every truncation, every byte flipped
    assert believed < tried // 20


def test_every_damaged_snapshot_is_survived(make_daemon: Factory, dirs: dict[str, Path]) -> None:
    d = make_daemon({"B": BUCKET}, tick_interval=3600)
    d.stop()
    good = d.snapshot.read_bytes()
    (d.state_dir / "state.json").unlink()  # the snapshot is all there is
    paths = Layout(dirs["runtime"], dirs["state"])
    for variant in list(damaged_variants(good))[:: max(1, len(good) // 400)]:
        d.snapshot.write_bytes(variant)
        restored = restore(CONFIG, paths, time.time())  # never raises
        assert restored.seq >= 0
        # a client gets a state or a one-line error, nothing else
        with contextlib.suppress(agentctx.StoreError, agentctx.DaemonUnavailable):
            agentctx.read()


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("drives", "B", "pressure"), "x"),
        (("drives", "B", "pressure"), None),
        (("drives", "B", "ratio"), "x"),
        (("drives", "B", "last_satisfied"), 5),
        (("drives", "B"), "oops"),
        (("seq",), "x"),
        (("tick_ts",), None),
    ],
)
def test_a_snapshot_with_a_wrong_type_is_one_line_everywhere(
    make_daemon: Factory, env: dict[str, str], path: tuple[str, ...], value: object
) -> None:
    """A hand-edited snapshot (the daemon down) never gives a client a traceback."""
    d = make_daemon({"B": BUCKET}, tick_interval=3600)
    d.stop()
    data = json.loads(d.snapshot.read_bytes())
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    d.snapshot.write_text(json.dumps(data))
    where = ".".join(path)
    for args in (["status"], ["status", "--all"], ["context"], ["status", "--json"]):
        r = run_module("agentctx", env, *args)
        assert "Traceback" not in r.stderr, (args, r.stderr)
        if args != ["status", "--all"]:  # --all lists the agent with its problem
            assert r.returncode == 1, (args, r)
            assert r.stderr.count("\n") == 1 and f"{where}: expected" in r.stderr, r.stderr
    hook = run_module("agentctx", env, "context", "--hook", "claude", stdin="{}")
    assert hook.returncode == 0 and "Traceback" not in hook.stderr, hook
    watch = start_module("agentctx", env, "watch")
    assert watch.stdout is not None
    try:  # following the file, finding it bad: it says so and waits
        said = Lines(watch.stdout).until(f"{where}: expected")
    finally:
        watch.terminate()
        _, err = watch.communicate(timeout=10)
    assert said[-1].startswith("problem "), said
    assert "Traceback" not in err + "".join(said), err


def test_two_daemons_racing_exactly_one_wins(
    make_daemon: Factory, env: dict[str, str], dirs: dict[str, Path]
) -> None:
    config = write_config(dirs["root"] / "drives.toml", {"B": BUCKET}, tick_interval=3600)
    racers = [DaemonProcess(env, config, dirs["root"] / f"racer{i}.log") for i in range(5)]
    for r in racers:
        r.start(wait=False)

    def running() -> list[DaemonProcess]:
        return [r for r in racers if r.proc is not None and r.proc.poll() is None]

    deadline = time.monotonic() + RACE_TIMEOUT_S  # five starts at once on two cores
    while len(running()) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = running()
    try:
        assert len(alive) == 1
        assert all(r.proc is not None and r.proc.returncode == 1 for r in racers if r not in alive)
        with RawClient(alive[0].socket) as c:
            assert c.hello(subscribe=False)["type"] == "welcome"
    finally:
        for r in racers:
            if r.proc is not None and r.proc.poll() is None:
                r.proc.kill()
                r.proc.wait(10)
