"""A daemon worker's side: serve requests the parent hands over, one at a time.

A worker is forked from the warm daemon (daemon.py). It runs the hot path once before its first
request (warm_up), then takes connections from its control socket: for each, it reads the
shim's request (wire.py), runs the very code of the direct plugin (cli.main) with the netns the
shim passed, replies, logs one line, and says "done" to the parent.
"""

from __future__ import annotations

import os
import socket
import struct

from .calllog import log_event
from .netns import identity
from .wire import FrameError, drain, error_reply, read_request, reply_frame, send

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


def _hangup_check(conn: socket.socket) -> Callable[[str, object], None]:
    """A hook that stops the call at its next step once the shim has gone (a runtime killed it
    on a timeout): the transaction then rolls back, as the direct plugin's would have been cut
    short, and the attachment's lock lets the runtime's retry in only after that."""
    import select

    poller = select.poll()
    poller.register(conn, select.POLLRDHUP)

    def check(step: str, detail: object) -> None:
        if step != "rollback" and poller.poll(0):
            from .errors import TryAgainError

            raise TryAgainError("the runtime went away before the call ended (its shim's connection closed)")

    return check


def handle(conn: socket.socket, log_fd: int) -> None:
    """Serve one request on `conn` (in a worker of the daemon)."""
    from io import BytesIO, StringIO

    from . import cli
    from .calllog import CallLog
    from .ports import Ports

    try:
        request = read_request(conn)
    except (FrameError, OSError, struct.error) as exc:
        send(conn, error_reply(f"the cni-sysctl daemon received a malformed request: {exc}", "", 6))
        log_event(log_fd, {"event": "malformed request", "why": str(exc)})
        drain(conn)
        return
    if request is None:
        return
    environ, data, netns = request
    calls = CallLog(_hangup_check(conn))
    out, err = StringIO(), StringIO()
    try:
        rc = cli.main(argv=[], environ=environ, stdin=BytesIO(data), stdout=out, stderr=err,
                      ports=Ports(netns=netns, hook=calls.hook))  # fmt: skip
    finally:
        netns.close()
    stdout = out.getvalue()
    send(conn, reply_frame(rc, stdout.encode(), err.getvalue().encode("utf-8", "backslashreplace")))
    os.write(log_fd, calls.line(environ, rc, stdout).encode())


WARM_UP_CONFIG = (
    b'{"cniVersion":"1.0.0","name":"warm-up","type":"cni-sysctl","sysctl":["ipv6.conf.accept_ra=0",'
    b'"net.ipv4.conf.IFNAME.rp_filter=1","net.core.somaxconn=512"],"prevResult":{"cniVersion":"1.0.0",'
    b'"interfaces":[{"name":"eth0","sandbox":"/nonexistent"}],"ips":[{"interface":0,"address":"10.0.0.2/24",'
    b'"gateway":"10.0.0.1"}],"routes":[{"dst":"0.0.0.0/0","gw":"10.0.0.1"}]}}'
)


def warm_up() -> None:
    """Run the hot path once in a new worker, before a request arrives, so that the pages it
    touches are copied from the parent now and not while a runtime waits: an ADD into a netns
    that does not exist (decode, request, config, keys, policy, plan, result, netns)."""
    from io import BytesIO, StringIO

    from . import cli

    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "warm-up", "CNI_IFNAME": "eth0",
           "CNI_NETNS": "/nonexistent/cni-sysctl-warm-up", "CNI_PATH": "/"}  # fmt: skip
    cli.main(argv=[], environ=env, stdin=BytesIO(WARM_UP_CONFIG), stdout=StringIO(), stderr=StringIO())


def work(control: socket.socket, log_fd: int, max_requests: int) -> None:
    """A worker's life: take a connection from the parent, serve it, say "done"; again, up to
    `max_requests`, the last said as "last" so the parent hands it nothing more. Leaves when the
    parent closes the control socket, and, as a safety net, if a request ever left it outside
    its own netns (NetnsEntered raises before that happens)."""
    own = identity("/proc/thread-self/ns/net")
    fd_size = socket.CMSG_SPACE(struct.calcsize("i"))
    for served in range(1, max_requests + 1):
        _, ancdata, _, _ = control.recvmsg(1, fd_size)
        fds = [
            struct.unpack("i", data[: struct.calcsize("i")])[0]
            for level, kind, data in ancdata
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS
        ]
        if not fds:
            return  # the parent closed the control socket: stopping, or too many idle workers
        for extra in fds[1:]:
            os.close(extra)
        with socket.socket(fileno=fds[0]) as conn:
            handle(conn, log_fd)
        if identity("/proc/thread-self/ns/net") != own:
            log_event(log_fd, {"event": "worker left outside its netns", "pid": os.getpid()})
            os._exit(2)
        control.send(b"l" if served == max_requests else b"d")
