"""The transaction holds for every key the kernel accepts, a killed ADD is repaired by the next
call, and no input makes the plugin hang (issue 8, each finding reproduced).

Set-up as in the issue: a container netns with a veth eth0 up, an IPv4 and an IPv6 address,
default routes of both families, prevResult listing them. Every "nothing changed" is a full
dump of the netns (links, addresses, routes of every table, static neighbours, every
/proc/sys/net value) taken by `ip` and `cat`, compared before and after.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cni_sysctl import inflight, params
from cni_sysctl.ports import DEFAULT_DIR, Ports
from tests import netlab
from tests.conftest import REPORT
from tests.netlab import Box, Outcome, call_plugin, cni_env, diff, dump, exec_plugin, plugin_config, read_sysctl

pytestmark = pytest.mark.root


def add(box: Box, keys: list[str], records: Path, container_id: str = "ctr-rel", **extra: object) -> Outcome:
    config = plugin_config("1.0.0", keys, box.prev_result(), **extra)
    return call_plugin(cni_env("ADD", box.path, container_id=container_id), config, Ports(inflight_dir=str(records)))


def check(box: Box, keys: list[str], records: Path, container_id: str = "ctr-rel") -> Outcome:
    config = plugin_config("1.0.0", keys, box.prev_result())
    return call_plugin(cni_env("CHECK", box.path, container_id=container_id), config, Ports(inflight_dir=str(records)))


def unchanged(box: Box, before: dict[str, list[str]]) -> None:
    netlab.settle(box.ns)
    after = dump(box.ns)
    assert after == before, "the netns changed:\n" + diff(before, after)


def carrier_changes(ns: str) -> int:
    return int(netlab.run("cat", "/sys/class/net/eth0/carrier_changes", ns=ns).stdout)


# --- 1, 2, 6: rollback restores what a write changed besides its own value --------------------


@pytest.mark.parametrize(
    ("keys", "bounce"),
    [
        (["net.ipv6.conf.all.disable_ipv6=1", "net.ipv4.tcp_keepalive_time=99999999999"], "auto"),
        (["ipv6.conf.disable_ipv6=1", "net.ipv4.tcp_keepalive_time=99999999999"], "never"),
        (["net.ipv6.conf.default.disable_ipv6=1", "ipv6.conf.mtu=100"], "auto"),
        (["ipv6.conf.addr_gen_mode=1", "ipv6.conf.mtu=100"], "never"),
    ],
    ids=["all.disable_ipv6", "eth0.disable_ipv6", "default.disable_ipv6", "addr_gen_mode-in-place"],
)
def test_rollback_restores_what_a_write_destroyed(box: Box, tmp_path: Path, keys: list[str], bounce: str) -> None:
    """disable_ipv6=1 deletes every IPv6 address and route of the devices it reaches; writing 0
    back brings none of them back. The rollback puts them back too."""
    before = dump(box.ns)
    out = add(box, keys, tmp_path, linkBounce=bounce)
    assert (out.rc, out.code) == (1, 102), out
    unchanged(box, before)
    assert netlab.ping(box.ns, box.gw6)


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_rollback_of_a_propagating_key_restores_what_it_propagated_to(box: Box, tmp_path: Path, family: str) -> None:
    """all.forwarding=1 sets every device's forwarding; its rollback to 0 would clear eth0's,
    which was 1 before the ADD (and for IPv6 drop eth0's subnet-router anycast route)."""
    netlab.write_sysctl(box.ns, f"net/{family}/conf/eth0/forwarding", "1")
    before = dump(box.ns)
    assert any("anycast" in line for line in before["ip -d -6 route"]) or family == "ipv4"
    out = add(box, [f"net.{family}.conf.all.forwarding=1", "ipv6.conf.mtu=100"], tmp_path)
    assert (out.rc, out.code) == (1, 102), out
    assert read_sysctl(box.ns, f"net/{family}/conf/eth0/forwarding") == "1"
    unchanged(box, before)


def test_a_fully_restored_netns_is_not_reported_as_105(box: Box, tmp_path: Path) -> None:
    """disable_ipv6=1 with a bounce: up() cannot put the IPv6 address back (IPv6 is off on
    eth0); once the value is rolled back, the address can be. Report what is true: the ADD
    failed (103), and everything is as it was."""
    before = dump(box.ns)
    out = add(box, ["ipv6.conf.disable_ipv6=1", "ipv6.conf.accept_ra=0"], tmp_path)
    assert (out.rc, out.code) == (1, 103), out
    assert f"cannot restore address {box.addrs[1]}" in out.msg
    unchanged(box, before)


# --- 3: values the kernel resets when the link becomes ready ------------------------------------


@pytest.mark.parametrize("arrives", ["up", "down"])
def test_ipv6_mtu_survives_the_bounce_and_a_link_that_arrives_down(
    make_netns: Callable[[str], str], tmp_path: Path, arrives: str
) -> None:
    box = Box(make_netns, up=arrives == "up")
    keys = ["ipv6.conf.mtu=1400", "ipv6.conf.accept_ra=0"]
    out = add(box, keys, tmp_path)
    assert out.rc == 0, out
    time.sleep(1.2)  # past any later linkwatch event of the link
    assert read_sysctl(box.ns, "net/ipv6/conf/eth0/mtu") == "1400"
    assert read_sysctl(box.ns, "net/ipv6/conf/eth0/accept_ra") == "0"
    assert check(box, keys, tmp_path).rc == 0
    assert netlab.is_up(box.ns)


# --- 4: values the kernel rounds: ADD and CHECK agree ----------------------------------------


ROUNDED = sorted(params.ROUNDED_PER_DEVICE)


@pytest.mark.parametrize("entry", ROUNDED, ids=[".".join(e) for e in ROUNDED])
def test_rounded_values_pass_check(box: Box, tmp_path: Path, entry: tuple[str, str, str]) -> None:
    family, table, param = entry
    value = "30001" if param != "locktime" else "1001"
    keys = [f"{family}.{table}.{param}={value}"]
    out = add(box, keys, tmp_path, linkBounce="never")
    assert out.rc == 0, out
    stored = read_sysctl(box.ns, f"net/{family}/{table}/eth0/{param}")
    assert stored != value, "the kernel rounds this value (else the entry is wrong)"
    assert "rounded to its clock tick" in out.stderr
    assert check(box, keys, tmp_path).rc == 0
    keys = [f"{family}.{table}.{param}={int(value) + 5000}"]
    assert check(box, keys, tmp_path).code == 104, "a value that differs by more than a tick still differs"


# --- 5: a killed ADD is repaired by the next ADD or DEL; CHECK reports it -------------------

KILL_KEYS = ["ipv4.conf.rp_filter=1", "ipv6.conf.accept_ra=0", "net.core.somaxconn=512"]
KILL_PATHS = ["net/ipv4/conf/eth0/rp_filter", "net/ipv6/conf/eth0/accept_ra", "net/core/somaxconn"]

# A plugin process that SIGKILLs itself at a chosen step of its ADD (argv: step, k, records).
KILLED_AT = r"""
import os, signal, sys
from cni_sysctl import cli
from cni_sysctl.ports import Ports
step, k, records = sys.argv[1], int(sys.argv[2]), sys.argv[3]
seen = {}
def hook(name, detail):
    seen[name] = seen.get(name, 0) + 1
    if name == step and seen[name] == k + 1:
        os.kill(os.getpid(), signal.SIGKILL)
raise SystemExit(cli.main(ports=Ports(hook=hook, inflight_dir=records)))
"""


def after_add(before: dict[str, list[str]], values: dict[str, str]) -> dict[str, list[str]]:
    """`before` with the values an ADD wrote."""
    out = dict(before)
    out["sysctls"] = [
        f"{line.partition('=')[0]}={values[line.partition('=')[0]]}" if line.partition("=")[0] in values else line
        for line in before["sysctls"]
    ]
    return out


def killed_add(box: Box, step: str, k: int, records: Path, container_id: str) -> int:
    env = {**cni_env("ADD", box.path, container_id=container_id), "PATH": os.environ["PATH"]}
    config = json.dumps(plugin_config("1.0.0", KILL_KEYS, box.prev_result()))
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_AT, step, str(k), str(records)],
        input=config, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return proc.returncode


