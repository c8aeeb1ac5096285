"""stdin JSON -> a typed plugin configuration.

Every sysctl entry is tagged with where it came from: the conflist (trusted on a plain host,
written by the node's administrator) or the runtime (``args.cni.sysctl``,
``runtimeConfig.sysctl``: untrusted, per attachment). The policy judges them (policy.py).

Precedence (README, "Policy for per-attachment sysctls"): the conflist, then args.cni, then
runtimeConfig. A key set by a later source replaces the earlier value: the earlier entry is not
written. An untrusted value for a key the conflist sets is an override, which the policy must
allow explicitly. A key given twice by the same source is an error.
"""

from __future__ import annotations

from . import MAX_STDIN, SUPPORTED_VERSIONS
from .errors import ConfigError, DecodingError, UnsupportedFieldError, VersionError
from .jsonio import dumps, loads
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
_OWN_FIELDS = ("sysctl", "linkBounce", "policy", "logFile", "logLevel")


class Entry:
    """One requested sysctl, in declared order.

    ``overrides``: for an untrusted entry, the conflist entry of the same key (None when the
    conflist does not set it). ``overridden_by``: the later entry of the same key that replaces
    this one (None when this one is written).
    """

    __slots__ = ("key", "value", "source", "overrides", "overridden_by")

    def __init__(self, key: Key, value: str, source: Source) -> None:
        self.key = key
        self.value = value
        self.source = source
        self.overrides: Entry | None = None
        self.overridden_by: Entry | None = None

    @property
    def trusted(self) -> bool:
        return self.source not in UNTRUSTED_SOURCES

    def __repr__(self) -> str:
        return f"Entry({self.key.text!r}={self.value!r} from {self.source})"


class Config:
    """``requested``: every sysctl of every source, in precedence order; ``entries``: those that
    are written (requested minus the overridden ones), in the same order."""

    __slots__ = (
        "cni_version", "name", "requested", "entries", "link_bounce", "policy", "policy_explicit", "prev_result",
        "valid_attachments",
    )  # fmt: skip

    def __init__(
        self,
        cni_version: str,
        name: str,
        requested: list[Entry],
        link_bounce: LinkBounce,
        policy: str,
        policy_explicit: bool,
        prev_result: dict[str, object] | None,
        valid_attachments: list[tuple[str, str]] | None = None,
    ) -> None:
        self.cni_version = cni_version
        self.name = name
        self.requested = requested
        self.entries = [e for e in requested if e.overridden_by is None]
        self.link_bounce = link_bounce
        self.policy = policy
        self.policy_explicit = policy_explicit
        self.prev_result = prev_result
        # GC (1.1.0): the attachments (container id, ifname) the runtime still knows of
        self.valid_attachments = valid_attachments

    @property
    def untrusted(self) -> list[Entry]:
        return [e for e in self.requested if not e.trusted]


def version_tuple(version: str) -> tuple[int, ...]:
    """The one parser of CNI version strings ("1.0.0" -> (1, 0, 0))."""
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError:
        raise DecodingError(f"cniVersion {version!r} is not a version number") from None


class _Members(dict):  # type: ignore[type-arg]
    """A JSON object in which a member name was repeated (json keeps the last silently)."""

    repeated: list[str]


def _members(pairs: list[tuple[str, object]]) -> dict[str, object]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    marked = _Members(obj)
    marked.repeated = []
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            marked.repeated.append(name)
        seen.add(name)
    return marked


def decode(data: bytes) -> dict[str, object]:
    """Decode the stdin bytes into a JSON object (code 6 when that fails). An object that
    repeats a member name is marked (see _entries: a key given twice is an error)."""
    if len(data) > MAX_STDIN:
        raise DecodingError(
            f"network configuration on stdin larger than {MAX_STDIN >> 20} MiB", f"at most {MAX_STDIN} bytes"
        )
    try:
        obj = loads(data, object_pairs_hook=_members)
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
    if isinstance(raw, _Members):
        raise ConfigError(
            f"{source}: key {raw.repeated[0]!r} given twice",
            "give each key once; the JSON object keeps only the last value",
        )
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
    first: dict[Key, str] = {}
    for k, v in items:
        key = parse_key(k)
        if key in first:
            spelled = repr(k) if first[key] == k else f"{first[key]!r} and {k!r}"
            raise ConfigError(
                f"{source}: key {key.canonical} given twice ({spelled})",
                "give each key once: a source sets each sysctl at most once",
            )
        first[key] = k
        out.append(Entry(key, check_value(k, v), source))
    return out


def _resolve_precedence(requested: list[Entry]) -> None:
    """Later sources win: mark each replaced entry, and each untrusted entry whose key the
    conflist sets (an override, which the policy must allow explicitly)."""
    last: dict[Key, Entry] = {}
    conflist: dict[Key, Entry] = {}
    for e in requested:
        last[e.key] = e
        if e.source == SOURCE_CONFLIST:
            conflist[e.key] = e
    for e in requested:
        winner = last[e.key]
        if winner is not e:
            e.overridden_by = winner
        if not e.trusted:
            e.overrides = conflist.get(e.key)


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
                    f"unsupported field {field!r}: {dumps(obj[field])[:80]}",
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

    if "logFile" in obj or "logLevel" in obj:
        from .calllog import LOG_LEVELS, log_file_problem

        problem = log_file_problem(obj.get("logFile")) if "logFile" in obj else None
        if problem is not None:
            raise ConfigError(f"logFile {obj.get('logFile')!r} {problem}", 'e.g. "/var/log/cni-sysctl/calls.log"')
        if obj.get("logLevel", "verbose") not in LOG_LEVELS:
            raise ConfigError(f"logLevel {obj.get('logLevel')!r} is not one of {', '.join(LOG_LEVELS)}")

    requested = _entries(obj.get("sysctl"), SOURCE_CONFLIST)
    requested += _entries(_nested(obj, "args", "cni", "sysctl"), SOURCE_ARGS)
    requested += _entries(_nested(obj, "runtimeConfig", "sysctl"), SOURCE_RUNTIME)
    _resolve_precedence(requested)

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
        requested=requested,
        link_bounce=mode,
        policy=policy if isinstance(policy, str) else DEFAULT_POLICY,
        policy_explicit=policy is not None,
        prev_result=prev,
        valid_attachments=_valid_attachments(obj),
    )
