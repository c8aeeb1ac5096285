"""logFile and logLevel: one structured line per call for operators, in both modes, never on
stdout, safe with concurrent writers, never failing a call, and never a way for a conflist's
author to make the plugin (root) write elsewhere than under /var/log/cni-sysctl/."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cni_sysctl.calllog import LOG_DIR
from tests.netlab import Box, cni_env, exec_plugin, plugin_config, unique

pytestmark = pytest.mark.root


@pytest.fixture
def log_dir() -> Iterator[Path]:
    parent = Path(LOG_DIR)
    made = not parent.exists()
    path = parent / unique("test-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        if made:
            with contextlib.suppress(OSError):
                parent.rmdir()  # only if the tests left it empty


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_one_line_per_call(plugin: str, box: Box, log_dir: Path) -> None:
    log = log_dir / "calls.log"
    keys = ["ipv6.conf.accept_ra=0", "net.core.somaxconn=600"]
    ok = exec_plugin(plugin, cni_env("ADD", box.path, container_id="ctr-log1"),
                     plugin_config("1.0.0", keys, box.prev_result(), logFile=str(log)))  # fmt: skip
    assert ok.rc == 0, ok
    bad = exec_plugin(plugin, cni_env("ADD", box.path, container_id="ctr-log2"),
                      plugin_config("1.0.0", ["net.core.nosuch=1"], box.prev_result(), logFile=str(log)))  # fmt: skip
    assert bad.code == 101
    first, second = lines(log)
    assert first["command"] == "ADD"
    assert first["container"] == "ctr-log1"
    assert first["netns"] == box.path
    assert first["ifnames"] == ["eth0"]
    assert first["keys"] == ["net.ipv6.conf.eth0.accept_ra", "net.core.somaxconn"]
    assert first["bounce"] == ["eth0"]
    assert first["code"] == 0
    assert first["duration_ms"] > 0
    assert (second["container"], second["code"]) == ("ctr-log2", 101)
    assert ok.json == box.prev_result(), "nothing but the result on stdout"
    assert os.stat(log).st_mode & 0o777 == 0o600


def test_a_log_file_named_with_a_json_escape_is_written(plugin: str, box: Box, log_dir: Path) -> None:
    """JSON lets a member name be spelled with escapes ("\\u006cogFile" is "logFile"): the call
    is logged all the same (the plugin looks for the name in the decoded config)."""
    log = log_dir / "escaped.log"
    config = plugin_config("1.0.0", ["net.core.somaxconn=600"], box.prev_result(), logFile=str(log))
    data = json.dumps(config).replace('"logFile"', '"\\u006cogFile"').encode()
    assert b"logFile" not in data
    out = exec_plugin(plugin, cni_env("ADD", box.path, container_id="ctr-esc"), data)
    assert out.rc == 0, out
    assert [r["container"] for r in lines(log)] == ["ctr-esc"]


def test_levels(plugin: str, box: Box, log_dir: Path) -> None:
    for level in ("error", "verbose", "debug"):
        log = log_dir / f"{level}.log"
        for keys in (["ipv4.neigh.base_reachable_time_ms=30001"], ["net.core.nosuch=1"]):
            config = plugin_config("1.0.0", keys, box.prev_result(), logFile=str(log), logLevel=level)
            exec_plugin(plugin, cni_env("ADD", box.path), config)
        got = lines(log)
        assert [r["code"] for r in got] == {"error": [101], "verbose": [0, 101], "debug": [0, 101]}[level]
        if level == "debug":
            assert any("rounded to its clock tick" in note for note in got[0]["notes"])
        else:
            assert all("notes" not in r for r in got)


def test_concurrent_calls_never_interleave(plugin: str, make_netns: Callable[[str], str], log_dir: Path) -> None:
    boxes = [Box(make_netns) for _ in range(12)]
    log = log_dir / "calls.log"

    def one(i: int) -> None:
        config = plugin_config("1.0.0", ["net.core.somaxconn=700"], boxes[i].prev_result(), logFile=str(log))
        exec_plugin(plugin, cni_env("ADD", boxes[i].path, container_id=f"ctr-c{i}"), config)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    got = lines(log)  # every line parses: none was cut into by another
    assert sorted(r["container"] for r in got) == sorted(f"ctr-c{i}" for i in range(12))


@pytest.mark.parametrize("kind", ["directory", "symlink", "fifo"])
def test_a_log_that_cannot_be_written_never_fails_the_call(plugin: str, box: Box, log_dir: Path, kind: str) -> None:
    log_dir.mkdir(parents=True)
    log = log_dir / "calls.log"
    target = log_dir / "elsewhere"
    if kind == "directory":
        log.mkdir()
    elif kind == "symlink":
        log.symlink_to(target)
    else:
        os.mkfifo(log)
    config = plugin_config("1.0.0", ["net.core.somaxconn=650"], box.prev_result(), logFile=str(log))
    out = exec_plugin(plugin, cni_env("ADD", box.path), config, timeout=20)
    assert out.rc == 0, out
    assert f"cannot write to logFile {log}" in out.stderr
    assert not target.exists(), "a symbolic link is not followed"


OUTSIDE = [
    "/etc/cni/x.log",
    "/var/log/../../etc/passwd",
    "relative.log",
    "/var/log/",
    "/var/log//x.log",
    "/var/log/wtmp",  # another program's file
    "/var/log/cni-sysctl",
    "/var/log/cni-sysctl/",
    "/var/log/cni-sysctl-x/a.log",
    "/var/log/cni-sysctl/../wtmp",
    "/var/log/cni-sysctl//a.log",
]


@pytest.mark.parametrize("path", OUTSIDE)
def test_a_log_outside_var_log_is_refused(plugin: str, box: Box, path: str) -> None:
    out = exec_plugin(plugin, cni_env("ADD", box.path),
                      plugin_config("1.0.0", ["net.core.somaxconn=650"], box.prev_result(), logFile=path))  # fmt: skip
    assert (out.rc, out.code) == (1, 7), out
    assert "logFile" in out.msg
    assert not Path("/etc/cni/x.log").exists()
