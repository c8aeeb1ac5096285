"""stdin JSON -> a typed plugin configuration.

Every sysctl entry is tagged with where it came from: the conflist (trusted, written by the
node's administrator) or the runtime (``args.cni.sysctl``, ``runtimeConfig.sysctl``: untrusted,
per attachment, checked against the policy).
"""

from __future__ import annotations

import json

from . import MAX_STDIN, SUPPORTED_VERSIONS
from .errors import ConfigError, DecodingError, UnsupportedFieldError, VersionError
from .request import text_problem, valid_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final, Literal

    from .keys import Key

    LinkBounce = Literal["auto", "always", "never"]
    Source = Literal["sysctl", "args.cni.sysctl", "runtimeConfig.sysctl"]

LINK_BOUNCE_MODES: tuple[LinkBounce, ...] = ("auto", "always", "never")
DEFAULT_POLICY = "/etc/cni/cni-sysctl.yaml"

SOURCE_CONFLIST: Final = "sysctl"
SOURCE_ARGS: Final = "args.cni.sysctl"
SOURCE_RUNTIME: Final = "runtimeConfig.sysctl"
UNTRUSTED_SOURCES: tuple[Source, ...] = (SOURCE_ARGS, SOURCE_RUNTIME)

# Fields of ours a slip of the keyboard could miss; an unknown look-alike is refused (code 2)
# rather than silently ignored.
_OWN_FIELDS = ("sysctl", "linkBounce", "policy")


class Entry:
    """One requested sysctl, in declared order."""

    __slots__ = ("key", "value", "source")

    def __init__(self, key: Key, value: str, source: Source) -> None:
        self.key = key
        self.value = value
        self.source = source

    @property
    def trusted(self) -> bool:
        return self.source not in UNTRUSTED_SOURCES

    def __repr__(self) -> str:
        return f"Entry({self.key.text!r}={self.value!r} from {self.source})"


class Config:
    __slots__ = (
        "cni_version", "name", "entries", "link_bounce", "policy", "policy_explicit", "prev_result",
        "valid_attachments",
    )  # fmt: skip

    def __init__(
        self,
        cni_version: str,
        name: str,
        entries: list[Entry],
        link_bounce: LinkBounce,
        policy: str,
        policy_explicit: bool,
        prev_result: dict[str, object] | None,
        valid_attachments: list[tuple[str, str]] | None = None,
    ) -> None:
        self.cni_version = cni_version
        self.name = name
        self.entries = entries
        self.link_bounce = link_bounce
        self.policy = policy
        self.policy_explicit = policy_explicit
        self.prev_result = prev_result
        # GC (1.1.0): the attachments (container id, ifname) the runtime still knows of
        self.valid_attachments = valid_attachments

    @property
    def untrusted(self) -> list[Entry]:
        return [e for e in self.entries if not e.trusted]


def version_tuple(version: str) -> tuple[int, ...]:
    """The one parser of CNI version strings ("1.0.0" -> (1, 0, 0))."""
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError:
        raise DecodingError(f"cniVersion {version!r} is not a version number") from None


def decode(data: bytes) -> dict[str, object]:
    """Decode the stdin bytes into a JSON object (code 6 when that fails)."""
    if len(data) > MAX_STDIN:
        raise DecodingError(f"network configuration on stdin larger than {MAX_STDIN >> 20} MiB")
    try:
        obj = json.loads(data)
    except ValueError as exc:
        raise DecodingError("network configuration on stdin is not valid JSON", str(exc)) from None
    except RecursionError:
        raise DecodingError("network configuration on stdin is nested too deeply to decode") from None
    if not isinstance(obj, dict):
        raise DecodingError("network configuration on stdin must be a JSON object")
    if _too_deep(obj):
        raise DecodingError(f"network configuration on stdin is nested more than {MAX_DEPTH} levels deep")
    return obj


MAX_DEPTH = 64  # no configuration needs more; deeper ones would make repr() and json.dumps() recurse


def _too_deep(obj: object) -> bool:
    stack = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        if isinstance(value, dict):
            stack += [(v, depth + 1) for v in value.values()]
        elif isinstance(value, list):
            stack += [(v, depth + 1) for v in value]
    return False


def cni_version_of(obj: dict[str, object]) -> str:
    version = obj.get("cniVersion")
    if version is None or version == "":
        raise VersionError(
            "cniVersion missing from the network configuration",
            f"this plugin supports {', '.join(SUPPORTED_VERSIONS)}",
        )
    if not isinstance(version, str):
        raise DecodingError(f"cniVersion {version!r} must be a string")
    if version not in SUPPORTED_VERSIONS:
        version_tuple(version)
        raise VersionError(
            f"incompatible CNI versions: config is {version!r}",
            f"this plugin supports {', '.join(SUPPORTED_VERSIONS)}",
        )
    return version


def _entries(raw: object, source: Source) -> list[Entry]:
    from .keys import check_value, parse_key  # not needed by DEL, which never parses keys

    if raw is None:
        return []
    out: list[Entry] = []
    if isinstance(raw, dict):
        items = list(raw.items())
    elif isinstance(raw, list):
        items = []
        for item in raw:
            if not isinstance(item, str) or "=" not in item:
                raise ConfigError(
                    f'{source}: list item {item!r} is not a "key=value" string',
                    'write list items as "ipv6.conf.accept_ra=2"',
                )
            k, _, v = item.partition("=")
            items.append((k.strip(), v.strip()))
    else:
        raise ConfigError(
            f'{source} must be an object or a list of "key=value" strings, not {type(raw).__name__}',
            'e.g. {"ipv6.conf.accept_ra": "2"} or ["ipv6.conf.accept_ra=2"]',
        )
    for k, v in items:
        key = parse_key(k)
        out.append(Entry(key, check_value(k, v), source))
    return out


def _nested(obj: dict[str, object], *path: str) -> object:
    cur: object = obj
    for p in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(p)
    return cur


def _valid_attachments(obj: dict[str, object]) -> list[tuple[str, str]] | None:
    raw = obj.get("cni.dev/valid-attachments")
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise ConfigError("cni.dev/valid-attachments must be a list")
    out = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("containerID"), str):
            raise ConfigError(f"cni.dev/valid-attachments entry {item!r} has no containerID")
        ifname = item.get("ifname")
        out.append((str(item["containerID"]), ifname if isinstance(ifname, str) else ""))
    return out


def parse_config(obj: dict[str, object], *, need_prev_result: bool = False) -> Config:
    """The typed configuration of a decoded stdin (decode())."""
    version = cni_version_of(obj)
    name = obj.get("name")
    if not isinstance(name, str) or name == "":
        raise ConfigError("missing network name", 'set "name" in the conflist')
    if not valid_id(name):
        raise ConfigError(
            f"invalid network name {name!r}",
            "names hold only letters, digits, '_', '.', '-' and start with a letter or digit",
        )
    for field in obj:
        folded = field.lower().rstrip("s")
        for own in _OWN_FIELDS:
            if field != own and folded == own.lower():
                raise UnsupportedFieldError(
                    f"unsupported field {field!r}: {json.dumps(obj[field])[:80]}",
                    f"did you mean {own!r}?",
                )

    link_bounce = obj.get("linkBounce", "auto")
    for mode in LINK_BOUNCE_MODES:
        if link_bounce == mode:
            break
    else:
        raise ConfigError(
            f"linkBounce {link_bounce!r} is not one of {', '.join(LINK_BOUNCE_MODES)}",
            "auto bounces the link only when a key needs it",
        )
    policy = obj.get("policy")
    if policy is not None and (
        not isinstance(policy, str) or not policy.startswith("/") or text_problem(policy) or "\x00" in policy
    ):
        raise ConfigError(f"policy {policy!r} must be an absolute path to a YAML file")

    entries = _entries(obj.get("sysctl"), SOURCE_CONFLIST)
    entries += _entries(_nested(obj, "args", "cni", "sysctl"), SOURCE_ARGS)
    entries += _entries(_nested(obj, "runtimeConfig", "sysctl"), SOURCE_RUNTIME)

    prev = obj.get("prevResult")
    if prev is not None and not isinstance(prev, dict):
        raise ConfigError("prevResult must be a JSON object")
    if need_prev_result and prev is None:
        raise ConfigError(
            "prevResult missing: cni-sysctl is a chained plugin",
            "place it after an interface-creating plugin (bridge, macvlan, ipvlan, ptp, "
            "host-device, vlan) in a conflist",
        )
    return Config(
        cni_version=version,
        name=name,
        entries=entries,
        link_bounce=mode,
        policy=policy if isinstance(policy, str) else DEFAULT_POLICY,
        policy_explicit=policy is not None,
        prev_result=prev,
        valid_attachments=_valid_attachments(obj),
    )
