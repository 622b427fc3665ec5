"""agentctx._core.fastjson is `json` without its import cost: the same results and
the same kinds of errors, on the C functions `json` itself uses."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import REPO

from agentctx._core import fastjson

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@given(JSON)
def test_same_text_and_same_value_as_json(value: object) -> None:
    for ascii_only in (True, False):
        text = fastjson.dumps(value, ensure_ascii=ascii_only)
        assert text == json.dumps(value, ensure_ascii=ascii_only)
        assert fastjson.loads(text.encode()) == json.loads(text)
    compact = fastjson.dumps(value, compact=True)
    assert compact == json.dumps(value, separators=(",", ":"))


def test_what_the_hook_path_reads() -> None:
    text = ' \n{"a": [1, 2.5e3, -0.0, "\\u00e9\\ud83d\\udd34", null, true, {}]}\t\r\n'
    assert fastjson.loads(text) == json.loads(text)
    assert fastjson.loads(text.encode()) == json.loads(text.encode())
    nan, inf = fastjson.loads("[NaN, -Infinity]")
    assert math.isnan(nan) and inf == -math.inf
    assert fastjson.loads('"\\ud800"') == json.loads('"\\ud800"')  # a lone surrogate


@pytest.mark.parametrize(
    "bad",
    ["", "   ", "{", '{"a": }', "[1,]", '{"a" 1}', "tru", '"\\x"', "1 2", "{} x", "\ufeff{}"],
)
def test_the_same_documents_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        json.loads(bad)
    with pytest.raises(ValueError):
        fastjson.loads(bad)


def test_invalid_utf8_and_deep_nesting() -> None:
    with pytest.raises(ValueError):
        fastjson.loads(b'{"a": "\xff"}')
    with pytest.raises(RecursionError):
        fastjson.loads("[" * 100_000)


def test_what_cannot_be_encoded() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular"):
        fastjson.dumps(loop)
    with pytest.raises(TypeError, match="set is not JSON serializable"):
        fastjson.dumps({1, 2})


def test_malformed_text_is_a_value_error_without_json_imported() -> None:
    """The C scanner finds JSONDecodeError only if `json` was imported already; the
    hook path never imports it, and a torn snapshot must still be a ValueError."""
    probe = (
        "import sys\n"
        "from agentctx._core import fastjson\n"
        "assert 'json.decoder' not in sys.modules\n"
        "for bad in (b'{torn', b'[1,', b'{\"a\": tru}'):\n"
        "    try:\n"
        "        fastjson.loads(bad)\n"
        "    except ValueError:\n"
        "        continue\n"
        "    raise AssertionError(bad)\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr
