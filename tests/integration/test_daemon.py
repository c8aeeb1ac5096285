"""Daemon mode: the shim in a CNI bin dir and `cni-sysctl daemon` behind it, run as a runtime
runs them. The suites that run the installed plugin (integration, e2e, podman, containerd) run
in both modes already; these are what only daemon mode has: a daemon that is absent, restarted,
killed or drained, peers and frames it refuses, concurrency, its log, and byte-identical answers
to the direct plugin's.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cni_sysctl import inflight
from cni_sysctl.ports import DEFAULT_DIR
from tests import netlab
from tests.conftest import REPORT
from tests.netlab import Box, Daemon, Outcome, cni_env, diff, dump, exec_plugin, install_plugin, plugin_config

pytestmark = pytest.mark.root

KEYS = ["ipv4.conf.rp_filter=2", "ipv6.conf.accept_ra=0", "net.core.somaxconn=512"]


def add(shim: str, box: Box, keys: list[str] = KEYS, cid: str = "ctr-d") -> Outcome:
    config = plugin_config("1.0.0", keys, box.prev_result())
    return exec_plugin(shim, cni_env("ADD", box.path, container_id=cid), config)


def started(shim: str, env: dict[str, str], config: dict[str, object]) -> subprocess.Popen[bytes]:
    """The shim running one call in the background (its stdin written and closed)."""
    proc = subprocess.Popen([shim], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(config).encode())
    proc.stdin.close()
    proc.stdin = None
    return proc


# --- the daemon is not there ---------------------------------------------------------------------


def test_without_the_daemon_del_succeeds_and_the_rest_say_try_again(shim: str, own_daemon: Daemon, box: Box) -> None:
    config = plugin_config("1.0.0", KEYS, box.prev_result())
    start = time.monotonic()
    out = exec_plugin(shim, cni_env("ADD", box.path), config)
    assert 1.9 < time.monotonic() - start < 10, "the shim retried the connect for about 2 s"
    assert (out.rc, out.code) == (1, 11), out
    assert f"cannot reach the cni-sysctl daemon at {own_daemon.socket}" in out.msg
    assert "cni-sysctl daemon --check" in out.json["details"]
    assert netlab.read_sysctl(box.ns, "net/ipv4/conf/eth0/rp_filter") == "0", "nothing written"
    out = exec_plugin(shim, cni_env("DEL", box.path), config)
    assert (out.rc, out.stdout) == (0, ""), out
    out = exec_plugin(shim, {"CNI_COMMAND": "STATUS"}, plugin_config("1.1.0", []))
    assert (out.rc, out.code) == (1, 50), out
    # VERSION needs no daemon
    out = exec_plugin(shim, {"CNI_COMMAND": "VERSION"}, b'{"cniVersion":"0.4.0"}')
    assert out.stdout == '{"cniVersion":"0.4.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}\n'


def test_the_fallback_runs_the_call_when_the_daemon_is_absent(tmp_path: Path, own_daemon: Daemon, box: Box) -> None:
    shim = install_plugin(tmp_path / "fb", "daemon", own_daemon.socket, fallback=True)
    assert os.access(tmp_path / "fb" / "cni-sysctl-direct", os.X_OK)
    out = add(shim, box)
    assert out.rc == 0, out
    assert netlab.read_sysctl(box.ns, "net/ipv4/conf/eth0/rp_filter") == "2"


def test_an_add_waiting_for_a_starting_daemon_is_served(shim: str, own_daemon: Daemon, box: Box) -> None:
    """The shim retries the connect: a daemon that comes up within 2 s serves the call."""
    results: list[Outcome] = []
    caller = threading.Thread(target=lambda: results.append(add(shim, box)))
    caller.start()
    time.sleep(0.3)
    own_daemon.start()
    caller.join(30)
    assert results, "the ADD never returned"
    assert results[0].rc == 0, results[0]


# --- restart, kill, drain ------------------------------------------------------------------------


def test_a_restart_between_two_adds_and_a_replaced_socket(
    shim: str, own_daemon: Daemon, make_netns: Callable[[str], str], tmp_path: Path
) -> None:
    own_daemon.start()
    first = Box(make_netns)
    assert add(shim, first).rc == 0
    # a second daemon binds the same path while the first still runs: the socket is replaced
    second = Daemon(tmp_path / "d").start()
    try:
        assert own_daemon.stop() == 0, "the old daemon drains and exits cleanly"
        assert os.path.exists(own_daemon.socket), "the old daemon left the new one's socket alone"
        again = Box(make_netns)
        out = add(shim, again, cid="ctr-d2")
        assert out.rc == 0, out
        assert netlab.read_sysctl(again.ns, "net/core/somaxconn") == "512"
    finally:
        second.stop()
    assert not os.path.exists(own_daemon.socket), "a daemon that stops removes its own socket"


def test_sigterm_drains_the_call_in_flight(shim: str, own_daemon: Daemon, box: Box) -> None:
    own_daemon.start()
    config = plugin_config("1.0.0", ["ipv6.conf.mtu=1400", *KEYS], box.prev_result())  # waits for readiness
    cid = netlab.unique("ctr-drain")
    proc = started(shim, cni_env("ADD", box.path, container_id=cid), config)
    record = inflight.path_for(DEFAULT_DIR, cid, "eth0")
    netlab.wait_until("the call is in its transaction", lambda: os.path.exists(record), 10, 0.001)
    assert own_daemon.stop(signal.SIGTERM) == 0
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert netlab.read_sysctl(box.ns, "net/ipv6/conf/eth0/mtu") == "1400"
    events = [r.get("event") for r in own_daemon.records()]
    assert "draining" in events
    assert events[-1] == "stopped"


def test_a_daemon_killed_in_the_middle_of_a_bounce(shim: str, own_daemon: Daemon, box: Box) -> None:
    """SIGKILL of the daemon (its children die with it, as with its cgroup) while an ADD is in
    its transaction: the ADD reports an error; one retried ADD succeeds; the netns is then that
    of a clean ADD, no address or route half restored."""
    own_daemon.start()
    run = netlab.unique("ctr-k")  # records of an earlier run never meet this one's
    assert add(shim, box, cid=f"{run}-0").rc == 0
    netlab.settle(box.ns)
    reference = dump(box.ns)
    caught = 0
    for i in range(1, 40):
        cid = f"{run}-{i}"
        record = inflight.path_for(DEFAULT_DIR, cid, "eth0")
        config = plugin_config("1.0.0", KEYS, box.prev_result())
        proc = started(shim, cni_env("ADD", box.path, container_id=cid), config)
        while not os.path.exists(record) and proc.poll() is None:
            time.sleep(0.0002)
        time.sleep(0.002 * (i % 5))
        own_daemon.stop(signal.SIGKILL)
        out = proc.communicate(timeout=30)[0].decode()
        if os.path.exists(record):
            caught += 1
            assert proc.returncode == 1, out
            assert json.loads(out)["code"] == 11
        own_daemon.start()
        retry = add(shim, box, cid=cid)
        assert retry.rc == 0, retry
        assert not os.path.exists(record)
        netlab.settle(box.ns)
        after = dump(box.ns)
        assert after == reference, diff(reference, after)
        if caught >= 5:
            break
    REPORT.append(f"daemon SIGKILLed inside a bouncing ADD: {caught} times, each repaired by one retried ADD")
    assert caught >= 5


def test_a_runtime_that_kills_the_shim_gets_its_call_rolled_back(shim: str, own_daemon: Daemon, box: Box) -> None:
    """A runtime's timeout kills the shim, not the daemon's worker: the worker sees the
    connection gone at its next step and rolls back, as a killed direct plugin's next call
    would; the retry waits for the attachment's lock meanwhile."""
    own_daemon.start()
    before = dump(box.ns)
    cid = netlab.unique("ctr-shimkill")
    record = inflight.path_for(DEFAULT_DIR, cid, "eth0")
    config = plugin_config("1.0.0", ["ipv6.conf.mtu=1400", *KEYS], box.prev_result())  # waits for readiness
    proc = started(shim, cni_env("ADD", box.path, container_id=cid), config)
    netlab.wait_until("the call is in its transaction", lambda: os.path.exists(record), 10, 0.001)
    proc.kill()
    proc.wait()
    netlab.wait_until("the worker rolled back", lambda: not os.path.exists(record), 15)
    netlab.wait_until("the worker logs the call", lambda: any(r.get("container") == cid for r in own_daemon.records()))
    (call,) = [r for r in own_daemon.records() if r.get("container") == cid]
    assert call["code"] == 11, call
    netlab.settle(box.ns)
    after = dump(box.ns)
    assert after == before, diff(before, after)


