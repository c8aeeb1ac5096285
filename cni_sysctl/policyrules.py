"""Policy patterns and rules: what a key pattern matches, what a rule accepts, the default set.

Patterns match component by component: ``*`` and ``?`` never cross a separator, so a pattern
only ever matches keys with as many components as it has; ``IFNAME`` (or ``*``) in the device
slot matches the container's interfaces, never ``all``, ``default`` or ``lo``, which are named
explicitly. The default set is the kubelet's safe net.* sysctls with value bounds
(docs/policy.md gives the sources). Pure: policy.py reads files and judges requests.
"""

from __future__ import annotations

from .keys import FAMILIES, NETNS_WIDE_DEVICES, PLACEHOLDER, TABLES, normalise_value

BUILTIN = "the default set"  # the origin of the default set's rules
_PATTERN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-*?")
_WILDCARDS = frozenset("*?")


# ---------------------------------------------------------------------------------------------
# Patterns


class PatternError(ValueError):
    pass


def parse_pattern(text: str) -> tuple[str, ...]:
    """A key pattern -> its components, in IFNAME form (short forms expanded, ``*`` in the
    device slot of a per-interface key written as IFNAME). Raises PatternError."""
    if not isinstance(text, str) or text == "":
        raise PatternError("a key pattern must be a non-empty string")
    if text.startswith("/"):
        raise PatternError("patterns are keys relative to /proc/sys, e.g. net.ipv4.tcp_syncookies")
    parts = text.split("/") if "/" in text else text.split(".")
    for part in parts:
        if part == "":
            raise PatternError("empty component (doubled or trailing separator)")
        bad = sorted(set(part) - _PATTERN_CHARS)
        if bad:
            raise PatternError(
                f"character {bad[0]!r} is not allowed; patterns use key characters and the wildcards * and ?"
            )
    if parts[0] in FAMILIES:
        if len(parts) != 3 or parts[1] not in TABLES:
            raise PatternError("the short form is <ipv4|ipv6>.<conf|neigh>.<param>")
        parts = ["net", parts[0], parts[1], PLACEHOLDER, parts[2]]
    elif parts[0] != "net":
        raise PatternError(
            "patterns start with 'net.' (or are a short form such as ipv6.conf.accept_ra): only net.* "
            "sysctls can ever be set"
        )
    if len(parts) < 3:
        raise PatternError("names a directory, not a sysctl")
    if parts[1] in FAMILIES and parts[2] in TABLES:
        if len(parts) != 5:
            raise PatternError(
                f"per-interface keys are net.{parts[1]}.{parts[2]}.DEVICE.PARAM (five components; "
                "a wildcard never spans several)"
            )
        device = parts[3]
        if device == "*":
            parts[3] = PLACEHOLDER
        elif device != PLACEHOLDER and device not in NETNS_WIDE_DEVICES:
            raise PatternError(
                f"the device component must be {PLACEHOLDER} (or *: the container's interfaces) or one of "
                f"{', '.join(NETNS_WIDE_DEVICES)}, not {device!r}: keys never name a concrete interface"
            )
    return tuple(parts)


def _glob(pattern: str, text: str) -> bool:
    """Shell-style match of one component: * any run, ? one character (never a separator:
    components hold none)."""
    p = t = 0
    star = -1
    mark = 0
    while t < len(text):
        if p < len(pattern) and (pattern[p] == "?" or pattern[p] == text[t]):
            p += 1
            t += 1
        elif p < len(pattern) and pattern[p] == "*":
            star, mark = p, t
            p += 1
        elif star >= 0:
            p = star + 1
            mark += 1
            t = mark
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


def device_slot(parts: tuple[str, ...]) -> int | None:
    """Index of the device component of a per-interface key (net.<fam>.<table>.DEV.PARAM)."""
    if len(parts) == 5 and parts[1] in FAMILIES and parts[2] in TABLES:
        return 3
    return None


