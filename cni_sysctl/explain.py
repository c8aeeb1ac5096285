"""`cni-sysctl explain`: show what a configuration would write, without root or a netns.

Reads a plugin configuration or a whole conflist (its cni-sysctl element is used) from FILE or
stdin and prints, in order, every concrete sysctl that ADD would write for the interface(s),
and whether it needs the link bounced. Errors are the same messages ADD would give.
"""

from __future__ import annotations

from .errors import CniError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO, TextIO


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


def main(argv: list[str], stdin: BinaryIO | None, stdout: TextIO, stderr: TextIO) -> int:
    from .config import decode, parse_config
    from .plan import build_plan

    ifnames: list[str] = []
    path = "-"
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--ifname" and args:
            ifnames.append(args.pop(0))
        elif not arg.startswith("-") or arg == "-":
            path = arg
        else:
            stderr.write("usage: cni-sysctl explain [FILE] [--ifname NAME ...]\n")
            return 2
    try:
        if path == "-":
            import sys

            data = (stdin or sys.stdin.buffer).read()
        else:
            with open(path, "rb") as f:
                data = f.read()
        config = parse_config(_plugin_config(decode(data)))
        plan = build_plan(config, ifnames or ["eth0"])
    except (CniError, OSError) as exc:
        msg = exc.msg + (f" ({exc.details})" if exc.details else "") if isinstance(exc, CniError) else str(exc)
        stderr.write(f"cni-sysctl explain: {msg}\n")
        return 1
    for write in plan.writes:
        flags = []
        if write.ifname is not None and write.ifname in plan.bounce_ifnames and write.needs_bounce:
            flags.append("needs link bounce")
        if write.after_ready:
            flags.append("written once the link is ready: the kernel resets it then")
        if not write.entry.trusted:
            flags.append(f"untrusted: {write.entry.source}, checked against {config.policy}")
        suffix = f"   [{'; '.join(flags)}]" if flags else ""
        stdout.write(f"{write.name} = {write.value}{suffix}\n")
    if plan.bounce_ifnames:
        stdout.write(
            f"link bounce ({plan.link_bounce}): {', '.join(plan.bounce_ifnames)} set down, written, "
            "set up, addresses and routes restored\n"
        )
    return 0
