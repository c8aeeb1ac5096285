"""Turn a validated configuration into the ordered list of writes. Pure: no kernel, no root.

ADD, CHECK and the `explain` operator command share this, so what is checked is exactly what
was written.
"""

from __future__ import annotations

from .keys import display
from .linkstate import BOUNCE_PARAMS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .config import Config, Entry


class Write:
    """One value to write at one path, in declared order."""

    __slots__ = ("entry", "parts", "ifname", "needs_bounce")

    def __init__(self, entry: Entry, parts: tuple[str, ...], ifname: str | None, needs_bounce: bool) -> None:
        self.entry = entry
        self.parts = parts
        self.ifname = ifname
        self.needs_bounce = needs_bounce

    @property
    def value(self) -> str:
        return self.entry.value

    @property
    def name(self) -> str:
        """The concrete key, as sysctl(8) would print it."""
        return display(self.parts)

    def describe(self) -> str:
        if self.name == self.entry.key.text:
            return self.name
        return f"{self.name} (from {self.entry.key.text!r})"

    def __repr__(self) -> str:
        return f"Write({self.name}={self.value!r})"


class Plan:
    __slots__ = ("writes", "ifnames", "bounce_ifnames", "link_bounce")

    def __init__(self, writes: list[Write], ifnames: list[str], bounce_ifnames: list[str], link_bounce: str) -> None:
        self.writes = writes
        self.ifnames = ifnames
        # Interfaces whose link must be down while the writes happen (when they arrive up).
        self.bounce_ifnames = bounce_ifnames
        self.link_bounce = link_bounce


def build_plan(config: Config, ifnames: list[str]) -> Plan:
    """Expand every entry, in declared order, for every container-side interface."""
    writes: list[Write] = []
    for entry in config.entries:
        key = entry.key
        if not key.per_interface:
            writes.append(Write(entry, key.parts, None, False))
            continue
        for ifname in ifnames:
            needs = key.param in BOUNCE_PARAMS
            writes.append(Write(entry, key.expand(ifname), ifname, needs))
    if config.link_bounce == "always":
        bounce = list(ifnames)
    elif config.link_bounce == "never":
        bounce = []
    else:
        bounce = [i for i in ifnames if any(w.needs_bounce and w.ifname == i for w in writes)]
    return Plan(writes, list(ifnames), bounce, config.link_bounce)
