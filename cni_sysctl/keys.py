"""Sysctl key forms: parse once into components, validate every component, reject early.

Three forms are accepted (README "Key forms"):

* short per-interface  ``ipv6.conf.accept_ra``            -> net/ipv6/conf/<ifname>/accept_ra
* IFNAME placeholder   ``net.ipv4.conf.IFNAME.rp_filter`` -> net/ipv4/conf/<ifname>/rp_filter
* netns-wide           ``net.ipv4.tcp_keepalive_time``    -> net/ipv4/tcp_keepalive_time

A key is kept as a tuple of path components below ``/proc/sys``; the interface name is
inserted as one component, so a dotted name such as ``eth0.100`` is never split.
"""

from __future__ import annotations

from .errors import KeyRejectedError
from .params import HOST_WIDE
from .request import text_problem

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

FAMILIES = ("ipv4", "ipv6")
TABLES = ("conf", "neigh")
PLACEHOLDER = "IFNAME"
# Pseudo-interfaces that exist in every netns and are not a generated name.
NETNS_WIDE_DEVICES = ("all", "default", "lo")
MAX_VALUE_LENGTH = 256

_COMPONENT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_GLOB_CHARS = frozenset("*?[]{}")
_OUTSIDE_NET_HINT = (
    "only net.* sysctls belong to a network plugin; set {top}.* sysctls with the runtime's own "
    "--sysctl option (podman/docker run --sysctl, a pod's securityContext.sysctls), which "
    "applies namespaced ones such as kernel.shm* and refuses host-wide ones"
)


class Key:
    """A validated sysctl key.

    ``parts`` are the components below /proc/sys; for a per-interface key the interface slot
    (``ifname_index``) holds the placeholder until :meth:`expand` fills it.
    """

    __slots__ = ("text", "parts", "ifname_index")

    def __init__(self, text: str, parts: tuple[str, ...], ifname_index: int | None) -> None:
        self.text = text
        self.parts = parts
        self.ifname_index = ifname_index

    @property
    def per_interface(self) -> bool:
        return self.ifname_index is not None

    @property
    def param(self) -> str:
        return self.parts[-1]

    @property
    def family(self) -> str:
        return self.parts[1]

    def expand(self, ifname: str) -> tuple[str, ...]:
        """The concrete components for one interface (netns-wide keys are returned as is)."""
        if self.ifname_index is None:
            return self.parts
        i = self.ifname_index
        return (*self.parts[:i], ifname, *self.parts[i + 1 :])

    @property
    def canonical(self) -> str:
        """The key in IFNAME form, dot-separated: the form policy patterns match against."""
        return ".".join(self.parts)

    def __repr__(self) -> str:
        return f"Key({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and other.parts == self.parts

    def __hash__(self) -> int:
        return hash(self.parts)


def display(parts: tuple[str, ...]) -> str:
    """sysctl(8) spelling: dots, or slashes when a component (a dotted ifname) holds a dot."""
    if any("." in p for p in parts):
        return "/".join(parts)
    return ".".join(parts)


def _reject(key: str, why: str, hint: str = "") -> KeyRejectedError:
    return KeyRejectedError(f"sysctl key {key!r} rejected: {why}", hint)


def _split(key: str) -> tuple[list[str], bool]:
    """Split a key into components; returns (components, slash_separated)."""
    if "/" in key:
        if key.startswith("/"):
            raise _reject(
                key,
                "absolute paths are not keys",
                "write the key relative to /proc/sys, e.g. net/ipv4/tcp_keepalive_time or net.ipv4.tcp_keepalive_time",
            )
        return key.split("/"), True
    return key.split("."), False


def _check_component(key: str, comp: str, slash: bool, ifname_slot: bool) -> None:
    if comp == "":
        raise _reject(key, "empty component (doubled or trailing separator)", "remove the extra separator")
    if comp in (".", ".."):
        raise _reject(key, "'..' and '.' path components are not allowed", "name the sysctl directly")
    if "\x00" in comp:
        raise _reject(key, "contains a NUL byte")
    if any(c.isspace() for c in comp):
        raise _reject(key, "contains whitespace", "remove spaces, tabs and newlines from the key")
    if _GLOB_CHARS.intersection(comp):
        raise _reject(
            key,
            "glob characters (* ? [ ] { }) are not allowed",
            "name each sysctl explicitly; per-interface keys use the short form "
            "(ipv6.conf.accept_ra) or the IFNAME placeholder",
        )
    allowed_dot = slash and ifname_slot
    for c in comp:
        if c in _COMPONENT_CHARS or (c == "." and allowed_dot):
            continue
        if c == "." and slash:
            raise _reject(
                key,
                "mixes '.' and '/' separators",
                "use one separator throughout: net.ipv4.conf.IFNAME.rp_filter or net/ipv4/conf/IFNAME/rp_filter",
            )
        raise _reject(key, f"character {c!r} is not allowed in a sysctl key")


