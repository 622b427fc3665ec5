"""The lines docs/architecture.md draws, checked on the source itself.

- `agentctx` (client library and CLI) imports nothing from `sidecar`;
- `sidecar` imports from `agentctx` only the shared core, `agentctx._core`;
- the core imports neither side;
- no module grows past what one can read in one sitting;
- the hook path (`agentctx context`) loads no heavy module.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import REPO

MAX_LINES = 400
# What a per-turn hook must never pay for at start-up (json and re: agentctx._core.fastjson).
HEAVY = (
    "msgspec", "anyio", "watchfiles", "asyncio", "pathlib", "typing", "argparse", "sidecar",
    "json", "re",
)  # fmt: skip
# ...nor anything of the web view (agentctx.web and its extra).
WEB = ("agentctx.web", "starlette", "uvicorn", "prometheus_client", "h11")


def modules(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def imported(path: Path) -> set[str]:
    """Every module name *path* imports (absolute imports; the project uses no others)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            assert node.module is not None
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_client_never_imports_the_daemon() -> None:
    for path in modules("agentctx"):
        bad = {n for n in imported(path) if n == "sidecar" or n.startswith("sidecar.")}
        assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


def test_the_daemon_imports_only_the_shared_core() -> None:
    for path in modules("sidecar"):
        bad = {
            n
            for n in imported(path)
            if (n == "agentctx" or n.startswith("agentctx."))
            and not (n == "agentctx._core" or n.startswith("agentctx._core."))
        }
        assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


def test_the_core_imports_neither_side() -> None:
    for path in modules("agentctx/_core"):
        bad = {
            n
            for n in imported(path)
            if n.startswith("sidecar")
            or (n.startswith("agentctx.") and not n.startswith("agentctx._core"))
        }
        assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


@pytest.mark.parametrize("package", ["agentctx", "sidecar"])
def test_no_module_is_too_long(package: str) -> None:
    for path in modules(package):
        lines = len(path.read_text().splitlines())
        assert lines <= MAX_LINES, f"{path.relative_to(REPO)}: {lines} lines"


def test_one_exception_tree() -> None:
    """Every exception class the product defines lives in agentctx._core.errors."""
    for package in ("agentctx", "sidecar"):
        for path in modules(package):
            if path == REPO / "agentctx" / "_core" / "errors.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef):
                    bases = {ast.unparse(b) for b in node.bases}
                    assert not any(b.endswith(("Error", "Exception")) for b in bases), (
                        f"{path.relative_to(REPO)}: class {node.name}({', '.join(bases)})"
                    )


@pytest.mark.parametrize("agent", ["claude", "codex", "gemini"])
def test_the_hook_path_stays_light(tmp_path: Path, agent: str) -> None:
    """`agentctx context --hook AGENT`, answered from a snapshot (so the whole path runs:
    stdin, socket attempt, snapshot, render, cursor, answer): only the stdlib it needs."""
    probe = (
        "import sys\n"
        "from agentctx.cli import main\n"
        f"assert main(['context', '--hook', {agent!r}]) == 0\n"
        "loaded = sorted(sys.modules)\n"
        "import json\n"
        "print('MODULES', json.dumps(loaded), file=sys.stderr)\n"
    )
    (tmp_path / "run").mkdir(mode=0o700)
    drive = {"pressure": 5.0, "threshold": 20.0, "ratio": 0.25, "band": "latent"}
    snapshot = {"type": "state", "seq": 1, "tick_ts": time.time(), "drives": {"CARE": drive}}
    (tmp_path / "run" / "drives-state.json").write_text(json.dumps(snapshot))
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "AGENTCTX_RUNTIME_DIR": str(tmp_path / "run"),
        "AGENTCTX_STATE_DIR": str(tmp_path / "state"),
    }
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env=env,
        cwd=REPO,
        input='{"session_id": "s1"}',  # each agent's per-turn event
        capture_output=True,
        text=True,
    )
    assert "CARE" in out.stdout, out.stderr  # it did answer
    line = next(ln for ln in out.stderr.splitlines() if ln.startswith("MODULES "))
    loaded = set(json.loads(line.removeprefix("MODULES ")))
    # What the interpreter loads before any of our code (site, an editable install's
    # import hook...) is not the hook's doing.
    bare = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; m = sorted(sys.modules); import json; print(json.dumps(m))",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    loaded -= set(json.loads(bare.stdout))
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY)
    assert not heavy, f"the hook path imported {heavy}"
    web = sorted(m for m in loaded if m.startswith(WEB))
    assert not web, f"the hook path imported {web}"
