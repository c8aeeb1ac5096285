"""Section 3: the plugin process alone, run directly (no cnitool) under the probe.

From inside the throwaway host netns, with the CNI environment and the stdin config libcni would
give a plugin chained after (a): `cniVersion`, `name`, `type`, the plugin's fields and the real
`prevResult` of an ADD of chain (a) into a container netns kept for this section. Interleaved
like section 1. Also the cost of one more key: 100 distinct per-interface sysctls of eth0, each
set to the value it already has.
"""

from __future__ import annotations

import json
import os

from cni_sysctl import params

from . import scenarios, stats
from .errors import BenchError
from .world import SYSTEM_PATH

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from .chains import Cnitool
    from .results import DirectRatioRow, DirectRow, PerKey
    from .scenarios import Direct
    from .spawn import Sample
    from .world import World


class Invocation:
    """A row of scenarios.DIRECT made concrete: the executable, its environment, its stdin."""

    __slots__ = ("command", "env", "exe", "stdin")

    def __init__(self, exe: str, command: str, stdin: str) -> None:
        self.exe = exe
        self.command = command
        self.stdin = stdin
        self.env: dict[str, str] = {}


class DirectRun:
    def __init__(self, cnitool: Cnitool, rows: Sequence[Direct]) -> None:
        self.cnitool = cnitool
        self.world = cnitool.world
        self.rows = rows
        self.container = ""
        self.invocations: dict[str, Invocation] = {}

    def setup(self) -> None:
        """A container netns attached by chain (a), kept for all direct runs, and the stdin files."""
        world = self.world
        self.container = world.add_netns("direct")
        baseline = next(chain for chain in scenarios.CHAINS if chain.id == scenarios.BASELINE)
        add = self.cnitool.measure("add", baseline, self.container)
        if not add.ok:
            raise BenchError(f"direct setup: cnitool add ({baseline.id}) failed: {add.why()}")
        prev_result = json.loads(add.stdout)
        keys = key_cost_keys(world, self.container)
        for index, row in enumerate(self.rows):
            stdin = world.path(f"stdin-{index}-{row.plugin}.json")
            with open(stdin, "w") as f:
                json.dump(scenarios.stdin_conf(row, prev_result, keys), f)
            self.invocations[row.name] = Invocation(self.executable(row), row.command, stdin)

    def executable(self, row: Direct) -> str:
        """The plugin as libcni finds it: the first dir of the row's CNI_PATH that holds it."""
        for directory in self.cnitool.cni_path(row.install).split(":"):
            path = os.path.join(directory, row.plugin)
            if os.access(path, os.X_OK):
                return path
        raise BenchError(f"direct {row.name}: no executable {row.plugin} in {self.cnitool.cni_path(row.install)}")

    def env(self, row: Direct, libcni_version_env: bool = True) -> dict[str, str]:
        if row.command == "VERSION":
            # What libcni's GetVersionInfo sets (pkg/invoke/exec.go): dummies, no container id.
            if libcni_version_env:
                return {
                    "PATH": SYSTEM_PATH,
                    "CNI_COMMAND": "VERSION",
                    "CNI_CONTAINERID": "",
                    "CNI_NETNS": "dummy",
                    "CNI_IFNAME": "dummy",
                    "CNI_ARGS": "",
                    "CNI_PATH": "dummy",
                }
            return {"PATH": SYSTEM_PATH, "CNI_COMMAND": "VERSION"}
        return {
            "PATH": SYSTEM_PATH,
            "CNI_COMMAND": row.command,
            "CNI_CONTAINERID": "bench-direct",
            "CNI_NETNS": self.world.netns_path(self.container),
            "CNI_IFNAME": scenarios.IFNAME,
            "CNI_ARGS": "",
            "CNI_PATH": self.cnitool.cni_path(row.install),
        }

    def measure(self, row: Direct, env: dict[str, str]) -> Sample:
        """One invocation under the probe; in daemon mode its CPU includes the daemon's."""
        invocation = self.invocations[row.name]
        spawner = self.world.spawner
        return self.cnitool.with_server(row.install, lambda: spawner.measure([invocation.exe], env, invocation.stdin))

    def run(self, reps: int, broken: dict[str, str], notes: list[str]) -> dict[str, list[Sample | None]]:
        """A checked warm-up run of each, then `reps` interleaved rounds."""
        with self.world.inside(self.world.host):
            for row in self.rows:
                invocation = self.invocations[row.name]
                env = self.env(row)
                sample = self.measure(row, env)
                if not sample.ok and row.command == "VERSION":
                    notes.append(
                        f"{row.name} FAILS with the environment libcni's GetVersionInfo gives a plugin "
                        f"(CNI_NETNS=dummy CNI_IFNAME=dummy CNI_PATH=dummy): {sample.why()}; "
                        "measured with CNI_COMMAND=VERSION alone instead"
                    )
                    env = self.env(row, libcni_version_env=False)
                    sample = self.measure(row, env)
                if not sample.ok:
                    broken[row.name] = sample.why()
                invocation.env = env
            names = [row.name for row in self.rows if row.name not in broken]
            by_name = {row.name: row for row in self.rows}
            samples: dict[str, list[Sample | None]] = {row.name: [] for row in self.rows}
            for rep in range(reps):
                for name in scenarios.cycle_order(names, rep):
                    sample = self.measure(by_name[name], self.invocations[name].env)
                    samples[name].append(sample if sample.ok else None)
                    if not sample.ok:
                        notes.append(f"direct {name} rep {rep}: {sample.why()}")
        return samples