def parse_key(raw: object) -> Key:
    """Parse and validate one key; raises KeyRejectedError with a did-you-mean hint."""
    if not isinstance(raw, str):
        raise KeyRejectedError(f"sysctl key {raw!r} rejected: keys must be strings")
    key = raw
    if key == "":
        raise _reject(key, "empty key")
    if "\x00" in key:
        raise _reject(key, "contains a NUL byte")
    if ".." in key:
        raise _reject(
            key,
            "'..' (a parent-directory step or an empty component) is not allowed",
            "name the sysctl directly, e.g. ipv4.conf.rp_filter",
        )
    comps, slash = _split(key)
    head = comps[0]

    # Short per-interface form: <ipv4|ipv6>.<conf|neigh>.<param>
    if head in FAMILIES:
        return _parse_short(key, comps, slash)

    if head != "net":
        for c in comps:
            _check_component(key, c, slash, False)
        if head in TABLES and len(comps) == 2:
            raise _reject(
                key,
                "the short form needs the address family",
                f"write ipv4.{head}.{comps[1]} or ipv6.{head}.{comps[1]}",
            )
        raise _reject(
            key,
            f"not a network sysctl; {head}.* sysctls belong to the runtime's --sysctl, not to a network plugin",
            _OUTSIDE_NET_HINT.format(top=head),
        )

    if len(comps) < 3:
        for c in comps:
            _check_component(key, c, slash, False)
        raise _reject(key, "names a directory, not a sysctl", "add the parameter name, e.g. net.core.somaxconn")

    per_if = comps[1] in FAMILIES and comps[2] in TABLES
    for i, c in enumerate(comps):
        _check_component(key, c, slash, per_if and i == 3)

    if not per_if:
        if tuple(comps) in HOST_WIDE:
            raise _reject(
                key,
                "it is a host-wide switch although a container netns shows it as writable",
                f"{HOST_WIDE[tuple(comps)]}; only the host's administrator may set it, on the host",
            )
        return Key(key, tuple(comps), None)

    fam, table = comps[1], comps[2]
    if len(comps) == 4:
        # net.ipv6.conf.accept_ra: a short key with a 'net.' prefix, or a missing device.
        param = comps[3]
        raise _reject(
            key,
            f"{'/'.join(comps)} is a directory, not a sysctl (no device component)",
            f"did you mean the short form {fam}.{table}.{param} or net.{fam}.{table}.{PLACEHOLDER}.{param}?",
        )
    if len(comps) != 5:
        raise _reject(
            key,
            f"per-interface keys have one device and one parameter: net.{fam}.{table}.DEVICE.PARAM",
            f"did you mean the short form {fam}.{table}.{comps[-1]} or net.{fam}.{table}.{PLACEHOLDER}.{comps[-1]}?",
        )
    device, param = comps[3], comps[4]
    if device == PLACEHOLDER:
        return Key(key, ("net", fam, table, PLACEHOLDER, param), 3)
    if device in NETNS_WIDE_DEVICES:
        return Key(key, tuple(comps), None)
    raise _reject(
        key,
        f"it names the concrete interface {device!r}, whose name the runtime chooses",
        f"did you mean the short form {fam}.{table}.{param} (expanded for every container "
        f"interface of the attachment) or net.{fam}.{table}.{PLACEHOLDER}.{param}?",
    )


