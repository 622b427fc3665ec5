"""agentctx web in a real browser: Debian's Chromium, driven by Playwright, on the real
`agentctx web` command following a real sidecar that the tests kill and restart.

Chromium comes from apt (.ci/run installs it as root); Playwright only drives it
(`executable_path`), it never downloads a browser. Without Chromium this module is
skipped and says why. The sync API is used at module scope, in this module alone: a
live sync Playwright runs an event loop in this thread, which would break an asyncio
test running meanwhile, and it is gone before the next module starts.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import REPO, DaemonProcess
from web_support import WebProcess

CHROMIUM = os.environ.get("AGENTCTX_CHROMIUM", "/usr/lib/chromium/chromium")
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(
        f"no Chromium at {CHROMIUM}: `.ci/run` installs it as root (apt-get install chromium); "
        "AGENTCTX_CHROMIUM=/path/to/chromium picks another",
        allow_module_level=True,
    )

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

# Playwright already passes --headless, --no-sandbox and turns off background
# networking; these stop the DNS look-ups Chromium still makes at start-up (the
# resolver rule also catches IP literals, hence the EXCLUDEs). A custom
# --disable-features would replace Playwright's own list: not here.
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-quic",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
]
VIEWPORT = {"width": 900, "height": 760}
SHOWN_MS = 1_000  # the contract: a change from elsewhere is on the page within 1 s
WAIT_MS = 15_000  # an upper bound for things that take a restart (never asserted on)
SCREENSHOT_ENV = "AGENTCTX_WEB_SCREENSHOT"  # where test_screenshot also saves its PNG
DOWN = re.compile(r"^sidecar down — snapshot (\d+) s old$")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def served(
    make_daemon: Callable[..., DaemonProcess], env: dict[str, str], dirs: dict[str, Path]
) -> Iterator[tuple[DaemonProcess, WebProcess]]:
    daemon = make_daemon()  # the built-in drives: CARE, MAINTENANCE, REST, WANDER
    web = WebProcess(env, dirs["root"] / "web.log").start()
    yield daemon, web
    web.kill()


@pytest.fixture
def page(browser: Browser, served: tuple[DaemonProcess, WebProcess]) -> Iterator[Page]:
    """The page, opened with the printed URL and live; no script error is allowed."""
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(served[1].url)
    expect(tab.locator("#connection")).to_have_attribute("data-mode", "live", timeout=WAIT_MS)
    yield tab
    context.close()
    assert not errors


def cli(web: WebProcess, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "agentctx", *args],
        env=web.env,
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return out.stdout


def acked_seq(output: str) -> int:
    m = re.search(r"acked \(seq (\d+)\)", output)
    assert m, output
    return int(m.group(1))


def seqs(page: Page, which: str) -> list[int]:
    """Every seq the page was sent (`received`) or drew (`rendered`), in order."""
    values: list[Any] = page.evaluate(f"window.agentctx.{which}")
    return [int(v) for v in values]


def strictly_increasing(values: list[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(values))


def test_the_page_shows_every_drive(page: Page, served: tuple[DaemonProcess, WebProcess]) -> None:
    _daemon, web = served
    assert page.url == f"{web.base}/"  # the token went from the address bar to a cookie
    drives = page.locator(".drive")
    expect(drives).to_have_count(4)
    for name, threshold in (("CARE", 20), ("MAINTENANCE", 25), ("REST", 30), ("WANDER", 20)):
        drive = page.locator(f'.drive[data-drive="{name}"]')
        expect(drive.locator(".name")).to_have_text(name)
        expect(drive.locator(".numbers")).to_contain_text(f"/ {threshold} (")
        expect(drive.locator(".band")).to_have_text("latent")
        expect(drive.locator(".status")).to_have_text("building")
        expect(drive.locator(".satisfied")).to_have_text("never satisfied")
    expect(page.locator("#connection")).to_have_text("live")
    seq, rendered = page.evaluate(
        "[document.getElementById('seq').textContent, window.agentctx.rendered]"
    )
    assert seq == f"seq {rendered[-1]}"  # read in one go: a tick a second moves both


def test_a_satisfy_from_the_cli_is_on_the_page_within_a_second(
    page: Page, served: tuple[DaemonProcess, WebProcess]
) -> None:
    _daemon, web = served
    cli(web, "bump", "REST", "--amount", "12")
    seq = acked_seq(cli(web, "satisfy", "rest", "--depth", "deep", "--reason", "from the CLI"))
    # (its band change is listed with it, so not necessarily first)
    entry = page.locator("#events li", has_text="from the CLI")
    expect(entry).to_contain_text("REST satisfied deep", timeout=SHOWN_MS)
    rest = page.locator('.drive[data-drive="REST"]')
    expect(rest.locator(".status")).to_have_text("satisfied", timeout=SHOWN_MS)
    expect(rest.locator(".numbers")).to_have_text("3.0 / 30 (10%)", timeout=SHOWN_MS)
    assert max(seqs(page, "rendered")) >= seq


def test_a_killed_sidecar_shows_as_down_with_a_growing_age_then_live(
    page: Page, served: tuple[DaemonProcess, WebProcess]
) -> None:
    daemon, _web = served
    connection = page.locator("#connection")
    daemon.kill9()
    expect(connection).to_have_attribute("data-mode", "down", timeout=WAIT_MS)
    expect(connection).to_have_text(DOWN)
    m = DOWN.match(connection.text_content() or "")
    assert m
    page.wait_for_function(
        """(age) => {
            const shown = document.getElementById("connection").textContent;
            const m = /snapshot (\\d+) s old/.exec(shown);
            return m !== null && Number(m[1]) > age;
        }""",
        arg=int(m.group(1)),
        timeout=WAIT_MS,
    )
    daemon.start()
    expect(connection).to_have_attribute("data-mode", "live", timeout=WAIT_MS)
    expect(connection).to_have_text("live")
    assert strictly_increasing(seqs(page, "rendered"))


def test_a_page_open_across_restarts_never_shows_an_older_seq(
    page: Page, served: tuple[DaemonProcess, WebProcess]
) -> None:
    daemon, web = served
    for stop in (daemon.kill9, daemon.stop, daemon.kill9):
        seq = acked_seq(cli(web, "bump", "REST", "--amount", "1"))
        page.wait_for_function(
            "(seq) => Number(document.getElementById('drives').dataset.seq) >= seq",
            arg=seq,
            timeout=WAIT_MS,
        )
        stop()
        expect(page.locator("#connection")).to_have_attribute("data-mode", "down", timeout=WAIT_MS)
        daemon.start()
        expect(page.locator("#connection")).to_have_attribute("data-mode", "live", timeout=WAIT_MS)
    expect(page.locator('.drive[data-drive="REST"] .numbers')).to_contain_text("3.0 / 30")
    received, rendered, shown = page.evaluate(
        "[window.agentctx.received, window.agentctx.rendered, "
        "Number(document.getElementById('drives').dataset.seq)]"
    )  # in one go: a tick a second adds to all three
    assert strictly_increasing(received), received  # the server never sent one back...
    assert strictly_increasing(rendered), rendered  # ...and the page never drew one
    assert rendered[-1] == shown


def test_the_buttons_satisfy_bump_and_reset(
    page: Page, served: tuple[DaemonProcess, WebProcess]
) -> None:
    rest = page.locator('.drive[data-drive="REST"]')
    rest.locator(".amount").fill("7.5")
    rest.locator("button.bump").click()
    expect(rest.locator(".numbers")).to_have_text("7.5 / 30 (25%)", timeout=SHOWN_MS)
    expect(page.locator("#toast")).to_contain_text("bump REST: done")
    rest.locator(".depth").select_option("full")
    rest.locator("button.satisfy").click()
    expect(rest.locator(".status")).to_have_text("satisfied", timeout=SHOWN_MS)
    entry = page.locator("#events li", has_text="REST satisfied full")
    expect(entry).to_contain_text("from the web view")
    rest.locator(".amount").fill("4")
    rest.locator("button.bump").click()
    expect(rest.locator(".numbers")).to_have_text("4.0 / 30 (13%)", timeout=SHOWN_MS)
    rest.locator("button.reset").click()
    expect(rest.locator(".numbers")).to_have_text("0.0 / 30 (0%)", timeout=SHOWN_MS)
    with served[1].client() as c:
        assert c.get("/state").json()["drives"]["REST"]["pressure"] == 0.0


def test_screenshot(page: Page, served: tuple[DaemonProcess, WebProcess], tmp_path: Path) -> None:
    """Drives in several bands, for the eye (and the README, with AGENTCTX_WEB_SCREENSHOT)."""
    _daemon, web = served
    cli(web, "bump", "REST", "--amount", "34", "--reason", "a long refactor")
    cli(web, "bump", "CARE", "--amount", "16")
    cli(web, "bump", "WANDER", "--amount", "9")
    cli(web, "bump", "MAINTENANCE", "--amount", "19.5")
    cli(web, "satisfy", "CARE", "--depth", "shallow", "--reason", "checked in")
    expect(page.locator('.drive[data-drive="REST"]')).to_have_class(re.compile("band-triggered"))
    expect(page.locator('.drive[data-drive="CARE"]')).to_have_class(re.compile("band-available"))
    expect(page.locator('.drive[data-drive="MAINTENANCE"]')).to_have_class(
        re.compile("band-elevated")
    )
    expect(page.locator("#events li", has_text="checked in")).to_contain_text("CARE satisfied")
    page.locator("#toast").evaluate("el => el.remove()")  # nothing transient in the picture
    path = tmp_path / "web.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes().startswith(b"\x89PNG")
    if target := os.environ.get(SCREENSHOT_ENV):
        shutil.copyfile(path, target)


def test_a_web_view_that_stops_is_said_so(
    page: Page, served: tuple[DaemonProcess, WebProcess]
) -> None:
    _daemon, web = served
    assert web.stop(signal.SIGTERM) == 0
    expect(page.locator("#connection")).to_have_text(
        re.compile("reconnecting to agentctx web|agentctx web stopped"), timeout=WAIT_MS
    )
