"""Router advertisements against the sysctl write: the race users report against the tuning
plugin (containernetworking/plugins #160, #1075).

radvd runs inside the throwaway host netns on the bridge the conflists use, advertising a
SLAAC prefix (RA_PREFIX) and itself as a default router. A plugin that writes `accept_ra=0`
after the parent plugin brought the interface up is too late for an RA that came in between:
the SLAAC address and the RA default route it made stay. cni-sysctl bounces the link for
accept_ra (the down flushes what the RA made, the write happens while the link is down, the
up sends no router solicitation), so nothing learned from an RA remains, and later RAs are
ignored.

How wide the window is depends on the router. The kernel sends its router solicitation only
once the link-local address has passed DAD (~1 s after link-up), long after a plain bridge ->
tuning chain (~20 ms) has written; but an RA already on its way lands in the window. radvd
advertises on the bridge within a millisecond of a port coming up (observed here: it follows
the bridge's link changes), so with it on the bridge even the plain chain with tuning kept a
SLAAC address 10 times out of 10. As that rests on radvd's timing, the tuning assertions use
`await-ra` instead: a pass-through plugin written by this module, put between bridge and the
sysctl plugin, that returns prevResult once eth0 has received an RA. It stands for "whatever
ran between link-up and the sysctl write took longer than the RA took to come".
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Env, load_conflist, plugin_of

pytestmark = pytest.mark.e2e

RADVD = "/usr/sbin/radvd"
RA_PREFIX = ipaddress.ip_network("fd00:5ac::/64")  # advertised by radvd; no IPAM range is in it
BRIDGE = str(plugin_of(load_conflist("sysctl-bridge"), "bridge")["bridge"])
RA_WAIT = 12.0  # radvd advertises every 3-4 s, and answers a router solicitation at once

RADVD_CONF = f"""\
interface {BRIDGE} {{
    AdvSendAdvert on;
    MinRtrAdvInterval 3;
    MaxRtrAdvInterval 4;
    AdvDefaultLifetime 600;
    prefix {RA_PREFIX} {{
        AdvOnLink on;
        AdvAutonomous on;
    }};
}};
"""

# A CNI plugin that passes prevResult on once CNI_IFNAME in CNI_NETNS has received a router
# advertisement (at most 10 s); DEL and CHECK do nothing.
AWAIT_RA = f"""\
#!{sys.executable} -IS
import json, os, subprocess, sys, time

def ras():
    out = subprocess.run(
        ["nsenter", "--net=" + os.environ["CNI_NETNS"], "cat", "/proc/net/dev_snmp6/" + os.environ["CNI_IFNAME"]],
        capture_output=True, text=True, check=True,
    ).stdout
    return int(dict(line.split() for line in out.splitlines())["Icmp6InRouterAdvertisements"])

command = os.environ.get("CNI_COMMAND")
conf = json.load(sys.stdin) if command in ("ADD", "CHECK", "DEL") else {{}}
if command == "VERSION":
    print(json.dumps({{"cniVersion": "1.0.0", "supportedVersions": ["0.3.1", "0.4.0", "1.0.0"]}}))
elif command == "ADD":
    deadline = time.monotonic() + 10
    while ras() == 0:
        if time.monotonic() > deadline:
            print(json.dumps({{"cniVersion": conf["cniVersion"], "code": 11, "msg": "await-ra: no RA in 10 s"}}))
            sys.exit(1)
        time.sleep(0.05)
    print(json.dumps(conf["prevResult"]))
"""


# Router advertisements as fast as they go, from the bridge's link-local address to all nodes:
# the same RA as radvd's (default router for 600 s, RA_PREFIX on-link and autonomous), made by
# hand so that one is always on the wire, whatever the moment. argv: bridge, its link-local.
RA_FLOOD = f"""\
import socket, struct, sys, time
bridge, source = sys.argv[1], sys.argv[2]
index = socket.if_nametoindex(bridge)
prefix = socket.inet_pton(socket.AF_INET6, "{RA_PREFIX.network_address}")
pio = struct.pack("!BBBBIII", 3, 4, {RA_PREFIX.prefixlen}, 0xC0, 86400, 14400, 0) + prefix
ra = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 600, 0, 0) + pio
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
s.bind((source, 0, 0, index))
print("flooding", flush=True)
while True:
    s.sendto(ra, ("ff02::1", 0, 0, index))
    time.sleep(0.0001)
