"""agentctx web over HTTP: every endpoint and every security rule, against the real
`agentctx web` command following a real sidecar subprocess."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import REPO, DaemonProcess, write_config
from web_support import SseReader, WebProcess

from agentctx.web.security import COOKIE_PREFIX, TOKEN_FILE

# CARE grows with time; REST and COUNT only move by request, so a refused request
# shows as a value that did not change.
DRIVES: dict[str, dict[str, object]] = {
    "CARE": {"threshold": 20.0, "rate_per_hour": 2.0, "description": "Attend to the human."},
    "REST": {"threshold": 30.0, "activity_driven": True},
    "COUNT": {"threshold": 1e9, "activity_driven": True},
}
WAIT = 10.0  # upper bound of a wait for something that happens (never asserted on)


def state_of(web: WebProcess) -> dict[str, Any]:
    with web.client() as c:
        data: dict[str, Any] = c.get("/state").json()
        return data


def drives(web: WebProcess) -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = state_of(web)["drives"]
    return data


def shown(web: WebProcess, seq: int) -> dict[str, Any]:
    """/state once the web view has the state *seq* (an ack comes over another
    connection than the push to the bridge: it may be a moment behind)."""
    deadline = time.monotonic() + WAIT
    while (state := state_of(web)).get("seq", -1) < seq:
        if time.monotonic() > deadline:
            raise AssertionError(f"the web view did not show seq {seq} within {WAIT}s")
        time.sleep(0.02)
    return state


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT}s: {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonProcess, WebProcess]]:
    """One sidecar and one `agentctx web` for the tests that change nothing but counters."""
    root = tmp_path_factory.mktemp("web")
    for d in ("run", "state"):
        (root / d).mkdir(mode=0o700)
    env = {
        **os.environ,
        "AGENTCTX_RUNTIME_DIR": str(root / "run"),
        "AGENTCTX_STATE_DIR": str(root / "state"),
        "XDG_CONFIG_HOME": str(root / "config"),
    }
    daemon = DaemonProcess(env, write_config(root / "drives.toml", DRIVES), root / "daemon.log")
    daemon.start()
    web = WebProcess(env, root / "web.log")
    try:
        web.start().wait_state()
        yield daemon, web
    finally:
        web.kill()
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.kill9()


@pytest.fixture
def web(served: tuple[DaemonProcess, WebProcess]) -> WebProcess:
    return served[1]


@pytest.fixture
def own(
    make_daemon: Callable[..., DaemonProcess], env: dict[str, str], dirs: dict[str, Path]
) -> Iterator[tuple[DaemonProcess, WebProcess]]:
    """A sidecar and a web view of this test's own, for tests that stop one of them."""
    daemon = make_daemon(DRIVES)
    web = WebProcess(env, dirs["root"] / "web.log").start().wait_state()
    yield daemon, web
    web.kill()


# --- the endpoints -----------------------------------------------------------------------


def test_state_is_what_status_json_says(web: WebProcess) -> None:
    with web.client() as c:
        r = c.get("/state")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    state = r.json()
    assert (state["source"], state["stale"]) == ("socket", False)
    assert state["age_s"] >= 0
    assert set(state["drives"]) == set(DRIVES)
    cli = subprocess.run(
        [sys.executable, "-m", "agentctx", "status", "--json"],
        env=web.env,
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    assert set(json.loads(cli.stdout)) == set(state)  # the same fields, the same names


def test_the_page_comes_with_its_token_and_only_its_own_files(web: WebProcess) -> None:
    with web.anonymous() as c:
        r = c.get(f"/?token={web.token}", follow_redirects=False)
        assert r.status_code == 303  # the token leaves the address bar for a cookie
        assert r.headers["location"] == "/"
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE_PREFIX}{web.port}={web.token};")
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        page = c.get("/")  # the client kept the cookie
    assert page.status_code == 200
    assert f'<meta name="agentctx-token" content="{web.token}">' in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    refs = [
        part.split('"')[1] for part in page.text.split("src=")[1:] + page.text.split("href=")[1:]
    ]
    assert refs and all(ref.startswith("/static/") for ref in refs), refs  # no CDN
    with web.anonymous(cookies={f"{COOKIE_PREFIX}{web.port}": web.token}) as c:
        for ref in refs:
            assert c.get(ref).status_code == 200, ref


