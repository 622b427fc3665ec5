"""Two hosts over a real nats-server: a home sidecar (`run --nats`) and a follower.

Every process is real and separate, each "host" with its own dirs, all on
127.0.0.1. Counting requests go to an activity-driven drive, COUNT, that only
requests move: its pressure is exactly the number of bumps applied, so a lost or
doubled request shows as a wrong number.
"""

from __future__ import annotations

import itertools
import json
import signal
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nats_support import (
    AGENT,
    Host,
    NatsServer,
    cluster,
    count,
    make_certs,
    make_operator,
    nats_binary,
    stream_cluster,
    wait_for,
)
from support import RawClient, uts_namespaces_why_not, write_config

pytest.importorskip("nats", reason="nats-py is not installed (pip install '.[nats]')")

BUCKET = {"threshold": 1e9, "activity_driven": True, "description": "counter"}
SETTLE = 30.0  # generous bound for anything to arrive (failovers take 5-10 s)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def hosts(root: Path) -> Iterator[tuple[Host, Host]]:
    config = write_config(root / "drives.toml", {"COUNT": BUCKET}, tick_interval=0.2)
    home, follower = Host(root, "home", config), Host(root, "follower")
    yield home, follower
    for h in (follower, home):
        if h.sidecar.proc is not None and h.sidecar.proc.poll() is None:
            h.sidecar.proc.kill()
            h.sidecar.proc.wait(10)


@pytest.fixture
def server(root: Path) -> Iterator[NatsServer]:
    s = NatsServer(nats_binary(), root, "n1").start()
    yield s
    s.kill()


def bump(client: RawClient, rid: str, timeout: float = 15.0) -> dict[str, Any]:
    return client.request(
        {"type": "bump", "request_id": rid, "drive": "COUNT", "amount": 1.0}, timeout
    )


def bump_until_acked(host: Host, rid: str) -> int:
    """Retry one request (same request_id) until acked: what a careful client does."""

    def attempt() -> int | None:
        try:
            with host.client(subscribe=False) as c:
                reply = bump(c, rid)
        except (OSError, EOFError, TimeoutError):
            return None
        return int(reply["seq"]) if reply["type"] == "ack" else None

    seq: int = wait_for(attempt, 60, f"an ack for {rid}")
    return seq


def test_a_request_on_the_follower_reaches_home_and_comes_back(
    hosts: tuple[Host, Host], server: NatsServer
) -> None:
    home, follower = hosts
    home.home(server.url)
    follower.follow(server.url)
    with follower.client() as watcher, follower.client(subscribe=False) as c:
        first = watcher.recv()
        assert first["type"] == "state" and first["origin"] and not first.get("stale")
        ack = bump(c, "r-1")
        assert ack["type"] == "ack", ack
        # the home applied it, durably, once
        assert count(home.get()) == 1.0
        # the follower's subscribers get the state (and the event) with that seq
        state, _ = watcher.recv_until(lambda m: m["type"] == "state" and m["seq"] >= ack["seq"])
        assert count(state) == 1.0
        event, _ = watcher.recv_until(lambda m: m["type"] == "event", timeout=10)
        assert event["kind"] == "bumped" and event["request_id"] == "r-1"
        # a repeat is answered with the first ack, not applied again
        assert bump(c, "r-1")["seq"] == ack["seq"]
        refused = c.request({"type": "bump", "request_id": "r-2", "drive": "NOPE", "amount": 1})
        assert refused["code"] == "unknown_drive" and refused["request_id"] == "r-2"
    assert count(home.get()) == 1.0
    status = json.loads(follower.cli("status", "--json").stdout)
    assert status["origin"] and status["stale"] is False and status["source"] == "socket"
    assert count(status) == 1.0
    last_seq = follower.get()["seq"]
    for host in (home, follower):  # both stop cleanly, NATS connection and all
        assert host.sidecar.stop() == 0
        assert "Traceback" not in host.sidecar.log_text()
    follower.follow(server.url)  # restarted with its home away: its last state, stale
    again = follower.get()
    assert again["seq"] >= last_seq and again["stale"] is True and count(again) == 1.0


def test_a_cut_off_follower_serves_stale_and_forwards_its_spool_once(
    hosts: tuple[Host, Host], server: NatsServer
) -> None:
    home, follower = hosts
    home.home(server.url)
    follower.follow(server.url)
    bump_until_acked(follower, "before")
    server.kill(signal.SIGTERM)
    stale = wait_for(lambda: (s := follower.get()).get("stale") and s, SETTLE, "a stale state")
    assert count(stale) == 1.0
    status = follower.cli("status")
    assert status.returncode == 0 and "STALE" in status.stdout, status.stdout
    queued = follower.cli("bump", "COUNT", "--amount", "1")
    assert queued.returncode == 0 and "queued" in queued.stdout, queued.stdout + queued.stderr
    assert "the home cannot be reached" in queued.stdout  # the follower's words: it is up
    spool = follower.sidecar.state_dir / "spool"
    assert len(list(spool.glob("*.json"))) == 1
    local = home.cli("bump", "COUNT", "--amount", "1")  # the home goes on as if alone
    assert "acked" in local.stdout, local.stdout + local.stderr
    server.start()
    wait_for(lambda: not list(spool.glob("*.json")), SETTLE, "the spool forwarded")
    fresh = wait_for(
        lambda: (s := follower.get()) and not s.get("stale") and count(s) == 3.0 and s,
        SETTLE,
        "the follower fresh again with both bumps",
    )
    assert fresh["seq"] > stale["seq"]
    assert count(home.get()) == 3.0  # the spooled one applied exactly once


