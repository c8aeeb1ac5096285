"""cni_sysctl.bounce against the real kernel: a veth whose container end is bounced inside a
throwaway netns, its peer (the gateways) in another. Every assertion reads the kernel's state
back with `ip -j` or an ICMP echo; nothing is taken from the module's own view. Faults come
through the netlink socket factory (tests/faults.py).
"""

from __future__ import annotations

import _socket
import errno
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from cni_sysctl import linkstate, rtnl, rtnlmsg, snapshot
from cni_sysctl.bounce import Links
from cni_sysctl.errors import LinkError, LinkNotFoundError
from cni_sysctl.netns import NetnsEntered
from cni_sysctl.result import Expected
from tests import netlab
from tests.faults import FaultySocket, Rule, attr
from tests.netlab import Box, dump, run, settle

pytestmark = pytest.mark.root


def _write(ifname: str, param: str, value: str) -> None:
    """What procsys does between down() and up(), in the netns already entered."""
    with open(f"/proc/sys/net/ipv6/conf/{ifname}/{param}", "w") as f:
        f.write(value)


def _expected(box: Box) -> dict[str, Expected]:
    return {box.ifname: Expected(list(box.addrs), [("0.0.0.0/0", box.gw4), ("::/0", box.gw6)])}


def links(box: Box, expected: dict[str, Expected] | None = None, rule: Rule | None = None) -> Links:
    """Links over a snapshot of the box's link, taken now (call inside NetnsEntered)."""
    fired: list[str] = []
    factory = (lambda: FaultySocket(rule, fired)) if rule is not None else None
    nl = rtnl.Rtnl(rtnlmsg.load(), factory)
    index = _socket.if_nametoindex(box.ifname)
    snaps = snapshot.take(nl, [(box.ifname, index, linkstate.is_up(box.ifname))])
    return Links(nl, snaps, expected)


def bounce(box: Box, writes: list[tuple[str, str]], expected: dict[str, Expected] | None = None) -> None:
    with NetnsEntered(box.path):
        lk = links(box, expected)
        lk.down([box.ifname])
        assert not linkstate.is_up(box.ifname)
        for param, value in writes:
            _write(box.ifname, param, value)
        lk.up()
        assert linkstate.is_up(box.ifname)
        lk.nl.close()


def without_link_local(state: dict[str, list[str]]) -> dict[str, list[str]]:
    """A dump but for what addr_gen_mode decides: the link-local and the mode `ip -d link` shows."""
    return {
        k: [re.sub(r"addrgenmode \S+", "", x) for x in v if "fe80" not in x] for k, v in state.items() if k != "sysctls"
    }


@pytest.fixture
def box(make_netns: Callable[[str], str]) -> Box:
    return Box(make_netns, rich=True)


# --- the promise: addr_gen_mode=1 on a link that arrived up -----------------------------------


@pytest.mark.parametrize("keep_addr_on_down", [False, True], ids=["flushed", "keep_addr_on_down"])
def test_bounce_applies_addr_gen_mode_and_puts_everything_back(
    make_netns: Callable[[str], str], keep_addr_on_down: bool
) -> None:
    box = Box(make_netns, rich=True, keep_addr_on_down=keep_addr_on_down)
    before = dump(box.ns, sysctls=False)
    assert netlab.link_locals(box.ns), "the kernel gave the link an EUI-64 link-local"

    bounce(box, [("addr_gen_mode", "1")], _expected(box))

    # read at once: restored addresses are usable without waiting for DAD
    assert not netlab.link_locals(box.ns)
    assert netlab.addresses(box.ns) == set(box.addrs)
    assert not netlab.tentative(box.ns)
    # same addresses with the same flags, label and metric; same routes in every table
    # (defaults of both families, table 100, metric/mtu/advmss, onlink, multipath), same
    # permanent and proxy neighbours: all but what the link-local made
    assert without_link_local(dump(box.ns, sysctls=False)) == without_link_local(before)
    assert netlab.ping(box.ns, box.gw4)
    assert netlab.ping(box.ns, box.gw6)


def test_routes_are_not_duplicated_and_a_bounce_without_writes_is_invisible(box: Box) -> None:
    bounce(box, [])
    settle(box.ns)
    routes = [(r.get("table", "main"), r["dst"], r.get("metric"), r.get("type")) for r in netlab.routes(box.ns, "6")]
    assert len(routes) == len(set(routes)), routes
    first = dump(box.ns, sysctls=False)
    bounce(box, [])
    settle(box.ns)
    assert dump(box.ns, sysctls=False) == first


