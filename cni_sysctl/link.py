"""The link bounce: snapshot, down, up, restore, over netlink (the only module using pyroute2).

Some per-interface sysctls only act when the link comes up or its inet6 device is set up
(BOUNCE_PARAMS; docs/link-bounce.md gives the kernel facts). When the chained plugin left the
interface up, the plugin bounces it::

    bounce = Bounce(["eth0"], expected)   # inside NetnsEntered(...)
    bounce.down()      # snapshot addresses, routes and static neighbours; set the links down
    ...                # the caller writes the sysctls
    bounce.up()        # up; restore what the down flushed; verify against prevResult

A failure in up() returns the netns to its snapshot before raising; the caller calls
restore() after rolling back its own writes (it is idempotent), and after a failure of its
own between down() and up().

Everything here runs in the calling thread's current netns: build the Bounce inside
`NetnsEntered`. Sockets are created lazily, after entering. The cheap link state (is_up,
set_up, BOUNCE_PARAMS: one ioctl, no pyroute2) lives in linkstate.py and is re-exported here;
an ADD without a bounce never imports this module.

Cost: a Bounce imports only pyroute2's rtnetlink message classes (for encoding and decoding)
and speaks netlink over a plain socket; pyroute2's own sockets and IPRoute would add
100-170 ms of imports.
"""

from __future__ import annotations

import _socket as socket  # the C module behind `socket`, whose Python layer costs ~3 ms of imports
import errno
import functools
import os
import struct

from .errors import CniError, LinkError, LinkNotFoundError, RollbackError, TryAgainError
from .linkstate import BOUNCE_PARAMS, admin_state, is_up, set_up

__all__ = ["BOUNCE_PARAMS", "Bounce", "admin_state", "is_up", "set_up"]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence
    from types import ModuleType, SimpleNamespace
    from typing import Any

    from .result import Expected

# Kernel UAPI values (linux/if.h, sockios.h, netlink.h, rtnetlink.h, if_addr.h, neighbour.h).
NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP_INTR = 0x10
NLM_F_DUMP = 0x300
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLMSG_ERROR = 2
NLMSG_DONE = 3
_NLMSGHDR = "=IHHII"  # length, type, flags, seq, pid: read to pick the message class

RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
RTM_NEWNEIGH, RTM_GETNEIGH = 28, 30

IFA_F_NODAD = 0x02
IFA_F_DADFAILED = 0x08
IFA_F_TEMPORARY = 0x01  # IPv6; IFA_F_SECONDARY for IPv4 (kernel-set either way)
IFA_F_TENTATIVE = 0x40
IFA_F_PERMANENT = 0x80
IFA_F_HOMEADDRESS = 0x10
IFA_F_MANAGETEMPADDR = 0x100
IFA_F_NOPREFIXROUTE = 0x200
IFA_F_MCAUTOJOIN = 0x400
IFAPROT_KERNEL_RA = 2
IFAPROT_KERNEL_LL = 3
RT_SCOPE_LINK = 253
INFINITY_LIFE_TIME = 0xFFFFFFFF

RTPROT_REDIRECT, RTPROT_KERNEL, RTPROT_RA = 1, 2, 9
RTN_LOCAL, RTN_BROADCAST, RTN_ANYCAST, RTN_MULTICAST = 2, 3, 4, 5
RTNH_F_ONLINK = 0x4
RTM_F_CLONED = 0x200
NUD_PERMANENT = 0x80
NTF_PROXY = 0x08

# Address attributes that RTM_NEWADDR takes back (IFA_CACHEINFO is rebuilt from lifetimes).
_ADDR_ATTRS = ("IFA_ADDRESS", "IFA_LOCAL", "IFA_BROADCAST", "IFA_LABEL", "IFA_RT_PRIORITY", "IFA_PROTO")
# Route attributes that RTM_NEWROUTE takes back; the others are read-only (RTA_CACHEINFO,
# RTA_TABLE is kept for tables above 255, RTA_PREF is the router preference of RA routes).
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
_DUMP_TRIES = 5
_REPLY_TIMEOUT = 10.0  # seconds
_RECV_SIZE = 65536  # the kernel fills dump datagrams up to 32 KiB

