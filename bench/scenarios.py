"""What is measured, as tables: the chains, the bare spawns, the direct invocations, the ratios.

Everything here is data and pure builders (no root, no kernel). A row that runs cni-sysctl names
its install mode (modes.INSTALLS); adding daemon-mode rows is one more `Chain` / `Direct` entry
with `install="daemon"` (and a target entry in targets.py if it has a target).

  (a) bridge + host-local                      the chain every other one extends
  (b) (a) + tuning, three sysctls in IFNAME form
  (c) (a) + cni-sysctl, the same three keys in short form, linkBounce never
  (d) (a) + cni-sysctl, the same three keys + ipv6.conf.addr_gen_mode=1, linkBounce auto (bounce)
  (e) (a) + a no-op Python plugin run like cni-sysctl (same interpreter, -IS)
  (f) a bare `python -I -c pass` spawn (no cnitool)
  (g) (c) in daemon mode: the static shim forwarding to `cni-sysctl daemon`
  (h) (d) in daemon mode
"""

from __future__ import annotations

import dataclasses

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

CNI_VERSION = "1.0.0"
NOOP = "cni-bench-noop"
IFNAME = "eth0"

# The three sysctls of (b), (c) and (d), as tuning and as cni-sysctl spell them, and the files
# (below /proc/sys, inside the container netns) where both must have landed after the ADD.
TUNING_SYSCTLS = {
    "net.ipv6.conf.IFNAME.accept_ra": "2",
    "net.ipv4.conf.IFNAME.rp_filter": "2",
    "net.ipv4.tcp_keepalive_time": "600",
}
SHORT_SYSCTLS = ("ipv6.conf.accept_ra=2", "ipv4.conf.rp_filter=2", "net.ipv4.tcp_keepalive_time=600")
BOUNCE_SYSCTLS = (*SHORT_SYSCTLS, "ipv6.conf.addr_gen_mode=1")
THREE_WRITTEN = {
    ("net", "ipv6", "conf", IFNAME, "accept_ra"): "2",
    ("net", "ipv4", "conf", IFNAME, "rp_filter"): "2",
    ("net", "ipv4", "tcp_keepalive_time"): "600",
}
BOUNCE_WRITTEN = {**THREE_WRITTEN, ("net", "ipv6", "conf", IFNAME, "addr_gen_mode"): "1"}

# Per-interface sysctls the per-key measurement never picks: writing them, even with the value
# already there, does more than store a number (or they cannot be read back). direct.py also
# skips every key cni_sysctl.params lists as having side effects on addresses and routes.
KEY_COST_SKIP = frozenset(("disable_ipv6", "forwarding", "mtu", "stable_secret", "addr_gen_mode"))
KEY_COST_TABLES = (("ipv4", "conf"), ("ipv4", "neigh"), ("ipv6", "neigh"), ("ipv6", "conf"))

NOOP_PLUGIN = """\
#!{interpreter}
# A no-op CNI plugin written by cni-sysctl's benchmark (python -m bench): decode the config,
# answer ADD with prevResult in the config's cniVersion. The floor of any chained Python plugin.
import json, os, sys
conf = json.loads(sys.stdin.buffer.read() or b"{{}}")
command = os.environ.get("CNI_COMMAND")
if command == "ADD":
    result = conf.get("prevResult") or {{}}
    result["cniVersion"] = conf.get("cniVersion")
    sys.stdout.write(json.dumps(result))
elif command == "VERSION":
    sys.stdout.write(json.dumps({{"cniVersion": conf.get("cniVersion", "1.0.0"),
                                 "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]}}))
"""


@dataclasses.dataclass(frozen=True)
class Chain:
    """A conflist measured through cnitool: the bridge (+ host-local), then `plugin` if any."""

    id: str
    label: str
    plugin: Mapping[str, object] | None = None
    install: str | None = None  # the install mode of cni-sysctl, for a row that runs it
    written: Mapping[tuple[str, ...], str] = dataclasses.field(default_factory=dict)  # checked after the warm-up ADD
    bounced: bool = False  # after the warm-up ADD: no fe80:: on eth0, IPAM addresses and IPv6 default route kept
    burst: bool = False  # also measured as a burst of concurrent ADDs


