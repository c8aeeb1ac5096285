"""The only module that opens /proc/sys: resolve, write, read back, journal, roll back.

Called inside the container's netns (netns.NetnsEntered): /proc/sys/net shows the network
namespace of the task that looks a path up. Paths are built here, from validated components,
and only below /proc/sys/net; the last component is opened with O_NOFOLLOW.

A write may change other values than its own (params.companions: the kernel propagates it, or
shows the setting under a second name); resolve() reads those too, the journal keeps them, and
a rollback puts every one back.
"""

from __future__ import annotations

import _socket
import errno
import os

from . import params
from .errors import CniError, ConfigError, ErrorCode, RollbackError, SysctlNotFoundError, WriteRefusedError
from .keys import display, normalise_value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from .plan import Write

    Hook = Callable[[str, object], None]

ROOT = "/proc/sys"
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_WRITE_FLAGS = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_ROLLBACK_PASSES = 3


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


def devices() -> list[str]:
    """The network devices of the current netns (lo included)."""
    return [name for _, name in _socket.if_nameindex()]


class Value:
    """One /proc/sys value and what it held before the ADD (None: unreadable, e.g. an unset
    stable_secret, which the kernel cannot be made to forget)."""

    __slots__ = ("parts", "path", "old")

    def __init__(self, parts: tuple[str, ...], path: str, old: str | None) -> None:
        self.parts = parts
        self.path = path
        self.old = old

    @property
    def name(self) -> str:
        return display(self.parts)

    def to_json(self) -> list[object]:
        return [list(self.parts), self.old]


class Resolved:
    """A planned write, with its own value and those it may change besides."""

    __slots__ = ("write", "value", "companions")

    def __init__(self, write: Write, value: Value, companions: list[Value]) -> None:
        self.write = write
        self.value = value
        self.companions = companions

    @property
    def path(self) -> str:
        return self.value.path

    @property
    def old(self) -> str | None:
        return self.value.old


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


def _companions(parts: tuple[str, ...], names: list[str]) -> list[Value]:
    out = []
    for other in params.companions(parts, names):
        path = path_of(other)
        try:
            out.append(Value(other, path, read_value(path)))
        except OSError:
            continue  # a device without that family, a setting this kernel lacks
    return out


def resolve(writes: list[Write]) -> list[Resolved]:
    """Check every path exists, is readable and writable, and record its current value and
    those of its companions. Nothing is written here; every problem is reported together."""
    out: list[Resolved] = []
    missing: list[str] = []
    unusable: list[str] = []
    host_only: list[str] = []
    names: list[str] | None = None
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
        if names is None:
            names = devices()
        out.append(Resolved(write, Value(write.parts, path, old), _companions(write.parts, names)))
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


def same_value(parts: tuple[str, ...], found: str, wanted: str) -> bool:
    """Whether `found` is what the kernel stores for a write of `wanted` (it may round)."""
    found_n = normalise_value(found)
    if any(normalise_value(v) == found_n for v in params.canonical_values(parts, normalise_value(wanted))):
        return True
    if parts[-1] == "stable_secret":
        try:
            return _socket.inet_pton(_socket.AF_INET6, found.strip()) == _socket.inet_pton(
                _socket.AF_INET6, wanted.strip()
            )
        except OSError:
            return False
    return False


class Journal:
    """What the writes made so far changed, for rollback in reverse order."""

    def __init__(self) -> None:
        self.done: list[Resolved] = []

    def values(self) -> list[Value]:
        """Every value to put back, last write first, each write's own before its companions."""
        out: list[Value] = []
        for item in reversed(self.done):
            out.append(item.value)
            out += item.companions
        return out


def restore(values: Iterable[Value], log: Callable[[str], None]) -> None:
    """Put every value back to its `old`. A write can change others (params.companions), so
    this converges: values that differ are written back, then all are read again, a few passes
    at most. Raises RollbackError (105) naming what is still not as it was."""
    values = list(values)
    failed: dict[str, str] = {}
    for _ in range(_ROLLBACK_PASSES):
        failed = {}
        changed = False
        for value in values:
            if value.old is None:
                continue
            try:
                if normalise_value(read_value(value.path)) == normalise_value(value.old):
                    continue
                write_value(value.path, value.old)
                changed = True
                log(f"restored {value.name} = {value.old!r}")
            except FileNotFoundError:
                continue  # gone with its device: nothing left to restore
            except OSError as exc:
                failed[value.name] = f"{value.name} back to {value.old!r}: {exc.strerror}"
        if not changed:
            break
    for value in values:
        try:
            now = read_value(value.path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            if value.old is None and exc.errno == errno.EIO:
                continue  # unset before, unset now (stable_secret)
            failed.setdefault(value.name, f"{value.name}: cannot read back ({exc.strerror})")
            continue
        if value.old is None:
            failed.setdefault(value.name, f"{value.name}: was unset, and the kernel cannot unset it")
        elif normalise_value(now) != normalise_value(value.old):
            failed.setdefault(value.name, f"{value.name} is {now!r}, was {value.old!r}")
    if failed:
        raise RollbackError("rollback failed: " + "; ".join(failed.values()), "the netns is not as it was found")


def apply(resolved: Iterable[Resolved], journal: Journal, hook: Hook, log: Callable[[str], None]) -> None:
    """Write each value in order, journaling first. Raises WriteRefusedError on the first
    refusal; the caller rolls back. Logs read-backs the kernel stored differently."""
    for item in resolved:
        write = item.write
        journal.done.append(item)
        try:
            hook("write", write)
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
        if normalise_value(now) != normalise_value(write.value):
            how = "rounded to its clock tick" if same_value(write.parts, now, write.value) else "canonicalised"
            log(f"{write.name}: wrote {write.value!r}, the kernel {how} it to {now!r}")


def mismatches(writes: Iterable[Write]) -> list[str]:
    """What of `writes` the netns does not hold now (ADD's last check, and CHECK's)."""
    out: list[str] = []
    for write in writes:
        path = path_of(write.parts)
        try:
            found = read_value(path)
        except OSError as exc:
            out.append(f"{write.describe()}: cannot read ({exc.strerror})")
            continue
        if not same_value(write.parts, found, write.value):
            out.append(f"{write.describe()} is {found!r}, expected {write.value!r}")
    return out
