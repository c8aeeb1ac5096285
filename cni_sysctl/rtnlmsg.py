"""pyroute2's rtnetlink message classes, loaded cheaply and checked: the only module that imports
pyroute2.

The snapshot and the bounce encode and decode addresses, routes and neighbours with pyroute2's
message classes (ifaddrmsg, rtmsg, ndmsg) and speak netlink over a plain socket (rtnl.py).
`import pyroute2` runs the package's __init__, which imports every API of the library (IPRoute,
NDB, asyncio, ...): ~150 ms of the ~185 ms that `from pyroute2 import IPRoute` costs. So the
classes are imported without running that __init__, a shortcut pyroute2 never promised, and
two more things it never promised are relied on: the module layout, and the position of each
attribute in a class's `nla_map` (older releases lack the newest attributes, which are added
here by their kernel numbers).

Neither may go wrong silently: a mislabelled attribute would be re-sent to the kernel as
something else when a link is restored. So the classes must pass a self-check before use: canned
messages, built here byte by byte from the kernel's UAPI, must decode to exactly the expected
values and encode back to the same bytes. If the shortcut's classes fail it, pyroute2 is
imported the ordinary way and checked again; if that fails too, the installation is unusable
(InstallationError: a pyroute2 outside the supported range `>=0.7.2,<0.10`).
"""

from __future__ import annotations

import struct

from .errors import InstallationError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

SUPPORTED = ">=0.7.2,<0.10"

MODULES = (
    "pyroute2.netlink",
    "pyroute2.netlink.exceptions",
    "pyroute2.netlink.rtnl.ifaddrmsg",
    "pyroute2.netlink.rtnl.rtmsg",
    "pyroute2.netlink.rtnl.ndmsg",
)

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


class Classes:
    """The message classes in use, and the error type netlink replies raise."""

    __slots__ = ("ifaddrmsg", "rtmsg", "ndmsg", "nlmsgerr", "NetlinkError", "how")

    def __init__(self, mods: dict[str, Any], how: str) -> None:
        self.nlmsgerr: Any = mods["pyroute2.netlink"].nlmsgerr
        self.NetlinkError: type[Exception] = mods["pyroute2.netlink.exceptions"].NetlinkError
        self.ifaddrmsg: Any = _complete(mods["pyroute2.netlink.rtnl.ifaddrmsg"].ifaddrmsg, _IFA_TAIL)
        self.rtmsg: Any = _complete(mods["pyroute2.netlink.rtnl.rtmsg"].rtmsg, _RTA_TAIL)
        self.ndmsg: Any = _complete(mods["pyroute2.netlink.rtnl.ndmsg"].ndmsg, _NDA_TAIL)
        self.how = how  # "shortcut" or "import": which way they were loaded


_LOADED: list[Classes] = []


def load() -> Classes:
    """The checked message classes, loaded on first use."""
    if not _LOADED:
        _LOADED.append(_load())
    return _LOADED[0]


def _load() -> Classes:
    import importlib
    import sys

    problem = ""
    try:
        _import_without_package_init(MODULES)
        classes = Classes({name: sys.modules[name] for name in MODULES}, "shortcut")
        problem = self_check(classes)
        if not problem:
            return classes
    except ImportError as exc:
        problem = f"{type(exc).__name__}: {exc}"
    # The ordinary (slow) import, in a clean state.
    _forget_pyroute2()
    try:
        mods = {name: importlib.import_module(name) for name in MODULES}
    except ImportError as exc:
        raise InstallationError(
            f"pyroute2 is not importable: {exc}",
            f"install pyroute2{SUPPORTED} for {sys.executable} (pip install cni-sysctl), then rerun "
            "`cni-sysctl install`",
        ) from None
    classes = Classes(mods, "import")
    second = self_check(classes)
    if second:
        version = getattr(sys.modules.get("pyroute2"), "__version__", "unknown")
        raise InstallationError(
            f"pyroute2 {version} does not encode or decode rtnetlink messages as cni-sysctl expects: {second}",
            f"install a pyroute2 in the supported range {SUPPORTED} (the shortcut failed first: {problem})",
        )
    return classes


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


def _forget_pyroute2() -> None:
    import sys

    for mod in [m for m in sys.modules if m == "pyroute2" or m.startswith("pyroute2.")]:
        del sys.modules[mod]