@pytest.mark.parametrize(("step", "k"), [("down", 0), ("write", 0), ("write", 2), ("up", 0), ("verify", 0)])
def test_a_killed_add_is_repaired_by_the_retry(box: Box, tmp_path: Path, step: str, k: int) -> None:
    before = dump(box.ns)
    assert killed_add(box, step, k, tmp_path, "ctr-kill") == -signal.SIGKILL
    record = inflight.path_for(str(tmp_path), "ctr-kill", "eth0")
    assert os.path.exists(record), "the record was written before the first change"
    if step in ("write", "up"):
        assert not netlab.is_up(box.ns) or step == "up", "killed while eth0 was down"
    # CHECK does not pretend all is well
    out = check(box, KILL_KEYS, tmp_path, "ctr-kill")
    assert out.code == 104, out
    assert "interrupted" in out.msg
    # the runtime retries the ADD: it repairs, then applies
    out = add(box, KILL_KEYS, tmp_path, "ctr-kill")
    assert out.rc == 0, out
    assert not os.path.exists(record)
    assert "was interrupted: restoring the netns" in out.stderr
    netlab.settle(box.ns)
    expected = after_add(before, dict(zip(KILL_PATHS, ("1", "0", "512"), strict=True)))
    after = dump(box.ns)
    assert after == expected, diff(expected, after)
    assert check(box, KILL_KEYS, tmp_path, "ctr-kill").rc == 0
    assert netlab.ping(box.ns, box.gw6)


