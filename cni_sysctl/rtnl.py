"""Netlink (NETLINK_ROUTE): the kernel's constants and one socket that sends a request and waits
for its ack, or reads a whole dump.

Messages are pyroute2's classes (rtnlmsg.py, the only module that imports pyroute2); the socket
is a plain one, made by a factory that callers may replace (fault-injection tests wrap the real
socket; the default opens one in the netns current when it is called). Errors are
`NetlinkError` (`.code` is the errno) or OSError; a dump that keeps being interrupted is
TryAgainError (CNI code 11).
"""

from __future__ import annotations

import _socket as socket  # the C module behind `socket`, whose Python layer costs ~3 ms of imports
import errno
import os
import struct

from .errors import TryAgainError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any, Protocol

    from .rtnlmsg import Classes

    class NetlinkSocket(Protocol):
        """What Rtnl needs of a socket (the real one is _socket.socket)."""

        def setsockopt(self, level: int, option: int, value: int, /) -> None: ...
        def bind(self, address: tuple[int, int], /) -> None: ...
        def settimeout(self, timeout: float | None, /) -> None: ...
        def send(self, data: bytes, /) -> int: ...
        def recvmsg(self, bufsize: int, /) -> tuple[bytes, list[Any], int, Any]: ...
        def close(self) -> None: ...

    SocketFactory = Callable[[], NetlinkSocket]

# linux/netlink.h
NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP_INTR = 0x10
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSGHDR = "=IHHII"  # length, type, flags, seq, pid

# linux/rtnetlink.h
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWNEIGH, RTM_DELNEIGH, RTM_GETNEIGH = 28, 29, 30
RTPROT_REDIRECT, RTPROT_KERNEL, RTPROT_RA = 1, 2, 9
RTN_UNICAST, RTN_LOCAL, RTN_BROADCAST, RTN_ANYCAST, RTN_MULTICAST = 1, 2, 3, 4, 5
RTNH_F_ONLINK = 0x4
RTM_F_CLONED = 0x200
RT_SCOPE_LINK = 253
RT_TABLE_MAIN = 254

# linux/if_addr.h
IFA_F_TEMPORARY = 0x01  # IPv6; IFA_F_SECONDARY for IPv4 (kernel-set either way)
IFA_F_NODAD = 0x02
IFA_F_DADFAILED = 0x08
IFA_F_HOMEADDRESS = 0x10
IFA_F_TENTATIVE = 0x40
IFA_F_PERMANENT = 0x80
IFA_F_MANAGETEMPADDR = 0x100
IFA_F_NOPREFIXROUTE = 0x200
IFA_F_MCAUTOJOIN = 0x400
IFAPROT_KERNEL_RA = 2
IFAPROT_KERNEL_LL = 3
INFINITY_LIFE_TIME = 0xFFFFFFFF

# linux/neighbour.h
NUD_PERMANENT = 0x80
NTF_PROXY = 0x08

DUMP_TRIES = 5
REPLY_TIMEOUT = 10.0  # seconds: a kernel that never answers is an error, not a hang
_RECV_SIZE = 65536  # the kernel fills dump datagrams up to 32 KiB


def kernel_socket() -> NetlinkSocket:
    """A NETLINK_ROUTE socket in the calling thread's current netns."""
    return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)


class DumpInterrupted(Exception):
    """The kernel flagged a dump as inconsistent (NLM_F_DUMP_INTR): it changed meanwhile."""


def raw(msg: Any) -> bytes:
    """The bytes a decoded message was read from (what the in-flight record stores)."""
    return bytes(msg.data[msg.offset : msg.offset + msg["header"]["length"]])


def why(exc: BaseException) -> str:
    """An errno-bearing exception as 'ENAME: text'."""
    code = getattr(exc, "code", None) or getattr(exc, "errno", None)
    if isinstance(code, int) and code > 0:
        return f"{errno.errorcode.get(code, str(code))}: {os.strerror(code)}"
    return f"{type(exc).__name__}: {exc}"


