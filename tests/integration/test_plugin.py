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

from tests import netlab
from tests.netlab import VERSIONS, Box, cni_env, exec_plugin, install_plugin, plugin_config, read_sysctl, run, unique

pytestmark = pytest.mark.root

KEYS = ["ipv4.conf.rp_filter=2", "net.ipv4.conf.IFNAME.arp_ignore=1", "net.ipv4.tcp_keepalive_time=600"]


@pytest.mark.parametrize("version", VERSIONS)
def test_add_check_del_every_version(plugin: str, box: Box, version: str) -> None:
    prev = box.prev_result(version)
    config = plugin_config(version, KEYS, prev)
    out = exec_plugin(plugin, cni_env("ADD", box.path, container_id="ctr1"), config)
    assert out.rc == 0, out
    assert out.json == prev  # prevResult unchanged, in the config's version
    assert read_sysctl(box.ns, "net/ipv4/conf/eth0/rp_filter") == "2"
    assert read_sysctl(box.ns, "net/ipv4/conf/eth0/arp_ignore") == "1"
    assert read_sysctl(box.ns, "net/ipv4/tcp_keepalive_time") == "600"
    # the throwaway host netns and the real one are untouched
    assert read_sysctl(box.host, "net/ipv4/tcp_keepalive_time") == "7200"
    assert Path("/proc/sys/net/ipv4/tcp_keepalive_time").read_text().strip() != "600"
    if version not in ("0.3.0", "0.3.1"):
        assert exec_plugin(plugin, cni_env("CHECK", box.path, container_id="ctr1"), config).rc == 0
    out = exec_plugin(plugin, cni_env("DEL", box.path, container_id="ctr1"), config)
    assert (out.rc, out.stdout) == (0, "")


def test_add_converts_prev_result_to_config_version(plugin: str, box: Box) -> None:
    out = exec_plugin(plugin, cni_env("ADD", box.path), plugin_config("0.4.0", KEYS, box.prev_result("1.0.0")))
    assert out.rc == 0, out
    assert out.json["cniVersion"] == "0.4.0"
    assert out.json["ips"][0]["version"] == "4"


def test_refused_value_rolls_back_earlier_writes(plugin: str, box: Box) -> None:
    keys = ["net.ipv4.tcp_keepalive_time=600", "ipv4.conf.rp_filter=1", "ipv6.conf.mtu=100"]
    config = plugin_config("1.0.0", keys, box.prev_result(), linkBounce="never")
    out = exec_plugin(plugin, cni_env("ADD", box.path), config)
    assert (out.rc, out.code) == (1, 102), out
    assert "mtu" in out.msg
    assert read_sysctl(box.ns, "net/ipv4/tcp_keepalive_time") == "7200"
    assert read_sysctl(box.ns, "net/ipv4/conf/eth0/rp_filter") == "0"
    assert read_sysctl(box.ns, "net/ipv6/conf/eth0/mtu") == "1500"


def test_check_reports_what_changed_by_hand(plugin: str, box: Box) -> None:
    config = plugin_config("1.1.0", KEYS, box.prev_result("1.1.0"))
    assert exec_plugin(plugin, cni_env("ADD", box.path, container_id="ctr2"), config).rc == 0
    run("sh", "-c", "echo 0 > /proc/sys/net/ipv4/conf/eth0/rp_filter", ns=box.ns)
    out = exec_plugin(plugin, cni_env("CHECK", box.path, container_id="ctr2"), config)
    assert (out.rc, out.code) == (1, 104), out
    assert "net.ipv4.conf.eth0.rp_filter (from 'ipv4.conf.rp_filter') is '0', expected '2'" in out.msg
    # CHECK looks at the link and prevResult's addresses and routes too (CNI spec, CHECK)
    run("sh", "-c", "echo 2 > /proc/sys/net/ipv4/conf/eth0/rp_filter", ns=box.ns)
    run("ip", "route", "del", "default", "via", box.gw4, ns=box.ns)
    out = exec_plugin(plugin, cni_env("CHECK", box.path, container_id="ctr2"), config)
    assert (out.rc, out.code) == (1, 104), out
    assert f"prevResult route 0.0.0.0/0 via {box.gw4} missing from eth0" in out.msg
    run("ip", "link", "set", "eth0", "down", ns=box.ns)
    out = exec_plugin(plugin, cni_env("CHECK", box.path, container_id="ctr2"), config)
    assert "interface eth0 is down" in out.msg
    assert f"prevResult address {box.addrs[1]} missing from eth0" in out.msg  # a down flushes IPv6


def test_own_netns_is_refused(plugin: str, box: Box) -> None:
    before = Path("/proc/sys/net/ipv4/tcp_keepalive_time").read_text()
    config = plugin_config("1.0.0", ["net.ipv4.tcp_keepalive_time=601"], box.prev_result())
    for netns in ("/proc/self/ns/net", f"/proc/{os.getpid()}/ns/net"):
        out = exec_plugin(plugin, cni_env("ADD", netns), config)
        assert (out.rc, out.code) == (1, 4), out
        assert "own network namespace" in out.msg
    assert Path("/proc/sys/net/ipv4/tcp_keepalive_time").read_text() == before


def test_missing_netns_is_never_created(plugin: str, box: Box) -> None:
    ghost = f"/var/run/netns/{unique('ghost')}"
    config = plugin_config("1.0.0", KEYS, box.prev_result())
    out = exec_plugin(plugin, cni_env("ADD", ghost), config)
    assert (out.rc, out.code) == (1, 3), out
    assert exec_plugin(plugin, cni_env("DEL", ghost), config).rc == 0
    assert exec_plugin(plugin, cni_env("DEL", None), config).rc == 0
    assert exec_plugin(plugin, cni_env("DEL", "dummy"), config).rc == 0, "libcni's placeholder"
    assert not os.path.exists(ghost)


