"""Turn a validated configuration into the ordered list of writes. Pure: no kernel, no root.

ADD, CHECK and the `explain` operator command share this, so what is checked is exactly what
was written and `explain` shows what ADD does. Besides the writes, a plan says which links are
set down around them (the bounce), which links the writes may strip of addresses or routes
(snapshot before, restore on failure), and which writes wait until their link is ready.
"""

from __future__ import annotations

from . import params
from .keys import display

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from .config import Config, Entry, LinkBounce


class Write:
    """One value to write at one path, in declared order."""

    __slots__ = ("entry", "parts", "ifname", "needs_bounce", "after_ready")

    def __init__(self, entry: Entry, parts: tuple[str, ...], ifname: str | None) -> None:
        self.entry = entry
        self.parts = parts
        self.ifname = ifname
        self.needs_bounce = ifname is not None and entry.key.param in params.BOUNCE_PARAMS
        # the kernel overwrites it when the link becomes ready: written once it is
        self.after_ready = params.reset_when_ready(parts)

    @property
    def value(self) -> str:
        return self.entry.value

    @property
    def name(self) -> str:
        """The concrete key, as sysctl(8) would print it."""
        return display(self.parts)

    @property
    def device(self) -> str | None:
        """The device a per-device key names (an interface, lo, all or default)."""
        if len(self.parts) == 5 and self.parts[2] in ("conf", "neigh"):
            return self.parts[3]
        return None

    def describe(self) -> str:
        if self.name == self.entry.key.text:
            return self.name
        return f"{self.name} (from {self.entry.key.text!r})"

    def __repr__(self) -> str:
        return f"Write({self.name}={self.value!r})"


class Plan:
    __slots__ = ("writes", "ifnames", "bounce_ifnames", "link_bounce", "down", "snapshot_ifnames", "snapshot_all")

    def __init__(
        self,
        writes: list[Write],
        ifnames: list[str],
        bounce_ifnames: list[str],
        link_bounce: LinkBounce,
        down: list[str],
        snapshot_ifnames: list[str],
        snapshot_all: bool,
    ) -> None:
        self.writes = writes
        self.ifnames = ifnames
        # Links set down while the writes happen (or found down: brought up after them).
        self.bounce_ifnames = bounce_ifnames
        self.link_bounce = link_bounce
        self.down = down  # container links found down
        # Links whose addresses and routes the writes or the bounce may change; every link of
        # the netns when a write reaches them all (net.ipv6.conf.all.disable_ipv6).
        self.snapshot_ifnames = snapshot_ifnames
        self.snapshot_all = snapshot_all

    @property
    def needs_links(self) -> bool:
        """Whether applying the plan needs netlink (a snapshot of links)."""
        return bool(self.snapshot_ifnames) or self.snapshot_all

    def final(self) -> list[Write]:
        """The writes that decide each value: the last one to each path, in declared order."""
        last = {write.parts: write for write in self.writes}
        return [write for write in self.writes if last[write.parts] is write]


def build_plan(config: Config, ifnames: list[str], down: Iterable[str] = ()) -> Plan:
    """Expand every entry, in declared order, for every container-side interface. `down` names
    the container links found down (ADD learns it inside the netns; `explain` assumes none):
    whatever the mode, such a link is written while down and brought up after."""
    writes: list[Write] = []
    for entry in config.entries:
        key = entry.key
        if not key.per_interface:
            writes.append(Write(entry, key.parts, None))
            continue
        for ifname in ifnames:
            writes.append(Write(entry, key.expand(ifname), ifname))
    down = [i for i in ifnames if i in set(down)]
    if config.link_bounce == "always":
        bounce = list(ifnames)
    elif config.link_bounce == "never":
        bounce = []
    else:
        bounce = [i for i in ifnames if any(w.needs_bounce and w.ifname == i for w in writes)]
    bounce += [i for i in down if i not in bounce]
    snapshot = list(bounce)
    snapshot_all = False
    for write in writes:
        if not params.side_effect(write.parts):
            continue
        if params.side_effect_everywhere(write.parts):
            snapshot_all = True
        elif write.device not in (None, "default") and write.device not in snapshot:
            snapshot.append(str(write.device))
    return Plan(writes, list(ifnames), bounce, config.link_bounce, down, snapshot, snapshot_all)