def key_cost_keys(world: World, container: str) -> list[str]:
    """100 distinct per-interface sysctls of eth0 in short form, each set to the value it has."""
    keys = []
    with world.inside(container):
        for family, table in scenarios.KEY_COST_TABLES:
            directory = os.path.join("/proc/sys/net", family, table, scenarios.IFNAME)
            for param in sorted(os.listdir(directory)):
                path = os.path.join(directory, param)
                if param in scenarios.KEY_COST_SKIP or os.stat(path).st_mode & 0o600 != 0o600:
                    continue
                if params.side_effect(("net", family, table, scenarios.IFNAME, param)):
                    continue  # the plugin snapshots the link for it (force_forwarding, Linux 6.17+)
                try:
                    with open(path) as f:
                        value = f.read().strip()
                except OSError:
                    continue
                if value and not any(c.isspace() for c in value):
                    keys.append(f"{family}.{table}.{param}={value}")
    wanted = max(row.key_cost for row in scenarios.DIRECT)
    if len(keys) < wanted:
        raise BenchError(f"only {len(keys)} usable per-interface sysctls on eth0, the key cost needs {wanted}")
    return keys[:wanted]


def _field(runs: Sequence[Sample | None], field: str) -> list[float | None]:
    return [None if s is None else float(getattr(s, field)) for s in runs]


def rows(
    direct: Sequence[Direct], samples: Mapping[str, list[Sample | None]], broken: Mapping[str, str]
) -> list[DirectRow]:
    result: list[DirectRow] = []
    for row in direct:
        runs = [s for s in samples[row.name] if s is not None]
        walls = [s.wall for s in runs]
        result.append(
            {
                "name": row.name,
                "install": row.install,
                "command": row.command,
                "not_measured": broken.get(row.name),
                "wall": {
                    "p50_ms": stats.to_ms(stats.median(walls)),
                    "p90_ms": stats.to_ms(stats.percentile(walls, 90)),
                },
                "cpu_p50_ms": stats.to_ms(stats.median([s.cpu for s in runs])),
                "rss_mb": stats.to_mb(stats.median([s.maxrss_kb for s in runs])),
                "ok": len(runs),
                "runs": len(samples[row.name]),
            }
        )
    return result


def ratio_rows(
    pairs: Sequence[tuple[str, str]], measured: Sequence[DirectRow], samples: Mapping[str, list[Sample | None]]
) -> list[DirectRatioRow]:
    """cni-sysctl / no-op: the ratio of the medians, and the median of the per-rep ratios."""
    by_name = {row["name"]: row for row in measured}

    def of_medians(name: str, pick: Callable[[DirectRow], float | None]) -> float | None:
        row = by_name.get(name)
        return None if row is None or row["not_measured"] else pick(row)

    result: list[DirectRatioRow] = []
    for a, b in pairs:
        xs, ys = samples.get(a, []), samples.get(b, [])
        result.append(
            {
                "num": a,
                "den": b,
                "wall": {
                    "of_medians": stats.rounded(
                        stats.ratio(
                            of_medians(a, lambda r: r["wall"]["p50_ms"]), of_medians(b, lambda r: r["wall"]["p50_ms"])
                        )
                    ),
                    "paired": stats.rounded(stats.paired(_field(xs, "wall"), _field(ys, "wall"), stats.quotient)),
                },
                "cpu": {
                    "of_medians": stats.rounded(
                        stats.ratio(of_medians(a, lambda r: r["cpu_p50_ms"]), of_medians(b, lambda r: r["cpu_p50_ms"]))
                    ),
                    "paired": stats.rounded(stats.paired(_field(xs, "cpu"), _field(ys, "cpu"), stats.quotient)),
                },
            }
        )
    return result


def per_key(samples: Mapping[str, list[Sample | None]]) -> PerKey:
    """(t100 - t1) / 99: the median of the per-rep differences, wall and CPU."""
    many, one = scenarios.PER_KEY
    keys = {row.name: row.key_cost for row in scenarios.DIRECT}
    extra = keys[many] - keys[one]

    def cost(x: float, y: float) -> float:
        return (x - y) / extra

    xs, ys = samples.get(many, []), samples.get(one, [])
    return {
        "keys": keys[many],
        "wall_ms": stats.to_ms(stats.paired(_field(xs, "wall"), _field(ys, "wall"), cost)),
        "cpu_ms": stats.to_ms(stats.paired(_field(xs, "cpu"), _field(ys, "cpu"), cost)),
    }
