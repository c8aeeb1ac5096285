"""cni_sysctl.link against the real kernel: a veth whose container end is bounced inside a
throwaway netns, its peer (the gateways) in another. Every assertion reads the kernel's state
back with `ip -j` or an ICMP echo; nothing is taken from the module's own view.
"""

from __future__ import annotations

import errno
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from cni_sysctl import link
from cni_sysctl.errors import LinkError, LinkNotFoundError
from cni_sysctl.result import Expected
from tests.conftest import run
from tests.integration.conftest_link import Pair, ping, wait_settled

pytestmark = pytest.mark.root


def _write(ifname: str, family: str, param: str, value: str) -> None:
    """What procsys does between down() and up(), in the netns already entered."""
    with open(f"/proc/sys/net/{family}/conf/{ifname}/{param}", "w") as f:
        f.write(value)


def _expected(pair: Pair) -> dict[str, Expected]:
    return {pair.ifname: Expected(list(pair.addrs), [("0.0.0.0/0", pair.gw4), ("::/0", pair.gw6)])}


def _bounce(pair: Pair, writes: list[tuple[str, str, str]], expected: dict[str, Expected] | None = None) -> None:
    with pair.entered():
        bounce = link.Bounce([pair.ifname], expected)
        bounce.down()
        assert not link.is_up(pair.ifname)
        for family, param, value in writes:
            _write(pair.ifname, family, param, value)
        bounce.up()
        assert link.is_up(pair.ifname)


def _without_link_local(state: dict[str, object]) -> dict[str, object]:
    return {k: [x for x in v if "fe80" not in x] if isinstance(v, list) else v for k, v in state.items()}


def _link_locals(pair: Pair) -> list[dict[str, Any]]:
    return [a for a in pair.addresses() if str(a["local"]).startswith("fe80:")]


@pytest.fixture
def pair(make_netns: Callable[[str], str]) -> Pair:
    return Pair(make_netns)


# --- the promise: addr_gen_mode=1 on a link that arrived up -----------------------------------


@pytest.mark.parametrize("keep_addr_on_down", [False, True], ids=["flushed", "keep_addr_on_down"])
def test_bounce_applies_addr_gen_mode_and_puts_everything_back(
    make_netns: Callable[[str], str], keep_addr_on_down: bool
) -> None:
    pair = Pair(make_netns, keep_addr_on_down=keep_addr_on_down)
    before = pair.state()
    assert _link_locals(pair), "the kernel gave the link an EUI-64 link-local"

    _bounce(pair, [("ipv6", "addr_gen_mode", "1")], _expected(pair))

    # read at once: restored addresses are usable without waiting for DAD
    addrs = pair.addresses()
    assert not [a for a in addrs if str(a["local"]).startswith("fe80:")]
    assert sorted(f"{a['local']}/{a['prefixlen']}" for a in addrs) == sorted(pair.addrs)
    assert not [a for a in addrs if a.get("tentative")]
    # same addresses with the same flags, label and metric; same routes in every table
    # (defaults of both families, table 100, metric/mtu/advmss, onlink, multipath), same
    # permanent and proxy neighbours: all but what the link-local made
    assert pair.state() == _without_link_local(before)
    assert ping(pair.ns, pair.gw4)
    assert ping(pair.ns, pair.gw6)


def test_routes_are_not_duplicated_and_kernel_routes_come_back_once(pair: Pair) -> None:
    _bounce(pair, [])
    wait_settled(pair.ns, pair.ifname)
    routes = [(r.get("table", "main"), r["dst"], r.get("metric"), r.get("type")) for r in pair.routes()]
    assert len(routes) == len(set(routes)), routes
    # a bounce without writes is invisible
    _bounce(pair, [])
    wait_settled(pair.ns, pair.ifname)
    first = pair.state()
    _bounce(pair, [])
    wait_settled(pair.ns, pair.ifname)
    assert pair.state() == first


def test_stable_secret_gives_a_link_local_derived_from_it(pair: Pair) -> None:
    (eui64,) = _link_locals(pair)

    _bounce(pair, [("ipv6", "stable_secret", "2001:db8:1:2:3:4:5:6"), ("ipv6", "addr_gen_mode", "2")])
    (first,) = _link_locals(pair)
    assert first["local"] != eui64["local"]
    assert first.get("stable-privacy")

    _bounce(pair, [])
    (again,) = _link_locals(pair)
    assert again["local"] == first["local"], "stable across bounces"

    _bounce(pair, [("ipv6", "stable_secret", "2001:db8:6:5:4:3:2:1")])
    (other,) = _link_locals(pair)
    assert other["local"] not in (first["local"], eui64["local"]), "follows the secret"
    wait_settled(pair.ns, pair.ifname)
    assert ping(pair.ns, pair.gw6)


