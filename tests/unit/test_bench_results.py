"""bench.results and bench.report: the JSON document round-trips, a wrong one is refused, and the
text report is a function of the document alone (a saved run renders to its saved text)."""

from __future__ import annotations

import glob
import json
import math
import os

import pytest

from bench import report, results, targets
from bench.errors import BenchError
from tests.unit.bench_sample import sample

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_round_trip() -> None:
    doc = sample()
    assert results.loads(results.dumps(doc)) == doc


def test_write_then_read(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "r.json")
    results.write(path, sample())
    assert results.read(path) == sample()
    assert os.listdir(tmp_path) == ["r.json"]


def test_not_a_number_is_never_written() -> None:
    doc = sample()
    doc["per_key"]["wall_ms"] = math.nan
    with pytest.raises(ValueError, match="not JSON compliant"):
        results.dumps(doc)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "x.json: not JSON"),
        ("[]", "x.json: not a cni-sysctl-bench/1 document (schema: 'list')"),
        (
            '{"schema": "cni-sysctl-bench/0"}',
            "x.json: not a cni-sysctl-bench/1 document (schema: 'cni-sysctl-bench/0')",
        ),
    ],
)
def test_refused(text: str, message: str) -> None:
    with pytest.raises(BenchError) as info:
        results.loads(text, "x.json")
    assert str(info.value).startswith(message)


def test_a_missing_section_is_named() -> None:
    doc = json.loads(results.dumps(sample()))
    del doc["bursts"], doc["notes"]
    with pytest.raises(BenchError, match=r"^x.json: missing bursts, notes$"):
        results.loads(json.dumps(doc), "x.json")


def test_unreadable_file() -> None:
    with pytest.raises(BenchError, match=r"^cannot read /nonexistent/r\.json"):
        results.read("/nonexistent/r.json")


def test_report_prints_the_figures_as_bench_py_did() -> None:
    """Sections 1 to 4 of the sample (the figures of 2026-11-22) are byte for byte what the
    single-file bench.py printed that day."""
    with open(os.path.join(REPO, "bench", "results-2026-11-22.txt")) as f:
        old = f.read()
    printed = old[old.index("1. Chains") : old.index("5. python")]
    rendered = "".join(report.section(sample(), name) for name in ("chains", "added", "direct", "bursts"))
    assert rendered == printed


def test_report_sections_in_order() -> None:
    text = report.render(sample())
    assert text.startswith(report.TITLE + "\n")
    heads = ["1. Chains", "2. Added latency", "3. The plugin process", "4. Burst", "5. python -X", "6. Targets"]
    assert [text.index(h) for h in heads] == sorted(text.index(h) for h in heads)
    assert "notes" not in text


def test_not_measured_rows_say_why() -> None:
    doc = sample()
    doc["chains"][1]["not_measured"] = "ADD failed: exit 1: boom"
    doc["added"][0]["not_measured"] = "ADD failed: exit 1: boom"
    text = report.render(doc)
    name = "(b) (a) + tuning, 3 sysctls (IFNAME form)"
    assert f"   {name:<58} NOT MEASURED: ADD failed: exit 1: boom\n" in text
    assert f"   {name:<58} n/a\n" in text


def test_other_work_per_section() -> None:
    doc = sample()
    doc["background"] = [
        {"section": "1-2", "wall_s": 30.0, "other_cpu_s": 0.6, "steal_s": 0.0},
        {"section": "4", "wall_s": 10.0, "other_cpu_s": 9.0, "steal_s": 0.25},
    ]
    text = report.render(doc)
    assert "   section 1-2   30.0 s wall    0.60 CPU-s other (  1% of 2 CPUs)   0.00 s stolen\n" in text
    assert "   section 4     10.0 s wall    9.00 CPU-s other ( 45% of 2 CPUs)   0.25 s stolen\n" in text


def test_notes_are_capped() -> None:
    doc = sample()
    doc["notes"] = [f"n{i}" for i in range(25)]
    text = report.render(doc)
    assert "   - n19\n   ... and 5 more\n" in text
    assert "n20" not in text


def test_every_saved_run_renders_to_its_saved_text() -> None:
    """bench/results-DATE.json and .txt, as committed: the text is the JSON's rendering, and the
    targets in the JSON are what its figures decide."""
    saved = sorted(glob.glob(os.path.join(REPO, "bench", "results-*.json")))
    for path in saved:
        doc = results.read(path)
        with open(path[: -len(".json")] + ".txt") as f:
            assert report.render(doc) == f.read(), path
        assert targets.evaluate(doc) == doc["targets"], path
