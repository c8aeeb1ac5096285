"""README's Performance block, generated from a results document.

`python -m bench readme bench/results-DATE.json` rewrites what lies between the lines
`<!-- bench:begin -->` and `<!-- bench:end -->` of README.md; the block names the JSON file it
was made from, and tests/unit/test_bench_readme.py checks that README's block is exactly what
that file gives, so the figures in the README can never drift from the data. To change the
wording, change this module and regenerate.
"""

from __future__ import annotations

import os
import re
import textwrap

from .errors import BenchError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from .results import AddedRow, BurstRow, DirectRow, Results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"
WIDTH = 96
SOURCE = re.compile(r"`python -m bench readme (\S+)`")

# The table's words for each chain (the report's labels are written for a wider column).
README_LABELS = {
    "a": "bridge + host-local (IPv4 + IPv6)",
    "b": "+ tuning, 3 sysctls",
    "c": "+ cni-sysctl, 3 sysctls, no bounce",
    "d": "+ cni-sysctl, with a link bounce (`addr_gen_mode`)",
    "e": "+ a no-op Python plugin (`-IS`, decodes and prints)",
    "g": "+ cni-sysctl in daemon mode, 3 sysctls, no bounce",
    "h": "+ cni-sysctl in daemon mode, with a link bounce",
}


def repo_path(path: str) -> str:
    """`path` as the README names it: relative to the repository root."""
    return os.path.relpath(os.path.abspath(path), REPO)


def text_report(json_name: str) -> str:
    """The text report saved beside a results file: same name, .txt."""
    stem = json_name[: -len(".json")] if json_name.endswith(".json") else json_name
    return stem + ".txt"


def source_of(readme_text: str) -> str | None:
    """The results file README's block says it was generated from."""
    inside = between(readme_text)
    found = SOURCE.search(inside)
    return found.group(1) if found else None


def between(readme_text: str) -> str:
    begin, end = _markers(readme_text)
    return readme_text[begin:end]


def _markers(readme_text: str) -> tuple[int, int]:
    """Offsets of the block: just after the begin line, at the start of the end line."""
    lines = readme_text.splitlines(keepends=True)
    starts = [sum(len(line) for line in lines[:i]) for i in range(len(lines))]
    begins = [i for i, line in enumerate(lines) if line.strip() == BEGIN]
    ends = [i for i, line in enumerate(lines) if line.strip() == END]
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        raise BenchError(f"README must hold one line {BEGIN} and, after it, one line {END}")
    return starts[begins[0]] + len(lines[begins[0]]), starts[ends[0]]


def rewrite(readme_text: str, block: str) -> str:
    begin, end = _markers(readme_text)
    return readme_text[:begin] + block + readme_text[end:]


# ---------------------------------------------------------------- the words and figures


