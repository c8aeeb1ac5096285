"""Link state by ioctl: is the link up, set it up or down, is it ready.

The cheap part of the link layer, kept apart from the netlink machinery (rtnl, snapshot,
bounce) so that an ADD without a bounce and CHECK load only this: one ioctl per call, no
pyroute2 (README, "Performance"). Runs in the calling thread's current netns.
"""

from __future__ import annotations

import _socket as socket  # the C module behind `socket`, whose Python layer costs ~3 ms of imports
import errno
import struct

from .errors import LinkError, LinkNotFoundError
from .request import check_ifname

# Kernel UAPI values (linux/if.h, sockios.h).
IFF_UP = 0x1
IFF_RUNNING = 0x40  # operstate up: the link is ready (carrier, and linkwatch has run)
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
_IFREQ = "16sH22x"  # struct ifreq: ifr_name, ifr_flags, rest of the union (40 bytes)


def _ifreq(ifname: str, flags: int = 0) -> bytes:
    problem = check_ifname(ifname)
    if problem is not None:
        raise LinkNotFoundError(f"interface {ifname!r} not found: not a valid interface name ({problem})")
    return struct.pack(_IFREQ, ifname.encode(), flags)


def flags(ifname: str, want_up: bool | None = None, barrier: bool = False) -> int:
    """The interface flags of `ifname` in the current netns; first set IFF_UP as `want_up`
    says. With `barrier`, the flags are written back unchanged: SIOCSIFFLAGS takes the RTNL
    lock, so every link event the kernel was processing (under that lock) is over when this
    returns."""
    import fcntl

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        try:
            value: int = struct.unpack(_IFREQ, fcntl.ioctl(sock, SIOCGIFFLAGS, _ifreq(ifname)))[1]
            if (want_up is not None and bool(value & IFF_UP) != want_up) or barrier:
                if want_up is not None:
                    value = value | IFF_UP if want_up else value & ~IFF_UP
                fcntl.ioctl(sock, SIOCSIFFLAGS, _ifreq(ifname, value))
        except OSError as exc:
            if exc.errno in (errno.ENODEV, errno.ENXIO):
                raise LinkNotFoundError(
                    f"interface {ifname} not found in the container netns",
                    "it was deleted or renamed, or CNI_IFNAME does not name it",
                ) from None
            what = "read the state of" if want_up is None else f"set {'up' if want_up else 'down'}"
            raise LinkError(f"cannot {what} interface {ifname}: {exc.strerror}") from None
    finally:
        sock.close()
    return value


def admin_state(ifname: str, want_up: bool | None = None) -> bool:
    """Whether `ifname` is up (IFF_UP) in the current netns; first set it so, if `want_up`."""
    return bool(flags(ifname, want_up) & IFF_UP)


def is_up(ifname: str) -> bool:
    """Whether `ifname` is administratively up (IFF_UP) in the current netns."""
    return admin_state(ifname)


def wait_ready(ifnames: list[str], timeout: float) -> list[str]:
    """Wait until every link of `ifnames` is ready (IFF_RUNNING), at most `timeout` seconds;
    returns those that are not. The kernel reports a link up before it is ready: linkwatch
    sets operstate up (and sends NETDEV_CHANGE, which resets some IPv6 settings) later, up to
    about a second after an earlier event of the same link."""
    import time

    deadline = time.monotonic() + timeout
    pending = list(ifnames)
    while True:
        pending = [i for i in pending if not flags(i) & IFF_RUNNING]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.002)
    for ifname in ifnames:
        if ifname not in pending:
            flags(ifname, barrier=True)  # the NETDEV_CHANGE handlers have run
    return pending


def set_up(ifname: str) -> None:
    """Set `ifname` administratively up; a link already up is left alone."""
    admin_state(ifname, True)
