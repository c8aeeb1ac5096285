"""Down, up and restore of the links an ADD changes, over netlink.

Some per-interface sysctls act only when the link comes up (params.BOUNCE_PARAMS); others
change addresses and routes as they are written (params.py). The transaction takes a snapshot of
the links concerned (snapshot.py) and hands it to a Links object::

    links = Links(nl, snapshots, expected)   # inside NetnsEntered(...)
    links.down(["eth0"])   # set down (a link already down stays down)
    ...                    # the caller writes the sysctls
    links.up()             # every bounced link up; put back what the down flushed; verify
    links.restore()        # on failure: every link back to its snapshot; verify

One converge serves both directions: each direction computes, once per link, a Target (up or
down, the addresses, routes and static neighbours it must hold) and converge() brings the link
there. Everything runs in the calling thread's current netns.
"""

from __future__ import annotations

import _socket as socket
import errno

from .errors import LinkError
from .linkstate import admin_state, is_up
from .rtnl import (
    NLM_F_CREATE,
    NLM_F_EXCL,
    NLM_F_REPLACE,
    RTM_DELADDR,
    RTM_NEWADDR,
    RTM_NEWNEIGH,
    RTM_NEWROUTE,
    why,
)
from .snapshot import (
    IFA_F_DADFAILED,
    IFA_F_NODAD,
    SETTABLE_FLAGS,
    dump_addrs,
    dump_routes,
    in_kernel_order,
    missing_expected,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from .result import Expected
    from .rtnl import Rtnl
    from .snapshot import Addr, LinkSnapshot, Neigh, Route


class Target:
    """Where converge() brings one link."""

    __slots__ = ("link", "up", "addrs", "routes", "neighs", "drop_new_link_local")

    def __init__(
        self,
        link: LinkSnapshot,
        up: bool,
        addrs: list[Addr],
        routes: list[Route],
        neighs: list[Neigh],
        drop_new_link_local: bool,
    ) -> None:
        self.link = link
        self.up = up
        self.addrs = addrs
        self.routes = routes
        self.neighs = neighs
        # restore(): a link-local address the new sysctls made goes (addr_gen_mode, ...)
        self.drop_new_link_local = drop_new_link_local


def forward_target(link: LinkSnapshot) -> Target:
    """After the writes: up, with what IPAM and the user gave the link. The kernel's own
    addresses and routes (link-local, SLAAC, prefix routes) are left to the kernel, so that the
    new sysctls shape them."""
    return Target(
        link,
        True,
        [a for a in link.addrs if not a.autoconf and not a.kernel_link_local],
        [r for r in link.routes if not r.kernel_owned],
        link.neighs,
        False,
    )


def back_target(link: LinkSnapshot) -> Target:
    """The snapshot: the link as found, its link-local addresses included (SLAAC and privacy
    addresses and RA routes come back with the next router advertisement)."""
    return Target(
        link,
        link.was_up,
        [a for a in link.addrs if not a.autoconf],
        [r for r in link.routes if not r.derived] if link.was_up else [],
        link.neighs,
        True,
    )


class Links:
    """The links an ADD may change, their snapshots, and what prevResult expects of them."""

    def __init__(
        self,
        nl: Rtnl,
        snapshots: list[LinkSnapshot],
        expected: Mapping[str, Expected] | None = None,
        missing_before: Iterable[str] = (),
    ) -> None:
        self.nl = nl
        self.snapshots = {link.ifname: link for link in snapshots}
        self.expected = dict(expected or {})
        self.missing_before = set(missing_before)  # prevResult's items the links lacked already
        self.bounced: list[str] = []  # set down by down(), in order
        self.touched: set[str] = set()  # whose admin state this object changed
        for link in snapshots:
            for route in link.routes:
                if route.nh_id is not None:
                    raise LinkError(
                        f"cannot bounce {link.ifname}: its {route.describe()} uses a nexthop object",
                        "a down deletes nexthop objects (ip nexthop) and their routes, and this "
                        "plugin does not re-create them; set linkBounce to never",
                    )

    def down(self, ifnames: Iterable[str]) -> None:
        """Set each link down (a link already down stays down)."""
        for ifname in ifnames:
            self.bounced.append(ifname)
            self.touched.add(ifname)
            admin_state(ifname, False)

    def up(self) -> None:
        """Every bounced link up with its addresses, routes and neighbours back; verified, with
        prevResult's addresses and routes. Raises LinkError; the caller restores."""
        targets = [forward_target(self.snapshots[ifname]) for ifname in self.bounced]
        try:
            self.converge(targets)
            problems = self.verify(targets, with_expected=True)
        except self.nl.errors as exc:
            raise LinkError("cannot bring the link back up as it was", why(exc)) from None
        if problems:
            raise LinkError("after the link bounce: " + "; ".join(problems))

    def restore(self) -> list[str]:
        """Every link back to its snapshot; returns what is still not as it was ([] when all
        is). Never raises for a netlink failure: it is reported in the list."""
        targets = [back_target(link) for link in self.snapshots.values()]
        try:
            self.converge(targets)
            return self.verify(targets, with_expected=False)
        except self.nl.errors as exc:
            return [why(exc)]
        except LinkError as exc:
            return [f"{exc.msg} ({exc.details})" if exc.details else exc.msg]

    def verify_expected(self) -> list[str]:
        """What of prevResult's addresses and routes the links lack now that they had before."""
        addrs = dump_addrs(self.nl)
        routes = dump_routes(self.nl)
        problems: list[str] = []
        for ifname, want in self.expected.items():
            link = self.snapshots.get(ifname)
            if link is None:
                continue
            have = {addr.key: addr for addr in addrs.get(link.index, [])}
            through = [route for route in routes if link.index in route.oifs]
            problems += [p for p in missing_expected(ifname, want, have, through) if p not in self.missing_before]
        return problems

    # -- the one converge ---------------------------------------------------------------------

    def converge(self, targets: list[Target]) -> None:
        nl = self.nl
        # An IPv6 address kept over the down (keep_addr_on_down=1, or added while down) goes
        # through DAD again at link-up, tentative for a second or more: take it out first and
        # add it back without DAD below.
        current = dump_addrs(nl)
        for target in targets:
            link = target.link
            if not target.up or link.ifname not in self.touched:
                continue
            wanted = {addr.key for addr in target.addrs}
            for addr in current.get(link.index, []):
                kept = addr.family == socket.AF_INET6 and addr.key in wanted and addr.tentative
                if kept and not addr.kernel_link_local and not addr.dad_failed:
                    nl.request(addr.message(nl.rt), RTM_DELADDR, ok=errno.EADDRNOTAVAIL)
        for target in targets:
            if is_up(target.link.ifname) != target.up:
                self.touched.add(target.link.ifname)
                admin_state(target.link.ifname, target.up)
        current = dump_addrs(nl)
        for target in targets:
            link = target.link
            have = {addr.key: addr for addr in current.get(link.index, [])}
            for addr in in_kernel_order(target.addrs):
                now = have.get(addr.key)
                if now is not None:
                    if now.kernel_link_local:
                        continue  # the kernel's own, in its DAD as at any link-up
                    if not (target.up and now.tentative and not addr.tentative):
                        if (now.flags ^ addr.flags) & SETTABLE_FLAGS:
                            # e.g. the IFA_F_NODAD of an interrupted add: give its own back
                            self._set_flags(addr, link.ifname)
                        continue  # there and usable
                    nl.request(now.message(nl.rt), RTM_DELADDR, ok=errno.EADDRNOTAVAIL)
                self._add_addr(addr, link.ifname, target.up)
            if target.drop_new_link_local:
                known = {addr.key for addr in link.addrs}
                for addr in current.get(link.index, []):
                    if addr.kernel_link_local and addr.key not in known:
                        nl.request(addr.message(nl.rt), RTM_DELADDR, ok=errno.EADDRNOTAVAIL)
        # Routes, in passes: a gateway may be reachable only through another restored route.
        present = {route.key() for route in dump_routes(nl)}
        pending = [
            (target.link.ifname, route)
            for target in targets
            if target.up
            for route in target.routes
            if route.key() not in present
        ]
        while pending:
            failed = []
            for ifname, route in pending:
                try:
                    # Not NLM_F_EXCL: for IPv6 the kernel refuses an exclusive add when any route
                    # of that destination and metric exists, whatever its gateway, e.g. an RA's
                    # default route learned during the bounce. EEXIST without it: the same route.
                    nl.request(route.message(nl.rt), RTM_NEWROUTE, NLM_F_CREATE, ok=errno.EEXIST)
                except nl.rt.NetlinkError as exc:
                    failed.append((ifname, route, exc))
            if len(failed) == len(pending):
                ifname, route, err = failed[0]
                raise LinkError(f"cannot restore {route.describe()} on {ifname}", why(err))
            pending = [(ifname, route) for ifname, route, _ in failed]
        for target in targets:
            for neigh in target.neighs:
                try:
                    nl.request(neigh.message(nl.rt), RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE)
                except nl.rt.NetlinkError as exc:
                    raise LinkError(f"cannot restore {neigh.describe(target.link.ifname)}", why(exc)) from None

    def verify(self, targets: list[Target], with_expected: bool) -> list[str]:
        """What a target lacks: admin state, addresses (present, usable), routes; with
        `with_expected`, also prevResult's addresses and routes that were there before."""
        problems: list[str] = []
        addrs = dump_addrs(self.nl)
        routes = dump_routes(self.nl)
        for target in targets:
            link = target.link
            if is_up(link.ifname) != target.up:
                problems.append(f"{link.ifname} is {'down' if target.up else 'up'}")
            have = {addr.key: addr for addr in addrs.get(link.index, [])}
            for addr in target.addrs:
                now = have.get(addr.key)
                if now is None:
                    problems.append(f"{addr.describe(link.ifname)} missing")
                elif target.up and now.tentative and not addr.tentative and not now.kernel_link_local:
                    problems.append(f"{addr.describe(link.ifname)} still tentative")
            through = [route for route in routes if link.index in route.oifs]
            keys = {route.key() for route in through}
            problems += [
                f"{route.describe()} on {link.ifname} missing" for route in target.routes if route.key() not in keys
            ]
            if with_expected and link.ifname in self.expected:
                found = missing_expected(link.ifname, self.expected[link.ifname], have, through)
                problems += [p for p in found if p not in self.missing_before]
        return problems

    # -- requests -----------------------------------------------------------------------------

    def _set_flags(self, addr: Addr, ifname: str) -> None:
        nl = self.nl
        try:
            nl.request(addr.message(nl.rt), RTM_NEWADDR, NLM_F_REPLACE)
        except nl.rt.NetlinkError as exc:
            raise LinkError(f"cannot restore the flags of {addr.describe(ifname)}", why(exc)) from None

    def _add_addr(self, addr: Addr, ifname: str, link_up: bool) -> None:
        """Add `addr` back. On an up link an IPv6 address is added with IFA_F_NODAD, so that it is
        usable at once, then given its own flags back (changing flags does not restart DAD)."""
        nl = self.nl
        skip_dad = link_up and addr.family == socket.AF_INET6 and not addr.flags & (IFA_F_NODAD | IFA_F_DADFAILED)
        try:
            flags = addr.flags | IFA_F_NODAD if skip_dad else addr.flags
            nl.request(addr.message(nl.rt, flags), RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, ok=errno.EEXIST)
            if skip_dad:
                nl.request(addr.message(nl.rt), RTM_NEWADDR, NLM_F_REPLACE)
        except nl.rt.NetlinkError as exc:
            raise LinkError(f"cannot restore {addr.describe(ifname)}", why(exc)) from None
