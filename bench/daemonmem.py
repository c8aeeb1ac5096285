"""Section 7: does the daemon leak? Its memory after the first 10 ADD/DEL cycles and after all.

The daemon (modes.Daemon) serves many calls in one process tree, so memory it never gives back
would grow with every container start. The section runs ADD then DEL, through the shim, into
the container netns of section 3 (attached by chain (a)), alternating a no-bounce and a bounce
ADD so that both paths (the /proc writes alone, and pyroute2's netlink messages) are exercised,
and reads the daemon's memory once it is idle: after cycle 10 and after the last one. Workers
are replaced after 500 calls and the pool grows and shrinks with demand, so the figure compared
is the PSS of the parent and its workers together (shared pages divided among their sharers,
what the tree costs the machine); the parent's own RSS is reported beside it.
"""

from __future__ import annotations

from .errors import BenchError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from .direct import DirectRun
    from .modes import Install, Memory
    from .results import DaemonMemory, DaemonMemoryAt

FIRST = 10
ROWS = ("daemon ADD, 3 keys, no bounce", "daemon ADD, 4 keys, bounce", "daemon DEL")


def _at(cycles: int, memory: Memory) -> DaemonMemoryAt:
    return {"cycles": cycles, **memory}


def run(
    direct: DirectRun,
    install: Install | None,
    cycles: int,
    broken: dict[str, str],
    notes: list[str],
    progress: Callable[[str], None],
) -> DaemonMemory:
    result: DaemonMemory = {
        "cycles": cycles,
        "not_measured": None,
        "failed": 0,
        "first": None,
        "last": None,
        "pss_growth_mb": None,
        "parent_rss_growth_mb": None,
    }
    from .modes import Daemon

    unusable = [name for name in ROWS if name in broken or name not in direct.invocations]
    if not isinstance(install, Daemon) or unusable:
        result["not_measured"] = "no daemon" if not isinstance(install, Daemon) else f"{unusable[0]} failed"
        return result
    world = direct.world
    adds = [direct.invocations[ROWS[0]], direct.invocations[ROWS[1]]]
    delete = direct.invocations[ROWS[2]]
    with world.inside(world.host):
        for cycle in range(cycles):
            for invocation in (adds[cycle % 2], delete):
                sample = world.spawner.run([invocation.exe], invocation.env, invocation.stdin)
                if not sample.ok:
                    result["failed"] += 1
                    if result["failed"] == 1:
                        notes.append(f"daemon memory: cycle {cycle} {invocation.command} {sample.why()}")
            if cycle + 1 == min(FIRST, cycles):
                result["first"] = _at(cycle + 1, install.memory())
            if (cycle + 1) % 100 == 0:
                progress(f"daemon memory: {cycle + 1}/{cycles} cycles")
    if result["first"] is None:
        raise BenchError("daemon memory: no cycle ran")
    last = _at(cycles, install.memory())
    result["last"] = last
    first = result["first"]
    result["pss_growth_mb"] = round(last["tree_pss_mb"] - first["tree_pss_mb"], 2)
    result["parent_rss_growth_mb"] = round(last["parent_rss_mb"] - first["parent_rss_mb"], 2)
    return result
