"""The text report, rendered from a results document alone (bench/README.md explains each line).

The CLI prints each section as soon as its figures are in; `python -m bench report FILE.json`
renders a saved run again, byte for byte.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from .results import Results

TITLE = "cni-sysctl benchmark (python -m bench)"
MAX_NOTES = 20


def ms(value: float | None, width: int = 8, digits: int = 1) -> str:
    """A figure in ms, right-aligned; n/a when not measured."""
    if value is None:
        return "n/a".rjust(width)
    return f"{value:{width}.{digits}f}"


def mb(value: float | None, width: int = 8) -> str:
    return "n/a".rjust(width) if value is None else f"{value:{width}.1f}"


def times(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def header(results: Results) -> list[str]:
    h = results["header"]
    machine, method, cs = h["machine"], h["method"], h["cni_sysctl"]
    kernel, plugins = h["kernel"], h["plugins"]
    floor = "n/a" if method["rss_floor_mb"] is None else f"{method['rss_floor_mb']:.1f} MB"
    virtual = " (virtual machine)" if machine["virtual"] else ""
    extra = f" + {cs['uncommitted']} uncommitted file(s) in cni_sysctl/" if cs["uncommitted"] else ""
    loadavg = " ".join(f"{v:.2f}" for v in machine["loadavg"])
    return [
        TITLE,
        f"date        {h['date']}",
        f"command     {h['command']}",
        f"machine     nproc {machine['nproc']}, {machine['cpu']}{virtual}, load average {loadavg}",
        f"os          {machine['os']}",
        f"kernel      {kernel['system']} {kernel['release']} {kernel['version']}",
        f"python      {h['python']['version']} ({' '.join(h['python']['interpreter'])};"
        " the plugin's and the no-op's interpreter)",
        f"cni-sysctl  {cs['version']}, {cs['repo']} at {cs['commit']}{extra}",
        f"libcni      {h['libcni']}; Debian {plugins['package']} {plugins['version']} in {plugins['dir']}",
        f"method      {method['cycles']} cycles, configurations interleaved round-robin, start rotated each cycle;",
        "            each run under a small probe process: wall = posix_spawn .. wait4 (perf_counter), CPU",
        "            (user+sys) and peak RSS from the command's wait4 rusage (itself and every descendant it",
        f"            waited for); an RSS at the probe's floor ({floor}) is the probe's, the command's is lower",
        "",
    ]


def chains(results: Results) -> list[str]:
    cycles = results["header"]["method"]["cycles"]
    lines = [
        f"1. Chains through cnitool, {cycles} cycles (ms; RSS = peak of the whole chain, CPU = user+sys of the chain)",
        "   slow = ADDs more than 40 ms above the row's p50: with IPv6 ranges the Go plugins now and then",
        "   wait one more 50 ms poll (in (a) alone too; never with IPv4-only ranges); p50 and the",
        "   paired medians below absorb it, p90 does not",
        f"   {'configuration':<58}{'ADD p50':>8}{'ADD p90':>8}{'DEL p50':>8}{'DEL p90':>8}"
        f"{'RSS MB':>8}{'CPU ms':>8}  ok    slow",
    ]
    for row in results["chains"]:
        name = f"({row['id']}) {row['label']}"
        if row["not_measured"]:
            lines.append(f"   {name:<58} NOT MEASURED: {row['not_measured']}")
            continue
        lines.append(
            f"   {name:<58}{ms(row['add']['p50_ms'])}{ms(row['add']['p90_ms'])}"
            f"{ms(row['del']['p50_ms'])}{ms(row['del']['p90_ms'])}{mb(row['rss_mb'])}{ms(row['cpu_ms'])}"
            f"  {row['ok']}/{row['runs']:<4}{row['slow']:>3}"
        )
    for spawn in results["spawns"]:
        name = f"{'(' + spawn['id'] + ')' if spawn['tagged'] else '   '} {spawn['label']}"
        lines.append(
            f"   {name:<58}{ms(spawn['p50_ms'])}{ms(spawn['p90_ms'])}"
            f"{'':>16}{mb(spawn['rss_mb'])}{ms(spawn['cpu_ms'])}  {spawn['ok']}/{spawn['runs']}"
        )
    lines.append("")
    return lines


def added(results: Results) -> list[str]:
    lines = [
        "2. Added latency over (a), ms: median of the per-cycle differences X_i - a_i (paired: same cycle);",
        "   in brackets the difference of the medians",
        f"   {'configuration':<58}{'ADD':>8}{'':>10}{'DEL':>8}",
    ]
    for row in results["added"]:
        line = f"   ({row['id']}) {row['label']:<54}"
        if row["not_measured"]:
            lines.append(line + " n/a")
            continue
        for op in (row["add"], row["del"]):
            line += f"{ms(op['paired_ms'])} [{ms(op['of_medians_ms'], 6)}]"
        lines.append(line)
    lines += ["", "   ratios of added ADD latency (the paired medians above):"]
    for ratio in results["chain_ratios"]:
        lines.append(f"   ({ratio['num']})/({ratio['den']}) = {times(ratio['value']):>6}   {ratio['what']}")
    lines.append("")
    return lines


def direct(results: Results) -> list[str]:
    cycles = results["header"]["method"]["cycles"]
    lines = [
        "3. The plugin process alone: the launcher run directly (posix_spawn, wait4) from the host netns",
        f"   with the CNI environment and the stdin config libcni would give it, {cycles} reps interleaved (ms)",
        f"   {'invocation':<34}{'wall p50':>9}{'wall p90':>9}{'CPU p50':>9}{'RSS MB':>8}  ok",
    ]
    for row in results["direct"]:
        if row["not_measured"]:
            lines.append(f"   {row['name']:<34} NOT MEASURED: {row['not_measured']}")
            continue
        lines.append(
            f"   {row['name']:<34}{ms(row['wall']['p50_ms'], 9, 2)}{ms(row['wall']['p90_ms'], 9, 2)}"
            f"{ms(row['cpu_p50_ms'], 9, 2)}{mb(row['rss_mb'])}  {row['ok']}/{row['runs']}"
        )
    lines.append("   ratios: of the medians above; in brackets the median of the per-rep ratios (paired)")
    for ratio in results["direct_ratios"]:
        pair = f"{ratio['num']} / {ratio['den']}"
        wall, cpu = ratio["wall"], ratio["cpu"]
        lines.append(
            f"   {pair:<48} wall {times(wall['of_medians']):>6} [{times(wall['paired'])}]"
            f", CPU {times(cpu['of_medians']):>6} [{times(cpu['paired'])}]"
        )
    per_key = results["per_key"]
    n = per_key["keys"]
    lines += [
        f"   cost per key: (t{n} - t1) / {n - 1} = {ms(per_key['wall_ms'], 0, 4).strip()} ms wall,"
        f" {ms(per_key['cpu_ms'], 0, 4).strip()} ms CPU (median of per-rep differences;",
        f"   {n} per-interface sysctls of eth0 in short form, each set to the value it has, linkBounce never)",
        "",
    ]
    return lines


def bursts(results: Results) -> list[str]:
    size = results["header"]["method"]["burst"]
    lines = [
        f"4. Burst: {size} concurrent `cnitool add` into {size} fresh netns, started together,"
        f" then {size} concurrent DELs",
        f"   {'configuration':<58}{'ok':>6}{'p50':>8}{'p99':>8}{'max':>8}{'p99/p50':>9}   DEL ok p50 p99",
    ]
    for row in results["bursts"]:
        if row["not_measured"]:
            lines.append(f"   ({row['id']}) {row['label']:<54} NOT MEASURED: {row['not_measured']}")
            continue
        add, delete = row["add"], row["del"]
        lines.append(
            f"   ({row['id']}) {row['label']:<54}{add['ok']:>3}/{row['size']:<2}"
            f"{ms(add['p50_ms'])}{ms(add['p99_ms'])}{ms(add['max_ms'])}"
            f"{times(add['p99_over_p50']):>9}   {delete['ok']}/{row['size']}"
            f"{ms(delete['p50_ms'])}{ms(delete['p99_ms'])}"
        )
    lines.append("")
    return lines


def imports(results: Results) -> list[str]:
    data = results["imports"]
    startup = "n/a" if data["startup_ms"] is None else f"{data['startup_ms']:7.2f}"
    lines = [
        f"5. python -X importtime, median of {data['runs']} direct runs each (ms, cumulative: a module and all it",
        "   imported). 'total' sums the top-level imports made after interpreter start-up; 'top' lists",
        "   the largest of them; 'pulled in' the largest modules from outside cni_sysctl and who imported them",
        f"   {'interpreter start-up (' + ' '.join(data['flags']) + ' -c pass)':<34}{startup}",
    ]
    for row in data["rows"]:
        if row["not_measured"]:
            lines.append(f"   {row['name']:<34} NOT MEASURED: {row['not_measured']}")
            continue
        total = "n/a" if row["total_ms"] is None else f"{row['total_ms']:7.2f}"
        lines.append(
            f"   {row['name']:<34}{total} total, {row['modules']} modules;"
            f" pyroute2/yaml: {', '.join(row['heavy']) or 'none'}"
        )
        lines.append(f"   {'':<34}top: " + ", ".join(f"{t['module']} {ms(t['ms'], 0, 2)}" for t in row["top"]))
        lines.append(
            f"   {'':<34}pulled in: "
            + ", ".join(
                f"{p['module']} {ms(p['ms'], 0, 2)} ({'by ' + p['by'] if p['by'] != 'top level' else p['by']})"
                for p in row["pulled"]
            )
        )
    lines.append("")
    return lines


def daemon_memory(results: Results) -> list[str]:
    data = results.get("daemon_memory")
    if data is None:  # a run from before daemon mode
        return []
    lines = [
        f"6. Daemon memory: {data['cycles']} ADD/DEL cycles through the shim into one netns (ADDs alternately",
        "   without and with a bounce), the daemon's processes read once idle (MiB; PSS divides shared",
        "   pages among the processes sharing them)",
    ]
    if data["not_measured"]:
        return [*lines, f"   NOT MEASURED: {data['not_measured']}", ""]
    lines.append(f"   {'after':<22}{'parent RSS':>11}{'workers':>9}{'RSS, all':>10}{'PSS, all':>10}")
    for at in (data["first"], data["last"]):
        if at is None:
            continue
        lines.append(
            f"   {str(at['cycles']) + ' cycles':<22}{mb(at['parent_rss_mb'], 11)}{at['workers']:>9}"
            f"{mb(at['tree_rss_mb'], 10)}{mb(at['tree_pss_mb'], 10)}"
        )
    pss, parent = data["pss_growth_mb"], data["parent_rss_growth_mb"]
    lines.append(
        f"   growth: PSS {'n/a' if pss is None else f'{pss:+.2f}'} MB, parent RSS"
        f" {'n/a' if parent is None else f'{parent:+.2f}'} MB; {data['failed']} call(s) failed"
    )
    lines.append("")
    return lines


def targets(results: Results) -> list[str]:
    number = 7 if "daemon_memory" in results else 6
    issues = sorted({t["issue"].lstrip("#") for t in results["targets"]}, key=lambda i: (len(i), i))
    lines = [f"{number}. Targets (issue{'s' if len(issues) > 1 else ''} {', '.join(issues)})"]
    for target in results["targets"]:
        lines.append(f"   {target['verdict']:<13}{target['name']:<48}{target['detail']}")
    lines.append("")
    if results["background"]:
        cpus = results["header"]["machine"]["nproc"] or 1
        lines += [
            "other work: CPU time the machine spent outside the benchmark's processes while each section ran",
            "(other processes, and kernel work charged to none, such as deferred netns cleanup); where it is",
            "more than a few percent, that section's wall times are inflated: rerun if they matter (1-2 includes",
            "the warm-up)",
        ]
        for lap in results["background"]:
            share = lap["other_cpu_s"] / (cpus * lap["wall_s"]) if lap["wall_s"] > 0 else 0.0
            lines.append(
                f"   section {lap['section']:<4}{lap['wall_s']:6.1f} s wall  {lap['other_cpu_s']:6.2f} CPU-s other"
                f" ({share:4.0%} of {cpus} CPUs)  {lap['steal_s']:5.2f} s stolen"
            )
        lines.append("")
    notes = results["notes"]
    if notes:
        lines.append("notes")
        lines += [f"   - {note}" for note in notes[:MAX_NOTES]]
        if len(notes) > MAX_NOTES:
            lines.append(f"   ... and {len(notes) - MAX_NOTES} more")
        lines.append("")
    return lines


# The sections in order, each rendered once its part of the results is filled in.
SECTIONS: tuple[tuple[str, Callable[[Results], list[str]]], ...] = (
    ("header", header),
    ("chains", chains),
    ("added", added),
    ("direct", direct),
    ("bursts", bursts),
    ("imports", imports),
    ("daemon_memory", daemon_memory),
    ("targets", targets),
)


def section(results: Results, name: str) -> str:
    render = dict(SECTIONS)[name]
    return "".join(line + "\n" for line in render(results))


def render(results: Results) -> str:
    return "".join(section(results, name) for name, _ in SECTIONS)
