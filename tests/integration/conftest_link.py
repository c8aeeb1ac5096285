"""Helpers for test_link: a container/host pair of throwaway namespaces joined by a veth, the
state of the container side as `ip` reports it, and an ICMP echo from inside a namespace.

Nothing here touches the machine's own namespace: the veth is created inside the container
netns with its peer placed straight into the host netns.
"""

from __future__ import annotations

import json
import os
import select
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from cni_sysctl.netns import NetnsEntered
from tests.conftest import run, unique

NETNS_DIR = "/var/run/netns"


def ip_json(ns: str, *args: str) -> list[Any]:
    out = run("ip", "-j", *args, ns=ns).stdout
    return json.loads(out) if out.strip() else []


def write_sysctl(ns: str, ifname: str, family: str, param: str, value: str) -> None:
    """Write net.<family>.conf.<ifname>.<param> inside `ns`, as the plugin's procsys would."""
    with NetnsEntered(f"{NETNS_DIR}/{ns}"), open(f"/proc/sys/net/{family}/conf/{ifname}/{param}", "w") as f:
        f.write(value)


class Pair:
    """Container netns `ns` with `ifname` (a veth, up, addressed, routed), peer in `host`.

    Container: 10.N.0.2/24, 10.N.1.2/24 (metric 77, label), fd00:N::2/64, fd00:N:1::2/64
    (metric 88);
    routes: default via 10.N.0.1 and via fd00:N::1, 192.0.2.0/24 and 2001:db8:1::/64 in
    table 100, 198.51.100.0/24 and 2001:db8:2::/64 with metric 50 and mtu 1400, an onlink
    route, a multipath route; a permanent neighbour of each family and a proxy neighbour.
    Host: the gateways 10.N.0.1/24 and fd00:N::1/64.
    """

    def __init__(self, make_netns: Callable[[str], str], *, up: bool = True, keep_addr_on_down: bool = False) -> None:
        self.host = make_netns("lkh")
        self.ns = make_netns("lkc")
        self.ifname = unique("lc")
        self.peer = unique("lh")
        n = int.from_bytes(os.urandom(1), "big") % 200 + 20
        self.gw4, self.gw6 = f"10.{n}.0.1", f"fd00:{n}::1"
        self.addrs = [f"10.{n}.0.2/24", f"10.{n}.1.2/24", f"fd00:{n}::2/64", f"fd00:{n}:1::2/64"]
        c, h = self.ns, self.host
        run("ip", "link", "add", self.ifname, "type", "veth", "peer", "name", self.peer, "netns", h, ns=c)
        run("ip", "addr", "add", f"{self.gw4}/24", "dev", self.peer, ns=h)
        run("ip", "addr", "add", f"{self.gw6}/64", "dev", self.peer, "nodad", ns=h)
        run("ip", "link", "set", self.peer, "up", ns=h)
        if keep_addr_on_down:
            write_sysctl(c, self.ifname, "ipv6", "keep_addr_on_down", "1")
        if not up:
            run("ip", "addr", "add", self.addrs[0], "dev", self.ifname, ns=c)
            run("ip", "addr", "add", self.addrs[2], "dev", self.ifname, ns=c)
            return
        run("ip", "link", "set", self.ifname, "up", ns=c)
        run("ip", "addr", "add", self.addrs[0], "dev", self.ifname, ns=c)
        run("ip", "addr", "add", self.addrs[1], "dev", self.ifname, "metric", "77", "label", f"{self.ifname}:x",
            ns=c)  # fmt: skip
        for addr, extra in ((self.addrs[2], ()), (self.addrs[3], ("metric", "88"))):
            # settled as IPAM leaves them (ConfigureIface waits for DAD), without waiting here:
            # add without DAD, then `change` drops the nodad flag without starting DAD
            run("ip", "addr", "add", addr, "dev", self.ifname, *extra, "nodad", ns=c)
            run("ip", "addr", "change", addr, "dev", self.ifname, *extra, ns=c)
        dev = ("dev", self.ifname)
        for route in (
            ("default", "via", self.gw4),
            ("default", "via", self.gw6),
            ("192.0.2.0/24", "via", self.gw4, "table", "100"),
            ("2001:db8:1::/64", "via", self.gw6, "table", "100"),
            ("198.51.100.0/24", "via", self.gw4, "metric", "50", "mtu", "1400", "advmss", "1360"),
            ("2001:db8:2::/64", "via", self.gw6, "metric", "50", "mtu", "1400"),
            ("203.0.113.0/24", "via", f"10.{n}.9.9", *dev, "onlink"),
            ("198.18.0.0/15", "nexthop", "via", self.gw4, "nexthop", "via", f"10.{n}.0.3"),
        ):
            run("ip", "route", "add", *route, ns=c)
        run("ip", "neigh", "add", f"10.{n}.0.77", "lladdr", "02:00:00:00:00:77", *dev, "nud", "permanent", ns=c)
        run("ip", "neigh", "add", f"fd00:{n}::77", "lladdr", "02:00:00:00:00:77", *dev, "nud", "permanent", ns=c)
        run("ip", "neigh", "add", "proxy", f"fd00:{n}::88", *dev, ns=c)
        wait_settled(c, self.ifname)

    @property
    def path(self) -> str:
        return f"{NETNS_DIR}/{self.ns}"

    def entered(self) -> NetnsEntered:
        return NetnsEntered(self.path)

    def addresses(self) -> list[dict[str, Any]]:
        return [a for link in ip_json(self.ns, "addr", "show", "dev", self.ifname) for a in link["addr_info"]]

    def routes(self) -> list[dict[str, Any]]:
        return [
            *ip_json(self.ns, "-4", "route", "show", "table", "all", "dev", self.ifname),
            *ip_json(self.ns, "-6", "route", "show", "table", "all", "dev", self.ifname),
        ]

    def state(self) -> dict[str, object]:
        """Everything a down/up can change, with volatile fields normalised away."""
        link = ip_json(self.ns, "-d", "link", "show", "dev", self.ifname)[0]
        addrs = ip_json(self.ns, "-d", "addr", "show", "dev", self.ifname)[0]["addr_info"]
        routes = [
            *ip_json(self.ns, "-d", "-4", "route", "show", "table", "all"),
            *ip_json(self.ns, "-d", "-6", "route", "show", "table", "all"),
        ]
        neigh = ip_json(self.ns, "neigh", "show", "nud", "permanent") + ip_json(self.ns, "neigh", "show", "proxy")
        return {
            "flags": sorted(link["flags"]),
            "operstate": link["operstate"],
            "mtu": link["mtu"],
            "addresses": sorted(json.dumps(a, sort_keys=True) for a in addrs),
            "routes": sorted(json.dumps(r, sort_keys=True) for r in routes),
            "neighbours": sorted(json.dumps(r, sort_keys=True) for r in neigh),
        }


