"""Fixtures the integration suites share: a veth box in a fresh netns, and a daemon of the test's
own with the shim that forwards to it."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.netlab import Box, Daemon, install_plugin


@pytest.fixture
def box(make_netns: Callable[[str], str]) -> Box:
    """A container netns with eth0, its peer in a host netns, addresses and routes."""
    return Box(make_netns)


@pytest.fixture
def own_daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A daemon of this test's, not started yet (the session's one must never be killed), killed
    by its pid at the end."""
    (tmp_path / "d").mkdir()
    daemon = Daemon(tmp_path / "d")
    try:
        yield daemon
    finally:
        daemon.stop(signal.SIGKILL)


@pytest.fixture
def shim(tmp_path: Path, own_daemon: Daemon) -> str:
    """The shim, installed to forward to `own_daemon`'s socket (running or not)."""
    return install_plugin(tmp_path / "bin", "daemon", own_daemon.socket)
