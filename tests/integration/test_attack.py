"""Attacks on the plugin and the daemon, as a hostile conflist author, a runtime that kills,
retries and races its calls, and odd file descriptors on stdin: each finding of the adversarial
pass kept as the test that showed it (all fixed), and the attacks the product withstands that
no other suite covers.

Everything is observed in the kernel (a netns that must die, a lock that must hold) or on
stdout (one CNI document, the same in both modes), in throwaway namespaces and directories.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cni_sysctl import inflight
from cni_sysctl.ports import DEFAULT_DIR, Ports
from cni_sysctl.wire import parse_reply, request_frame
from tests import netlab
from tests.netlab import Box, Daemon, call_plugin, cni_env, exec_plugin, install_plugin, plugin_config, unique

pytestmark = pytest.mark.root

KEYS = ["ipv4.conf.rp_filter=2", "net.core.somaxconn=512"]


@pytest.fixture
def direct(tmp_path: Path) -> str:
    return install_plugin(tmp_path / "direct")


@pytest.fixture
def cid() -> Iterator[str]:
    """A container id for ADDs into the default record directory; whatever an ADD left there
    is removed at the end, as the runtime's DEL would."""
    container_id = unique("ctr-atk")
    try:
        yield container_id
    finally:
        inflight.Lock(inflight.path_for(DEFAULT_DIR, container_id, "eth0")).discard()


def _link_exists(ns: str, ifname: str) -> bool:
    return netlab.run("ip", "link", "show", "dev", ifname, ns=ns, check=False).returncode == 0


# --- the daemon keeps container netns alive ------------------------------------------------------


@pytest.mark.parametrize("mode", ["direct", "daemon"])
def test_a_deleted_netns_dies_after_an_add(
    mode: str, tmp_path: Path, own_daemon: Daemon, make_netns: Callable[[str], str], cid: str
) -> None:
    """After an ADD, deleting the container netns (as a runtime does after DEL) must destroy it:
    the veth inside goes, and with it its peer in the host netns. A process that still holds a
    descriptor of the netns keeps all of it alive (finding 1: daemon workers kept the two
    descriptors the shim passes)."""
    if mode == "daemon":
        own_daemon.start()
        plugin = install_plugin(tmp_path / "bin", "daemon", own_daemon.socket)
    else:
        plugin = install_plugin(tmp_path / "bin")
    box = Box(make_netns)
    out = exec_plugin(
        plugin, cni_env("ADD", box.path, container_id=cid), plugin_config("1.0.0", KEYS, box.prev_result())
    )
    assert out.rc == 0, out
    assert _link_exists(box.host, box.peer)
    netlab.run("ip", "netns", "del", box.ns)
    netlab.wait_until(
        "the deleted container netns is destroyed (its veth peer in the host netns gone)",
        lambda: not _link_exists(box.host, box.peer),
        timeout=5,
    )


# --- a worker replaced after 500 calls ----------------------------------------------------------


