"""One run of the benchmark: set the world up, measure the sections in order, tear it down.

The results document (results.py) fills up section by section; after each one `show(name)` is
called so that the CLI can print it at once.
"""

from __future__ import annotations

import os
import sys

from . import chains, daemonmem, direct, importtime, machine, scenarios, stats, targets
from .errors import BenchError
from .modes import INSTALLS
from .results import SCHEMA
from .world import World

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from .modes import Install
    from .results import Header, Results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CNITOOL = os.path.join(REPO, ".build", "cnitool")
DEBIAN_PLUGINS = "/usr/lib/cni"
SHIM = os.path.join(REPO, ".build", "cni-sysctl-shim")  # daemon mode's (shim/build.sh)
PREREQUISITES = (CNITOOL, SHIM, *(os.path.join(DEBIAN_PLUGINS, p) for p in ("bridge", "host-local", "tuning")))


class Options:
    __slots__ = ("burst", "command", "cycles", "daemon_cycles", "import_runs", "quick")

    def __init__(
        self, cycles: int, burst: int, import_runs: int, quick: bool, command: str, daemon_cycles: int = 1000
    ) -> None:
        self.daemon_cycles = daemon_cycles
        self.cycles = cycles
        self.burst = burst
        self.import_runs = import_runs
        self.quick = quick
        self.command = command


