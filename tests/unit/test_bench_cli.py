"""bench.cli: the subcommands that need no root, and the refusals before a run."""

from __future__ import annotations

import io
import os

import pytest

from bench import report, results
from bench.cli import main
from tests.unit.bench_sample import sample


def test_report_renders_a_saved_run(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "r.json")
    results.write(path, sample())
    out = io.StringIO()
    assert main(["report", path], out, io.StringIO()) == 0
    assert out.getvalue() == report.render(sample())


def test_report_of_a_bad_file(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "r.json")
    with open(path, "w") as f:
        f.write("{}")
    err = io.StringIO()
    assert main(["report", path], io.StringIO(), err) == 1
    assert err.getvalue() == f"bench: {path}: not a cni-sysctl-bench/1 document (schema: None)\n"


def test_a_run_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    err = io.StringIO()
    assert main(["--quick"], io.StringIO(), err) == 1
    assert err.getvalue() == "bench: run as root (it creates network namespaces): sudo .venv/bin/python -m bench\n"


def test_a_run_needs_a_writable_json_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(os, "access", lambda path, mode: not str(path).startswith("/nonexistent"))
    err = io.StringIO()
    assert main(["--quick", "--json", "/nonexistent/r.json"], io.StringIO(), err) == 1
    assert err.getvalue() == "bench: --json /nonexistent/r.json: cannot write in /nonexistent\n"


def test_usage_errors_exit_2() -> None:
    with pytest.raises(SystemExit) as info:
        main(["--cycles", "many"], io.StringIO(), io.StringIO())
    assert info.value.code == 2
