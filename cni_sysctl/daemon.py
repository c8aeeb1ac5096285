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

from . import worker as worker_module
from .calllog import log_event

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

DEFAULT_SOCKET = "/run/cni-sysctl/cni-sysctl.sock"
DEFAULT_REQUEST_TIMEOUT = 60.0  # seconds a request may run before its child is killed
USAGE = """\
usage: cni-sysctl daemon [--socket PATH] [--request-timeout SECONDS] [--workers N]
       cni-sysctl daemon --check [--socket PATH]
Serves the CNI calls of the daemon-mode shim (cni-sysctl install --mode daemon) on PATH
(default {socket}), in the foreground, logging one JSON line per call on stderr; at most N
calls at once (default 32).
--check: exit 0 when a daemon answers on PATH.
"""


# --- one request (in the child) -------------------------------------------------------------


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
        log_event(self.log_fd, {"event": "listening", "socket": self.path, "pid": os.getpid()})
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
                    log_event(self.log_fd, timed_out)
                    os.kill(worker.pid, signal.SIGKILL)
                    worker.deadline = float("inf")
        self._wind_down()
        log_event(self.log_fd, {"event": "stopped", "socket": self.path})
        return 0

    def _stop(self, signum: int, frame: object) -> None:
        if not self.stopping:
            log_event(self.log_fd, {"event": "draining", "signal": signum, "in_flight": len(self.busy)})
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
                for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                    signal.signal(signum, signal.SIG_DFL)
                # SIGPIPE stays ignored: a reply to a shim that is gone is an EPIPE to ignore
                signal.set_wakeup_fd(-1)
                parent_end.close()
                if self.listener is not None:
                    self.listener.close()
                for other in [*self.idle, *self.busy.values()]:
                    if other.control is not None:
                        other.control.close()
                if warm:
                    worker_module.warm_up()
                worker_module.work(child_end, self.log_fd, self.max_requests)
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
                log_event(self.log_fd, {"event": "peer refused", "peer_pid": pid, "peer_uid": uid})
                return
            fd = struct.pack("i", conn.fileno())
            while True:
                # the last used: its pages are warm; else a new one, which serves this at once
                worker = self.idle.pop() if self.idle else self._spawn(warm=False)
                assert worker.control is not None
                try:
                    worker.control.sendmsg([b"r"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fd)])
                    break
                except OSError:  # it died meanwhile: the next one
                    self._dismiss(worker)
            worker.deadline = time.monotonic() + self.request_timeout
            self.busy[worker.pid] = worker
        self._size_pool()

    def _done(self, worker: Worker) -> None:
        """The worker says "done", or "last" (its final request: it is leaving), or its control
        socket closed."""
        assert worker.control is not None
        try:
            said = worker.control.recv(16)
        except OSError:
            said = b""
        self.busy.pop(worker.pid, None)
        worker.deadline = float("inf")
        if said == b"d" and not self.stopping:
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

    from .wire import parse_reply, request_frame

    frame = request_frame({"CNI_COMMAND": "VERSION"}, b'{"cniVersion":"1.1.0"}')
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
    reply = parse_reply(data)
    if reply is None:
        return f"{path} answered with no version-1 reply"
    code, stdout = reply
    try:
        versions = json.loads(stdout)["supportedVersions"]
    except (ValueError, KeyError, TypeError):
        return f"{path} answered VERSION with exit {code} and {stdout!r}"
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
