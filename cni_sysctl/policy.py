"""The policy: which sysctls each source may set, with what values.

Three sources bring sysctls (config.py): the conflist's ``sysctl`` (trusted on a plain host:
the node administrator wrote it), and per attachment ``args.cni.sysctl`` and
``runtimeConfig.sysctl`` (untrusted: a pod author or a namespace admin chose them).

Without a policy file, untrusted keys are judged against the built-in default set (Kubernetes'
safe net.* sysctls, default_set()) and conflist keys are trusted. A policy file (YAML, README
"Policy for per-attachment sysctls") replaces the default set, or extends it::

    conflist: checked             # conflist keys need an allow rule too (default: trusted)
    include: default              # the built-in default set's rules come along
    allow:
      - ipv6.conf.accept_ra       # any value
      - key: net.ipv4.tcp_keepalive_*
        range: [60, 7200]         # every field an integer in [60, 7200]
        override: true            # may replace a value the conflist sets
      - key: ipv4.conf.rp_filter
        values: [0, 1, 2]
    deny:                         # every source, the conflist's too; deny wins over allow
      - net.ipv4.conf.IFNAME.proxy_arp

Patterns match component by component: ``*`` and ``?`` never cross a separator, so a pattern
only ever matches keys with as many components as it has; ``IFNAME`` (or ``*``) in the device
slot matches the container's interfaces, never ``all``, ``default`` or ``lo``, which are named
explicitly. Nothing here touches the kernel; PyYAML is imported only when a file is read.
"""

from __future__ import annotations

from .errors import CniError, PolicyDeniedError
from .keys import normalise_value
from .policyfile import PolicyFileError, YamlMap, YamlSeq, shown
from .policyrules import PatternError, Rule, default_set, device_slot

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .config import Config, Entry

TRUSTED = "trusted"
CHECKED = "checked"
DEFAULT_SET_NAME = "the built-in default set of Kubernetes' safe sysctls"
_TOP_LEVEL = ("conflist", "include", "allow", "deny")
_ALLOW_FIELDS = ("key", "values", "range", "max_fields", "override")


def source_label(source: str) -> str:
    from .config import SOURCE_CONFLIST

    return "the conflist (sysctl)" if source == SOURCE_CONFLIST else source


# ---------------------------------------------------------------------------------------------
# Verdicts and the policy


class Verdict:
    """What the policy said about one requested sysctl, and why."""

    __slots__ = ("entry", "allowed", "rule", "reason")

    def __init__(self, entry: Entry, allowed: bool, rule: Rule | None, reason: str) -> None:
        self.entry = entry
        self.allowed = allowed
        self.rule = rule
        self.reason = reason

    def __repr__(self) -> str:
        return f"Verdict({self.entry!r}: {'allowed' if self.allowed else 'denied'}, {self.reason})"


class Policy:
    """The rules in force: a policy file's, or the default set when there is no file."""

    __slots__ = ("path", "from_file", "conflist", "allow", "deny", "includes_default")

    def __init__(
        self,
        path: str,
        from_file: bool,
        conflist: str,
        allow: list[Rule],
        deny: list[Rule],
        includes_default: bool,
    ) -> None:
        self.path = path
        self.from_file = from_file
        self.conflist = conflist
        self.allow = allow
        self.deny = deny
        self.includes_default = includes_default

    def describe(self) -> str:
        if self.from_file:
            return f"policy {self.path}"
        return f"{DEFAULT_SET_NAME} (no policy file at {self.path})"

    def judge(self, entry: Entry) -> Verdict:
        parts = entry.key.parts
        canonical = ".".join(parts)
        for rule in self.deny:
            if rule.matches(parts):
                return Verdict(entry, False, rule, f"matches {rule.describe()}")
        if entry.trusted and self.conflist == TRUSTED:
            return Verdict(
                entry, True, None, "allowed: conflist keys are trusted (conflist: trusted), no deny rule matches"
            )
        matching = [r for r in self.allow if r.matches(parts)]
        if not matching:
            where = self.path if self.from_file else "the default set"
            why = f"no allow rule in {where} matches {canonical}"
            if not self.from_file and device_slot(parts) is not None:
                why += " (per-interface keys are never in the default set)"
            return Verdict(entry, False, None, why)
        reasons = []
        for rule in matching:
            refused = rule.refuses(entry.value)
            if refused is not None:
                reasons.append(f"{refused} (rule: {rule.describe()})")
                continue
            if entry.overrides is not None and not rule.override:
                reasons.append(
                    f"it overrides the conflist's value {entry.overrides.value!r}, and {rule.describe()} accepts "
                    "the value but not an override (that takes override: true on a rule of the policy file)"
                )
                continue
            return Verdict(entry, True, rule, f"allowed by {rule.describe()}")
        return Verdict(entry, False, matching[0], "; ".join(reasons))

    def judge_all(self, config: Config) -> list[Verdict]:
        return [self.judge(e) for e in config.requested]


