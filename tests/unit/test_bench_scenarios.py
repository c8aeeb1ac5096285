"""bench.scenarios and bench.modes: the tables are consistent and build what libcni would get."""

from __future__ import annotations

import json

from bench import modes, scenarios


def test_ids_are_unique() -> None:
    ids = [c.id for c in scenarios.CHAINS] + [s.id for s in scenarios.SPAWNS]
    assert len(ids) == len(set(ids))
    names = [d.name for d in scenarios.DIRECT]
    assert len(names) == len(set(names))


def test_every_cni_sysctl_row_names_a_known_install_mode() -> None:
    for chain in scenarios.CHAINS:
        runs_it = chain.plugin is not None and chain.plugin["type"] == "cni-sysctl"
        assert (chain.install is not None) == runs_it, chain.id
        assert chain.install is None or chain.install in modes.INSTALLS
    for row in scenarios.DIRECT:
        assert (row.install is not None) == (row.plugin == "cni-sysctl"), row.name
        assert row.install is None or row.install in modes.INSTALLS


def test_the_other_tables_name_existing_rows() -> None:
    chains = {c.id for c in scenarios.CHAINS}
    names = {d.name for d in scenarios.DIRECT}
    assert scenarios.BASELINE in chains
    assert {n for n, _, _ in scenarios.CHAIN_RATIOS} | {d for _, d, _ in scenarios.CHAIN_RATIOS} <= chains
    assert {n for pair in scenarios.DIRECT_RATIOS for n in pair} <= names
    assert set(scenarios.PER_KEY) <= names
    assert set(scenarios.IMPORTTIME) <= names


def test_conflist_chains_the_plugin_after_the_bridge() -> None:
    chain = next(c for c in scenarios.CHAINS if c.id == "c")
    conflist = scenarios.conflist(chain, 3, "/tmp/ipam")
    assert conflist["name"] == "bench-c"
    assert conflist["cniVersion"] == scenarios.CNI_VERSION
    plugins = conflist["plugins"]
    assert isinstance(plugins, list)
    bridge, plugin = plugins
    assert bridge["bridge"] == "bench-c"
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.209.3.0/24"}], [{"subnet": "fd00:209:3::/64"}]]
    assert bridge["ipam"]["dataDir"] == "/tmp/ipam"
    assert plugin == {"type": "cni-sysctl", "sysctl": list(scenarios.SHORT_SYSCTLS), "linkBounce": "never"}
    json.dumps(conflist)  # serialisable as is


def test_baseline_conflist_is_the_bridge_alone() -> None:
    conflist = scenarios.conflist(scenarios.CHAINS[0], 1, "/x")
    plugins = conflist["plugins"]
    assert isinstance(plugins, list)
    assert len(plugins) == 1


def test_stdin_conf_is_what_libcni_gives_a_chained_plugin() -> None:
    prev = {"cniVersion": "1.0.0", "interfaces": []}
    rows = {d.name: d for d in scenarios.DIRECT}
    conf = scenarios.stdin_conf(rows["sysctl ADD, 3 keys, no bounce"], prev, [])
    assert list(conf) == ["cniVersion", "name", "type", "sysctl", "linkBounce", "prevResult"]
    assert conf["prevResult"] is prev
    assert scenarios.stdin_conf(rows["sysctl VERSION"], prev, []) == {"cniVersion": scenarios.CNI_VERSION}
    keys = [f"ipv4.conf.k{i}=0" for i in range(100)]
    one = scenarios.stdin_conf(rows["sysctl ADD, 1 key, never"], prev, keys)
    assert one["sysctl"] == ["ipv4.conf.k0=0"]
    assert one["linkBounce"] == "never"
    assert scenarios.stdin_conf(rows["sysctl ADD, 100 keys, never"], prev, keys)["sysctl"] == keys
    assert scenarios.stdin_conf(rows["no-op ADD"], prev, keys)["type"] == scenarios.NOOP


def test_cycle_order_rotates_the_start() -> None:
    items = ["a", "b", "c"]
    assert [scenarios.cycle_order(items, n) for n in range(4)] == [
        ["a", "b", "c"],
        ["b", "c", "a"],
        ["c", "a", "b"],
        ["a", "b", "c"],
    ]
    assert scenarios.cycle_order([], 3) == []


def test_noop_plugin_text_formats() -> None:
    text = scenarios.NOOP_PLUGIN.format(interpreter="/usr/bin/python3 -IS")
    assert text.startswith("#!/usr/bin/python3 -IS\n")
    compile(text, "noop", "exec")
