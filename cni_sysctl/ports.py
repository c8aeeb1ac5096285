"""The plugin's injectable ports: where it reaches the kernel and the disk.

The defaults are the real ones. The daemon substitutes where the netns comes from (a
descriptor passed by the shim); the tests substitute the netlink socket (a wrapper that fails
chosen requests), a fault hook called at every step of an ADD, and the directory of in-flight
records.
"""

from __future__ import annotations

DEFAULT_DIR = "/run/cni-sysctl/inflight"  # the in-flight records and locks (inflight.py)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from .netns import NetnsSource
    from .rtnl import SocketFactory

    Hook = Callable[[str, object], None]


def no_hook(step: str, detail: object) -> None:
    """The default fault hook: does nothing."""


class Ports:
    __slots__ = ("netns", "rtnl_socket", "hook", "inflight_dir")

    def __init__(
        self,
        netns: NetnsSource | None = None,
        rtnl_socket: SocketFactory | None = None,
        hook: Hook | None = None,
        inflight_dir: str = DEFAULT_DIR,
    ) -> None:
        self.netns = netns  # None: open CNI_NETNS (netns.PathNetns)
        self.rtnl_socket = rtnl_socket  # None: rtnl.kernel_socket
        # Called as hook(step, detail) before each step of an ADD (transaction.STEPS); an
        # exception it raises is what that step raised.
        self.hook: Hook = hook or no_hook
        self.inflight_dir = inflight_dir

    def with_hook(self, hook: Hook) -> Ports:
        """These ports with another hook (one that calls this one's, e.g. calllog.CallLog's)."""
        return Ports(self.netns, self.rtnl_socket, hook, self.inflight_dir)