# --- who may talk to it, and what -------------------------------------------------------------


def _connect_as(uid: int, path: str, frame: bytes) -> bytes:
    """Connect to `path` from a process of `uid` and send `frame`; what came back."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            os.setgid(uid)
            os.setuid(uid)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(10)
                sock.connect(path)
                sock.sendall(frame)
                data = b""
                while chunk := sock.recv(65536):
                    data += chunk
            os.write(write, data or b"<nothing>")
        except BaseException as exc:  # noqa: BLE001 - the child reports, never returns
            os.write(write, f"<{exc!r}>".encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        out = f.read()
    os.waitpid(pid, 0)
    return out


def _frame(env: bytes, stdin: bytes, env_len: int | None = None, stdin_len: int | None = None) -> bytes:
    head = b"CSQ1" + struct.pack(">IIII", 0, 1, 0, len(env) if env_len is None else env_len)
    return head + env + struct.pack(">I", len(stdin) if stdin_len is None else stdin_len) + stdin


def test_socket_permissions_and_a_peer_that_is_not_root() -> None:
    import shutil
    import tempfile

    top = Path(tempfile.mkdtemp(prefix="cs-peer-", dir="/tmp"))  # a path that others may walk
    os.chmod(top, 0o755)
    own_daemon = Daemon(top)
    try:
        _peers(own_daemon.start())
    finally:
        own_daemon.stop(signal.SIGKILL)
        shutil.rmtree(top)


def _peers(own_daemon: Daemon) -> None:
    directory = os.path.dirname(own_daemon.socket)
    assert os.stat(directory).st_mode & 0o777 == 0o700
    assert os.stat(own_daemon.socket).st_mode & 0o777 == 0o600
    assert _connect_as(65534, own_daemon.socket, b"x").startswith(b"<PermissionError"), "0700 keeps others out"
    # even with the permissions opened up, the daemon refuses a peer that is not root
    os.chmod(directory, 0o755)
    os.chmod(own_daemon.socket, 0o666)
    try:
        answer = _connect_as(65534, own_daemon.socket, _frame(b"CNI_COMMAND=VERSION\0", b"{}"))
    finally:
        os.chmod(directory, 0o700)
        os.chmod(own_daemon.socket, 0o600)
    # closed without a word: nothing read, or the send cut short by the close
    assert answer in (b"<nothing>", b"<BrokenPipeError(32, 'Broken pipe')>",
                      b"<ConnectionResetError(104, 'Connection reset by peer')>"), answer  # fmt: skip
    assert any(r.get("event") == "peer refused" and r.get("peer_uid") == 65534 for r in own_daemon.records())


@pytest.mark.parametrize(
    "frame",
    [
        b"GET / HTTP/1.1\r\n\r\n",
        b"CSQ1" + b"\0" * 3,
        _frame(b"CNI_COMMAND=ADD\0", b"", env_len=70000),
        _frame(b"CNI_COMMAND=ADD\0", b"", stdin_len=5 << 20),
        _frame(b"CNI_COMMAND=ADD\0", b"{}")[:-1],
    ],
    ids=["http", "short", "environment-too-large", "stdin-too-large", "truncated"],
)
def test_malformed_frames_get_an_error_object_and_the_daemon_goes_on(own_daemon: Daemon, frame: bytes) -> None:
    own_daemon.start()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(20)
        sock.connect(own_daemon.socket)
        sock.sendall(frame)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data[:4] == b"CSR1", data
    code, length = struct.unpack(">II", data[4:12])
    error = json.loads(data[12 : 12 + length])
    assert code == 1
    assert error["code"] == 6
    assert "malformed request" in error["msg"]
    assert b"Traceback" not in data
    assert own_daemon.ready()


# --- concurrency -------------------------------------------------------------------------------


def test_fifty_concurrent_adds_into_fifty_netns(
    shim: str, own_daemon: Daemon, make_netns: Callable[[str], str]
) -> None:
    own_daemon.start()
    boxes = [Box(make_netns, fast_dad=True) for _ in range(50)]
    results: list[tuple[float, Outcome]] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        start = time.monotonic()
        out = add(shim, boxes[i], cid=f"ctr-c{i}")
        with lock:
            results.append((time.monotonic() - start, out))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 50
    assert [o.rc for _, o in results] == [0] * 50, [o for _, o in results if o.rc]
    for b in boxes:
        assert netlab.read_sysctl(b.ns, "net/ipv6/conf/eth0/accept_ra") == "0"
        assert netlab.addresses(b.ns) == set(b.addrs)
    times = sorted(t for t, _ in results)
    REPORT.append(f"daemon mode, 50 concurrent bouncing ADDs: all succeeded, p50 {times[25] * 1000:.0f} ms, "
                  f"max {times[-1] * 1000:.0f} ms (wall, this machine under test load)")  # fmt: skip


def test_eight_concurrent_adds_into_one_netns(shim: str, own_daemon: Daemon, make_netns: Callable[[str], str]) -> None:
    own_daemon.start()
    first = Box(make_netns, ifname="net0")
    links = [first] + [
        Box(make_netns, ifname=f"net{i}", host=first.host, ns=first.ns, default_routes=False) for i in range(1, 8)
    ]
    results: list[Outcome] = []
    lock = threading.Lock()

    def one(link: Box) -> None:
        prev = link.prev_result()
        prev["interfaces"] = [{"name": link.ifname, "sandbox": link.path}]
        env = cni_env("ADD", link.path, ifname=link.ifname, container_id="ctr-8")
        keys = ["ipv6.conf.addr_gen_mode=1", "ipv4.conf.rp_filter=2"]
        out = exec_plugin(shim, env, plugin_config("1.0.0", keys, prev))
        with lock:
            results.append(out)

    threads = [threading.Thread(target=one, args=(link,)) for link in links]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert [o.rc for o in results] == [0] * 8, [o for o in results if o.rc]
    for link in links:
        assert netlab.read_sysctl(first.ns, f"net/ipv6/conf/{link.ifname}/addr_gen_mode") == "1"
        assert netlab.read_sysctl(first.ns, f"net/ipv4/conf/{link.ifname}/rp_filter") == "2"
        assert not netlab.link_locals(first.ns, link.ifname), f"{link.ifname} was bounced"
        assert netlab.addresses(first.ns, link.ifname) == set(link.addrs)
        assert netlab.is_up(first.ns, link.ifname)


# --- one implementation: the same answers -------------------------------------------------------


def _cases(box: Box, tmp: Path) -> list[tuple[str, dict[str, str], bytes]]:
    fifo = tmp / "fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    prev = box.prev_result()
    good = json.dumps(plugin_config("1.0.0", KEYS, prev)).encode()
    env = cni_env("ADD", box.path, container_id="ctr-same")
    deep = b'{"cniVersion":"1.0.0","name":"n","x":' + b"[" * 5000 + b"]" * 5000 + b"}"
    return [
        ("add", env, good),
        ("add again", env, good),
        ("check", {**env, "CNI_COMMAND": "CHECK"}, good),
        ("check 0.3.1", {**env, "CNI_COMMAND": "CHECK"}, good.replace(b'"1.0.0"', b'"0.3.1"', 1)),
        ("kernel key", env, json.dumps(plugin_config("1.0.0", ["kernel.core_pattern=x"], prev)).encode()),
        ("unknown key", env, json.dumps(plugin_config("1.0.0", ["net.core.nosuch=1"], prev)).encode()),
        ("refused value", env, json.dumps(plugin_config("1.0.0", ["ipv6.conf.mtu=100"], prev)).encode()),
        ("no prevResult", env, json.dumps(plugin_config("1.0.0", KEYS)).encode()),
        ("not json", env, b"{nope"),
        ("deep", env, deep),
        ("surrogate", env, good.replace(b"rp_filter=2", b"rp_filter=\\ud800")),
        ("no netns", {k: v for k, v in env.items() if k != "CNI_NETNS"}, good),
        ("missing netns", {**env, "CNI_NETNS": "/var/run/netns/nosuch-ns"}, good),
        ("fifo netns", {**env, "CNI_NETNS": str(fifo)}, good),
        ("own netns", {**env, "CNI_NETNS": "/proc/self/ns/net"}, good),
        ("bad ifname", {**env, "CNI_IFNAME": "a/b"}, good),
        ("del", {**env, "CNI_COMMAND": "DEL", "CNI_NETNS": "dummy"}, good),
        ("version", {"CNI_COMMAND": "VERSION"}, b'{"cniVersion":"0.3.1"}'),
        ("version 5", {"CNI_COMMAND": "VERSION"}, b'{"cniVersion":5}'),
        ("status", {"CNI_COMMAND": "STATUS"}, json.dumps(plugin_config("1.1.0", [])).encode()),
        ("gc", {"CNI_COMMAND": "GC", "CNI_PATH": "/x"}, json.dumps(plugin_config("1.1.0", [])).encode()),
        ("gc 1.0.0", {"CNI_COMMAND": "GC", "CNI_PATH": "/x"}, json.dumps(plugin_config("1.0.0", [])).encode()),
        ("no command", {}, b""),
    ]


def test_both_modes_give_byte_identical_answers(shim: str, own_daemon: Daemon, box: Box, tmp_path: Path) -> None:
    """The same calls through the direct launcher and through shim + daemon: the same stdout,
    byte for byte, and the same exit code."""
    own_daemon.start()
    direct = install_plugin(tmp_path / "direct")
    differ = []
    for name, env, data in _cases(box, tmp_path):
        one = exec_plugin(direct, env, data)
        two = exec_plugin(shim, env, data)
        if (one.rc, one.stdout) != (two.rc, two.stdout):
            differ.append(f"{name}: direct {one.rc} {one.stdout!r} / daemon {two.rc} {two.stdout!r}")
    assert not differ, "\n".join(differ)


def test_one_log_line_per_call(shim: str, own_daemon: Daemon, box: Box) -> None:
    own_daemon.start()
    assert add(shim, box, cid="ctr-log").rc == 0
    assert add(shim, box, ["net.core.nosuch=1"], cid="ctr-log").rc == 1
    calls = [r for r in own_daemon.records() if r.get("command") == "ADD"]
    assert len(calls) == 2
    ok, failed = calls
    assert ok["container"] == "ctr-log"
    assert ok["netns"] == box.path
    assert ok["ifnames"] == ["eth0"]
    assert ok["keys"] == ["net.ipv4.conf.eth0.rp_filter", "net.ipv6.conf.eth0.accept_ra", "net.core.somaxconn"]
    assert ok["bounce"] == ["eth0"]
    assert ok["code"] == 0
    assert isinstance(ok["duration_ms"], float)
    assert failed["code"] == 101


def test_a_policy_change_is_picked_up_without_a_restart(
    shim: str, own_daemon: Daemon, box: Box, tmp_path: Path
) -> None:
    own_daemon.start()
    policy = tmp_path / "policy" / "p.yaml"
    policy.parent.mkdir()
    os.chmod(tmp_path, 0o755)
    policy.write_text("allow: [net.core.somaxconn]\n")
    os.chmod(policy, 0o644)
    config = plugin_config("1.0.0", [], box.prev_result(), policy=str(policy))
    config["args"] = {"cni": {"sysctl": ["ipv4.conf.rp_filter=1"]}}
    env = cni_env("ADD", box.path, container_id="ctr-pol")
    out = exec_plugin(shim, env, config)
    assert (out.rc, out.code) == (1, 100), out
    policy.write_text("allow: [net.core.somaxconn, ipv4.conf.rp_filter]\n")
    out = exec_plugin(shim, env, config)
    assert out.rc == 0, out
    assert netlab.read_sysctl(box.ns, "net/ipv4/conf/eth0/rp_filter") == "1"


def test_a_daemon_in_a_netns_of_its_own_still_refuses_the_hosts(
    tmp_path: Path, make_netns: Callable[[str], str], box: Box
) -> None:
    """Run as in a pod without hostNetwork: the daemon's netns is not the host's. The shim
    sends its own netns (the host's) with every call; the host's is refused, and so is the
    daemon's own."""
    where = make_netns("dmn")
    (tmp_path / "own").mkdir()
    socket_path = str(tmp_path / "own" / "s.sock")
    log = open(tmp_path / "own.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(["ip", "netns", "exec", where, *netlab.OPERATOR, "daemon", "--socket", socket_path],
                            stderr=log, cwd=netlab.REPO)  # fmt: skip
    try:
        from cni_sysctl import daemon

        netlab.wait_until("the daemon answers", lambda: daemon.check(socket_path) is None, 15)
        shim = install_plugin(tmp_path / "bin", "daemon", socket_path)
        config = plugin_config("1.0.0", ["net.core.somaxconn=999"], box.prev_result())
        host_before = Path("/proc/sys/net/core/somaxconn").read_text()
        for netns in (f"/proc/{os.getpid()}/ns/net", "/proc/self/ns/net", netlab.netns_path(where)):
            out = exec_plugin(shim, cni_env("ADD", netns), config)
            assert (out.rc, out.code) == (1, 4), (netns, out)
            assert "own network namespace" in out.msg
        assert Path("/proc/sys/net/core/somaxconn").read_text() == host_before
        assert exec_plugin(shim, cni_env("ADD", box.path), config).rc == 0
        assert netlab.read_sysctl(box.ns, "net/core/somaxconn") == "999"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        log.close()


def test_the_systemd_unit_example_runs_the_daemon(tmp_path: Path) -> None:
    """examples/cni-sysctl-daemon.service, as systemd would run it: ExecStart, then
    ExecStartPost (the readiness check), then KillSignal, within TimeoutStopSec; with this
    checkout's cni-sysctl and a socket in the test's directory."""
    import configparser
    import shlex

    unit = configparser.ConfigParser(interpolation=None)
    unit.optionxform = str  # type: ignore[assignment, method-assign]  # keys are case-sensitive
    unit.read(netlab.REPO / "examples" / "cni-sysctl-daemon.service")
    service = unit["Service"]
    program = "/opt/cni-sysctl/bin/cni-sysctl"
    default_socket = "/run/cni-sysctl/cni-sysctl.sock"
    socket_path = str(tmp_path / "run" / "cni-sysctl.sock")

    def here(command: str) -> list[str]:
        argv = shlex.split(command.replace(default_socket, socket_path))
        return [*netlab.OPERATOR, *argv[1:]] if argv[0] == program else argv

    start = here(service["ExecStart"])
    assert start[len(netlab.OPERATOR) :] == ["daemon", "--socket", socket_path]
    post = service["ExecStartPost"].replace(program, " ".join(netlab.OPERATOR)).replace(default_socket, socket_path)
    daemon = subprocess.Popen(start, stderr=subprocess.DEVNULL, cwd=netlab.REPO)
    try:
        assert subprocess.run(shlex.split(post), cwd=netlab.REPO, timeout=30, check=False).returncode == 0
        assert service["KillSignal"] == "SIGTERM"
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(float(service["TimeoutStopSec"])) == 0
        assert not os.path.exists(socket_path)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