# --- pyroute2, loaded only for a bounce -------------------------------------------------------

_LOADED: dict[str, SimpleNamespace] = {}

# Attributes that older pyroute2 releases do not know, by the kernel number of the first one.
# Decoded as UNKNOWN they would be lost (IFA_RT_PRIORITY is the metric of the prefix route).
_IFA_TAIL = (9, (("IFA_RT_PRIORITY", "uint32"), ("IFA_TARGET_NETNSID", "hex"), ("IFA_PROTO", "uint8")))
_RTA_TAIL = (
    24,
    (
        ("RTA_PAD", "hex"),
        ("RTA_UID", "uint32"),
        ("RTA_TTL_PROPAGATE", "uint8"),
        ("RTA_IP_PROTO", "uint8"),
        ("RTA_SPORT", "uint16"),
        ("RTA_DPORT", "uint16"),
        ("RTA_NH_ID", "uint32"),
    ),
)
_NDA_TAIL = (10, (("NDA_LINK_NETNSID", "uint32"), ("NDA_SRC_VNI", "uint32"), ("NDA_PROTOCOL", "uint8")))


def _complete(base: Any, tail: tuple[int, tuple[tuple[str, str], ...]]) -> Any:
    """`base`, or a subclass of it whose nla_map also knows the attributes of `tail`."""
    first, entries = tail
    names = [entry[0] for entry in base.nla_map]
    if isinstance(names[0], int) or not first <= len(names) < first + len(entries):
        return base
    nla_map = (*base.nla_map, *entries[len(names) - first :])
    cls = type(base.__name__, (base,), {"__slots__": (), "nla_map": nla_map})
    # compile now, or the parent's compiled table may be inherited (compile_nla up to 0.7.x)
    probe = cls()
    (getattr(probe, "compile_nla_table", None) or probe.compile_nla)()
    return cls


def _import_without_package_init(names: Iterable[str]) -> None:
    """Import pyroute2 submodules without running pyroute2/__init__.py.

    That file imports every API of the library (IPRoute, NDB, IPDB, asyncio, ...): ~150 ms
    of the ~185 ms that `from pyroute2 import IPRoute` costs. The package module is created
    from its spec but not executed; the first access to a name it lacks (`from pyroute2
    import IPRoute`, `pyroute2.__version__`) imports the submodule of that name or, failing
    that, runs the real __init__ in place, so the rest of the process sees pyroute2 as usual.
    """
    import importlib
    import importlib.util
    import sys

    if "pyroute2" not in sys.modules:
        spec = importlib.util.find_spec("pyroute2")
        if spec is None or spec.loader is None or spec.submodule_search_locations is None:
            raise ModuleNotFoundError("No module named 'pyroute2'", name="pyroute2")
        package = importlib.util.module_from_spec(spec)
        loader = spec.loader

        def on_demand(attr: str) -> object:
            if not attr.startswith("__"):
                try:
                    return importlib.import_module(f"pyroute2.{attr}")
                except ModuleNotFoundError as exc:
                    if exc.name != f"pyroute2.{attr}":
                        raise
            if package.__dict__.pop("__getattr__", None) is not None:
                loader.exec_module(package)
            try:
                return package.__dict__[attr]
            except KeyError:
                raise AttributeError(f"module 'pyroute2' has no attribute {attr!r}") from None

        package.__dict__["__getattr__"] = on_demand
        sys.modules["pyroute2"] = package
    try:
        for name in names:
            importlib.import_module(name)
    except BaseException:
        if getattr(sys.modules.get("pyroute2"), "__getattr__", None) is not None:
            for mod in [m for m in sys.modules if m == "pyroute2" or m.startswith("pyroute2.")]:
                del sys.modules[mod]
        raise


