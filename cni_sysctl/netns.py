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
    from types import TracebackType

CLONE_NEWNET = 0x40000000
_SELF = "/proc/thread-self/ns/net"


def _setns(fd: int, nstype: int) -> None:
    setns = getattr(os, "setns", None)  # Python >= 3.12
    if setns is not None:
        setns(fd, nstype)
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
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
