"""Fault injection through the plugin's public seams (cni_sysctl.ports.Ports): a netlink socket
that fails the requests a rule picks, and a hook that follows the steps of an ADD and can
raise at one of them.

The socket wraps the kernel's real one: a request a rule picks is not sent, and the kernel's
answer is replaced by an error of the rule's choice (what the kernel would say had it refused),
or the rule raises an exception of its own (a bug or an interrupt in the middle of a step);
dumps can be flagged as interrupted (NLM_F_DUMP_INTR, as the kernel flags a dump that changed
while it was read). Nothing here patches a name of the plugin.
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Callable
from typing import Any

from cni_sysctl import rtnl, rtnlmsg

HEADER = struct.Struct("=IHHII")  # length, type, flags, seq, pid


def decode(data: bytes) -> tuple[int, int, Any]:
    """(type, flags, decoded message or None) of a request the plugin sends."""
    _, msg_type, flags, _, _ = HEADER.unpack_from(data)
    classes = rtnlmsg.load()
    cls = {
        rtnl.RTM_NEWADDR: classes.ifaddrmsg,
        rtnl.RTM_DELADDR: classes.ifaddrmsg,
        rtnl.RTM_NEWROUTE: classes.rtmsg,
        rtnl.RTM_NEWNEIGH: classes.ndmsg,
    }.get(msg_type)
    msg = None
    if cls is not None and flags & rtnl.NLM_F_DUMP != rtnl.NLM_F_DUMP:
        msg = cls(data)
        msg.decode()
    return msg_type, flags, msg


def attr(msg: Any, name: str) -> Any:
    for slot in msg["attrs"]:
        if slot[0] == name:
            return slot[1]
    return None


# A rule sees (msg_type, flags, decoded message) and returns None (send it), an errno (refuse
# it with that error), or an exception to raise.
Rule = Callable[[int, int, Any], "int | BaseException | None"]


class FaultySocket:
    """A NETLINK_ROUTE socket whose requests pass through `rule` while `armed`."""

    def __init__(self, rule: Rule, fired: list[str]) -> None:
        self.real = rtnl.kernel_socket()
        self.rule = rule
        self.fired = fired
        self.armed = True
        self.interrupt_dumps = False
        self._queued: list[bytes] = []
        self._interrupted: set[int] = set()

    def setsockopt(self, level: int, option: int, value: int, /) -> None:
        self.real.setsockopt(level, option, value)

    def bind(self, address: tuple[int, int], /) -> None:
        self.real.bind(address)

    def settimeout(self, timeout: float | None, /) -> None:
        self.real.settimeout(timeout)

    def close(self) -> None:
        self.real.close()

    def send(self, data: bytes, /) -> int:
        _, msg_type, flags, seq, _ = HEADER.unpack_from(data)
        is_dump = flags & rtnl.NLM_F_DUMP == rtnl.NLM_F_DUMP
        if self.armed and is_dump and self.interrupt_dumps:
            self._interrupted.add(seq)
            self.fired.append(f"interrupted dump {msg_type}")
        elif self.armed and not is_dump:
            verdict = self.rule(*decode(data))
            if isinstance(verdict, BaseException):
                self.fired.append(f"raised {verdict!r} on {msg_type}")
                raise verdict
            if verdict is not None:
                self.fired.append(f"{errno.errorcode.get(verdict, 'ack')} on {msg_type}:{flags:#x}")
                error = struct.pack("=i", -verdict) + data[:16]
                self._queued.append(HEADER.pack(16 + len(error), rtnl.NLMSG_ERROR, 0, seq, 0) + error)
                return len(data)
        return int(self.real.send(data))

    def recvmsg(self, bufsize: int, /) -> tuple[bytes, list[Any], int, Any]:
        if self._queued:
            return self._queued.pop(0), [], 0, None
        data, ancdata, flags, address = self.real.recvmsg(bufsize)
        out = bytearray(data)
        offset = 0
        while offset + 16 <= len(out):
            length, _, msg_flags, seq, _ = HEADER.unpack_from(out, offset)
            if seq in self._interrupted:
                struct.pack_into("=H", out, offset + 6, msg_flags | rtnl.NLM_F_DUMP_INTR)
            offset += (length + 3) & ~3 if length >= 16 else len(out)
        return bytes(out), ancdata, flags, address


class Faults:
    """The ports of a faulty ADD: sockets made with `rule`, armed while the ADD is at one of
    the steps `at` (transaction.STEPS, plus "rollback"); `raise_at` makes the hook itself raise
    at a step (k-th time it is reached, counting from 0)."""

    def __init__(
        self,
        rule: Rule = lambda *_: None,
        at: tuple[str, ...] = ("up",),
        raise_at: tuple[str, int, BaseException] | None = None,
        on_step: Callable[[str, object], None] | None = None,
    ) -> None:
        self.rule = rule
        self.at = at
        self.raise_at = raise_at
        self.on_step = on_step
        self.steps: list[str] = []
        self.fired: list[str] = []
        self.sockets: list[FaultySocket] = []
        self.interrupt_dumps = False
        self._count: dict[str, int] = {}

    @property
    def current(self) -> str | None:
        return self.steps[-1] if self.steps else None

    def socket(self) -> FaultySocket:
        sock = FaultySocket(self.rule, self.fired)
        sock.armed = self.current in self.at
        sock.interrupt_dumps = self.interrupt_dumps
        self.sockets.append(sock)
        return sock

    def hook(self, step: str, detail: object) -> None:
        self.steps.append(step)
        for sock in self.sockets:
            sock.armed = step in self.at
            sock.interrupt_dumps = self.interrupt_dumps
        if self.on_step is not None:
            self.on_step(step, detail)
        seen = self._count.get(step, 0)
        self._count[step] = seen + 1
        if self.raise_at is not None and self.raise_at[:2] == (step, seen):
            self.fired.append(f"raised at {step} #{seen}")
            raise self.raise_at[2]

    def ports(self, inflight_dir: str) -> Any:
        from cni_sysctl.ports import Ports

        return Ports(rtnl_socket=self.socket, hook=self.hook, inflight_dir=inflight_dir)


def einval() -> OSError:
    return OSError(errno.EINVAL, os.strerror(errno.EINVAL))
