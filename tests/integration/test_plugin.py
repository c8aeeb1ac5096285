"""The installed plugin executable, run as a runtime runs it: a minimal environment, cwd /,
config on stdin, inside a netns holding a veth whose peer is in another throwaway netns.

These cover what a libcni client cannot send here (cniVersion 1.1.0, STATUS, GC, a CNI_NETNS
that is the plugin's own) and the install launcher itself; tests/e2e drives the same plugin
through cnitool and Debian's plugins.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import read_sysctl, run, unique

VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> str:
    bin_dir = tmp_path_factory.mktemp("bin")
    subprocess.run(
        [sys.executable, "-m", "cni_sysctl", "install", "--bin-dir", str(bin_dir)], check=True, capture_output=True
    )
    return str(bin_dir / "cni-sysctl")


class Sandbox:
    """A container netns with eth0 (a veth, up, with addresses) and its peer in a host netns."""

    def __init__(self, make_netns: Callable[[str], str], ifname: str = "eth0") -> None:
        self.host = make_netns("csh")
        self.ns = make_netns("csc")
        self.ifname = ifname
        peer = unique("cp")
        run("ip", "link", "add", peer, "type", "veth", "peer", "name", "tmp0", ns=self.host)
        run("ip", "link", "set", "tmp0", "netns", self.ns, ns=self.host)
        run("ip", "link", "set", "tmp0", "name", ifname, ns=self.ns)
        run("ip", "addr", "add", "10.99.0.1/24", "dev", peer, ns=self.host)
        run("ip", "link", "set", peer, "up", ns=self.host)
        run("ip", "addr", "add", "10.99.0.2/24", "dev", ifname, ns=self.ns)
        run("ip", "link", "set", ifname, "up", ns=self.ns)
        run("ip", "route", "add", "default", "via", "10.99.0.1", ns=self.ns)

    @property
    def path(self) -> str:
        return f"/var/run/netns/{self.ns}"

    def prev_result(self, version: str) -> dict[str, object]:
        ip: dict[str, object] = {"interface": 0, "address": "10.99.0.2/24", "gateway": "10.99.0.1"}
        if version.startswith("0."):
            ip["version"] = "4"
        return {
            "cniVersion": version,
            "interfaces": [{"name": self.ifname, "sandbox": self.path}],
            "ips": [ip],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.99.0.1"}],
        }


@pytest.fixture
def sandbox(make_netns: Callable[[str], str]) -> Sandbox:
    return Sandbox(make_netns)


def invoke(
    plugin: str, command: str, config: dict[str, object], netns: str | None, ifname: str = "eth0"
) -> tuple[int, object, str]:
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": "ctr1", "CNI_IFNAME": ifname, "CNI_PATH": os.path.dirname(plugin)}
    if netns is not None:
        env["CNI_NETNS"] = netns
    proc = subprocess.run(
        [plugin], input=json.dumps(config), env=env, cwd="/", capture_output=True, text=True, check=False
    )
    out = json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc.returncode, out, proc.stderr


def config(version: str, sysctl: object, prev: dict[str, object] | None, **extra: object) -> dict[str, object]:
    cfg: dict[str, object] = {"cniVersion": version, "name": "itest", "type": "cni-sysctl", "sysctl": sysctl}
    if prev is not None:
        cfg["prevResult"] = prev
    cfg.update(extra)
    return cfg


KEYS = ["ipv4.conf.rp_filter=2", "net.ipv4.conf.IFNAME.arp_ignore=1", "net.ipv4.tcp_keepalive_time=600"]


@pytest.mark.parametrize("version", VERSIONS)
def test_add_check_del_every_version(plugin: str, sandbox: Sandbox, version: str) -> None:
    prev = sandbox.prev_result(version)
    rc, out, err = invoke(plugin, "ADD", config(version, KEYS, prev), sandbox.path)
    assert rc == 0, err
    assert out == prev  # prevResult unchanged, in the config's version
    assert read_sysctl(sandbox.ns, "net/ipv4/conf/eth0/rp_filter") == "2"
    assert read_sysctl(sandbox.ns, "net/ipv4/conf/eth0/arp_ignore") == "1"
    assert read_sysctl(sandbox.ns, "net/ipv4/tcp_keepalive_time") == "600"
    # the throwaway host netns and the real one are untouched
    assert read_sysctl(sandbox.host, "net/ipv4/tcp_keepalive_time") == "7200"
    assert Path("/proc/sys/net/ipv4/tcp_keepalive_time").read_text().strip() != "600"
    if version not in ("0.3.0", "0.3.1"):
        assert invoke(plugin, "CHECK", config(version, KEYS, prev), sandbox.path)[0] == 0
    assert invoke(plugin, "DEL", config(version, KEYS, prev), sandbox.path)[:2] == (0, None)


def test_add_converts_prev_result_to_config_version(plugin: str, sandbox: Sandbox) -> None:
    prev = sandbox.prev_result("1.0.0")
    rc, out, err = invoke(plugin, "ADD", config("0.4.0", KEYS, prev), sandbox.path)
    assert rc == 0, err
    assert isinstance(out, dict)
    assert out["cniVersion"] == "0.4.0"
    assert out["ips"][0]["version"] == "4"


def test_refused_value_rolls_back_earlier_writes(plugin: str, sandbox: Sandbox) -> None:
    keys = ["net.ipv4.tcp_keepalive_time=600", "ipv4.conf.rp_filter=1", "ipv6.conf.mtu=100"]
    rc, out, _ = invoke(
        plugin, "ADD", config("1.0.0", keys, sandbox.prev_result("1.0.0"), linkBounce="never"), sandbox.path
    )
    assert rc == 1
    assert isinstance(out, dict)
    assert out["code"] == 102
    assert "mtu" in out["msg"]
    assert read_sysctl(sandbox.ns, "net/ipv4/tcp_keepalive_time") == "7200"
    assert read_sysctl(sandbox.ns, "net/ipv4/conf/eth0/rp_filter") == "0"
    assert read_sysctl(sandbox.ns, "net/ipv6/conf/eth0/mtu") == "1500"


def test_check_reports_value_changed_by_hand(plugin: str, sandbox: Sandbox) -> None:
    prev = sandbox.prev_result("1.1.0")
    assert invoke(plugin, "ADD", config("1.1.0", KEYS, prev), sandbox.path)[0] == 0
    run("sh", "-c", "echo 0 > /proc/sys/net/ipv4/conf/eth0/rp_filter", ns=sandbox.ns)
    rc, out, _ = invoke(plugin, "CHECK", config("1.1.0", KEYS, prev), sandbox.path)
    assert rc == 1
    assert isinstance(out, dict)
    assert out["code"] == 104
    assert "net.ipv4.conf.eth0.rp_filter" in out["msg"]


def test_own_netns_is_refused(plugin: str, sandbox: Sandbox) -> None:
    before = Path("/proc/sys/net/ipv4/tcp_keepalive_time").read_text()
    rc, out, _ = invoke(
        plugin,
        "ADD",
        config("1.0.0", ["net.ipv4.tcp_keepalive_time=601"], sandbox.prev_result("1.0.0")),
        "/proc/self/ns/net",
    )
    assert rc == 1
    assert isinstance(out, dict)
    assert out["code"] == 4
    assert Path("/proc/sys/net/ipv4/tcp_keepalive_time").read_text() == before


def test_missing_netns_is_never_created(plugin: str, sandbox: Sandbox) -> None:
    ghost = f"/var/run/netns/{unique('ghost')}"
    cfg = config("1.0.0", KEYS, sandbox.prev_result("1.0.0"))
    rc, out, _ = invoke(plugin, "ADD", cfg, ghost)
    assert rc == 1
    assert isinstance(out, dict)
    assert out["code"] == 3
    assert invoke(plugin, "DEL", cfg, ghost)[0] == 0
    assert invoke(plugin, "DEL", cfg, None)[0] == 0
    assert not os.path.exists(ghost)


def test_status_and_gc(plugin: str, tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("allow: [ipv6.conf.accept_ra]\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("allow: {\n")
    assert invoke(plugin, "STATUS", config("1.1.0", [], None, policy=str(good)), None)[:2] == (0, None)
    rc, out, _ = invoke(plugin, "STATUS", config("1.1.0", [], None, policy=str(bad)), None)
    assert rc == 1
    assert isinstance(out, dict)
    assert out["code"] == 50
    assert invoke(plugin, "GC", config("1.1.0", [], None), None)[:2] == (0, None)


def test_dotted_interface_name(plugin: str, make_netns: Callable[[str], str]) -> None:
    box = Sandbox(make_netns, ifname="eth0.100")
    rc, _, err = invoke(
        plugin, "ADD", config("1.0.0", ["ipv4.conf.rp_filter=2"], box.prev_result("1.0.0")), box.path, "eth0.100"
    )
    assert rc == 0, err
    assert read_sysctl(box.ns, "net/ipv4/conf/eth0.100/rp_filter") == "2"


def test_launcher_ignores_environment_and_cwd(plugin: str) -> None:
    proc = subprocess.run(
        [plugin],
        env={"PYTHONPATH": "/nonexistent", "PYTHONHOME": "/nonexistent"},
        cwd="/",
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0
    assert "CNI protocol versions supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0" in proc.stderr


def test_every_container_interface_is_written_and_bounced(plugin: str, make_netns: Callable[[str], str]) -> None:
    """prevResult with two sandboxed interfaces: short keys expand for both, and a bounce key
    bounces both, each keeping its addresses and routes."""
    box = Sandbox(make_netns)
    peer = unique("cq")
    run("ip", "link", "add", peer, "type", "veth", "peer", "name", "tmp1", ns=box.host)
    run("ip", "link", "set", "tmp1", "netns", box.ns, ns=box.host)
    run("ip", "link", "set", "tmp1", "name", "net1", ns=box.ns)
    run("ip", "addr", "add", "10.97.0.1/24", "dev", peer, ns=box.host)
    run("ip", "link", "set", peer, "up", ns=box.host)
    run("ip", "addr", "add", "10.97.0.2/24", "dev", "net1", ns=box.ns)
    run("ip", "link", "set", "net1", "up", ns=box.ns)
    run("ip", "route", "add", "10.96.0.0/16", "via", "10.97.0.1", "dev", "net1", ns=box.ns)
    prev = box.prev_result("1.0.0")
    prev["interfaces"] = [*prev["interfaces"], {"name": "net1", "sandbox": box.path}]  # type: ignore[misc]
    prev["ips"] = [*prev["ips"], {"interface": 1, "address": "10.97.0.2/24"}]  # type: ignore[misc]
    routes_before = run("ip", "-4", "route", "show", "table", "all", ns=box.ns).stdout

    rc, out, err = invoke(
        plugin, "ADD", config("1.0.0", ["ipv6.conf.addr_gen_mode=1", "ipv4.conf.rp_filter=2"], prev), box.path
    )
    assert rc == 0, err
    assert out == prev
    for ifname in ("eth0", "net1"):
        assert read_sysctl(box.ns, f"net/ipv6/conf/{ifname}/addr_gen_mode") == "1"
        assert read_sysctl(box.ns, f"net/ipv4/conf/{ifname}/rp_filter") == "2"
        addrs = run("ip", "-o", "addr", "show", "dev", ifname, ns=box.ns).stdout
        assert "fe80::" not in addrs, f"{ifname} was not bounced: {addrs}"
        assert ",UP" in run("ip", "-o", "link", "show", ifname, ns=box.ns).stdout
    assert run("ip", "-4", "route", "show", "table", "all", ns=box.ns).stdout == routes_before
    assert "10.97.0.2/24" in run("ip", "-o", "addr", "show", "dev", "net1", ns=box.ns).stdout