def test_no_call_is_lost_when_a_worker_is_replaced(own_daemon: Daemon) -> None:
    """Finding 2: after a worker's 500th call the parent handed the next waiting connection to
    that worker (the last idle one) before it saw it leave; the connection was closed
    unanswered. A worker now says its last call is its last."""
    own_daemon.start("--workers", "1")
    frame = request_frame(
        {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": unique("ctr-rep"), "CNI_IFNAME": "eth0", "CNI_PATH": "/x"},
        b'{"cniVersion":"1.0.0","name":"n"}',
    )
    lost: list[str] = []
    lock = threading.Lock()

    def caller() -> None:
        for _ in range(300):
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(30)
                    sock.connect(own_daemon.socket)
                    sock.sendall(frame)
                    data = b""
                    while chunk := sock.recv(65536):
                        data += chunk
                reply = parse_reply(data)
                if reply is None or reply[0] != 0:
                    with lock:
                        lost.append(repr(data[:200]))
            except OSError as exc:
                with lock:
                    lost.append(repr(exc))

    threads = [threading.Thread(target=caller) for _ in range(16)]  # 4800 calls: 9 replacements
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not lost, f"{len(lost)} of 4800 calls got no reply: {lost[:3]}"


# --- the attachment's lock ----------------------------------------------------------------------

# A plugin process that stops itself (SIGSTOP) at a chosen step of its ADD, holding what it
# holds then, like a daemon worker still running after its shim was killed (argv: step, records).
PAUSED_AT = r"""
import os, signal, sys
from cni_sysctl import cli
from cni_sysctl.ports import Ports
step, records = sys.argv[1], sys.argv[2]
def hook(name, detail):
    if name == step:
        os.kill(os.getpid(), signal.SIGSTOP)
raise SystemExit(cli.main(ports=Ports(hook=hook, inflight_dir=records)))
"""
PLAIN = "import sys\nfrom cni_sysctl import cli\nfrom cni_sysctl.ports import Ports\n" \
        "raise SystemExit(cli.main(ports=Ports(inflight_dir=sys.argv[1])))\n"  # fmt: skip


def _adding(box: Box, cid: str, keys: list[str], argv: list[str], ifname: str = "eth0") -> subprocess.Popen[str]:
    env = {**cni_env("ADD", box.path, ifname=ifname, container_id=cid), "PATH": os.environ["PATH"]}
    proc = subprocess.Popen([sys.executable, "-c", *argv], env=env, cwd=netlab.REPO, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(plugin_config("1.0.0", keys, box.prev_result())))
    proc.stdin.close()
    proc.stdin = None
    return proc


def _stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


def test_a_del_does_not_break_the_lock_of_an_add_in_flight(box: Box, tmp_path: Path) -> None:
    """Finding 4: DEL of an attachment without a record unlinked its lock file without taking
    the lock, so an ADD still holding it and the runtime's retried ADD ran at once, each locking
    a different file. Only a holder removes a lock file now, and a waiter checks that the path
    still names the file it locked."""
    cid = unique("ctr-lock")
    first = _adding(box, cid, ["net.core.somaxconn=600"], [PAUSED_AT, "resolve", str(tmp_path)])
    second: subprocess.Popen[str] | None = None
    try:
        netlab.wait_until("the first ADD holds the lock, before its record", lambda: _stopped(first.pid), 15)
        assert not os.path.exists(inflight.path_for(str(tmp_path), cid, "eth0"))
        # the runtime gave up on the first ADD: it cleans up with DEL, then retries the ADD
        out = call_plugin(cni_env("DEL", box.path, container_id=cid), plugin_config("1.0.0", []),
                          Ports(inflight_dir=str(tmp_path)))  # fmt: skip
        assert (out.rc, out.stdout) == (0, ""), out
        second = _adding(box, cid, ["net.core.somaxconn=700"], [PLAIN, str(tmp_path)])
        with contextlib.suppress(subprocess.TimeoutExpired):
            second.wait(3)
        assert second.poll() is None, (
            "the retried ADD ran to its end while the first ADD of the attachment still held the lock"
        )
    finally:
        os.kill(first.pid, signal.SIGCONT)
        first.communicate(timeout=30)
        if second is not None:
            second.communicate(timeout=60)


def test_no_lock_file_outlives_its_call_and_gc_removes_one_left_by_a_kill(box: Box, tmp_path: Path) -> None:
    """Finding 3: the lock file of every committed ADD stayed for ever when DEL never came (GC
    only removed lock files beside a record). Now a call removes its lock file when it ends
    without a record; one killed before its record leaves a lock file, which GC removes once
    the runtime no longer knows the attachment, and never while a call holds it."""
    cid = unique("ctr-gcl")
    config = plugin_config("1.1.0", ["net.core.somaxconn=600"], box.prev_result("1.1.0"))
    out = call_plugin(cni_env("ADD", box.path, container_id=cid), config, Ports(inflight_dir=str(tmp_path)))
    assert out.rc == 0, out
    assert not list(tmp_path.iterdir()), "a committed ADD leaves nothing"
    killed = _adding(box, cid, ["net.core.somaxconn=601"], [PAUSED_AT, "resolve", str(tmp_path)])
    try:
        netlab.wait_until("the ADD holds the lock, before its record", lambda: _stopped(killed.pid), 15)
        gc = plugin_config("1.1.0", [])
        gc["cni.dev/valid-attachments"] = []  # the runtime no longer knows the attachment
        out = call_plugin({"CNI_COMMAND": "GC", "CNI_PATH": "/x"}, gc, Ports(inflight_dir=str(tmp_path)))
        assert (out.rc, out.stdout) == (0, ""), out
        names = sorted(p.name for p in tmp_path.iterdir())
        assert f"{cid}:eth0.lock" in names, "GC never removes a lock a call holds"
    finally:
        killed.kill()
        killed.communicate(timeout=30)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == 2, left
    assert left[0] == f"{cid}:eth0.lock", "what the kill left: the attachment's lock"
    assert left[1].startswith("netns-"), "and the lock of its netns"
    gc["cni.dev/valid-attachments"] = [{"containerID": cid, "ifname": "eth0"}]
    out = call_plugin({"CNI_COMMAND": "GC", "CNI_PATH": "/x"}, gc, Ports(inflight_dir=str(tmp_path)))
    assert (out.rc, out.stdout) == (0, ""), out
    left = [p.name for p in tmp_path.iterdir()]
    assert left == [f"{cid}:eth0.lock"], f"a valid attachment's lock stays, a netns lock held by none goes: {left}"
    gc["cni.dev/valid-attachments"] = []
    out = call_plugin({"CNI_COMMAND": "GC", "CNI_PATH": "/x"}, gc, Ports(inflight_dir=str(tmp_path)))
    assert (out.rc, out.stdout) == (0, ""), out
    assert not list(tmp_path.iterdir()), "GC leaves no state of a gone attachment behind"


# --- odd stdin: both modes, one error object ------------------------------------------------------


def _run_with_stdin(plugin: str, env: dict[str, str], setup: str) -> tuple[int, str]:
    """Run `plugin` with fd 0 arranged by a shell redirection (`setup`)."""
    proc = subprocess.run(["/bin/sh", "-c", f'{setup} exec "$0"', plugin], env=env, cwd="/",
                          capture_output=True, timeout=30, check=False)  # fmt: skip
    return proc.returncode, proc.stdout.decode(errors="replace")


def test_a_directory_on_stdin_fails_the_call_in_both_modes(
    shim: str, direct: str, own_daemon: Daemon, box: Box
) -> None:
    """Finding 7, the part that stays: with a directory on fd 0 the Python interpreter stops
    before any of the plugin's code runs ("<stdin> is a directory, cannot continue"), so the
    direct launcher prints no error object; the shim answers 5. Either way the runtime sees a
    failed call and nothing is written (README, "Reliability")."""
    own_daemon.start()
    env = cni_env("ADD", box.path)
    before = netlab.read_sysctl(box.ns, "net/core/somaxconn")
    rc, out = _run_with_stdin(shim, env, "exec 0</;")
    assert rc == 1
    assert json.loads(out)["code"] == 5, out
    proc = subprocess.run(["/bin/sh", "-c", 'exec 0</; exec "$0"', direct], env=env, cwd="/",
                          capture_output=True, timeout=30, check=False)  # fmt: skip
    assert proc.returncode != 0
    assert proc.stdout == b""
    assert b"is a directory" in proc.stderr
    assert netlab.read_sysctl(box.ns, "net/core/somaxconn") == before


@pytest.mark.parametrize(
    ("kind", "setup"),
    [
        ("dev-null", "exec 0</dev/null;"),
        ("closed", "exec 0<&-;"),  # finding 7: the direct launcher printed a traceback
        ("write-only", "exec 0>/dev/null;"),
        ("endless", "exec 0</dev/zero;"),
    ],
)
def test_odd_stdin_gets_the_same_error_object_in_both_modes(
    kind: str, setup: str, shim: str, direct: str, own_daemon: Daemon, box: Box
) -> None:
    """Descriptors a runtime could leave on fd 0: one error object, byte for byte the same in
    both modes, within 10 s (an endless stdin is cut at 4 MiB)."""
    own_daemon.start()
    env = cni_env("ADD", box.path)
    start = time.monotonic()
    by_shim = _run_with_stdin(shim, env, setup)
    by_direct = _run_with_stdin(direct, env, setup)
    assert time.monotonic() - start < 20
    assert by_shim[0] == 1
    assert len(by_shim[1].splitlines()) == 1, by_shim
    assert json.loads(by_shim[1])["code"] in (5, 6), by_shim
    assert by_direct == by_shim


def test_a_slow_stdin_is_served_in_daemon_mode_as_in_direct_mode(
    shim: str, own_daemon: Daemon, box: Box, cid: str
) -> None:
    """Finding 5: the shim connected before it read stdin, so a stdin that took over the
    daemon's 10 s read timeout was a 'malformed request' (error 6) in daemon mode, where the
    direct plugin waits for it. The shim now reads stdin first, holding no worker meanwhile."""
    own_daemon.start()
    config = json.dumps(plugin_config("1.0.0", KEYS, box.prev_result())).encode()
    proc = subprocess.Popen([shim], env=cni_env("ADD", box.path, container_id=cid), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    time.sleep(11)
    out, err = proc.communicate(config, timeout=30)
    assert proc.returncode == 0, (out, err)
    assert json.loads(out)["cniVersion"] == "1.0.0"
    assert netlab.read_sysctl(box.ns, "net/core/somaxconn") == "512"


# --- logFile under `conflist: checked` -------------------------------------------------------------


@pytest.fixture
def foreign_log() -> Iterator[Path]:
    """A binary file of another program under /var/log, as /var/log/wtmp or a journal file."""
    directory = Path("/var/log") / unique("cni-sysctl-attack-")
    directory.mkdir(mode=0o755)
    path = directory / "wtmp"
    path.write_bytes(bytes(range(256)) * 4)
    os.chmod(path, 0o664)
    try:
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_an_untrusted_conflist_cannot_append_to_a_file_of_another_program(
    box: Box, tmp_path: Path, foreign_log: Path
) -> None:
    """Finding 6: a conflist could point logFile at any existing regular file under /var/log
    (wtmp, btmp, journal files, other services' logs) and the plugin, as root, appended to it,
    also under `conflist: checked`. logFile must now be under /var/log/cni-sysctl/."""
    os.chmod(tmp_path, 0o755)
    policy = tmp_path / "policy" / "node.yaml"
    policy.parent.mkdir(mode=0o755)
    policy.write_text("conflist: checked\nallow: [net.core.somaxconn]\n")
    os.chmod(policy, 0o644)
    before = foreign_log.read_bytes()
    config = plugin_config("1.0.0", ["net.core.somaxconn=600"], box.prev_result(),
                           policy=str(policy), logFile=str(foreign_log))  # fmt: skip
    out = call_plugin(cni_env("ADD", box.path), config, Ports(inflight_dir=str(tmp_path / "records")))
    assert foreign_log.read_bytes() == before, f"appended to {foreign_log} (ADD: rc {out.rc})"
    assert (out.rc, out.code) == (1, 7), out
    assert "logFile" in out.msg


# --- frames with descriptors the daemon did not ask for -------------------------------------------


def _send_with_fds(path: str, frame: bytes, fds: list[int]) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(20)
        sock.connect(path)
        sock.sendmsg([frame[:1]], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))])
        sock.sendall(frame[1:])
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