def _import_without_package_init(names: Iterable[str]) -> None:
    """Import pyroute2 submodules without running pyroute2/__init__.py.

    The package module is created from its spec but not executed; the first access to a name
    it lacks (`from pyroute2 import IPRoute`, `pyroute2.__version__`) imports the submodule of
    that name or, failing that, runs the real __init__ in place, so the rest of the process
    sees pyroute2 as usual.
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
            _forget_pyroute2()
        raise


# --- the self-check -------------------------------------------------------------------------
# Canned messages in the kernel's layout (linux/netlink.h, rtnetlink.h, if_addr.h, neighbour.h),
# with every attribute the snapshot reads and re-sends, the newest ones included.


def _nla(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _message(msg_type: int, body: bytes, attrs: list[bytes]) -> bytes:
    payload = body + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(payload), msg_type, 0, 7, 0) + payload


_V6 = bytes.fromhex("fd0000000000000000000000000000aa")
_GW6 = bytes.fromhex("fd000000000000000000000000000001")

CANNED = {
    "ifaddrmsg": _message(
        20,  # RTM_NEWADDR
        struct.pack("=BBBBI", 10, 64, 0x80, 0, 3),
        [
            _nla(1, _V6),  # IFA_ADDRESS
            _nla(3, b"eth0:x\0"),  # IFA_LABEL
            _nla(6, struct.pack("=IIII", 300, 600, 0, 0)),  # IFA_CACHEINFO
            _nla(8, struct.pack("=I", 0x280)),  # IFA_FLAGS
            _nla(9, struct.pack("=I", 77)),  # IFA_RT_PRIORITY
            _nla(11, struct.pack("=B", 3)),  # IFA_PROTO
        ],
    ),
    "rtmsg": _message(
        24,  # RTM_NEWROUTE
        struct.pack("=BBBBBBBBI", 10, 64, 0, 0, 100, 4, 0, 1, 0),
        [
            _nla(15, struct.pack("=I", 100)),  # RTA_TABLE
            _nla(1, _V6),  # RTA_DST
            _nla(5, _GW6),  # RTA_GATEWAY
            _nla(4, struct.pack("=I", 3)),  # RTA_OIF
            _nla(6, struct.pack("=I", 50)),  # RTA_PRIORITY
            _nla(8, _nla(2, struct.pack("=I", 1400))),  # RTA_METRICS { RTAX_MTU }
            _nla(20, struct.pack("=B", 1)),  # RTA_PREF
            _nla(30, struct.pack("=I", 9)),  # RTA_NH_ID
        ],
    ),
    "ndmsg": _message(
        28,  # RTM_NEWNEIGH
        struct.pack("=BxxxiHBB", 2, 3, 0x80, 0, 1),
        [
            _nla(1, bytes([10, 1, 2, 3])),  # NDA_DST
            _nla(2, bytes.fromhex("020000000077")),  # NDA_LLADDR
            _nla(12, struct.pack("=B", 4)),  # NDA_PROTOCOL
        ],
    ),
}

EXPECTED: dict[str, tuple[dict[str, int], dict[str, object]]] = {
    "ifaddrmsg": (
        {"family": 10, "prefixlen": 64, "flags": 0x80, "scope": 0, "index": 3},
        {
            "IFA_ADDRESS": "fd00::aa",
            "IFA_LABEL": "eth0:x",
            "IFA_CACHEINFO": {"ifa_preferred": 300, "ifa_valid": 600, "cstamp": 0, "tstamp": 0},
            "IFA_FLAGS": 0x280,
            "IFA_RT_PRIORITY": 77,
            "IFA_PROTO": 3,
        },
    ),
    "rtmsg": (
        {"family": 10, "dst_len": 64, "src_len": 0, "tos": 0, "table": 100, "proto": 4, "scope": 0, "type": 1},
        {
            "RTA_TABLE": 100,
            "RTA_DST": "fd00::aa",
            "RTA_GATEWAY": "fd00::1",
            "RTA_OIF": 3,
            "RTA_PRIORITY": 50,
            "RTA_METRICS": {"RTAX_MTU": 1400},
            "RTA_PREF": 1,
            "RTA_NH_ID": 9,
        },
    ),
    "ndmsg": (
        {"family": 2, "ifindex": 3, "state": 0x80, "flags": 0, "ndm_type": 1},
        {"NDA_DST": "10.1.2.3", "NDA_LLADDR": "02:00:00:00:00:77", "NDA_PROTOCOL": 4},
    ),
}


def _plain(value: Any) -> Any:
    if isinstance(value, dict) or hasattr(value, "get_attrs"):
        out = {k: _plain(v) for k, v in dict(value).items() if k not in ("header", "attrs")}
        for slot in value.get("attrs", ()):
            out[slot[0]] = _plain(slot[1])
        return out
    return value


def self_check(classes: Classes) -> str:
    """Why `classes` cannot be trusted with the snapshot ("" when they can)."""
    for name, data in CANNED.items():
        cls = getattr(classes, name)
        fields, attrs = EXPECTED[name]
        try:
            msg = cls(data)
            msg.decode()
            got_fields = {key: msg[key] for key in fields}
            got_attrs = {key: _plain(msg.get_attr(key)) for key in attrs}
            again = cls()
            for key, value in fields.items():
                again[key] = value
            again["attrs"] = [[slot[0], slot[1]] for slot in msg["attrs"]]
            again["header"]["type"] = msg["header"]["type"]
            again["header"]["sequence_number"] = msg["header"]["sequence_number"]
            again.encode()
            encoded = bytes(again.data)
        except Exception as exc:  # noqa: BLE001 - any failure means: do not use these classes
            return f"{name}: {type(exc).__name__}: {exc}"
        if got_fields != fields:
            return f"{name}: decoded fields {got_fields} instead of {fields}"
        if got_attrs != attrs:
            return f"{name}: decoded attributes {got_attrs} instead of {attrs}"
        if encoded != data:
            return f"{name}: re-encoded as {encoded.hex()} instead of {data.hex()}"
    return ""