def wait_settled(ns: str, ifname: str, timeout: float = 5.0) -> None:
    """Wait until no address of `ifname` is tentative (the kernel's link-local in its DAD)."""
    deadline = time.monotonic() + timeout
    while True:
        links = ip_json(ns, "addr", "show", "dev", ifname)
        if not any(a.get("tentative") for a in links[0]["addr_info"]):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"addresses of {ifname} still tentative: {links}")
        time.sleep(0.05)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return int(~total & 0xFFFF)


def ping(ns: str, addr: str, timeout: float = 3.0) -> bool:
    """One ICMP(v6) echo from inside `ns` to `addr`, retried until `timeout`: answered?"""
    v6 = ":" in addr
    family = socket.AF_INET6 if v6 else socket.AF_INET
    proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
    ident = os.getpid() & 0xFFFF
    with NetnsEntered(f"{NETNS_DIR}/{ns}"):
        sock = socket.socket(family, socket.SOCK_RAW, proto)
    with sock:
        deadline = time.monotonic() + timeout
        seq = 0
        while time.monotonic() < deadline:
            seq += 1
            payload = b"cni-sysctl link test"
            header = struct.pack("!BBHHH", 128 if v6 else 8, 0, 0, ident, seq)
            packet = header + payload
            if not v6:  # the kernel fills in the ICMPv6 checksum itself
                packet = struct.pack("!BBHHH", 8, 0, _checksum(packet), ident, seq) + payload
            sock.sendto(packet, (addr, 0))
            until = min(deadline, time.monotonic() + 0.3)
            while (left := until - time.monotonic()) > 0:
                if not select.select([sock], [], [], left)[0]:
                    break
                data, src = sock.recvfrom(2048)
                if not v6:
                    data = data[(data[0] & 0x0F) * 4 :]
                kind, _, _, rid, rseq = struct.unpack_from("!BBHHH", data)
                if kind == (129 if v6 else 0) and rid == ident and rseq == seq and src[0] == addr:
                    return True
    return False