def test_events_start_with_the_state_and_follow_every_change(web: WebProcess) -> None:
    with web.client() as c, c.stream("GET", "/events") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-store"
        sse = SseReader(r.iter_lines())
        first = sse.next()
        assert first["event"] == "state"
        assert int(first["id"]) == first["data"]["seq"]
        assert sse.retry is not None  # reconnects fast, saying Last-Event-ID
        assert sse.next()["event"] == "status"
        with web.client() as poster:
            ack = poster.post("/bump", json={"drive": "count", "amount": 3, "reason": "sse"}).json()
        shown = sse.until("drive", kind="bumped", reason="sse")
        assert shown["data"]["seq"] == ack["seq"]
        assert shown["data"]["request_id"] == ack["request_id"]
        assert "id" not in shown  # only states move the browser's Last-Event-ID


def test_a_reconnect_gets_only_what_it_missed(web: WebProcess) -> None:
    with web.client() as c:
        before = c.post("/bump", json={"drive": "COUNT", "amount": 1, "reason": "before"})
        seq = shown(web, before.json()["seq"])["seq"]  # what the tab has
        ack = c.post("/bump", json={"drive": "COUNT", "amount": 1, "reason": "missed"}).json()
        shown(web, ack["seq"])
        with c.stream("GET", "/events", headers={"Last-Event-ID": str(seq)}) as r:
            sse = SseReader(r.iter_lines())
            messages = [sse.next() for _ in range(3)]
    assert [m["event"] for m in messages] == ["state", "status", "drive"]
    assert messages[0]["data"]["seq"] >= ack["seq"] > seq
    assert messages[2]["data"]["reason"] == "missed"  # replayed; "before" was not


def test_a_new_tab_sees_the_history_first(web: WebProcess) -> None:
    with web.client() as c:
        c.post("/reset", json={"drive": "REST", "reason": "history"})
        with c.stream("GET", "/events") as r:
            sse = SseReader(r.iter_lines())
            assert sse.next()["event"] == "state"
            assert sse.until("drive", kind="reset", reason="history")


def test_satisfy_bump_and_reset_answer_with_the_ack(web: WebProcess) -> None:
    with web.client() as c:
        before = c.get("/state").json()["drives"]["REST"]["pressure"]
        bumped = c.post("/bump", json={"drive": "rest", "amount": 2.5})
        assert bumped.status_code == 200
        assert bumped.json()["status"] == "acked"
        rest = shown(web, bumped.json()["seq"])["drives"]["REST"]
        assert rest["pressure"] == pytest.approx(before + 2.5)
        sat = c.post("/satisfy", json={"drive": "REST", "depth": "full", "reason": "rested"})
        assert (sat.status_code, sat.json()["status"]) == (200, "acked")
        assert sat.json()["seq"] > bumped.json()["seq"]
        rest = shown(web, sat.json()["seq"])["drives"]["REST"]
        assert (rest["pressure"], rest["status"]) == (0.0, "satisfied")
        c.post("/bump", json={"drive": "REST", "amount": 1})
        reset = c.post("/reset", json={"drive": "REST"})
        assert reset.json()["status"] == "acked"
        assert shown(web, reset.json()["seq"])["drives"]["REST"]["pressure"] == 0.0


