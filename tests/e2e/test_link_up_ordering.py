"""The contract's "Link-up ordering", end to end: cni-sysctl chained after bridge (+ host-local
IPv4 and IPv6) through cnitool, next to the Debian tuning plugin in the same place.

addr_gen_mode acts only when the link comes up: bridge leaves eth0 up with its EUI-64 `fe80::`
already made, so a plugin that writes addr_gen_mode=1 in place (tuning, or cni-sysctl with
linkBounce never) leaves that link-local there. cni-sysctl's bounce (down, write, up, restore)
ends with no link-local and everything IPAM gave back in place and usable.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from tests.e2e.conftest import Env, load_conflist, plugin_of

pytestmark = pytest.mark.e2e

BRIDGE = plugin_of(load_conflist("sysctl-bridge"), "bridge")


def ours(sysctl: list[str], bounce: str | None = None) -> dict[str, object]:
    plugin: dict[str, object] = {"type": "cni-sysctl", "sysctl": sysctl}
    if bounce is not None:
        plugin["linkBounce"] = bounce
    return plugin


def wait_settled(env: Env, ns: str | None = None, timeout: float = 5.0) -> None:
    """Wait until no address of eth0 is tentative (a regenerated link-local runs DAD)."""
    deadline = time.monotonic() + timeout
    while env.tentative(ns=ns):
        assert time.monotonic() < deadline, f"still tentative after {timeout} s: {env.tentative(ns=ns)}"
        time.sleep(0.05)


def assert_ipam_in_place(env: Env, result: dict[str, Any], ns: str | None = None, ping: bool = True) -> None:
    """eth0 up with exactly its IPAM addresses of both families (none tentative), the IPAM
    default routes of both families, and (if `ping`) both gateways answering."""
    ips = result["ips"]
    assert isinstance(ips, list)
    wanted = {str(ip["address"]) for ip in ips}
    assert {":" in a for a in wanted} == {True, False}, f"want IPv4 and IPv6 from IPAM: {wanted}"
    assert env.link_up(ns=ns)
    assert env.addresses(ns=ns) == wanted
    assert not env.tentative(ns=ns) & {a.split("/")[0] for a in wanted}, "an IPAM address is tentative"
    gateways = {str(ip["gateway"]) for ip in ips}
    assert env.default_gateways(ns=ns) == gateways
    if ping:
        for gw in sorted(gateways):
            assert env.ping(gw, ns=ns), f"gateway {gw} does not answer"


def eui64_link_local(mac: str) -> str:
    """The modified EUI-64 link-local of a MAC (RFC 4291 2.5.1), as the kernel makes it."""
    b = [int(x, 16) for x in mac.split(":")]
    b[0] ^= 0x02
    words = [(b[0] << 8) | b[1], (b[2] << 8) | 0xFF, 0xFE00 | b[3], (b[4] << 8) | b[5]]
    return "fe80::" + ":".join(f"{w:x}" for w in words)


def test_addr_gen_mode_1_cni_sysctl_removes_the_link_local_tuning_cannot(env: Env) -> None:
    """Side by side, each in its own host+container netns, the same bridge config followed by
    addr_gen_mode=1: from cni-sysctl, then from tuning. Both write the value; only the bounce
    makes it act, so only cni-sysctl's eth0 ends without an fe80:: address."""
    net = env.conflist([BRIDGE, ours(["ipv6.conf.addr_gen_mode=1"])])
    result = env.attach(net)
    assert env.sysctl("net/ipv6/conf/eth0/addr_gen_mode") == "1"
    assert env.link_local() == set(), "cni-sysctl: eth0 still has an fe80:: address"
    assert_ipam_in_place(env, result)

    side = env.sibling("tuning")
    tuning = side.conflist([BRIDGE, {"type": "tuning", "sysctl": {"net.ipv6.conf.IFNAME.addr_gen_mode": "1"}}])
    tuning_result = side.attach(tuning)
    assert side.sysctl("net/ipv6/conf/eth0/addr_gen_mode") == "1"
    tuning_ll = side.link_local()
    assert len(tuning_ll) == 1, tuning_ll
    assert next(iter(tuning_ll)).startswith("fe80:"), tuning_ll
    assert_ipam_in_place(side, tuning_result)

    # ...and it is the EUI-64 one bridge's link-up made before tuning's write.
    mac = json.loads(side.in_ctr("ip", "-j", "link", "show", "dev", "eth0").stdout)[0]["address"]
    assert tuning_ll == {eui64_link_local(mac)}


