"""Link state by ioctl: is the link up, set it up, and which parameters need a link bounce.

The cheap part of the link layer, kept apart from link.py's netlink machinery (the Bounce) so
that an ADD without a bounce, CHECK and planning load only this: one ioctl per call, no
pyroute2 (README, "Performance"). Runs in the calling thread's current netns.
"""

from __future__ import annotations

import _socket as socket  # the C module behind `socket`, whose Python layer costs ~3 ms of imports
import errno
import struct

from .errors import LinkError, LinkNotFoundError

# Per-interface parameters (net.ipv6.conf.IF.* and net.ipv4.conf.IF.*) that act only at link-up
# or inet6 device setup: written while the link is up, they leave state derived from the old
# value in place, or miss the one event that applies them. docs/link-bounce.md: one reason each.
BOUNCE_PARAMS = frozenset(
    (
        # link-local address generation (addrconf_addr_gen at NETDEV_UP)
        "addr_gen_mode",
        "stable_secret",
        # router solicitation at link-up, and RA-learned state that only a down flushes
        "accept_ra",
        "accept_ra_defrtr",
        "accept_ra_from_local",
        "accept_ra_min_hop_limit",
        "accept_ra_min_lft",
        "accept_ra_mtu",
        "accept_ra_pinfo",
        "accept_ra_rt_info_max_plen",
        "accept_ra_rt_info_min_plen",
        "accept_ra_rtr_pref",
        "ra_defrtr_metric",
        "ra_honor_pio_life",
        "ra_honor_pio_pflag",
        "autoconf",
        "use_tempaddr",
        "temp_prefered_lft",
        "temp_valid_lft",
        "router_solicitations",
        "router_solicitation_delay",
        "router_solicitation_interval",
        "router_solicitation_max_interval",
        # duplicate address detection of the link-local address at link-up
        "accept_dad",
        "dad_transmits",
        "enhanced_dad",
        "optimistic_dad",
        "use_optimistic",
        # one-shot announcements at link-up
        "ndisc_notify",
        "arp_notify",
    )
)

# Kernel UAPI values (linux/if.h, sockios.h).
IFF_UP = 0x1
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFNAMSIZ = 16
_IFREQ = "16sH22x"  # struct ifreq: ifr_name, ifr_flags, rest of the union (40 bytes)


def _ifreq(ifname: str, flags: int = 0) -> bytes:
    name = ifname.encode()
    if not name or len(name) >= IFNAMSIZ or b"/" in name or b"\0" in name:
        raise LinkNotFoundError(f"interface {ifname!r} not found: not a valid interface name")
    return struct.pack(_IFREQ, name, flags)


def admin_state(ifname: str, want_up: bool | None = None) -> bool:
    """Whether `ifname` is up (IFF_UP) in the current netns; first set it so, if `want_up`."""
    import fcntl

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        try:
            flags: int = struct.unpack(_IFREQ, fcntl.ioctl(sock, SIOCGIFFLAGS, _ifreq(ifname)))[1]
            if want_up is not None and bool(flags & IFF_UP) != want_up:
                flags = flags | IFF_UP if want_up else flags & ~IFF_UP
                fcntl.ioctl(sock, SIOCSIFFLAGS, _ifreq(ifname, flags))
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
    return bool(flags & IFF_UP)


def is_up(ifname: str) -> bool:
    """Whether `ifname` is administratively up (IFF_UP) in the current netns."""
    return admin_state(ifname)


def set_up(ifname: str) -> None:
    """Set `ifname` administratively up; a link already up is left alone."""
    admin_state(ifname, True)