def test_a_request_id_makes_a_retry_harmless(web: WebProcess) -> None:
    rid = str(uuid.uuid4())
    with web.client() as c:
        first = c.post("/bump", json={"drive": "COUNT", "amount": 1, "request_id": rid}).json()
        pressure = shown(web, first["seq"])["drives"]["COUNT"]["pressure"]
        again = c.post("/bump", json={"drive": "COUNT", "amount": 1, "request_id": rid}).json()
        assert again == first  # the original ack, not applied twice
        later = c.post("/bump", json={"drive": "REST", "amount": 1}).json()
        assert shown(web, later["seq"])["drives"]["COUNT"]["pressure"] == pressure


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/satisfy", {"drive": "NOPE"}, 404, "unknown_drive"),
        ("/satisfy", {"drive": "CARE", "depth": "very"}, 400, "bad_request"),
        ("/satisfy", {"drive": "CARE", "depth": "deep", "amount": 1}, 400, "bad_request"),
        ("/bump", {"drive": "REST", "amount": -1}, 400, "bad_request"),
        ("/bump", {"drive": "REST"}, 400, "bad_request"),
        ("/reset", {"drive": 7}, 400, "bad_request"),
    ],
)
def test_refused_requests_are_4xx_with_the_code(
    web: WebProcess, path: str, body: dict[str, Any], status: int, code: str
) -> None:
    with web.client() as c:
        r = c.post(path, json=body)
    assert r.status_code == status
    assert r.json()["code"] == code
    assert r.json()["message"]


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b"x" * 20_000])
def test_a_body_that_is_no_request_is_400(web: WebProcess, raw: bytes) -> None:
    with web.client() as c:
        r = c.post("/bump", content=raw, headers={"content-type": "application/json"})
    assert (r.status_code, r.json()["code"]) == (400, "bad_request")


def scrape(web: WebProcess) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """/metrics parsed: sample name -> {sorted labels: value}."""
    with web.client() as c:
        r = c.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return samples


def test_metrics_are_prometheus_text(web: WebProcess) -> None:
    metrics = scrape(web)
    state = drives(web)
    for name in DRIVES:
        label = (("drive", name),)
        assert label in metrics["agentctx_drive_pressure"]
        assert metrics["agentctx_drive_threshold"][label] == state[name]["threshold"]
        assert metrics["agentctx_drive_ratio"][label] == pytest.approx(
            state[name]["ratio"], abs=0.01
        )
    assert metrics["agentctx_state_seq"][()] > 0
    assert metrics["agentctx_state_age_seconds"][()] >= 0
    assert metrics["agentctx_sidecar_live"][()] == 1
    assert "process_resident_memory_bytes" in metrics
    tabs = metrics["agentctx_web_sse_clients"][()]
    with web.client() as c, c.stream("GET", "/events") as r:
        sse = SseReader(r.iter_lines())  # kept: a dropped line iterator closes the stream
        sse.next()
        assert scrape(web)["agentctx_web_sse_clients"][()] == tabs + 1
    wait_for(lambda: scrape(web)["agentctx_web_sse_clients"][()] == tabs, "a gone tab counted out")


# --- security ------------------------------------------------------------------------------

ENDPOINTS = [("GET", "/"), ("GET", "/state"), ("GET", "/events"), ("GET", "/metrics")]
ENDPOINTS += [("GET", "/static/app.js"), ("POST", "/satisfy"), ("POST", "/bump")]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_no_token_is_401(web: WebProcess, method: str, path: str) -> None:
    with web.anonymous() as c:
        r = c.request(method, path, json={"drive": "REST", "amount": 1})
    assert r.status_code == 401
    assert r.json()["code"] == "unauthorized"
    assert r.headers["cache-control"] == "no-store"  # refusals are answered like the rest
    assert r.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_a_wrong_token_is_401_however_it_comes(web: WebProcess, method: str, path: str) -> None:
    wrong = web.token[:-2] + ("AA" if not web.token.endswith("AA") else "BB")
    attempts: list[dict[str, Any]] = [
        {"headers": {"X-Agentctx-Token": wrong}},
        {"headers": {"Authorization": f"Bearer {wrong}"}},
        {"params": {"token": wrong}},
        {"headers": {"Cookie": f"{COOKIE_PREFIX}{web.port}={wrong}"}},
    ]
    with web.anonymous() as c:
        for how in attempts:
            r = c.request(method, path, json={"drive": "REST", "amount": 1}, **how)
            assert r.status_code == 401, how


@pytest.mark.parametrize("host", ["evil.example", f"evil.example:{8765}", "127.0.0.2", "[::2]"])
def test_a_foreign_host_is_403_even_with_the_token(web: WebProcess, host: str) -> None:
    with web.client(headers={"Host": host}) as c:
        for method, path in ENDPOINTS:
            r = c.request(method, path, json={"drive": "REST", "amount": 1})
            assert r.status_code == 403, (method, path)
            assert r.json()["code"] == "forbidden_host"


