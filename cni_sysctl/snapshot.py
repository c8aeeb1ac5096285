"""What a link holds (addresses, routes, static neighbours, admin state), read over netlink, and
what prevResult says it must hold.

A snapshot is taken before the first change an ADD makes to a link and is what a failed ADD
returns the link to (bounce.py), and what the in-flight record keeps on disk (inflight.py):
every record keeps the bytes of the netlink message it was decoded from, so it can be stored
and decoded again exactly.
"""

from __future__ import annotations

import _socket as socket
import functools
import os
import struct

from . import rtnl
from .rtnl import (
    IFA_F_DADFAILED,
    IFA_F_HOMEADDRESS,
    IFA_F_MANAGETEMPADDR,
    IFA_F_MCAUTOJOIN,
    IFA_F_NODAD,
    IFA_F_NOPREFIXROUTE,
    IFA_F_PERMANENT,
    IFA_F_TEMPORARY,
    IFA_F_TENTATIVE,
    IFAPROT_KERNEL_LL,
    IFAPROT_KERNEL_RA,
    INFINITY_LIFE_TIME,
    NTF_PROXY,
    NUD_PERMANENT,
    RT_SCOPE_LINK,
    RTM_F_CLONED,
    RTM_GETADDR,
    RTM_GETNEIGH,
    RTM_GETROUTE,
    RTN_ANYCAST,
    RTN_BROADCAST,
    RTN_LOCAL,
    RTN_MULTICAST,
    RTNH_F_ONLINK,
    RTPROT_KERNEL,
    RTPROT_RA,
    RTPROT_REDIRECT,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .result import Expected
    from .rtnl import Rtnl
    from .rtnlmsg import Classes

# Address attributes that RTM_NEWADDR takes back (IFA_CACHEINFO is rebuilt from lifetimes).
_ADDR_ATTRS = ("IFA_ADDRESS", "IFA_LOCAL", "IFA_BROADCAST", "IFA_LABEL", "IFA_RT_PRIORITY", "IFA_PROTO")
# Route attributes that RTM_NEWROUTE takes back; the others are read-only (RTA_CACHEINFO, ...).
_ROUTE_ATTRS = (
    "RTA_DST",
    "RTA_SRC",
    "RTA_OIF",
    "RTA_GATEWAY",
    "RTA_PRIORITY",
    "RTA_PREFSRC",
    "RTA_METRICS",
    "RTA_MULTIPATH",
    "RTA_FLOW",
    "RTA_TABLE",
    "RTA_VIA",
    "RTA_NEWDST",
    "RTA_PREF",
    "RTA_ENCAP_TYPE",
    "RTA_ENCAP",
)
_KERNEL_ROUTE_TYPES = (RTN_LOCAL, RTN_BROADCAST, RTN_ANYCAST, RTN_MULTICAST)
# Address flags user space sets (the others, tentative, deprecated, dadfailed, ..., are the
# kernel's report of the address's state).
SETTABLE_FLAGS = IFA_F_NODAD | IFA_F_HOMEADDRESS | IFA_F_MANAGETEMPADDR | IFA_F_NOPREFIXROUTE | IFA_F_MCAUTOJOIN


@functools.cache
def kernel_marks_origin() -> bool:
    """Whether the kernel tags the addresses it makes with IFA_PROTO (Linux >= 5.18); then an
    address without the attribute was added by user space (the kernel omits proto 0)."""
    major, _, rest = os.uname().release.partition(".")
    minor = "".join(c for c in rest.split(".")[0] if c.isdigit())
    return major.isdigit() and minor != "" and (int(major), int(minor)) >= (5, 18)


class Addr:
    """One address of a link, with what RTM_NEWADDR needs to re-create it."""

    __slots__ = ("family", "prefixlen", "scope", "index", "flags", "attrs", "preferred", "valid", "local", "key",
                 "proto", "raw")  # fmt: skip

    def __init__(self, msg: Any) -> None:
        self.raw = rtnl.raw(msg)
        self.family: int = msg["family"]
        self.prefixlen: int = msg["prefixlen"]
        self.scope: int = msg["scope"]
        self.index: int = msg["index"]
        flags = msg.get_attr("IFA_FLAGS")
        self.flags: int = msg["flags"] if flags is None else flags
        self.attrs: list[tuple[str, object]] = []
        for name in _ADDR_ATTRS:
            value = msg.get_attr(name)
            if value is not None:
                self.attrs.append((name, value))
        cache = msg.get_attr("IFA_CACHEINFO")
        self.preferred: int = INFINITY_LIFE_TIME if cache is None else cache["ifa_preferred"]
        self.valid: int = INFINITY_LIFE_TIME if cache is None else cache["ifa_valid"]
        self.local: str = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
        self.key: tuple[int, bytes, int] = (self.family, socket.inet_pton(self.family, self.local), self.prefixlen)
        self.proto: int | None = msg.get_attr("IFA_PROTO")

    @property
    def tentative(self) -> bool:
        return bool(self.flags & IFA_F_TENTATIVE)

    @property
    def dad_failed(self) -> bool:
        return bool(self.flags & IFA_F_DADFAILED)

    @property
    def kernel_link_local(self) -> bool:
        """Made by the kernel's link-local generation (addr_gen_mode), not by IPAM."""
        if self.family != socket.AF_INET6 or not self.key[1].startswith(b"\xfe\x80"):
            return False
        if self.proto is not None or kernel_marks_origin():
            return self.proto == IFAPROT_KERNEL_LL
        # older kernels do not say who made an address: any fe80::/64 counts as generated
        return self.scope == RT_SCOPE_LINK and self.prefixlen == 64

    @property
    def autoconf(self) -> bool:
        """Made by SLAAC from router advertisements, or a privacy address: the kernel's."""
        if self.family != socket.AF_INET6 or self.kernel_link_local:
            return False
        if self.flags & IFA_F_TEMPORARY:
            return True
        if self.proto is not None or kernel_marks_origin():
            return self.proto == IFAPROT_KERNEL_RA
        # older kernels: SLAAC addresses are the ones with lifetimes (an address that user
        # space gave lifetimes, e.g. from DHCPv6, is counted with them and not re-added)
        return not self.flags & IFA_F_PERMANENT

    def describe(self, ifname: str) -> str:
        return f"address {self.local}/{self.prefixlen} on {ifname}"

    def message(self, rt: Classes, flags: int | None = None) -> Any:
        flags = self.flags if flags is None else flags
        msg = rt.ifaddrmsg()
        msg["family"] = self.family
        msg["prefixlen"] = self.prefixlen
        msg["flags"] = flags & 0xFF
        msg["scope"] = self.scope
        msg["index"] = self.index
        attrs: list[tuple[str, object]] = [*self.attrs, ("IFA_FLAGS", flags)]
        if (self.preferred, self.valid) != (INFINITY_LIFE_TIME, INFINITY_LIFE_TIME):
            lifetimes = {"ifa_preferred": self.preferred, "ifa_valid": self.valid, "cstamp": 0, "tstamp": 0}
            attrs.append(("IFA_CACHEINFO", lifetimes))
        msg["attrs"] = attrs
        return msg


def _plain(value: Any) -> Any:
    """A decoded pyroute2 attribute value as plain data that pyroute2 encodes again."""
    if isinstance(value, dict):
        out = {k: _plain(v) for k, v in value.items() if k not in ("header", "attrs")}
        if "attrs" in value:
            out["attrs"] = [[slot[0], _plain(slot[1])] for slot in value["attrs"]]
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _attr(obj: Any, name: str) -> Any:
    for slot in obj.get("attrs", ()):
        if slot[0] == name:
            return slot[1]
    return None


class Route:
    """One route through a link, with what RTM_NEWROUTE needs to re-create it."""

    __slots__ = ("fields", "attrs", "table", "dst", "priority", "oifs", "gateways", "nh_id", "raw")

    def __init__(self, msg: Any) -> None:
        self.raw = rtnl.raw(msg)
        self.fields: dict[str, int] = {
            name: msg[name] for name in ("family", "dst_len", "src_len", "tos", "table", "proto", "scope", "type")
        }
        # what a user can ask for; RTNH_F_LINKDOWN, DEAD, OFFLOAD... are the kernel's to set
        self.fields["flags"] = msg["flags"] & RTNH_F_ONLINK
        self.attrs: list[tuple[str, Any]] = []
        for name in _ROUTE_ATTRS:
            value = msg.get_attr(name)
            if value is not None:
                self.attrs.append((name, _plain(value)))
        self.table: int = msg.get_attr("RTA_TABLE") or msg["table"]
        self.dst: str | None = msg.get_attr("RTA_DST")
        self.priority: int = msg.get_attr("RTA_PRIORITY") or 0
        self.nh_id: int | None = msg.get_attr("RTA_NH_ID")
        hops: list[dict[str, Any]] = dict(self.attrs).get("RTA_MULTIPATH") or []
        for hop in hops:
            hop["flags"] &= RTNH_F_ONLINK
        oif, gateway = msg.get_attr("RTA_OIF"), msg.get_attr("RTA_GATEWAY")
        self.oifs: set[int] = {hop["oif"] for hop in hops} | ({oif} if oif is not None else set())
        gateways = [_attr(hop, "RTA_GATEWAY") for hop in hops] + [gateway]
        self.gateways: set[bytes] = {socket.inet_pton(self.fields["family"], g) for g in gateways if g}

    @property
    def kernel_owned(self) -> bool:
        """Made again by the kernel at link-up from addresses and sysctls, or learned from RAs."""
        return self.derived or self.fields["proto"] == RTPROT_KERNEL

    @property
    def derived(self) -> bool:
        """Follows an address or a router advertisement; never added back by hand."""
        return self.fields["type"] in _KERNEL_ROUTE_TYPES or self.fields["proto"] in (RTPROT_RA, RTPROT_REDIRECT)

    def key(self) -> tuple[object, ...]:
        f = self.fields
        return (
            f["family"], self.table, self.dst, f["dst_len"], f["src_len"], f["tos"], self.priority, f["type"],
            tuple(sorted(self.gateways)), tuple(sorted(self.oifs)),
        )  # fmt: skip

    def describe(self) -> str:
        dst = f"{self.dst}/{self.fields['dst_len']}" if self.dst else "default"
        family = self.fields["family"]
        via = "".join(f" via {socket.inet_ntop(family, g)}" for g in sorted(self.gateways))
        table = "" if self.table == 254 else f" table {self.table}"
        return f"route {dst}{via}{table}"

    def message(self, rt: Classes) -> Any:
        msg = rt.rtmsg()
        for name, value in self.fields.items():
            msg[name] = value
        msg["attrs"] = [list(attr) for attr in self.attrs]
        return msg


class Neigh:
    """A static neighbour entry (permanent ARP/NDP, or proxy): a down deletes them."""

    __slots__ = ("fields", "attrs", "dst", "raw")

    def __init__(self, msg: Any) -> None:
        self.raw = rtnl.raw(msg)
        self.fields: dict[str, int] = {name: msg[name] for name in ("family", "ifindex", "state", "flags", "ndm_type")}
        self.attrs: list[tuple[str, Any]] = []
        for name in ("NDA_DST", "NDA_LLADDR", "NDA_PROTOCOL"):
            value = msg.get_attr(name)
            if value is not None:
                self.attrs.append((name, value))
        self.dst = str(msg.get_attr("NDA_DST"))

    def describe(self, ifname: str) -> str:
        kind = "proxy neighbour" if self.fields["flags"] & NTF_PROXY else "permanent neighbour"
        return f"{kind} {self.dst} on {ifname}"

    def message(self, rt: Classes) -> Any:
        msg = rt.ndmsg()
        for name, value in self.fields.items():
            msg[name] = value
        msg["attrs"] = [list(attr) for attr in self.attrs]
        return msg


class LinkSnapshot:
    """What one link held before the first change."""

    __slots__ = ("ifname", "index", "was_up", "addrs", "routes", "neighs")

    def __init__(
        self,
        ifname: str,
        index: int,
        was_up: bool,
        addrs: list[Addr],
        routes: list[Route],
        neighs: list[Neigh],
    ) -> None:
        self.ifname = ifname
        self.index = index
        self.was_up = was_up
        self.addrs = addrs
        self.routes = routes
        self.neighs = neighs

    def to_json(self) -> dict[str, object]:
        return {
            "ifname": self.ifname,
            "index": self.index,
            "was_up": self.was_up,
            "addrs": [a.raw.hex() for a in self.addrs],
            "routes": [r.raw.hex() for r in self.routes],
            "neighs": [n.raw.hex() for n in self.neighs],
        }

    @classmethod
    def from_json(cls, rt: Classes, obj: dict[str, Any]) -> LinkSnapshot:
        """The snapshot as stored by to_json (raises ValueError/KeyError/TypeError if damaged)."""

        def decode(msg_cls: Any, hexed: object) -> Any:
            if not isinstance(hexed, str):
                raise TypeError("a stored message is not a string")
            msg = msg_cls(bytes.fromhex(hexed))
            msg.decode()
            return msg

        return cls(
            str(obj["ifname"]),
            int(obj["index"]),
            bool(obj["was_up"]),
            [Addr(decode(rt.ifaddrmsg, h)) for h in obj["addrs"]],
            [Route(decode(rt.rtmsg, h)) for h in obj["routes"]],
            [Neigh(decode(rt.ndmsg, h)) for h in obj["neighs"]],
        )


def dump_addrs(nl: Rtnl) -> dict[int, list[Addr]]:
    out: dict[int, list[Addr]] = {}
    for msg in nl.dump(nl.rt.ifaddrmsg, RTM_GETADDR):
        if msg["family"] in (socket.AF_INET, socket.AF_INET6):
            out.setdefault(msg["index"], []).append(Addr(msg))
    return out


def _route_kept(data: bytes, offset: int) -> bool:
    """Whether a route message (struct rtmsg after the 16-byte nlmsghdr) is one a Route is made
    of: IPv4 or IPv6, not a cache clone, not derived (Route.derived: the kernel makes local,
    broadcast, anycast and multicast routes from addresses, and RA and redirect routes come
    from the network; no target restores them and no check looks at them). Most routes of a
    container netns are derived; not decoding them halves the cost of a dump."""
    if len(data) < offset + 28:
        return True  # let the decoder report it
    family, _, _, _, _, proto, _, kind, flags = struct.unpack_from("=8BI", data, offset + 16)
    return (
        family in (socket.AF_INET, socket.AF_INET6)
        and not flags & RTM_F_CLONED
        and kind not in _KERNEL_ROUTE_TYPES
        and proto not in (RTPROT_RA, RTPROT_REDIRECT)
    )


def dump_routes(nl: Rtnl) -> list[Route]:
    """Routes of both families in all tables (AF_UNSPEC dumps every family and table), but
    those derived from addresses or the network (_route_kept)."""
    return [Route(msg) for msg in nl.dump(nl.rt.rtmsg, RTM_GETROUTE, keep=_route_kept)]


def dump_neighs(nl: Rtnl) -> list[Neigh]:
    out = []
    for flags in (0, NTF_PROXY):
        for msg in nl.dump(nl.rt.ndmsg, RTM_GETNEIGH, flags=flags):
            if msg["family"] in (socket.AF_INET, socket.AF_INET6) and (flags or msg["state"] & NUD_PERMANENT):
                out.append(Neigh(msg))
    return out


def take(nl: Rtnl, links: list[tuple[str, int, bool]]) -> list[LinkSnapshot]:
    """Snapshot each (ifname, index, is_up) link in the current netns."""
    addrs = dump_addrs(nl)
    routes = dump_routes(nl)
    neighs = dump_neighs(nl)
    return [
        LinkSnapshot(
            ifname,
            index,
            up,
            addrs.get(index, []),
            [route for route in routes if index in route.oifs],
            [neigh for neigh in neighs if neigh.fields["ifindex"] == index],
        )
        for ifname, index, up in links
    ]


def in_kernel_order(addrs: list[Addr]) -> list[Addr]:
    """The order in which to add `addrs` so that the kernel lists them as in the snapshot: it
    appends IPv4 addresses but puts a new IPv6 address before the others of its scope. Order
    matters: with equal preference, the first listed address is the source address chosen."""
    v6 = [addr for addr in addrs if addr.family == socket.AF_INET6]
    return [addr for addr in addrs if addr.family != socket.AF_INET6] + v6[::-1]


def missing_expected(ifname: str, expected: Expected, have: dict[Any, Addr], routes: list[Route]) -> list[str]:
    """What of prevResult's addresses and routes `ifname` lacks, or holds unusable (tentative).

    prevResult was validated before any change (result.validate): every address and route
    parses. Parsed with the stdlib's ipaddress (netaddr would cost ~35 ms of imports)."""
    import ipaddress

    problems = []
    for cidr in expected.addresses:
        iface = ipaddress.ip_interface(cidr)
        family = socket.AF_INET6 if iface.version == 6 else socket.AF_INET
        now = have.get((family, iface.ip.packed, iface.network.prefixlen))
        if now is None:
            problems.append(f"prevResult address {cidr} missing from {ifname}")
        elif now.tentative:
            problems.append(f"prevResult address {cidr} on {ifname} still tentative")
    for dst, gw in expected.routes:
        net = ipaddress.ip_network(dst, strict=False)
        want_gw = ipaddress.ip_address(gw).packed if gw else None
        family = socket.AF_INET6 if net.version == 6 else socket.AF_INET
        for route in routes:
            if route.derived:
                continue  # prevResult's routes are IPAM's: one learned from an RA does not count
            if route.fields["family"] != family or route.fields["dst_len"] != net.prefixlen:
                continue
            at = route.dst or str(net.network_address)
            same = ipaddress.ip_network(f"{at}/{net.prefixlen}", strict=False) == net
            if same and (want_gw is None or want_gw in route.gateways):
                break
        else:
            problems.append(f"prevResult route {dst}{f' via {gw}' if gw else ''} missing from {ifname}")
    return problems


def expected_problems(nl: Rtnl, expected: dict[str, Expected], index_of: dict[str, int]) -> list[str]:
    """What prevResult's addresses and routes lack in the current netns, for every interface."""
    addrs = dump_addrs(nl)
    routes = dump_routes(nl)
    problems: list[str] = []
    for ifname, want in expected.items():
        index = index_of[ifname]
        have = {addr.key: addr for addr in addrs.get(index, [])}
        problems += missing_expected(ifname, want, have, [r for r in routes if index in r.oifs])
    return problems


__all__ = ["IFA_F_DADFAILED", "IFA_F_NODAD", "SETTABLE_FLAGS", "Addr", "LinkSnapshot", "Neigh", "Route"]