# --- restore(): the netns as it was found -----------------------------------------------------


@pytest.mark.parametrize("write", ["nothing", "reverted", "left"])
def test_restore_after_down_returns_the_snapshot(pair: Pair, write: str) -> None:
    before = pair.state()
    with pair.entered():
        bounce = link.Bounce([pair.ifname])
        bounce.down()
        if write != "nothing":
            _write(pair.ifname, "ipv6", "addr_gen_mode", "1")
        if write == "reverted":  # what the caller's journal does before restore()
            _write(pair.ifname, "ipv6", "addr_gen_mode", "0")
        bounce.restore()
        bounce.restore()  # idempotent
    wait_settled(pair.ns, pair.ifname)
    assert pair.state() == before


def _fail_requests(monkeypatch: pytest.MonkeyPatch, msg_type: int, code: int, *, once: bool) -> None:
    """Make the kernel refuse `msg_type` requests made by up() (once, or all of them)."""
    real_request = link._Rtnl.request
    real_converge = link.Bounce._converge
    armed = {"on": False, "left": 1}

    def request(self: link._Rtnl, msg: object, mtype: int, flags: int = 0, ok: int = 0) -> None:
        if armed["on"] and mtype == msg_type and armed["left"] > 0:
            if once:
                armed["left"] -= 1
            raise self.rt.NetlinkError(code, "injected")
        real_request(self, msg, mtype, flags, ok)

    def converge(self: link.Bounce, forward: bool) -> None:
        armed["on"] = forward
        real_converge(self, forward)

    monkeypatch.setattr(link._Rtnl, "request", request)
    monkeypatch.setattr(link.Bounce, "_converge", converge)


@pytest.mark.parametrize("fault", ["address", "route", "verify"])
def test_failed_up_restores_then_raises(pair: Pair, monkeypatch: pytest.MonkeyPatch, fault: str) -> None:
    before = pair.state()
    if fault == "address":
        _fail_requests(monkeypatch, link.RTM_NEWADDR, errno.EPERM, once=True)
    elif fault == "route":
        _fail_requests(monkeypatch, link.RTM_NEWROUTE, errno.ENETUNREACH, once=False)
    else:
        real_verify = link.Bounce._verify
        monkeypatch.setattr(
            link.Bounce, "_verify", lambda self, forward: ["injected"] if forward else real_verify(self, forward)
        )
    with pair.entered():
        bounce = link.Bounce([pair.ifname], _expected(pair))
        bounce.down()
        _write(pair.ifname, "ipv6", "addr_gen_mode", "1")
        with pytest.raises(LinkError) as info:
            bounce.up()
        assert {"address": "cannot restore address", "route": "cannot restore route", "verify": "injected"}[
            fault
        ] in info.value.msg
        after_up = pair.state()
        # the caller then rolls back its writes and calls restore() again
        _write(pair.ifname, "ipv6", "addr_gen_mode", "0")
        bounce.restore()
    assert after_up == before
    wait_settled(pair.ns, pair.ifname)
    assert pair.state() == before