def test_a_del_after_a_killed_add_puts_the_netns_back(box: Box, tmp_path: Path) -> None:
    before = dump(box.ns)
    assert killed_add(box, "write", 1, tmp_path, "ctr-del") == -signal.SIGKILL
    config = plugin_config("1.0.0", KILL_KEYS, box.prev_result())
    out = call_plugin(cni_env("DEL", box.path, container_id="ctr-del"), config, Ports(inflight_dir=str(tmp_path)))
    assert (out.rc, out.stdout) == (0, ""), out
    assert not list(tmp_path.iterdir()), "record and lock file removed"
    unchanged(box, before)


def test_gc_removes_records_of_attachments_that_are_gone(box: Box, tmp_path: Path) -> None:
    for cid in ("ctr-gone", "ctr-kept"):
        assert killed_add(box, "write", 0, tmp_path, cid) == -signal.SIGKILL
    valid = [{"containerID": "ctr-kept", "ifname": "eth0"}]
    config = plugin_config("1.1.0", [])
    config["cni.dev/valid-attachments"] = valid
    out = call_plugin({"CNI_COMMAND": "GC", "CNI_PATH": "/x"}, config, Ports(inflight_dir=str(tmp_path)))
    assert (out.rc, out.stdout) == (0, ""), out
    assert [p.name for p in tmp_path.glob("*.json")] == ["ctr-kept:eth0.json"]
    assert not (tmp_path / "ctr-gone:eth0.lock").exists(), "its lock file goes too"
    other_network = {**config, "name": "othernet", "cni.dev/valid-attachments": []}
    call_plugin({"CNI_COMMAND": "GC", "CNI_PATH": "/x"}, other_network, Ports(inflight_dir=str(tmp_path)))
    assert [p.name for p in tmp_path.glob("*.json")] == ["ctr-kept:eth0.json"], "another network's GC leaves it"


def test_kill_at_a_random_point_then_one_retry(plugin: str, box: Box) -> None:
    """The installed launcher, SIGKILLed at a random moment of a bouncing ADD, as a runtime's
    timeout would; one retried ADD must leave the netns exactly as a clean ADD does, every time.

    The moment is drawn uniformly over the transaction: from the appearance of its in-flight
    record (written just before the first change) to the end of a clean run's transaction."""
    config = plugin_config("1.0.0", KILL_KEYS, box.prev_result())
    run = netlab.unique("ctr-rnd")  # records of an earlier run never meet this one's
    first = exec_plugin(plugin, cni_env("ADD", box.path, container_id=f"{run}-0"), config)
    assert first.rc == 0, first
    netlab.settle(box.ns)
    reference = dump(box.ns)
    rng = random.Random(os.urandom(8))
    runs, mid_bounce, damaged, repaired, window = 70, 0, 0, 0, 0.0
    for i in range(runs):
        cid = f"{run}-{i + 1}"
        record = inflight.path_for(DEFAULT_DIR, cid, "eth0")
        env = cni_env("ADD", box.path, container_id=cid)
        proc = subprocess.Popen([plugin], env=env, cwd="/", stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(config).encode())
        proc.stdin.close()
        while not os.path.exists(record) and proc.poll() is None:
            time.sleep(0.0002)
        seen = time.monotonic()
        if i < 5:  # the first runs measure the window: record written -> process gone
            proc.wait()
            window = max(window, time.monotonic() - seen)
        else:
            time.sleep(rng.uniform(0.0, window * 0.6))  # the transaction is the first part of it
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        left_record = os.path.exists(record)
        mid_bounce += not netlab.is_up(box.ns)
        damaged += netlab.default_gateways(box.ns) != {box.gw4, box.gw6}
        out = exec_plugin(plugin, cni_env("ADD", box.path, container_id=cid), config)
        assert out.rc == 0, f"run {i}: {out}"
        repaired += left_record
        assert not os.path.exists(record)
        netlab.settle(box.ns)
        after = dump(box.ns)
        assert after == reference, f"run {i}:\n" + diff(reference, after)
    REPORT.append(
        f"kill at a random point: {runs - 5} kills, {repaired} inside the transaction (an in-flight record "
        f"left), {damaged} left eth0 without its default routes, {mid_bounce} left it down; every retry "
        "gave the netns of a clean ADD"
    )
    assert repaired >= 15, "too few kills landed inside the transaction to show anything"


# --- 7, 10: checked before anything changes; nothing hangs ------------------------------------


