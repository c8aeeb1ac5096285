"""Shared fixtures: root gating, throwaway network namespaces, the installed plugin.

Root-only tests skip with a clear reason when not root, except under CI (CI=true), where a
root test that cannot run is a failure: CI runs as root and must run them all. The helpers
the fixtures build on are in tests/netlab.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.netlab import INSTALL_MODES, REPO, Daemon, install_plugin, run, unique

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# A run stopped by `timeout` or a CI limit (SIGTERM) unwinds like Ctrl-C, so the fixtures'
# finally blocks still delete the namespaces and links the tests made.
signal.signal(signal.SIGTERM, _interrupt)


def require_root() -> None:
    if os.geteuid() == 0:
        return
    if IN_CI:
        pytest.fail("root test cannot run: not root, and CI must run every root test")
    pytest.skip("needs root: creates network namespaces and links")


@pytest.fixture
def root() -> None:
    require_root()


@pytest.fixture
def make_netns(root: None) -> Iterator[Callable[[str], str]]:
    """Factory of throwaway network namespaces, deleted after the test even on failure."""
    made: list[str] = []

    def make(prefix: str = "cs") -> str:
        name = unique(prefix)
        subprocess.run(["ip", "netns", "add", name], check=True)
        made.append(name)
        run("ip", "link", "set", "lo", "up", ns=name)
        return name

    try:
        yield make
    finally:
        for name in reversed(made):
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


@pytest.fixture(scope="session", params=INSTALL_MODES)
def install_mode(request: pytest.FixtureRequest) -> str:
    """Both ways to run, one implementation: every test that runs the installed plugin runs in
    each mode, with the same expectations."""
    mode: str = request.param
    return mode


@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One `cni-sysctl daemon` for the session, stopped by its pid at the end."""
    require_root()
    running = Daemon(tmp_path_factory.mktemp("daemon")).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def plugin_dir(install_mode: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> str:
    """A CNI bin dir holding cni-sysctl as `cni-sysctl install` puts it there for the mode: the
    Python launcher of the interpreter running the tests, or the shim and the session's daemon."""
    require_root()
    bin_dir = tmp_path_factory.mktemp(f"cni-bin-{install_mode}")
    socket = request.getfixturevalue("daemon").socket if install_mode == "daemon" else None
    install_plugin(bin_dir, install_mode, socket)
    return str(bin_dir)


@pytest.fixture(scope="session")
def plugin(plugin_dir: str) -> str:
    """The installed launcher, as a runtime executes it."""
    return str(Path(plugin_dir) / "cni-sysctl")


# Under CI the only acceptable skip is a link type this kernel lacks (ipvlan, vlan, dummy):
# any other skip would pass an unrun suite off as coverage, so it fails the session.
ALLOWED_CI_SKIP = "kernel has no "
_unexpected_skips: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if ALLOWED_CI_SKIP not in reason:
            _unexpected_skips.append(f"{report.nodeid}: {reason}")


# Figures a test wants in the CI output (how many examples a property test ran, how many
# kills hit a bounce...), printed at the end of the session.
REPORT: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if REPORT:
        terminalreporter.section("figures reported by tests")
        for line in REPORT:
            terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _unexpected_skips:
        print("\nCI: tests skipped for a reason other than a missing kernel link type:")
        for line in _unexpected_skips:
            print(f"  {line}")
        session.exitstatus = 1


E2E_FOLDERS = ("e2e", "runtime", "cri", "deploy")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/e2e, tests/runtime, tests/cri and tests/deploy drives a real
    runtime or libcni client (folders relative to the rootdir, whatever the checkout's own path
    holds)."""
    tests = REPO / "tests"
    for item in items:
        try:
            folder = item.path.relative_to(tests).parts[0]
        except ValueError:
            continue
        if folder in E2E_FOLDERS:
            item.add_marker(pytest.mark.e2e)