def _rtnl() -> SimpleNamespace:
    """pyroute2's rtnetlink message classes, imported on first use."""
    if not _LOADED:
        import sys
        from types import SimpleNamespace

        modules = (
            "pyroute2.netlink",
            "pyroute2.netlink.exceptions",
            "pyroute2.netlink.rtnl.ifaddrmsg",
            "pyroute2.netlink.rtnl.rtmsg",
            "pyroute2.netlink.rtnl.ndmsg",
        )
        try:
            _import_without_package_init(modules)
        except ImportError:
            # A pyroute2 whose layout the shortcut does not fit: the ordinary (slow) import.
            import importlib

            try:
                for name in modules:
                    importlib.import_module(name)
            except ImportError as exc:
                raise LinkError("cannot bounce the link: pyroute2 is not importable", f"{exc}") from None
        mods: dict[str, ModuleType] = {name: sys.modules[name] for name in modules}
        _LOADED["rt"] = SimpleNamespace(
            nlmsgerr=mods["pyroute2.netlink"].nlmsgerr,
            NetlinkError=mods["pyroute2.netlink.exceptions"].NetlinkError,
            ifaddrmsg=_complete(mods["pyroute2.netlink.rtnl.ifaddrmsg"].ifaddrmsg, _IFA_TAIL),
            rtmsg=_complete(mods["pyroute2.netlink.rtnl.rtmsg"].rtmsg, _RTA_TAIL),
            ndmsg=_complete(mods["pyroute2.netlink.rtnl.ndmsg"].ndmsg, _NDA_TAIL),
        )
    return _LOADED["rt"]


class _DumpInterrupted(Exception):
    """The kernel flagged a dump as inconsistent (NLM_F_DUMP_INTR): it changed meanwhile."""


class _Rtnl:
    """One NETLINK_ROUTE socket, in the netns current when it is made; each request waits for
    its ack. Errors are pyroute2's NetlinkError (`.code` is the errno) or OSError."""

    def __init__(self) -> None:
        self.rt = _rtnl()
        self.errors: tuple[type[Exception], ...] = (OSError, self.rt.NetlinkError)
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        try:
            self.sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)  # errors echo only the header
            self.sock.bind((0, 0))
            self.sock.settimeout(_REPLY_TIMEOUT)  # a kernel that never answers is an error, not a hang
        except OSError:
            self.sock.close()
            raise
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def _send(self, msg: Any, msg_type: int, flags: int) -> int:
        self.seq += 1
        msg["header"]["type"] = msg_type
        msg["header"]["flags"] = flags
        msg["header"]["sequence_number"] = self.seq
        msg["header"]["pid"] = 0
        msg.encode()
        self.sock.send(msg.data)
        return self.seq

    def _replies(self, seq: int, cls: Any) -> Iterator[Any]:
        """Decoded replies to request `seq`, up to its ack or NLMSG_DONE."""
        interrupted = False
        while True:
            data, _, msg_flags, _ = self.sock.recvmsg(_RECV_SIZE)
            if msg_flags & socket.MSG_TRUNC:
                raise OSError(errno.EMSGSIZE, "netlink reply truncated")
            offset = 0
            while offset + 16 <= len(data):
                length, msg_type, flags, msg_seq, _ = struct.unpack_from(_NLMSGHDR, data, offset)
                if length < 16:
                    raise OSError(errno.EBADMSG, "malformed netlink message")
                here, offset = offset, offset + ((length + 3) & ~3)
                if msg_seq != seq:
                    continue  # the tail of an abandoned request
                interrupted = interrupted or bool(flags & NLM_F_DUMP_INTR)
                if msg_type == NLMSG_ERROR:
                    err = self.rt.nlmsgerr(data, offset=here)
                    err.decode()
                    if err["error"]:
                        raise self.rt.NetlinkError(-err["error"], os.strerror(-err["error"]))
                    return
                if msg_type == NLMSG_DONE:
                    if interrupted:
                        raise _DumpInterrupted
                    return
                msg = cls(data, offset=here)
                msg.decode()
                yield msg

    def request(self, msg: Any, msg_type: int, flags: int = 0, ok: int = 0) -> None:
        """Send one change and wait for its ack; the error `ok` (EEXIST: there already) is done."""
        seq = self._send(msg, msg_type, NLM_F_REQUEST | NLM_F_ACK | flags)
        try:
            for _ in self._replies(seq, type(msg)):
                pass
        except self.rt.NetlinkError as exc:
            if not ok or exc.code != ok:
                raise

    def dump(self, cls: Any, msg_type: int, **fields: int) -> list[Any]:
        """Everything the kernel lists for `msg_type`; an interrupted dump is retried."""
        for _ in range(_DUMP_TRIES):
            msg = cls()
            msg["family"] = socket.AF_UNSPEC  # pyroute2 defaults some classes to AF_INET
            for name, value in fields.items():
                msg[name] = value
            seq = self._send(msg, msg_type, NLM_F_REQUEST | NLM_F_DUMP)
            try:
                return list(self._replies(seq, cls))
            except _DumpInterrupted:
                continue
            except self.rt.NetlinkError as exc:
                if exc.code not in (errno.EINTR, errno.EBUSY, errno.EAGAIN):
                    raise
        raise TryAgainError(
            "the container's addresses and routes kept changing while being read",
            f"{_DUMP_TRIES} netlink dumps in a row were interrupted; try again later",
        )