"""


def bridge(first: int, last: int) -> dict[str, Any]:
    """The shipped conflist's bridge element with its host-local ranges narrowed to hosts
    first..last: several networks share the bridge and its gateways (.1 and ::1) without
    handing out one address twice."""
    plugin = plugin_of(load_conflist("sysctl-bridge"), "bridge")
    plugin["ipam"]["ranges"] = [
        [{"subnet": "10.88.1.0/24", "rangeStart": f"10.88.1.{first}", "rangeEnd": f"10.88.1.{last}"}],
        [{"subnet": "fd00:88:1::/64", "rangeStart": f"fd00:88:1::{first:x}", "rangeEnd": f"fd00:88:1::{last:x}"}],
    ]
    return plugin


def wait_for(what: str, cond: Callable[[], bool], timeout: float = RA_WAIT) -> float:
    """Poll `cond` until true; returns the seconds it took."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.1)
    return time.monotonic() - start


def slaac(env: Env, ns: str) -> set[str]:
    """eth0's addresses in RA_PREFIX."""
    links = json.loads(env.in_ctr("ip", "-j", "-6", "addr", "show", "dev", "eth0", ns=ns).stdout)
    return {
        f"{a['local']}/{a['prefixlen']}"
        for link in links
        for a in link.get("addr_info", [])
        if ipaddress.ip_address(a["local"]) in RA_PREFIX
    }


def ra_routes(env: Env, ns: str) -> list[dict[str, Any]]:
    """Routes learned from an RA (proto ra), any table, any device."""
    routes: list[dict[str, Any]] = json.loads(
        env.in_ctr("ip", "-j", "-6", "route", "show", "table", "all", ns=ns).stdout
    )
    return [r for r in routes if r.get("protocol") == "ra"]


def ra_default(env: Env, ns: str) -> bool:
    return any(r.get("dst") == "default" and r.get("dev") == "eth0" for r in ra_routes(env, ns))


def ras_received(env: Env, ns: str) -> int:
    """Router advertisements eth0 has received, whatever accept_ra then made of them."""
    text = env.in_ctr("cat", "/proc/net/dev_snmp6/eth0", ns=ns).stdout
    return int(dict(line.split() for line in text.splitlines())["Icmp6InRouterAdvertisements"])


def static_defaults(env: Env, ns: str) -> set[str]:
    """Gateways of eth0's default routes that did not come from an RA (IPAM's), both families."""
    return {
        str(r.get("gateway"))
        for fam in ("4", "6")
        for r in env.routes(fam, ns=ns)
        if r.get("dst") == "default" and r.get("dev") == "eth0" and r.get("protocol") != "ra"
    }


def assert_ipam_kept(env: Env, ns: str, result: dict[str, Any], routes: bool = True) -> None:
    """eth0 has exactly its IPAM addresses (not tentative) and the IPAM default routes."""
    ips = result["ips"]
    ipam = {str(ip["address"]) for ip in ips}
    assert env.addresses(ns=ns) - slaac(env, ns) == ipam
    assert not env.tentative(ns=ns) & {a.split("/")[0] for a in ipam}
    if routes:
        assert static_defaults(env, ns) == {str(ip["gateway"]) for ip in ips}