def test_an_unexpected_exception_in_up_restores_and_passes_through(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    before = pair.state()
    real_converge = link.Bounce._converge

    def converge(self: link.Bounce, forward: bool) -> None:
        if forward:
            monkeypatch.setattr(link._Route, "message", lambda self, rt: 1 / 0)
        else:
            monkeypatch.undo()
        real_converge(self, forward)

    monkeypatch.setattr(link.Bounce, "_converge", converge)
    with pair.entered():
        bounce = link.Bounce([pair.ifname])
        bounce.down()
        with pytest.raises(ZeroDivisionError):
            bounce.up()
    wait_settled(pair.ns, pair.ifname)
    assert pair.state() == before


def test_prev_result_is_verified_and_a_miss_restores(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """prevResult backs the snapshot up: were an IPAM address taken for one the kernel makes,
    and so not put back, the check against prevResult catches it."""
    before = pair.state()
    real = link.Bounce._restorable
    v6 = pair.addrs[3].split("/")[0]
    monkeypatch.setattr(link.Bounce, "_restorable", lambda self, a, fwd: a.local != v6 and real(self, a, fwd))
    with pair.entered():
        bounce = link.Bounce([pair.ifname], _expected(pair))
        bounce.down()
        with pytest.raises(LinkError, match=rf"prevResult address {pair.addrs[3]} missing from {pair.ifname}"):
            bounce.up()
    monkeypatch.undo()
    with pair.entered():
        bounce.restore()
    wait_settled(pair.ns, pair.ifname)
    assert pair.state() == before


def test_prev_result_items_missing_before_the_bounce_are_not_its_failure(pair: Pair) -> None:
    expected = _expected(pair)
    expected[pair.ifname].addresses.append("10.254.254.2/24")
    expected[pair.ifname].routes.append(("10.253.0.0/16", None))
    _bounce(pair, [], expected)  # no LinkError
    assert sorted(f"{a['local']}/{a['prefixlen']}" for a in pair.addresses() if a["scope"] == "global") == sorted(
        pair.addrs
    )


# --- links that arrive down, or not at all ----------------------------------------------------


def test_link_down_on_arrival(make_netns: Callable[[str], str]) -> None:
    pair = Pair(make_netns, up=False)
    before = pair.state()
    with pair.entered():
        assert not link.is_up(pair.ifname)
        bounce = link.Bounce([pair.ifname])
        bounce.down()
        bounce.restore()
        assert not link.is_up(pair.ifname)
    assert pair.state() == before, "restore() leaves a link found down, down"

    expected = {pair.ifname: Expected([pair.addrs[0], pair.addrs[2]], [])}
    _bounce(pair, [("ipv6", "addr_gen_mode", "1")], expected)
    addrs = pair.addresses()
    assert sorted(f"{a['local']}/{a['prefixlen']}" for a in addrs) == sorted([pair.addrs[0], pair.addrs[2]])
    assert not [a for a in addrs if a.get("tentative")]
    assert ping(pair.ns, pair.gw4)
    assert ping(pair.ns, pair.gw6)


def test_set_up_and_is_up(make_netns: Callable[[str], str]) -> None:
    pair = Pair(make_netns, up=False)
    with pair.entered():
        assert not link.is_up(pair.ifname)
        link.set_up(pair.ifname)
        assert link.is_up(pair.ifname)
        link.set_up(pair.ifname)
        assert link.is_up(pair.ifname)
    assert "UP" in run("ip", "link", "show", "dev", pair.ifname, ns=pair.ns).stdout


@pytest.mark.parametrize("ifname", ["nosuch0", "x" * 16, "a/b"])
def test_missing_interface_is_named(pair: Pair, ifname: str) -> None:
    before = pair.state()
    with pair.entered():
        with pytest.raises(LinkNotFoundError, match="not found") as info:
            link.is_up(ifname)
        assert ifname in info.value.msg
        with pytest.raises(LinkNotFoundError):
            link.set_up(ifname)
        with pytest.raises(LinkNotFoundError) as info:
            link.Bounce([pair.ifname, ifname]).down()
        assert ifname in info.value.msg
    assert pair.state() == before, "nothing changed: the check comes before the first down"


def test_nexthop_objects_are_refused_before_any_change(pair: Pair) -> None:
    run("ip", "nexthop", "add", "id", "7", "via", pair.gw4, "dev", pair.ifname, ns=pair.ns)
    run("ip", "route", "add", "100.64.0.0/10", "nhid", "7", ns=pair.ns)
    before = pair.state()
    with pair.entered():
        with pytest.raises(LinkError, match="nexthop object"):
            link.Bounce([pair.ifname]).down()
        assert link.is_up(pair.ifname)
    assert pair.state() == before


# --- cost: pyroute2 only for a bounce, and only its message classes ----------------------------


def _python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout


def test_is_up_does_not_import_pyroute2() -> None:
    out = _python(
        "import sys; from cni_sysctl import link; link.is_up('lo');"
        "print(sorted(m for m in sys.modules if 'pyroute2' in m))"
    )
    assert out.strip() == "[]"


def test_bounce_imports_message_classes_only_and_pyroute2_still_works() -> None:
    out = _python(
        "import sys; from cni_sysctl import link; link._rtnl();"
        "print(sorted(m for m in sys.modules if m.startswith('pyroute2.')));"
        "from pyroute2 import IPRoute; import pyroute2, pyroute2.netlink.rtnl.ifaddrmsg as m;"
        "print(bool(pyroute2.__version__), IPRoute().link_lookup(ifname='lo'), m.ifaddrmsg.__name__)"
    )
    loaded, works = out.splitlines()
    assert "pyroute2.iproute" not in loaded, loaded
    assert "pyroute2.ndb" not in loaded, loaded
    assert works == "True [1] ifaddrmsg"
    # and when the process had already imported pyroute2 the usual way
    out = _python("import pyroute2; from cni_sysctl import link; print(link._rtnl().rtmsg.__name__)")
    assert out.strip() == "rtmsg"
