"""End-to-end fixtures: the real libcni client (.build/cnitool), the real Debian plugins in
/usr/lib/cni, and cni-sysctl installed the way an operator installs it.

Every test gets two throwaway network namespaces: a "host" one, where cnitool runs and where
bridges, host-side veths and gateway addresses live, and a "container" one whose path is the
CNI_NETNS. The machine's own links, routes, /etc/cni and /var/lib/cni are never touched:
conflists, host-local leases and libcni's result cache all live in the test's tmp_path.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests import netlab
from tests.conftest import require_root
from tests.netlab import REPO, SYSTEM_PLUGINS, netns_path, run, unique

CONFLISTS = REPO / "conflist"

# CNI versions libcni 1.1.2 can send; CHECK needs >= 0.4.0.
VERSIONS = ("0.3.1", "0.4.0", "1.0.0")
CHECK_VERSIONS = ("0.4.0", "1.0.0")

# The three keys of the shipped conflists, one of each form, and where they land for eth0.
THREE_KEYS = [
    "ipv6.conf.accept_ra=2",
    "net.ipv4.conf.IFNAME.rp_filter=2",
    "net.ipv4.tcp_keepalive_time=600",
]


def three_paths(ifname: str = "eth0") -> dict[str, str]:
    """/proc/sys paths of THREE_KEYS for `ifname`, with the values they must end with."""
    return {
        f"net/ipv6/conf/{ifname}/accept_ra": "2",
        f"net/ipv4/conf/{ifname}/rp_filter": "2",
        "net/ipv4/tcp_keepalive_time": "600",
    }


def read_host_sysctl(path: str) -> str:
    """A value of the netns the tests run in: the real host's."""
    return Path("/proc/sys", path).read_text().strip()


class CniResult:
    """What one cnitool run returned: exit code, stdout, stderr, and the error object that
    cnitool prints as the last line of stderr when a plugin failed."""

    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.error: dict[str, Any] | None = None
        lines = proc.stderr.strip().splitlines()
        if self.rc != 0 and lines:
            try:
                obj = json.loads(lines[-1])
            except ValueError:
                obj = None
            if isinstance(obj, dict):
                self.error = obj

    @property
    def result(self) -> dict[str, Any]:
        assert self.rc == 0, f"cnitool failed (rc {self.rc}):\n{self.stderr}"
        obj = json.loads(self.stdout)
        assert isinstance(obj, dict)
        return obj

    @property
    def code(self) -> object:
        assert self.error is not None, f"no error object (rc {self.rc}):\nstdout: {self.stdout}\nstderr: {self.stderr}"
        return self.error.get("code")

    @property
    def msg(self) -> str:
        assert self.error is not None, f"no error object (rc {self.rc}):\nstderr: {self.stderr}"
        return str(self.error.get("msg", ""))

    @property
    def text(self) -> str:
        """The error as libcni's types.Error renders it to a user: msg, then details."""
        assert self.error is not None, f"no error object (rc {self.rc}):\nstderr: {self.stderr}"
        return f"{self.error.get('msg', '')}; {self.error.get('details', '')}"

    def __repr__(self) -> str:
        return f"CniResult(rc={self.rc}, stdout={self.stdout!r}, stderr={self.stderr!r})"


def load_conflist(name: str) -> dict[str, Any]:
    """One of the conflists shipped in conflist/, as a dict."""
    obj = json.loads((CONFLISTS / f"{name}.conflist").read_text())
    assert isinstance(obj, dict)
    return obj


def plugin_of(conflist: dict[str, Any], type_: str) -> dict[str, Any]:
    plugins = conflist["plugins"]
    assert isinstance(plugins, list)
    for p in plugins:
        if p["type"] == type_:
            plugin: dict[str, Any] = p
            return plugin
    raise AssertionError(f"no {type_} plugin in {conflist['name']}")


