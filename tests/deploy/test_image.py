"""The node image and its entrypoint, run as the DaemonSet runs it (tests/deploy/conftest.py):
the pod installs the shim and the ConfigMap's policy on the node, its daemon serves the CNI
calls of the node's runtime (our libcni cnitool, in the node's netns), a policy the check
refuses stops the pod before anything changes, and a surge update replaces the shim and hands
the socket over while calls keep coming, none of them failing."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import REPORT
from tests.deploy.conftest import SHIM, Node, Pod, configmap_policy, configmap_volume, daemonset_container, mebibytes
from tests.e2e.conftest import THREE_KEYS, Env, three_paths

pytestmark = [pytest.mark.e2e, pytest.mark.root]

CONCURRENT = 24  # ADDs at once on one node (a burst of pods scheduled together)


def installed_shim(socket: str) -> bytes:
    """The shim `cni-sysctl install --mode daemon --socket SOCKET` writes: the one build.sh put
    in the image (.build/cni-sysctl-shim), its settings block naming SOCKET."""
    from cni_sysctl.install import patch_shim

    return patch_shim(SHIM.read_bytes(), socket, None)


def test_the_pod_installs_shim_and_policy_and_its_daemon_serves_the_node(
    make_node: Callable[[str | None], Node], make_netns: Callable[[str], str], tmp_path: Path, cnitool: str
) -> None:
    env = Env(make_netns, tmp_path, cnitool, plugin_dir="")
    node = make_node(env.host)  # hostNetwork: the pod shares the node's netns
    env.plugin_dir = str(node.bin_dir)
    pod = node.start()

    # The shim, patched with the host's socket path, is the only file in the host's CNI bin dir
    # (no temporary name left), root's and executable like the other plugins.
    shim = node.bin_dir / "cni-sysctl"
    assert sorted(os.listdir(node.bin_dir)) == ["cni-sysctl"]
    st = shim.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o755)
    assert shim.read_bytes() == installed_shim(node.socket)
    # The ConfigMap's policy, copied (not linked) as the trusted file ADD reads.
    _, text = configmap_policy()
    policy = node.etc_cni / "cni-sysctl.yaml"
    assert sorted(os.listdir(node.etc_cni)) == ["cni-sysctl.yaml"]
    st = policy.lstat()
    assert stat.S_ISREG(st.st_mode)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o644)
    assert policy.read_text() == text
    logs = pod.logs()
    assert "installed the policy /etc/cni-sysctl/policy/cni-sysctl.yaml as /etc/cni/cni-sysctl.yaml" in logs

    # A runtime on the node runs the shipped bridge conflist through libcni; the pod's daemon
    # does the work (its log has the call) and the values are in the container's netns.
    net = env.shipped("sysctl-bridge", sysctl=THREE_KEYS)
    result = env.attach(net)
    for path, value in three_paths().items():
        assert env.sysctl(path) == value, path
    assert env.addresses() == {str(ip["address"]) for ip in result["ips"]}
    assert env.check(net).rc == 0
    assert env.delete(net).rc == 0
    calls = [r for r in pod.records() if r.get("command") in ("ADD", "CHECK", "DEL")]
    assert [(r["command"], r["code"]) for r in calls] == [("ADD", 0), ("CHECK", 0), ("DEL", 0)]
    assert calls[0]["keys"] == ["net.ipv6.conf.eth0.accept_ra", "net.ipv4.conf.eth0.rp_filter",
                                "net.ipv4.tcp_keepalive_time"]  # fmt: skip
    # The netns-wide key stayed in the container: not in the node's netns the daemon runs in.
    assert env.host_sysctl("net/ipv4/tcp_keepalive_time") == "7200"


def test_a_policy_the_check_refuses_stops_the_pod_before_anything_changes(
    make_node: Callable[[str | None], Node],
) -> None:
    node = make_node(None)
    node.set_policy(node.policy_text)  # what the previous pod installed
    policy = node.etc_cni / "cni-sysctl.yaml"
    before = policy.stat()
    key, _ = configmap_policy()
    shutil.rmtree(node.configmap)
    configmap_volume(node.configmap, {key: "allow:\n  - net.ipv4.tcp_keepalive_time\n  - kernel.core_pattern\n"})

    proc = node.run_once()

    assert proc.returncode == 1, proc
    assert "the policy /etc/cni-sysctl/policy/cni-sysctl.yaml is refused" in proc.stderr, proc.stderr
    assert "kernel.core_pattern" in proc.stderr
    assert "/etc/cni/cni-sysctl.yaml left as it is" in proc.stderr
    # Nothing changed on the node: the old policy (same file), no temporary file, no shim, no socket.
    assert policy.stat().st_ino == before.st_ino
    assert policy.read_text() == node.policy_text
    assert sorted(os.listdir(node.etc_cni)) == ["cni-sysctl.yaml"]
    assert os.listdir(node.bin_dir) == []
    assert not os.path.exists(node.socket)

    # A ConfigMap without the key (the volume is optional): the node's policy is left alone.
    shutil.rmtree(node.configmap)
    configmap_volume(node.configmap, {})
    pod = node.start()
    assert policy.stat().st_ino == before.st_ino
    assert "/etc/cni/cni-sysctl.yaml left as it is (present)" in pod.logs()
    assert sorted(os.listdir(node.bin_dir)) == ["cni-sysctl"]


# Runs the installed shim as a runtime would, as fast as it can, until STOP exists: VERSION
# (answered by the shim itself: a half-written or missing file fails it) and STATUS (forwarded:
# a moment without a daemon on the socket fails it). Notes every inode the file had.
CALLER = r"""
import json, os, subprocess, sys
shim, stop, out = sys.argv[1:4]
calls = {
    "VERSION": (b'{"cniVersion":"1.0.0"}',
                b'{"cniVersion":"1.0.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}\n'),
    "STATUS": (b'{"cniVersion":"1.1.0","name":"handover","type":"cni-sysctl"}', b""),
}
counts = dict.fromkeys(calls, 0)
failures, inodes = [], []
while not os.path.exists(stop):
    for command, (data, expected) in calls.items():
        inode = os.stat(shim).st_ino
        if inode not in inodes:
            inodes.append(inode)
        env = {"CNI_COMMAND": command, "CNI_PATH": os.path.dirname(shim)}
        try:
            p = subprocess.run([shim], input=data, env=env, capture_output=True, timeout=30, cwd="/")
            if p.returncode != 0 or p.stdout != expected:
                failures.append(f"{command}: rc {p.returncode}, stdout {p.stdout[:300]!r}, stderr {p.stderr[:300]!r}")
        except OSError as exc:
            failures.append(f"{command}: {exc}")
        counts[command] += 1
