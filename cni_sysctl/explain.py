"""Operator commands that judge without a netns or root: `cni-sysctl explain` and
`cni-sysctl policy check`.

`explain` reads a plugin configuration or a whole conflist (its cni-sysctl element is used) from
FILE or stdin, adds the per-attachment sysctls given with --args / --runtime-config, and prints
for every requested key: its source, the policy's verdict with the rule (file and line), the
concrete sysctls ADD would write with whether each needs the link bounced, and a did-you-mean
when this machine has no such sysctl (from the names below /proc/sys/net: directory listings
only, nothing is opened for reading or writing). It exits 1 when ADD would fail.

`policy check FILE` reads FILE the way ADD does (ownership and mode included) and prints its
rules, or the reason ADD would refuse it.
"""

from __future__ import annotations

import json

from .errors import CniError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO, TextIO

    from .config import Config, Entry
    from .plan import Plan, Write
    from .policy import Policy

EXPLAIN_USAGE = (
    "usage: cni-sysctl explain [CONFLIST | -] [--args JSON] [--runtime-config JSON] [--policy FILE] "
    "[--ifname NAME ...]\n"
    "  CONFLIST     a conflist or one plugin config (default: stdin; none needed with --args or\n"
    "               --runtime-config)\n"
    '  --args       args.cni of the attachment: {"sysctl": [...]} (Multus cni-args), or the sysctls\n'
    '  --runtime-config  runtimeConfig of the attachment: {"sysctl": {...}}, or the sysctls\n'
    "  --policy     judge with this policy file instead of the one the conflist names\n"
    "  --ifname     a container interface (repeatable; default eth0)\n"
)
POLICY_USAGE = "usage: cni-sysctl policy check FILE\n"
PROC_SYS = "/proc/sys"
_OPTIONS = ("--args", "--runtime-config", "--policy", "--ifname")


def _plugin_config(obj: dict[str, object]) -> dict[str, object]:
    plugins = obj.get("plugins")
    if not isinstance(plugins, list):
        return obj
    for plugin in plugins:
        if isinstance(plugin, dict) and plugin.get("type") == "cni-sysctl":
            merged = dict(plugin)
            merged.setdefault("cniVersion", obj.get("cniVersion"))
            merged.setdefault("name", obj.get("name"))
            return merged
    raise CniError("the conflist has no element of type cni-sysctl")


def _sysctls(option: str, text: str) -> object:
    """--args / --runtime-config: {"sysctl": X} (other members ignored, as the plugin does), or
    X itself (a list of "key=value" strings or an object of keys)."""
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise CniError(f"{option}: not valid JSON ({exc})") from None
    if isinstance(obj, dict) and "sysctl" in obj:
        return obj["sysctl"]
    if isinstance(obj, (dict, list)):
        return obj
    raise CniError(f'{option}: expected {{"sysctl": ...}}, a list of "key=value" strings or an object')


def _names_in(directory: tuple[str, ...]) -> list[str] | None:
    import os

    try:
        return os.listdir("/".join((PROC_SYS, *directory)))
    except OSError:
        return None


def _on_this_machine(entry: Entry) -> str | None:
    """None when this machine has the sysctl; otherwise what ADD would say, with a did-you-mean.
    Per-interface keys are looked up under `default`, the template of every interface."""
    import os

    from .keys import PLACEHOLDER, did_you_mean

    parts = tuple("default" if p == PLACEHOLDER else p for p in entry.key.parts)
    path = "/".join((PROC_SYS, *parts))
    if os.path.isfile(path):
        return None
    if os.path.isdir(path):
        return "names a directory, not a sysctl"
    guess = did_you_mean(entry.key.parts, _names_in)
    return "no such sysctl on this machine" + (f"; did you mean {guess}?" if guess else "")


def _bounce(write: Write, plan: Plan) -> str:
    bounced = write.ifname is not None and write.ifname in plan.bounce_ifnames
    if write.after_ready:
        ready = "written once the link is ready (the kernel resets it then)"
        return f"{ready}, after the link bounce" if bounced else ready
    if write.needs_bounce:
        return "needs link bounce" if bounced else f"needs link bounce, but linkBounce is {plan.link_bounce}"
    return f"written during the link bounce (linkBounce {plan.link_bounce})" if bounced else "no bounce"


def describe_policy(policy: Policy) -> str:
    from .policy import DEFAULT_SET_NAME
    from .policyrules import BUILTIN

    if not policy.from_file:
        return f"none at {policy.path}: per-attachment keys are judged by {DEFAULT_SET_NAME}, conflist keys are trusted"
    own = [r for r in policy.allow if r.origin != BUILTIN]
    extra = " + the default set" if policy.includes_default else ""
    return (
        f"{policy.path} (conflist: {policy.conflist}; {len(own)} allow rule{'s' * (len(own) != 1)}{extra}, "
        f"{len(policy.deny)} deny rule{'s' * (len(policy.deny) != 1)})"
    )


def _parse_argv(argv: list[str]) -> dict[str, list[str]] | None:
    opts: dict[str, list[str]] = {name: [] for name in (*_OPTIONS, "file")}
    args = list(argv)
    while args:
        arg = args.pop(0)
        name, eq, value = arg.partition("=")
        if name in _OPTIONS:
            if not eq:
                if not args:
                    return None
                value = args.pop(0)
            opts[name].append(value)
        elif (not arg.startswith("-") or arg == "-") and not opts["file"]:
            opts["file"].append(arg)
        else:
            return None
    if len(opts["--args"]) > 1 or len(opts["--runtime-config"]) > 1 or len(opts["--policy"]) > 1:
        return None
    return opts


