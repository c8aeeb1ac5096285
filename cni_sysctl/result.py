"""prevResult: decoding, the container-side interfaces, conversion between result versions.

The Success result is the same object from 0.3.0 to 1.1.0 but for one field: before 1.0.0
every ``ips`` entry carries ``"version": "4"|"6"``; from 1.0.0 on it has none.
"""

from __future__ import annotations

import _socket

from . import SUPPORTED_VERSIONS
from .config import version_tuple
from .errors import ConfigError, VersionError
from .request import check_ifname

_FIRST_VERSIONLESS = (1, 0, 0)


def _list_of_objects(prev: dict[str, object], field: str) -> list[dict[str, object]]:
    value = prev.get(field, [])
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"prevResult.{field} must be a list of objects")
    return value


def _address(text: object) -> int | None:
    """The family of an IP address in text form, None if it is not one."""
    if not isinstance(text, str):
        return None
    for family in (_socket.AF_INET, _socket.AF_INET6):
        try:
            _socket.inet_pton(family, text)
        except (OSError, ValueError, UnicodeEncodeError):
            continue
        return family
    return None


def _cidr(text: object) -> bool:
    """Whether `text` is ADDRESS/PREFIXLEN (parsed with the C library: no import to pay)."""
    if not isinstance(text, str) or text.count("/") != 1:
        return False
    address, _, length = text.partition("/")
    family = _address(address)
    if family is None or not length.isascii() or not length.isdigit() or len(length) > 3:
        return False
    return int(length) <= (32 if family == _socket.AF_INET else 128)


def validate(prev: dict[str, object]) -> None:
    """Refuse a prevResult this plugin cannot pass on faithfully, or whose addresses and routes
    it could not check after changing a link: before anything is changed."""
    version = prev.get("cniVersion")
    if version is not None and version not in SUPPORTED_VERSIONS:
        raise VersionError(
            f"prevResult has cniVersion {version!r}, which cannot be converted",
            f"results of {', '.join(SUPPORTED_VERSIONS)} are supported",
        )
    interfaces = _list_of_objects(prev, "interfaces")
    for iface in interfaces:
        if not isinstance(iface.get("name"), str):
            raise ConfigError("prevResult.interfaces entry without a name")
    for ip in _list_of_objects(prev, "ips"):
        if not _cidr(ip.get("address")):
            raise ConfigError(
                f"prevResult.ips entry has address {ip.get('address')!r}, which is not ADDRESS/PREFIX",
                "the plugin before cni-sysctl in the chain returned an invalid result",
            )
        gateway = ip.get("gateway")
        if gateway is not None and _address(gateway) is None:
            raise ConfigError(f"prevResult.ips entry has gateway {gateway!r}, which is not an IP address")
        index = ip.get("interface")
        if index is not None and (
            not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(interfaces)
        ):
            raise ConfigError(f"prevResult.ips entry names interface {index!r}, which is not in prevResult.interfaces")
    for route in _list_of_objects(prev, "routes"):
        if not _cidr(route.get("dst")):
            raise ConfigError(f"prevResult.routes entry has dst {route.get('dst')!r}, which is not ADDRESS/PREFIX")
        gw = route.get("gw")
        if gw is not None and _address(gw) is None:
            raise ConfigError(f"prevResult.routes entry has gw {gw!r}, which is not an IP address")


def container_ifnames(prev: dict[str, object] | None, cni_ifname: str) -> list[str]:
    """The container-side interfaces: those of prevResult whose sandbox is set.

    Without an interfaces list (or none in a sandbox), the attachment's CNI_IFNAME.
    Names come from another program: they are validated like CNI_IFNAME before they become
    path components.
    """
    names: list[str] = []
    if prev is not None:
        for iface in _list_of_objects(prev, "interfaces"):
            if iface.get("sandbox") and iface["name"] not in names:
                names.append(str(iface["name"]))
    if not names:
        names = [cni_ifname]
    for name in names:
        problem = check_ifname(name)
        if problem is not None:
            raise ConfigError(f"prevResult names interface {name!r}, which is not a valid interface name: {problem}")
    return names


def convert(prev: dict[str, object], cni_version: str) -> dict[str, object]:
    """prevResult in `cni_version`'s shape, otherwise unchanged."""
    out = dict(prev)
    out["cniVersion"] = cni_version
    ips = _list_of_objects(prev, "ips")
    if ips:
        new_ips = []
        for ip in ips:
            new = dict(ip)
            if version_tuple(cni_version) >= _FIRST_VERSIONLESS:
                new.pop("version", None)
            else:
                new["version"] = "6" if ":" in str(ip["address"]) else "4"
            new_ips.append(new)
        out["ips"] = new_ips
    return out


class Expected:
    """What prevResult says one interface must have after a link bounce."""

    __slots__ = ("addresses", "routes")

    def __init__(self, addresses: list[str], routes: list[tuple[str, str | None]]) -> None:
        self.addresses = addresses
        self.routes = routes

    def __repr__(self) -> str:
        return f"Expected({self.addresses!r}, {self.routes!r})"


def expected_state(prev: dict[str, object] | None, ifnames: list[str]) -> dict[str, Expected]:
    """Addresses and routes of prevResult, per container interface.

    An ``ips`` entry names its interface by index into ``interfaces``; with a single container
    interface an entry without an index belongs to it. Routes carry no interface: they are
    expected through whichever interface has a matching on-link prefix, or the only one.
    """
    out = {name: Expected([], []) for name in ifnames}
    if prev is None:
        return out
    interfaces = _list_of_objects(prev, "interfaces")
    for ip in _list_of_objects(prev, "ips"):
        idx = ip.get("interface")
        name: str | None = None
        if isinstance(idx, int) and 0 <= idx < len(interfaces):
            name = str(interfaces[idx].get("name"))
        elif len(ifnames) == 1:
            name = ifnames[0]
        if name in out:
            out[name].addresses.append(str(ip["address"]))
    if len(ifnames) == 1:
        for route in _list_of_objects(prev, "routes"):
            dst = route.get("dst")
            if isinstance(dst, str):
                gw = route.get("gw")
                out[ifnames[0]].routes.append((dst, gw if isinstance(gw, str) else None))
    return out
