"""JSON through CPython's C accelerator, without importing the json package.

`import json` costs every plugin start about 7 ms (json.decoder compiles regular expressions at
import, which brings in re, enum, functools and more): as much as the rest of a DEL. On CPython,
json's own loads() and dumps() do their work in the `_json` extension (its scanner and its
encoder); this module drives those two directly, so that a call imports `_json` (~0.3 ms) and
nothing else.

The results are json's, by construction:

* loads(data, object_pairs_hook) decodes as json.loads(data, object_pairs_hook=...) does: the
  same C scanner with the same settings (strict strings, float, int, NaN/Infinity constants),
  leading and trailing JSON whitespace (space, tab, newline, carriage return) skipped, nothing
  else allowed after the value. The fast path takes UTF-8 input without a byte order mark, the
  encoding json detects for it; anything else (a BOM, UTF-16 or UTF-32), and every failure, goes
  to json.loads itself, so errors carry json's exact messages and types. (The scanner raises
  its JSONDecodeError only when json.decoder is already imported; otherwise it fails with a
  SystemError, which is taken as "malformed: ask json".)
* dumps(obj) encodes as json.dumps(obj, separators=(",", ":")) does (ASCII output, NaN allowed,
  circular references refused); anything the C encoder refuses is handed to json.dumps, which
  raises its own error.

Without `_json` (another Python implementation) both fall back to json. tests/unit/test_jsonio.py
compares both with json on generated and hostile inputs.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

try:
    import _json
except ImportError:  # pragma: no cover - CPython always has it
    _json = None  # type: ignore[assignment]

_WHITESPACE = " \t\n\r"  # JSON's insignificant whitespace (RFC 8259), json's too
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
_CONSTANTS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


class _Settings:
    """What the C scanner reads from its context object (json.decoder.JSONDecoder's attributes)."""

    __slots__ = ("strict", "object_hook", "object_pairs_hook", "parse_float", "parse_int", "parse_constant", "memo")

    def __init__(self, object_pairs_hook: Callable[[list[tuple[str, object]]], object] | None) -> None:
        self.strict = True
        self.object_hook = None
        self.object_pairs_hook = object_pairs_hook
        self.parse_float = float
        self.parse_int = int
        self.parse_constant = _CONSTANTS.__getitem__
        self.memo: dict[str, str] = {}


def _plain_utf8(data: bytes) -> bool:
    """Whether json would decode `data` as UTF-8 without a BOM: no BOM, and neither of the first
    two bytes NUL (json reads a NUL there as UTF-16 or UTF-32)."""
    return not data.startswith(_BOMS) and 0 not in data[:2]


def loads(data: bytes | str, object_pairs_hook: Callable[[list[tuple[str, object]]], object] | None = None) -> object:
    """json.loads(data, object_pairs_hook=object_pairs_hook), without importing json when it
    succeeds on UTF-8 input."""
    if _json is not None and (isinstance(data, str) or _plain_utf8(data)):
        try:
            text = data if isinstance(data, str) else data.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            text = None
        if text is not None and not text.startswith("\ufeff"):
            start = len(text) - len(text.lstrip(_WHITESPACE))
            try:
                scan = _json.make_scanner(_Settings(object_pairs_hook))  # type: ignore[arg-type]
                obj, end = scan(text, start)
            except (StopIteration, SystemError):
                # No value there; or malformed, and the scanner, which builds its error from
                # json.decoder only if that is imported already, could not say why: json
                # decodes it again and says where, in its words.
                pass
            else:
                if not text[end:].strip(_WHITESPACE):
                    return obj
    import json

    return json.loads(data, object_pairs_hook=object_pairs_hook)


def dumps(obj: object) -> str:
    """json.dumps(obj, separators=(",", ":"))."""
    if _json is not None:
        if isinstance(obj, str):
            return _json.encode_basestring_ascii(obj)
        encode = _json.make_encoder({}, _refuse, _json.encode_basestring_ascii, None, ":", ",", False, False, True)
        try:
            return "".join(encode(obj, 0))
        except (TypeError, ValueError):
            pass  # json raises it again, with its own message
    import json

    return json.dumps(obj, separators=(",", ":"))


def _refuse(obj: object) -> object:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")
