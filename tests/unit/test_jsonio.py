"""cni_sysctl.jsonio gives what json gives, results and errors alike, without importing json on
the paths every call takes."""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import sys
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cni_sysctl import jsonio

REPO = __file__.rsplit("/tests/", 1)[0]

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)


@contextlib.contextmanager
def without_json() -> Iterator[None]:
    """As in a plugin process: json not imported (the C scanner behaves differently then: it
    finds json.decoder's error class only if that module is loaded)."""
    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if name == "json" or name.startswith("json.")}
    try:
        yield
    finally:
        for name in [n for n in sys.modules if n == "json" or n.startswith("json.")]:
            del sys.modules[name]
        sys.modules.update(saved)


def outcome(decode: object, data: bytes | str, plugin: bool = False) -> tuple[str, str]:
    """What decoding `data` gives, comparable across decoders: the value re-encoded (NaN equals
    NaN that way), or the exception's type and message. With `plugin`, `decode` runs as in a
    plugin process, without json imported."""
    try:
        if plugin:
            with without_json():
                value = decode(data)  # type: ignore[operator]
        else:
            value = decode(data)  # type: ignore[operator]
    except (ValueError, RecursionError) as exc:
        return type(exc).__name__, str(exc)
    return "ok", json.dumps(value, sort_keys=False)


def pairs_hook(pairs: list[tuple[str, object]]) -> dict[str, object]:
    return {"pairs": [[k, v] for k, v in pairs]}


@settings(max_examples=300, deadline=None)
@given(values)
def test_dumps_is_json_dumps_compact(value: object) -> None:
    assert jsonio.dumps(value) == json.dumps(value, separators=(",", ":"))


@settings(max_examples=300, deadline=None)
@given(values, st.sampled_from(["", " ", "\n\t \r"]))
def test_loads_decodes_as_json(value: object, pad: str) -> None:
    text = pad + json.dumps(value) + pad
    for data in (text, text.encode("utf-8", "surrogatepass")):
        assert outcome(jsonio.loads, data, plugin=True) == outcome(json.loads, data)
        ours = outcome(lambda d: jsonio.loads(d, object_pairs_hook=pairs_hook), data, plugin=True)
        assert ours == outcome(lambda d: json.loads(d, object_pairs_hook=pairs_hook), data)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=40) | st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_any_bytes_give_what_json_gives(data: bytes) -> None:
    assert outcome(jsonio.loads, data, plugin=True) == outcome(json.loads, data)


HOSTILE = [
    b"",
    b"   ",
    b"{}",
    b'{"a":1}{"b":2}',
    b'{"a":1} x',
    b"\xef\xbb\xbf{}",  # UTF-8 BOM: json accepts it in bytes
    '{"a":"é"}'.encode("utf-16"),
    '{"a":1}'.encode("utf-16-le"),
    '{"a":1}'.encode("utf-32"),
    '{"a":1}'.encode("utf-32-be"),
    b'{"a":"\xff"}',
    b'{"a":"\\ud800"}',
    b'{"a":"\x01"}',  # a control character inside a string: strict
    b"\x0b{}",  # vertical tab is no JSON whitespace
    b"{}\x0c",
    b"[NaN, Infinity, -Infinity]",
    b"1" * 5000,  # beyond Python's integer digit limit
    b"[" * 100000,
    b'{"a":1,"a":2}',
    b"1e400",
    b"-0",
    b'"\\u0041"',
    b"nul",
    b"\x00{}",
]


@pytest.mark.parametrize("data", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_inputs_give_what_json_gives(data: bytes) -> None:
    assert outcome(jsonio.loads, data, plugin=True) == outcome(json.loads, data)
    assert outcome(lambda d: jsonio.loads(d, object_pairs_hook=pairs_hook), data, plugin=True) == outcome(
        lambda d: json.loads(d, object_pairs_hook=pairs_hook), data
    )


def test_what_the_c_encoder_refuses_json_refuses_alike() -> None:
    for value in ({"a": b"bytes"}, {1j: 2}, [object()]):
        with pytest.raises(TypeError) as ours:
            jsonio.dumps(value)
        with pytest.raises(TypeError) as theirs:
            json.dumps(value, separators=(",", ":"))
        assert str(ours.value) == str(theirs.value)
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        jsonio.dumps(loop)
    assert jsonio.dumps([math.inf, math.nan]) == "[Infinity,NaN]"


@pytest.mark.parametrize("command", ["VERSION", "DEL", "ADD"])
def test_a_call_does_not_import_json(command: str) -> None:
    """The point of the module: a call (here one refused for its missing netns, after
    decoding and encoding) never imports json, re or enum."""
    code = (
        f"import io, sys\nsys.path.insert(0, {REPO!r})\n"
        "from cni_sysctl import cli\n"
        f"env = {{'CNI_COMMAND': {command!r}, 'CNI_CONTAINERID': 'c', 'CNI_IFNAME': 'eth0', 'CNI_PATH': '/x',"
        " 'CNI_NETNS': '/nonexistent/ns'}\n"
        'stdin = io.BytesIO(b\'{"cniVersion":"1.0.0","name":"n","type":"cni-sysctl",'
        '"sysctl":["net.core.somaxconn=600"],"prevResult":{"cniVersion":"1.0.0",'
        '"interfaces":[{"name":"eth0","sandbox":"/nonexistent/ns"}]}}\')\n'
        "out = io.StringIO()\n"
        "cli.main(argv=[], environ=env, stdin=stdin, stdout=out, stderr=io.StringIO())\n"
        "assert out.getvalue()[:1] in ('', '{'), out.getvalue()\n"
        "print(' '.join(m for m in ('json', 're', 'enum') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code], cwd="/",
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"{command} imported: {proc.stdout.strip()}"