# --- snapshot records -------------------------------------------------------------------------


class _Addr:
    """One address of a link, with what RTM_NEWADDR needs to re-create it."""

    __slots__ = ("family", "prefixlen", "scope", "index", "flags", "attrs", "preferred", "valid", "local", "key",
                 "proto")  # fmt: skip

    def __init__(self, msg: Any) -> None:
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
    def kernel_link_local(self) -> bool:
        """Made by the kernel's link-local generation (addr_gen_mode), not by IPAM."""
        if self.family != socket.AF_INET6 or not self.key[1].startswith(b"\xfe\x80"):
            return False
        if self.proto is not None or _kernel_marks_origin():
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
        if self.proto is not None or _kernel_marks_origin():
            return self.proto == IFAPROT_KERNEL_RA
        # older kernels: SLAAC addresses are the ones with lifetimes (an address that user
        # space gave lifetimes, e.g. from DHCPv6, is counted with them and not re-added)
        return not self.flags & IFA_F_PERMANENT

    def describe(self, ifname: str) -> str:
        return f"address {self.local}/{self.prefixlen} on {ifname}"

    def message(self, rt: SimpleNamespace, flags: int | None = None) -> Any:
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


class _Route:
    """One route through a link, with what RTM_NEWROUTE needs to re-create it."""

    __slots__ = ("fields", "attrs", "table", "dst", "priority", "oifs", "gateways", "nh_id")

    def __init__(self, msg: Any) -> None:
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

    def message(self, rt: SimpleNamespace) -> Any:
        msg = rt.rtmsg()
        for name, value in self.fields.items():
            msg[name] = value
        msg["attrs"] = [list(attr) for attr in self.attrs]
        return msg


class _Neigh:
    """A static neighbour entry (permanent ARP/NDP, or proxy): a down deletes them."""

    __slots__ = ("fields", "attrs", "dst")

    def __init__(self, msg: Any) -> None:
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

    def message(self, rt: SimpleNamespace) -> Any:
        msg = rt.ndmsg()
        for name, value in self.fields.items():
            msg[name] = value
        msg["attrs"] = [list(attr) for attr in self.attrs]
        return msg


class _Link:
    """What down() found on one link."""

    __slots__ = ("ifname", "index", "was_up", "addrs", "routes", "neighs", "touched")

    def __init__(self, ifname: str, index: int, was_up: bool) -> None:
        self.ifname = ifname
        self.index = index
        self.was_up = was_up
        self.addrs: list[_Addr] = []
        self.routes: list[_Route] = []
        self.neighs: list[_Neigh] = []
        self.touched = False  # set before the first change made to this link


