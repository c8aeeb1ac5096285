"""The daemon-mode wire, version 1 (docs/daemon.md): the request a shim sends (CNI_* variables,
stdin, the netns as descriptors), the reply it relays, and the netns a request names.

One request and one reply per connection on a unix SOCK_STREAM socket; integers big-endian.
A frame that is not a version-1 request raises FrameError: the daemon answers it with an error
object and parses nothing more.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import time

from . import MAX_STDIN
from .netns import identity, not_a_netns, open_error
from .request import MAX_ENVIRONMENT

REQUEST_MAGIC = b"CSQ1"
REPLY_MAGIC = b"CSR1"
FLAG_OWN_NETNS = 1
FLAG_CONTAINER_NETNS = 2
NETNS_OPENED, NETNS_NOT_ATTEMPTED, NETNS_NOT_REGULAR, NETNS_FAILED = 0, 1, 2, 3
HEADER = struct.Struct(">4sIIII")  # magic, flags, netns status, errno, environment length
MAX_STDERR = 1 << 20
READ_TIMEOUT = 10.0  # seconds for the whole request to arrive (the shim reads stdin before it connects)
SEND_TIMEOUT = 10.0  # seconds to send a reply


class FrameError(Exception):
    """A request that is not a version-1 frame."""


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

    def close(self) -> None:
        """Close the descriptors the shim sent: a netns stays alive while one is open."""
        for fd in (self.container_fd, self.shim_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.container_fd = self.shim_fd = None

    def forbidden(self) -> list[tuple[int, int]]:
        from .errors import CniError, ErrorCode

        if self.shim_fd is None:
            raise CniError(
                "the cni-sysctl shim could not open its own network namespace",
                "without it the host's netns cannot be told from the container's; see the shim's stderr",
                code=ErrorCode.IO_FAILURE,
            )
        return [identity(self.shim_fd), identity("/proc/self/ns/net")]


# --- frames ----------------------------------------------------------------------------------


def recv_exactly(conn: socket.socket, size: int, deadline: float) -> bytes:
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
    """The request on `conn`, whole within READ_TIMEOUT: environment, stdin, netns (whose
    descriptors the caller closes: ShimNetns.close). None when the peer sent nothing. Every
    descriptor received is closed if the request is refused."""
    deadline = time.monotonic() + READ_TIMEOUT
    conn.settimeout(READ_TIMEOUT)
    fd_size = socket.CMSG_SPACE(2 * struct.calcsize("i"))
    head, ancdata, msg_flags, _ = conn.recvmsg(HEADER.size, fd_size)
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            count = len(data) // struct.calcsize("i")
            fds += list(struct.unpack(f"{count}i", data[: count * struct.calcsize("i")]))
    try:
        return _parse(conn, head, msg_flags, fds, deadline)
    except BaseException:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        raise


def _parse(
    conn: socket.socket, head: bytes, msg_flags: int, fds: list[int], deadline: float
) -> tuple[dict[str, str], bytes, ShimNetns] | None:
    for fd in fds:
        os.set_inheritable(fd, False)
    if not head and not fds:
        return None
    if msg_flags & socket.MSG_CTRUNC:
        raise FrameError("more file descriptors than a request carries")
    if len(head) < HEADER.size:
        head += recv_exactly(conn, HEADER.size - len(head), deadline)
    magic, flags, status, err, env_len = HEADER.unpack(head)
    if magic != REQUEST_MAGIC:
        raise FrameError(f"not a version-1 request (magic {magic!r})")
    if env_len > MAX_ENVIRONMENT:
        raise FrameError(f"environment of {env_len} bytes, more than {MAX_ENVIRONMENT}")
    env_bytes = recv_exactly(conn, env_len, deadline)
    (stdin_len,) = struct.unpack(">I", recv_exactly(conn, 4, deadline))
    if stdin_len > MAX_STDIN:
        raise FrameError(f"stdin of {stdin_len} bytes, more than {MAX_STDIN}")
    stdin = recv_exactly(conn, stdin_len, deadline)
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
    return REPLY_MAGIC + struct.pack(">II", code, len(stdout)) + stdout + struct.pack(">I", len(stderr)) + stderr


def error_reply(msg: str, details: str, code: int) -> bytes:
    from .jsonio import dumps

    obj = {"cniVersion": "1.1.0", "code": code, "msg": msg, "details": details}
    out = dumps(obj) + "\n"
    return reply_frame(1, out.encode(), f"cni-sysctl: error {code}: {msg}\n".encode())


def request_frame(environ: dict[str, str], stdin: bytes, flags: int = 0) -> bytes:
    """A request (the readiness check's: no netns descriptors; `flags` announce the descriptors
    the caller sends with it)."""
    env = b"".join(os.fsencode(f"{k}={v}") + b"\0" for k, v in environ.items())
    status = NETNS_OPENED if flags & FLAG_CONTAINER_NETNS else NETNS_NOT_ATTEMPTED
    head = HEADER.pack(REQUEST_MAGIC, flags, status, 0, len(env))
    return head + env + struct.pack(">I", len(stdin)) + stdin


def parse_reply(data: bytes) -> tuple[int, bytes] | None:
    """(exit code, stdout) of a whole reply; None if it is not one."""
    if data[:4] != REPLY_MAGIC or len(data) < 12:
        return None
    code, length = struct.unpack(">II", data[4:12])
    return code, data[12 : 12 + length]


def send(conn: socket.socket, frame: bytes) -> None:
    with contextlib.suppress(OSError):  # the shim went away: nothing to tell it
        conn.settimeout(SEND_TIMEOUT)
        conn.sendall(frame)


def drain(conn: socket.socket) -> None:
    """Read what the peer still sends (bounded), so that closing with unread data does not reset
    the connection before the peer has read the reply."""
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(1.0)
        left = MAX_STDIN + MAX_ENVIRONMENT + 64
        while left > 0 and (chunk := conn.recv(min(left, 1 << 20))):
            left -= len(chunk)