def test_log_on_a_followers_host_names_the_host_that_keeps_the_history(
    hosts: tuple[Host, Host], server: NatsServer
) -> None:
    """Two hostnames: the home runs as "home-desk" (a UTS namespace of its own), the
    follower as this machine. The history is the home's; `agentctx log` on the
    follower's host says where it is instead of printing nothing."""
    if why := uts_namespaces_why_not():
        pytest.skip(why)
    home, follower = hosts
    home.sidecar.hostname = "home-desk"
    home.home(server.url)
    follower.follow(server.url)
    bump_until_acked(follower, "once")
    assert json.loads(follower.cli("status", "--json").stdout)["origin"] == "home-desk"
    here = follower.cli("log")
    assert here.returncode == 0 and here.stdout == "", here.stdout + here.stderr
    assert here.stderr.strip() == (
        "agentctx log: no history here: home-desk, whose sidecar computes these drives, keeps it"
    )
    # at the home the history is there (the bump), so there is nothing to explain
    there = home.cli("log")
    assert there.returncode == 0 and "bumped" in there.stdout and there.stderr == "", there
    assert "Traceback" not in home.sidecar.log_text() + follower.sidecar.log_text()


def test_a_nats_restart_loses_no_request(
    hosts: tuple[Host, Host], server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests stored in the stream while the home is away survive a kill -9 of the
    server (file store); their spooled copies are recognised: each applied once."""
    import agentctx

    home, follower = hosts
    home.home(server.url)
    follower.follow(server.url)
    bump_until_acked(follower, "first")
    home.sidecar.stop()
    for key in ("AGENTCTX_RUNTIME_DIR", "AGENTCTX_STATE_DIR", "AGENTCTX_AGENT"):
        monkeypatch.setenv(key, follower.env[key])
    for _ in range(3):  # published to the stream, then spooled by the impatient client
        assert agentctx.bump("COUNT", 1.0, timeout=1.0).status == "queued"
    server.kill()
    server.start()
    home.restart()
    wait_for(lambda: count(home.get()) >= 4.0, SETTLE, "the stored requests applied")
    spool = follower.sidecar.state_dir / "spool"
    wait_for(lambda: not list(spool.glob("*.json")), SETTLE, "the spool drained")
    bump_until_acked(follower, "last")  # the follower resumed
    assert count(home.get()) == 5.0
    wait_for(lambda: count(follower.get()) == 5.0, SETTLE, "the follower at 5")


def test_home_kill9_under_load_never_sends_an_older_seq(
    hosts: tuple[Host, Host], server: NatsServer
) -> None:
    home, follower = hosts
    home.home(server.url)
    follower.follow(server.url)
    seqs: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        with follower.client() as c:
            while not stop.is_set():
                try:
                    msg = c.recv(timeout=1)
                except TimeoutError:
                    continue
                if msg["type"] == "state":
                    seqs.append(msg["seq"])

    ids = [f"load-{i}" for i in range(60)]

    def work(mine: list[str]) -> None:
        for rid in mine:
            bump_until_acked(follower, rid)

    threads = [threading.Thread(target=watch)]
    threads += [threading.Thread(target=work, args=(ids[k::3],)) for k in range(3)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: count(follower.get()) >= 15, SETTLE, "some requests applied")
        home.sidecar.kill9()  # with requests in flight on three connections
        wait_for(lambda: follower.get().get("stale"), SETTLE, "the follower noticing")
        home.restart()
        for t in threads[1:]:
            t.join(120)
        wait_for(lambda: count(follower.get()) == len(ids), SETTLE, "every request applied")
    finally:
        stop.set()
        threads[0].join(10)
    assert count(home.get()) == len(ids)  # each acked request once, none lost
    assert seqs and all(b >= a for a, b in itertools.pairwise(seqs)), seqs


def test_cluster_leader_kill_keeps_states_flowing(hosts: tuple[Host, Host], root: Path) -> None:
    servers = cluster(nats_binary(), root / "nats")
    try:
        urls = ",".join(s.url for s in servers)
        home, follower = hosts
        home.home(urls)  # 3 servers: replicas 3
        follower.follow(urls)
        acked = [f"c-{uuid.uuid4().hex[:8]}" for _ in range(5)]
        for rid in acked:
            bump_until_acked(follower, rid)
        for stream in ("KV_agentctx", "KV_agentctx-receipts", f"agentctx-{AGENT}-requests"):
            assert stream_cluster(servers[0].url, stream)[1] == 3
        leader, _ = stream_cluster(servers[0].url, "KV_agentctx")
        victim = next(s for s in servers if s.name == leader)
        seq_at_kill = follower.get()["seq"]
        victim.kill()
        with follower.client() as c:  # states keep coming, from the new leader
            c.recv_until(lambda m: m["type"] == "state" and m["seq"] > seq_at_kill + 5, SETTLE)
        more = [f"c-{uuid.uuid4().hex[:8]}" for _ in range(5)]
        for rid in more:
            bump_until_acked(follower, rid)
        assert count(home.get()) == len(acked) + len(more)  # none lost, none doubled
        assert not follower.get().get("stale")
    finally:
        for s in servers:
            s.kill()


def test_files_in_the_agent_dir_and_no_state_without_a_home(
    hosts: tuple[Host, Host], server: NatsServer
) -> None:
    home, follower = hosts
    home.home(server.url)
    assert (home.root / "run" / AGENT / "sidecar.sock").exists()
    assert (home.root / "state" / AGENT / "state.json").exists()
    follower.env["AGENTCTX_AGENT"] = "bob"  # an agent no home shares
    follower.follow(server.url, wait=False)
    wait_for(lambda: "NATS: connected" in follower.sidecar.log_text(), SETTLE, "the follower")
    result = follower.cli("status")
    assert result.returncode == 3, result.stdout + result.stderr  # no state: not a stale one
    assert not (follower.root / "run" / "bob" / "drives-state.json").exists()


def test_mutual_tls_end_to_end(hosts: tuple[Host, Host], root: Path) -> None:
    """The TLS options reach nats-py: a server that verifies client certificates."""
    certs = make_certs(root)
    server = NatsServer(nats_binary(), root, "tls")
    server.cluster = ["--tlsverify", "--tlscert", str(certs["server"])]
    server.cluster += ["--tlskey", str(certs["server_key"]), "--tlscacert", str(certs["ca"])]
    server.start()
    try:
        url = f"tls://127.0.0.1:{server.port}"
        tls = ["--nats-tls-ca", str(certs["ca"]), "--nats-tls-cert", str(certs["client"])]
        tls += ["--nats-tls-key", str(certs["client_key"])]
        home, follower = hosts
        home.home(url, *tls)
        follower.sidecar.start(command=f"follow {url}", extra_args=tls)
        bump_until_acked(follower, "over-tls")
        assert count(home.get()) == 1.0
    finally:
        server.kill()


def test_operator_mode_with_a_creds_file(hosts: tuple[Host, Host], root: Path) -> None:
    """Decentralized auth as `nsc` sets it up (an operator, accounts, a user JWT and its
    seed in a .creds file): `--nats-creds` reaches nats-py on both sides, and a
    daemon without it is refused by the server and says so."""
    conf, creds = make_operator(root)
    server = NatsServer(nats_binary(), root, "op")
    server.cluster = ["-c", str(conf)]
    server.start()
    try:
        home, follower = hosts
        home.home(server.url, "--nats-creds", str(creds))
        with_creds = ["--nats-creds", str(creds)]
        follower.sidecar.start(command=f"follow {server.url}", extra_args=with_creds)
        bump_until_acked(follower, "with-creds")
        assert count(home.get()) == 1.0
        assert follower.sidecar.stop() == 0
        follower.sidecar.start(command=f"follow {server.url}", wait=False)
        refused = wait_for(
            lambda: [ln for ln in follower.sidecar.log_text().splitlines() if "refused" in ln],
            SETTLE,
            "the follower without creds refused",
        )
        assert "credentials; check --nats-creds" in refused[0], refused
        assert "Authorization Violation" in refused[0], refused  # the server's own words
        assert "Traceback" not in follower.sidecar.log_text(), refused
        last = follower.get()  # what it saw with the creds, said to be old
        assert last["stale"] is True and count(last) == 1.0
    finally:
        server.kill()


def test_a_refusal_by_the_server_says_what_to_check() -> None:
    from nats.errors import Error

    from sidecar.nats_conn import explain_error

    auth = explain_error(Error("nats: 'Authorization Violation'"))
    assert auth.startswith("the server refused this sidecar's credentials; check --nats-creds")
    assert auth.endswith("(nats: 'Authorization Violation')")
    perms = explain_error(Error('nats: permissions violation for publish to "agentctx.a"'))
    assert "needs the permissions in docs/multi-host.md" in perms and "agentctx.a" in perms
    assert explain_error(TimeoutError("slow")) == "TimeoutError: slow"  # anything else: as is