@functools.cache
def _kernel_marks_origin() -> bool:
    """Whether the kernel tags the addresses it makes with IFA_PROTO (Linux >= 5.18); then an
    address without the attribute was added by user space (the kernel omits proto 0)."""
    major, _, rest = os.uname().release.partition(".")
    minor = "".join(c for c in rest.split(".")[0] if c.isdigit())
    return major.isdigit() and minor != "" and (int(major), int(minor)) >= (5, 18)


def _netns_id() -> tuple[int, int]:
    st = os.stat("/proc/thread-self/ns/net")
    return st.st_dev, st.st_ino


def _why(exc: BaseException) -> str:
    code = getattr(exc, "code", None) or getattr(exc, "errno", None)
    if isinstance(code, int) and code > 0:
        return f"{errno.errorcode.get(code, str(code))}: {os.strerror(code)}"
    return f"{type(exc).__name__}: {exc}"


# --- the bounce -------------------------------------------------------------------------------


class Bounce:
    """Set links down and up again, putting back what the down flushed. See the module doc."""

    def __init__(self, ifnames: Sequence[str], expected: Mapping[str, Expected] | None = None) -> None:
        self.ifnames = list(dict.fromkeys(ifnames))
        self.expected = dict(expected or {})
        self._links: list[_Link] = []
        self._missing_before: set[str] = set()  # prevResult's items the link lacked already
        self._nl: _Rtnl | None = None
        self._netns: tuple[int, int] | None = None

    def down(self) -> None:
        """Snapshot every link, then set each one down (a link already down stays down)."""
        if self._links:
            raise LinkError("link bounce: down() called twice")
        links = []
        for ifname in self.ifnames:
            was_up = is_up(ifname)  # LinkNotFoundError names a missing interface
            try:
                links.append(_Link(ifname, socket.if_nametoindex(ifname), was_up))
            except OSError:
                raise LinkNotFoundError(f"interface {ifname} not found in the container netns") from None
        try:
            nl = self._rtnl()
            try:
                addrs = self._dump_addrs()
                routes = self._dump_routes()
                neighs = self._dump_neighs()
            except nl.errors as exc:
                raise LinkError("cannot read the addresses and routes of the container netns", _why(exc)) from None
            for link in links:
                link.addrs = addrs.get(link.index, [])
                link.routes = [route for route in routes if link.index in route.oifs]
                link.neighs = [neigh for neigh in neighs if neigh.fields["ifindex"] == link.index]
                if link.ifname in self.expected:
                    have = {addr.key: addr for addr in link.addrs}
                    missing = _check_expected(link.ifname, self.expected[link.ifname], have, link.routes)
                    self._missing_before.update(p for p in missing if "missing" in p)
                for route in link.routes:
                    if route.nh_id is not None:
                        raise LinkError(
                            f"cannot bounce {link.ifname}: its {route.describe()} uses a nexthop object",
                            "a down deletes nexthop objects (ip nexthop) and their routes, and this "
                            "plugin does not re-create them; set linkBounce to never",
                        )
        except BaseException:
            self._close()
            raise
        self._links = links
        try:
            for link in links:
                link.touched = True
                admin_state(link.ifname, False)
        except CniError as exc:
            self._fail(exc)
        except BaseException:  # a bug or an interrupt: undo, then let it through
            self._restore_quietly()
            raise

    def up(self) -> None:
        """Set each link up, put back addresses, routes and static neighbours, verify them
        and prevResult's addresses and routes; on failure restore, then raise."""
        if not self._links:
            raise LinkError("link bounce: up() called before down()")
        try:
            nl = self._rtnl()
            try:
                self._converge(forward=True)
                problems = self._verify(forward=True)
            except nl.errors as exc:
                raise LinkError("cannot bring the link back up as it was", _why(exc)) from None
            if problems:
                raise LinkError("after the link bounce: " + "; ".join(problems))
        except CniError as exc:
            self._fail(exc)
        except BaseException:  # a bug or an interrupt: undo, then let it through
            self._restore_quietly()
            raise
        self._close()

    def restore(self) -> None:
        """Return every link changed to its snapshot: admin state (up or down), addresses,
        routes and static neighbours. Idempotent. Raises RollbackError if it cannot."""
        if not any(link.touched for link in self._links):
            self._close()
            return
        problems: list[str]
        try:
            nl = self._rtnl()
            try:
                self._converge(forward=False)
                problems = self._verify(forward=False)
            except nl.errors as exc:
                problems = [_why(exc)]
        except CniError as exc:
            problems = [f"{exc.msg} ({exc.details})" if exc.details else exc.msg]
        finally:
            self._close()
        if problems:
            raise RollbackError("cannot return the links to their state before the bounce: " + "; ".join(problems))

    # -- plumbing

    def _rtnl(self) -> _Rtnl:
        netns = _netns_id()
        if self._netns is None:
            self._netns = netns
        elif netns != self._netns:
            raise LinkError("link bounce used outside the network namespace it snapshotted")
        if self._nl is None:
            try:
                self._nl = _Rtnl()
            except OSError as exc:
                raise LinkError("cannot open a netlink socket in the container netns", _why(exc)) from None
        return self._nl

    def _close(self) -> None:
        if self._nl is not None:
            self._nl.close()
            self._nl = None

    def _fail(self, exc: CniError) -> None:
        """Restore, then raise `exc`, or a RollbackError if restoring failed too."""
        try:
            self.restore()
        except RollbackError as err:
            raise RollbackError(f"{exc.msg}; {err.msg}", exc.details) from exc
        raise exc

    def _restore_quietly(self) -> None:
        """restore() after an unexpected exception, which is what gets reported: a failing
        restore is left for the caller's own restore() call to report."""
        try:
            self.restore()
        except RollbackError:
            return

    def _dump_addrs(self) -> dict[int, list[_Addr]]:
        nl = self._rtnl()
        out: dict[int, list[_Addr]] = {}
        for msg in nl.dump(nl.rt.ifaddrmsg, RTM_GETADDR):
            if msg["family"] in (socket.AF_INET, socket.AF_INET6):
                out.setdefault(msg["index"], []).append(_Addr(msg))
        return out

    def _dump_routes(self) -> list[_Route]:
        """Routes of both families in all tables (AF_UNSPEC dumps every family and table)."""
        nl = self._rtnl()
        return [
            _Route(msg)
            for msg in nl.dump(nl.rt.rtmsg, RTM_GETROUTE)
            if msg["family"] in (socket.AF_INET, socket.AF_INET6) and not msg["flags"] & RTM_F_CLONED
        ]

    def _dump_neighs(self) -> list[_Neigh]:
        nl = self._rtnl()
        out = []
        for flags in (0, NTF_PROXY):
            for msg in nl.dump(nl.rt.ndmsg, RTM_GETNEIGH, flags=flags):
                if msg["family"] in (socket.AF_INET, socket.AF_INET6) and (flags or msg["state"] & NUD_PERMANENT):
                    out.append(_Neigh(msg))
        return out

    # -- the steps

    def _restorable(self, addr: _Addr, forward: bool) -> bool:
        """up() leaves the kernel's own addresses to the kernel, so the new sysctls shape them;
        restore() also puts back link-local ones that the new sysctls did not make again."""
        if addr.autoconf:
            return False  # SLAAC and privacy addresses: relearned from the next RA
        return not (forward and addr.kernel_link_local)

    def _converge(self, forward: bool) -> None:
        """Bring the links to their target: up() -> every link up; restore() -> the touched
        links to their snapshot."""
        nl = self._rtnl()
        links = [link for link in self._links if forward or link.touched]
        # An IPv6 address kept over the down (keep_addr_on_down=1, or added while down) goes
        # through DAD again at link-up, tentative for a second or more: take it out first and
        # add it back without DAD below.
        current = self._dump_addrs()
        for link in links:
            if forward or link.was_up:
                snap = {addr.key for addr in link.addrs if self._restorable(addr, forward)}
                for addr in current.get(link.index, []):
                    kept = addr.family == socket.AF_INET6 and addr.key in snap and addr.tentative
                    if kept and not addr.kernel_link_local and not addr.flags & IFA_F_DADFAILED:
                        nl.request(addr.message(nl.rt), RTM_DELADDR, ok=errno.EADDRNOTAVAIL)
        for link in links:
            link.touched = True
            admin_state(link.ifname, forward or link.was_up)
        current = self._dump_addrs()
        for link in links:
            link_up = forward or link.was_up
            have = {addr.key: addr for addr in current.get(link.index, [])}
            for addr in _in_kernel_order(link.addrs):
                if not self._restorable(addr, forward):
                    continue
                now = have.get(addr.key)
                if now is not None:
                    if now.kernel_link_local:
                        continue  # the kernel's own, in its DAD as at any link-up
                    if not (link_up and now.tentative and not addr.tentative):
                        if (now.flags ^ addr.flags) & _SETTABLE_FLAGS:
                            # e.g. the IFA_F_NODAD of an interrupted _add_addr: give its own back
                            _set_flags(nl, addr, link)
                        continue  # there and usable
                    nl.request(now.message(nl.rt), RTM_DELADDR, ok=errno.EADDRNOTAVAIL)
                _add_addr(nl, addr, link, link_up)
            if not forward:  # link-local addresses made under the new sysctls go
                wanted = {addr.key for addr in link.addrs}
                for addr in current.get(link.index, []):
                    if addr.kernel_link_local and addr.key not in wanted:
                        nl.request(addr.message(nl.rt), RTM_DELADDR, ok=errno.EADDRNOTAVAIL)
        # Routes, in passes: a gateway may be reachable only through another restored route.
        pending = [
            (link, route)
            for link in links
            if forward or link.was_up
            for route in link.routes
            if not (route.kernel_owned if forward else route.derived)
        ]
        while pending:
            failed = []
            for link, route in pending:
                try:
                    # Not NLM_F_EXCL: for IPv6 the kernel refuses an exclusive add when any route
                    # of that destination and metric exists, whatever its gateway, e.g. an RA's
                    # default route learned during the bounce. EEXIST without it: the same route.
                    nl.request(route.message(nl.rt), RTM_NEWROUTE, NLM_F_CREATE, ok=errno.EEXIST)
                except nl.rt.NetlinkError as exc:
                    failed.append((link, route, exc))
            if len(failed) == len(pending):
                link, route, err = failed[0]
                raise LinkError(f"cannot restore {route.describe()} on {link.ifname}", _why(err))
            pending = [(link, route) for link, route, _ in failed]
        for link in links:
            for neigh in link.neighs:
                try:
                    nl.request(neigh.message(nl.rt), RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE)
                except nl.rt.NetlinkError as exc:
                    raise LinkError(f"cannot restore {neigh.describe(link.ifname)}", _why(exc)) from None

    def _verify(self, forward: bool) -> list[str]:
        """What is missing: the snapshot's addresses and routes (those the step puts back),
        and, after up(), prevResult's addresses and routes."""
        problems: list[str] = []
        addrs = self._dump_addrs()
        routes = self._dump_routes()
        for link in self._links:
            if not (forward or link.touched):
                continue
            want_up = forward or link.was_up
            if is_up(link.ifname) != want_up:
                problems.append(f"{link.ifname} is {'down' if want_up else 'up'}")
            have = {addr.key: addr for addr in addrs.get(link.index, [])}
            for addr in link.addrs:
                if not self._restorable(addr, forward):
                    continue
                now = have.get(addr.key)
                if now is None:
                    problems.append(f"{addr.describe(link.ifname)} missing")
                elif want_up and now.tentative and not addr.tentative and not now.kernel_link_local:
                    problems.append(f"{addr.describe(link.ifname)} still tentative")
            through = [route for route in routes if link.index in route.oifs]
            keys = {route.key() for route in through}
            for route in link.routes:
                if want_up and not (route.kernel_owned if forward else route.derived) and route.key() not in keys:
                    problems.append(f"{route.describe()} on {link.ifname} missing")
            if forward and link.ifname in self.expected:
                # what prevResult names and the link had before the bounce must be there again
                found = _check_expected(link.ifname, self.expected[link.ifname], have, through)
                problems += [p for p in found if p not in self._missing_before]
        return problems