def _num(value: float | None, digits: int = 1, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{unit}"


def _x(value: float | None, digits: int = 2) -> str:
    return _num(value, digits, "x")


def _cpu(name: str) -> str:
    name = re.sub(r"\((R|TM|tm)\)", "", name)
    name = re.sub(r"\s+\d+-Core Processor.*$|\s+(CPU|Processor)\b.*$", "", name)
    return " ".join(name.split())


def _version(text: str) -> str:
    found = re.match(r"\d+(\.\d+)*", text)
    return found.group(0) if found else text


def _fill(text: str, bullet: bool = False) -> str:
    return (
        textwrap.fill(
            " ".join(text.split()),
            WIDTH,
            initial_indent="- " if bullet else "",
            subsequent_indent="  " if bullet else "",
            break_long_words=False,
            break_on_hyphens=False,
        )
        + "\n"
    )


def _factor(results: Results, measured: str) -> str:
    for target in results["targets"]:
        if target["measured"] == measured:
            return f"{target['factor']:g}x"
    return "n/a"


def _series(parts: Sequence[str]) -> str:
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else "".join(parts)


def _daemon_line(
    results: Results,
    added: dict[str, AddedRow],
    ratios: dict[tuple[str, str], float | None],
    direct: dict[str, DirectRow],
    bursts: dict[str, BurstRow],
) -> str:
    """The daemon-mode bullet (issue 10), for runs that measured it."""

    def wall(name: str) -> str:
        row = direct.get(name)
        return "n/a" if row is None or row["not_measured"] else _num(row["wall"]["p50_ms"], 2, " ms")

    def cpu(name: str) -> str:
        row = direct.get(name)
        return "n/a" if row is None or row["not_measured"] else _num(row["cpu_p50_ms"], 2, " ms")

    size = results["header"]["method"]["burst"]
    g, a, b = bursts.get("g"), bursts.get("a"), bursts.get("b")
    burst = "not measured"
    if g is not None and a is not None and not g["not_measured"]:
        tuning = "" if b is None or b["not_measured"] else f" and {_num(b['add']['p50_ms'], 0, ' ms')} with tuning"
        burst = (
            f"{g['add']['ok']}/{size} succeed, p50 {_num(g['add']['p50_ms'], 0, ' ms')} against"
            f" {_num(a['add']['p50_ms'], 0, ' ms')} for bridge alone{tuning}, p99/p50 = {_x(g['add']['p99_over_p50'])}"
        )
    memory = results.get("daemon_memory")
    grew = "not measured"
    if memory is not None and memory["pss_growth_mb"] is not None and memory["last"] is not None:
        first = memory["first"]
        grew = (
            f"its memory (PSS of the parent and its workers) was"
            f" {'n/a' if first is None else _num(first['tree_pss_mb'], 1, ' MB')} after the first 10 ADD/DEL"
            f" cycles and {_num(memory['last']['tree_pss_mb'], 1, ' MB')} after {memory['last']['cycles']}"
            f" (growth {memory['pss_growth_mb']:+.2f} MB, target <= 5 MB)"
        )
    return _fill(
        f"Daemon mode (the Go shim forwarding to `cni-sysctl daemon`, issue 10): a no-bounce ADD adds"
        f" {_num(added['g']['add']['paired_ms'], 1, ' ms')}, {_x(ratios.get(('g', 'b')))} what tuning adds"
        f" (target <= {_factor(results, 'added ADD (g)')}), a bounce ADD"
        f" {_num(added['h']['add']['paired_ms'], 1, ' ms') if 'h' in added else 'n/a'},"
        f" {_x(ratios.get(('h', 'b')))} (target <= {_factor(results, 'added ADD (h)')}). Run directly: ADD CPU"
        f" (shim and daemon) {cpu('daemon ADD, 3 keys, no bounce')} against tuning's"
        f" {cpu('tuning ADD, 3 sysctls')}; DEL {wall('daemon DEL')} against {wall('tuning DEL')}, VERSION"
        f" {wall('daemon VERSION')} against {wall('tuning VERSION')}. {size} concurrent ADDs: {burst}; {grew}.",
        bullet=True,
    )


def block(results: Results, json_name: str) -> str:
    """Everything between the markers, from `results` (read from `json_name`, repo-relative)."""
    h = results["header"]
    machine = h["machine"]
    added = {row["id"]: row for row in results["added"]}
    ratios = {(r["num"], r["den"]): r["value"] for r in results["chain_ratios"]}
    direct = {row["name"]: row for row in results["direct"]}
    direct_ratios = {(r["num"], r["den"]): r["wall"]["of_medians"] for r in results["direct_ratios"]}
    bursts = {row["id"]: row for row in results["bursts"]}
    spawns = {row["id"]: row for row in results["spawns"]}
    imports = {row["name"]: row for row in results["imports"]["rows"]}

    def rss(name: str) -> str:
        row = direct.get(name)
        return "n/a" if row is None or row["not_measured"] else _num(row["rss_mb"], 1, " MB")

    def import_ms(name: str) -> str:
        row = imports.get(name)
        return "n/a" if row is None or row["not_measured"] else _num(row["total_ms"])

    kernel = ".".join(h["kernel"]["release"].split(".")[:2])
    os_name = f"{machine['os_id'].capitalize()} {machine['os_version']}"
    out = [
        f"<!-- generated by `python -m bench readme {json_name}` from that file;\n"
        "     to change the wording, change bench/readme.py and regenerate -->\n",
        _fill(
            f"Measured with `sudo .venv/bin/python -m bench` (full output: `{text_report(json_name)}`,"
            f" every figure: `{json_name}`; method: `bench/README.md`) on {h['date'].split()[0]},"
            f" a {machine['nproc']}-core {_cpu(machine['cpu'])}{' VM' if machine['virtual'] else ''},"
            f" {os_name}, {h['kernel']['system']} {kernel}, Python {h['python']['version']},"
            f" Debian's plugins {_version(h['plugins']['version'])}, through our libcni `cnitool`,"
            f" {h['method']['cycles']} interleaved cycles, medians:"
        ),
        "\n",
        "| ADD through libcni | wall | added over bridge alone |\n",
        "|---|---|---|\n",
    ]
    for row in results["chains"]:
        label = f"({row['id']}) {README_LABELS.get(row['id'], row['label'])}"
        if row["not_measured"]:
            out.append(f"| {label} | not measured | not measured |\n")
            continue
        extra = added.get(row["id"])
        more = "—" if extra is None else _num(extra["add"]["paired_ms"], 1, " ms")
        out.append(f"| {label} | {_num(row['add']['p50_ms'], 1, ' ms')} | {more} |\n")
    out.append("\n")

    size = h["method"]["burst"]
    burst_ok = [f"{bursts[i]['add']['ok']}/{size}" if i in bursts else "n/a" for i in ("c", "d")]
    succeeded = burst_ok[0] if burst_ok[0] == burst_ok[1] else f"{burst_ok[0]} (no bounce) and {burst_ok[1]} (bounce)"
    p99 = [_x(bursts[i]["add"]["p99_over_p50"]) if i in bursts else "n/a" for i in ("c", "d")]
    failed = [t for t in results["targets"] if not t["met"]]
    if failed:
        verdict = (
            "Targets not met: "
            + "; ".join(f"{t['name']} ({t['verdict'].lower()}: {t['detail']})" for t in failed)
            + "."
        )
    else:
        issues = sorted({t["issue"].lstrip("#") for t in results["targets"]}, key=lambda i: (len(i), i))
        which = f"issue{'s' if len(issues) > 1 else ''} {_series(issues)}"
        verdict = f"All {len(results['targets'])} targets of {which} met."
    out.append(
        _fill(
            f"No-bounce ADD adds {_x(ratios.get(('c', 'e')))} what the no-op Python plugin adds"
            f" (target <= {_factor(results, 'added ADD (c)')}); a bounce ADD {_x(ratios.get(('d', 'e')))}"
            f" (target <= {_factor(results, 'added ADD (d)')}). Run directly, DEL costs"
            f" {_x(direct_ratios.get(('sysctl DEL', 'no-op DEL')))} the no-op's and VERSION"
            f" {_x(direct_ratios.get(('sysctl VERSION', 'no-op VERSION')))}"
            f" (target <= {_factor(results, 'direct sysctl DEL')}). Each additional key costs"
            f" {_num(results['per_key']['wall_ms'], 3)} ms. {size} concurrent ADDs into {size} netns:"
            f" {succeeded} succeed, p99/p50 = {p99[0]} (no bounce) and {p99[1]} (bounce). Peak RSS"
            f" {rss('sysctl ADD, 3 keys, no bounce')} (no bounce), {rss('sysctl ADD, 4 keys, bounce')} (bounce),"
            f" against {rss('no-op ADD')} for the no-op. {verdict}",
            bullet=True,
        )
    )
    if "g" in added:
        out.append(_daemon_line(results, added, ratios, direct, bursts))
    bare = spawns.get("fS")
    bare_ms = "n/a" if bare is None or bare["p50_ms"] is None else f"~{bare['p50_ms']:.0f} ms"
    out.append(
        _fill(
            f"Against tuning, a Go binary, the honest figure is (c)/(b) = {_x(ratios.get(('c', 'b')), 1)} the"
            " added latency: the interpreter start is the floor of any Python plugin (a bare"
            f" `python3 -IS` start is {bare_ms} here).",
            bullet=True,
        )
    )
    light = ("sysctl VERSION", "sysctl DEL", "sysctl ADD, 3 keys, no bounce")
    heavy = sorted({m for name in light if name in imports for m in imports[name]["heavy"]})
    loaded = "no pyroute2 or PyYAML on those paths" if not heavy else f"yet {_series(heavy)} loaded on those paths"
    pulled = {p["module"] for name in light if name in imports for p in imports[name]["pulled"]}
    jsonio = (
        ""
        if "json" in pulled or not imports
        else " JSON through CPython's `_json` accelerator without the `json` package, whose import (it"
        " compiles regular expressions) is most of the no-op's import time (`jsonio`);"
    )
    out.append(
        _fill(
            "How: the launcher runs `python -IS` with explicit import roots (no site, no entry-point"
            " scan); each command imports only what it uses (`python -X importtime`: VERSION"
            f" {import_ms('sysctl VERSION')} ms of imports, DEL {import_ms('sysctl DEL')}, no-bounce ADD"
            f" {import_ms('sysctl ADD, 3 keys, no bounce')}, against {import_ms('no-op ADD')} for the no-op's"
            f" `json`); {loaded};{jsonio} `setns` through the `_ctypes` C module instead of the ctypes"
            " package (Python 3.11 has no `os.setns`); link state by ioctl through `_socket`.",
            bullet=True,
        )
    )
    return "".join(out)