def test_stable_secret_gives_a_link_local_derived_from_it(box: Box) -> None:
    (eui64,) = netlab.link_locals(box.ns)
    bounce(box, [("stable_secret", "2001:db8:1:2:3:4:5:6"), ("addr_gen_mode", "2")])
    (first,) = netlab.link_locals(box.ns)
    assert first != eui64
    bounce(box, [])
    assert netlab.link_locals(box.ns) == {first}, "stable across bounces"
    bounce(box, [("stable_secret", "2001:db8:6:5:4:3:2:1")])
    (other,) = netlab.link_locals(box.ns)
    assert other not in (first, eui64), "follows the secret"
    settle(box.ns)
    assert netlab.ping(box.ns, box.gw6)


# --- restore(): the netns as it was found -----------------------------------------------------


@pytest.mark.parametrize("write", ["nothing", "reverted", "left"])
def test_restore_after_down_returns_the_snapshot(box: Box, write: str) -> None:
    before = dump(box.ns, sysctls=False)
    with NetnsEntered(box.path):
        lk = links(box)
        lk.down([box.ifname])
        if write != "nothing":
            _write(box.ifname, "addr_gen_mode", "1")
        if write == "reverted":  # what the transaction's rollback does before restore()
            _write(box.ifname, "addr_gen_mode", "0")
        assert lk.restore() == []
        assert lk.restore() == [], "idempotent"
    settle(box.ns)
    after = dump(box.ns, sysctls=False)
    if write == "left":  # the mode stays 1 (`ip -d link` says so), the link-local is back anyway
        after["ip -d link"] = [x.replace("addrgenmode none", "addrgenmode eui64") for x in after["ip -d link"]]
    assert after == before, netlab.diff(before, after)


def _failing(msg_type: int, code: int) -> Rule:
    return lambda t, flags, msg: code if t == msg_type else None


@pytest.mark.parametrize("fault", ["address", "route"])
def test_failed_up_raises_and_restore_puts_everything_back(box: Box, fault: str) -> None:
    before = dump(box.ns, sysctls=False)
    if fault == "address":
        rule = _failing(rtnl.RTM_NEWADDR, errno.EPERM)
    else:
        rule = _failing(rtnl.RTM_NEWROUTE, errno.ENETUNREACH)
    with NetnsEntered(box.path):
        lk = links(box, _expected(box), rule)
        sock = lk.nl.sock
        assert isinstance(sock, FaultySocket)
        sock.armed = False
        lk.down([box.ifname])
        _write(box.ifname, "addr_gen_mode", "1")
        sock.armed = True
        with pytest.raises(LinkError, match=f"cannot restore {fault}"):
            lk.up()
        sock.armed = False
        _write(box.ifname, "addr_gen_mode", "0")  # the transaction rolls its writes back first
        assert lk.restore() == []
    settle(box.ns)
    assert dump(box.ns, sysctls=False) == before


def test_a_restore_that_cannot_finish_says_what_is_missing(box: Box) -> None:
    local = box.addrs[1].split("/")[0]

    def rule(msg_type: int, flags: int, msg: Any) -> int | None:
        if msg_type == rtnl.RTM_NEWADDR and (attr(msg, "IFA_ADDRESS") == local):
            return errno.EPERM
        return None

    with NetnsEntered(box.path):
        lk = links(box, None, rule)
        lk.down([box.ifname])
        problems = lk.restore()
    assert problems
    assert f"cannot restore address {box.addrs[1]} on {box.ifname}" in problems[0]


def test_an_unexpected_exception_in_up_passes_through_and_restore_repairs(box: Box) -> None:
    before = dump(box.ns, sysctls=False)
    with NetnsEntered(box.path):
        lk = links(box, None, lambda t, f, msg: ZeroDivisionError("injected") if t == rtnl.RTM_NEWROUTE else None)
        sock = lk.nl.sock
        assert isinstance(sock, FaultySocket)
        lk.down([box.ifname])
        with pytest.raises(ZeroDivisionError):
            lk.up()
        sock.armed = False
        assert lk.restore() == []
    settle(box.ns)
    assert dump(box.ns, sysctls=False) == before


def test_prev_result_is_verified(box: Box) -> None:
    """prevResult backs the snapshot up: were an IPAM address silently not put back (here the
    kernel is made to ack an add it never saw), the check against prevResult catches it."""
    local = box.addrs[3].split("/")[0]

    def rule(msg_type: int, flags: int, msg: Any) -> int | None:
        return 0 if msg_type == rtnl.RTM_NEWADDR and attr(msg, "IFA_ADDRESS") == local else None

    with NetnsEntered(box.path):
        lk = links(box, _expected(box), rule)
        lk.down([box.ifname])
        with pytest.raises(LinkError, match=rf"prevResult address {box.addrs[3]} missing from {box.ifname}"):
            lk.up()