def parse_policy(data: bytes, path: str) -> Policy:
    """The bytes of a policy file -> a Policy. Raises PolicyFileError (code 7) naming the line."""
    from .policyfile import parse_yaml

    doc = parse_yaml(data, path)

    def bad(line: int, why: str) -> PolicyFileError:
        return _bad(path, line, why)

    if not isinstance(doc, YamlMap):
        raise bad(getattr(doc, "line", 1), "the top level must be a mapping (conflist, include, allow, deny)")
    for name in doc:
        if name not in _TOP_LEVEL:
            raise bad(doc.key_lines[name], f"unknown top-level key {shown(name)} (expected {', '.join(_TOP_LEVEL)})")
    conflist = doc.get("conflist", TRUSTED)
    if conflist not in (TRUSTED, CHECKED):
        raise bad(doc.key_lines.get("conflist", 1), f"conflist must be {TRUSTED} or {CHECKED}, not {shown(conflist)}")
    include = doc.get("include")
    if include is not None and include != "default":
        raise bad(
            doc.key_lines["include"], f"include must be 'default' (the built-in default set), not {shown(include)}"
        )

    def items(name: str) -> list[tuple[int, object]]:
        seq = doc.get(name)
        if seq is None:
            return []
        if not isinstance(seq, YamlSeq):
            raise bad(doc.key_lines[name], f"{name!r} must be a list of rules")
        return list(zip(seq.item_lines, seq))

    allow = [_rule("allow", item, line, path) for line, item in items("allow")]
    deny = [_rule("deny", item, line, path) for line, item in items("deny")]
    if include == "default":
        allow += default_set()
    return Policy(path, True, str(conflist), allow, deny, include == "default")


def _bad(path: str, line: int, why: str) -> PolicyFileError:
    return PolicyFileError(
        f"policy file {path}:{line} is invalid: {why}", "see README.md, 'Policy for per-attachment sysctls'"
    )