@pytest.mark.parametrize(("flags", "count"), [(0, 1), (1, 2), (3, 3), (3, 8)],
                         ids=["fd-not-announced", "one-too-many", "three", "eight"])  # fmt: skip
def test_frames_with_unannounced_descriptors_are_refused(own_daemon: Daemon, box: Box, flags: int, count: int) -> None:
    """A peer that passes more descriptors than its flags announce (the container netns among
    them) gets error 6, and nothing is written in any netns."""
    own_daemon.start()
    stdin = json.dumps(plugin_config("1.0.0", ["net.core.somaxconn=777"], box.prev_result())).encode()
    frame = request_frame(cni_env("ADD", box.path), stdin, flags)
    host = os.open("/proc/self/ns/net", os.O_RDONLY)
    container = os.open(box.path, os.O_RDONLY)
    host_before = Path("/proc/sys/net/core/somaxconn").read_text()
    try:
        data = _send_with_fds(own_daemon.socket, frame, ([host, container] * 4)[:count])
    finally:
        os.close(host)
        os.close(container)
    reply = parse_reply(data)
    assert reply is not None, data
    assert reply[0] == 1
    assert json.loads(reply[1])["code"] == 6
    assert netlab.read_sysctl(box.ns, "net/core/somaxconn") != "777"
    assert Path("/proc/sys/net/core/somaxconn").read_text() == host_before
    assert own_daemon.ready()