class Env:
    """One test's world: a host netns, a container netns, a tmp dir, and cnitool."""

    def __init__(self, make_netns: Callable[[str], str], tmp: Path, cnitool: str, plugin_dir: str) -> None:
        self._make_netns = make_netns
        self.tmp = tmp
        self.cnitool_path = cnitool
        self.plugin_dir = plugin_dir
        self.netconf = tmp / "net.d"
        self.netconf.mkdir(parents=True)
        self.cache = tmp / "cache"
        self.host = make_netns("e2eh")
        self.ctr = make_netns("e2ec")

    # -- namespaces ---------------------------------------------------------------------------
    def new_container(self) -> str:
        """Another container netns (e.g. a reference attachment beside the one under test)."""
        return self._make_netns("e2ec")

    def sibling(self, name: str) -> Env:
        """A second, independent world (its own host and container netns and tmp dir)."""
        return Env(self._make_netns, self.tmp / name, self.cnitool_path, self.plugin_dir)

    def netns_path(self, ns: str | None = None) -> str:
        return netns_path(ns or self.ctr)

    def in_host(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(*cmd, ns=self.host, check=check)

    def in_ctr(self, *cmd: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(*cmd, ns=ns or self.ctr, check=check)

    # The lab's queries (tests/netlab.py), in the container netns unless `ns` says otherwise.
    def sysctl(self, path: str, ns: str | None = None) -> str:
        return netlab.read_sysctl(ns or self.ctr, path)

    def host_sysctl(self, path: str) -> str:
        return netlab.read_sysctl(self.host, path)

    def addresses(self, ifname: str = "eth0", ns: str | None = None) -> set[str]:
        return netlab.addresses(ns or self.ctr, ifname)

    def tentative(self, ifname: str = "eth0", ns: str | None = None) -> set[str]:
        return {a.split("/")[0] for a in netlab.tentative(ns or self.ctr, ifname)}

    def link_local(self, ifname: str = "eth0", ns: str | None = None) -> set[str]:
        return netlab.link_locals(ns or self.ctr, ifname)

    def routes(self, family: str, ns: str | None = None) -> list[dict[str, Any]]:
        return netlab.routes(ns or self.ctr, family)

    def default_gateways(self, ifname: str = "eth0", ns: str | None = None) -> set[str]:
        return netlab.default_gateways(ns or self.ctr, ifname)

    def link_up(self, ifname: str = "eth0", ns: str | None = None) -> bool:
        return netlab.is_up(ns or self.ctr, ifname)

    def ping(self, address: str, ns: str | None = None) -> bool:
        return netlab.ping(ns or self.ctr, address)

    # -- configuration ------------------------------------------------------------------------
    def conflist(self, plugins: list[dict[str, object]], version: str = "1.0.0", name: str | None = None) -> str:
        """Write a conflist into this test's NETCONFPATH; returns the network name.

        Every IPAM section gets a dataDir in tmp, so host-local never touches /var/lib/cni.
        """
        name = name or unique("e2e-")
        plugins = copy.deepcopy(plugins)
        for p in plugins:
            ipam = p.get("ipam")
            if isinstance(ipam, dict) and ipam.get("type") == "host-local":
                ipam.setdefault("dataDir", str(self.tmp / "ipam"))
        doc = {"cniVersion": version, "name": name, "plugins": plugins}
        (self.netconf / f"{name}.conflist").write_text(json.dumps(doc, indent=2))
        return name

    def shipped(self, conflist: str, version: str = "1.0.0", sysctl: object = None) -> str:
        """A conflist from conflist/, in `version`, with cni-sysctl's "sysctl" replaced if given."""
        doc = load_conflist(conflist)
        if sysctl is not None:
            plugin_of(doc, "cni-sysctl")["sysctl"] = sysctl
        return self.conflist(doc["plugins"], version)

    # -- cnitool ------------------------------------------------------------------------------
    def cnitool(
        self,
        command: str,
        net: str,
        *,
        netns: str | None = None,
        ifname: str = "eth0",
        cni_args: str | None = None,
        cap_args: object = None,
    ) -> CniResult:
        """`cnitool COMMAND NET NETNS`, run inside the host netns."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "NETCONFPATH": str(self.netconf),
            "CNI_PATH": f"{self.plugin_dir}:{SYSTEM_PLUGINS}",
            "CNI_CACHE_DIR": str(self.cache),
            "CNI_IFNAME": ifname,
        }
        if cni_args is not None:
            env["CNI_ARGS"] = cni_args
        if cap_args is not None:
            env["CAP_ARGS"] = json.dumps(cap_args)
        argv = ["ip", "netns", "exec", self.host, self.cnitool_path, command, net, netns or self.netns_path()]
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
        return CniResult(proc)

    def add(self, net: str, **kw: Any) -> CniResult:
        return self.cnitool("add", net, **kw)

    def attach(self, net: str, **kw: Any) -> dict[str, Any]:
        """ADD that must succeed; returns the result libcni printed."""
        return self.add(net, **kw).result

    def check(self, net: str, **kw: Any) -> CniResult:
        return self.cnitool("check", net, **kw)

    def delete(self, net: str, **kw: Any) -> CniResult:
        return self.cnitool("del", net, **kw)

    def plugin(self, command: str, config: dict[str, object], *, ifname: str = "eth0") -> CniResult:
        """Run the installed cni-sysctl directly, as libcni would (for the cases where an
        earlier plugin of a chain fails first and hides our answer)."""
        env = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": "e2e-direct",
            "CNI_NETNS": self.netns_path(),
            "CNI_IFNAME": ifname,
            "CNI_PATH": f"{self.plugin_dir}:{SYSTEM_PLUGINS}",
        }
        argv = ["ip", "netns", "exec", self.host, f"{self.plugin_dir}/cni-sysctl"]
        proc = subprocess.run(argv, env=env, input=json.dumps(config), capture_output=True, text=True, check=False)
        res = CniResult(proc)
        if proc.returncode != 0 and proc.stdout.strip():
            res.error = json.loads(proc.stdout)
        return res


@pytest.fixture(scope="session")
def cnitool() -> str:
    """.build/cnitool, built (offline, from Debian's libcni) when missing or stale."""
    require_root()
    out = REPO / ".build" / "cnitool"
    proc = subprocess.run(
        [str(REPO / "tools" / "build-cnitool.sh"), str(out)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, f"tools/build-cnitool.sh failed:\n{proc.stderr}"
    return str(out)


@pytest.fixture
def env(make_netns: Callable[[str], str], tmp_path: Path, cnitool: str, plugin_dir: str) -> Env:
    return Env(make_netns, tmp_path, cnitool, plugin_dir)
