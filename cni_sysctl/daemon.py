"""`cni-sysctl daemon`: serve the CNI calls the daemon-mode shim forwards (docs/daemon.md).

The same code as the direct plugin runs each call: cli.main() with the request's CNI_*
variables and stdin, and the container netns from the descriptor the shim passed instead of a
path. The reply is what the direct plugin would have printed, and its exit code.

Isolation: a pool of forked worker processes, from a parent that has loaded everything an ADD
needs (the pipeline, pyroute2's message classes, PyYAML when a policy file exists) and never runs
a request itself. The parent accepts, checks the peer and hands the connection to an idle
worker; a worker serves one request at a time (entering the container netns in that request
only) and is replaced after 500. A request that outlives its deadline is killed with its worker,
without touching the others; a crash or a leak stays in its worker; the parent never leaves its
own netns, and a worker found outside its own after a request leaves. Requests run
concurrently, up to --workers at once (more wait in the socket's backlog); nothing is locked
across requests. Why this and not a fork per request or threads: docs/daemon.md ("The
daemon's workers"), measured by bench/worker_models.py.

Security: the socket's directory is 0700 and the socket 0600, both root's; a peer that is not
uid 0 (SO_PEERCRED) is refused; a request is bounded in size (64 KiB of environment, 4 MiB of
stdin) and time (its deadline); a malformed frame gets a CNI error object, never a traceback;
the host's netns is refused whether the daemon runs in it or in a container of its own (the
shim sends its own netns, which is the host's).

Operations: one structured line per call on stderr (calllog); SIGTERM stops accepting, drains
the calls in flight and exits; `cni-sysctl daemon --check` is a readiness check.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import sys
import time

from . import MAX_STDIN
from .netns import identity, not_a_netns, open_error
from .request import MAX_ENVIRONMENT

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

DEFAULT_SOCKET = "/run/cni-sysctl/cni-sysctl.sock"
REQUEST_MAGIC = b"CSQ1"
REPLY_MAGIC = b"CSR1"
FLAG_OWN_NETNS = 1
FLAG_CONTAINER_NETNS = 2
NETNS_OPENED, NETNS_NOT_ATTEMPTED, NETNS_NOT_REGULAR, NETNS_FAILED = 0, 1, 2, 3
HEADER = struct.Struct(">4sIIII")  # magic, flags, netns status, errno, environment length
MAX_STDERR = 1 << 20
READ_TIMEOUT = 10.0  # seconds for the whole request to arrive
DEFAULT_REQUEST_TIMEOUT = 60.0  # seconds a request may run before its child is killed
MAX_CHILDREN = 256
USAGE = """\
usage: cni-sysctl daemon [--socket PATH] [--request-timeout SECONDS] [--workers N]
       cni-sysctl daemon --check [--socket PATH]