def test_a_peer_that_swaps_the_two_netns_cannot_reach_the_host(own_daemon: Daemon, box: Box) -> None:
    """A (root) peer that announces the container netns as its own and the host's as the
    container's: the daemon still refuses its own netns, and the host is left alone."""
    own_daemon.start()
    stdin = json.dumps(plugin_config("1.0.0", ["net.core.somaxconn=778"], box.prev_result())).encode()
    frame = request_frame(cni_env("ADD", "/proc/self/ns/net"), stdin, 3)
    host = os.open("/proc/self/ns/net", os.O_RDONLY)
    container = os.open(box.path, os.O_RDONLY)
    host_before = Path("/proc/sys/net/core/somaxconn").read_text()
    try:
        data = _send_with_fds(own_daemon.socket, frame, [container, host])
    finally:
        os.close(host)
        os.close(container)
    reply = parse_reply(data)
    assert reply is not None, data
    assert reply[0] == 1
    assert json.loads(reply[1])["code"] == 4, reply
    assert Path("/proc/sys/net/core/somaxconn").read_text() == host_before


def test_idle_connections_hold_no_call_for_longer_than_the_read_timeout(
    shim: str, own_daemon: Daemon, box: Box, cid: str
) -> None:
    """More silent connections than workers (a slowloris from a root process, or shims stopped
    before they send): a real ADD behind them is served once the daemon's 10 s read timeout
    frees a worker, and the daemon keeps serving afterwards."""
    own_daemon.start("--workers", "4")
    idle = []
    try:
        for _ in range(12):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(own_daemon.socket)
            idle.append(sock)
        start = time.monotonic()
        env = cni_env("ADD", box.path, container_id=cid)
        out = exec_plugin(shim, env, plugin_config("1.0.0", KEYS, box.prev_result()), timeout=60)
        took = time.monotonic() - start
    finally:
        for sock in idle:
            sock.close()
    assert out.rc == 0, out
    assert took < 35, f"served after {took:.1f} s"
    assert netlab.read_sysctl(box.ns, "net/core/somaxconn") == "512"
    assert own_daemon.ready()


