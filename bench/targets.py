"""The targets, as a table: what is compared, with what limit, decided on which figures, from
which issue. `evaluate` decides them from a results document alone, so a JSON file can be
re-judged (and the README's target lines generated) without rerunning anything.
"""

from __future__ import annotations

import dataclasses

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .results import Results, TargetRow


@dataclasses.dataclass(frozen=True)
class Target:
    name: str  # {burst} is the burst size
    issue: str
    decided_on: str
    measured: str  # a figure of figures()
    compare: str  # "<=", "<", ">="
    factor: float
    base: str | None = None  # limit = factor x this figure; None: limit = factor
    unit: str = "ms"
    detail: str = ""  # {value} {base} {limit} {factor} {ratio}: formatted per `unit`, n/a when missing


TARGETS: tuple[Target, ...] = (
    Target(
        "no-bounce ADD added latency <= 1.3 x no-op's",
        "#4",
        "section 2, (c)-(a) vs 1.3 x ((e)-(a))",
        "added ADD (c)",
        "<=",
        1.3,
        "added ADD (e)",
        "ms1",
        "(c)-(a) {value} ms vs {factor} x {base} = {limit} ms ({ratio} of no-op)",
    ),
    Target(
        "bounce ADD added latency <= 3 x no-op's",
        "#4",
        "section 2, (d)-(a) vs 3 x ((e)-(a))",
        "added ADD (d)",
        "<=",
        3.0,
        "added ADD (e)",
        "ms1",
        "(d)-(a) {value} ms vs {factor} x {base} = {limit} ms ({ratio} of no-op)",
    ),
    Target(
        "DEL <= 1.1 x no-op (direct, wall p50)",
        "#4",
        "section 3, wall p50, sysctl DEL vs no-op DEL",
        "direct sysctl DEL",
        "<=",
        1.1,
        "direct no-op DEL",
        "ms2",
        "{value} ms vs {factor} x {base} = {limit} ms ({ratio})",
    ),
    Target(
        "VERSION <= 1.1 x no-op (direct, wall p50)",
        "#4",
        "section 3, wall p50, sysctl VERSION vs no-op VERSION",
        "direct sysctl VERSION",
        "<=",
        1.1,
        "direct no-op VERSION",
        "ms2",
        "{value} ms vs {factor} x {base} = {limit} ms ({ratio})",
    ),
    Target(
        "{burst} concurrent ADDs (c): all succeed",
        "#4",
        "section 4, chain (c)",
        "burst (c) ok",
        ">=",
        1.0,
        "burst size",
        "count",
        "{value}/{limit}",
    ),
    Target(
        "{burst} concurrent ADDs (c): p99 <= 3 x p50",
        "#4",
        "section 4, chain (c)",
        "burst (c) p99/p50",
        "<=",
        3.0,
        None,
        "ratio",
        "p99/p50 = {value}",
    ),
    Target(
        "{burst} concurrent ADDs (d): all succeed",
        "#4",
        "section 4, chain (d)",
        "burst (d) ok",
        ">=",
        1.0,
        "burst size",
        "count",
        "{value}/{limit}",
    ),
    Target(
        "{burst} concurrent ADDs (d): p99 <= 3 x p50",
        "#4",
        "section 4, chain (d)",
        "burst (d) p99/p50",
        "<=",
        3.0,
        None,
        "ratio",
        "p99/p50 = {value}",
    ),
    Target(
        "each additional key < 0.1 ms",
        "#4",
        "section 3, cost per key (wall)",
        "per key wall",
        "<",
        0.1,
        None,
        "ms4",
        "{value} ms per key",
    ),
    Target(
        "daemon no-bounce ADD added latency <= 1.0 x tuning's",
        "#10",
        "section 2, (g)-(a) vs 1.0 x ((b)-(a))",
        "added ADD (g)",
        "<=",
        1.0,
        "added ADD (b)",
        "ms1",
        "(g)-(a) {value} ms vs {factor} x {base} = {limit} ms ({ratio} of tuning)",
    ),
    Target(
        "daemon bounce ADD added latency <= 2 x tuning's",
        "#10",
        "section 2, (h)-(a) vs 2 x ((b)-(a))",
        "added ADD (h)",
        "<=",
        2.0,
        "added ADD (b)",
        "ms1",
        "(h)-(a) {value} ms vs {factor} x {base} = {limit} ms ({ratio} of tuning)",
    ),
    Target(
        "daemon ADD CPU (shim + daemon) <= 2 x tuning's",
        "#10",
        "section 3, CPU p50, daemon ADD (no bounce) vs tuning ADD",
        "direct CPU daemon ADD, 3 keys, no bounce",
        "<=",
        2.0,
        "direct CPU tuning ADD, 3 sysctls",
        "ms2",
        "{value} ms vs {factor} x {base} = {limit} ms ({ratio})",
    ),
    Target(
        "daemon DEL <= tuning's (direct, wall p50)",
        "#10",
        "section 3, wall p50, daemon DEL vs tuning DEL",
        "direct daemon DEL",
        "<=",
        1.0,
        "direct tuning DEL",
        "ms2",
        "{value} ms vs {base} ms ({ratio})",
    ),
    Target(
        "daemon VERSION <= tuning's (direct, wall p50)",
        "#10",
        "section 3, wall p50, daemon VERSION vs tuning VERSION",
        "direct daemon VERSION",
        "<=",
        1.0,
        "direct tuning VERSION",
        "ms2",
        "{value} ms vs {base} ms ({ratio})",
    ),
    Target(
        "{burst} concurrent ADDs (g): all succeed",
        "#10",
        "section 4, chain (g)",
        "burst (g) ok",
        ">=",
        1.0,
        "burst size",
        "count",
        "{value}/{limit}",
    ),
    Target(
        "{burst} concurrent ADDs (g): p50 <= 1.2 x (a)'s",
        "#10",
        "section 4, p50 of chain (g) vs chain (a)",
        "burst (g) p50",
        "<=",
        1.2,
        "burst (a) p50",
        "ms1",
        "{value} ms vs {factor} x {base} = {limit} ms ({ratio})",
    ),
    Target(
        "{burst} concurrent ADDs (g): p99 <= 3 x p50",
        "#10",
        "section 4, chain (g)",
        "burst (g) p99/p50",
        "<=",
        3.0,
        None,
        "ratio",
        "p99/p50 = {value}",
    ),
    Target(
        "daemon memory: growth over its calls <= 5 MB",
        "#10",
        "section 6, PSS of the daemon and its workers, after all cycles vs after the first 10",
        "daemon PSS growth",
        "<=",
        5.0,
        None,
        "mb",
        "{value} MB (PSS, parent + workers)",
    ),
)