with open(out, "w") as f:
    json.dump({"counts": counts, "failed": len(failures), "failures": failures[:10], "inodes": inodes}, f)
"""


def test_a_surge_update_replaces_the_shim_and_hands_the_socket_over_without_a_failed_call(
    make_node: Callable[[str | None], Node], tmp_path: Path
) -> None:
    node = make_node(None)
    old = node.start()
    shim = node.bin_dir / "cni-sysctl"
    first = shim.stat().st_ino
    stop, out = tmp_path / "stop", tmp_path / "calls.json"
    caller = subprocess.Popen([sys.executable, "-c", CALLER, str(shim), str(stop), str(out)])
    try:
        time.sleep(0.5)  # calls are flowing to the old pod's daemon
        new = node.start()  # the surge pod: installs the shim again, takes the socket over
        # The old pod still runs, but the socket is the new daemon's: its probe says so.
        assert old.state() == "running"
        probe = old.probe()
        assert probe.returncode == 1, probe
        assert "served by a daemon outside this container" in probe.stderr
        # Ready, the new pod lets the old one go: SIGTERM, it drains and exits.
        assert old.stop().returncode == 0
        assert old.exit_code() == 0
        time.sleep(0.5)
    finally:
        stop.touch()
        caller.wait(timeout=60)
    calls = json.loads(out.read_text())

    assert calls["failed"] == 0, calls["failures"]
    assert calls["counts"]["VERSION"] >= 100, calls["counts"]
    assert calls["counts"]["STATUS"] >= 100, calls["counts"]
    # The file was replaced while it was being executed, once per pod: the new file is the
    # shim as installed, and no temporary name is left beside it.
    assert calls["inodes"][0] == first
    assert len(calls["inodes"]) == 2, calls["inodes"]
    assert shim.stat().st_ino == calls["inodes"][-1]
    assert shim.read_bytes() == installed_shim(node.socket)
    assert sorted(os.listdir(node.bin_dir)) == ["cni-sysctl"]
    # Both daemons served calls; the old one drained and stopped, the new one serves on.
    old_records, new_records = old.records(), new.records()
    assert any(r.get("command") == "STATUS" for r in old_records)
    assert any(r.get("command") == "STATUS" for r in new_records)
    events = [r.get("event") for r in old_records]
    assert "draining" in events, events
    assert events[-1] == "stopped", events
    assert new.probe().returncode == 0


def memory_cgroup(pod: Pod) -> Path:
    """The pod's memory cgroup (podman's cgroupfs manager; cgroup v1 or v2)."""
    cid = pod.node.store.podman("inspect", "--format", "{{.Id}}", pod.name).stdout.strip()
    for candidate in (
        Path("/sys/fs/cgroup/memory/libpod_parent") / f"libpod-{cid}",
        Path("/sys/fs/cgroup/libpod_parent") / f"libpod-{cid}",
    ):
        if candidate.is_dir():
            return candidate
    raise AssertionError(f"no memory cgroup for container {cid}")


def test_the_memory_limit_holds_under_concurrent_adds(
    make_node: Callable[[str | None], Node], make_netns: Callable[[str], str], tmp_path: Path, cnitool: str
) -> None:
    env = Env(make_netns, tmp_path, cnitool, plugin_dir="")
    node = make_node(env.host)
    env.plugin_dir = str(node.bin_dir)
    pod = node.start()
    cgroup = memory_cgroup(pod)
    limit = mebibytes(daemonset_container()["resources"]["limits"]["memory"]) << 20
    net = env.shipped("sysctl-bridge", sysctl=THREE_KEYS)  # a link bounce each: the costliest ADD
    containers = [env.new_container() for _ in range(CONCURRENT)]

    with ThreadPoolExecutor(CONCURRENT) as pool:
        results = list(pool.map(lambda ns: env.add(net, netns=env.netns_path(ns)), containers))

    assert [r.rc for r in results] == [0] * CONCURRENT, [r.stderr for r in results if r.rc]
    for ns in containers:
        assert env.sysctl("net/ipv6/conf/eth0/accept_ra", ns=ns) == "2"
    v1 = cgroup / "memory.max_usage_in_bytes"
    peak = int((v1 if v1.exists() else cgroup / "memory.peak").read_text())
    assert peak < limit
    REPORT.append(
        f"deploy: {CONCURRENT} concurrent ADDs (bounce) through the pod's daemon: peak memory of the pod "
        f"{peak / 2**20:.0f} MiB (cgroup, page cache included), limit {limit >> 20} MiB"
    )
