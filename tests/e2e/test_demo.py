"""examples/demo.sh runs to the end on this machine and shows the values it promises."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.e2e.conftest import REPO

pytestmark = pytest.mark.e2e


def section(output: str, title: str) -> str:
    """The lines the demo prints under its '==> TITLE...' heading."""
    match = re.search(rf"^==> {re.escape(title)}.*?\n(.*?)(?=^==> |\Z)", output, re.M | re.S)
    assert match, f"no '==> {title}' section in:\n{output}"
    return match.group(1)


def test_demo_runs(root: None) -> None:
    # bootstrap.sh (which the demo runs first) is quick when everything is installed: it
    # checks dpkg, the .venv stamp and cnitool's timestamp, and installs nothing.
    demo = subprocess.run(
        ["bash", str(REPO / "examples" / "demo.sh")], capture_output=True, text=True, timeout=30, check=False
    )
    assert demo.returncode == 0, f"demo failed:\n{demo.stdout}\n{demo.stderr}"
    after = section(demo.stdout, "after:")
    values = dict(re.findall(r"^(\S+) = (.*)$", after, re.M))
    assert values == {
        "net.ipv6.conf.eth0.accept_ra": "2",
        "net.ipv4.conf.eth0.rp_filter": "2",
        "net.ipv4.tcp_keepalive_time": "600",
    }
    assert "ok: every configured value is in place" in demo.stdout