# Address flags user space sets (the others, tentative, deprecated, dadfailed, ..., are the
# kernel's report of the address's state).
_SETTABLE_FLAGS = IFA_F_NODAD | IFA_F_HOMEADDRESS | IFA_F_MANAGETEMPADDR | IFA_F_NOPREFIXROUTE | IFA_F_MCAUTOJOIN


def _in_kernel_order(addrs: list[_Addr]) -> list[_Addr]:
    """The order in which to add `addrs` so that the kernel lists them as in the snapshot: it
    appends IPv4 addresses but puts a new IPv6 address before the others of its scope. Order
    matters: with equal preference, the first listed address is the source address chosen."""
    v6 = [addr for addr in addrs if addr.family == socket.AF_INET6]
    return [addr for addr in addrs if addr.family != socket.AF_INET6] + v6[::-1]


def _set_flags(nl: _Rtnl, addr: _Addr, link: _Link) -> None:
    try:
        nl.request(addr.message(nl.rt), RTM_NEWADDR, NLM_F_REPLACE)
    except nl.rt.NetlinkError as exc:
        raise LinkError(f"cannot restore the flags of {addr.describe(link.ifname)}", _why(exc)) from None


def _add_addr(nl: _Rtnl, addr: _Addr, link: _Link, link_up: bool) -> None:
    """Add `addr` back. On an up link an IPv6 address is added with IFA_F_NODAD, so that it is
    usable at once, then given its own flags back (changing flags does not restart DAD)."""
    skip_dad = link_up and addr.family == socket.AF_INET6 and not addr.flags & (IFA_F_NODAD | IFA_F_DADFAILED)
    try:
        flags = addr.flags | IFA_F_NODAD if skip_dad else addr.flags
        nl.request(addr.message(nl.rt, flags), RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, ok=errno.EEXIST)
        if skip_dad:
            nl.request(addr.message(nl.rt), RTM_NEWADDR, NLM_F_REPLACE)
    except nl.rt.NetlinkError as exc:
        raise LinkError(f"cannot restore {addr.describe(link.ifname)}", _why(exc)) from None


def _check_expected(ifname: str, expected: Expected, have: dict[Any, _Addr], routes: list[_Route]) -> list[str]:
    """What of prevResult's addresses and routes `ifname` lacks (parsed with the stdlib's
    ipaddress: netaddr would cost ~35 ms of imports, more than a whole ADD)."""
    import ipaddress

    problems = []
    for cidr in expected.addresses:
        try:
            iface = ipaddress.ip_interface(cidr)
        except ValueError:
            problems.append(f"prevResult address {cidr!r} is not an address")
            continue
        family = socket.AF_INET6 if iface.version == 6 else socket.AF_INET
        now = have.get((family, iface.ip.packed, iface.network.prefixlen))
        if now is None:
            problems.append(f"prevResult address {cidr} missing from {ifname}")
        elif now.tentative:
            problems.append(f"prevResult address {cidr} on {ifname} still tentative")
    for dst, gw in expected.routes:
        try:
            net = ipaddress.ip_network(dst, strict=False)
            want_gw = ipaddress.ip_address(gw).packed if gw else None
        except ValueError:
            problems.append(f"prevResult route {dst} via {gw} is not a route")
            continue
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