def test_invalid_prev_result_is_refused_before_the_link_is_touched(box: Box, tmp_path: Path) -> None:
    carrier = carrier_changes(box.ns)
    before = dump(box.ns)
    for bad in ({"address": "garbage/xx"}, {"address": box.addrs[0], "gateway": "nope"}):
        prev = box.prev_result()
        prev["ips"].append({"interface": 0, **bad})
        config = plugin_config("1.0.0", ["ipv6.conf.accept_ra=0"], prev)
        out = call_plugin(cni_env("ADD", box.path), config, Ports(inflight_dir=str(tmp_path)))
        assert (out.rc, out.code) == (1, 7), out
        prev = box.prev_result()
        prev["routes"].append({"dst": "10.9.0.0/16", "gw": "nope"})
        out = call_plugin(cni_env("ADD", box.path), plugin_config("1.0.0", ["ipv6.conf.accept_ra=0"], prev))
        assert (out.rc, out.code) == (1, 7), out
    assert carrier_changes(box.ns) == carrier, "the link never went down"
    assert dump(box.ns) == before


@pytest.mark.parametrize("command", ["ADD", "CHECK"])
@pytest.mark.parametrize("kind", ["fifo", "directory", "chardev", "regular"])
def test_a_netns_path_that_is_not_a_netns_never_hangs(
    plugin: str, box: Box, tmp_path: Path, command: str, kind: str
) -> None:
    path = {"fifo": str(tmp_path / "fifo"), "directory": str(tmp_path), "chardev": "/dev/null",
            "regular": str(tmp_path / "file")}[kind]  # fmt: skip
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "regular":
        Path(path).write_text("")
    config = plugin_config("1.0.0", ["ipv4.conf.rp_filter=1"], box.prev_result())
    start = time.monotonic()
    out = exec_plugin(plugin, cni_env(command, path), config, timeout=10)
    assert time.monotonic() - start < 5
    assert (out.rc, out.code) == (1, 4), out
    assert "not a network namespace file" in out.msg


# --- the property: any ADD the kernel refuses leaves the netns byte-identical ----------------

VALID = [
    "net.ipv4.tcp_keepalive_time=600",
    "net.core.somaxconn=512",
    "ipv4.conf.rp_filter=2",
    "ipv4.conf.arp_ignore=1",
    "ipv6.conf.accept_ra=0",
    "ipv6.conf.addr_gen_mode=1",
    "ipv6.conf.mtu=1400",
    "ipv6.conf.forwarding=1",
    "ipv4.neigh.base_reachable_time_ms=30001",
    "ipv4.neigh.retrans_time=101",
    "ipv6.neigh.unres_qlen=90",
    "net.ipv4.conf.all.forwarding=1",
    "net.ipv4.ip_forward=1",
    "net.ipv4.conf.default.rp_filter=1",
    "net.ipv6.conf.all.forwarding=1",
    "net.ipv6.conf.all.disable_ipv6=1",
    "ipv6.conf.disable_ipv6=1",
    "net.ipv6.route.gc_min_interval=1",
    "net.ipv4.ip_local_port_range=20000 30000",
]
REFUSED = ["ipv6.conf.mtu=100", "net.ipv4.tcp_keepalive_time=99999999999", "net.core.somaxconn=-1"]
PROPERTY_RUNS: list[int] = []


@pytest.fixture(scope="module")
def steady_box(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One box for every example: each must leave it as it was, so it can serve the next."""
    from tests.conftest import require_root

    require_root()
    made: list[str] = []

    def make(prefix: str) -> str:
        name = netlab.unique(prefix)
        subprocess.run(["ip", "netns", "add", name], check=True)
        made.append(name)
        netlab.run("ip", "link", "set", "lo", "up", ns=name)
        return name

    try:
        box = Box(make, rich=True)
        yield box, dump(box.ns), tmp_path_factory.mktemp("records")
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], check=False)
        if PROPERTY_RUNS:
            REPORT.append(f"refused ADDs leave the netns byte-identical: {len(PROPERTY_RUNS)} examples")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    prefix=st.lists(st.sampled_from(VALID), min_size=0, max_size=6, unique=True),
    refused=st.sampled_from(REFUSED),
    bounce=st.sampled_from(["auto", "always", "never"]),
)
def test_any_refused_add_leaves_the_netns_byte_identical(
    steady_box: Any, prefix: list[str], refused: str, bounce: str
) -> None:
    box, before, records = steady_box
    # one source may not give a key twice (7): the refused value is for a key the prefix lacks
    assume(refused.partition("=")[0] not in {k.partition("=")[0] for k in prefix})
    out = add(box, [*prefix, refused], records, container_id="ctr-prop", linkBounce=bounce)
    assert out.rc == 1, out
    assert out.code in (102, 103), out
    PROPERTY_RUNS.append(1)
    unchanged(box, before)
    assert not list(records.glob("*.json")), "the in-flight record is removed"
