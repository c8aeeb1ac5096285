"""Sections 1, 2 and 4: the chains through the real libcni, interleaved, and in bursts.

Each ADD and DEL is `ip netns exec HOST cnitool add|del NET /var/run/netns/CONT` into a fresh
container netns, measured under the probe (spawn.py). A warm-up ADD+DEL per chain comes first
(creates each bridge, fills caches, compiles __pycache__) and checks that the chain did what it
says; a chain that fails it is NOT MEASURED, with the reason.
"""

from __future__ import annotations

import json
import os

from . import scenarios, stats
from .spawn import check_output
from .world import SYSTEM_PATH

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from .modes import Install
    from .results import AddedOp, AddedRow, BurstRow, ChainRow, RatioRow, SpawnRow
    from .scenarios import Chain
    from .spawn import Sample
    from .world import World

    Samples = dict[str, dict[str, list[Sample | None]]]  # row id -> "add"/"del" -> per cycle

CNITOOL_CACHE = "cache"
SLOW = 0.040  # an ADD this much above its row's median counts as slow


class Cnitool:
    """Our libcni client run from the host netns, with each chain's CNI_PATH."""

    def __init__(
        self,
        world: World,
        cnitool: str,
        plugins_dir: str,
        bin_dirs: Mapping[str, str],
        installs: Mapping[str, Install] | None = None,
    ) -> None:
        self.world = world
        self.cnitool = cnitool
        self.plugins_dir = plugins_dir
        self.bin_dirs = bin_dirs  # install mode -> the bin dir its setup returned
        self.installs = installs or {}  # install mode -> its hooks (server_cpu)

    def with_server(self, install: str | None, run: Callable[[], Sample]) -> Sample:
        """`run()`'s sample, its CPU plus what the install's resident processes (the daemon)
        spent meanwhile: they are not descendants of the measured command."""
        mode = self.installs.get(install) if install else None
        before = None if mode is None else mode.server_cpu()
        sample = run()
        if mode is not None and before is not None:
            after = mode.server_cpu()
            if after is not None:
                sample.cpu += after - before
        return sample

    def cni_path(self, install: str | None) -> str:
        """The install's bin dir first, then the world's (the no-op), then Debian's plugins."""
        dirs = [self.bin_dirs[install]] if install else []
        dirs += [d for d in (self.world.bin_dir, self.plugins_dir) if d not in dirs]
        return ":".join(dirs)

    def env(self, chain: Chain) -> dict[str, str]:
        return {
            "PATH": SYSTEM_PATH,
            "NETCONFPATH": self.world.net_dir,
            "CNI_PATH": self.cni_path(chain.install),
            "CNI_CACHE_DIR": self.world.path(CNITOOL_CACHE),
            "CNI_IFNAME": scenarios.IFNAME,
        }

    def argv(self, command: str, chain: Chain, container: str) -> list[str]:
        netns = self.world.netns_path(container)
        return [self.world.ip, "netns", "exec", self.world.host, self.cnitool, command, f"bench-{chain.id}", netns]

    def measure(self, command: str, chain: Chain, container: str) -> Sample:
        argv, env = self.argv(command, chain, container), self.env(chain)
        return self.with_server(chain.install, lambda: self.world.spawner.measure(argv, env))


def write_conflists(world: World, chains: Sequence[Chain]) -> None:
    for index, chain in enumerate(chains, 1):
        with open(os.path.join(world.net_dir, f"bench-{chain.id}.conflist"), "w") as f:
            json.dump(scenarios.conflist(chain, index, world.path("ipam")), f, indent=2)


def warm_up(cnitool: Cnitool, chains: Sequence[Chain], broken: dict[str, str]) -> None:
    """One ADD+DEL per chain: creates each bridge and its gateway addresses, fills the page cache
    and __pycache__, and checks each chain does what it says."""
    world = cnitool.world
    for index, chain in enumerate(chains, 1):
        container = world.add_netns(f"w{chain.id}")
        try:
            add = cnitool.measure("add", chain, container)
            if not add.ok:
                broken[chain.id] = "ADD failed: " + add.why()
                continue
            problem = verify(world, chain, index, container)
            if problem:
                broken[chain.id] = problem
            delete = cnitool.measure("del", chain, container)
            if not delete.ok:
                broken[chain.id] = "DEL failed: " + delete.why()
        finally:
            world.remove_netns(container)