CHAINS: tuple[Chain, ...] = (
    Chain("a", "bridge + host-local", burst=True),
    Chain(
        "b",
        "(a) + tuning, 3 sysctls (IFNAME form)",
        {"type": "tuning", "sysctl": TUNING_SYSCTLS},
        written=THREE_WRITTEN,
        burst=True,  # what a Go plugin's extra CPU does to a burst: the yardstick of (g)'s
    ),
    Chain(
        "c",
        "(a) + cni-sysctl, 3 keys, linkBounce never",
        {"type": "cni-sysctl", "sysctl": list(SHORT_SYSCTLS), "linkBounce": "never"},
        install="launcher",
        written=THREE_WRITTEN,
        burst=True,
    ),
    Chain(
        "d",
        "(a) + cni-sysctl, 3 keys + addr_gen_mode=1, auto (bounce)",
        {"type": "cni-sysctl", "sysctl": list(BOUNCE_SYSCTLS), "linkBounce": "auto"},
        install="launcher",
        written=BOUNCE_WRITTEN,
        bounced=True,
        burst=True,
    ),
    Chain("e", "(a) + no-op Python plugin (-IS)", {"type": NOOP}),
    Chain(
        "g",
        "(c) in daemon mode (shim + daemon)",
        {"type": "cni-sysctl", "sysctl": list(SHORT_SYSCTLS), "linkBounce": "never"},
        install="daemon",
        written=THREE_WRITTEN,
        burst=True,
    ),
    Chain(
        "h",
        "(d) in daemon mode (shim + daemon)",
        {"type": "cni-sysctl", "sysctl": list(BOUNCE_SYSCTLS), "linkBounce": "auto"},
        install="daemon",
        written=BOUNCE_WRITTEN,
        bounced=True,
        burst=True,
    ),
)
BASELINE = "a"  # "added latency" is over this chain


@dataclasses.dataclass(frozen=True)
class Spawn:
    """A bare command measured in the same cycles: {python}, {ip}, {host}, {true} are filled in."""

    id: str
    label: str
    argv: tuple[str, ...]
    tagged: bool = False  # shown as "(id)" in the report


SPAWNS: tuple[Spawn, ...] = (
    Spawn("f", "python -I -c pass (no cnitool)", ("{python}", "-I", "-c", "pass"), tagged=True),
    Spawn("fS", "python -IS -c pass (the launchers' flags)", ("{python}", "-IS", "-c", "pass")),
    Spawn("x", "ip netns exec HOST true (in every ADD/DEL above)", ("{ip}", "netns", "exec", "{host}", "{true}")),
)

# Ratios of added ADD latency printed under section 2: (numerator, denominator, what).
CHAIN_RATIOS = (
    ("c", "b", "cni-sysctl without bounce vs tuning"),
    ("c", "e", "cni-sysctl without bounce vs the no-op Python plugin"),
    ("d", "e", "cni-sysctl with bounce vs the no-op Python plugin"),
    ("d", "c", "the bounce: with vs without"),
    ("g", "b", "daemon mode without bounce vs tuning"),
    ("h", "b", "daemon mode with bounce vs tuning"),
    ("g", "c", "daemon mode vs direct, without bounce"),
    ("h", "d", "daemon mode vs direct, with bounce"),
)


@dataclasses.dataclass(frozen=True)
class Direct:
    """One plugin invocation run directly (no cnitool) with what libcni would give it."""

    name: str
    plugin: str  # the CNI type: its executable is found in the row's CNI_PATH, as libcni does
    command: str
    fields: Mapping[str, object] | None  # the plugin's own config fields; None: VERSION's stdin
    install: str | None = None
    key_cost: int = 0  # > 0: "sysctl" is the first key_cost keys of the per-key set


def _sysctl(keys: Sequence[str], bounce: str | None = None) -> dict[str, object]:
    fields: dict[str, object] = {"sysctl": list(keys)}
    if bounce is not None:
        fields["linkBounce"] = bounce
    return fields


