"""Shared fixtures: root gating and throwaway network namespaces.

Root-only tests skip with a clear reason when not root, except under CI (CI=true), where a
root test that cannot run is a failure: CI runs as root and must run them all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator

import pytest

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


def unique(prefix: str) -> str:
    """A short unique name (fits IFNAMSIZ for prefixes up to 6 characters)."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def run(
    *cmd: str, ns: str | None = None, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    argv = (["ip", "netns", "exec", ns] if ns else []) + list(cmd)
    return subprocess.run(argv, check=check, capture_output=True, text=True, input=input)


def read_sysctl(ns: str, path: str) -> str:
    """Read /proc/sys/<path> inside netns `ns`, the way an operator would."""
    return run("cat", f"/proc/sys/{path}", ns=ns).stdout.strip()


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


# Under CI the only acceptable skip is a link type this kernel lacks (ipvlan, vlan, dummy):
# any other skip would pass an unrun suite off as coverage, so it fails the session.
ALLOWED_CI_SKIP = "kernel has no "
_unexpected_skips: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if ALLOWED_CI_SKIP not in reason:
            _unexpected_skips.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _unexpected_skips:
        print("\nCI: tests skipped for a reason other than a missing kernel link type:")
        for line in _unexpected_skips:
            print(f"  {line}")
        session.exitstatus = 1


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/e2e, tests/runtime and tests/cri drives a real runtime or libcni client."""
    for item in items:
        parts = item.path.parts
        if "e2e" in parts or "runtime" in parts or "cri" in parts:
            item.add_marker(pytest.mark.e2e)