def test_our_own_names_are_served(web: WebProcess) -> None:
    for host in (f"localhost:{web.port}", f"127.0.0.1:{web.port}", "localhost"):
        with web.client(headers={"Host": host}) as c:
            assert c.get("/state").status_code == 200, host


def test_a_cross_origin_post_with_only_the_cookie_is_refused(web: WebProcess) -> None:
    """What a hostile page gets when it makes the browser POST to us: the cookie goes
    along (SameSite aside), the header does not; nothing happens."""
    cookie = {f"{COOKIE_PREFIX}{web.port}": web.token}
    with web.client() as c:  # requests that do go through, to know the view is up to date
        synced = c.post("/bump", json={"drive": "REST", "amount": 1}).json()
    before = shown(web, synced["seq"])["drives"]["COUNT"]["pressure"]
    with web.anonymous(cookies=cookie) as c:
        assert c.get("/state").status_code == 200  # the cookie is good for reading...
        for origin in ("http://evil.example", web.base):  # ...never for changing
            r = c.post(
                "/bump",
                content=json.dumps({"drive": "COUNT", "amount": 5}),
                headers={"Origin": origin, "Content-Type": "text/plain"},
            )
            assert r.status_code == 401
    with web.client() as c:
        later = c.post("/bump", json={"drive": "REST", "amount": 1}).json()
    assert shown(web, later["seq"])["drives"]["COUNT"]["pressure"] == before


def test_no_cors_headers_anywhere(web: WebProcess) -> None:
    origin = {"Origin": "http://evil.example"}
    with web.client(headers=origin) as c:
        answers = [c.get("/state"), c.get("/metrics"), c.post("/bump", json={"drive": "COUNT"})]
        preflight = {"Access-Control-Request-Method": "POST"}
        answers.append(c.options("/satisfy", headers={**origin, **preflight}))
    for r in answers:
        assert not [h for h in r.headers if h.lower().startswith("access-control-")], r.headers
    assert answers[-1].status_code >= 400  # no preflight ever succeeds


def test_the_token_file_is_private_and_goes_with_the_server(own: tuple[Any, WebProcess]) -> None:
    _daemon, web = own
    path = Path(web.env["AGENTCTX_RUNTIME_DIR"]) / TOKEN_FILE
    assert path.read_text().strip() == web.token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert str(path) in "".join(web.stdout)
    assert web.stop() == 0
    assert not path.exists()


def test_two_web_views_share_the_token_file_until_the_last_stops(
    own: tuple[Any, WebProcess], env: dict[str, str], dirs: dict[str, Path]
) -> None:
    _daemon, first = own
    path = Path(env["AGENTCTX_RUNTIME_DIR"]) / TOKEN_FILE
    second = WebProcess(env, dirs["root"] / "web2.log").start()
    try:
        assert second.token == first.token and second.port != first.port
        assert path.read_text().strip() == first.token
        assert second.stop() == 0
        # the first still runs: its token stays in the file, and still opens it
        assert path.read_text().strip() == first.token
        with first.client() as c:
            assert c.get("/state").status_code == 200
    finally:
        second.kill()
    assert first.stop() == 0
    assert not path.exists()  # the last one out removes it
    third = WebProcess(env, dirs["root"] / "web3.log").start()
    try:
        assert third.token != first.token  # alone again: a fresh token
        assert path.read_text().strip() == third.token
    finally:
        third.stop()


# --- sidecar down, server stop, command line ---------------------------------------------------


def test_requests_are_queued_while_the_sidecar_is_down(
    own: tuple[DaemonProcess, WebProcess],
) -> None:
    daemon, web = own
    daemon.kill9()
    wait_for(lambda: state_of(web)["source"] == "file", "the web view follows the file")
    with web.client() as c:
        r = c.post("/bump", json={"drive": "COUNT", "amount": 4, "reason": "while down"})
        assert r.status_code == 202
        assert r.json()["status"] == "queued"
        assert Path(r.json()["spool"]).exists()
        refused = c.post("/bump", json={"drive": "NOPE", "amount": 1})  # checked offline too
        assert (refused.status_code, refused.json()["code"]) == (404, "unknown_drive")
    daemon.start()
    wait_for(lambda: drives(web)["COUNT"]["pressure"] == 4.0, "the spooled bump is applied")
    wait_for(lambda: state_of(web)["source"] == "socket", "live again")