Serves the CNI calls of the daemon-mode shim (cni-sysctl install --mode daemon) on PATH
(default {socket}), in the foreground, logging one JSON line per call on stderr; at most N
calls at once (default 32).
--check: exit 0 when a daemon answers on PATH.
"""


class FrameError(Exception):
    """A request that is not a version-1 frame."""


# --- the netns a request names --------------------------------------------------------------


class ShimNetns:
    """netns.NetnsSource for a forwarded call: what the shim found at CNI_NETNS (an open
    descriptor, or why there is none), and the shim's own netns, the host's."""

    def __init__(self, status: int, err: int, container_fd: int | None, shim_fd: int | None) -> None:
        self.status = status
        self.err = err
        self.container_fd = container_fd
        self.shim_fd = shim_fd

    def open(self, path: str) -> int:
        if self.status == NETNS_OPENED and self.container_fd is not None:
            return os.dup(self.container_fd)
        if self.status == NETNS_FAILED:
            raise open_error(path, self.err)
        raise not_a_netns(path)

    def forbidden(self) -> list[tuple[int, int]]:
        from .errors import CniError, ErrorCode

        if self.shim_fd is None:
            raise CniError(
                "the cni-sysctl shim could not open its own network namespace",
                "without it the host's netns cannot be told from the container's; see the shim's stderr",
                code=ErrorCode.IO_FAILURE,
            )
        return [identity(self.shim_fd), identity("/proc/self/ns/net")]


# --- one request (in the child) -------------------------------------------------------------


def _recv_exactly(conn: socket.socket, size: int, deadline: float) -> bytes:
    chunks = []
    while size:
        conn.settimeout(max(0.001, deadline - time.monotonic()))
        chunk = conn.recv(min(size, 1 << 20))
        if not chunk:
            raise FrameError("the request ended early")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_request(conn: socket.socket) -> tuple[dict[str, str], bytes, ShimNetns] | None:
    """The request on `conn`: environment, stdin, netns. None when the peer sent nothing."""
    deadline = time.monotonic() + READ_TIMEOUT
    conn.settimeout(READ_TIMEOUT)
    fd_size = socket.CMSG_SPACE(2 * struct.calcsize("i"))
    head, ancdata, msg_flags, _ = conn.recvmsg(HEADER.size, fd_size)
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            count = len(data) // struct.calcsize("i")
            fds += list(struct.unpack(f"{count}i", data[: count * struct.calcsize("i")]))
    for fd in fds:
        os.set_inheritable(fd, False)
    if not head and not fds:
        return None
    if msg_flags & socket.MSG_CTRUNC:
        raise FrameError("more file descriptors than a request carries")
    if len(head) < HEADER.size:
        head += _recv_exactly(conn, HEADER.size - len(head), deadline)
    magic, flags, status, err, env_len = HEADER.unpack(head)
    if magic != REQUEST_MAGIC:
        raise FrameError(f"not a version-1 request (magic {magic!r})")
    if env_len > MAX_ENVIRONMENT:
        raise FrameError(f"environment of {env_len} bytes, more than {MAX_ENVIRONMENT}")
    env_bytes = _recv_exactly(conn, env_len, deadline)
    (stdin_len,) = struct.unpack(">I", _recv_exactly(conn, 4, deadline))
    if stdin_len > MAX_STDIN:
        raise FrameError(f"stdin of {stdin_len} bytes, more than {MAX_STDIN}")
    stdin = _recv_exactly(conn, stdin_len, deadline)
    environ: dict[str, str] = {}
    for item in env_bytes.split(b"\0"):
        name, sep, value = item.partition(b"=")
        if sep and name.startswith(b"CNI_"):
            environ[os.fsdecode(name)] = os.fsdecode(value)  # as os.environ decodes them
    expected = bool(flags & FLAG_OWN_NETNS) + bool(flags & FLAG_CONTAINER_NETNS)
    if len(fds) != expected:
        raise FrameError(f"{len(fds)} file descriptors where the flags announce {expected}")
    shim_fd = fds.pop(0) if flags & FLAG_OWN_NETNS else None
    container_fd = fds.pop(0) if flags & FLAG_CONTAINER_NETNS else None
    if status not in (NETNS_OPENED, NETNS_NOT_ATTEMPTED, NETNS_NOT_REGULAR, NETNS_FAILED):
        raise FrameError(f"unknown netns status {status}")
    return environ, stdin, ShimNetns(status, err, container_fd, shim_fd)


def reply_frame(code: int, stdout: bytes, stderr: bytes) -> bytes:
    stderr = stderr[-MAX_STDERR:]
    return (
        REPLY_MAGIC
        + struct.pack(">II", code, len(stdout))
        + stdout
        + struct.pack(">I", len(stderr))
        + stderr
    )


def _error_reply(msg: str, details: str, code: int) -> bytes:
    import json

    obj = {"cniVersion": "1.1.0", "code": code, "msg": msg, "details": details}
    out = json.dumps(obj, separators=(",", ":")) + "\n"
    return reply_frame(1, out.encode(), f"cni-sysctl: error {code}: {msg}\n".encode())


def handle(conn: socket.socket, log_fd: int) -> None:
    """Serve one request on `conn` (in a child of the daemon)."""
    from io import BytesIO, StringIO

    from . import cli
    from .calllog import CallLog
    from .ports import Ports

    try:
        request = read_request(conn)
    except (FrameError, OSError, struct.error) as exc:
        _send(conn, _error_reply(f"the cni-sysctl daemon received a malformed request: {exc}", "", 6))
        _log(log_fd, {"event": "malformed request", "why": str(exc)})
        _drain(conn)
        return
    if request is None:
        return
    environ, data, netns = request
    calls = CallLog()
    out, err = StringIO(), StringIO()
    rc = cli.main(argv=[], environ=environ, stdin=BytesIO(data), stdout=out, stderr=err,
                  ports=Ports(netns=netns, hook=calls.hook))  # fmt: skip
    stdout = out.getvalue()
    _send(conn, reply_frame(rc, stdout.encode(), err.getvalue().encode("utf-8", "backslashreplace")))
    os.write(log_fd, calls.line(environ, rc, stdout).encode())


def _send(conn: socket.socket, frame: bytes) -> None:
    with contextlib.suppress(OSError):  # the shim went away: nothing to tell it
        conn.settimeout(READ_TIMEOUT)
        conn.sendall(frame)


def _drain(conn: socket.socket) -> None:
    """Read what the peer still sends (bounded), so that closing with unread data does not reset
    the connection before the peer has read the reply."""
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(1.0)
        left = MAX_STDIN + MAX_ENVIRONMENT + 64
        while left > 0 and (chunk := conn.recv(min(left, 1 << 20))):
            left -= len(chunk)


def _log(fd: int, record: dict[str, object]) -> None:
    import json

    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **record}
    with contextlib.suppress(OSError):  # a log that cannot be written never fails a call
        os.write(fd, (json.dumps(record, separators=(",", ":")) + "\n").encode())


# --- the server (the parent) ----------------------------------------------------------------


def _preload() -> None:
    """Import what an ADD needs, once, so that each forked child starts warm."""
    import gc
    import ipaddress  # noqa: F401 - prevResult checks after a bounce
    import json  # noqa: F401

    from . import (  # noqa: F401
        bounce,
        calllog,
        cli,
        commands,
        config,
        inflight,
        keys,
        linkstate,
        plan,
        policy,
        policyfile,
        procsys,
        result,
        rtnlmsg,
        snapshot,
        transaction,
    )
    from .config import DEFAULT_POLICY
    from .netns import setns_function

    setns_function()
    rtnlmsg.load()
    if os.path.exists(DEFAULT_POLICY):
        import yaml  # noqa: F401
    gc.collect()
    gc.freeze()  # the children do not copy pages only to update the collector's counts


def _pdeathsig() -> object:
    """prctl(PR_SET_PDEATHSIG, SIGKILL) for the children: they die with the daemon, as they
    would with its cgroup under systemd or Kubernetes."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl


class Worker:
    """A forked child that serves requests one at a time, handed to it by the parent."""

    __slots__ = ("pid", "pidfd", "control", "deadline")

    def __init__(self, pid: int, pidfd: int, control: socket.socket) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self.control: socket.socket | None = control  # the parent's end: requests out, "done" back
        self.deadline = float("inf")  # while idle


WARM_UP_CONFIG = (
    b'{"cniVersion":"1.0.0","name":"warm-up","type":"cni-sysctl","sysctl":["ipv6.conf.accept_ra=0",'
    b'"net.ipv4.conf.IFNAME.rp_filter=1","net.core.somaxconn=512"],"prevResult":{"cniVersion":"1.0.0",'
    b'"interfaces":[{"name":"eth0","sandbox":"/nonexistent"}],"ips":[{"interface":0,"address":"10.0.0.2/24",'
    b'"gateway":"10.0.0.1"}],"routes":[{"dst":"0.0.0.0/0","gw":"10.0.0.1"}]}}'
)


def _warm_up() -> None:
    """Run the hot path once in a new worker, before a request arrives, so that the pages it
    touches are copied from the parent now and not while a runtime waits: an ADD into a netns
    that does not exist (decode, request, config, keys, policy, plan, result, netns)."""
    from io import BytesIO, StringIO

    from . import cli

    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "warm-up", "CNI_IFNAME": "eth0",
           "CNI_NETNS": "/nonexistent/cni-sysctl-warm-up", "CNI_PATH": "/"}  # fmt: skip
    cli.main(argv=[], environ=env, stdin=BytesIO(WARM_UP_CONFIG), stdout=StringIO(), stderr=StringIO())