def test_status_and_gc(plugin: str, tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("allow: [ipv6.conf.accept_ra]\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("allow: {\n")
    env = {"CNI_COMMAND": "STATUS"}
    out = exec_plugin(plugin, env, plugin_config("1.1.0", [], policy=str(good)))
    assert (out.rc, out.stdout) == (0, ""), out
    out = exec_plugin(plugin, env, plugin_config("1.1.0", [], policy=str(bad)))
    assert (out.rc, out.code) == (1, 50), out
    out = exec_plugin(plugin, {"CNI_COMMAND": "GC", "CNI_PATH": "/x"}, plugin_config("1.1.0", []))
    assert (out.rc, out.stdout) == (0, ""), out


def test_dotted_interface_name(plugin: str, make_netns: Callable[[str], str]) -> None:
    box = Box(make_netns, ifname="eth0.100")
    config = plugin_config("1.0.0", ["ipv4.conf.rp_filter=2"], box.prev_result())
    out = exec_plugin(plugin, cni_env("ADD", box.path, ifname="eth0.100"), config)
    assert out.rc == 0, out
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
    box = Box(make_netns)
    second = Box(make_netns, ifname="net1", host=box.host, ns=box.ns, default_routes=False)
    run("ip", "route", "add", "10.96.0.0/16", "via", second.gw4, "dev", "net1", ns=box.ns)
    prev = box.prev_result()
    prev["interfaces"].append({"name": "net1", "sandbox": box.path})
    prev["ips"].append({"interface": 1, "address": second.addrs[0]})
    routes_before = run("ip", "-4", "route", "show", "table", "all", ns=box.ns).stdout

    config = plugin_config("1.0.0", ["ipv6.conf.addr_gen_mode=1", "ipv4.conf.rp_filter=2"], prev)
    out = exec_plugin(plugin, cni_env("ADD", box.path), config)
    assert out.rc == 0, out
    assert out.json == prev
    for ifname in ("eth0", "net1"):
        assert read_sysctl(box.ns, f"net/ipv6/conf/{ifname}/addr_gen_mode") == "1"
        assert read_sysctl(box.ns, f"net/ipv4/conf/{ifname}/rp_filter") == "2"
        assert not netlab.link_locals(box.ns, ifname), f"{ifname} was not bounced"
        assert netlab.is_up(box.ns, ifname)
    assert run("ip", "-4", "route", "show", "table", "all", ns=box.ns).stdout == routes_before
    assert second.addrs[0] in netlab.addresses(box.ns, "net1")


def test_launcher_with_a_gone_import_root_answers_with_an_error_object(tmp_path: Path) -> None:
    """After an upgrade moved the venv, the runtime still gets a CNI error object telling the
    operator what to do, not a traceback and an empty stdout."""
    from cni_sysctl import install

    launcher = tmp_path / "cni-sysctl"
    launcher.write_text(install.launcher_text(sys.executable, [str(tmp_path / "gone")]))
    launcher.chmod(0o755)
    out = exec_plugin(str(launcher), {"CNI_COMMAND": "ADD"}, b"{}")
    assert (out.rc, out.code) == (1, 106), out
    assert "rerun `cni-sysctl install`" in out.json["details"]
    assert "Traceback" not in out.stdout + out.stderr


def test_concurrent_installs_never_clash(tmp_path: Path) -> None:
    """Two pods of a DaemonSet (or two operators) installing into one bin dir at once: each
    writes its own temporary file, and the one left in place works."""
    argv = [*netlab.OPERATOR, "install", "--bin-dir", str(tmp_path)]
    procs = [
        subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=netlab.REPO) for _ in range(6)
    ]
    for proc in procs:
        assert proc.wait(60) == 0, proc.stderr.read() if proc.stderr else ""
    out = exec_plugin(str(tmp_path / "cni-sysctl"), {"CNI_COMMAND": "VERSION"}, b'{"cniVersion":"1.0.0"}')
    assert out.rc == 0, out
    assert [p.name for p in tmp_path.iterdir()] == ["cni-sysctl"], "no temporary file left behind"


def test_status_with_and_without_the_node_policy(tmp_path: Path) -> None:
    """STATUS names no policy: the node's /etc/cni/cni-sysctl.yaml decides. The direct plugin
    runs in a mount namespace of its own with a directory of the test's bound over /etc/cni,
    whatever the machine's /etc/cni holds (in daemon mode the daemon's filesystem decides: the
    DaemonSet's tests cover that)."""
    plugin = install_plugin(tmp_path / "bin")
    etc = tmp_path / "etc-cni"
    etc.mkdir()
    os.chmod(tmp_path, 0o755)
    config = json.dumps(plugin_config("1.1.0", []))
    script = 'mount --bind "$1" /etc/cni && exec "$2"'

    def status() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["unshare", "--mount", "sh", "-c", script, "sh", str(etc), plugin], input=config,
                              env={"CNI_COMMAND": "STATUS", "PATH": os.environ["PATH"]}, capture_output=True,
                              text=True, check=False)  # fmt: skip

    assert (status().returncode, status().stdout) == (0, ""), "no node policy: ready"
    (etc / "cni-sysctl.yaml").write_text("allow: [\n")
    os.chmod(etc / "cni-sysctl.yaml", 0o644)
    broken = status()
    assert broken.returncode == 1
    assert json.loads(broken.stdout)["code"] == 50