def pattern_matches(pattern: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    """Component by component, same count; a netns-wide device (all, default, lo) only matches
    itself, never a wildcard or IFNAME."""
    if len(pattern) != len(parts):
        return False
    slot = device_slot(parts)
    for i, (want, have) in enumerate(zip(pattern, parts)):
        if want == have:
            continue
        if i == slot and have in NETNS_WIDE_DEVICES:
            return False
        if not _WILDCARDS.intersection(want) or not _glob(want, have):
            return False
    return True


# ---------------------------------------------------------------------------------------------
# Rules


class Rule:
    """One allow or deny rule, with where it was written (file:line, or the default set)."""

    __slots__ = ("kind", "text", "pattern", "values", "range", "max_fields", "override", "origin", "note")

    def __init__(
        self,
        kind: str,
        text: str,
        origin: str,
        *,
        values: frozenset[str] | None = None,
        int_range: tuple[int, int] | None = None,
        max_fields: int | None = None,
        override: bool = False,
        note: str = "",
    ) -> None:
        self.kind = kind
        self.text = text
        self.pattern = parse_pattern(text)
        self.values = values
        self.range = int_range
        self.max_fields = max_fields
        self.override = override
        self.origin = origin
        self.note = note

    def matches(self, parts: tuple[str, ...]) -> bool:
        return pattern_matches(self.pattern, parts)

    def refuses(self, value: str) -> str | None:
        """Why this rule does not accept `value` (None when it does)."""
        fields = normalise_value(value).split()
        if self.max_fields is not None and len(fields) > self.max_fields:
            return f"{value!r} has {len(fields)} fields, at most {self.max_fields} allowed"
        if self.values is not None and " ".join(fields) not in self.values:
            return f"{value!r} is not one of {', '.join(sorted(self.values, key=_order))}"
        if self.range is not None:
            lo, hi = self.range
            for field in fields:
                try:
                    number = int(field)
                except ValueError:
                    return f"{value!r}: {field!r} is not an integer in [{lo}, {hi}]"
                if not lo <= number <= hi:
                    return f"{value!r}: {number} is outside [{lo}, {hi}]"
        return None

    def conditions(self) -> str:
        out = []
        if self.values is not None:
            out.append("values " + ", ".join(sorted(self.values, key=_order)))
        if self.range is not None:
            out.append(f"range [{self.range[0]}, {self.range[1]}]")
        if self.max_fields is not None:
            out.append(f"max_fields {self.max_fields}")
        if self.override:
            out.append("override")
        return ", ".join(out) if out else "any value"

    def describe(self) -> str:
        """E.g. 'allow net.ipv4.tcp_keepalive_* (range [60, 7200]) at /etc/cni/cni-sysctl.yaml:4'."""
        cond = f" ({self.conditions()})" if self.kind == "allow" else ""
        where = f"in {self.origin}" if self.origin == BUILTIN else f"at {self.origin}"
        return f"{self.kind} {self.text}{cond} {where}"

    def __repr__(self) -> str:
        return f"Rule({self.describe()})"


def _order(value: str) -> tuple[int, str]:
    try:
        return (0, f"{int(value):020d}")
    except ValueError:
        return (1, value)


# The built-in default set, used for untrusted keys when there is no policy file (and by a policy
# file that says `include: default`): the net.* sysctls the kubelet treats as safe for any pod
# (kubelet pkg/kubelet/sysctl/safe_sysctls.go; Kubernetes docs "Using sysctls in a Kubernetes
# Cluster"), each bounded where the kernel accepts a harmful value. docs/policy.md has the
# sources, the Kubernetes and kernel versions and what the kernel was found to accept.
def default_set() -> list[Rule]:
    origin = BUILTIN
    return [
        Rule(
            "allow",
            "net.ipv4.ip_local_port_range",
            origin,
            int_range=(1024, 65535),
            max_fields=2,
            note="Kubernetes 1.4; below 1024 ephemeral source ports would pass for privileged ones",
        ),
        Rule(
            "allow",
            "net.ipv4.tcp_syncookies",
            origin,
            values=frozenset({"0", "1", "2"}),
            note="Kubernetes 1.4; the kernel takes any value up to 255",
        ),
        Rule(
            "allow",
            "net.ipv4.ping_group_range",
            origin,
            int_range=(0, 4294967294),
            max_fields=2,
            note="Kubernetes 1.18",
        ),
        Rule(
            "allow",
            "net.ipv4.ip_unprivileged_port_start",
            origin,
            int_range=(0, 65535),
            max_fields=1,
            note="Kubernetes 1.22; the kernel keeps it at or below ip_local_port_range's start",
        ),
        Rule(
            "allow",
            "net.ipv4.ip_local_reserved_ports",
            origin,
            max_fields=1,
            note="Kubernetes 1.27, kernel 3.16; a port list such as 8080,9000-9010",
        ),
        Rule(
            "allow",
            "net.ipv4.tcp_keepalive_time",
            origin,
            int_range=(1, 32767),
            max_fields=1,
            note="Kubernetes 1.29, kernel 4.5; the kernel takes 0 and negative times",
        ),
        Rule(
            "allow",
            "net.ipv4.tcp_fin_timeout",
            origin,
            int_range=(1, 120),
            max_fields=1,
            note="Kubernetes 1.29, kernel 4.6; 120 s is the kernel's cap for TCP_LINGER2",
        ),
        Rule(
            "allow",
            "net.ipv4.tcp_keepalive_intvl",
            origin,
            int_range=(1, 32767),
            max_fields=1,
            note="Kubernetes 1.29, kernel 4.5; the kernel takes 0 and negative intervals",
        ),
        Rule(
            "allow",
            "net.ipv4.tcp_keepalive_probes",
            origin,
            int_range=(1, 127),
            max_fields=1,
            note="Kubernetes 1.29, kernel 4.5; 127 is TCP_KEEPCNT's cap, the sysctl takes up to 255",
        ),
        Rule(
            "allow",
            "net.ipv4.tcp_rmem",
            origin,
            int_range=(4096, 33554432),
            max_fields=3,
            note="Kubernetes 1.32, kernel 4.15; the kernel takes up to 2 GiB per socket",
        ),
        Rule(
            "allow",
            "net.ipv4.tcp_wmem",
            origin,
            int_range=(4096, 33554432),
            max_fields=3,
            note="Kubernetes 1.32, kernel 4.15; the kernel takes up to 2 GiB per socket",
        ),
    ]
