"""The only module that opens /proc/sys: resolve, write, read back, journal, roll back.

Called inside the container's netns (netns.NetnsEntered): /proc/sys/net shows the network
namespace of the task that looks a path up. Paths are built here, from validated components,
and only below /proc/sys/net; the last component is opened with O_NOFOLLOW.
"""

from __future__ import annotations

import errno
import os

from .errors import CniError, ConfigError, ErrorCode, RollbackError, SysctlNotFoundError, WriteRefusedError
from .keys import normalise_value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .plan import Write

ROOT = "/proc/sys"
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_WRITE_FLAGS = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC


def path_of(parts: tuple[str, ...]) -> str:
    """The /proc/sys path of validated components; refuses anything outside /proc/sys/net."""
    if not parts or parts[0] != "net" or any(p in ("", ".", "..") or "/" in p or "\x00" in p for p in parts):
        raise CniError(f"refusing to build a sysctl path from {parts!r}")
    return ROOT + "/" + "/".join(parts)


def read_value(path: str) -> str:
    fd = os.open(path, _READ_FLAGS)
    try:
        return os.read(fd, 4096).decode(errors="replace").rstrip("\n")
    finally:
        os.close(fd)


def write_value(path: str, value: str) -> None:
    fd = os.open(path, _WRITE_FLAGS)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


class Resolved:
    """A planned write with its path and the value found there (None: unreadable, e.g. an unset
    stable_secret, which the kernel cannot be made to forget)."""

    __slots__ = ("write", "path", "old")

    def __init__(self, write: Write, path: str, old: str | None) -> None:
        self.write = write
        self.path = path
        self.old = old


def _suggest(path: str, parts: tuple[str, ...], write: Write) -> str:
    parent = os.path.dirname(path)
    if write.ifname is not None and not os.path.isdir(os.path.dirname(parent) + "/" + write.ifname):
        family = parts[1]
        return (
            f"interface {write.ifname!r} has no {family} sysctls in the container netns "
            f"({family} disabled on it, or the interface is gone)"
        )
    try:
        entries = os.listdir(parent)
    except OSError:
        return "its directory does not exist in the container netns"
    import difflib

    close = difflib.get_close_matches(parts[-1], entries, n=1, cutoff=0.75)
    if close:
        return f"did you mean {close[0]!r}?"
    if write.ifname is None:
        return (
            "unknown, or not network-namespaced on this kernel (such sysctls exist only in the "
            "host netns, which a network plugin must not change)"
        )
    return "unknown parameter for this kernel"


def resolve(writes: list[Write]) -> list[Resolved]:
    """Check every path exists, is readable and writable, and record its current value.

    Nothing is written here; every problem is reported together.
    """
    out: list[Resolved] = []
    missing: list[str] = []
    unusable: list[str] = []
    host_only: list[str] = []
    for write in writes:
        path = path_of(write.parts)
        try:
            old: str | None = read_value(path)
        except FileNotFoundError:
            missing.append(f"{write.describe()}: {_suggest(path, write.parts, write)}")
            continue
        except IsADirectoryError:
            unusable.append(f"{write.describe()}: is a directory, not a sysctl")
            continue
        except OSError as exc:
            if exc.errno == errno.EIO:
                old = None  # e.g. stable_secret before it is first set
            elif exc.errno in (errno.EACCES, errno.EPERM):
                unusable.append(f"{write.describe()}: write-only (an action, not a setting)")
                continue
            else:
                raise CniError(f"cannot read {write.describe()}: {exc.strerror}", code=ErrorCode.IO_FAILURE) from None
        if not os.access(path, os.W_OK):
            host_only.append(f"{write.describe()}: read-only in the container netns")
            continue
        out.append(Resolved(write, path, old))
    if missing or host_only:
        raise SysctlNotFoundError(
            "sysctl not found in the container netns: " + "; ".join(missing + host_only),
            "nothing was written; check the spelling against /proc/sys/net inside a container. A value "
            "that is read-only there is host-wide (not network-namespaced): the kernel shows it to "
            "containers but only the host may change it",
        )
    if unusable:
        raise ConfigError("sysctl cannot be set: " + "; ".join(unusable), "nothing was written")
    return out


class Journal:
    """Old values of the writes made so far, for rollback in reverse order."""

    def __init__(self) -> None:
        self.done: list[Resolved] = []

    def rollback(self) -> list[str]:
        """Restore every journaled value, last first; returns the notes of what was done.

        Raises RollbackError (105) naming each value that could not be restored.
        """
        notes: list[str] = []
        failed: list[str] = []
        for item in reversed(self.done):
            if item.old is None:
                failed.append(f"{item.write.name}: had no readable value to restore")
                continue
            try:
                write_value(item.path, item.old)
                notes.append(f"restored {item.write.name} = {item.old!r}")
            except OSError as exc:
                failed.append(f"{item.write.name} back to {item.old!r}: {exc.strerror}")
        self.done.clear()
        if failed:
            raise RollbackError("rollback failed: " + "; ".join(failed), "the netns is not as it was found")
        return notes


def apply(resolved: list[Resolved], journal: Journal) -> list[str]:
    """Write every value in order, journaling first. Raises WriteRefusedError on the first
    refusal; the caller rolls back. Returns notes for read-backs that differ (the kernel may
    canonicalise a value)."""
    notes: list[str] = []
    for item in resolved:
        write = item.write
        journal.done.append(item)
        try:
            write_value(item.path, write.value)
        except OSError as exc:
            journal.done.pop()
            reason = "the kernel refused the value" if exc.errno == errno.EINVAL else exc.strerror
            raise WriteRefusedError(
                f"cannot set {write.describe()} to {write.value!r}: {reason}",
                f"errno {errno.errorcode.get(exc.errno or 0, exc.errno)}; every earlier write of this ADD "
                "was rolled back; see the kernel's ip-sysctl documentation for the accepted range",
            ) from None
        try:
            now = read_value(item.path)
        except OSError:
            continue
        if not same_value(write.parts[-1], now, write.value):
            notes.append(f"{write.name}: wrote {write.value!r}, the kernel reads back {now!r}")
    return notes


def same_value(param: str, found: str, wanted: str) -> bool:
    if normalise_value(found) == normalise_value(wanted):
        return True
    if param == "stable_secret":
        import socket

        try:
            return socket.inet_pton(socket.AF_INET6, found.strip()) == socket.inet_pton(socket.AF_INET6, wanted.strip())
        except OSError:
            return False
    return False


def mismatches(writes: list[Write]) -> list[str]:
    """CHECK: every configured value that differs from what the netns holds now."""
    out: list[str] = []
    for write in writes:
        path = path_of(write.parts)
        try:
            found = read_value(path)
        except OSError as exc:
            out.append(f"{write.describe()}: cannot read ({exc.strerror})")
            continue
        if not same_value(write.parts[-1], found, write.value):
            out.append(f"{write.describe()} is {found!r}, expected {write.value!r}")
    return out
