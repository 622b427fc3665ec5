"""The drive block is the same text from Python and from the OpenClaw plugin.

The golden files (tests/goldens.py) hold what agentctx.render.markdown() makes of a
set of states, edge cases included; the Python side must still make exactly those,
and the plugin's JavaScript must too (tests/js/*.test.mjs, run with node --test).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from goldens import cases, expected
from openclaw_rig import node_for_tests
from support import REPO

from agentctx._core import paths

JS_TESTS = sorted((REPO / "tests" / "js").glob("*.test.mjs"))
NODE_TIMEOUT = 120.0
REGENERATE = "if the change is meant, regenerate them: .venv/bin/python tests/goldens.py"


@pytest.fixture(scope="module")
def node() -> str:
    found, why = node_for_tests()
    if found is None:
        pytest.skip(why)
    return found


@pytest.mark.parametrize("case", cases(), ids=lambda case: case.stem)
def test_the_goldens_are_what_python_renders(case: Path) -> None:
    for golden, text in expected(case).items():
        assert golden.is_file(), f"{golden.name} missing; {REGENERATE}"
        assert golden.read_bytes().decode("utf-8") == text, f"{golden.name} differs; {REGENERATE}"


def test_the_plugin_renders_every_golden_and_passes_its_tests(node: str) -> None:
    assert JS_TESTS, "no tests/js/*.test.mjs"
    result = subprocess.run(
        [node, "--test", *map(str, JS_TESTS)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT,
    )
    assert result.returncode == 0, f"node --test failed:\n{result.stdout[-6000:]}{result.stderr}"


@pytest.mark.parametrize(
    "environ",
    [
        {"AGENTCTX_RUNTIME_DIR": "/srv/run", "XDG_RUNTIME_DIR": "/run/user/7"},
        {"AGENTCTX_RUNTIME_DIR": "", "XDG_RUNTIME_DIR": "/run/user/7"},
        {"XDG_RUNTIME_DIR": ""},
        {},
    ],
    ids=["explicit", "xdg", "empty-is-unset", "nothing"],
)
def test_the_plugin_finds_the_sidecar_where_the_python_client_does(
    node: str, environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AGENTCTX_RUNTIME_DIR", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    script = (
        "import { resolveOptions } from './agentctx/integrations/openclaw/options.js';"
        "const o = resolveOptions({}, process.env);"
        "console.log(JSON.stringify([o.socketPath, o.snapshotPath]));"
    )
    out = subprocess.run(
        [node, "--input-type=module", "-e", script],
        cwd=REPO,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT,
        check=True,
    )
    assert json.loads(out.stdout) == [paths.socket_path(), paths.snapshot_path()]