def test_prev_result_items_missing_before_the_bounce_are_not_its_failure(box: Box) -> None:
    expected = _expected(box)
    expected[box.ifname].addresses.append("10.254.254.2/24")
    expected[box.ifname].routes.append(("10.253.0.0/16", None))
    with NetnsEntered(box.path):
        snap = links(box, expected).snapshots[box.ifname]
        have = {a.key: a for a in snap.addrs}
        missing = snapshot.missing_expected(box.ifname, expected[box.ifname], have, snap.routes)
        lk = links(box, expected)
        lk.missing_before = set(missing)
        lk.down([box.ifname])
        lk.up()  # no LinkError
    assert netlab.addresses(box.ns) == set(box.addrs)


# --- links that arrive down, or not at all ----------------------------------------------------


def test_link_down_on_arrival(make_netns: Callable[[str], str]) -> None:
    box = Box(make_netns, up=False)
    before = dump(box.ns, sysctls=False)
    with NetnsEntered(box.path):
        assert not linkstate.is_up(box.ifname)
        lk = links(box)
        lk.down([box.ifname])
        assert lk.restore() == []
        assert not linkstate.is_up(box.ifname)
    assert dump(box.ns, sysctls=False) == before, "restore() leaves a link found down, down"

    bounce(box, [("addr_gen_mode", "1")], {box.ifname: Expected(list(box.addrs), [])})
    assert netlab.addresses(box.ns) == set(box.addrs)
    assert not netlab.tentative(box.ns)
    assert netlab.ping(box.ns, box.gw4)
    assert netlab.ping(box.ns, box.gw6)


def test_set_up_and_is_up(make_netns: Callable[[str], str]) -> None:
    box = Box(make_netns, up=False)
    with NetnsEntered(box.path):
        assert not linkstate.is_up(box.ifname)
        linkstate.set_up(box.ifname)
        assert linkstate.is_up(box.ifname)
        linkstate.set_up(box.ifname)
        assert linkstate.is_up(box.ifname)
        assert linkstate.wait_ready([box.ifname], 5.0) == []
    assert netlab.is_up(box.ns)


@pytest.mark.parametrize("ifname", ["nosuch0", "x" * 16, "a/b"])
def test_missing_interface_is_named(box: Box, ifname: str) -> None:
    before = dump(box.ns, sysctls=False)
    with NetnsEntered(box.path):
        with pytest.raises(LinkNotFoundError, match="not found") as info:
            linkstate.is_up(ifname)
        assert ifname in info.value.msg
        with pytest.raises(LinkNotFoundError):
            linkstate.set_up(ifname)
    assert dump(box.ns, sysctls=False) == before


def test_nexthop_objects_are_refused_before_any_change(box: Box) -> None:
    run("ip", "nexthop", "add", "id", "7", "via", box.gw4, "dev", box.ifname, ns=box.ns)
    run("ip", "route", "add", "100.64.0.0/10", "nhid", "7", ns=box.ns)
    before = dump(box.ns, sysctls=False)
    with NetnsEntered(box.path), pytest.raises(LinkError, match="nexthop object"):
        links(box)
    assert dump(box.ns, sysctls=False) == before


# --- cost: pyroute2 only for a bounce, and only its message classes ----------------------------


def _python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout


def test_is_up_does_not_import_pyroute2() -> None:
    out = _python(
        "import sys; from cni_sysctl import linkstate; linkstate.is_up('lo');"
        "print(sorted(m for m in sys.modules if 'pyroute2' in m))"
    )
    assert out.strip() == "[]"


def test_the_message_classes_load_alone_and_pyroute2_still_works() -> None:
    out = _python(
        "import sys; from cni_sysctl import rtnlmsg; print(rtnlmsg.load().how);"
        "print(sorted(m for m in sys.modules if m.startswith('pyroute2.')));"
        "from pyroute2 import IPRoute; import pyroute2, pyroute2.netlink.rtnl.ifaddrmsg as m;"
        "print(bool(pyroute2.__version__), IPRoute().link_lookup(ifname='lo'), m.ifaddrmsg.__name__)"
    )
    how, loaded, works = out.splitlines()
    assert how == "shortcut"
    assert "pyroute2.iproute" not in loaded, loaded
    assert "pyroute2.ndb" not in loaded, loaded
    assert works == "True [1] ifaddrmsg"
    # and when the process had already imported pyroute2 the usual way
    out = _python("import pyroute2; from cni_sysctl import rtnlmsg; print(rtnlmsg.load().rtmsg.__name__)")
    assert out.strip() == "rtmsg"