def figures(results: Results) -> dict[str, float | None]:
    """The named figures targets compare, taken from the results document."""
    found: dict[str, float | None] = {"burst size": float(results["header"]["method"]["burst"])}
    for added in results["added"]:
        found[f"added ADD ({added['id']})"] = added["add"]["paired_ms"]
    for direct in results["direct"]:
        found[f"direct {direct['name']}"] = None if direct["not_measured"] else direct["wall"]["p50_ms"]
        found[f"direct CPU {direct['name']}"] = None if direct["not_measured"] else direct["cpu_p50_ms"]
    for burst in results["bursts"]:
        measured = burst["not_measured"] is None
        found[f"burst ({burst['id']}) ok"] = float(burst["add"]["ok"]) if measured else None
        found[f"burst ({burst['id']}) p99/p50"] = burst["add"]["p99_over_p50"] if measured else None
        found[f"burst ({burst['id']}) p50"] = burst["add"]["p50_ms"] if measured else None
    found["per key wall"] = results["per_key"]["wall_ms"]
    memory = results.get("daemon_memory")
    found["daemon PSS growth"] = None if memory is None else memory["pss_growth_mb"]
    return found


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "count":
        return str(int(value))
    if unit == "ratio":
        return f"{value:.2f}x"
    if unit == "mb":
        return f"{value:.2f}"
    digits = int(unit[2:]) if unit.startswith("ms") and unit[2:].isdigit() else 1
    return f"{value:.{digits}f}"


def _met(value: float, compare: str, limit: float) -> bool:
    if compare == "<=":
        return value <= limit
    if compare == "<":
        return value < limit
    if compare == ">=":
        return value >= limit
    raise ValueError(f"unknown comparison {compare!r}")


def evaluate(results: Results) -> list[TargetRow]:
    found = figures(results)
    burst = results["header"]["method"]["burst"]
    rows: list[TargetRow] = []
    for target in TARGETS:
        if target.issue == "#10" and "daemon_memory" not in results:
            continue  # a run from before daemon mode: it had none of these rows
        value = found.get(target.measured)
        base = found.get(target.base) if target.base else 1.0
        limit = None if base is None else round(target.factor * base, 6)
        met = None if value is None or limit is None else _met(value, target.compare, limit)
        ratio = None if value is None or base is None or base <= 0 or target.base is None else value / base
        detail = target.detail.format(
            value=fmt(value, target.unit),
            base=fmt(base, target.unit),
            limit=fmt(limit, target.unit),
            factor=target.factor,
            ratio="n/a" if ratio is None else f"{ratio:.2f}x",
        )
        rows.append(
            {
                "name": target.name.format(burst=burst),
                "issue": target.issue,
                "decided_on": target.decided_on,
                "measured": target.measured,
                "value": value,
                "compare": target.compare,
                "factor": target.factor,
                "base": target.base,
                "limit": limit,
                "unit": target.unit,
                "met": met,
                "verdict": "NOT MEASURED" if met is None else "met" if met else "MISSED",
                "detail": detail,
            }
        )
    return rows