class BenchRun:
    def __init__(self, options: Options, progress: Callable[[str], None]) -> None:
        self.options = options
        self.progress = progress
        self.world = World()
        self.installs: dict[str, Install] = {}  # set up, in order
        self.bin_dirs: dict[str, str] = {}
        self.interpreter: list[str] = []
        self.rss_floor_kb: float | None = None
        self.broken: dict[str, str] = {}  # chain id or direct name -> why it cannot be measured
        self.notes: list[str] = []

    # ---- setup and teardown

    def setup(self) -> None:
        world = self.world
        world.setup()
        # The launcher is set up first in any case: its #! line names the interpreter the no-op
        # plugin, the probe and the bare spawns use.
        named = {chain.install for chain in scenarios.CHAINS if chain.install}
        named |= {row.install for row in scenarios.DIRECT if row.install}
        needed = ["launcher", *sorted(named - {"launcher"})]
        for name in needed:
            if name not in INSTALLS:
                raise BenchError(f"unknown install mode {name!r} (scenarios name it; modes.INSTALLS lacks it)")
            install = INSTALLS[name]()
            self.installs[name] = install
            self.bin_dirs[name] = install.setup(world)
        launcher = os.path.join(self.bin_dirs["launcher"], "cni-sysctl")
        with open(launcher) as f:
            shebang = f.readline()
        if not shebang.startswith("#!"):
            raise BenchError(f"{launcher} has no #! line")
        self.interpreter = shebang[2:].split()
        noop = os.path.join(world.bin_dir, scenarios.NOOP)
        with open(noop, "w") as f:
            f.write(scenarios.NOOP_PLUGIN.format(interpreter=" ".join(self.interpreter)))
        os.chmod(noop, 0o755)  # noqa: S103 - a plugin executable, like the others in the bin dir
        world.spawner.probe_python = [self.interpreter[0], "-I", "-S"]
        self.rss_floor_kb = stats.median([world.spawner.measure([world.true], {}).maxrss_kb for _ in range(5)])
        world.make_host()
        chains.write_conflists(world, scenarios.CHAINS)

    def cleanup(self) -> None:
        """Every install's teardown (in reverse), then the world's; never raises."""
        for install in reversed(list(self.installs.values())):
            try:
                install.teardown(self.world)
            except Exception as err:  # noqa: BLE001 - cleanup goes on: the world must still go
                print(f"bench: teardown of install mode {install.name}: {err}", file=sys.stderr)
        self.world.cleanup()

    # ---- the run

    def header(self) -> Header:
        o = self.options
        floor = None if self.rss_floor_kb is None else int(self.rss_floor_kb)
        return {
            "date": machine.now(),
            "command": o.command,
            "machine": machine.machine(),
            "kernel": machine.kernel(),
            "python": {"version": machine.python_version(self.interpreter), "interpreter": self.interpreter},
            "cni_sysctl": machine.cni_sysctl_facts(REPO),
            "libcni": CNITOOL,
            "plugins": {
                "package": machine.PLUGINS_PACKAGE,
                "version": machine.plugins_version(),
                "dir": DEBIAN_PLUGINS,
            },
            "method": {
                "cycles": o.cycles,
                "burst": o.burst,
                "import_runs": o.import_runs,
                "quick": o.quick,
                "rss_floor_mb": stats.to_mb(floor),
            },
        }

    @staticmethod
    def _lap(results: Results, start: machine.CpuClock, section: str) -> machine.CpuClock:
        now = machine.CpuClock()
        results["background"].append(now.since(start, section))
        return now

    def measure(self, show: Callable[[Results, str], None]) -> Results:
        o, world = self.options, self.world
        results: Results = {
            "schema": SCHEMA,
            "header": self.header(),
            "chains": [],
            "spawns": [],
            "added": [],
            "chain_ratios": [],
            "direct": [],
            "direct_ratios": [],
            "per_key": {"keys": 0, "wall_ms": None, "cpu_ms": None},
            "bursts": [],
            "imports": {"runs": o.import_runs, "flags": [], "startup_ms": None, "rows": []},
            "targets": [],
            "background": [],
            "notes": self.notes,
        }
        show(results, "header")

        cnitool = chains.Cnitool(world, CNITOOL, DEBIAN_PLUGINS, self.bin_dirs, self.installs)
        clock = machine.CpuClock()
        self.progress("warm-up")
        chains.warm_up(cnitool, scenarios.CHAINS, self.broken)
        samples = chains.run_cycles(
            cnitool,
            scenarios.CHAINS,
            scenarios.SPAWNS,
            o.cycles,
            self.interpreter[0],
            self.broken,
            self.notes,
            self.progress,
        )
        results["chains"] = chains.chain_rows(scenarios.CHAINS, samples, self.broken)
        results["spawns"] = chains.spawn_rows(scenarios.SPAWNS, samples)
        show(results, "chains")
        results["added"] = chains.added_rows(scenarios.CHAINS, samples, self.broken)
        results["chain_ratios"] = chains.ratio_rows(results["added"])
        show(results, "added")
        clock = self._lap(results, clock, "1-2")

        self.progress("direct invocations")
        run = direct.DirectRun(cnitool, scenarios.DIRECT)
        run.setup()
        direct_samples = run.run(o.cycles, self.broken, self.notes)
        results["direct"] = direct.rows(scenarios.DIRECT, direct_samples, self.broken)
        results["direct_ratios"] = direct.ratio_rows(scenarios.DIRECT_RATIOS, results["direct"], direct_samples)
        results["per_key"] = direct.per_key(direct_samples)
        show(results, "direct")
        clock = self._lap(results, clock, "3")

        results["bursts"] = chains.run_bursts(
            cnitool, scenarios.CHAINS, o.burst, self.broken, self.notes, self.progress
        )
        show(results, "bursts")
        clock = self._lap(results, clock, "4")

        self.progress("importtime")
        results["imports"] = importtime.run(run, self.interpreter, scenarios.IMPORTTIME, o.import_runs, self.broken)
        show(results, "imports")

        clock = self._lap(results, clock, "5")

        self.progress("daemon memory")
        results["daemon_memory"] = daemonmem.run(
            run, self.installs.get("daemon"), o.daemon_cycles, self.broken, self.notes, self.progress
        )
        results["background"].append(machine.CpuClock().since(clock, "6"))
        show(results, "daemon_memory")
        results["targets"] = targets.evaluate(results)
        show(results, "targets")
        return results