# --- concurrent attachments of one netns ----------------------------------------------------------


def test_a_failed_add_does_not_undo_a_concurrent_attachments_committed_add(
    make_netns: Callable[[str], str], tmp_path: Path
) -> None:
    """Finding 8: an ADD whose keys reach every link (net.ipv6.conf.all.*) snapshots every link
    of the netns and, when it fails, puts every link back to that snapshot, which undid what a
    concurrent ADD of another attachment had committed meanwhile (its link-local came back).
    Such an ADD now holds its netns alone: the other attachment's ADD waits for it, then runs."""
    first = Box(make_netns, ifname="net0")
    second = Box(make_netns, ifname="net1", host=first.host, ns=first.ns, default_routes=False)
    netlab.settle(first.ns, "net1")
    assert netlab.link_locals(first.ns, "net1")
    keys = ["net.ipv6.conf.all.disable_ipv6=1", "ipv6.conf.mtu=100"]  # reaches every link, then refused
    failing = _adding(first, "ctr-pod", keys, [PAUSED_AT, "record", str(tmp_path)], ifname="net0")
    other: subprocess.Popen[str] | None = None
    try:
        netlab.wait_until("the failing ADD has its snapshot", lambda: _stopped(failing.pid), 15)
        other = _adding(second, "ctr-pod", ["ipv6.conf.addr_gen_mode=1"], [PLAIN, str(tmp_path)], ifname="net1")
        with contextlib.suppress(subprocess.TimeoutExpired):
            other.wait(3)
        assert other.poll() is None, "the other attachment's ADD ran beside an ADD that may change every link"
        assert netlab.link_locals(first.ns, "net1"), "and wrote nothing meanwhile"
    finally:
        os.kill(failing.pid, signal.SIGCONT)
        stdout, _ = failing.communicate(timeout=60)
        other_out = other.communicate(timeout=60) if other is not None else ("", "")
    assert json.loads(stdout)["code"] == 102
    assert other is not None
    assert other.returncode == 0, other_out
    netlab.settle(first.ns, "net1")
    assert not netlab.link_locals(first.ns, "net1"), "the second attachment's ADD committed after it"
    assert netlab.addresses(first.ns, "net1") == set(second.addrs)
    assert not list(tmp_path.iterdir()), "no record, no lock file left"
