"""The administrator's policy for untrusted, per-attachment sysctls.

Sysctls in the conflist are the administrator's own and are not checked here. Those that
arrive with the attachment (``args.cni.sysctl`` from e.g. a Multus network selection,
``runtimeConfig.sysctl`` from the runtime) are refused unless an ``allow`` rule matches::

    allow:
      - ipv6.conf.accept_ra                 # any value
      - key: net.ipv4.tcp_keepalive_*       # fnmatch pattern over the key
        range: [60, 7200]                   # integer values in this range
      - key: ipv4.conf.rp_filter
        values: ["0", "1", "2"]             # exactly these values

Patterns may use the short form; they are matched against the key in IFNAME form.
PyYAML is imported only when a policy is actually read.
"""

from __future__ import annotations

import os

from .errors import ConfigError, NotAvailableError, PolicyDeniedError
from .keys import FAMILIES, PLACEHOLDER, TABLES, normalise_value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .config import Entry


class Rule:
    __slots__ = ("pattern", "values", "range")

    def __init__(self, pattern: str, values: list[str] | None, int_range: tuple[int, int] | None) -> None:
        self.pattern = pattern
        self.values = values
        self.range = int_range

    def allows(self, canonical: str, value: str) -> bool:
        from fnmatch import fnmatchcase

        if not fnmatchcase(canonical, self.pattern):
            return False
        if self.values is not None and normalise_value(value) not in self.values:
            return False
        if self.range is not None:
            fields = value.split()
            try:
                nums = [int(f) for f in fields]
            except ValueError:
                return False
            lo, hi = self.range
            return bool(nums) and all(lo <= n <= hi for n in nums)
        return True


def canonical_pattern(pattern: str) -> str:
    """Short-form patterns (ipv6.conf.accept_ra) become IFNAME-form ones."""
    parts = pattern.replace("/", ".").split(".")
    if len(parts) == 3 and parts[0] in FAMILIES and parts[1] in TABLES:
        return ".".join(("net", parts[0], parts[1], PLACEHOLDER, parts[2]))
    return ".".join(parts)


class Policy:
    __slots__ = ("path", "rules")

    def __init__(self, path: str, rules: list[Rule]) -> None:
        self.path = path
        self.rules = rules

    def check(self, entries: list[Entry]) -> None:
        """Raise PolicyDeniedError naming every untrusted entry no rule allows."""
        denied = [
            f"{e.key.text}={e.value!r} (from {e.source})"
            for e in entries
            if not any(r.allows(e.key.canonical, e.value) for r in self.rules)
        ]
        if denied:
            raise PolicyDeniedError(
                f"policy {self.path} does not allow: " + ", ".join(denied),
                f"ask the node administrator to add an allow rule to {self.path}, or move the "
                'key into the conflist\'s "sysctl"',
            )


def _bad(path: str, why: str) -> ConfigError:
    return ConfigError(f"policy file {path} is invalid: {why}", "see README.md, 'Policy for per-attachment sysctls'")


def load(path: str) -> Policy:
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError as exc:
        raise NotAvailableError(f"policy file {path} cannot be read: {exc.strerror}") from None
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        doc = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise _bad(path, str(exc).replace("\n", " ")) from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise _bad(path, "the top level must be a mapping with an 'allow' list")
    unknown = set(doc) - {"allow"}
    if unknown:
        raise _bad(path, f"unknown top-level keys {sorted(map(str, unknown))}")
    allow = doc.get("allow") or []
    if not isinstance(allow, list):
        raise _bad(path, "'allow' must be a list")
    rules: list[Rule] = []
    for i, item in enumerate(allow):
        if isinstance(item, str):
            rules.append(Rule(canonical_pattern(item), None, None))
            continue
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise _bad(path, f"allow[{i}] must be a key pattern or a mapping with 'key'")
        extra = set(item) - {"key", "values", "range"}
        if extra:
            raise _bad(path, f"allow[{i}] has unknown fields {sorted(map(str, extra))}")
        values = item.get("values")
        if values is not None:
            if not isinstance(values, list) or not values:
                raise _bad(path, f"allow[{i}].values must be a non-empty list")
            values = [normalise_value(str(v)) for v in values]
        int_range = item.get("range")
        if int_range is not None:
            if (
                not isinstance(int_range, list)
                or len(int_range) != 2
                or not all(isinstance(n, int) and not isinstance(n, bool) for n in int_range)
                or int_range[0] > int_range[1]
            ):
                raise _bad(path, f"allow[{i}].range must be [min, max] integers")
            int_range = (int_range[0], int_range[1])
        rules.append(Rule(canonical_pattern(item["key"]), values, int_range))
    return Policy(path, rules)


def check_untrusted(entries: list[Entry], path: str) -> None:
    """Untrusted entries need a policy that allows each of them."""
    if not entries:
        return
    if not os.path.exists(path):
        keys = ", ".join(e.key.text for e in entries)
        raise PolicyDeniedError(
            f"per-attachment sysctls {keys} refused: no policy file at {path}",
            f"sysctls from {entries[0].source} are untrusted; the node administrator must allow "
            f"them in {path} (see README.md, 'Policy for per-attachment sysctls')",
        )
    load(path).check(entries)