def _rule(kind: str, item: object, line: int, path: str) -> Rule:
    """One item of `allow` or `deny` (at `line`) -> a Rule."""

    def bad(at_line: int, why: str) -> PolicyFileError:
        return _bad(path, at_line, why)

    origin = f"{path}:{line}"
    if isinstance(item, str):
        text, fields = item, YamlMap(line)
    elif isinstance(item, YamlMap):
        allowed = _ALLOW_FIELDS if kind == "allow" else ("key",)
        for name in item:
            if name not in allowed:
                raise bad(
                    item.key_lines[name], f"{kind} rule: unknown field {shown(name)} (expected {', '.join(allowed)})"
                )
        key = item.get("key")
        if not isinstance(key, str):
            raise bad(line, f"{kind} rule: 'key' (a key pattern) is required")
        text, fields = key, item
    else:
        raise bad(line, f"{kind} rule must be a key pattern or a mapping with 'key', not {shown(item)}")

    def at(name: str) -> int:
        return fields.key_lines.get(name, line)

    values = fields.get("values")
    value_set = None
    if values is not None:
        if not isinstance(values, YamlSeq) or not values:
            raise bad(at("values"), "values must be a non-empty list of scalars")
        value_set = set()
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (str, int)) or str(v).strip() == "":
                raise bad(at("values"), f"values holds {shown(v)}: write integers or strings (quote yes/no/on/off)")
            value_set.add(normalise_value(str(v)))
    int_range = fields.get("range")
    bounds = None
    if int_range is not None:
        if (
            not isinstance(int_range, YamlSeq)
            or len(int_range) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) for n in int_range)
            or int_range[0] > int_range[1]
        ):
            raise bad(at("range"), "range must be [min, max], two integers with min <= max")
        bounds = (int(int_range[0]), int(int_range[1]))
    max_fields = fields.get("max_fields")
    if max_fields is not None and (isinstance(max_fields, bool) or not isinstance(max_fields, int) or max_fields < 1):
        raise bad(at("max_fields"), "max_fields must be a positive integer")
    override = fields.get("override", False)
    if not isinstance(override, bool):
        raise bad(at("override"), "override must be true or false")
    try:
        return Rule(
            kind,
            text,
            origin,
            values=frozenset(value_set) if value_set is not None else None,
            int_range=bounds,
            max_fields=max_fields,
            override=override,
        )
    except PatternError as exc:
        raise bad(at("key") if isinstance(item, YamlMap) else line, f"key pattern {shown(text)}: {exc}") from None


# ---------------------------------------------------------------------------------------------
# Loading and enforcing


def default_policy(path: str) -> Policy:
    """No policy file at `path`: the default set for untrusted keys, conflist keys trusted."""
    return Policy(path, False, TRUSTED, default_set(), [], True)


def load(path: str) -> Policy | None:
    """The policy file at `path`, read the trusted way (policyfile.read); None when absent."""
    from .policyfile import read

    data = read(path)
    if data is None:
        return None
    return parse_policy(data, path)


def for_config(config: Config) -> Policy:
    """The policy in force for an attachment: the file the conflist names (default
    /etc/cni/cni-sysctl.yaml), or the default set when there is none.

    A conflist may not escape the node's policy: when /etc/cni/cni-sysctl.yaml says
    ``conflist: checked``, a conflist naming another policy file is refused.
    """
    from .config import DEFAULT_POLICY

    path = config.policy
    if config.policy_explicit and path != DEFAULT_POLICY:  # any other spelling is another file
        node = load(DEFAULT_POLICY)
        if node is not None and node.conflist == CHECKED:
            raise PolicyDeniedError(
                f"the conflist names the policy file {path}, but the node's policy {DEFAULT_POLICY} checks "
                f"conflists (conflist: checked), so a conflist cannot choose the policy that judges it",
                f'remove "policy" from the conflist; the node administrator sets the rules in {DEFAULT_POLICY}',
            )
    return load(path) or default_policy(path)


def enforce(config: Config) -> list[Verdict]:
    """Judge every requested sysctl (all sources, overridden ones too) before anything is
    written; raise PolicyDeniedError (100) naming each refused key, its source and the policy."""
    policy = for_config(config)
    verdicts = policy.judge_all(config)
    denied = [v for v in verdicts if not v.allowed]
    if denied:
        raise denial(policy, denied)
    return verdicts


def denial(policy: Policy, denied: list[Verdict]) -> CniError:
    listed = "; ".join(
        f"{v.entry.key.text}={v.entry.value!r} from {source_label(v.entry.source)}: {v.reason}" for v in denied
    )
    if policy.from_file:
        hint = f"nothing was written; the node administrator decides what {policy.path} allows"
        if any(v.entry.trusted for v in denied):
            hint += "; its deny rules, and under conflist: checked its allow rules, bind conflist keys too"
    else:
        hint = (
            "nothing was written; without a policy file, per-attachment sysctls may only be those of the default "
            f"set, within its bounds; the node administrator can allow more in {policy.path} "
            "(README.md, 'Policy for per-attachment sysctls')"
        )
    return PolicyDeniedError(f"{policy.describe()} refuses {listed}", hint)
