"""conflist/README.md describes the files beside it as they are: its table names every
.conflist with its network name, interface plugin, address ranges and placeholders, and the
cni-sysctl element it shows is the one each file ends with."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.netlab import REPO

CONFLISTS = REPO / "conflist"
README = (CONFLISTS / "README.md").read_text()


def table() -> dict[str, list[str]]:
    """The README's table: file -> its other cells."""
    rows: dict[str, list[str]] = {}
    for line in README.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and cells[0].endswith(".conflist`"):
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def load(name: str) -> dict[str, Any]:
    doc = json.loads((CONFLISTS / name).read_text())
    assert isinstance(doc, dict)
    return doc


def test_the_table_lists_every_conflist_with_its_name_plugin_and_ranges() -> None:
    rows = table()
    assert sorted(rows) == sorted(p.name for p in CONFLISTS.glob("*.conflist"))
    for name, (network, plugin, addresses, replace) in rows.items():
        doc = load(name)
        assert network == f"`{doc['name']}`", name
        first = doc["plugins"][0]
        assert plugin.startswith(f"`{first['type']}`"), name
        subnets = [r[0]["subnet"] for r in first["ipam"]["ranges"]]
        assert re.findall(r"`([0-9a-f:.]+/\d+)`", addresses) == subnets, name
        # The placeholder to replace is in the file, as the README quotes it.
        for key, value in re.findall(r'`"(\w+)": "([\w-]+)"`', replace):
            assert first[key] == value, name
        assert (replace == "nothing") == (not re.findall(r'`"\w+": ', replace)), name


def test_the_cni_sysctl_element_shown_is_the_one_every_file_ends_with() -> None:
    [block] = re.findall(r"Every file ends with the same `cni-sysctl` element:\n\n```json\n(.*?)\n```", README, re.S)
    element = json.loads(block)
    for path in sorted(CONFLISTS.glob("*.conflist")):
        assert load(path.name)["plugins"][-1] == element, path.name
