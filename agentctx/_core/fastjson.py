"""JSON for the hook path, on the C accelerator `_json` without the `json` package.

`import json` compiles regular expressions when it is imported, so it imports `re`,
which imports `enum`: about 9 ms of a 28 ms hook on the benchmark machine, where a
bare Python starts in 12 ms, and a hook runs on every agent turn. The two C
functions `json` itself calls, `_json.make_scanner` and `_json.make_encoder`, need
none of that; this module calls them with `json`'s default settings (`_json` is
built into every CPython since 2.6). tests/test_fastjson.py holds both functions
equal to `json` on a corpus, errors included.

Only for UTF-8 (the protocol, the snapshot and the agents' hook stdin all are).
"""

from __future__ import annotations

import _json

# typing is not imported at run time: this module is on the hook's start-up path
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

__all__ = ["dumps", "loads"]

_WHITESPACE: Final = " \t\n\r"  # what json skips around a document
_CONSTANTS: Final = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


class _Decoder:
    """The settings _json.make_scanner reads from a json.JSONDecoder (its defaults)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


# typeshed types the argument as a scanner; it takes anything with JSONDecoder's settings
_scan = _json.make_scanner(_Decoder())  # type: ignore[arg-type]


def _unserializable(obj: object) -> object:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def loads(data: bytes | str) -> Any:
    """`json.loads` of one UTF-8 document. ValueError when it is not JSON (invalid
    UTF-8 included); RecursionError when nested deeper than the parser goes, as json."""
    text = data.decode() if isinstance(data, bytes) else data
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        obj, end = _scan(text, start)
    except StopIteration as exc:
        raise ValueError(f"Expecting value: char {exc.value}") from None
    except SystemError:
        # The scanner raises json.decoder.JSONDecodeError for malformed text, but looks
        # that class up only among modules already imported: without `json` loaded
        # it fails to raise anything, which Python reports as a SystemError.
        raise ValueError("malformed JSON") from None
    if text[end:].strip(_WHITESPACE):
        raise ValueError(f"Extra data: char {end}")
    return obj


def dumps(obj: Any, *, ensure_ascii: bool = True, compact: bool = False) -> str:
    """`json.dumps(obj, ensure_ascii=...)`, with separators (",", ":") when *compact*."""
    item_separator, key_separator = (",", ":") if compact else (", ", ": ")
    escape = _json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring
    encode = _json.make_encoder(
        {}, _unserializable, escape, None, key_separator, item_separator, False, False, True
    )
    return "".join(encode(obj, 0))
