"""Section 5: the direct invocations rerun with `python -X importtime`.

`interpreter start-up` is what `python -IS -c pass` imports; for each command, `total` sums the
cumulative time of the top-level imports made after start-up (the import cost of the plugin),
`modules` counts them, and `heavy` says which of pyroute2 and yaml were loaded.
"""

from __future__ import annotations

from . import scenarios, stats
from .world import SYSTEM_PATH

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from .direct import DirectRun
    from .results import ImportRow, Imports

TOP = 5  # how many modules `top` and `pulled in` list


def parse(text: str) -> list[tuple[str, int, int]]:
    """(module, nesting level, cumulative us) for every line of -X importtime's stderr."""
    entries = []
    for line in text.splitlines():
        if not line.startswith("import time:"):
            continue
        fields = line[len("import time:") :].split("|")
        if len(fields) != 3:
            continue
        try:
            cumulative = int(fields[1])
        except ValueError:
            continue  # the header line
        name = fields[2][1:]
        bare = name.lstrip(" ")
        entries.append((bare.strip(), (len(name) - len(bare)) // 2, cumulative))
    return entries


def with_parents(entries: list[tuple[str, int, int]]) -> list[tuple[str, str | None, int]]:
    """(module, the module that imported it or None at top level, cumulative us). importtime
    prints a module after everything it imported, one level deeper: reading backwards, the
    parent of a line is the last line seen one level up."""
    result = []
    last_at: dict[int, str] = {}
    for module, level, cumulative in reversed(entries):
        last_at[level] = module
        result.append((module, last_at.get(level - 1) if level else None, cumulative))
    result.reverse()
    return result


def _ms(us: float | None) -> float | None:
    return None if us is None else round(us / 1000, 6)


def run(
    direct: DirectRun, interpreter: Sequence[str], names: Sequence[str], runs: int, broken: Mapping[str, str]
) -> Imports:
    world = direct.world
    python, flags = interpreter[0], list(interpreter[1:])
    startup_names: set[str] = set()
    startup_us: list[int] = []
    rows: list[ImportRow] = []
    with world.inside(world.host):
        for _ in range(runs):
            sample = world.spawner.run([python, "-X", "importtime", *flags, "-c", "pass"], {"PATH": SYSTEM_PATH})
            entries = parse(sample.stderr.decode())
            startup_names |= {name for name, _, _ in entries}
            startup_us.append(sum(cum for _, level, cum in entries if level == 0))
        for name in names:
            row: ImportRow = {
                "name": name,
                "not_measured": broken.get(name),
                "total_ms": None,
                "modules": None,
                "heavy": [],
                "top": [],
                "pulled": [],
            }
            rows.append(row)
            if name in broken:
                continue
            invocation = direct.invocations[name]
            top: dict[str, list[int]] = {}
            pulled: dict[tuple[str, str], list[int]] = {}
            totals: list[int] = []
            counts: list[int] = []
            for _ in range(runs):
                argv = [python, "-X", "importtime", *flags, invocation.exe]
                sample = world.spawner.run(argv, invocation.env, invocation.stdin)
                entries = [e for e in parse(sample.stderr.decode()) if e[0] not in startup_names]
                totals.append(sum(cum for _, level, cum in entries if level == 0))
                counts.append(len(entries))
                for module, parent, cumulative in with_parents(entries):
                    if parent is None:
                        top.setdefault(module, []).append(cumulative)
                    own = module.startswith("cni_sysctl")
                    if not own and (parent is None or parent.startswith("cni_sysctl")):
                        pulled.setdefault((module, parent or "top level"), []).append(cumulative)
            loaded = {m.split(".")[0] for m in top} | {m.split(".")[0] for m, _ in pulled}
            ranked = sorted(top.items(), key=lambda kv: -(stats.median(kv[1]) or 0))[:TOP]
            ranked_pulled = sorted(pulled.items(), key=lambda kv: -(stats.median(kv[1]) or 0))[:TOP]
            modules = stats.median(counts)
            row["total_ms"] = _ms(stats.median(totals))
            row["modules"] = None if modules is None else int(modules)
            row["heavy"] = sorted(loaded & scenarios.HEAVY_IMPORTS)
            row["top"] = [{"module": m, "ms": _ms(stats.median(v))} for m, v in ranked]
            row["pulled"] = [{"module": m, "by": p, "ms": _ms(stats.median(v))} for (m, p), v in ranked_pulled]
    return {"runs": runs, "flags": flags, "startup_ms": _ms(stats.median(startup_us)), "rows": rows}