@pytest.fixture
def ra_env(env: Env, tmp_path: Path) -> Iterator[Env]:
    """env, with radvd advertising RA_PREFIX on the bridge in its host netns, and a plugin dir
    holding cni-sysctl and await-ra.

    The bridge is made beforehand under the conflists' name (the bridge plugin takes an existing
    bridge as it is), with carrier from a spare veth port and no DAD on its link-local, so that
    radvd can advertise before the first ADD."""
    bin_dir = tmp_path / "cni-bin"
    bin_dir.mkdir()
    (bin_dir / "cni-sysctl").symlink_to(Path(env.plugin_dir) / "cni-sysctl")
    (bin_dir / "await-ra").write_text(AWAIT_RA)
    (bin_dir / "await-ra").chmod(0o755)
    env.plugin_dir = str(bin_dir)

    env.in_host("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")  # radvd advertises as a router
    env.in_host("ip", "link", "add", BRIDGE, "type", "bridge")
    env.in_host("sysctl", "-qw", f"net.ipv6.conf.{BRIDGE}.accept_dad=0")
    env.in_host("ip", "addr", "add", f"{RA_PREFIX[1]}/{RA_PREFIX.prefixlen}", "dev", BRIDGE)
    env.in_host("ip", "link", "add", "raport0", "master", BRIDGE, "up", "type", "veth", "peer", "name", "raport1")
    env.in_host("ip", "link", "set", "raport1", "up")
    env.in_host("ip", "link", "set", BRIDGE, "up")

    conf = tmp_path / "radvd.conf"
    conf.write_text(RADVD_CONF)
    log = tmp_path / "radvd.log"
    argv = ["ip", "netns", "exec", env.host, RADVD, "-n", "-C", str(conf), "-p", str(tmp_path / "radvd.pid")]
    argv += ["-m", "logfile", "-l", str(log), "-d", "1"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # radvd writes its pid file once it has read the config and opened its socket.
        wait_for("radvd pid file", lambda: (tmp_path / "radvd.pid").exists() or proc.poll() is not None, 5)
        if proc.poll() is not None:
            logged = log.read_text() if log.exists() else ""
            pytest.fail(f"radvd exited (rc {proc.returncode}):\n{proc.communicate()[0]}{logged}")
        yield env
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def ra_flood(env: Env) -> Iterator[None]:
    """RA_FLOOD running in env's host netns for the duration of the block."""
    lls = json.loads(env.in_host("ip", "-j", "-6", "addr", "show", "dev", BRIDGE, "scope", "link").stdout)
    # (iproute2 lists the addresses the filter left out as {})
    source = next(str(a["local"]) for link in lls for a in link["addr_info"] if a.get("scope") == "link")
    argv = ["ip", "netns", "exec", env.host, sys.executable, "-IS", "-c", RA_FLOOD, BRIDGE, source]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        started = proc.stdout.readline()
        assert started.strip() == "flooding", f"RA flood did not start:\n{started}{proc.communicate()[0]}"
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def test_accept_ra_0_learns_nothing_while_accept_ra_2_does(ra_env: Env) -> None:
    """The plain chains, side by side on one bridge and one radvd: accept_ra=2 gets the SLAAC
    address and the RA default route, so RAs do reach the bridge's ports; accept_ra=0 ends with
    neither, also after RAs it received once the ADD was done."""
    env = ra_env
    off = env.conflist([bridge(10, 49), {"type": "cni-sysctl", "sysctl": ["ipv6.conf.accept_ra=0"]}])
    on = env.conflist([bridge(50, 89), {"type": "cni-sysctl", "sysctl": ["ipv6.conf.accept_ra=2"]}])
    ctr_on = env.new_container()

    result_off = env.attach(off)
    ras_at_add = ras_received(env, env.ctr)
    result_on = env.attach(on, netns=env.netns_path(ctr_on))

    wait_for("accept_ra=2: SLAAC address", lambda: bool(slaac(env, ctr_on)))
    wait_for("accept_ra=2: RA default route", lambda: ra_default(env, ctr_on))
    assert env.sysctl("net/ipv6/conf/eth0/accept_ra", ns=ctr_on) == "2"
    # (its IPAM default routes: test_accept_ra_2_keeps_the_ipam_default_route_beside_the_ra_one)
    assert_ipam_kept(env, ctr_on, result_on, routes=False)

    # (With radvd's RA at link-up, ras_at_add is 1 as a rule: the RA came before the write and
    # the bounce flushed what it made. Not asserted: that is radvd's timing.)
    # An RA has reached the accept_ra=0 container since its ADD: it was ignored.
    wait_for("accept_ra=0: an RA after the ADD", lambda: ras_received(env, env.ctr) > ras_at_add)
    assert env.sysctl("net/ipv6/conf/eth0/accept_ra") == "0"
    assert slaac(env, env.ctr) == set()
    assert ra_routes(env, env.ctr) == []
    assert_ipam_kept(env, env.ctr, result_off)


def test_an_ra_before_the_write_tuning_keeps_it_cni_sysctl_does_not(ra_env: Env) -> None:
    """The reported race, made deterministic: an RA reaches eth0 between bridge's link-up and
    the sysctl plugin (await-ra holds the chain until one has). tuning then writes accept_ra=0
    in place and what the RA made stays; cni-sysctl, in the same place in the same chain,
    leaves nothing of it. cni-sysctl told not to bounce (linkBounce never) keeps it like
    tuning: the bounce is what removes it."""
    env = ra_env
    hold: dict[str, object] = {"type": "await-ra"}
    with_tuning = env.conflist(
        [bridge(10, 49), hold, {"type": "tuning", "sysctl": {"net.ipv6.conf.IFNAME.accept_ra": "0"}}]
    )
    with_ours = env.conflist([bridge(50, 89), hold, {"type": "cni-sysctl", "sysctl": ["ipv6.conf.accept_ra=0"]}])
    never = env.conflist(
        [bridge(90, 129), hold, {"type": "cni-sysctl", "linkBounce": "never", "sysctl": ["ipv6.conf.accept_ra=0"]}]
    )
    ctr_tuning = env.new_container()
    ctr_never = env.new_container()

    env.attach(with_tuning, netns=env.netns_path(ctr_tuning))
    assert ras_received(env, ctr_tuning) >= 1
    assert env.sysctl("net/ipv6/conf/eth0/accept_ra", ns=ctr_tuning) == "0"
    # The RA was processed under accept_ra=1 before tuning's write: its SLAAC address and its
    # default route outlive the write.
    assert slaac(env, ctr_tuning), "tuning: no SLAAC address although an RA came before its write"
    assert ra_default(env, ctr_tuning), f"tuning: no RA default route: {ra_routes(env, ctr_tuning)}"

    env.attach(never, netns=env.netns_path(ctr_never))
    assert ras_received(env, ctr_never) >= 1
    assert env.sysctl("net/ipv6/conf/eth0/accept_ra", ns=ctr_never) == "0"
    assert slaac(env, ctr_never), "linkBounce never: no SLAAC address although an RA came before the write"
    assert ra_default(env, ctr_never), f"linkBounce never: no RA default route: {ra_routes(env, ctr_never)}"

    result = env.attach(with_ours)
    ras_at_add = ras_received(env, env.ctr)
    assert ras_at_add >= 1, "await-ra let the chain go on before an RA came"
    assert env.sysctl("net/ipv6/conf/eth0/accept_ra") == "0"
    assert slaac(env, env.ctr) == set()
    assert ra_routes(env, env.ctr) == []
    assert_ipam_kept(env, env.ctr, result)

    # Later RAs change nothing: the leftovers of the in-place writes are there to stay (until
    # the RA's lifetimes run out), the bounced link stays clean.
    wait_for("cni-sysctl: an RA after the ADD", lambda: ras_received(env, env.ctr) > ras_at_add)
    assert slaac(env, env.ctr) == set()
    assert ra_routes(env, env.ctr) == []
    for ns in (ctr_tuning, ctr_never):
        assert slaac(env, ns)
        assert ra_default(env, ns)


def test_accept_ra_2_keeps_the_ipam_default_route_beside_the_ra_one(ra_env: Env) -> None:
    """With accept_ra=2 the bounce's link-up lets RAs in at once; one that comes before the
    bounce has put the IPAM routes back must not cost any of them. Both default routes end up
    there: IPAM's (`default via fd00:88:1::1 metric 1024`) and the RA's (`default via fe80::...
    proto ra metric 1024`); the kernel keeps both side by side.

    radvd alone hits that moment in about 6 attachments out of 10 (it advertises as the bridge
    port comes back); RA_FLOOD during the ADDs hits it every time (18 of 18 tried)."""
    env = ra_env
    lost = []
    results = []
    with ra_flood(env):
        for n, first in enumerate((10, 50, 90)):
            net = env.conflist([bridge(first, first + 39), {"type": "cni-sysctl", "sysctl": ["ipv6.conf.accept_ra=2"]}])
            ns = env.ctr if n == 0 else env.new_container()
            results.append((n, ns, env.attach(net, netns=env.netns_path(ns))))
    for n, ns, result in results:
        wait_for(f"attachment {n}: RA default route", partial(ra_default, env, ns))
        assert_ipam_kept(env, ns, result, routes=False)
        want = {str(ip["gateway"]) for ip in result["ips"]}
        if static_defaults(env, ns) != want:
            routes = env.in_ctr("ip", "-6", "route", "show", "default", ns=ns).stdout
            have = sorted(static_defaults(env, ns))
            lost.append(f"attachment {n}: IPAM default routes via {have}, want via {sorted(want)}:\n{routes}")
    assert not lost, "\n".join(lost)
