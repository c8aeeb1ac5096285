"""The benchmark's smoke run, as CI runs it: `python -m bench --quick` works end to end.

Targets are never timed assertions: exit 0 (every target met) and 3 (some missed) both pass; exit
1 (could not run) fails. What is asserted is that the run works: every chain and invocation was
measured (each chain passed its warm-up check: values read back, the bounce kept the addresses),
the JSON is complete and renders to exactly what was printed, and nothing is left behind.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import report, results
from tests.conftest import require_root

REPO = Path(__file__).resolve().parents[2]


def netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def test_quick_run(tmp_path: Path) -> None:
    require_root()
    before_netns = netns_names()
    leftovers = os.path.join(tempfile.gettempdir(), "cni-sysctl-bench.*")
    before_tmp = set(glob.glob(leftovers))
    json_path = tmp_path / "quick.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json", str(json_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode in (0, 3), f"exit {proc.returncode}\n{proc.stderr}"
    doc = results.read(str(json_path))
    assert report.render(doc) == proc.stdout
    unmeasured = [
        *(f"({row['id']}) {row['not_measured']}" for row in doc["chains"] if row["not_measured"]),
        *(f"{row['name']}: {row['not_measured']}" for row in doc["direct"] if row["not_measured"]),
    ]
    assert not unmeasured, "\n".join(unmeasured + doc["notes"])
    assert all(row["verdict"] in ("met", "MISSED") for row in doc["targets"]), doc["targets"]
    assert (proc.returncode == 0) == all(row["met"] for row in doc["targets"])
    assert doc["header"]["method"]["quick"] is True
    left = {n for n in netns_names() - before_netns if n.startswith("csb")}
    assert not left, f"namespaces left behind: {left}"
    assert set(glob.glob(leftovers)) <= before_tmp
    assert os.listdir(tmp_path) == ["quick.json"]