def verify(world: World, chain: Chain, index: int, container: str) -> str | None:
    """Why the chain did not do what it says after an ADD into `container`, or None."""
    for path, value in chain.written.items():
        with world.inside(container), open(os.path.join("/proc/sys", *path)) as f:
            got = f.read().strip()
        if got != value:
            return f"after ADD {'.'.join(path)} is {got!r}, not {value!r}"
    if chain.bounced:
        addrs = check_output(world.ip, "-n", container, "-o", "addr", "show", "dev", scenarios.IFNAME)
        v4, v6 = scenarios.subnets(index)
        if "fe80::" in addrs:
            return f"after the bounce {scenarios.IFNAME} still has an fe80:: address"
        if v6.split("/")[0] not in addrs or v4.rsplit(".", 2)[0] not in addrs:
            return f"after the bounce {scenarios.IFNAME} lost its IPAM addresses"
        routes = check_output(world.ip, "-n", container, "-6", "route", "show", "default")
        if "default" not in routes:
            return "after the bounce the IPv6 default route is gone"
    return None


def run_cycles(
    cnitool: Cnitool,
    chains: Sequence[Chain],
    spawns: Sequence[scenarios.Spawn],
    cycles: int,
    python: str,
    broken: Mapping[str, str],
    notes: list[str],
    progress: Callable[[str], None],
) -> Samples:
    """Every cycle runs each chain (ADD then DEL, fresh netns) and each bare spawn once,
    round-robin, starting one item later each cycle."""
    world = cnitool.world
    by_id = {chain.id: chain for chain in chains}
    spawn_argv = {
        spawn.id: [arg.format(python=python, ip=world.ip, host=world.host, true=world.true) for arg in spawn.argv]
        for spawn in spawns
    }
    items = [*by_id, *spawn_argv]
    samples: Samples = {item: {"add": [], "del": []} for item in items}
    for cycle in range(cycles):
        for item in scenarios.cycle_order(items, cycle):
            if item in spawn_argv:
                sample = world.spawner.measure(spawn_argv[item], {"PATH": SYSTEM_PATH})
                samples[item]["add"].append(sample if sample.ok else None)
                continue
            if item in broken:
                continue
            container = world.add_netns(f"{cycle}{item}")
            try:
                add = cnitool.measure("add", by_id[item], container)
                delete = cnitool.measure("del", by_id[item], container)
            finally:
                world.remove_netns(container)
            samples[item]["add"].append(add if add.ok else None)
            samples[item]["del"].append(delete if delete.ok else None)
            if not add.ok:
                notes.append(f"cycle {cycle} ({item}) ADD {add.why()}")
            if not delete.ok:
                notes.append(f"cycle {cycle} ({item}) DEL {delete.why()}")
        progress(f"cycle {cycle + 1}/{cycles}")
    return samples


def _walls(runs: Sequence[Sample | None]) -> list[float]:
    return [s.wall for s in runs if s is not None]


def _wall(runs: Sequence[Sample | None]) -> list[float | None]:
    return [None if s is None else s.wall for s in runs]


def chain_rows(chains: Sequence[Chain], samples: Samples, broken: Mapping[str, str]) -> list[ChainRow]:
    rows: list[ChainRow] = []
    for chain in chains:
        adds = [s for s in samples[chain.id]["add"] if s is not None]
        walls, dels = _walls(adds), _walls(samples[chain.id]["del"])
        p50 = stats.median(walls)
        rows.append(
            {
                "id": chain.id,
                "label": chain.label,
                "install": chain.install,
                "not_measured": broken.get(chain.id),
                "add": {"p50_ms": stats.to_ms(p50), "p90_ms": stats.to_ms(stats.percentile(walls, 90))},
                "del": {"p50_ms": stats.to_ms(stats.median(dels)), "p90_ms": stats.to_ms(stats.percentile(dels, 90))},
                "rss_mb": stats.to_mb(stats.median([s.maxrss_kb for s in adds])),
                "cpu_ms": stats.to_ms(stats.median([s.cpu for s in adds])),
                "ok": len(adds),
                "runs": len(samples[chain.id]["add"]),
                "slow": 0 if p50 is None else sum(1 for w in walls if w > p50 + SLOW),
            }
        )
    return rows


def spawn_rows(spawns: Sequence[scenarios.Spawn], samples: Samples) -> list[SpawnRow]:
    rows: list[SpawnRow] = []
    for spawn in spawns:
        runs = [s for s in samples[spawn.id]["add"] if s is not None]
        walls = _walls(runs)
        rows.append(
            {
                "id": spawn.id,
                "label": spawn.label,
                "tagged": spawn.tagged,
                "p50_ms": stats.to_ms(stats.median(walls)),
                "p90_ms": stats.to_ms(stats.percentile(walls, 90)),
                "rss_mb": stats.to_mb(stats.median([s.maxrss_kb for s in runs])),
                "cpu_ms": stats.to_ms(stats.median([s.cpu for s in runs])),
                "ok": len(runs),
                "runs": len(samples[spawn.id]["add"]),
            }
        )
    return rows


