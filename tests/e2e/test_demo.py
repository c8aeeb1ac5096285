"""examples/demo.sh runs to the end on this machine and shows the values it promises."""

from __future__ import annotations

import os
import re
import signal
import subprocess

import pytest

from tests.netlab import REPO

pytestmark = pytest.mark.e2e


def section(output: str, title: str) -> str:
    """The lines the demo prints under its '==> TITLE...' heading."""
    match = re.search(rf"^==> {re.escape(title)}.*?\n(.*?)(?=^==> |\Z)", output, re.M | re.S)
    assert match, f"no '==> {title}' section in:\n{output}"
    return match.group(1)


def test_demo_runs(root: None) -> None:
    # bootstrap.sh (which the demo runs first) is quick when everything is installed: it
    # checks dpkg, the .venv stamp and cnitool's timestamp, and installs nothing.
    proc = subprocess.Popen(
        ["bash", str(REPO / "examples" / "demo.sh")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        # TERM the whole group: the demo's trap removes its namespaces on the way out.
        os.killpg(proc.pid, signal.SIGTERM)
        stdout, stderr = proc.communicate()
        pytest.fail(f"demo.sh took over 30 s (bootstrap reinstalling? see .build/bootstrap.log):\n{stdout}\n{stderr}")
    assert proc.returncode == 0, f"demo failed:\n{stdout}\n{stderr}"
    after = section(stdout, "after:")
    values = dict(re.findall(r"^(\S+) = (.*)$", after, re.M))
    assert values == {
        "net.ipv6.conf.eth0.accept_ra": "2",
        "net.ipv4.conf.eth0.rp_filter": "2",
        "net.ipv4.tcp_keepalive_time": "600",
    }
    assert "ok: every configured value is in place" in stdout
