"""Enter a network namespace, in exactly one context manager.

The namespace file is opened read-only and never created (pyroute2's helpers and
`IPRoute(netns=...)` default to O_CREAT). setns(2) changes the namespace of the calling
thread only; the plugin is single-threaded, and the original namespace is restored in
`__exit__`. If that restore fails the process must not go on: it would run in the
container's namespace, so the error raised is fatal and never swallowed.
"""

from __future__ import annotations

import os

from .errors import CniError, ErrorCode, NetnsNotFoundError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType
    from typing import Any

CLONE_NEWNET = 0x40000000
_SELF = "/proc/thread-self/ns/net"


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


def _setns(fd: int, nstype: int) -> None:
    setns = getattr(os, "setns", None)  # Python >= 3.12
    if setns is not None:
        setns(fd, nstype)
        return
    if _libc_setns()(fd, nstype) != 0:
        err = _errno()
        raise OSError(err, os.strerror(err))


class FatalNetnsError(CniError):
    """Returning to the original netns failed; nothing else may run."""

    code = ErrorCode.INTERNAL


class NetnsEntered:
    """`with NetnsEntered(path):` runs the block inside the netns at `path`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._origin = -1

    def __enter__(self) -> NetnsEntered:
        try:
            target = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NetnsNotFoundError(
                f"network namespace {self.path} does not exist",
                "CNI_NETNS names no file; the container's netns is gone or was never created",
            ) from None
        except OSError as exc:
            raise CniError(
                f"cannot open network namespace {self.path}: {exc.strerror}",
                code=ErrorCode.IO_FAILURE,
            ) from None
        try:
            own = os.stat(_SELF)
            st = os.fstat(target)
            if (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino):
                raise CniError(
                    f"CNI_NETNS {self.path} is the plugin's own network namespace",
                    "refusing to change sysctls of the namespace the runtime runs in (the host)",
                    code=ErrorCode.INVALID_ENVIRONMENT,
                )
            self._origin = os.open(_SELF, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(target, CLONE_NEWNET)
            except OSError as exc:
                os.close(self._origin)
                self._origin = -1
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
            _setns(self._origin, CLONE_NEWNET)
        except OSError as err:
            raise FatalNetnsError("cannot return to the original network namespace", str(err)) from err
        finally:
            os.close(self._origin)
            self._origin = -1
