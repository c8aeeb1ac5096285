"""Shared fixtures: root gating and throwaway network namespaces.

Root-only tests skip with a clear reason when not root, except under CI (CI=true), where a
root test that cannot run is a failure: CI runs as root and must run them all.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


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
