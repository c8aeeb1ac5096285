"""bench.targets: decided from a results document alone."""

from __future__ import annotations

import copy

from bench import targets
from bench.results import TargetRow
from tests.unit.bench_sample import sample


def by_name(rows: list[TargetRow]) -> dict[str, TargetRow]:
    return {row["name"]: row for row in rows}


def test_the_sample_meets_every_target() -> None:
    """The sample is a run from before daemon mode: the targets of issue 4, all met."""
    rows = targets.evaluate(sample())
    assert len(rows) == len([t for t in targets.TARGETS if t.issue == "#4"])
    assert all(row["met"] and row["verdict"] == "met" for row in rows)
    first = rows[0]
    assert first["detail"] == "(c)-(a) 24.7 ms vs 1.3 x 20.5 = 26.6 ms (1.20x of no-op)"
    assert first["limit"] == 26.65
    assert by_name(rows)["50 concurrent ADDs (c): all succeed"]["detail"] == "50/50"
    assert by_name(rows)["each additional key < 0.1 ms"]["detail"] == "0.0360 ms per key"


def test_a_failed_burst_member_is_missed() -> None:
    results = copy.deepcopy(sample())
    results["bursts"][1]["add"]["ok"] = 49
    row = by_name(targets.evaluate(results))["50 concurrent ADDs (c): all succeed"]
    assert (row["met"], row["verdict"], row["detail"]) == (False, "MISSED", "49/50")


def test_over_the_limit_is_missed_and_at_it_is_met() -> None:
    results = copy.deepcopy(sample())
    results["direct"][3]["wall"]["p50_ms"] = 20.625  # sysctl DEL at exactly 1.1 x 18.75
    assert by_name(targets.evaluate(results))["DEL <= 1.1 x no-op (direct, wall p50)"]["met"] is True
    results["direct"][3]["wall"]["p50_ms"] = 20.7
    assert by_name(targets.evaluate(results))["DEL <= 1.1 x no-op (direct, wall p50)"]["verdict"] == "MISSED"


def test_the_key_cost_limit_is_strict() -> None:
    results = copy.deepcopy(sample())
    results["per_key"]["wall_ms"] = 0.1
    assert by_name(targets.evaluate(results))["each additional key < 0.1 ms"]["verdict"] == "MISSED"


def test_what_was_not_measured_is_said() -> None:
    results = copy.deepcopy(sample())
    results["added"][3]["add"]["paired_ms"] = None  # (e)
    results["bursts"][2]["not_measured"] = "ADD failed"
    rows = by_name(targets.evaluate(results))
    row = rows["no-bounce ADD added latency <= 1.3 x no-op's"]
    assert (row["met"], row["verdict"], row["limit"]) == (None, "NOT MEASURED", None)
    assert row["detail"] == "(c)-(a) 24.7 ms vs 1.3 x n/a = n/a ms (n/a of no-op)"
    assert rows["50 concurrent ADDs (d): all succeed"]["verdict"] == "NOT MEASURED"


def test_a_run_with_the_daemon_section_is_judged_on_daemon_targets_too() -> None:
    """Rows a run lacks are NOT MEASURED, never met; the memory target is decided on PSS growth."""
    results = copy.deepcopy(sample())
    memory = {"cycles": 1000, "not_measured": None, "failed": 0, "first": None, "last": None,
              "pss_growth_mb": 4.99, "parent_rss_growth_mb": 0.1}  # fmt: skip
    results["daemon_memory"] = memory  # type: ignore[typeddict-item]
    rows = by_name(targets.evaluate(results))
    assert len(rows) == len(targets.TARGETS)
    assert rows["daemon no-bounce ADD added latency <= 1.0 x tuning's"]["verdict"] == "NOT MEASURED"
    assert rows["daemon memory: growth over its calls <= 5 MB"]["met"] is True
    memory["pss_growth_mb"] = 5.01
    rows = by_name(targets.evaluate(results))
    assert rows["daemon memory: growth over its calls <= 5 MB"]["verdict"] == "MISSED"
