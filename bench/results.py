"""The results document: its schema, the writer and the reader.

Everything the text report prints comes from this document (report.py renders it, the README's
Performance block is generated from it by readme.py), so a run's JSON and its text can never
disagree. Times are milliseconds, memory MiB, ratios plain numbers; null means "not measured".
A row that could not be measured carries the reason in `not_measured`.

    {"schema": "cni-sysctl-bench/1",
     "header":  date, command, machine, kernel, python, cni_sysctl (version, commit),
                libcni, plugins (Debian's version), method (cycles, burst, import runs, RSS floor),
     "chains":  section 1, per chain: add/del p50 p90, rss_mb, cpu_ms, ok/runs, slow, install,
     "spawns":  section 1, the bare spawns (f), python -IS, ip netns exec,
     "added":   section 2, per chain: add/del paired_ms (median of per-cycle differences) and
                of_medians_ms; "chain_ratios": (c)/(b), (c)/(e), (d)/(e), (d)/(c),
     "direct":  section 3, per invocation: wall p50 p90, cpu_p50_ms, rss_mb, ok/runs;
                "direct_ratios": wall and CPU, of the medians and paired; "per_key",
     "bursts":  section 4, per chain: add ok p50 p99 max p99/p50, del ok p50 p99,
     "imports": section 5, start-up and per command: total, modules, heavy, top, pulled,
     "targets": section 6, per target: measured figure, value, limit, met, verdict, issue,
     "daemon_memory": section 7 (absent in runs before daemon mode): the daemon's memory after
                the first 10 and after all of its ADD/DEL cycles, and the growth,
     "background": per section, the CPU time other work used meanwhile (how disturbed it was),
     "notes":   what failed along the way}
"""

from __future__ import annotations

import json
import os
from typing import TypedDict

from .errors import BenchError

SCHEMA = "cni-sysctl-bench/1"


class Machine(TypedDict):
    nproc: int | None
    cpu: str
    virtual: bool  # the CPU flags say "hypervisor"
    os: str  # /etc/os-release PRETTY_NAME
    os_id: str  # ID and VERSION_ID: "debian", "12"
    os_version: str
    loadavg: list[float]  # at the start


class Kernel(TypedDict):
    system: str
    release: str
    version: str


class Python(TypedDict):
    version: str
    interpreter: list[str]  # the plugin launcher's #! line, which the no-op plugin shares


class CniSysctl(TypedDict):
    version: str
    repo: str
    commit: str  # git describe --always --dirty
    uncommitted: int  # files of cni_sysctl/ that differ from the commit


class Plugins(TypedDict):
    package: str
    version: str
    dir: str


class Method(TypedDict):
    cycles: int
    burst: int
    import_runs: int
    quick: bool
    rss_floor_mb: float | None  # the probe's own peak RSS


class Header(TypedDict):
    date: str
    command: str
    machine: Machine
    kernel: Kernel
    python: Python
    cni_sysctl: CniSysctl
    libcni: str  # our cnitool
    plugins: Plugins
    method: Method


class Percentiles(TypedDict):
    p50_ms: float | None
    p90_ms: float | None


ChainRow = TypedDict(
    "ChainRow",
    {
        "id": str,
        "label": str,
        "install": "str | None",
        "not_measured": "str | None",
        "add": Percentiles,
        "del": Percentiles,
        "rss_mb": "float | None",  # peak over ip + cnitool + every plugin of the chain (ADD)
        "cpu_ms": "float | None",  # user+sys of the whole chain per ADD
        "ok": int,
        "runs": int,
        "slow": int,  # ADDs more than 40 ms above the row's p50
    },
)


class SpawnRow(TypedDict):
    id: str
    label: str
    tagged: bool
    p50_ms: float | None
    p90_ms: float | None
    rss_mb: float | None
    cpu_ms: float | None
    ok: int
    runs: int


class AddedOp(TypedDict):
    paired_ms: float | None  # median of the per-cycle differences X_i - a_i
    of_medians_ms: float | None  # median(X) - median(a)


AddedRow = TypedDict(
    "AddedRow",
    {"id": str, "label": str, "not_measured": "str | None", "add": AddedOp, "del": AddedOp},
)


class RatioRow(TypedDict):
    num: str
    den: str
    what: str
    value: float | None


class Wall(TypedDict):
    p50_ms: float | None
    p90_ms: float | None


class DirectRow(TypedDict):
    name: str
    install: str | None
    command: str
    not_measured: str | None
    wall: Wall
    cpu_p50_ms: float | None
    rss_mb: float | None
    ok: int
    runs: int