class Rtnl:
    """One NETLINK_ROUTE socket; each request waits for its ack."""

    def __init__(self, classes: Classes, factory: SocketFactory | None = None) -> None:
        self.rt = classes
        self.errors: tuple[type[Exception], ...] = (OSError, classes.NetlinkError)
        self.sock = (factory or kernel_socket)()
        try:
            self.sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)  # errors echo only the header
            self.sock.bind((0, 0))
            self.sock.settimeout(REPLY_TIMEOUT)
        except OSError:
            self.sock.close()
            raise
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def _send(self, msg: Any, msg_type: int, flags: int) -> int:
        self.seq += 1
        msg["header"]["type"] = msg_type
        msg["header"]["flags"] = flags
        msg["header"]["sequence_number"] = self.seq
        msg["header"]["pid"] = 0
        msg.encode()
        self.sock.send(msg.data)
        return self.seq

    def _replies(self, seq: int, cls: Any, keep: Callable[[bytes, int], bool] | None = None) -> Iterator[Any]:
        """Decoded replies to request `seq`, up to its ack or NLMSG_DONE; with `keep`, only the
        messages it accepts (given the buffer and the message's offset: decoding is most of a
        dump's cost, and most routes of a netns are the kernel's own)."""
        interrupted = False
        while True:
            data, _, msg_flags, _ = self.sock.recvmsg(_RECV_SIZE)
            if msg_flags & socket.MSG_TRUNC:
                raise OSError(errno.EMSGSIZE, "netlink reply truncated")
            offset = 0
            while offset + 16 <= len(data):
                length, msg_type, flags, msg_seq, _ = struct.unpack_from(NLMSGHDR, data, offset)
                if length < 16:
                    raise OSError(errno.EBADMSG, "malformed netlink message")
                here, offset = offset, offset + ((length + 3) & ~3)
                if msg_seq != seq:
                    continue  # the tail of an abandoned request
                interrupted = interrupted or bool(flags & NLM_F_DUMP_INTR)
                if msg_type == NLMSG_ERROR:
                    err = self.rt.nlmsgerr(data, offset=here)
                    err.decode()
                    if err["error"]:
                        raise self.rt.NetlinkError(-err["error"], os.strerror(-err["error"]))
                    return
                if msg_type == NLMSG_DONE:
                    if interrupted:
                        raise DumpInterrupted
                    return
                if keep is not None and not keep(data, here):
                    continue
                msg = cls(data, offset=here)
                msg.decode()
                yield msg

    def request(self, msg: Any, msg_type: int, flags: int = 0, ok: int = 0) -> None:
        """Send one change and wait for its ack; the error `ok` (EEXIST: there already) is done."""
        seq = self._send(msg, msg_type, NLM_F_REQUEST | NLM_F_ACK | flags)
        try:
            for _ in self._replies(seq, type(msg)):
                pass
        except self.rt.NetlinkError as exc:
            if not ok or getattr(exc, "code", None) != ok:
                raise

    def dump(
        self, cls: Any, msg_type: int, keep: Callable[[bytes, int], bool] | None = None, **fields: int
    ) -> list[Any]:
        """Everything the kernel lists for `msg_type` (that `keep` accepts, see _replies); an
        interrupted dump is retried."""
        for _ in range(DUMP_TRIES):
            msg = cls()
            msg["family"] = socket.AF_UNSPEC  # pyroute2 defaults some classes to AF_INET
            for name, value in fields.items():
                msg[name] = value
            seq = self._send(msg, msg_type, NLM_F_REQUEST | NLM_F_DUMP)
            try:
                return list(self._replies(seq, cls, keep))
            except DumpInterrupted:
                continue
            except self.rt.NetlinkError as exc:
                if getattr(exc, "code", None) not in (errno.EINTR, errno.EBUSY, errno.EAGAIN):
                    raise
        raise TryAgainError(
            "the container's addresses and routes kept changing while being read",
            f"{DUMP_TRIES} netlink dumps in a row were interrupted; try again later",
        )