def _work(control: socket.socket, log_fd: int, max_requests: int) -> None:
    """A worker's life: take a connection from the parent, serve it, say "done"; again, up to
    `max_requests`. Leaves when the parent closes the control socket, and, as a safety net, if
    a request ever left it outside its own netns (NetnsEntered raises before that happens)."""
    own = identity("/proc/thread-self/ns/net")
    fd_size = socket.CMSG_SPACE(struct.calcsize("i"))
    for _ in range(max_requests):
        _, ancdata, _, _ = control.recvmsg(1, fd_size)
        fds = [
            struct.unpack("i", data[: struct.calcsize("i")])[0]
            for level, kind, data in ancdata
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS
        ]
        if not fds:
            return  # the parent closed the control socket: stopping, or too many idle workers
        with socket.socket(fileno=fds[0]) as conn:
            handle(conn, log_fd)
        if identity("/proc/thread-self/ns/net") != own:
            _log(log_fd, {"event": "worker left outside its netns", "pid": os.getpid()})
            os._exit(2)
        control.send(b"d")


class Server:
    """The parent: accepts, checks the peer, hands each connection to an idle worker (forking
    one if none is idle), kills a worker whose request outlives its deadline, keeps between
    `min_idle` and `max_idle` workers waiting, and drains on SIGTERM."""

    def __init__(
        self,
        path: str,
        request_timeout: float,
        log_fd: int = 2,
        min_idle: int = 1,
        max_idle: int = 4,
        max_workers: int = 32,
        max_requests: int = 500,
    ) -> None:
        self.path = path
        self.request_timeout = request_timeout
        self.log_fd = log_fd
        self.min_idle, self.max_idle, self.max_workers = min_idle, max_idle, max_workers
        self.max_requests = max_requests  # a worker is replaced after that many (bounds any leak)
        self.idle: list[Worker] = []
        self.busy: dict[int, Worker] = {}
        self.stopping = False
        self.listener: socket.socket | None = None
        self.listening = False
        self.inode = 0
        self._prctl: object = None
        self._selector: object = None

    def bind(self) -> None:
        """Listen on `path`: a new socket bound beside it and renamed over it, so that a
        restart replaces the socket atomically (the shim retries the connect meanwhile)."""
        directory = os.path.dirname(self.path) or "."
        os.makedirs(directory, mode=0o700, exist_ok=True)
        st = os.stat(directory)
        if st.st_uid != os.geteuid():
            raise SystemExit(f"cni-sysctl daemon: {directory} is not owned by uid {os.geteuid()}")
        os.chmod(directory, 0o700)
        tmp = os.path.join(directory, f".{os.path.basename(self.path)}.{os.getpid()}")
        if os.path.lexists(tmp):
            os.unlink(tmp)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.bind(tmp)
        os.chmod(tmp, 0o600)
        sock.listen(128)
        os.rename(tmp, self.path)
        self.inode = os.stat(self.path).st_ino
        sock.setblocking(False)
        self.listener = sock

    def serve(self) -> int:
        import selectors

        assert self.listener is not None
        self._prctl = _pdeathsig()
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the loop (pidfds do the reaping)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        sel = selectors.DefaultSelector()
        self._selector = sel
        sel.register(wake_r, selectors.EVENT_READ, "wake")
        _log(self.log_fd, {"event": "listening", "socket": self.path, "pid": os.getpid()})
        while not (self.stopping and not self.busy):
            if self.stopping:
                self._wind_down()
            else:
                self._size_pool()
            deadline = min((w.deadline for w in self.busy.values()), default=float("inf"))
            timeout = None if deadline == float("inf") else max(0.0, deadline - time.monotonic())
            for key, _ in sel.select(timeout):
                if key.data == "wake":
                    with contextlib.suppress(BlockingIOError):
                        while os.read(wake_r, 512):
                            pass
                elif key.data == "accept":
                    self._accept()
                elif isinstance(key.data, tuple) and key.data[0] == "done":
                    self._done(key.data[1])
                elif isinstance(key.data, tuple) and key.data[0] == "exit":
                    self._reap(key.data[1])
            now = time.monotonic()
            for worker in list(self.busy.values()):
                if now >= worker.deadline:
                    timed_out = {"event": "request timed out", "pid": worker.pid, "after_s": self.request_timeout}
                    _log(self.log_fd, timed_out)
                    os.kill(worker.pid, signal.SIGKILL)
                    worker.deadline = float("inf")
        self._wind_down()
        _log(self.log_fd, {"event": "stopped", "socket": self.path})
        return 0

    def _stop(self, signum: int, frame: object) -> None:
        if not self.stopping:
            _log(self.log_fd, {"event": "draining", "signal": signum, "in_flight": len(self.busy)})
        self.stopping = True

    @property
    def workers(self) -> int:
        return len(self.idle) + len(self.busy)

    def _size_pool(self) -> None:
        """Between min_idle and max_idle workers waiting; the listener is watched only when a
        request can be handed on (otherwise connections wait in its backlog)."""
        import selectors

        assert isinstance(self._selector, selectors.BaseSelector)
        while len(self.idle) < self.min_idle and self.workers < self.max_workers:
            self.idle.append(self._spawn())
        while len(self.idle) > self.max_idle:
            self._dismiss(self.idle.pop(0))
        can_take = bool(self.idle) or self.workers < self.max_workers
        if can_take != self.listening and self.listener is not None:
            if can_take:
                self._selector.register(self.listener, selectors.EVENT_READ, "accept")
            else:
                self._selector.unregister(self.listener)
            self.listening = can_take

    def _wind_down(self) -> None:
        """Stop accepting: the listener closed (its socket removed if still ours), idle workers
        dismissed, busy ones left to finish."""
        import selectors

        assert isinstance(self._selector, selectors.BaseSelector)
        if self.listener is not None:
            if self.listening:
                self._selector.unregister(self.listener)
                self.listening = False
            self.listener.close()
            self.listener = None
            try:
                if os.stat(self.path).st_ino == self.inode:
                    os.unlink(self.path)  # ours still: a restarted daemon may have replaced it
            except FileNotFoundError:
                pass
        while self.idle:
            self._dismiss(self.idle.pop())

    def _dismiss(self, worker: Worker) -> None:
        """An idle worker leaves when its control socket closes."""
        import selectors

        assert isinstance(self._selector, selectors.BaseSelector)
        if worker.control is not None:
            self._selector.unregister(worker.control)
            worker.control.close()
            worker.control = None

    def _spawn(self, warm: bool = True) -> Worker:
        """Fork a worker: it warms up (unless a request waits for it already), then serves what
        its control socket hands it."""
        import selectors

        assert isinstance(self._selector, selectors.BaseSelector)
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                self._prctl(1, signal.SIGKILL)  # type: ignore[operator]  # PR_SET_PDEATHSIG
                if os.getppid() != parent:
                    os._exit(0)
                for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGPIPE):
                    signal.signal(signum, signal.SIG_DFL)
                signal.set_wakeup_fd(-1)
                parent_end.close()
                if self.listener is not None:
                    self.listener.close()
                for other in [*self.idle, *self.busy.values()]:
                    if other.control is not None:
                        other.control.close()
                if warm:
                    _warm_up()
                _work(child_end, self.log_fd, self.max_requests)
            except BaseException:  # noqa: BLE001 - a worker never returns into the server loop
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                sys.stderr.flush()
                os._exit(code)
        child_end.close()
        pidfd = os.pidfd_open(pid)
        worker = Worker(pid, pidfd, parent_end)
        self._selector.register(pidfd, selectors.EVENT_READ, ("exit", worker))
        self._selector.register(parent_end, selectors.EVENT_READ, ("done", worker))
        return worker

    def _accept(self) -> None:
        assert self.listener is not None
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        with conn:
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            pid, uid, _ = struct.unpack("3i", creds)
            if uid != 0:
                _log(self.log_fd, {"event": "peer refused", "peer_pid": pid, "peer_uid": uid})
                return
            # the last used: its pages are warm; else a new one, which serves this at once
            worker = self.idle.pop() if self.idle else self._spawn(warm=False)
            assert worker.control is not None
            fd = struct.pack("i", conn.fileno())
            worker.control.sendmsg([b"r"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fd)])
            worker.deadline = time.monotonic() + self.request_timeout
            self.busy[worker.pid] = worker
        self._size_pool()

    def _done(self, worker: Worker) -> None:
        """The worker says "done" (or its control socket closed: it is leaving)."""
        assert worker.control is not None
        try:
            said = worker.control.recv(16)
        except OSError:
            said = b""
        self.busy.pop(worker.pid, None)
        worker.deadline = float("inf")
        if said and not self.stopping:
            self.idle.append(worker)
        else:
            self._dismiss(worker)

    def _reap(self, worker: Worker) -> None:
        import selectors

        assert isinstance(self._selector, selectors.BaseSelector)
        self._selector.unregister(worker.pidfd)
        os.close(worker.pidfd)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(worker.pid, 0)
        self._dismiss(worker)
        self.busy.pop(worker.pid, None)
        if worker in self.idle:
            self.idle.remove(worker)