class TwoRatios(TypedDict):
    of_medians: float | None
    paired: float | None  # median of the per-rep ratios


class DirectRatioRow(TypedDict):
    num: str
    den: str
    wall: TwoRatios
    cpu: TwoRatios


class PerKey(TypedDict):
    keys: int
    wall_ms: float | None  # (t100 - t1) / 99, median of the per-rep differences
    cpu_ms: float | None


class BurstAdd(TypedDict):
    ok: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    p99_over_p50: float | None


class BurstDel(TypedDict):
    ok: int
    p50_ms: float | None
    p99_ms: float | None


BurstRow = TypedDict(
    "BurstRow",
    {"id": str, "label": str, "not_measured": "str | None", "size": int, "add": BurstAdd, "del": BurstDel},
)


class TopImport(TypedDict):
    module: str
    ms: float | None


class PulledImport(TypedDict):
    module: str
    by: str  # the cni_sysctl module that imported it, or "top level"
    ms: float | None


class ImportRow(TypedDict):
    name: str
    not_measured: str | None
    total_ms: float | None
    modules: int | None
    heavy: list[str]
    top: list[TopImport]
    pulled: list[PulledImport]


class Imports(TypedDict):
    runs: int
    flags: list[str]
    startup_ms: float | None
    rows: list[ImportRow]


class TargetRow(TypedDict):
    name: str
    issue: str
    decided_on: str  # where in the report the figures come from
    measured: str  # the figure (targets.figures) compared
    value: float | None
    compare: str  # "<=", "<" or ">="
    factor: float
    base: str | None  # the figure the factor applies to, or None: the limit is the factor itself
    limit: float | None
    unit: str
    met: bool | None  # None: not measured
    verdict: str  # "met", "MISSED" or "NOT MEASURED"
    detail: str


class Background(TypedDict):
    """What else used the CPUs while a section ran: the machine's busy time (/proc/stat) minus
    the benchmark's own (itself and every child it reaped)."""

    section: str
    wall_s: float
    other_cpu_s: float  # other processes, and kernel work charged to no process (deferred netns cleanup)
    steal_s: float  # taken by the hypervisor for other guests


class DaemonMemoryAt(TypedDict):
    """The daemon's processes after `cycles` ADD/DEL cycles (MiB; modes.Memory)."""

    cycles: int
    parent_rss_mb: float
    workers: int
    tree_rss_mb: float
    tree_pss_mb: float


class DaemonMemory(TypedDict):
    cycles: int  # ADD+DEL cycles run against the daemon in this section
    not_measured: str | None
    failed: int  # calls that did not exit 0
    first: DaemonMemoryAt | None  # after the first 10 cycles
    last: DaemonMemoryAt | None  # after all of them
    pss_growth_mb: float | None  # last - first, PSS of the parent and its workers
    parent_rss_growth_mb: float | None


class _Later(TypedDict, total=False):
    """Sections that runs from before them lack."""

    daemon_memory: DaemonMemory  # section 6, since daemon mode (issue 10)


class Results(_Later):
    schema: str
    header: Header
    chains: list[ChainRow]
    spawns: list[SpawnRow]
    added: list[AddedRow]
    chain_ratios: list[RatioRow]
    direct: list[DirectRow]
    direct_ratios: list[DirectRatioRow]
    per_key: PerKey
    bursts: list[BurstRow]
    imports: Imports
    targets: list[TargetRow]
    background: list[Background]
    notes: list[str]


def dumps(results: Results) -> str:
    return json.dumps(results, indent=2, allow_nan=False) + "\n"


def write(path: str, results: Results) -> None:
    """Written whole or not at all (a temporary file renamed into place)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(dumps(results))
    os.replace(tmp, path)


def loads(text: str, source: str = "results") -> Results:
    try:
        doc = json.loads(text)
    except ValueError as err:
        raise BenchError(f"{source}: not JSON: {err}") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise BenchError(f"{source}: not a {SCHEMA} document (schema: {found!r})")
    missing = [key for key in Results.__annotations__ if key in Results.__required_keys__ and key not in doc]
    if missing:
        raise BenchError(f"{source}: missing {', '.join(missing)}")
    results: Results = doc  # type: ignore[assignment]  # checked above: the schema and every section
    return results


def read(path: str) -> Results:
    try:
        with open(path) as f:
            text = f.read()
    except OSError as err:
        raise BenchError(f"cannot read {path}: {err.strerror}") from None
    return loads(text, path)
