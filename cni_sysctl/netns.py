"""Enter a network namespace, in exactly one context manager.

The namespace file is opened read-only and never created (pyroute2's helpers and
`IPRoute(netns=...)` default to O_CREAT), and only when it is a regular file: a netns file,
bind-mounted or under /proc/PID/ns, is one; a FIFO would block the open and some devices act
when opened. setns(2) changes the namespace of the calling thread only, and the original
namespace is restored in `__exit__`. If that restore fails the thread must not go on: it would
run in the container's namespace, so the error raised is fatal and never swallowed.

Where the netns comes from is a port: the direct plugin opens CNI_NETNS itself (PathNetns);
the daemon enters the descriptor the shim opened and passed over its socket, and compares it
with the shim's own netns (daemon.py).
"""

from __future__ import annotations

import errno
import os
import stat

from .errors import CniError, ErrorCode, FatalNetnsError, NetnsNotFoundError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType
    from typing import Any, Protocol

    class NetnsSource(Protocol):
        """Where the netns of a call comes from."""

        def open(self, path: str) -> int:
            """A new descriptor of the netns CNI_NETNS names (the caller closes it)."""

        def forbidden(self) -> list[tuple[int, int]]:
            """identity() of the namespaces never to be entered: the runtime's (the host's), and
            the plugin's own."""


CLONE_NEWNET = 0x40000000
SELF = "/proc/thread-self/ns/net"
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY

_SETNS: list[Callable[[int, int], None]] = []


def _libc_setns() -> Callable[[int, int], int]:
    """libc's setns(2) for Python < 3.12 (which lacks os.setns).

    Built on the _ctypes C module directly: the ctypes package's Python layer costs ~2.5 ms of
    import on every plugin start, this ~0.5 ms (README, "Performance"). Falls back to ctypes if
    the private C API ever changes shape.
    """
    try:
        import _ctypes

        simple: Any = _ctypes._SimpleCData  # typed loosely: stubs make it generic, the C type is not
        funcptr: Any = _ctypes.CFuncPtr

        class _CInt(simple):  # type: ignore[misc]
            _type_ = "i"

        class _Func(funcptr):  # type: ignore[misc]
            _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
            _restype_ = _CInt

        class _Libc:
            _handle = _ctypes.dlopen(None, os.RTLD_NOW)  # type: ignore[arg-type]  # NULL: the program and libc

        func: Callable[[int, int], int] = _Func(("setns", _Libc()))
    except (ImportError, AttributeError, TypeError, OSError):
        import ctypes

        func = ctypes.CDLL(None, use_errno=True).setns
    return func


def _errno() -> int:
    try:
        import _ctypes

        return int(_ctypes.get_errno())
    except (ImportError, AttributeError):
        import ctypes

        return ctypes.get_errno()


def setns_function() -> Callable[[int, int], None]:
    """setns(fd, nstype), raising OSError: os.setns on Python >= 3.12, else libc's, built once."""
    if not _SETNS:
        native = getattr(os, "setns", None)
        if native is not None:
            _SETNS.append(native)
        else:
            libc = _libc_setns()

            def setns(fd: int, nstype: int) -> None:
                if libc(fd, nstype) != 0:
                    err = _errno()
                    raise OSError(err, os.strerror(err))

            _SETNS.append(setns)
    return _SETNS[0]


def identity(fd_or_path: int | str) -> tuple[int, int]:
    """(st_dev, st_ino) of a namespace file: equal for the same namespace."""
    st = os.fstat(fd_or_path) if isinstance(fd_or_path, int) else os.stat(fd_or_path)
    return st.st_dev, st.st_ino


SO_NETNS_COOKIE = 71  # asm-generic/socket.h, Linux >= 5.14


def cookie() -> int | None:
    """The current netns's cookie: a number the kernel never gives another netns while it runs
    (inode numbers of dead namespaces are reused; cookies are not). None on older kernels."""
    import _socket

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
    try:
        return int.from_bytes(sock.getsockopt(_socket.SOL_SOCKET, SO_NETNS_COOKIE, 8), "little")
    except OSError:
        return None
    finally:
        sock.close()


def open_netns(path: str) -> int:
    """CNI_NETNS opened read-only, never created, only if it is a regular file (the daemon's
    shim does the same steps: docs/daemon.md)."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise not_a_netns(path)
        return os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise open_error(path, exc.errno or 0) from None


def open_error(path: str, err: int) -> CniError:
    """Why CNI_NETNS could not be opened (stat or open failed with errno `err`)."""
    if err == errno.ENOENT:
        return NetnsNotFoundError(
            f"network namespace {path} does not exist",
            "CNI_NETNS names no file; the container's netns is gone or was never created",
        )
    return CniError(f"cannot open network namespace {path}: {os.strerror(err)}", code=ErrorCode.IO_FAILURE)


def not_a_netns(path: str) -> CniError:
    return CniError(
        f"CNI_NETNS {path} is not a network namespace file",
        "CNI_NETNS must name a network namespace file such as /var/run/netns/NAME or /proc/PID/ns/net",
        code=ErrorCode.INVALID_ENVIRONMENT,
    )


class PathNetns:
    """The direct plugin's netns source: it opens CNI_NETNS itself, and runs in the host's."""

    def open(self, path: str) -> int:
        return open_netns(path)

    def forbidden(self) -> list[tuple[int, int]]:
        return [identity(SELF)]


class NetnsEntered:
    """`with NetnsEntered(path):` runs the block inside the netns at `path`."""

    def __init__(self, path: str, source: NetnsSource | None = None) -> None:
        self.path = path
        self.source: NetnsSource = source or PathNetns()
        self._origin = -1

    def __enter__(self) -> NetnsEntered:
        target = self.source.open(self.path)
        try:
            if identity(target) in self.source.forbidden():
                raise CniError(
                    f"CNI_NETNS {self.path} is the plugin's own network namespace",
                    "refusing to change sysctls of the namespace the runtime runs in (the host)",
                    code=ErrorCode.INVALID_ENVIRONMENT,
                )
            self._origin = os.open(SELF, os.O_RDONLY | os.O_CLOEXEC)
            try:
                setns_function()(target, CLONE_NEWNET)
            except OSError as exc:
                os.close(self._origin)
                self._origin = -1
                if exc.errno == errno.EINVAL:  # not a netns file (a regular file, a mount or user ns)
                    raise not_a_netns(self.path) from None
                raise CniError(
                    f"cannot enter network namespace {self.path}: {exc.strerror}",
                    "CNI_NETNS must name a network namespace file such as /var/run/netns/NAME or /proc/PID/ns/net",
                    code=ErrorCode.INVALID_ENVIRONMENT,
                ) from None
        finally:
            os.close(target)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            setns_function()(self._origin, CLONE_NEWNET)
        except OSError as err:
            raise FatalNetnsError("cannot return to the original network namespace", str(err)) from err
        finally:
            os.close(self._origin)
            self._origin = -1