# --- the readiness check ----------------------------------------------------------------------


def check(path: str, timeout: float = 5.0) -> str | None:
    """Ask the daemon at `path` for VERSION; why it did not answer, or None when it did."""
    import json

    env = b"CNI_COMMAND=VERSION\0"
    stdin = b'{"cniVersion":"1.1.0"}'
    frame = REQUEST_MAGIC + struct.pack(">IIII", 0, NETNS_NOT_ATTEMPTED, 0, len(env)) + env
    frame += struct.pack(">I", len(stdin)) + stdin
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(frame)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    except OSError as exc:
        return f"cannot reach {path}: {exc}"
    if data[:4] != REPLY_MAGIC or len(data) < 12:
        return f"{path} answered with no version-1 reply"
    code, length = struct.unpack(">II", data[4:12])
    try:
        versions = json.loads(data[12 : 12 + length])["supportedVersions"]
    except (ValueError, KeyError, TypeError):
        return f"{path} answered VERSION with exit {code} and {data[12 : 12 + length]!r}"
    return None if code == 0 and versions else f"{path} answered VERSION with exit {code}"


def main(argv: list[str], stdout: TextIO, stderr: TextIO) -> int:
    path = DEFAULT_SOCKET
    timeout = DEFAULT_REQUEST_TIMEOUT
    workers = 32
    check_only = False
    args = list(argv)
    try:
        while args:
            arg = args.pop(0)
            if arg == "--socket":
                path = args.pop(0)
            elif arg.startswith("--socket="):
                path = arg.split("=", 1)[1]
            elif arg == "--request-timeout":
                timeout = float(args.pop(0))
            elif arg == "--workers":
                workers = max(1, int(args.pop(0)))
            elif arg == "--check":
                check_only = True
            elif arg in ("-h", "--help"):
                stdout.write(USAGE.format(socket=DEFAULT_SOCKET))
                return 0
            else:
                raise ValueError(arg)
    except (IndexError, ValueError):
        stderr.write(USAGE.format(socket=DEFAULT_SOCKET))
        return 2
    if not path.startswith("/") or len(path.encode()) > 107:
        stderr.write(f"cni-sysctl daemon: --socket must be an absolute path of at most 107 bytes: {path!r}\n")
        return 2
    if check_only:
        problem = check(path)
        if problem is not None:
            stderr.write(f"cni-sysctl daemon --check: {problem}\n")
            return 1
        stdout.write(f"cni-sysctl daemon at {path}: ready\n")
        return 0
    if os.geteuid() != 0:
        stderr.write("cni-sysctl daemon: run as root: it enters container network namespaces\n")
        return 1
    _preload()
    server = Server(path, timeout, stderr.fileno() if stderr is sys.stderr else 2, max_workers=workers)
    server.bind()
    return server.serve()