def _member(obj: dict[str, object], name: str) -> dict[str, object]:
    """A copy of the object member `name` (empty when absent or not an object)."""
    value = obj.get(name)
    return dict(value) if isinstance(value, dict) else {}


def _read_config(opts: dict[str, list[str]], stdin: BinaryIO | None) -> Config:
    from .config import decode, parse_config

    path = opts["file"][0] if opts["file"] else None
    if path is None and (opts["--args"] or opts["--runtime-config"]):
        obj: dict[str, object] = {"cniVersion": "1.1.0", "name": "explain", "type": "cni-sysctl"}
    else:
        if path is None or path == "-":
            import sys

            data = (stdin or sys.stdin.buffer).read()
        else:
            with open(path, "rb") as f:
                data = f.read()
        obj = _plugin_config(decode(data))
    if opts["--args"]:
        args = _member(obj, "args")
        cni = _member(args, "cni")
        cni["sysctl"] = _sysctls("--args", opts["--args"][0])
        args["cni"] = cni
        obj["args"] = args
    if opts["--runtime-config"]:
        runtime = _member(obj, "runtimeConfig")
        runtime["sysctl"] = _sysctls("--runtime-config", opts["--runtime-config"][0])
        obj["runtimeConfig"] = runtime
    return parse_config(obj)


def _message(exc: BaseException) -> str:
    if isinstance(exc, CniError):
        return f"error {int(exc.code)}: {exc.msg}" + (f" ({exc.details})" if exc.details else "")
    return str(exc)


def main(argv: list[str], stdin: BinaryIO | None, stdout: TextIO, stderr: TextIO) -> int:
    from . import policy as policy_module
    from .plan import build_plan
    from .policy import source_label

    opts = _parse_argv(argv)
    if opts is None:
        stderr.write(EXPLAIN_USAGE)
        return 2
    try:
        config = _read_config(opts, stdin)
        plan = build_plan(config, opts["--ifname"] or ["eth0"])
        if opts["--policy"]:
            path = opts["--policy"][0]
            policy = policy_module.load(path) or policy_module.default_policy(path)
        else:
            policy = policy_module.for_config(config)
    except (CniError, OSError, ValueError) as exc:
        stderr.write(f"cni-sysctl explain: ADD would fail: {_message(exc)}\n")
        return 1

    stdout.write(f"policy: {describe_policy(policy)}\n")
    verdicts = policy.judge_all(config)
    problems: list[str] = []
    for entry, verdict in zip(config.requested, verdicts):
        stdout.write(f"{entry.key.text} = {entry.value}   from {source_label(entry.source)}\n")
        note = f" [{verdict.rule.note}]" if verdict.rule is not None and verdict.rule.note else ""
        verdict_text = verdict.reason if verdict.allowed else f"DENIED: {verdict.reason}"
        stdout.write(f"  policy: {verdict_text}{note}\n")
        if entry.overridden_by is not None:
            later = entry.overridden_by
            stdout.write(f"  not written: {source_label(later.source)} sets it to {later.value!r}\n")
            continue
        missing = _on_this_machine(entry)
        if missing is not None:
            stdout.write(f"  kernel: {missing}\n")
            problems.append(f"{entry.key.text}: {missing}")
        for write in plan.writes:
            if write.entry is entry:
                stdout.write(f"  {write.name} = {write.value}   [{_bounce(write, plan)}]\n")
    if plan.bounce_ifnames:
        stdout.write(
            f"link bounce ({plan.link_bounce}): {', '.join(plan.bounce_ifnames)} set down, written, "
            "set up, addresses and routes restored\n"
        )
    denied = [v for v in verdicts if not v.allowed]
    if denied:
        problems.insert(0, _message(policy_module.denial(policy, denied)))
    if problems:
        stdout.write("ADD would fail:\n" + "".join(f"  {p}\n" for p in problems))
        return 1
    stdout.write("ADD would write these values.\n")
    if plan.writes:
        stdout.write(
            "note: containerd runs CNI ADD before it creates the pod sandbox, so a pod's "
            "securityContext.sysctls (CRI linux.sysctls) on the same key are written after these and win.\n"
        )
    return 0


def policy_main(argv: list[str], stdout: TextIO, stderr: TextIO) -> int:
    """`cni-sysctl policy check FILE`."""
    from . import policy as policy_module
    from .policyrules import BUILTIN

    if len(argv) != 2 or argv[0] != "check":
        stderr.write(POLICY_USAGE)
        return 2
    path = argv[1]
    try:
        policy = policy_module.load(path)
    except CniError as exc:
        stderr.write(f"cni-sysctl policy check: ADD would refuse it: {_message(exc)}\n")
        return 1
    if policy is None:
        stderr.write(f"cni-sysctl policy check: no file at {path} (ADD would use the built-in default set)\n")
        return 1
    stdout.write(f"{path}: trusted and valid\n  conflist: {policy.conflist}\n")
    for kind, rules in (("allow", policy.allow), ("deny", policy.deny)):
        stdout.write(f"  {kind}:\n")
        for rule in rules:
            if rule.origin == BUILTIN:
                continue
            line = rule.origin.rsplit(":", 1)[-1]
            cond = f" ({rule.conditions()})" if kind == "allow" else ""
            stdout.write(f"    line {line}: {rule.text}{cond}\n")
        if kind == "allow" and policy.includes_default:
            stdout.write("    include: default (the built-in default set)\n")
    return 0