def added_rows(chains: Sequence[Chain], samples: Samples, broken: Mapping[str, str]) -> list[AddedRow]:
    """Over the baseline: the median of the per-cycle differences X_i - a_i, and the difference
    of the medians for comparison."""
    base = scenarios.BASELINE
    rows: list[AddedRow] = []
    for chain in chains:
        if chain.id == base:
            continue
        reason = broken.get(chain.id) or broken.get(base)
        ops: dict[str, AddedOp] = {}
        for op in ("add", "del"):
            x, a = samples[chain.id][op], samples[base][op]
            paired = of_medians = None
            if reason is None:
                paired = stats.paired(_wall(x), _wall(a), stats.difference)
                mx, ma = stats.median(_walls(x)), stats.median(_walls(a))
                if mx is not None and ma is not None:
                    of_medians = mx - ma
            ops[op] = {"paired_ms": stats.to_ms(paired), "of_medians_ms": stats.to_ms(of_medians)}
        row: AddedRow = {
            "id": chain.id,
            "label": chain.label,
            "not_measured": reason,
            "add": ops["add"],
            "del": ops["del"],
        }
        rows.append(row)
    return rows


def ratio_rows(added: Sequence[AddedRow]) -> list[RatioRow]:
    paired = {row["id"]: row["add"]["paired_ms"] for row in added}
    return [
        {"num": num, "den": den, "what": what, "value": stats.rounded(stats.ratio(paired.get(num), paired.get(den)))}
        for num, den, what in scenarios.CHAIN_RATIOS
    ]


def burst(cnitool: Cnitool, chain: Chain, size: int) -> tuple[list[Sample], list[Sample]]:
    """`size` netns made first; then `size` cnitool ADDs started together (one posix_spawn after
    the other, no waiting) and reaped as they finish; then the same for DEL. Wall times from each
    spawn to its reaping, measured here (no probe)."""
    world = cnitool.world
    containers = [world.add_netns(f"b{chain.id}{j}") for j in range(size)]
    try:
        env = cnitool.env(chain)
        jobs = [
            world.spawner.start(cnitool.argv("add", chain, c), env, tag=f"burst-add-{j}")
            for j, c in enumerate(containers)
        ]
        adds = world.spawner.wait_all(jobs)
        jobs = [
            world.spawner.start(cnitool.argv("del", chain, c), env, tag=f"burst-del-{j}")
            for j, c in enumerate(containers)
        ]
        dels = world.spawner.wait_all(jobs)
    finally:
        for c in containers:
            world.remove_netns(c)
    return adds, dels


def run_bursts(
    cnitool: Cnitool,
    chains: Sequence[Chain],
    size: int,
    broken: Mapping[str, str],
    notes: list[str],
    progress: Callable[[str], None],
) -> list[BurstRow]:
    rows: list[BurstRow] = []
    for chain in chains:
        if not chain.burst:
            continue
        row: BurstRow = {
            "id": chain.id,
            "label": chain.label,
            "not_measured": broken.get(chain.id),
            "size": size,
            "add": {"ok": 0, "p50_ms": None, "p99_ms": None, "max_ms": None, "p99_over_p50": None},
            "del": {"ok": 0, "p50_ms": None, "p99_ms": None},
        }
        rows.append(row)
        if chain.id in broken:
            continue
        progress(f"burst ({chain.id})")
        adds, dels = burst(cnitool, chain, size)
        ok = [s.wall for s in adds if s.ok]
        dok = [s.wall for s in dels if s.ok]
        p50, p99 = stats.median(ok), stats.percentile(ok, 99)
        row["add"] = {
            "ok": len(ok),
            "p50_ms": stats.to_ms(p50),
            "p99_ms": stats.to_ms(p99),
            "max_ms": stats.to_ms(max(ok, default=None)),
            "p99_over_p50": stats.rounded(stats.ratio(p99, p50)),
        }
        row["del"] = {
            "ok": len(dok),
            "p50_ms": stats.to_ms(stats.median(dok)),
            "p99_ms": stats.to_ms(stats.percentile(dok, 99)),
        }
        for s in adds:
            if not s.ok:
                notes.append(f"burst ({chain.id}) ADD {s.why()}")
                break
    return rows