def _parse_short(key: str, comps: list[str], slash: bool) -> Key:
    fam = comps[0]
    for c in comps:
        _check_component(key, c, slash, False)
    if len(comps) == 3 and comps[1] in TABLES:
        return Key(key, ("net", fam, comps[1], PLACEHOLDER, comps[2]), 3)
    if len(comps) == 2:
        raise _reject(
            key,
            "the short form is <ipv4|ipv6>.<conf|neigh>.<param>",
            f"did you mean {fam}.conf.{comps[1]} (or {fam}.neigh.{comps[1]})?",
        )
    if len(comps) == 4 and comps[1] in TABLES:
        table, device, param = comps[1], comps[2], comps[3]
        if device == PLACEHOLDER:
            hint = f"did you mean net.{fam}.{table}.{PLACEHOLDER}.{param} or the short form {fam}.{table}.{param}?"
        else:
            hint = f"did you mean the short form {fam}.{table}.{param} or net.{fam}.{table}.{PLACEHOLDER}.{param}?"
        raise _reject(key, "the short form takes no device component", hint)
    raise _reject(
        key,
        "the short form is <ipv4|ipv6>.<conf|neigh>.<param>; netns-wide keys start with 'net.'",
        f"did you mean net.{'.'.join(comps)}?",
    )


def check_value(key: str, raw: object) -> str:
    """Validate and normalise one value: strings as given, numbers converted."""
    if isinstance(raw, bool) or raw is None or not isinstance(raw, (str, int, float)):
        raise KeyRejectedError(
            f"value of sysctl {key!r} rejected: {raw!r} is not a string or number",
            'quote the value, e.g. "1"; several-field values use spaces: "32768 60999"',
        )
    if isinstance(raw, float):
        if not raw.is_integer():
            raise KeyRejectedError(
                f"value of sysctl {key!r} rejected: {raw!r} is not an integer",
                "sysctl values are integers or strings; quote it if the string is meant",
            )
        value = str(int(raw))
    else:
        value = str(raw)
    problem = text_problem(value)
    if problem is not None:
        raise KeyRejectedError(f"value of sysctl {key!r} rejected: {problem}", "sysctl values are plain text")
    if "\n" in value or "\r" in value or "\x00" in value:
        raise KeyRejectedError(
            f"value of sysctl {key!r} rejected: contains a newline or NUL",
            "separate the fields of several-field values with spaces or tabs",
        )
    if len(value.encode()) > MAX_VALUE_LENGTH:
        raise KeyRejectedError(
            f"value of sysctl {key!r} rejected: longer than {MAX_VALUE_LENGTH} bytes",
            "no network sysctl takes a value this long",
        )
    if value.strip() == "":
        raise KeyRejectedError(f"value of sysctl {key!r} rejected: empty value", 'give a value, e.g. "1"')
    for field in value.split():
        digits = field.lstrip("+-")
        if len(digits) > 1 and digits[0] == "0" and digits.isdigit():
            octal = set(digits) <= set("01234567")
            raise KeyRejectedError(
                f"value of sysctl {key!r} rejected: {field!r} has a leading zero, which the kernel reads "
                + (f"as octal ({int(digits, 8)})" if octal else "as an invalid octal number"),
                f"write {digits.lstrip('0') or '0'} for the decimal value"
                + (f", or {int(digits, 8)} if octal was meant" if octal else ""),
            )
    return value.strip(" \t")


def normalise_value(value: str) -> str:
    """The form used to compare a configured value with what the kernel reads back: fields
    separated by one space, integers in decimal (the kernel parses 0x... as hexadecimal)."""
    fields = []
    for field in value.split():
        body = field.lstrip("+-")
        if body[:2] in ("0x", "0X"):
            try:
                number = int(body, 16)
            except ValueError:
                fields.append(field)
                continue
            fields.append(str(-number if field.startswith("-") else number))
        elif body.isdigit():
            fields.append(str(int(field)))
        else:
            fields.append(field)
    return " ".join(fields)


def did_you_mean(parts: tuple[str, ...], names_in: Callable[[tuple[str, ...]], list[str] | None]) -> str | None:
    """The closest existing spelling of a key that is missing, component by component (None when
    nothing is close). `names_in(directory_parts)` lists a directory below /proc/sys, or returns
    None when there is no such directory; the IFNAME placeholder is looked up as `default`, the
    template every interface's directory is made from."""
    import difflib

    lookup = ["default" if p == PLACEHOLDER else p for p in parts]
    fixed = list(parts)
    changed = False
    for i in range(1, len(parts)):
        names = names_in(tuple(lookup[:i]))
        if names is None:
            return None
        if lookup[i] in names:
            continue
        close = difflib.get_close_matches(lookup[i], names, n=1, cutoff=0.75)
        if not close:
            return None
        lookup[i] = fixed[i] = close[0]
        changed = True
    return display(tuple(fixed)) if changed else None