def test_addr_gen_mode_1_without_a_bounce_leaves_the_link_local(env: Env) -> None:
    """linkBounce never: the value is written in place, as tuning does, and the fe80:: address
    stays. The bounce is what removes it."""
    net = env.conflist([BRIDGE, ours(["ipv6.conf.addr_gen_mode=1"], bounce="never")])
    result = env.attach(net)
    assert env.sysctl("net/ipv6/conf/eth0/addr_gen_mode") == "1"
    assert len(env.link_local()) == 1, env.link_local()
    assert_ipam_in_place(env, result, ping=False)


# -- linkBounce always with a key that needs no bounce ---------------------------------------


def snapshot(env: Env, ns: str | None = None) -> dict[str, Any]:
    """eth0's addresses and the netns's routes (all tables, both families) as `ip -j` prints
    them, with what differs between two attachments of one config blanked: MAC and the
    link-local made from it, interface indexes, the host-side peer. Lists are sorted, so only
    content counts, not dump order."""
    mac = json.loads(env.in_ctr("ip", "-j", "link", "show", "dev", "eth0", ns=ns).stdout)[0]["address"]
    lls = env.link_local(ns=ns)
    dumps = {
        "addr": env.in_ctr("ip", "-j", "addr", "show", "dev", "eth0", ns=ns).stdout,
        "route4": env.in_ctr("ip", "-j", "-4", "route", "show", "table", "all", ns=ns).stdout,
        "route6": env.in_ctr("ip", "-j", "-6", "route", "show", "table", "all", ns=ns).stdout,
    }
    out: dict[str, Any] = {}
    for key, dump in dumps.items():
        text = dump.replace(mac, "<mac>")
        for ll in lls:
            text = re.sub(rf'"{re.escape(ll)}"', '"<link-local>"', text)
        out[key] = normalise(json.loads(text))
    return out


DROP = {"ifindex", "link_index", "link_netnsid", "link", "altnames"}


def normalise(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: normalise(v) for k, v in sorted(obj.items()) if k not in DROP}
    if isinstance(obj, list):
        return sorted((normalise(v) for v in obj), key=lambda v: json.dumps(v, sort_keys=True))
    return obj


def carrier_downs(env: Env, ns: str | None = None) -> int:
    return int(env.in_ctr("cat", "/sys/class/net/eth0/carrier_down_count", ns=ns).stdout)


def test_always_with_rp_filter_keeps_every_address_and_route(env: Env) -> None:
    """linkBounce always forces a bounce for ipv4.conf.rp_filter, a per-packet key: eth0 ends
    with the same addresses and routes, every table, both families, as (a) a bridge-only
    attachment of the same config and (b) the very same link just before cni-sysctl ran."""
    net = env.conflist([BRIDGE, ours(["ipv4.conf.rp_filter=2"], bounce="always")])
    result = env.attach(net)
    assert env.sysctl("net/ipv4/conf/eth0/rp_filter") == "2"
    assert_ipam_in_place(env, result)

    # (a) against bridge alone, in a sibling world.
    ref = env.sibling("bridge-only")
    ref.attach(ref.conflist([BRIDGE]))
    wait_settled(env)
    wait_settled(ref)
    assert snapshot(env) == snapshot(ref)

    # (b) before and after on one link: bridge alone through cnitool, then the installed
    # cni-sysctl given bridge's result as prevResult, the way libcni runs the next plugin.
    pre = env.sibling("pre-state")
    bridge_result = pre.attach(pre.conflist([BRIDGE]))
    wait_settled(pre)
    before = snapshot(pre)
    downs = carrier_downs(pre)
    config = {"cniVersion": "1.0.0", "name": "pre-state", **ours(["ipv4.conf.rp_filter=2"], "always")}
    ran = pre.plugin("ADD", {**config, "prevResult": bridge_result})
    assert ran.rc == 0, f"{ran.stdout}\n{ran.stderr}"
    assert json.loads(ran.stdout) == bridge_result
    assert carrier_downs(pre) > downs, "linkBounce always did not bounce the link"
    assert pre.sysctl("net/ipv4/conf/eth0/rp_filter") == "2"
    wait_settled(pre)
    assert snapshot(pre) == before
    assert_ipam_in_place(pre, bridge_result)