def test_before_any_sidecar_there_is_no_state_then_there_is(
    make_daemon: Callable[..., DaemonProcess], env: dict[str, str], dirs: dict[str, Path]
) -> None:
    web = WebProcess(env, dirs["root"] / "web.log").start()
    try:
        with web.client() as c:
            r = c.get("/state")
            assert (r.status_code, r.json()["code"]) == (503, "no_state")
            with c.stream("GET", "/events") as events:
                sse = SseReader(events.iter_lines())
                status = sse.next()
                assert status["event"] == "status"  # no state to send first
                assert status["data"]["mode"] in ("starting", "fallback")
                make_daemon(DRIVES)
                seen: set[str] = set()  # a state, and the news that it is live: either first
                deadline = time.monotonic() + WAIT
                while seen != {"state", "live"} and time.monotonic() < deadline:
                    msg = sse.next()
                    if msg["event"] == "state" and msg["data"]["seq"] > 0:
                        seen.add("state")
                    elif msg["event"] == "status" and msg["data"]["mode"] == "live":
                        seen.add("live")
                assert seen == {"state", "live"}
            assert c.get("/state").json()["source"] == "socket"
    finally:
        web.kill()


def test_sigterm_stops_it_cleanly_with_tabs_open(own: tuple[DaemonProcess, WebProcess]) -> None:
    _daemon, web = own
    with web.client() as c, c.stream("GET", "/events") as r:
        sse = SseReader(r.iter_lines())
        sse.next()
        assert web.stop(signal.SIGTERM) == 0
        with pytest.raises((EOFError, httpx.HTTPError)):
            while True:
                sse.next()
    log = web.log_text()
    assert "Traceback" not in log
    assert "ERROR" not in log


def test_open_hands_the_tokened_url_to_the_browser(
    make_daemon: Callable[..., DaemonProcess], env: dict[str, str], dirs: dict[str, Path]
) -> None:
    make_daemon(DRIVES)
    opened = dirs["root"] / "opened"
    # $BROWSER is the webbrowser module's own override: "%s" becomes the URL.
    browser = f"sh -c 'echo \"$0\" > {opened}' %s"
    web = WebProcess({**env, "BROWSER": browser}, dirs["root"] / "web.log")
    try:
        web.start("--open")
        wait_for(lambda: opened.exists() and opened.read_text().strip() == web.url, "opened")
    finally:
        web.kill()


def run_web(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentctx", "web", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT,
        cwd=REPO,
    )


@pytest.mark.parametrize("listen", ["0.0.0.0:0", "[::]:0"])
def test_listening_beyond_loopback_needs_allow_remote(env: dict[str, str], listen: str) -> None:
    out = run_web(env, "--listen", listen)
    assert out.returncode == 2
    assert "--allow-remote" in out.stderr


def test_a_bad_listen_address_is_a_usage_error(env: dict[str, str]) -> None:
    out = run_web(env, "--listen", "somewhere")
    assert (out.returncode, out.stderr.count("\n")) == (2, 1)


def test_a_port_in_use_is_said_in_one_line(env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        out = run_web(env, "--listen", f"127.0.0.1:{taken.getsockname()[1]}")
    assert out.returncode == 1
    assert "cannot listen on 127.0.0.1" in out.stderr
    assert out.stderr.count("\n") == 1


def test_allow_remote_serves_addresses_but_not_foreign_names(
    make_daemon: Callable[..., DaemonProcess], env: dict[str, str], dirs: dict[str, Path]
) -> None:
    make_daemon(DRIVES)
    web = WebProcess(env, dirs["root"] / "web.log")
    try:
        web.start("--listen", "0.0.0.0:0", "--allow-remote")  # the last --listen counts
        assert web.base.startswith("http://127.0.0.1:")  # a wildcard is opened on loopback
        with web.client(headers={"Host": f"10.9.8.7:{web.port}"}) as c:
            assert c.get("/state").status_code == 200
        with web.client(headers={"Host": f"rebind.example:{web.port}"}) as c:
            assert c.get("/state").status_code == 403
    finally:
        web.kill()