DIRECT: tuple[Direct, ...] = (
    Direct("sysctl ADD, 3 keys, no bounce", "cni-sysctl", "ADD", _sysctl(SHORT_SYSCTLS, "never"), "launcher"),
    Direct("sysctl ADD, 4 keys, bounce", "cni-sysctl", "ADD", _sysctl(BOUNCE_SYSCTLS), "launcher"),
    Direct("no-op ADD", NOOP, "ADD", {}),
    Direct("sysctl DEL", "cni-sysctl", "DEL", _sysctl(SHORT_SYSCTLS, "never"), "launcher"),
    Direct("no-op DEL", NOOP, "DEL", {}),
    Direct("sysctl VERSION", "cni-sysctl", "VERSION", None, "launcher"),
    Direct("no-op VERSION", NOOP, "VERSION", None),
    Direct("sysctl ADD, 1 key, never", "cni-sysctl", "ADD", {"linkBounce": "never"}, "launcher", key_cost=1),
    Direct("sysctl ADD, 100 keys, never", "cni-sysctl", "ADD", {"linkBounce": "never"}, "launcher", key_cost=100),
    Direct("daemon ADD, 3 keys, no bounce", "cni-sysctl", "ADD", _sysctl(SHORT_SYSCTLS, "never"), "daemon"),
    Direct("daemon ADD, 4 keys, bounce", "cni-sysctl", "ADD", _sysctl(BOUNCE_SYSCTLS), "daemon"),
    Direct("daemon DEL", "cni-sysctl", "DEL", _sysctl(SHORT_SYSCTLS, "never"), "daemon"),
    Direct("daemon VERSION", "cni-sysctl", "VERSION", None, "daemon"),
    Direct("tuning ADD, 3 sysctls", "tuning", "ADD", {"sysctl": TUNING_SYSCTLS}),
    Direct("tuning DEL", "tuning", "DEL", {"sysctl": TUNING_SYSCTLS}),
    Direct("tuning VERSION", "tuning", "VERSION", None),
)
# (cni-sysctl, no-op) pairs compared in section 3.
DIRECT_RATIOS = (
    ("sysctl DEL", "no-op DEL"),
    ("sysctl VERSION", "no-op VERSION"),
    ("sysctl ADD, 3 keys, no bounce", "no-op ADD"),
    ("sysctl ADD, 4 keys, bounce", "no-op ADD"),
    ("daemon ADD, 3 keys, no bounce", "tuning ADD, 3 sysctls"),
    ("daemon ADD, 4 keys, bounce", "tuning ADD, 3 sysctls"),
    ("daemon DEL", "tuning DEL"),
    ("daemon VERSION", "tuning VERSION"),
)
PER_KEY = ("sysctl ADD, 100 keys, never", "sysctl ADD, 1 key, never")  # cost per key = (t100 - t1) / 99
# The direct invocations rerun with -X importtime (Python executables only), in this order.
IMPORTTIME = (
    "sysctl VERSION",
    "sysctl DEL",
    "sysctl ADD, 3 keys, no bounce",
    "sysctl ADD, 4 keys, bounce",
    "no-op ADD",
)
HEAVY_IMPORTS = frozenset(("pyroute2", "yaml"))  # neither on VERSION, DEL, no-bounce ADD


def subnets(index: int) -> tuple[str, str]:
    """The IPv4 and IPv6 ranges of the chain at `index` (1-based) in CHAINS."""
    return f"10.209.{index}.0/24", f"fd00:209:{index}::/64"


def conflist(chain: Chain, index: int, ipam_dir: str) -> dict[str, object]:
    """The conflist of `chain`, the `index`-th (1-based) of CHAINS: its own bridge and ranges."""
    v4, v6 = subnets(index)
    plugins: list[dict[str, object]] = [
        {
            "type": "bridge",
            "bridge": f"bench-{chain.id}",
            "isGateway": True,
            "ipMasq": False,
            "ipam": {
                "type": "host-local",
                "dataDir": ipam_dir,
                "ranges": [[{"subnet": v4}], [{"subnet": v6}]],
                "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
            },
        }
    ]
    if chain.plugin is not None:
        plugins.append(dict(chain.plugin))
    return {"cniVersion": CNI_VERSION, "name": f"bench-{chain.id}", "plugins": plugins}


def stdin_conf(direct: Direct, prev_result: object, key_cost_keys: Sequence[str]) -> dict[str, object]:
    """The stdin libcni would give `direct`'s plugin: chained after (a), with (a)'s result."""
    if direct.fields is None:
        return {"cniVersion": CNI_VERSION}
    fields = dict(direct.fields)
    if direct.key_cost:
        fields = {"sysctl": list(key_cost_keys[: direct.key_cost]), **fields}
    return {
        "cniVersion": CNI_VERSION,
        "name": "bench-direct",
        "type": direct.plugin,
        **fields,
        "prevResult": prev_result,
    }


def cycle_order(items: Sequence[str], cycle: int) -> list[str]:
    """Round-robin, the starting item rotated by one each cycle."""
    shift = cycle % max(1, len(items))
    return [*items[shift:], *items[:shift]]
